"""Write a Gradescope autograder bundle, and run one locally the way Gradescope would.

    python -m course.gradescope --out autograder.zip                  # every graded part
    python -m course.gradescope --out autograder.zip --papers maf nsf # the parts of an assignment
    python -m course.gradescope --out autograder.zip --assignment ../hw/assignment.toml
    python -m course.gradescope --try autograder.zip --submission ../alice   # local dry run

The zip follows Gradescope's autograder specification: ``setup.sh`` and ``run_autograder`` at its
root, next to the files they need. Gradescope unpacks it into ``/autograder/source``, runs
``setup.sh`` once when it builds the image, then for each submission (unpacked in
``/autograder/submission``) runs ``run_autograder``, which must write
``/autograder/results/results.json``. Here the "files they need" are this repository's reference
(the five papers, ``common/``, ``tests/``, ``course/`` with the weights and the hidden tests,
``tools/``), so every part is graded alone against the reference, with the instructor's tests.
results.json has one test per test group (name, score, max_score, output, visibility: hidden
groups are "after_published"), the total ``score`` and ``execution_time``.

``--try`` lays out a temporary directory as Gradescope does (``source/``, ``submission/``,
``results/``, ``run_autograder``), runs it with ``AUTOGRADER_ROOT`` pointing there and prints the
results; ``run_autograder`` also takes the submission as its first argument.
"""

import json
import math
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from course.grade import (
    CPU_LIMIT,
    MANIFEST,
    MEMORY_LIMIT,
    ROOT,
    SANDBOX_UID,
    TREE,
    TREE_FILES,
    WEIGHTS,
    WEIGHTS_JSON,
    graded_parts,
    load_weights,
    positive_integer,
    positive_seconds,
    read_table,
)
from course.markers import GROUPS
from tools.cli import script_parser

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image. Base image: Ubuntu 22.04,
# whose python3 is 3.10 (the grader runs on 3.10 and later: it reads course/grading.json, written
# from grading.toml when the bundle was built, so it needs no tomllib).
set -euo pipefail
apt-get update -q && apt-get install -y -q python3 python3-pip python3-venv >/dev/null
python3 -c 'import sys; assert sys.version_info >= (3, 10), sys.version'
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -q --index-url https://download.pytorch.org/whl/cpu torch=={torch}
/autograder/venv/bin/pip install -q -r /autograder/source/requirements.txt
# the graded code runs as uid {uid} and up (no login, no home): it may run the venv's Python ...
chmod -R o+rX /autograder/venv
# ... but never read the reference this folder holds
chmod 700 /autograder/source
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this for each submission. Locally: AUTOGRADER_ROOT=<dir> run_autograder [DIR].
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
SUBMISSION="${{1:-${{SUBMISSION:-$ROOT/submission}}}}"
PYTHON="${{PYTHON:-$ROOT/venv/bin/python}}"
[ -x "$PYTHON" ] || PYTHON=python3
mkdir -p "$ROOT/results"
# the reference and the results are root's alone: the graded code runs as another uid
chmod 700 "$ROOT/source" "$ROOT/results"
cd "$ROOT/source"
export OMP_NUM_THREADS=1 MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1
"$PYTHON" -m course.grade --submission "$SUBMISSION" --json "$ROOT/results/results.json" \\
    --timeout {timeout} --jobs {jobs} --cpu {cpu} --memory {memory} --parts {parts}
status=$?
if [ ! -s "$ROOT/results/results.json" ]; then  # the grader itself failed: say so, score 0
  printf '{{"score": 0, "output": "the autograder failed (exit %s); ask your instructor", ' \\
    "$status" >"$ROOT/results/results.json"
  printf '"execution_time": 0, "tests": []}}\\n' >>"$ROOT/results/results.json"
fi
exit 0
"""


def bundle_files(root=ROOT):
    """(path in the zip, file) for the reference tree the autograder needs: the files git tracks
    (``git ls-files``), so an untracked note or scratch file never ships."""
    root = Path(root)
    names = (*TREE, *TREE_FILES, "requirements.txt")
    try:
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--", *names],
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        raise ValueError(
            f"{root} is not a git checkout: the bundle holds the files git tracks (git ls-files)"
        ) from None
    skip = {"__pycache__", ".pytest_cache", "runs", ".ipynb_checkpoints"}
    files = []
    for rel in sorted(filter(None, listed.split("\0"))):
        path = root / rel
        if path.is_file() and not skip & set(Path(rel).parts) and path.suffix != ".ipynb":
            files.append((rel, path))
    return files


def torch_version():
    """The torch this repository is tested with (pinned in setup.sh): the installed one."""
    from importlib.metadata import version

    return version("torch").split("+")[0]


def write_bundle(
    out, parts, root=ROOT, timeout=60, jobs=1, cpu_limit=CPU_LIMIT, memory_limit=MEMORY_LIMIT
):
    """Write the autograder zip ``out`` for ``parts``; returns the names it holds. ``timeout``:
    seconds per test, a finite number > 0."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ValueError(f"timeout must be a number of seconds, got {timeout!r}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:

        def add(name, data, executable=False):
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, data)
            names.append(name)

        add("setup.sh", SETUP.format(torch=torch_version(), uid=SANDBOX_UID), executable=True)
        run = RUN.format(
            timeout=f"{timeout:g}",
            jobs=jobs,
            cpu=f"{cpu_limit:g}",
            memory=f"{memory_limit:g}",
            parts=" ".join(parts),
        )
        add("run_autograder", run, executable=True)
        for name, path in bundle_files(root):
            add(name, path.read_bytes())
        # the weights as JSON: the grader reads them on Python 3.10, which has no tomllib
        weights = json.dumps(read_table(Path(root) / WEIGHTS), indent=1, sort_keys=True)
        add(WEIGHTS_JSON.as_posix(), weights + "\n")
    return names


def try_bundle(bundle, submission, python=sys.executable, keep=None):
    """Run ``bundle`` on ``submission`` in a directory laid out as Gradescope's /autograder;
    returns (results.json as a dict, seconds)."""
    with tempfile.TemporaryDirectory(prefix="autograder-") as scratch:
        root = Path(keep or scratch)
        (root / "source").mkdir(parents=True)
        with zipfile.ZipFile(bundle) as archive:
            archive.extractall(root / "source")
        shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
        os.chmod(root / "run_autograder", 0o755)
        shutil.copytree(submission, root / "submission")
        env = {**os.environ, "AUTOGRADER_ROOT": str(root), "PYTHON": python}
        start = time.perf_counter()
        subprocess.run(["bash", str(root / "run_autograder")], env=env, check=True)
        seconds = time.perf_counter() - start
        return json.loads((root / "results" / "results.json").read_text()), seconds


def main(argv=None):
    parser = script_parser(__doc__, "course.gradescope")
    parser.add_argument("--out", help="write the autograder zip here")
    parser.add_argument("--papers", nargs="+", choices=GROUPS, metavar="PAPER")
    parser.add_argument("--parts", nargs="+", metavar="PART")
    parser.add_argument(
        "--assignment",
        metavar="TOML",
        help=f"grade the parts of this {MANIFEST} (a student copy's)",
    )
    parser.add_argument(
        "--timeout", type=positive_seconds, default=60, help="seconds per test (default 60)"
    )
    parser.add_argument(
        "--jobs", type=positive_integer, default=1, help="parts graded at once (default 1)"
    )
    parser.add_argument(
        "--cpu", type=positive_seconds, default=CPU_LIMIT, help="seconds of CPU per part"
    )
    parser.add_argument(
        "--memory",
        type=positive_seconds,
        default=MEMORY_LIMIT,
        metavar="MIB",
        help=f"MiB of address space per part (default {MEMORY_LIMIT}; give Gradescope's container "
        "more than that)",
    )
    parser.add_argument("--try", dest="bundle", metavar="ZIP", help="run this bundle locally")
    parser.add_argument("--submission", metavar="DIR", help="the submission for --try")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the Python that runs the bundle with --try (default: this one; e.g. a 3.10 venv's)",
    )
    args = parser.parse_args(argv)
    try:
        if args.bundle:
            if not args.submission:
                parser.error("--try needs --submission DIR")
            if not zipfile.is_zipfile(args.bundle):
                what = "not a zip file" if os.path.isfile(args.bundle) else "no such file"
                parser.error(f"--try needs an autograder zip (see --out), {args.bundle} is {what}")
            if not os.path.isdir(args.submission):
                parser.error(f"--submission must be a directory, got {args.submission}")
            result, seconds = try_bundle(args.bundle, args.submission, python=args.python)
            print(result.get("output", ""))
            print(f"results.json: score {result['score']} in {seconds:.0f} s")
            return 0
        if not args.out:
            parser.error("--out ZIP is required (or --try ZIP --submission DIR)")
        weights = load_weights(ROOT / WEIGHTS)
        parts = args.parts
        if args.assignment:
            parts = read_table(args.assignment)["parts"]
        parts = [p for p in graded_parts(weights, ROOT, args.papers, parts, manifest=False)]
        parts = [p for p in parts if weights[p]["points"] > 0]
        if not parts:
            raise ValueError("no graded part selected")
        names = write_bundle(args.out, parts, ROOT, args.timeout, args.jobs, args.cpu, args.memory)
    except (OSError, ValueError, KeyError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    points = sum(weights[p]["points"] for p in parts)
    print(f"wrote {args.out}: {len(names)} files, {len(parts)} parts, {points:g} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
