"""Draw the computation graphs of one layer of each flow family (intro/families.md shows them).

    python -m tools.diagrams                    # -> intro/figures/graph_*.png
    python -m tools.diagrams --out DIR          # the same four PNGs into DIR
    python -m tools.diagrams --only maf iaf     # some of them
    python -m tools.diagrams --passes           # count each family's passes (the page's table)

One PNG per layer: a coupling layer (Real NVP; NSF-C with a spline), a MAF layer (NSF-AR with a
spline), an IAF step and a planar layer. Every graph has the data x on the left and the noise z
on the right, so this repository's ``forward`` (data -> noise, the density) reads left to right
and ``inverse`` (noise -> data, sampling) right to left. A solid arrow is a direction computed in
one pass of the layer; a dashed one is a direction computed in D sequential passes or by a root
finder. Drawn from boxes and arrows only: no model is built and nothing is trained.
"""

from pathlib import Path

from tools.cli import script_parser

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "intro" / "figures"

DATA, NOISE, NET, STEP, KEPT = "#c6dbef", "#c7e9c0", "#dadaeb", "#fdd0a2", "#e0e0e0"
ONE_PASS, SEQUENTIAL = "#08519c", "#a63603"  # arrows: one pass; D passes or a root finder


def _canvas(title, subtitle):
    from common.plot import plt

    fig, ax = plt.subplots(figsize=(11, 5.6))
    ax.set(xlim=(0, 11), ylim=(0, 5.6))
    ax.axis("off")
    ax.set_title(title, fontsize=14, fontweight="bold", loc="left")
    ax.text(0, 5.45, subtitle, fontsize=10.5, va="top", color="#333333")
    return fig, ax


def _box(ax, x, y, text, color, w=0.9, h=0.5, size=12):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.04", fc=color, ec="#444444", lw=1
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=size)


def _region(ax, x0, y0, x1, y1, label, color=NET):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(
        FancyBboxPatch(
            (x0, y0),
            x1 - x0,
            y1 - y0,
            boxstyle="round,pad=0.05",
            fc=color,
            ec="#6a51a3",
            lw=1.2,
            alpha=0.55,
            zorder=0,
        )
    )
    ax.text((x0 + x1) / 2, y1 - 0.05, label, ha="center", va="top", fontsize=11, color="#3f007d")


def _arrow(ax, start, end, color="#444444", lw=1.2, style="-|>", dashed=False, rad=0.0):
    ax.annotate(
        "",
        xy=end,
        xytext=start,
        arrowprops=dict(
            arrowstyle=style,
            color=color,
            lw=lw,
            linestyle="--" if dashed else "-",
            shrinkA=2,
            shrinkB=2,
            connectionstyle=f"arc3,rad={rad}",
        ),
    )


def _directions(ax, forward, inverse, one_pass):
    """The two directions under the graph: forward (data -> noise) left to right, inverse back;
    ``one_pass``: (forward, inverse), each True when that direction is one pass of the layer."""
    for y, text, right, one in (
        (0.55, forward, True, one_pass[0]),
        (0.2, inverse, False, one_pass[1]),
    ):
        color = ONE_PASS if one else SEQUENTIAL
        start, end = ((0.2, y), (1.3, y)) if right else ((1.3, y), (0.2, y))
        _arrow(ax, start, end, color=color, lw=2.5, dashed=not one)
        ax.text(1.45, y, text, va="center", fontsize=10.5, color=color)


def _ends(ax, rows, left, right, kept=()):
    """x_i boxes on the left, z_i boxes on the right, one per row (y positions ``rows``)."""
    for i, y in enumerate(rows, 1):
        _box(ax, 0.6, y, f"$x_{i}$", KEPT if i in kept else DATA)
        _box(ax, 10.4, y, f"$z_{i}$", KEPT if i in kept else NOISE)
    ax.text(0.6, rows[0] + 0.45, left, ha="center", fontsize=10)
    ax.text(10.4, rows[0] + 0.45, right, ha="center", fontsize=10)


def coupling():
    """Real NVP's affine coupling (Sec. 3.3); NSF-C puts a spline in the orange boxes."""
    fig, ax = _canvas(
        "One coupling layer (Real NVP; NSF-C: a spline in the orange boxes)",
        "mask $b = (1, 1, 0, 0)$: $x_1, x_2$ are kept (grey), $x_3, x_4$ are transformed by "
        "functions of the kept ones",
    )
    rows = [4.4, 3.75, 2.05, 1.35]
    _ends(ax, rows, "data x", "noise z", kept=(1, 2))
    for y in rows[:2]:  # kept: the identity, both ways
        _arrow(ax, (1.05, y), (9.95, y), color="#777777")
    _region(ax, 3.2, 2.5, 6.5, 3.35, "")
    ax.text(
        4.85,
        3.0,
        "$s, t = \\mathrm{NN}(x_1, x_2)$\nany network, one pass",
        ha="center",
        va="center",
        fontsize=11,
    )
    for y in rows[:2]:  # the conditioner reads the kept half only
        _arrow(ax, (1.05, y), (3.3, 3.2), color="#6a51a3")
    for i, y in enumerate(rows[2:], 3):
        _box(ax, 8.0, y, f"$x_{i} e^{{s_{i}}} + t_{i}$", STEP, w=1.5)
        _arrow(ax, (1.05, y), (7.25, y))
        _arrow(ax, (8.75, y), (9.95, y))
        _arrow(ax, (6.4, 2.75), (7.25, y + 0.15), color="#6a51a3")
    ax.text(8.0, 2.65, "log-det $= s_3 + s_4$", ha="center", fontsize=11)
    _directions(
        ax,
        "forward, data → noise (density): one NN pass, $z_i = x_i e^{s_i} + t_i$",
        "inverse, noise → data (sampling): one NN pass, since $z_{1,2} = x_{1,2}$ gives the same "
        "$s, t$: $x_i = (z_i - t_i) e^{-s_i}$",
        one_pass=(True, True),
    )
    return fig


def _made(ax, rows, reads, writes, label):
    """A MADE drawn as its connectivity: input j (at x = ``reads``) reaches output i (at x =
    ``writes``) only when j < i in the order; output i is (mu_i, alpha_i) or (m_i, s_i)."""
    lo, hi = sorted((reads, writes))
    _region(ax, lo - 0.35, rows[-1] - 0.15, hi + 0.35, rows[0] + 0.75, label)
    for i, yi in enumerate(rows):
        for yj in rows[:i]:  # j < i: a masked weight lets x_j reach output i
            ax.plot([reads, writes], [yj, yi + 0.18], color="#6a51a3", lw=1, alpha=0.8)
        ax.plot([reads], [yi], "o", color="#6a51a3", ms=4)


def _feedback(ax, start, end, text):
    """The D-pass direction of an autoregressive layer: what the layer has built so far goes back
    into the MADE (dashed, from the orange column at ``start`` to the MADE's inputs at ``end``)."""
    y = 1.4
    ax.plot([start, start, end], [1.72, y, y], color=SEQUENTIAL, lw=1.8, ls="--")
    _arrow(ax, (end, y), (end, 1.9), color=SEQUENTIAL, lw=1.8, dashed=True)
    ax.text(
        (start + end) / 2, y - 0.07, text, ha="center", va="top", fontsize=10.5, color=SEQUENTIAL
    )


def maf():
    """MAF's layer (Eq. 4-5): z_i = (x_i - mu_i) exp(-alpha_i), (mu_i, alpha_i) from x_<i."""
    fig, ax = _canvas(
        "One MAF layer (NSF-AR: a spline in the orange boxes)",
        "MADE: output i sees only $x_{<i}$ (its masks; the order is reversed between layers)",
    )
    rows = [4.4, 3.6, 2.8, 2.0]
    _ends(ax, rows, "data x", "noise z")
    _made(ax, rows, 2.0, 5.9, "MADE$(x)$ → all $(\\mu_i, \\alpha_i)$, one pass")
    for i, y in enumerate(rows, 1):
        _arrow(ax, (1.05, y), (7.25, y), color="#444444")  # x_i itself goes to its own step
        ax.text(6.05, y + 0.22, f"$\\mu_{i}, \\alpha_{i}$", fontsize=10, va="center")
        _arrow(ax, (6.6, y + 0.2), (7.3, y + 0.2), color="#6a51a3")
        _box(ax, 8.1, y, f"$(x_{i} - \\mu_{i}) e^{{-\\alpha_{i}}}$", STEP, w=1.7)
        _arrow(ax, (8.95, y), (9.95, y))
    ax.text(8.1, 5.0, "log-det $= -\\sum_i \\alpha_i$", ha="center", fontsize=11)
    _feedback(
        ax, 8.1, 2.0, "inverse: the x built so far goes back into the MADE; pass k fixes $x_k$"
    )
    _directions(
        ax,
        "forward, data → noise (density): x is known, so one MADE pass gives every "
        "$(\\mu_i, \\alpha_i)$",
        "inverse, noise → data (sampling): $x_i = z_i e^{\\alpha_i} + \\mu_i$ needs $x_{<i}$ "
        "first: D sequential MADE passes",
        one_pass=(True, False),
    )
    return fig


def iaf():
    """IAF's step (Alg. 1): x_i = sigma_i z_i + (1 - sigma_i) m_i, (m_i, s_i) from z_<i."""
    fig, ax = _canvas(
        "One IAF step (the MAF layer read the other way)",
        "the MADE reads the noise side: output i sees only $z_{<i}$; $\\sigma_i = "
        "\\mathrm{sigmoid}(s_i)$ (gated step, Alg. 1)",
    )
    rows = [4.4, 3.6, 2.8, 2.0]
    _ends(ax, rows, "data x", "noise z")
    _made(ax, rows, 9.0, 5.1, "MADE$(z)$ → all $(m_i, s_i)$, one pass")
    for i, y in enumerate(rows, 1):
        _arrow(ax, (9.95, y), (3.95, y), color="#444444")  # z_i itself goes to its own step
        ax.text(4.35, y + 0.22, f"$m_{i}, s_{i}$", fontsize=10, va="center")
        _arrow(ax, (4.4, y + 0.2), (3.75, y + 0.2), color="#6a51a3")
        _box(ax, 2.75, y, f"$\\sigma_{i} z_{i} + (1 - \\sigma_{i}) m_{i}$", STEP, w=2.1)
        _arrow(ax, (1.7, y), (1.05, y))
    ax.text(2.75, 5.0, "log-det $= \\sum_i \\log \\sigma_i$", ha="center", fontsize=11)
    _feedback(
        ax, 2.75, 9.0, "forward: the z built so far goes back into the MADE; pass k fixes $z_k$"
    )
    _directions(
        ax,
        "forward, data → noise (density of a new x): $z_i$ needs $z_{<i}$ first: "
        "D sequential MADE passes",
        "inverse, noise → data (sampling, and the density of its own samples): one MADE pass",
        one_pass=(False, True),
    )
    return fig


def planar():
    """Rezende & Mohamed's planar layer (Eq. 10-12): x = z + u tanh(w^T z + b)."""
    fig, ax = _canvas(
        "One planar layer (Rezende & Mohamed 2015)",
        "no conditioner network: parameters $u, w \\in R^D$, $b$; the paper's map f is noise → "
        "data, this repository's inverse",
    )
    rows = [4.3, 3.4, 2.5, 1.6]
    _ends(ax, rows, "data x", "noise z")
    _box(ax, 7.2, 2.95, "$w^T z + b$", NET, w=1.9, h=0.6)
    _box(ax, 4.9, 2.95, "$h = \\tanh(\\cdot)$", NET, w=1.5, h=0.6)
    for i, y in enumerate(rows, 1):
        _arrow(ax, (9.95, y), (8.15, 2.95 + 0.1 * (y - 2.95)), color="#6a51a3")  # the dot product
        _arrow(ax, (9.95, y), (3.45, y), color="#444444")
        _box(ax, 2.7, y, f"$z_{i} + \\hat u_{i} h$", STEP, w=1.5)
        _arrow(ax, (1.95, y), (1.05, y))
        _arrow(ax, (4.15, 2.95), (3.45, y + 0.1), color="#6a51a3")
    _arrow(ax, (6.25, 2.95), (5.65, 2.95), color="#6a51a3")
    ax.text(
        5.8,
        4.85,
        "log-det $= \\log|1 + \\hat u^T w\\, \\tanh'(a + b)|$: one dot product",
        ha="center",
        fontsize=11,
    )
    _directions(
        ax,
        "forward, data → noise (density): a 1-D root find (Newton) for $a = w^T z$, "
        "then $z = x - \\hat u \\tanh(a + b)$",
        "inverse, noise → data (sampling): closed form, $x = z + \\hat u \\tanh(w^T z + b)$, O(D)",
        one_pass=(False, True),
    )
    return fig


DIAGRAMS = {"coupling": coupling, "maf": maf, "iaf": iaf, "planar": planar}


def passes(features=8, n=256, seed=0):
    """Count, for one layer of each family on R^features, the conditioner passes (MADE or coupling
    network calls) of the density (``log_prob``: forward, data -> noise) and of sampling with its
    own density (``rsample_and_log_prob``: inverse), on ``n`` points; for planar and radial, which
    have no conditioner, the steps of the root finder in the density. Returns a list of rows
    (family, density passes, sampling passes, root-finder steps or None)."""
    import torch

    import planar_flows.planar as planar_core
    from common.nets import MADE
    from iaf import IAF
    from maf import MAF
    from nsf import NSF
    from planar_flows import PlanarFlow
    from realnvp import RealNVP
    from realnvp.realnvp import AffineCoupling

    def conditioners(flow):
        for module in flow.modules():
            if isinstance(module, MADE):
                yield module
            elif isinstance(module, AffineCoupling) or type(module).__name__ == "SplineCoupling":
                yield module.net

    def count(flow, fn):
        calls = []
        hooks = [m.register_forward_hook(lambda *a: calls.append(1)) for m in conditioners(flow)]
        steps = []
        solve = planar_core.solve_increasing

        def counted_solve(g, *args, **kwargs):  # every evaluation of the 1-D map is one step
            return solve(lambda a: steps.append(1) or g(a), *args, **kwargs)

        planar_core.solve_increasing = counted_solve
        try:
            with torch.no_grad():
                fn()
        finally:
            planar_core.solve_increasing = solve
            for h in hooks:
                h.remove()
        return len(calls), len(steps)

    torch.manual_seed(seed)
    x = torch.randn(n, features)
    families = {  # one layer each (IAF: one step after its diagonal start)
        "planar": PlanarFlow(features, transforms=1),
        "radial": PlanarFlow(features, transforms=1, kind="radial"),
        "MAF": MAF(features, transforms=1),
        "IAF": IAF(features, transforms=1),
        "Real NVP (coupling)": RealNVP(features, transforms=1),
        "NSF-AR": NSF(features, transforms=1),
        "NSF-C": NSF(features, transforms=1, coupling=True),
    }
    rows = []
    for name, flow in families.items():
        density, steps = count(flow, lambda flow=flow: flow.log_prob(x))
        sampling, _ = count(flow, lambda flow=flow: flow.rsample_and_log_prob(n))
        rows.append((name, density, sampling, steps if name == "planar" else None))
    return rows


def draw(out=OUT, only=None):
    """Write ``graph_<name>.png`` into ``out`` for each diagram (``only``: some); return paths."""
    from common.plot import plt, save_figure

    paths = []
    for name, diagram in DIAGRAMS.items():
        if only and name not in only:
            continue
        path = Path(out) / f"graph_{name}.png"
        fig = diagram()
        save_figure(fig, path)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv=None):
    parser = script_parser(__doc__, "tools.diagrams")
    parser.add_argument("--out", default=str(OUT), help=f"output folder (default: {OUT})")
    parser.add_argument("--only", nargs="+", choices=DIAGRAMS, help="only these diagrams")
    parser.add_argument(
        "--passes",
        action="store_true",
        help="instead of drawing: count the conditioner passes of one layer of each family",
    )
    parser.add_argument("--features", type=int, default=8, help="D for --passes (default: 8)")
    args = parser.parse_args(argv)
    if args.features < 1:
        parser.error(f"--features must be a positive integer, got {args.features}")
    if args.passes:
        print(f"one layer on R^{args.features}, 256 points N(0, I); conditioner passes:")
        rows = [("family", "density (forward)", "sampling (inverse)")]
        for name, density, sampling, steps in passes(args.features):
            extra = f", {steps} root-finder steps" if steps is not None else ""
            rows.append((name, f"{density}{extra}", str(sampling)))
        widths = [max(len(row[k]) for row in rows) for k in range(3)]
        for row in rows:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        return
    if Path(args.out).exists() and not Path(args.out).is_dir():
        parser.error(f"--out {args.out!r} is a file; give a folder")
    for path in draw(args.out, args.only):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
