"""Figures every demo writes: densities on a grid, their difference, marginals, losses, snapshots,
samples.

Every function takes plain callables or tensors and writes a PNG (``path``) or draws on given axes.
"""

import os

import matplotlib

if os.environ.get("MPLBACKEND") is None and not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def save_figure(fig, path):
    """Write ``fig`` as a PNG at ``path`` (folders created; the one dpi of every figure); ``None`` skips."""
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def flow_log_prob(flow, context=None):
    """``x -> flow.log_prob(x)`` in the flow's dtype and device, without gradients."""
    param = next(flow.parameters())

    @torch.no_grad()
    def log_prob(x):
        flow.eval()
        c = None if context is None else context.to(param).expand(x.shape[0], -1)
        return flow.log_prob(x.to(param), c).to(x)

    return log_prob


def window(bounds):
    """((x_lo, x_hi), (y_lo, y_hi)) from a square window (lo, hi) or a rectangle given as such a pair."""
    return tuple(bounds) if isinstance(bounds[0], (tuple, list)) else (tuple(bounds), tuple(bounds))


def view(target):
    """A target's plotting window: its ``view`` rectangle if it has one (long thin densities), else its bounds."""
    return getattr(target, "view", None) or target.bounds


def _extent(bounds):
    (x_lo, x_hi), (y_lo, y_hi) = window(bounds)
    return (x_lo, x_hi, y_lo, y_hi)


@torch.no_grad()
def density_grid(log_prob, bounds, n=200):
    """Evaluate ``exp(log_prob)`` on an n x n grid over ``bounds``: a square (lo, hi) or ((x_lo,
    x_hi), (y_lo, y_hi)).

    Returns (xs, ys, density) with density of shape (n, n), rows indexed by y, for ``imshow``.
    """
    (x_lo, x_hi), (y_lo, y_hi) = window(bounds)
    xs = torch.linspace(x_lo, x_hi, n, dtype=torch.float64)
    ys = torch.linspace(y_lo, y_hi, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([xx.flatten(), yy.flatten()], -1)
    density = torch.cat([log_prob(p).exp() for p in points.split(20_000)]).view(n, n)
    return xs, ys, density.nan_to_num(0.0)


def show_density(ax, log_prob, bounds, title=None, n=200, cmap="viridis"):
    """Draw a density as an image on ``ax`` (``bounds``: a square (lo, hi) or a rectangle, see ``density_grid``)."""
    _, _, density = density_grid(log_prob, bounds, n)
    (x_lo, x_hi), (y_lo, y_hi) = window(bounds)
    ax.imshow(
        density.numpy(),
        origin="lower",
        extent=_extent(bounds),
        cmap=cmap,
        aspect="equal" if x_hi - x_lo == y_hi - y_lo else "auto",
    )
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return density


def plot_density_comparison(flow, target, path=None, n=200, title=None):
    """Three panels: the true density, the learned one, and learned minus true."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    true = show_density(axes[0], target.log_prob, view(target), "true density", n)
    learned = show_density(axes[1], flow_log_prob(flow), view(target), "learned density", n)
    diff = (learned - true).numpy()
    vmax = abs(diff).max() + 1e-12
    im = axes[2].imshow(
        diff,
        origin="lower",
        extent=_extent(view(target)),
        cmap="RdBu_r",
        vmin=-vmax,
        vmax=vmax,
        aspect=axes[0].get_aspect(),
    )
    axes[2].set_title("learned - true", fontsize=10)
    axes[2].set_xticks([]), axes[2].set_yticks([])
    fig.colorbar(im, ax=axes[2], fraction=0.046)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_marginals(flow, target, path=None, n=400):
    """Both 1-D marginals of the learned density against the exact ones (integrated on a grid)."""
    xs, ys, true = density_grid(target.log_prob, view(target), n)
    _, _, learned = density_grid(flow_log_prob(flow), view(target), n)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for i, (ax, name, t, other) in enumerate(
        zip(axes, ("x1", "x2"), (xs, ys), (ys, xs), strict=False)
    ):
        dim = 0 if i == 0 else 1  # rows are y: summing over rows gives the x1 marginal
        step = (other[1] - other[0]).item()  # the cell width along the axis integrated out
        ax.plot(t, true.sum(dim) * step, "k-", lw=2, label="exact")
        ax.plot(t, learned.sum(dim) * step, "C1--", lw=2, label="learned")
        ax.set_xlabel(name), ax.set_title(f"marginal of {name}", fontsize=10)
    axes[0].legend()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_loss(history, path=None, ylabel="loss", reference=None, reference_label=None):
    """The training loss per step (raw and smoothed), with an optional horizontal reference line."""
    loss = torch.tensor(history["loss"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(loss, color="C0", alpha=0.3, lw=0.8, label="per step")
    k = max(1, len(loss) // 50)
    smooth = loss.unfold(0, k, 1).mean(1) if len(loss) >= k else loss
    ax.plot(range(k - 1, k - 1 + len(smooth)), smooth, color="C0", lw=2, label=f"mean of {k} steps")
    if history.get("val"):
        steps, vals = zip(*history["val"], strict=False)
        ax.plot(steps, vals, "C1o-", ms=3, label="validation")
    if reference is not None:
        ax.axhline(reference, color="k", ls="--", label=reference_label)
    lo, hi = torch.quantile(loss, 0.01).item(), torch.quantile(loss, 0.99).item()
    ax.set_ylim(
        min(lo, reference if reference is not None else lo) - 0.1 * (hi - lo + 1e-9),
        hi + 0.1 * (hi - lo),
    )
    ax.set_xlabel("step"), ax.set_ylabel(ylabel), ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_snapshots(flow, snapshots, bounds, path=None, n=150):
    """The learned density at several training steps; ``snapshots`` maps step -> state_dict."""
    current = {k: v.clone() for k, v in flow.state_dict().items()}
    fig, axes = plt.subplots(1, len(snapshots), figsize=(2.6 * len(snapshots), 2.8), squeeze=False)
    for ax, (step, state) in zip(axes[0], sorted(snapshots.items()), strict=False):
        flow.load_state_dict(state)
        show_density(ax, flow_log_prob(flow), bounds, f"step {step}", n)
    flow.load_state_dict(current)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_image_grid(images, path=None, shape=(8, 8), rows=None, title=None, row_labels=None):
    """A grid of grey images from (N, H*W) values in [0, 1]."""
    images = images.detach().cpu().clamp(0, 1)
    rows = rows or int(len(images) ** 0.5)
    cols = -(-len(images) // rows)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img in zip(axes.flat, images, strict=False):
        ax.imshow(img.view(*shape).numpy(), cmap="gray_r", vmin=0, vmax=1)
    if row_labels:
        for r, label in enumerate(row_labels):
            axes[r, 0].set_title(str(label), fontsize=8, loc="left")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
