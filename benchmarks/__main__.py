"""Which flow when, and at what cost: the five papers' flows against zuko, nflows and normflows.

    python -m benchmarks                      # full run (3 seeds): results/results.json + report
    python -m benchmarks --only cost vi       # some sections; the others' records are kept
    python -m benchmarks --only density       # also NSF against MAF at NSF-AR's size
    python -m benchmarks --only density digits vi --models NSF --libraries ours
                                              # only these rows; every other record is kept
    python -m benchmarks --report             # tables (results/tables.md) and figures, no training
    python -m benchmarks --quick              # under 2 minutes, 1 seed, writes to runs/benchmarks/

Peers are optional (pip install -r benchmarks/requirements.txt); a missing one is skipped. Every
training uses one thread (torch.set_num_threads(1)), Adam 1e-3, no clipping or schedule, the same
budget for every model. The configurations are FULL and QUICK below; the results file records the
one used. Bad arguments are refused before anything is computed.

The results file is replaced, atomically, only when the run completes: until then each new record
goes to results.partial.json beside it, so a stopped run (Ctrl-C: exit 130) leaves results.json as
it was and its own records there (never merged; the next run overwrites that file).
"""

import importlib.metadata
import os
import platform
import sys
import time

import torch

from common.cli import check_out, non_negative, run
from tools.cli import script_parser

from .models import PEERS, available
from .report import load, save, update_readme, write_report
from .tasks import LIBRARIES, SECTIONS

# FULL: sized to finish in about 45 minutes on one core of a 2-core machine shared with other jobs
FULL = {
    "density": {
        "targets": ["gauss8", "checker", "rings", "ua_nb"],
        "steps": 500,
        "n_test": 100_000,
    },
    "digits": {"steps": 600, "hidden": 128, "nsf_hidden": 64},
    "vi": {
        "energies": ["U1", "U2", "U3", "U4", "sine"],
        "steps": 400,
        "n_test": 100_000,
        "planar_layers": 32,
    },
    "cost": {"dims": [2, 8, 32, 64], "n": 5_000, "steps": 30, "sample_libraries": ["ours", "zuko"]},
}
QUICK = {
    "density": {"targets": ["gauss8"], "steps": 20, "n_test": 2_000},
    "digits": {"steps": 10, "hidden": 16, "nsf_hidden": 8},
    "vi": {"energies": ["sine"], "steps": 20, "n_test": 2_000, "planar_layers": 32},
    "cost": {"dims": [2, 8], "n": 500, "steps": 3, "sample_libraries": ["ours", "zuko"]},
}
# beside the results file: the records of a run still going or stopped, never merged into it
PARTIAL = "results.partial.json"
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")


def report(results, out):
    """Tables and figures into ``out``; the committed results also refresh the README's tables."""
    markdown = write_report(results, out)
    if os.path.abspath(out) == RESULTS:
        update_readme(markdown, README)
    return markdown


def environment():
    versions = {"torch": torch.__version__, "python": platform.python_version()}
    for library in PEERS:
        if available(library):
            versions[library] = importlib.metadata.version(library)
    return versions


def main(argv=None):
    parser = script_parser(__doc__, "benchmarks")
    parser.add_argument(
        "--quick", action="store_true", help="tiny budgets, 1 seed, < 2 minutes (results to runs/)"
    )
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these sections")
    parser.add_argument(
        "--models",
        nargs="+",
        metavar="TEXT",
        help="only rows whose family or model label contains one of these (others are kept)",
    )
    parser.add_argument(
        "--libraries", nargs="+", choices=LIBRARIES, help="only these libraries' rows"
    )
    parser.add_argument(
        "--seeds", type=non_negative, nargs="+", help="seeds (default 0 1 2; --quick: 0)"
    )
    parser.add_argument(
        "--out", help="results directory (default benchmarks/results; --quick: runs/benchmarks)"
    )
    parser.add_argument(
        "--report", action="store_true", help="only regenerate tables and figures from the file"
    )
    parser.add_argument(
        "--device", default="cpu", help="only cpu is measured: timings are the point"
    )
    args = parser.parse_args(argv)  # every check below comes before any computation
    if args.device != "cpu":
        parser.error(
            "--device must be cpu (the benchmark times CPU runs on one thread), "
            f"got {args.device!r}"
        )
    if args.out is not None and not args.out.strip():
        parser.error(f"--out must name a directory, got {args.out!r}")
    out = args.out or (os.path.join("runs", "benchmarks") if args.quick else RESULTS)
    check_out(parser, out)
    if args.report and not os.path.exists(os.path.join(out, "results.json")):
        parser.error(f"--report needs {os.path.join(out, 'results.json')}, which does not exist")
    path = os.path.join(out, "results.json")
    if args.report:
        print(report(load(path), out))
        return
    torch.set_num_threads(1)
    config = QUICK if args.quick else FULL
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    sections = args.only or list(SECTIONS)
    missing = [p for p in PEERS if not available(p)]
    if missing:
        print(
            f"not installed, skipped: {', '.join(missing)} "
            "(pip install -r benchmarks/requirements.txt)"
        )

    def keep(library, name):  # the rows this run computes (and replaces in the file)
        chosen = not args.models or any(text in name for text in args.models)
        return chosen and (not args.libraries or library in args.libraries)

    some = bool(args.models or args.libraries)
    results = load(path)
    # the file's records minus those this run replaces: written only once the run completes
    kept = [
        r
        for r in results["records"]
        if r["section"] not in sections or not keep(r["library"], r.get("family") or r["model"])
    ]
    for name in sections:
        old = results["config"].get(name)
        if some and old:  # some rows of a section: with the budget of the rest of its rows
            if old.get("seeds") != seeds or old.get("quick") != args.quick:
                parser.error(
                    f"--models/--libraries re-run rows of {name} with the file's seeds "
                    f"{old.get('seeds')} and quick={old.get('quick')}, got {seeds} and "
                    f"quick={args.quick}"
                )
            continue
        results["config"][name] = {**config[name], "seeds": seeds, "quick": args.quick}
    results["config"]["environment"] = environment()
    partial = os.path.join(out, PARTIAL)
    new = {"config": results["config"], "records": []}
    start = time.perf_counter()

    def log(record, line):
        print(
            f"[{time.perf_counter() - start:6.0f} s] {line}"
            + (" (diverged)" if "diverged" in record else ""),
            file=sys.stderr,
            flush=True,
        )

    try:
        for name in sections:
            section_start = time.perf_counter()
            for record in SECTIONS[name](config[name], seeds, log, keep):
                new["records"].append(record)
                # after every record, beside the results file: a stopped run keeps what it computed
                save(new, partial)
            if not some:
                results["config"][name]["seconds"] = round(time.perf_counter() - section_start)
        results["records"] = kept + new["records"]
        save(results, path)
    except KeyboardInterrupt:
        done = len(new["records"])
        where = f"this run's {done} records are in {partial}" if done else "no record was complete"
        raise KeyboardInterrupt(f"{path} is as it was; {where}") from None
    if os.path.exists(partial):
        os.remove(partial)
    print(report(results, out))
    print(f"total {time.perf_counter() - start:.0f} s; results in {path}")


if __name__ == "__main__":
    run(main)
