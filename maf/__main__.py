"""Experiments of Papamakarios et al. (2017), Masked Autoregressive Flow.

    python -m maf                   # Figure 1: one MADE in the unfavourable order fails, MAF fits
    python -m maf --target moons    # a 5-layer MAF on any sample-based target of common/targets.py
    python -m maf --data digits     # 8x8 digits: MAF and a class-conditional MAF, NLL and bits/dim
    python -m maf --quick           # any of the above in seconds (also: FLOWS_FAST=1)

Every number is printed beside its ceiling: the test NLL minus the exact entropy of the target
(>= 0, it is KL(p || q)); on digits, bits/dim of the dequantised 17-level pixels (the Logit
Jacobian included).
"""

import math
import os

import torch
import torch.nn.functional as F

from common import plot
from common.checks import recorded
from common.cli import (
    demo_parser,
    dispatch,
    fit,
    parse_demo_args,
    positive,
    run,
    save_run,
)
from common.data import dequantize, load_digits_split
from common.flows import Compose, Flow
from common.layers import Logit, set_batch_norm_stats
from common.metrics import count_parameters, dataset_nll, nll_gap
from common.plot import plt, save_figure
from common.report import digits_banner, digits_row
from common.targets import SAMPLE_TARGETS, Banana, get_target
from common.train import train_forward_kl
from maf import MAF, MAFLayer

Figure1Target = Banana  # the target of Figure 1, now get_target("banana"); maf/tutorial.py uses it


def fit_target(flow, target, args, label, name):
    """Maximum likelihood on fresh target samples, then the test NLL on fresh samples and its gap
    to H."""
    flow.to(args.device)
    # keep the weights with the best NLL on fixed validation samples: with Adam at a constant 1e-3
    # the last steps are noisy, and the last weights can be worse than earlier ones
    val = target.sample(20_000).to(args.device)
    history = fit(args, name, train_forward_kl, flow, target, args.steps, 512, 1e-3, val=val)
    result = nll_gap(flow, target, n=args.n_test)
    print(
        f"  {label:<38} {count_parameters(flow):>7}  {result['nll']:8.4f} ± {result['stderr']:.4f} "
        " "
        f"{result['gap']:8.4f}  {history['seconds']:6.1f}"
    )
    return history, result


def header(target):
    entropy, err = target.entropy()
    print(f"target {target.name}: exact entropy H = {entropy:.4f} ± {err:.4f} nats")
    print(f"  {'model':<38} {'params':>7}  {'test NLL (nats)':>17}  {'NLL - H':>8}  {'train s':>6}")


def figure1(args):
    """Figure 1: a MADE with Gaussian conditionals (= a 1-layer MAF) learns x1 first, whose marginal
    is not Gaussian, and fails; reading the same data in the other order it would succeed; a 5-layer
    MAF, every layer with the same kind of Gaussian conditionals, fits the target in the
    unfavourable order too."""
    target = get_target("banana")
    header(target)
    models = {
        "MADE, order x1 -> x2 (unfavourable)": MAF(2, transforms=1),
        "MADE, order x2 -> x1 (favourable)": Flow([MAFLayer(2, order=[1, 0])], features=2),
        "MAF 5 layers, first order x1 -> x2": MAF(2, transforms=5),
    }
    for (label, flow), name in zip(
        models.items(), ("made_x1_first", "made_x2_first", "maf5"), strict=True
    ):
        fit_target(flow, target, args, label, f"banana_{name}")
    made, maf = (
        models["MADE, order x1 -> x2 (unfavourable)"],
        models["MAF 5 layers, first order x1 -> x2"],
    )
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.5))
    window = plot.view(target)
    top = plot.show_density(axes[0], target.log_prob, window, "target").max().item()
    plot.show_density(axes[1], plot.flow_log_prob(made), window, "MADE, x1 first", vmax=top)
    # the random numbers u the MADE would need to generate the data: not N(0, I)
    with torch.no_grad():
        u, _ = made.transform(target.sample(2000).to(args.device))
    axes[2].scatter(*u.cpu().T, s=1, alpha=0.4)
    axes[2].set(xlim=(-4, 4), ylim=(-4, 4), title="MADE's u of the data", aspect="equal")
    axes[2].set(xlabel="$u_1$", ylabel="$u_2$")
    plot.show_density(
        axes[3], plot.flow_log_prob(maf), window, "MAF 5 layers", vmax=top, colorbar=True
    )
    for ax in axes[[0, 1, 3]]:
        ax.set(xlabel="$x_1$", ylabel="$x_2$")
    save_figure(fig, os.path.join(args.out, "figure1.png"))
    plt.close(fig)
    print(f"  figure: {os.path.join(args.out, 'figure1.png')}")


def on_target(args):
    target = get_target(args.target)
    header(target)
    flow = MAF(2, transforms=5)
    history, _ = fit_target(flow, target, args, "MAF 5 layers, MADE 2 x 64", f"{target.name}_maf5")
    plot.plot_density_comparison(
        flow, target, os.path.join(args.out, f"{target.name}.png"), title=target.name
    )
    plot.plot_loss(
        history,
        os.path.join(args.out, f"{target.name}_loss.png"),
        "NLL (nats)",
        target.entropy()[0],
        "H",
    )
    print(f"  figures: {args.out}/{target.name}.png, {target.name}_loss.png")


@recorded
def digits_flow(context, transforms, hidden):
    """MAF on the logit of the dequantised pixels: Logit(0.05) is the first layer, so its Jacobian
    counts."""
    maf = MAF(64, transforms, (hidden, hidden), context, batch_norm=True)
    return Flow(Compose(Logit(0.05), maf.transform), features=64, context=context)


def dataset_log_prob(flow, x, context):
    """log p(x | context), (n,), on the CPU."""
    param = next(flow.parameters())
    return flow.log_prob(x.to(param), context.to(param)).cpu()


def digits(args):
    """MAF and the class-conditional MAF (Sec. 3.4) on the 8x8 digits: test NLL in nats and
    bits/dim."""
    split = load_digits_split(args.seed)
    onehot = {k: F.one_hot(split[f"{k}_labels"], 10).float() for k in ("train", "val", "test")}
    gen = torch.Generator().manual_seed(args.seed)
    # one fixed dequantisation of the test set for every model
    test = dequantize(split["test"], gen)
    models = f"MAF {args.transforms} layers, MADE 2 x {args.hidden}, batch norm"
    digits_banner(split, test, models, 44)
    results = {}
    for label, context in (("MAF, log p(x)", 0), ("conditional MAF, log p(x | y)", 10)):
        flow = digits_flow(context, args.transforms, args.hidden).to(args.device)
        c = onehot["train"] if context else None
        name = f"digits_{'conditional' if context else 'maf'}"
        history = fit(
            args,
            name,
            train_forward_kl,
            flow,
            split["train"],
            args.steps,
            args.batch_size,
            1e-3,
            context=c,
            val=split["val"],
            val_context=onehot["val"] if context else None,
            preprocess=dequantize,
            save=False,
        )
        set_batch_norm_stats(flow, dequantize(split["train"], gen), c)  # Appendix B: training set
        if args.save:  # with the batch-norm statistics of the whole training set
            save_run(args, name, flow, history)
        nll, se = dataset_nll(flow, test, onehot["test"] if context else None)
        digits_row(label, 44, flow, nll, se, history["seconds"])
        results[label] = flow
        plot.plot_loss(
            history,
            os.path.join(args.out, f"{name}_loss.png"),
            "NLL (nats)",
        )
    # log p(x) of the conditional model: sum over the classes, log sum_y p(y) p(x | y), p(y) =
    # training frequencies
    flow = results["conditional MAF, log p(x | y)"]
    log_prior = torch.log(
        torch.bincount(split["train_labels"], minlength=10).float() / len(split["train"])
    )
    with torch.no_grad():
        per_class = torch.stack(
            [
                dataset_log_prob(flow, test, F.one_hot(torch.full((len(test),), y), 10).float())
                for y in range(10)
            ],
            -1,
        )
        log_px = torch.logsumexp(per_class + log_prior, -1)
    nll = -log_px.mean().item()
    se = log_px.std().item() / math.sqrt(len(test))
    digits_row("conditional MAF, log sum_y p(y) p(x | y)", 44, flow, nll, se)
    print(
        "  (the paper's Tables 1-2 set MAF beside a Real NVP of about the same size: a paper "
        "folder does not "
        "import another, so that comparison is made by `python -m benchmarks --only digits`)"
    )
    with torch.no_grad():
        labels = torch.arange(10).repeat_interleave(10)
        samples = flow.sample(100, F.one_hot(labels, 10).float().to(args.device))
    plot.plot_image_grid(
        samples,
        os.path.join(args.out, "digits_conditional_samples.png"),
        rows=10,
        title="conditional MAF: 10 samples per class (rows 0-9)",
        row_labels=list(range(10)),
    )
    plot.plot_image_grid(
        results["MAF, log p(x)"].sample(100),
        os.path.join(args.out, "digits_samples.png"),
        rows=10,
        title="MAF samples",
    )
    print(f"  figures: {args.out}/digits_samples.png, digits_conditional_samples.png")


FULL = {
    "2d": {"steps": 2000, "n_test": 100_000},
    "digits": {"steps": 1000, "transforms": 5, "hidden": 128, "batch_size": 128},
}
QUICK = {
    "2d": {"steps": 100, "n_test": 10_000},
    "digits": {"steps": 100, "transforms": 2, "hidden": 32, "batch_size": 128},
}


def parse_args(argv=None):
    parser = demo_parser(__doc__, "maf")
    parser.add_argument(
        "--target", choices=SAMPLE_TARGETS, help="train a 5-layer MAF on this target"
    )
    parser.add_argument("--data", choices=["digits"], help="train on 8x8 digits instead")
    parser.add_argument(
        "--steps",
        type=positive,
        help="training steps per model (default 2000; digits 1000, it overfits after ~600)",
    )
    return parse_demo_args(parser, argv, FULL, QUICK, section=lambda args: args.data or "2d")


def main(argv=None):
    dispatch(parse_args(argv), figure1, data=digits, target=on_target)


if __name__ == "__main__":
    run(main)
