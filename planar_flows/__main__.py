"""Figure 3 of Rezende & Mohamed (2015): planar and radial flows fitted to U1-U4 by reverse KL.

    python -m planar_flows                  # both kinds, U1-U4, K = 2, 8, 32 (minutes on 2 cores)
    python -m planar_flows --quick          # the same in seconds (or FLOWS_FAST=1)
    python -m planar_flows --kind planar --targets U1 U3 --steps 3000

Each flow minimises the free energy E_q[log q(x) + beta_t U(x)] with beta_t = min(1, 0.01 + t / T)
(Sec. 6.1), Adam, fresh reparameterised samples every step. It prints KL(q || p) = E_q[log q + U] +
log Z in nats (0 is a perfect fit), log Z from grid quadrature, the expectation from n fresh samples
of q with its standard error, and writes one figure per kind: the true densities and the learned
ones, evaluated on a grid through ``log_prob`` (the layers' 1-D inverses).
"""

import os
import time

import torch

from common.cli import (
    demo_parser,
    fit,
    parse_demo_args,
    positive,
    positive_float,
    run,
)
from common.metrics import reverse_kl
from common.plot import flow_log_prob, plt, save_figure, show_density
from common.runtime import seed_everything
from common.targets import get_target
from common.train import train_reverse_kl

from .planar import PlanarFlow

ENERGIES = ("U1", "U2", "U3", "U4")


FULL = {"steps": 1000, "n_eval": 100_000, "grid": 200}
QUICK = {"steps": 60, "n_eval": 5_000, "grid": 60}


def parse_args(argv=None):
    parser = demo_parser(__doc__, "planar_flows")
    parser.add_argument(
        "--kind", nargs="+", default=["planar", "radial"], choices=["planar", "radial"]
    )
    parser.add_argument("--targets", nargs="+", default=list(ENERGIES), choices=ENERGIES)
    parser.add_argument("--K", nargs="+", type=positive, default=[2, 8, 32], help="flow lengths")
    parser.add_argument("--steps", type=positive, help="Adam steps per flow (default 1000)")
    parser.add_argument("--lr", type=positive_float, default=1e-2)
    parser.add_argument("--batch", type=positive, default=512, help="samples of q per step")
    parser.add_argument(
        "--anneal", type=positive_float, default=0.5, help="T as a fraction of the steps"
    )
    parser.add_argument(
        "--n-eval", type=positive, help="samples for the KL estimate (default 100,000)"
    )
    return parse_demo_args(parser, argv, FULL, QUICK)


def fit_one(kind, energy, K, args):
    """Train one flow of length K on one energy; return it, its KL estimate, and how far
    ``log_prob`` (the layers' 1-D inverses) is from the log-density that sampling gives, at the
    flow's own samples."""
    seed_everything(args.seed)
    flow = PlanarFlow(2, transforms=K, kind=kind).to(args.device)
    fit(
        args,
        f"{kind}_{energy.name}_K{K}",
        train_reverse_kl,
        flow,
        energy,
        args.steps,
        args.batch,
        args.lr,
        anneal=max(1, int(args.anneal * args.steps)),
    )
    with torch.no_grad():
        x, log_q = flow.rsample_and_log_prob(10_000)
        inverse_error = (flow.log_prob(x) - log_q).abs().max().item()
    return flow, reverse_kl(flow, energy, n=args.n_eval), inverse_error


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    energies = {name: get_target(name) for name in args.targets}
    print(
        f"KL(q || p) in nats, mean ± standard error over n = {args.n_eval:,} samples of q; log Z "
        "by quadrature."
    )
    print(
        f"{args.steps} Adam steps per flow, lr {args.lr}, batch {args.batch}, "
        f"beta_t = min(1, 0.01 + t / {max(1, int(args.anneal * args.steps))}).\n"
    )
    header = "| kind | target | log Z | " + " | ".join(f"K = {K}" for K in args.K) + " |"
    lines = [header, "|" + "---|" * (3 + len(args.K))]
    print(header + "\n" + lines[1], flush=True)
    worst_inverse = 0.0
    for kind in args.kind:
        fig, axes = plt.subplots(
            len(energies),
            1 + len(args.K),
            figsize=(2.4 * (1 + len(args.K)), 2.4 * len(energies)),
            squeeze=False,
        )
        for row, (name, energy) in enumerate(energies.items()):
            # the row's colour scale: every panel of a row is compared with the energy
            top = show_density(
                axes[row, 0], energy.log_prob, energy.bounds, f"{name}: exp(-U) / Z", args.grid
            ).max()
            cells = []
            for col, K in enumerate(args.K, start=1):
                flow, kl, inverse_error = fit_one(kind, energy, K, args)
                worst_inverse = max(worst_inverse, inverse_error)
                cells.append(f"{kl['kl']:.3f} ± {kl['stderr']:.3f}")
                show_density(
                    axes[row, col],
                    flow_log_prob(flow),
                    energy.bounds,
                    f"{kind} K = {K}\nKL {kl['kl']:.3f}",
                    args.grid,
                    vmax=top.item(),
                    colorbar=col == len(args.K),
                )
            line = f"| {kind} | {name} | {energy.log_z():.4f} | " + " | ".join(cells) + " |"
            lines.append(line)
            print(line, flush=True)
        fig.tight_layout()
        path = os.path.join(args.out, f"figure3_{kind}.png")
        save_figure(fig, path)
        plt.close(fig)
        print(f"wrote {path}")
    print(
        f"1-D inverses: max |log_prob(x) - log q(x)| = {worst_inverse:.1e} over 10,000 samples of "
        "every flow "
        f"({next(flow.parameters()).dtype})"
    )
    with open(os.path.join(args.out, "kl_table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(
        f"total {time.perf_counter() - start:.0f} s; table in "
        f"{os.path.join(args.out, 'kl_table.md')}"
    )


if __name__ == "__main__":
    run(main)
