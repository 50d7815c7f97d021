"""One paper's flow against zuko's at equal architecture: speed only (a script, not a test).

    python -m benchmarks.speed realnvp            # 8 affine couplings, MLP 2 x 64; ms per step
    python -m benchmarks.speed maf --sampling     # 5 MAF layers, MADE 2 x 64; log_prob, sampling
    python -m benchmarks.speed nsf --features 2 8 # 5 autoregressive RQ splines, 8 bins, MADE 2 x 64
    python -m benchmarks.speed nsf-c              # 5 RQ couplings against zuko's NSF(passes=2)
    python -m benchmarks.speed nsf --actnorm      # NSF-AR with ActNorm first (zuko's without)
    python -m benchmarks.speed iaf                # IAF, general step, against zuko's MAF run
                                                  # backwards: a reverse-KL step (sample + log q)

The architectures are those of ``benchmarks.models`` (``ours`` and ``zuko_flow``). A training step
is log_prob + backward + Adam on a batch of 512 (drawing the batch not timed), the median of
``--steps`` after a warm-up; ``--sampling`` adds seconds for log_prob of ``--points`` new points
and for drawing as many samples. One thread per process. The two flows are
timed in turn for ``--rounds`` rounds and each keeps its best round, so that load from other
processes hits both alike. Ratio = ours / zuko: below 1 means this repository is faster.
``iaf`` times the step reverse KL takes (rsample_and_log_prob of 512 + backward + Adam) for
``IAF(..., step="affine")`` and for zuko's inverted MAF, the same 5 x MADE 2 x 64; ``--step gated``
times the paper's gated step instead. ``--actnorm`` puts ``common.layers.ActNorm`` in front of our
NSF (20 parameters more in 10-D; zuko's has none). ``python -m benchmarks --only cost`` times every
family and peer.

Several papers in one command (``python -m benchmarks.speed maf realnvp iaf nsf``) are timed one
after the other in one process. ``--cpu-time`` times each step by this thread's CPU time instead
of the wall clock: on a machine shared with other jobs, time spent waiting for a core is left out.
``--adam fused`` (or ``foreach``) steps every flow's Adam with that implementation of torch's.
``--compile`` adds our flow with its transform run through ``torch.compile`` (a copy, same weights):
the seconds of its first 11 steps (the compilation) are printed, then its ms per step like the
others'.
"""

import argparse
import copy
import time

import torch

from common.bench import ms_per_training_step, seconds
from common.cli import positive, run
from common.flows import Flow
from common.metrics import count_parameters
from tools.cli import script_parser

from .models import HIDDEN, available, ours, zuko_flow, zuko_inverted

FAMILY = {"realnvp": "coupling", "maf": "MAF", "nsf": "NSF-AR", "nsf-c": "NSF-C", "iaf": "MAF"}


def models(paper, features, actnorm=False, step="affine"):
    """(ours, zuko's or None) at the architectures of ``benchmarks.models`` (the one list of them);
    zuko's flows are called with no context. For ``iaf`` zuko's is its MAF run backwards."""
    family = FAMILY[paper]
    if paper == "iaf":
        peer = zuko_inverted("MAF", features) if available("zuko") else None
        return ours("IAF", features, step=step), peer
    peer = zuko_flow(family, features, HIDDEN) if available("zuko") else None
    if actnorm:  # ActNorm takes its statistics from the first batch it sees in training mode
        flow = ours(family, features, actnorm=True)
        flow.log_prob(torch.randn(512, features))
        return flow, peer
    return ours(family, features), peer


def compiled(flow):
    """A copy of our ``flow`` whose transform runs through ``torch.compile``, both directions (one
    graph for all its layers); the checks of ``Flow.log_prob`` stay outside it."""
    flow = copy.deepcopy(flow)
    transform = flow.transform
    transform.forward = torch.compile(transform.forward)
    transform.inverse = torch.compile(transform.inverse)
    return flow


def measure(flow, features, args):
    """{quantity: value} for one flow.

    The quantities: ms per training step, and seconds for log_prob and sampling if asked.
    """
    ours = isinstance(flow, Flow)  # zuko's flows are distributions built by calling the module
    log_prob = flow.log_prob if ours else lambda x: flow().log_prob(x)
    sample = flow.sample if ours else lambda n: flow().sample((n,))

    def batch():
        return torch.randn(512, features)

    loss_density = log_prob
    if args.paper == "iaf":  # reverse KL's step: log q of q's own samples, drawn in one pass

        def loss_density(_):
            if ours:
                return flow.rsample_and_log_prob(512)[1]
            return flow().rsample_and_log_prob((512,))[1]

    result = {
        "train ms/step": ms_per_training_step(
            loss_density,
            flow.parameters(),
            batch,
            steps=args.steps,
            clock=args.clock,
            adam={} if args.adam == "for-loop" else {args.adam: True},
        )
    }
    if args.sampling:
        data = torch.randn(args.points, features)
        result["log_prob s"] = seconds(lambda: log_prob(data), repeat=1)
        result["sample s"] = seconds(lambda: sample(args.points), repeat=1)
    return result


def main(argv=None):
    parser = script_parser(__doc__, "benchmarks.speed")
    parser.add_argument("papers", nargs="+", choices=tuple(FAMILY), metavar="paper")
    parser.add_argument(
        "--features",
        type=positive,
        nargs="+",
        default=[2, 8],
        help="data dimensions D (default 2 8)",
    )
    parser.add_argument(
        "--steps", type=positive, default=100, help="timed training steps per round (median kept)"
    )
    parser.add_argument(
        "--rounds", type=positive, default=3, help="rounds of alternating measurements (best kept)"
    )
    parser.add_argument(
        "--sampling", action="store_true", help="also time log_prob and sampling of --points"
    )
    parser.add_argument(
        "--points", type=positive, default=100_000, help="points for --sampling (default 100k)"
    )
    parser.add_argument(
        "--actnorm", action="store_true", help="nsf, nsf-c: our flow with ActNorm first"
    )
    parser.add_argument(
        "--step",
        choices=("affine", "gated"),
        default="affine",
        help="iaf: the general step (Eq. 10, default) or the gated one (Eq. 14)",
    )
    parser.add_argument(
        "--cpu-time",
        dest="clock",
        action="store_const",
        const=time.thread_time,
        default=time.perf_counter,
        help="time steps by this thread's CPU time, not the wall clock (a shared machine)",
    )
    parser.add_argument(
        "--adam",
        choices=("for-loop", "foreach", "fused"),
        default="for-loop",
        help="Adam's implementation for every flow (default for-loop: torch's default on CPU)",
    )
    parser.add_argument(
        "--compile", action="store_true", help="also time our flow with its transform compiled"
    )
    args = parser.parse_args(argv)
    if args.actnorm and set(args.papers) - {"nsf", "nsf-c"}:
        parser.error(f"--actnorm is for nsf and nsf-c, not {' '.join(args.papers)}")
    if args.sampling and "iaf" in args.papers:
        parser.error("--sampling is not measured for iaf (its training step already samples)")
    if args.sampling and args.compile:
        parser.error("--compile times training steps only, not --sampling")
    torch.set_num_threads(1)
    for paper in args.papers:
        args.paper = paper
        table(args)


def table(args):
    """Print the table of ``args.paper``: every D, every quantity, ours against zuko's."""
    clock = "thread CPU time" if args.clock is time.thread_time else "wall clock"
    print(
        f"{args.paper}: torch {torch.__version__}, 1 thread, batch 512, "
        f"{args.steps} steps x {args.rounds} rounds, {clock}, Adam {args.adam}"
    )
    names = ["ours", "zuko"] + (["compiled"] if args.compile else [])
    ratios = [f"{name}/zuko" for name in names if name != "zuko"]
    print(f"{'D':>3} {'params':>7} {'quantity':>14}" + "".join(f"{n:>14}" for n in names + ratios))
    for features in args.features:
        torch.manual_seed(0)
        ours, peer = models(args.paper, features, args.actnorm, args.step)
        flows = {"ours": ours, "zuko": peer}
        if args.compile:
            flows["compiled"] = compiled(ours)
            first = argparse.Namespace(**{**vars(args), "steps": 1})  # 10 warm-up steps + 1
            wall, cpu = time.perf_counter(), time.process_time()
            measure(flows["compiled"], features, first)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(
                f"{features:>3} compiled: first 11 steps (compiling) {wall:.1f} s, {cpu:.1f} s CPU"
            )
        flows = {name: flow for name, flow in flows.items() if flow is not None}
        best = {name: {} for name in flows}
        for _ in range(args.rounds):
            for name, flow in flows.items():
                for key, value in measure(flow, features, args).items():
                    best[name][key] = min(value, best[name].get(key, float("inf")))
        params = count_parameters(ours)
        for i, key in enumerate(best["ours"]):
            values = [best.get(name, {}).get(key) for name in names]
            theirs = best.get("zuko", {}).get(key)
            ratio = [
                v / theirs if v and theirs else None
                for v, n in zip(values, names, strict=True)
                if n != "zuko"
            ]
            cells = "".join(f"{v:14.3f}" if v else f"{'-':>14}" for v in values + ratio)
            head = f"{features:>3} {params:>7}" if i == 0 else " " * 11
            print(f"{head} {key:>14}{cells}", flush=True)


if __name__ == "__main__":
    run(main)
