"""Figures every demo and notebook draws: densities on a grid (one colour scale per compared row),
their difference, marginals, losses, snapshots, samples, and the flow at work layer by layer.

Every function takes plain callables or tensors and writes a PNG (``path``) or draws on given axes.
"""

import os
import tempfile

import matplotlib

if os.environ.get("MPLBACKEND") is None and not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def save_figure(fig, path):
    """Write ``fig`` as a PNG at ``path``; ``None`` skips.

    Missing folders are created; every figure is written at the same dpi. Atomic: the PNG is
    written beside ``path`` and renamed over it, so a full disk leaves the previous file (or none),
    never a truncated one; a failed write raises ``OSError`` naming ``path``.
    """
    if path is None:
        return fig
    folder = os.path.dirname(os.path.abspath(path))
    temporary = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, temporary = tempfile.mkstemp(
            dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
        )
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; a figure is not
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)
        if isinstance(error, OSError):
            raise OSError(error.errno, error.strerror or str(error), os.fspath(path)) from None
        raise
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
    """((x_lo, x_hi), (y_lo, y_hi)) from a square window (lo, hi) or a rectangle given as a pair."""
    return tuple(bounds) if isinstance(bounds[0], (tuple, list)) else (tuple(bounds), tuple(bounds))


def view(target):
    """A target's plotting window: its ``view`` rectangle if it has one, else its bounds.

    Long thin densities have a ``view``.
    """
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


def show_density(
    ax, log_prob, bounds, title=None, n=200, cmap="viridis", vmax=None, colorbar=False, ticks=True
):
    """Draw a density as an image on ``ax`` (``bounds``: a square (lo, hi) or a rectangle, see
    ``density_grid``), with a few ticks on both axes.

    ``vmax`` fixes the top of the colour scale (panels that are compared share one, see
    ``plot_densities``); ``colorbar=True`` adds a colour bar beside ``ax``. Returns the (n, n)
    density.
    """
    _, _, density = density_grid(log_prob, bounds, n)
    (x_lo, x_hi), (y_lo, y_hi) = window(bounds)
    image = ax.imshow(
        density.numpy(),
        origin="lower",
        extent=_extent(bounds),
        cmap=cmap,
        vmin=0.0,
        vmax=vmax,
        aspect="equal" if x_hi - x_lo == y_hi - y_lo else "auto",
    )
    _ticks(ax, ticks)
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=7)
    return density


def _ticks(ax, ticks=True):
    """Three or so ticks a side, small labels, no minor ticks (or none at all)."""
    if not ticks:
        ax.set_xticks([]), ax.set_yticks([])
        return
    ax.xaxis.set_major_locator(MaxNLocator(4, integer=True, prune="both"))
    ax.yaxis.set_major_locator(MaxNLocator(4, integer=True, prune="both"))
    ax.minorticks_off()
    ax.tick_params(labelsize=7, length=2, pad=1)


def plot_densities(rows, bounds, path=None, n=150, size=2.4, title=None):
    """A grid of density panels, one colour scale and one colour bar per row.

    ``rows`` is a list of rows, each a list of ``(log_prob, title)`` or
    ``(log_prob, title, bounds)``; ``bounds`` is one window for every panel or a list of one per
    row. Panels in a row share ``vmax`` (the row's largest density), so their colours can be
    compared. Returns the figure.
    """
    n_cols = max(len(row) for row in rows)
    fig, axes = plt.subplots(
        len(rows),
        n_cols,
        figsize=(size * n_cols + 0.6, size * len(rows) + (0.4 if title else 0.1)),
        squeeze=False,
        layout="constrained",
    )
    for r, row in enumerate(rows):
        box = bounds[r] if isinstance(bounds, list) else bounds
        boxes = [panel[2] if len(panel) > 2 else box for panel in row]
        grids = [density_grid(panel[0], b, n)[2] for panel, b in zip(row, boxes, strict=True)]
        vmax = max(g.max().item() for g in grids) or 1.0
        for c, (ax, panel, grid) in enumerate(zip(axes[r], row, grids, strict=False)):
            name = panel[1]
            image = ax.imshow(
                grid.numpy(),
                origin="lower",
                extent=_extent(boxes[c]),
                vmin=0,
                vmax=vmax,
                aspect="auto",
            )
            _ticks(ax)
            ax.set_title(name, fontsize=9)
            if c and boxes[c] == boxes[0]:
                ax.tick_params(labelleft=False)
        for ax in axes[r, len(row) :]:
            ax.axis("off")
        bar = fig.colorbar(image, ax=list(axes[r]), fraction=0.03, pad=0.01, aspect=15)
        bar.ax.tick_params(labelsize=7)
        bar.set_label("density", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def sampling_steps(transform):
    """The layers of a transform in sampling order (noise -> data), each as ``z -> x`` (no log-det).

    Unrolls ``Compose`` and ``Inverse``: a ``Flow`` samples with ``transform.inverse``, so the last
    layer of a ``Compose`` acts first; under ``Inverse`` the order and the direction flip. Returns a
    list of ``(name, function)``.
    """
    from common.flows import Compose, Inverse

    def unroll(t, inverted):
        if isinstance(t, Inverse):
            return unroll(t.transform, not inverted)
        if isinstance(t, Compose):
            parts = [unroll(s, inverted) for s in t.transforms]
            return [step for part in (parts if inverted else parts[::-1]) for step in part]
        run = t.forward if inverted else t.inverse
        return [(type(t).__name__, lambda z, run=run: run(z)[0])]

    return unroll(transform, False)


@torch.no_grad()
def plot_layers(flow, n=2000, path=None, max_panels=7, lim=None, data=None, title=None):
    """The flow at work, layer by layer: the base samples, then the points after each layer, to the
    data (top row), and a regular grid of the base pushed through the same layers (bottom row).

    Points keep their colour (their base angle) from panel to panel, so one can follow them. Layers
    that only permute features are applied but not drawn. With more than ``max_panels`` layers, an
    evenly spaced subset is drawn (always the last), and a line above the panels says which.
    ``data`` (optional, (N, 2)) adds a panel of the
    target's samples; ``lim`` fixes both axes' range (default: the middle 99 % of all points).
    Only 2-D flows without context.
    """
    flow.eval()
    param = next(flow.parameters())
    z = flow.base.rsample(n).to(param)
    if z.shape[-1] != 2:
        raise ValueError(f"plot_layers draws 2-D flows, got {z.shape[-1]} features")
    steps = [(name, f) for name, f in sampling_steps(flow.transform)]
    t = torch.linspace(-3, 3, 13, dtype=param.dtype)
    fine = torch.linspace(-3, 3, 200, dtype=param.dtype)
    lines = [torch.stack([v.expand(200), fine], -1) for v in t]
    lines += [torch.stack([fine, v.expand(200)], -1) for v in t]
    grid = torch.cat(lines)  # 26 polylines of 200 points each
    shown = [("base N(0, I)\n", z, grid)]
    drawn = [i for i, (name, _) in enumerate(steps) if name != "Permute"]
    subset = None
    if len(drawn) > max_panels - 1:
        pick = torch.linspace(0, len(drawn) - 1, max_panels - 1).round().long().tolist()
        drawn = [drawn[i] for i in sorted(set(pick))]
        numbers = ", ".join(str(i + 1) for i in drawn)
        subset = f"layers {numbers} of {len(steps)} drawn (an evenly spaced subset)"
    x, g = z, grid
    for i, (name, f) in enumerate(steps):
        x, g = f(x), f(g)
        if i in drawn:
            shown.append((f"after layer {i + 1} of {len(steps)}\n{name}", x, g))
    if data is not None:
        shown.append(("data", data.to(param), None))
    if lim is None:  # one square window for every panel: the middle 99 % of all the points
        every = torch.cat([points for _, points, _ in shown]).float()
        lo, hi = every.quantile(0.005, 0).min().item(), every.quantile(0.995, 0).max().item()
        lim = (lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
    colour = torch.atan2(z[:, 1], z[:, 0]).cpu()
    fig, axes = plt.subplots(
        2, len(shown), figsize=(2.3 * len(shown), 4.9), squeeze=False, layout="constrained"
    )
    for c, (name, points, lines_now) in enumerate(shown):
        points = points.cpu()
        top, bottom = axes[0, c], axes[1, c]
        if name == "data":
            top.scatter(*points.T, s=1.5, c="0.3", alpha=0.5)
            bottom.axis("off")
        else:
            top.scatter(*points.T, s=1.5, c=colour, cmap="hsv", alpha=0.6)
            for k, line in enumerate(lines_now.cpu().split(200)):
                bottom.plot(*line.T, lw=0.7, color="C0" if k < 13 else "C3")
        top.set_title(name, fontsize=8)
        for ax in (top, bottom):
            ax.set_xlim(*lim), ax.set_ylim(*lim)
            ax.set_aspect("equal")
            _ticks(ax)
    axes[1, 0].set_ylabel("a grid of the base,\npushed through", fontsize=8)
    axes[0, 0].set_ylabel("samples", fontsize=8)
    heading = "\n".join(line for line in (title, subset) if line)
    if heading:
        fig.suptitle(heading, fontsize=10)
    return save_figure(fig, path)


def plot_density_comparison(flow, target, path=None, n=200, title=None):
    """Three panels: the true density, the learned one (one colour scale, one colour bar), and
    learned minus true (its own, symmetric scale)."""
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.6), layout="constrained")
    box = view(target)
    _, _, true = density_grid(target.log_prob, box, n)
    vmax = true.max().item()
    show_density(axes[0], target.log_prob, box, "true density", n, vmax=vmax)
    learned = show_density(
        axes[1], flow_log_prob(flow), box, "learned density", n, vmax=vmax, colorbar=True
    )
    diff = (learned - true).numpy()
    vmax = abs(diff).max() + 1e-12
    im = axes[2].imshow(
        diff,
        origin="lower",
        extent=_extent(box),
        cmap="RdBu_r",
        vmin=-vmax,
        vmax=vmax,
        aspect=axes[0].get_aspect(),
    )
    axes[2].set_title("learned - true", fontsize=9)
    _ticks(axes[2])
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.03).ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
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


def image_mosaic(images, rows=1, gap=1):
    """Tile ``images`` (N, H, W) into one (rows (H + gap) - gap, cols (W + gap) - gap) tensor,
    row by row, with NaN in the gaps and the empty places (``imshow`` leaves NaN blank): a grid
    of images, or the channels of one image, on a single axes with a single colour scale.

    >>> image_mosaic(torch.zeros(3, 2, 2), rows=2).shape  # 2 rows of 2 columns, one place empty
    torch.Size([5, 5])
    """
    n, h, w = images.shape
    cols = -(-n // rows)
    out = torch.full((rows * (h + gap) - gap, cols * (w + gap) - gap), float("nan"))
    for k, image in enumerate(images.detach().cpu().float()):
        r, c = divmod(k, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = image
    return out


def plot_image_rows(rows, labels, path=None, shape=(8, 8), title=None, size=0.55):
    """Rows of grey images in [0, 1], each row (N_i, H*W) on one axes labelled on its left: a
    sequence (an interpolation, a ladder of temperatures) read left to right."""
    cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(
        len(rows), 1, figsize=(size * cols + 1.6, size * len(rows) + 0.6), squeeze=False
    )
    for ax, row, label in zip(axes[:, 0], rows, labels, strict=True):
        images = torch.full((cols, *shape), float("nan"))  # a short row keeps the others' scale
        images[: len(row)] = row.detach().cpu().float().clamp(0, 1).reshape(-1, *shape)
        ax.imshow(image_mosaic(images).numpy(), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        for side in ax.spines.values():
            side.set_visible(False)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
