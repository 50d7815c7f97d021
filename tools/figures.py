"""Redraw the layer-by-layer figures of the folder READMEs from the shipped checkpoints.

    python -m tools.figures              # <folder>/checkpoints -> <folder>/figures/layers_*.png
    python -m tools.figures --only nsf   # one folder's figures

Each figure is ``common.plot.plot_layers`` of a checkpoint the folder's notebook loads (seed 0),
with the target's samples closing the row where the flow was fitted to samples. It imports every
paper, so it lives in ``tools/``: ``common/`` imports no paper folder.
"""

from pathlib import Path

from common.plot import plot_layers, plt
from tools.cli import script_parser

FOLDERS = ("intro", "planar_flows", "iaf", "maf", "realnvp", "nsf")
ROOT = Path(__file__).resolve().parent.parent


def layer_figures(only=None):
    """Draw the figures from the shipped checkpoints; ``only``: the folders to draw (default: all).

    The papers are imported here, not at the top, so that ``--help`` imports none of them."""
    from common.checkpoint import load_checkpoint
    from common.flows import Flow, Inverse
    from common.runtime import seed_everything
    from common.targets import get_target
    from iaf import IAF
    from maf import MAF
    from nsf import NSF
    from planar_flows import PlanarFlow
    from realnvp import RealNVP

    figures = [  # (checkpoint, model, figure, target whose samples close the row, axis range)
        ("intro/checkpoints/gauss8.pt", RealNVP(2, 8, (64, 64)), "intro", "gauss8", None),
        (
            "planar_flows/checkpoints/planar_U2_K32.pt",
            PlanarFlow(2, 32),
            "planar_flows",
            None,
            None,
        ),
        ("iaf/checkpoints/energy_sine.pt", IAF(2), "iaf", None, None),
        ("maf/checkpoints/banana_maf5.pt", MAF(2, 5), "maf", "banana", (-6, 10)),
        ("realnvp/checkpoints/ua_nb.pt", RealNVP(2, 8, (64, 64)), "realnvp", "ua_nb", None),
        ("nsf/checkpoints/checker_nsf_ar.pt", NSF(2, 5, (64, 64)), "nsf", "checker", None),
        (
            "nsf/checkpoints/sine.pt",
            Flow(Inverse(NSF(2, 3, (64, 64)).transform), features=2),
            "nsf",
            None,
            None,
        ),
    ]
    for checkpoint, flow, folder, target, lim in figures:
        if only and folder not in only:
            continue
        seed_everything(0)
        load_checkpoint(flow, ROOT / checkpoint)
        data = get_target(target).sample(2000) if target else None
        path = ROOT / folder / "figures" / f"layers_{Path(checkpoint).stem}.png"
        plt.close(plot_layers(flow, data=data, lim=lim, path=path))
        print(f"wrote {path.relative_to(ROOT)}")


def main(argv=None):
    parser = script_parser(__doc__, "tools.figures")
    parser.add_argument("--only", nargs="+", choices=FOLDERS, help="only these folders")
    layer_figures(parser.parse_args(argv).only)


if __name__ == "__main__":
    main()
