"""Where one training step spends its time: torch.profiler on ours and zuko's (a script).

    python -m benchmarks.profile                       # maf realnvp iaf, D = 2, to the terminal
    python -m benchmarks.profile maf --features 8 --out benchmarks/results/profiles --tag after

One thread, batch 512, the architectures of ``benchmarks.speed`` (``benchmarks.models``). The step
is that of ``benchmarks.speed``: forward KL for maf / realnvp / nsf (loss = -log_prob(x).mean(),
backward, Adam), reverse KL for iaf (rsample_and_log_prob of 512, backward, Adam). After
``--warmup`` steps, ``--steps`` steps are recorded; the table is the operators sorted by self CPU
time (``--rows`` of them), each total divided by ``--steps``. With ``--out`` each table goes to
``<out>/<paper>_D<D>_<ours|zuko>_<tag>.txt`` and one summary line per flow is printed.

``--floor`` (maf, realnvp, iaf) times instead, by thread CPU time in ``--rounds`` alternating
rounds (best kept), ours, zuko's and the floor of an eager implementation: our flow's very weights
and arithmetic written as one function of ``F.linear`` calls, with no module, no check, no
``Flow``: what is left is the work both libraries must do (matrix products, ReLU, the affine
maps, autograd, Adam), and floor / zuko is as low as ours / zuko can go in eager PyTorch.
"""

import math
import os
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile, record_function

from common.bench import ms_per_training_step
from common.cli import check_out, positive, run
from common.flows import Flow
from tools.cli import script_parser

from .speed import models


def step_function(flow, paper, features):
    """One training step of ``flow`` as a function of no arguments (its batch drawn inside)."""
    zuko = not isinstance(flow, Flow)  # zuko's flows are distributions when called
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3)

    def loss():
        if paper == "iaf":  # reverse KL's step: log q of q's own samples, as benchmarks.speed
            draw = flow().rsample_and_log_prob((512,)) if zuko else flow.rsample_and_log_prob(512)
            return -draw[1]
        x = torch.randn(512, features)
        return -(flow().log_prob(x) if zuko else flow.log_prob(x))

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


class Floor:
    """Our flow's arithmetic on its weights, as one function per direction: no modules, no checks.
    maf, realnvp: ``log_prob``; iaf (affine steps): ``rsample_and_log_prob``."""

    def __init__(self, paper, flow):
        self.paper, self.flow, self.features = paper, flow, flow.features

    def _net(self, net, h):  # an MLP or a MADE's net, layer by layer
        for m in net:
            if isinstance(m, torch.nn.ReLU):
                h = F.relu(h)
            else:
                h = F.linear(h, m.weight * m.mask if hasattr(m, "mask") else m.weight, m.bias)
        return h

    def log_prob(self, x):
        ladj = 0
        for t in self.flow.transform.transforms:
            if self.paper == "maf":
                mu, alpha = self._net(t.made.net, x).view(-1, self.features, 2).unbind(-1)
                alpha = alpha / (1 + alpha.abs() / math.log(1000))
                x, ladj = (x - mu) * torch.exp(-alpha), ladj - alpha.sum(-1)
            else:  # realnvp's coupling
                s, shift = self._net(t.net, x.index_select(1, t.kept)).chunk(2, 1)
                s = t.free * (t.scale * torch.tanh(s))
                x, ladj = x * torch.exp(s) + t.free * shift, ladj + s.sum(1)
        return -0.5 * (x * x).sum(-1) - 0.5 * self.features * math.log(2 * math.pi) + ladj

    def rsample_and_log_prob(self, n):
        z = torch.randn(n, self.features)
        log_q = -0.5 * (z * z).sum(-1) - 0.5 * self.features * math.log(2 * math.pi)
        start, *steps = self.flow.transform.transform.transforms
        mu, log_sigma = start.shift_and_log_scale.chunk(2)
        x, log_q = mu + log_sigma.exp() * z, log_q - log_sigma.sum()
        for t in steps:
            mu, s = self._net(t.made.net, x.clamp(-1e15, 1e15)).view(n, -1, 2).unbind(-1)
            s = s / (1 + s.abs() / math.log(1000))
            x, log_q = mu + s.exp() * x, log_q - s.sum(-1)
        return x, log_q

    def parameters(self):
        return self.flow.parameters()


def floor_table(args):
    """Print ours, zuko's and the floor's ms per training step (thread CPU time), with ratios."""
    print(
        f"thread CPU time, 1 thread, batch 512, median of {args.steps} steps, best of "
        f"{args.rounds} alternating rounds"
    )
    print(
        f"{'paper':>8} {'D':>3} {'ours':>8} {'floor':>8} {'zuko':>8} {'ours/zuko':>10} "
        f"{'floor/zuko':>10}"
    )
    for paper in args.papers:
        for features in args.features:
            torch.manual_seed(0)
            ours, zuko = models(paper, features, step="affine")
            flows = {"ours": ours, "floor": Floor(paper, ours), "zuko": zuko}
            best = {}
            for _ in range(args.rounds):
                for name, flow in flows.items():
                    if paper == "iaf":

                        def density(_, flow=flow, name=name):
                            distribution = flow() if name == "zuko" else flow
                            return distribution.rsample_and_log_prob(
                                (512,) if name == "zuko" else 512
                            )[1]
                    else:

                        def density(x, flow=flow, name=name):
                            return flow().log_prob(x) if name == "zuko" else flow.log_prob(x)

                    ms = ms_per_training_step(
                        density,
                        flow.parameters(),
                        lambda features=features: torch.randn(512, features),
                        steps=args.steps,
                        clock=time.thread_time,
                    )
                    best[name] = min(ms, best.get(name, math.inf))
            print(
                f"{paper:>8} {features:>3} {best['ours']:8.3f} {best['floor']:8.3f} "
                f"{best['zuko']:8.3f} {best['ours'] / best['zuko']:10.3f} "
                f"{best['floor'] / best['zuko']:10.3f}",
                flush=True,
            )


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
    parser.add_argument("--floor", action="store_true", help="time ours, zuko's and the floor")
    parser.add_argument("--rounds", type=positive, default=3, help="--floor: rounds (default 3)")
    args = parser.parse_args(argv)
    if args.floor:
        if set(args.papers) - {"maf", "realnvp", "iaf"}:
            parser.error("--floor is written for maf, realnvp and iaf")
        torch.set_num_threads(1)
        return floor_table(args)
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
