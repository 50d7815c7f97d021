"""Train Real NVP and report its numbers against their ceilings.

python -m realnvp                      # 2-D target ua_nb: test NLL - exact entropy (nats)
python -m realnvp --target checker     # any sample-based target of common/targets.py
python -m realnvp --data digits        # multi-scale Real NVP on 8 x 8 digits: bits/dim, samples
python -m realnvp --quick              # seconds (also when FLOWS_FAST=1)
"""

import argparse
import math
import os
import time

import torch

from common.cli import demo_parser, fit, parse_demo_args, positive, positive_float, run
from common.data import dequantize, load_digits_split
from common.metrics import bits_per_dim, count_parameters, dataset_nll, nll_gap
from common.plot import (
    plot_density_comparison,
    plot_image_grid,
    plot_loss,
    plot_marginals,
    plot_snapshots,
    view,
)
from common.targets import SAMPLE_TARGETS, get_target
from common.train import train_forward_kl
from realnvp import RealNVP, RealNVPImage

FULL = {
    "2d": {"steps": 2000, "batch_size": 512, "n_test": 100_000},
    "digits": {"steps": 3000, "batch_size": 128},
}
QUICK = {
    "2d": {"steps": 200, "batch_size": 512, "n_test": 10_000},
    "digits": {"steps": 300, "batch_size": 128},
}
DIGIT_SCALES = 4  # 8 x 8 images: 2^(scales - 1) must divide 8


def digit_scales(text):
    """argparse type: scales of the 8 x 8 model, 1 to 4 (H and W halve at every scale but the
    last: 8 -> 4 -> 2 -> 1)."""
    value = positive(text)
    if value > DIGIT_SCALES:
        raise argparse.ArgumentTypeError(
            f"must be 1 to {DIGIT_SCALES} for 8 x 8 digits (H and W halve at every scale but the "
            f"last), got {value}"
        )
    return value


def parse_args(argv=None):
    parser = demo_parser(__doc__, "realnvp")
    parser.add_argument(
        "--data", choices=("2d", "digits"), default="2d", help="2-D target or 8x8 digits"
    )
    parser.add_argument(
        "--target", default="ua_nb", choices=SAMPLE_TARGETS, help="2-D target (with --data 2d)"
    )
    parser.add_argument(
        "--steps", type=positive, help="training steps (default 2000 2-D, 3000 digits)"
    )
    parser.add_argument("--batch-size", type=positive, help="default 512 (2-D), 128 (digits)")
    parser.add_argument("--lr", type=positive_float, default=1e-3)
    parser.add_argument("--transforms", type=positive, default=8, help="couplings (2-D)")
    parser.add_argument(
        "--hidden", type=positive, nargs="+", default=[64, 64], help="MLP hidden sizes (2-D)"
    )
    parser.add_argument(
        "--scales",
        type=digit_scales,
        default=2,
        help=f"scales of the multi-scale model, 1 to {DIGIT_SCALES} (digits)",
    )
    parser.add_argument(
        "--hidden-channels", type=positive, default=32, help="conv conditioner width (digits)"
    )
    parser.add_argument(
        "--batch-norm", action="store_true", help="batch norm after each coupling (Sec. 3.7)"
    )
    return parse_demo_args(parser, argv, FULL, QUICK, section=lambda args: args.data)


def run_2d(args):
    target = get_target(args.target)
    steps = args.steps
    flow = RealNVP(2, args.transforms, tuple(args.hidden), batch_norm=args.batch_norm).to(
        args.device
    )
    snapshots = sorted({max(1, steps // 20), steps // 4, steps // 2, steps})
    history = fit(
        args,
        f"{args.target}",
        train_forward_kl,
        flow,
        target,
        steps,
        args.batch_size,
        args.lr,
        snapshots=snapshots,
    )
    result = nll_gap(flow, target, n=args.n_test)
    print(
        f"Real NVP ({args.transforms} couplings, MLP {'x'.join(map(str, args.hidden))}) on "
        f"{args.target}: "
        f"{steps} steps in {history['seconds']:.1f} s"
    )
    print(f"  test NLL      {result['nll']:.4f} ± {result['stderr']:.4f} nats")
    print(f"  exact entropy {result['entropy']:.4f} nats (the ceiling: NLL >= H)")
    print(
        f"  gap           {result['gap']:.4f} nats (= KL(p || q) >= 0; the coupling rows of "
        "python -m benchmarks compare zuko's at equal size)"
    )
    title = f"Real NVP on {args.target}: gap {result['gap']:.3f} nats"
    plot_density_comparison(
        flow, target, os.path.join(args.out, f"density_{args.target}.png"), title=title
    )
    plot_marginals(flow, target, os.path.join(args.out, f"marginals_{args.target}.png"))
    plot_loss(
        history,
        os.path.join(args.out, f"loss_{args.target}.png"),
        ylabel="NLL (nats)",
        reference=result["entropy"],
        reference_label="exact entropy",
    )
    plot_snapshots(
        flow,
        history["snapshots"],
        view(target),
        os.path.join(args.out, f"snapshots_{args.target}.png"),
    )
    print(f"  figures in {args.out}/")


def run_digits(args):
    data = {k: v.to(args.device) for k, v in load_digits_split(seed=0).items()}
    steps = args.steps
    flow = RealNVPImage(
        (1, 8, 8), args.scales, args.hidden_channels, batch_norm=args.batch_norm
    ).to(args.device)
    # fresh dequantisation noise for every batch (and val)
    history = fit(
        args,
        "digits",
        train_forward_kl,
        flow,
        data["train"],
        steps,
        args.batch_size,
        args.lr,
        val=data["val"],
        preprocess=dequantize,
    )
    test = dequantize(data["test"], torch.Generator(args.device).manual_seed(2))
    nll, stderr = dataset_nll(flow, test)
    params = count_parameters(flow)
    best = min(history["val"], key=lambda v: v[1])
    print(
        f"Real NVP multi-scale ({args.scales} scales, conv width {args.hidden_channels}) on 8x8 "
        "digits: "
        f"{params:,} parameters, {steps} steps in {history['seconds']:.1f} s (best validation at "
        f"step {best[0]})"
    )
    print(
        f"  test NLL  {nll:.2f} ± {stderr:.2f} nats per image (dequantised, logit Jacobian "
        "included)"
    )
    print(
        f"  bits/dim  {bits_per_dim(nll):.3f} ± {stderr / (64 * math.log(2)):.3f} "
        f"(uniform over 17 levels: {math.log2(17):.3f})"
    )
    with torch.no_grad():
        samples = flow.sample(64)
    plot_image_grid(
        samples,
        os.path.join(args.out, "digits_samples.png"),
        rows=8,
        title=f"Real NVP samples ({bits_per_dim(nll):.2f} bits/dim)",
    )
    plot_loss(history, os.path.join(args.out, "digits_loss.png"), ylabel="NLL (nats per image)")
    print(f"  figures in {args.out}/")


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    run_digits(args) if args.data == "digits" else run_2d(args)
    print(f"  wall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    run(main)
