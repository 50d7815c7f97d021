"""Experiments of Durkan et al. (2019), Neural Spline Flows.

    python -m nsf                    # zuko's "train from energy": an inverted NSF, reverse KL
    python -m nsf --target checker   # maximum likelihood: NSF-AR and NSF-C side by side
    python -m nsf --data digits      # 8x8 digits: NSF-AR and NSF-C, test NLL and bits/dim
    python -m nsf --quick            # any of the above in seconds (also: FLOWS_FAST=1)

Every number is printed beside its ceiling: KL(q || p) >= 0 with log Z from quadrature; the test NLL
minus the exact entropy of the target (>= 0, it is KL(p || q)); bits/dim of the dequantised
17-level pixels. The spline-against-affine comparison at equal size needs MAF, another paper's
model: it is a row of the benchmark's density section (``python -m benchmarks --only density``).
"""

import os

import torch

from common import plot
from common.checks import recorded
from common.cli import demo_parser, dispatch, fit, parse_demo_args, positive, run
from common.data import dequantize, load_digits_split
from common.flows import Compose, Flow, Inverse
from common.layers import Logit
from common.metrics import count_parameters, dataset_nll, nll_gap, reverse_kl
from common.plot import plt, save_figure
from common.report import digits_banner, digits_row
from common.runtime import seed_everything
from common.targets import SAMPLE_TARGETS, get_target
from common.train import train_forward_kl, train_reverse_kl
from nsf import NSF


def energy(args):
    """zuko's tutorial "Train from energy": NSF(2, transforms=3, hidden (64, 64)) inverted so that
    sampling is its one-pass direction, trained by reverse KL on p(x) proportional to exp(-U(x)),
    -U(x) = sin(pi x1) - 2 (x1^2 + x2^2 - 2)^2, for 8 epochs of 256 steps (batch 256, Adam 1e-3).
    The loss E_q[log q + U] = KL(q || p) - log Z (the tutorial ends near -1.59)."""
    target = get_target("sine")
    nsf = NSF(2, transforms=3, hidden_features=(64, 64))
    # rsample_and_log_prob: one MADE pass per layer
    flow = Flow(Inverse(nsf.transform), features=2).to(args.device)
    epochs, steps = args.epochs, args.epoch_steps
    print(
        "reverse KL on the sine energy: inverted NSF-AR, 3 transforms, MADE 2 x 64, 8 bins, "
        f"bound 5 ({count_parameters(flow)} parameters); {epochs} x {steps} steps, batch 256, "
        "Adam 1e-3\n  loss = KL(q || p) - log Z per epoch, mean ± sd over its steps:"
    )
    history = fit(args, "sine", train_reverse_kl, flow, target, epochs * steps, 256, 1e-3)
    loss = torch.tensor(history["loss"]).view(epochs, steps)
    for epoch, row in enumerate(loss):
        print(f"  epoch {epoch}: loss {row.mean().item():.4f} ± {row.std().item():.4f}")
    result = reverse_kl(flow, target, n=args.n_test)
    print(
        f"  loss = KL - log Z; last epoch {loss[-1].mean().item():.4f} (zuko's tutorial: about "
        "-1.59)"
    )
    print(
        f"  KL(q || p) = {result['kl']:.4f} ± {result['stderr']:.4f} nats (ceiling 0), log Z = "
        f"{result['log_z']:.4f} by quadrature; {history['seconds']:.1f} s training"
    )
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    top = plot.show_density(axes[0], target.log_prob, target.bounds, "true density exp(-U) / Z")
    with torch.no_grad():
        x = flow.sample(args.n_test).cpu()
    lo, hi = target.bounds
    axes[1].hist2d(
        x[:, 0].numpy(), x[:, 1].numpy(), bins=120, range=[[lo, hi], [lo, hi]], cmap="viridis"
    )
    axes[1].set(title=f"{args.n_test} samples of q", aspect="equal", xticks=[], yticks=[])
    plot.show_density(
        axes[2],
        plot.flow_log_prob(flow),
        target.bounds,
        f"q, KL = {result['kl']:.3f}",
        vmax=top.max().item(),  # the true density's scale, so the two can be compared
        colorbar=True,
    )
    fig.tight_layout()
    save_figure(fig, os.path.join(args.out, "sine.png"))
    plt.close(fig)
    plot.plot_loss(
        history,
        os.path.join(args.out, "sine_loss.png"),
        "E_q[log q + U]",
        -result["log_z"],
        "-log Z",
    )
    print(f"  figures: {args.out}/sine.png, sine_loss.png")


@recorded
def digits_flow(transforms, hidden, coupling):
    """NSF on the logit of the dequantised pixels: Logit(0.05) is the first layer, so its Jacobian
    counts."""
    nsf = NSF(64, transforms, (hidden, hidden), coupling=coupling)
    return Flow(Compose(Logit(0.05), nsf.transform), features=64)


def on_target(args):
    """Maximum likelihood, fresh samples every step (batch 512, Adam 1e-3): NSF-AR and NSF-C with
    the same depth (5) and conditioner widths (2 x 64)."""
    target = get_target(args.target)
    entropy, err = target.entropy()
    print(
        f"target {target.name}: exact entropy H = {entropy:.4f} ± {err:.4f} nats; {args.steps} "
        "steps, batch 512"
    )
    print(f"  {'model':<42} {'params':>7}  {'test NLL (nats)':>17}  {'NLL - H':>8}  {'train s':>7}")
    models = {
        "NSF-AR: 5 x RQ spline (8 bins), MADE 2 x 64": ("nsf_ar", NSF(2, 5, (64, 64))),
        "NSF-C: 5 x RQ spline coupling, MLP 2 x 64": ("nsf_c", NSF(2, 5, (64, 64), coupling=True)),
    }
    fig, axes = plt.subplots(1, len(models) + 1, figsize=(3.3 * (len(models) + 1), 3.6))
    top = plot.show_density(
        axes[0], target.log_prob, target.bounds, f"{target.name}, H = {entropy:.3f}"
    ).max()
    for ax, (label, (name, flow)) in zip(axes[1:], models.items(), strict=True):
        seed_everything(args.seed)
        flow.to(args.device)
        history = fit(
            args, f"{target.name}_{name}", train_forward_kl, flow, target, args.steps, 512, 1e-3
        )
        result = nll_gap(flow, target, n=args.n_test)
        print(
            f"  {label:<42} {count_parameters(flow):>7}  {result['nll']:8.4f} ± "
            f"{result['stderr']:.4f}  {result['gap']:8.4f}  {history['seconds']:7.1f}"
        )
        title = f"{label.split(':')[0]}: gap {result['gap']:.3f}"
        last = ax is axes[-1]  # one colour scale (the target's) and one bar for the row
        plot.show_density(
            ax, plot.flow_log_prob(flow), target.bounds, title, vmax=top.item(), colorbar=last
        )
    print(
        "  An affine autoregressive flow (MAF) beside these, at equal size: python -m benchmarks "
        "--only density"
    )
    fig.tight_layout()
    path = os.path.join(args.out, f"{target.name}.png")
    save_figure(fig, path)
    plt.close(fig)
    print(f"  figure: {path}")


def digits(args):
    """NSF-AR and NSF-C on the logit of the dequantised 8x8 digits: test NLL and bits/dim."""
    split = load_digits_split(args.seed)
    test = dequantize(split["test"], torch.Generator().manual_seed(args.seed))  # one fixed draw
    digits_banner(
        split,
        test,
        f"{args.transforms} transforms, conditioners 2 x {args.hidden}, {args.steps} steps, "
        "batch 128",
        30,
    )
    for label, coupling in (("NSF-AR", False), ("NSF-C", True)):
        seed_everything(args.seed)
        flow = digits_flow(args.transforms, args.hidden, coupling).to(args.device)
        name = f"digits_{label.lower().replace('-', '_')}"
        # keeps the best validation weights
        history = fit(
            args,
            name,
            train_forward_kl,
            flow,
            split["train"],
            args.steps,
            128,
            1e-3,
            val=split["val"],
            preprocess=dequantize,
        )
        nll, se = dataset_nll(flow, test)
        digits_row(f"{label} (Logit + NSF)", 30, flow, nll, se, history["seconds"])
        with torch.no_grad():
            samples = flow.sample(64)
        plot.plot_image_grid(
            samples, os.path.join(args.out, f"{name}_samples.png"), rows=8, title=f"{label} samples"
        )
        plot.plot_loss(history, os.path.join(args.out, f"{name}_loss.png"), "NLL (nats per image)")
    print(f"  figures: {args.out}/digits_nsf_ar_samples.png, digits_nsf_c_samples.png (and losses)")


FULL = {
    "2d": {"steps": 2000, "n_test": 100_000, "epochs": 8, "epoch_steps": 256},
    "digits": {"steps": 1000, "transforms": 5, "hidden": 128},
}
QUICK = {
    "2d": {"steps": 100, "n_test": 10_000, "epochs": 4, "epoch_steps": 50},
    "digits": {"steps": 100, "transforms": 2, "hidden": 32},
}


def parse_args(argv=None):
    parser = demo_parser(__doc__, "nsf")
    parser.add_argument(
        "--target", choices=SAMPLE_TARGETS, help="maximum likelihood on this 2-D target"
    )
    parser.add_argument("--data", choices=["digits"], help="train on 8x8 digits instead")
    parser.add_argument(
        "--steps", type=positive, help="training steps per model (default 2000; digits 1000)"
    )
    return parse_demo_args(parser, argv, FULL, QUICK, section=lambda args: args.data or "2d")


def main(argv=None):
    args = parse_args(argv)
    dispatch(args, energy, data=digits, target=on_target)


if __name__ == "__main__":
    run(main)
