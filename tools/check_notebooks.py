"""Fail when an executed notebook holds fewer figures than it should (a plot that broke silently).

python -m tools.check_notebooks OUT/maf.ipynb OUT/nsf.ipynb ...   # each file named after its folder

Counts the image outputs (``image/png``, ``image/svg+xml``) of every cell of each executed notebook
and compares them with ``MINIMUM`` below; exits 1 naming each notebook that falls short. Used by
``.ci/run`` after it executes every ``*/tutorial.py`` from its own folder with the inline backend.
"""

import json
from pathlib import Path

from tools.cli import script_parser

# the figures each notebook draws in fast mode (FLOWS_FAST=1), one per plt.show() or figure cell
MINIMUM = {
    "intro": 7,
    "planar_flows": 8,
    "iaf": 3,
    "maf": 3,
    "nsf": 5,
    "realnvp": 11,
}


def count_images(path):
    """The number of image outputs in an executed .ipynb."""
    cells = json.loads(Path(path).read_text())["cells"]
    return sum(
        1
        for cell in cells
        for output in cell.get("outputs", [])
        if {"image/png", "image/svg+xml"} & set(output.get("data", {}))
    )


def main(argv=None):
    parser = script_parser(__doc__, "tools.check_notebooks")
    parser.add_argument("paths", nargs="+", metavar="NOTEBOOK.ipynb", help="executed notebooks")
    paths = parser.parse_args(argv).paths
    failed = []
    for path in paths:
        name = Path(path).stem
        if name not in MINIMUM:
            raise SystemExit(
                f"{path}: unknown notebook {name!r}, expected one of {sorted(MINIMUM)}"
            )
        found, expected = count_images(path), MINIMUM[name]
        print(f"{name:<14} {found:>3} figures (at least {expected})")
        if found < expected:
            failed.append(f"{name}: {found} figures, expected at least {expected}")
    if failed:
        raise SystemExit("too few figures: " + "; ".join(failed))


if __name__ == "__main__":
    main()
