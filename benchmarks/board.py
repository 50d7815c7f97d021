"""NSF-AR on a sharp-edged checkerboard, in a plain training loop (no guard, no validation).

    python -m benchmarks.board                               # ours, zuko, nflows; seeds 0 1 2
    python -m benchmarks.board --models ours zuko --seeds 0  # some rows, one seed
    python -m benchmarks.board --targets board_odd rings     # other targets (common.targets)
    python -m benchmarks.board --report                      # the table from the results only

The board is common.targets' "checker": uniform on the 8 cells of a 4 x 4 board over [-2, 2]^2
whose floor(x1) + floor(x2) is even, density 1/8 there, exact entropy log 8; "board_odd" is its
mirror image (the other 8 cells). The loop is the one an outside user writes:
``torch.manual_seed(seed)``, build, Adam lr 1e-3, a fresh batch of 512 target samples each step,
1500 steps, then the test NLL on 100k fresh samples minus the exact entropy. NSF-AR 5 x 8 bins,
MADE 2 x 64, B = 5 in every library (36,710 parameters each). Rows other than the three libraries
each change one thing of ours (VARIANTS). Records go to benchmarks/results/board.json (kept, not
re-run unless --fresh), the table to board.md and, for the committed results, into
benchmarks/README.md between its markers.
"""

import contextlib
import math
import os
import sys
import time

import torch

import nsf.nsf as nsf_core
from common.layers import soft_bound
from common.metrics import count_parameters, nll_gap
from common.targets import get_target
from nsf import NSF
from tools.cli import script_parser

from .fit import DEFAULT_OUTPUT, SLOPE_SHIFT, nsf_output_scaled, nsf_started
from .models import PeerFlow, _nflows, ours, zuko_flow
from .report import fmt, load, save, update_readme

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
HIDDEN = (64, 64)
README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")
README_BEGIN = (
    "<!-- board table: written by python -m benchmarks.board --report from results/board.json -->"
)
README_END = "<!-- end of the board table -->"


def plain_fit(flow, target, steps=1500, batch_size=512, lr=1e-3):
    """The standard loop: Adam, fresh samples every step; returns the seconds it took."""
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    start = time.perf_counter()
    for _ in range(steps):
        loss = -flow.log_prob(target.sample(batch_size)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


class OddBoard:
    """The 4 x 4 board over [-2, 2]^2 with the other colouring: uniform on the 8 cells whose
    floor(x1) + floor(x2) is odd (common.targets' "checker" takes the even ones). H = log 8."""

    name, dim, bounds = "board_odd", 2, (-2.5, 2.5)

    def sample(self, n, generator=None):
        x = get_target("checker").sample(n, generator)
        return torch.stack([-x[:, 0], x[:, 1]], -1)  # the mirror image swaps the colours

    def log_prob(self, x):
        return get_target("checker").log_prob(torch.stack([-x[:, 0], x[:, 1]], -1))

    def entropy(self):
        return math.log(8), 0.0


TARGETS = {"board_odd": OddBoard()}


def target_named(name):
    return TARGETS[name] if name in TARGETS else get_target(name)


PAPER_KNOTS = nsf_core.knots


@contextlib.contextmanager
def patched(changes):
    """nsf.nsf's module globals set to ``changes`` ("knots": "exp" for ``_exp_knots``) inside."""
    changes = {k: (_exp_knots if v == "exp" else v) for k, v in changes.items()}
    old = {k: getattr(nsf_core, k) for k in changes}
    for k, v in changes.items():
        setattr(nsf_core, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(nsf_core, k, v)


def _exp_knots(params, bound=5.0):
    """nsf.knots with zuko's slopes: exp of the soft-bounded raw value (1 at raw 0), instead of
    the paper's softplus (0.69 at raw 0); bins unchanged."""
    K = (params.shape[-1] + 1) // 3
    xk, yk, _ = PAPER_KNOTS(params, bound)
    raw = soft_bound(params[..., 2 * K :], -math.log(nsf_core.MIN_DERIVATIVE))
    return xk, yk, torch.nn.functional.pad(raw.exp(), (1, 1), value=1.0)


# one change of ours each: (builder, the nsf.nsf globals to set while it trains and is scored)
VARIANTS = {
    "ours, output layer at PyTorch's default": (
        lambda: nsf_output_scaled(ours("NSF-AR", 2), DEFAULT_OUTPUT),
        {},
    ),
    "ours, slopes 1 at the start (output x 0.1 kept)": (
        lambda: nsf_started(derivative_offset=SLOPE_SHIFT),
        {},
    ),
    "ours, B = 3": (lambda: NSF(2, 5, HIDDEN, bins=8, bound=3.0), {}),
    "ours, B = 10": (lambda: NSF(2, 5, HIDDEN, bins=8, bound=10.0), {}),
    "ours, min width and slope 1e-6": (
        lambda: ours("NSF-AR", 2),
        {"MIN_WIDTH": 1e-6, "MIN_DERIVATIVE": 1e-6},
    ),
    "ours, no soft bounds": (
        lambda: ours("NSF-AR", 2),
        {"LOGIT_BOUND": math.inf, "DERIVATIVE_BOUND": math.inf},
    ),
    "ours, slopes exp (zuko's)": (lambda: ours("NSF-AR", 2), {"knots": "exp"}),
}


def zuko_bound(bound):
    """zuko's NSF-AR (its exp slopes, its start) with the spline on [-bound, bound]."""
    from functools import partial

    import zuko
    from zuko.transforms import MonotonicRQSTransform

    spline = partial(MonotonicRQSTransform, bound=bound, slope=1e-3)
    shapes = [(8,), (8,), (7,)]  # zuko.flows.NSF's, bins = 8
    flow = zuko.flows.MAF(2, transforms=5, hidden_features=HIDDEN, univariate=spline, shapes=shapes)
    return PeerFlow("zuko", flow)


TASKS = ("checker", "board_odd", "rings", "gauss8")  # the table's order of columns
MODELS = {
    "ours": lambda: ours("NSF-AR", 2),
    "zuko": lambda: PeerFlow("zuko", zuko_flow("NSF-AR", 2, HIDDEN)),
    "nflows": lambda: PeerFlow("nflows", _nflows("NSF-AR", 2, HIDDEN)),
    "zuko, B = 3": lambda: zuko_bound(3.0),
}


def main(argv=None):
    parser = script_parser(__doc__, "benchmarks.board")
    parser.add_argument("--models", nargs="+", default=["ours", "zuko", "nflows"])
    parser.add_argument("--targets", nargs="+", default=["checker"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args(argv)
    rows = {**MODELS, **{label: build for label, (build, _) in VARIANTS.items()}}
    unknown = [m for m in args.models if m not in rows]
    if unknown:
        parser.error(f"unknown models {unknown}; expected some of {list(rows)}")
    for name in args.targets:
        try:
            target_named(name)
        except ValueError as error:
            parser.error(str(error))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "board.json")
    results = load(path)
    torch.set_num_threads(1)
    for name in [] if args.report else args.targets:
        target = target_named(name)
        for model in args.models:
            for seed in args.seeds:
                key = dict(task=name, model=model, seed=seed, steps=args.steps)
                old = [r for r in results["records"] if all(r[k] == v for k, v in key.items())]
                if old and not args.fresh:
                    continue
                results["records"] = [r for r in results["records"] if r not in old]
                torch.manual_seed(seed)
                with patched(VARIANTS.get(model, (None, {}))[1]):
                    flow = rows[model]()
                    record = dict(key, params=count_parameters(flow))
                    record["train_seconds"] = plain_fit(flow, target, args.steps)
                    record.update(nll_gap(flow, target, n=100_000))
                results["records"].append(record)
                save(results, path)
                print(
                    f"{name} {model} seed {seed} ({record['params']} params): gap "
                    f"{record['gap']:.4f} ({record['train_seconds']:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    table = report(results)
    with open(os.path.join(args.out, "board.md"), "w") as f:
        f.write(table + "\n")
    if os.path.abspath(args.out) == RESULTS:  # the committed results: the README's table too
        update_readme(table, README, README_BEGIN, README_END)
    print(table)


def report(results):
    """A row per model (and number of steps where not 1500), a column per target: the gap test NLL
    - entropy in nats, mean +- sd over the seeds run (n given where it is not 3)."""
    tasks, models = [], []
    for r in results["records"]:
        tasks += [r["task"]] if r["task"] not in tasks else []
        models += [(r["model"], r["steps"])] if (r["model"], r["steps"]) not in models else []
    order = [*MODELS, *VARIANTS]  # the libraries first, then the variants of ours
    models.sort(key=lambda row: (order.index(row[0]) if row[0] in order else len(order), row[1]))
    tasks.sort(key=lambda t: TASKS.index(t) if t in TASKS else len(TASKS))
    lines = ["| model | params | " + " | ".join(tasks) + " |", "|---|---|" + "---|" * len(tasks)]
    for model, steps in models:
        mine = [r for r in results["records"] if (r["model"], r["steps"]) == (model, steps)]
        cells = []
        for task in tasks:
            gaps = [r["gap"] for r in mine if r["task"] == task]
            cells.append(fmt(gaps) + (f" (n={len(gaps)})" if gaps and len(gaps) != 3 else ""))
        label = model + ("" if steps == 1500 else f", {steps} steps")
        lines.append(f"| {label} | {mine[0]['params']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
