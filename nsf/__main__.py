"""Experiments of Durkan et al. (2019), Neural Spline Flows.

    python -m nsf                    # zuko's tutorial "train from energy": an inverted NSF, reverse
    KL on the sine ring python -m nsf --target checker   # maximum likelihood: NSF-AR, NSF-C and an
    affine autoregressive flow side by side python -m nsf --data digits      # 8x8 digits: NSF-AR
    and NSF-C, test NLL and bits/dim python -m nsf --quick            # any of the above in seconds
    (also: FLOWS_FAST=1)

Every number is printed beside its ceiling: KL(q || p) >= 0 with log Z from quadrature; the test NLL
    minus the
exact entropy of the target (>= 0, it is KL(p || q)); bits/dim of the dequantised 17-level pixels.
"""

import os
import time

import torch

from common import plot
from common.cli import demo_parser, parse_demo_args
from common.data import LEVELS, dequantize, load_digits_split
from common.flows import Compose, Flow, Inverse, Logit, Transform
from common.metrics import bits_per_dim, dataset_nll, nll_gap, reverse_kl
from common.nets import MADE
from common.plot import plt
from common.targets import SAMPLE_TARGETS, get_target
from common.train import (
    seed_everything,
    train_forward_kl,
    train_reverse_kl,
)
from nsf import NSF


def parameters(flow):
    return sum(p.numel() for p in flow.parameters())


def energy(args):
    """zuko's tutorial "Train from energy": NSF(2, transforms=3, hidden (64, 64)) inverted so that
    sampling is its one-pass direction, trained by reverse KL on log U(x) = sin(pi x1) - 2 (x1^2 +
    x2^2 - 2)^2 for 8 epochs of
    256 steps (batch 256, Adam 1e-3). The loss E_q[log q + U] = KL(q || p) - log Z (the tutorial ends near -1.59)."""
    target = get_target("sine")
    nsf = NSF(2, transforms=3, hidden_features=(64, 64))
    flow = Flow(Inverse(nsf.transform), features=2).to(
        args.device
    )  # rsample_and_log_prob: one MADE pass per layer
    epochs, steps = (4, 50) if args.quick else (8, 256)
    print(
        f"reverse KL on the sine energy: inverted NSF-AR, 3 transforms, MADE 2 x 64, 8 bins, bound 5 "
        f"({parameters(flow)} parameters); {epochs} x {steps} steps, batch 256, Adam 1e-3"
    )
    history = train_reverse_kl(
        flow, target, steps=epochs * steps, batch_size=256, lr=1e-3, progress=args.progress
    )
    loss = torch.tensor(history["loss"]).view(epochs, steps)
    for epoch, row in enumerate(loss):
        print(f"  ({epoch}) {row.mean().item():.4f} ± {row.std().item():.4f}")
    result = reverse_kl(flow, target, n=args.n_test)
    print(
        f"  loss = KL - log Z; last epoch {loss[-1].mean().item():.4f} (zuko's tutorial: about -1.59)"
    )
    print(
        f"  KL(q || p) = {result['kl']:.4f} ± {result['stderr']:.4f} nats (ceiling 0), log Z = "
        f"{result['log_z']:.4f} by quadrature; {history['seconds']:.1f} s training"
    )
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    plot.show_density(axes[0], target.log_prob, target.bounds, "true density exp(-U) / Z")
    with torch.no_grad():
        x = flow.sample(args.n_test).cpu()
    lo, hi = target.bounds
    axes[1].hist2d(
        x[:, 0].numpy(), x[:, 1].numpy(), bins=120, range=[[lo, hi], [lo, hi]], cmap="viridis"
    )
    axes[1].set(title=f"{args.n_test} samples of q", aspect="equal", xticks=[], yticks=[])
    plot.show_density(
        axes[2], plot.flow_log_prob(flow), target.bounds, f"q, KL = {result['kl']:.3f}"
    )
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "sine.png"), dpi=120, bbox_inches="tight")
    plot.plot_loss(
        history,
        os.path.join(args.out, "sine_loss.png"),
        "E_q[log q + U]",
        -result["log_z"],
        "-log Z",
    )
    print(f"  figures: {args.out}/sine.png, sine_loss.png")


class AffineAutoregressive(Transform):
    """The comparison: an affine autoregressive layer (MAF's) on the same MADE, z = (x - mu)
    exp(-alpha).

    ``forward`` maps data to noise in one MADE pass; ``inverse`` takes D passes. Written here
    because a paper folder does not import another paper's folder.
    """

    def __init__(self, features, hidden_features, order):
        super().__init__()
        self.made = MADE(features, 2, hidden_features, order=order)

    def forward(self, x, context=None):
        mu, alpha = self.made(x).unbind(-1)
        return (x - mu) * torch.exp(-alpha), -alpha.sum(-1)

    def inverse(self, z, context=None):
        x = torch.zeros_like(z)
        for _ in range(z.shape[1]):
            mu, alpha = self.made(x).unbind(-1)
            x = z * torch.exp(alpha) + mu
        return x, alpha.sum(-1)


def affine_flow(features, transforms, hidden_features):
    orders = [torch.arange(features), torch.arange(features).flip(0)]
    return Flow(
        [AffineAutoregressive(features, hidden_features, orders[t % 2]) for t in range(transforms)],
        features=features,
    )


def on_target(args):
    """Maximum likelihood, fresh samples every step (batch 512, Adam 1e-3): NSF-AR, NSF-C and the
    affine flow with the same depth (5) and conditioner widths (2 x 64), and one with wider MADEs
    for as many parameters as NSF-AR
    (a spline layer's conditioner has 3K - 1 outputs per variable instead of 2, so it is the larger model)."""
    target = get_target(args.target)
    entropy, err = target.entropy()
    print(
        f"target {target.name}: exact entropy H = {entropy:.4f} ± {err:.4f} nats; {args.steps} steps, batch 512"
    )
    print(f"  {'model':<42} {'params':>7}  {'test NLL (nats)':>17}  {'NLL - H':>8}  {'train s':>7}")
    nsf_ar = NSF(2, 5, (64, 64))
    width = next(
        h for h in range(64, 1024) if parameters(affine_flow(2, 5, (h, h))) >= parameters(nsf_ar)
    )
    models = {
        "NSF-AR: 5 x RQ spline (8 bins), MADE 2 x 64": nsf_ar,
        "NSF-C: 5 x RQ spline coupling, MLP 2 x 64": NSF(2, 5, (64, 64), coupling=True),
        "affine AR (MAF): 5 x MADE 2 x 64": affine_flow(2, 5, (64, 64)),
        f"affine AR, equal size: MADE 2 x {width}": affine_flow(2, 5, (width, width)),
    }
    fig, axes = plt.subplots(1, len(models) + 1, figsize=(3.3 * (len(models) + 1), 3.6))
    plot.show_density(axes[0], target.log_prob, target.bounds, f"{target.name}, H = {entropy:.3f}")
    for ax, (label, flow) in zip(axes[1:], models.items(), strict=False):
        seed_everything(args.seed)
        flow.to(args.device)
        history = train_forward_kl(
            flow, target, steps=args.steps, batch_size=512, lr=1e-3, progress=args.progress
        )
        result = nll_gap(flow, target, n=args.n_test)
        print(
            f"  {label:<42} {parameters(flow):>7}  {result['nll']:8.4f} ± {result['stderr']:.4f}  "
            f"{result['gap']:8.4f}  {history['seconds']:7.1f}"
        )
        title = f"{label.split(':')[0]}: gap {result['gap']:.3f}"
        plot.show_density(ax, plot.flow_log_prob(flow), target.bounds, title)
    print(
        "  A monotone spline can put several bumps of density into one conditional with one layer; an affine layer\n"
        "  only shifts and scales a unimodal one, so it needs many layers to carve out cells and rings."
    )
    fig.tight_layout()
    path = os.path.join(args.out, f"{target.name}.png")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"  figure: {path}")


def digits(args):
    """NSF on the logit of the dequantised pixels (Logit(0.05) is the first layer, so its Jacobian counts)."""
    split = load_digits_split(args.seed)
    test = dequantize(
        split["test"], torch.Generator().manual_seed(args.seed)
    )  # one fixed dequantisation
    hidden = (args.hidden, args.hidden)
    print(
        f"8x8 digits: {len(split['train'])} train / {len(split['val'])} val / {len(test)} test images, {LEVELS} "
        f"grey levels; {args.transforms} transforms, conditioners 2 x {args.hidden}, {args.steps} steps, batch 128"
    )
    print(
        "  bits/dim = (NLL + 64 log 17) / (64 log 2): the density of the integer pixels (dequantisation bound);"
        " 4.09 = uniform over the 17 levels"
    )
    print(
        f"  {'model':<30} {'params':>7}  {'test NLL (nats)':>17}  {'bits/dim':>8}  {'train s':>7}"
    )
    for label, coupling in (("NSF-AR", False), ("NSF-C", True)):
        seed_everything(args.seed)
        nsf = NSF(64, args.transforms, hidden, coupling=coupling)
        flow = Flow(Compose(Logit(0.05), nsf.transform), features=64).to(args.device)
        history = train_forward_kl(
            flow,
            split["train"],
            steps=args.steps,
            batch_size=128,
            lr=1e-3,
            val=split["val"],
            preprocess=dequantize,
            progress=args.progress,
        )  # keeps the best validation
        nll, se = dataset_nll(flow, test)
        print(
            f"  {label + ' (Logit + NSF)':<30} {parameters(flow):>7}  {nll:8.2f} ± {se:5.2f}  "
            f"{bits_per_dim(nll):8.3f}  {history['seconds']:7.1f}"
        )
        with torch.no_grad():
            samples = flow.sample(64)
        name = f"digits_{label.lower().replace('-', '_')}"
        plot.plot_image_grid(
            samples, os.path.join(args.out, f"{name}_samples.png"), rows=8, title=f"{label} samples"
        )
        plot.plot_loss(history, os.path.join(args.out, f"{name}_loss.png"), "NLL (nats per image)")
    print(f"  figures: {args.out}/digits_nsf_ar_samples.png, digits_nsf_c_samples.png (and losses)")


def main():
    parser = demo_parser(__doc__, "nsf")
    parser.add_argument(
        "--target", choices=SAMPLE_TARGETS, help="maximum likelihood on this 2-D target"
    )
    parser.add_argument("--data", choices=["digits"], help="train on 8x8 digits instead")
    parser.add_argument(
        "--steps", type=int, help="training steps per model (default 2000; digits 1000)"
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress line on stderr"
    )
    args = parse_demo_args(parser)
    args.steps = args.steps or (100 if args.quick else 1000 if args.data else 2000)
    args.n_test = 10_000 if args.quick else 100_000
    args.transforms, args.hidden = (2, 32) if args.quick else (5, 128)
    start = time.perf_counter()
    if args.data == "digits":
        digits(args)
    elif args.target:
        on_target(args)
    else:
        energy(args)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
