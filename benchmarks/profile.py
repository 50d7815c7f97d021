"""Where one training step spends its time: torch.profiler on ours and zuko's (a script).

    python -m benchmarks.profile                       # maf realnvp iaf, D = 2, to the terminal
    python -m benchmarks.profile maf --features 8 --out benchmarks/results/profiles --tag after

One thread, batch 512, the architectures of ``benchmarks.speed`` (``benchmarks.models``). The step
is that of ``benchmarks.speed``: forward KL for maf / realnvp / nsf (loss = -log_prob(x).mean(),
backward, Adam), reverse KL for iaf (rsample_and_log_prob of 512, backward, Adam). After
``--warmup`` steps, ``--steps`` steps are recorded; the table is the operators sorted by self CPU
time (``--rows`` of them), each total divided by ``--steps``. With ``--out`` each table goes to
``<out>/<paper>_D<D>_<ours|zuko>_<tag>.txt`` and one summary line per flow is printed.
"""

import os
import time

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from common.cli import check_out, positive, run
from tools.cli import script_parser

from .speed import models


def step_function(flow, paper, features):
    """One training step of ``flow`` as a function of no arguments (its batch drawn inside)."""
    zuko = not hasattr(flow, "rsample_and_log_prob")  # zuko's flows are distributions when called
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3)

    def loss():
        if paper == "iaf":  # reverse KL: log q of q's own samples
            return (flow() if zuko else flow).rsample_and_log_prob(*([(512,)] if zuko else [512]))[
                1
            ]
        x = torch.randn(512, features)
        return (flow().log_prob(x) if zuko else flow.log_prob(x)).neg()

    def step():  # the three phases are named in the profile (record_function)
        with record_function("phase: forward (loss)"):
            value = loss().mean()
        with record_function("phase: backward"):
            optimizer.zero_grad()
            value.backward()
        with record_function("phase: Adam step"):
            optimizer.step()

    return step


def profile_table(step, steps, warmup, rows):
    """(table text, ms per step with the profiler on, ms per step without it)."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    plain = 1000 * (time.perf_counter() - start) / steps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        profiled = 1000 * (time.perf_counter() - start) / steps
    events = prof.key_averages()
    table = events.table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40)
    phases = {
        e.key[7:]: e.cpu_time_total / 1000 / steps for e in events if e.key.startswith("phase")
    }
    count = sum(e.count for e in events if e.key.startswith("aten::")) / steps
    return table, plain, profiled, phases, count


def main(argv=None):
    parser = script_parser(__doc__, "benchmarks.profile")
    parser.add_argument(
        "papers",
        nargs="*",
        default=["maf", "realnvp", "iaf"],
        choices=("maf", "realnvp", "iaf", "nsf", "nsf-c"),
    )
    parser.add_argument("--features", type=positive, nargs="+", default=[2], help="D (default 2)")
    parser.add_argument("--steps", type=positive, default=50, help="profiled steps (default 50)")
    parser.add_argument("--warmup", type=positive, default=20, help="steps before (default 20)")
    parser.add_argument("--rows", type=positive, default=25, help="operators shown (default 25)")
    parser.add_argument("--out", help="directory for the tables (default: print them)")
    parser.add_argument("--tag", default="now", help="file name suffix with --out (default now)")
    args = parser.parse_args(argv)
    if args.out:
        check_out(parser, args.out)
    torch.set_num_threads(1)
    for paper in args.papers:
        for features in args.features:
            torch.manual_seed(0)
            ours, zuko = models(paper, features, step="affine")
            for name, flow in (("ours", ours), ("zuko", zuko)):
                if flow is None:
                    continue
                step = step_function(flow, paper, features)
                table, plain, profiled, phases, ops = profile_table(
                    step, args.steps, args.warmup, args.rows
                )
                split = ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
                head = (
                    f"{paper} D={features} {name}: torch {torch.__version__}, 1 thread, batch 512: "
                    f"{plain:.2f} ms/step unprofiled; profiled {profiled:.2f} ms/step = {split}; "
                    f"{ops:.0f} aten calls per step (totals below: {args.steps} steps)"
                )
                if args.out:
                    path = os.path.join(args.out, f"{paper}_D{features}_{name}_{args.tag}.txt")
                    with open(path, "w") as f:
                        f.write(head + "\n" + table + "\n")
                    print(head, flush=True)
                else:
                    print(head + "\n" + table, flush=True)


if __name__ == "__main__":
    run(main)
