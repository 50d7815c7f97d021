"""IAF experiments: reverse KL on 2-D energies, the FlowTorch forward-KL Gaussian, and sampling vs
density cost.

    python -m iaf                      # all three (a few minutes on 2 cores)
    python -m iaf --quick              # seconds (also: FLOWS_FAST=1)
    python -m iaf --example energies   # or gauss, or cost

Every number is printed beside its ceiling: KL(q || p) >= 0 with log Z from quadrature; test NLL
minus the exact entropy of N([5, 5], 0.5 I); wall-clock seconds for sampling against density at
D = 2, 16, 64.
"""

import os
import time

import torch

from common.bench import seconds
from common.cli import demo_parser, fit, parse_demo_args, positive, positive_float, run
from common.metrics import count_parameters, nll_gap, reverse_kl
from common.plot import flow_log_prob, plot_loss, plt, save_figure, show_density
from common.runtime import seed_everything
from common.targets import ENERGIES, get_target
from common.train import train_forward_kl, train_reverse_kl

from .iaf import IAF


def energies(args):
    """Reverse KL (Rezende & Mohamed 2015, Sec. 6.1) on U1-U4 and the sine ring: what IAF is built
    for."""
    steps, n_eval = args.steps, args.n_eval
    anneal = f", beta_t = min(1, 0.01 + t / {args.anneal})" if args.anneal else ""
    print(
        f"\n== Reverse KL: IAF(2, transforms=5, hidden=(64, 64)), {steps} steps, batch 256, Adam "
        f"1e-3{anneal} =="
    )
    print(
        "KL(q||p) = E_q[log q + U] + log Z >= 0, log Z by quadrature; U2-U4 confined to |z1| <= 4 "
        "by "
        "0.5 (max(|z1| - 4, 0) / 0.1)^2"
    )
    fig, axes = plt.subplots(2, len(ENERGIES), figsize=(2.8 * len(ENERGIES), 5.8))
    rows = []
    for j, name in enumerate(ENERGIES):
        seed_everything(args.seed)
        energy = get_target(name)
        flow = IAF(2).to(args.device)
        history = fit(
            args, f"energy_{name}", train_reverse_kl, flow, energy, steps, anneal=args.anneal
        )
        result = reverse_kl(flow, energy, n=n_eval)
        rows.append((name, result["log_z"], result["kl"], result["stderr"], history["seconds"]))
        # one colour scale per column: the target's, so the two panels can be compared
        top = show_density(axes[0, j], energy.log_prob, energy.bounds, f"{name}: exp(-U) / Z").max()
        show_density(
            axes[1, j],
            flow_log_prob(flow),
            energy.bounds,
            f"IAF, KL = {result['kl']:.3f}",
            vmax=top.item(),
            colorbar=True,
        )
    print(
        f"{'energy':<8}{'log Z':>9}{'KL(q||p)':>11}{'stderr':>9}{'train s':>9}   ceiling: KL = 0 "
        f"({count_parameters(IAF(2))} parameters)"
    )
    for name, log_z, kl, err, sec in rows:
        print(f"{name:<8}{log_z:>9.4f}{kl:>11.4f}{err:>9.4f}{sec:>9.1f}")
    print(
        "(reverse KL is mode-seeking: a q that covers one of U1's two lobes has KL >= log 2 = "
        "0.693)"
    )
    fig.tight_layout()
    path = os.path.join(args.out, "energies.png")
    save_figure(fig, path)
    plt.close(fig)
    print(
        f"figure: {path} (top: true densities, bottom: learned q, whose log q costs D passes per "
        "step)"
    )


def gauss(args):
    """The FlowTorch tutorial: one affine autoregressive layer learns N([5, 5], 0.5 I) from
    samples."""
    steps = args.gauss_steps
    print(
        "\n== Forward KL: one IAF step (after Alg. 1's diagonal start) on N([5, 5], 0.5 I), "
        f"{steps} steps, "
        f"batch 1000, Adam {args.gauss_lr} =="
    )
    seed_everything(args.seed)
    target = get_target("gauss")
    flow = IAF(2, transforms=1).to(args.device)
    # keep the weights with the best validation NLL (Adam's last steps are noisy)
    val = target.sample(10_000)
    history = fit(
        args, "gauss", train_forward_kl, flow, target, steps, 1000, args.gauss_lr, val=val
    )
    r = nll_gap(flow, target, n=args.gauss_n_test)
    print(
        f"test NLL {r['nll']:.4f}   exact entropy {r['entropy']:.4f}   gap {r['gap']:+.4f} +- "
        f"{r['stderr']:.4f} "
        f"nats (ceiling: gap = 0){'   [--quick: not converged]' if args.quick else ''}"
    )
    with torch.no_grad():
        x = flow.sample(100_000).double().cpu()
    mean, cov = x.mean(0), torch.cov(x.T)
    print(f"mean        learned [{mean[0]:.3f}, {mean[1]:.3f}]   true [5.000, 5.000]")
    print(
        f"covariance  learned [[{cov[0, 0]:.3f}, {cov[0, 1]:.3f}], [{cov[1, 0]:.3f}, "
        f"{cov[1, 1]:.3f}]]   "
        "true [[0.500, 0.000], [0.000, 0.500]]   (from 100k samples, one pass each)"
    )
    path = os.path.join(args.out, "gauss_loss.png")
    plt.close(
        plot_loss(
            history, path, ylabel="NLL (nats)", reference=r["entropy"], reference_label="entropy"
        )
    )
    print(f"figure: {path}")


def cost(args):
    """Seconds to draw n samples with their log q (one pass per step) against log_prob of n new
    points (D passes per step)."""
    n, dims = args.cost_n, args.cost_dims
    print(
        f"\n== Cost: IAF(D, transforms=5, hidden=(64, 64)), {n} points, no gradients, "
        f"{torch.get_num_threads()} threads =="
    )
    print(
        f"{'D':>4}{'sample + log q (s)':>20}{'log_prob new (s)':>18}{'ratio':>8}   (expected ratio "
        "~ D)"
    )
    rows = []
    for d in dims:
        seed_everything(args.seed)
        flow = IAF(d).to(args.device).eval()
        x = torch.randn(n, d, device=args.device)
        t_sample = seconds(lambda flow=flow: flow.rsample_and_log_prob(n), repeat=3)
        t_density = seconds(lambda flow=flow, x=x: flow.log_prob(x), repeat=1 if d > 16 else 3)
        rows.append((d, t_sample, t_density))
        print(f"{d:>4}{t_sample:>20.3f}{t_density:>18.3f}{t_density / t_sample:>8.1f}")
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ds = [r[0] for r in rows]
    ax.plot(ds, [r[1] for r in rows], "o-", label="sample + log q (1 pass / step)")
    ax.plot(ds, [r[2] for r in rows], "s-", label="log_prob of new points (D passes / step)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(ds, [str(d) for d in ds])  # the measured D only, no minor tick labels
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.yaxis.set_minor_formatter(plt.NullFormatter())
    (
        ax.set_xlabel("D"),
        ax.set_ylabel(f"seconds for {n} points"),
        ax.set_title("IAF: sampling vs density"),
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(args.out, "cost.png")
    save_figure(fig, path)
    plt.close(fig)
    print(f"figure: {path}")


FULL = {
    "steps": 2000,
    "n_eval": 100_000,
    "gauss_steps": 3000,
    "gauss_n_test": 100_000,
    "cost_n": 100_000,
    "cost_dims": (2, 16, 64),
}
QUICK = {
    "steps": 200,
    "n_eval": 10_000,
    "gauss_steps": 300,
    "gauss_n_test": 20_000,
    "cost_n": 10_000,
    "cost_dims": (2, 16),
}


def parse_args(argv=None):
    parser = demo_parser(__doc__, "iaf")
    parser.add_argument("--example", choices=("all", "energies", "gauss", "cost"), default="all")
    parser.add_argument(
        "--steps", type=positive, help="reverse-KL training steps per energy (default 2000)"
    )
    parser.add_argument(
        "--anneal", type=positive, help="reverse KL: beta_t = min(1, 0.01 + t / ANNEAL)"
    )
    parser.add_argument(
        "--gauss-steps", type=positive, help="forward-KL steps for the Gaussian (default 3000)"
    )
    parser.add_argument(
        "--gauss-lr", type=positive_float, default=5e-3, help="Adam learning rate for the Gaussian"
    )
    return parse_demo_args(parser, argv, FULL, QUICK)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    for name, example in (("energies", energies), ("gauss", gauss), ("cost", cost)):
        if args.example in ("all", name):
            example(args)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    run(main)
