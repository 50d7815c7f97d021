"""HANDOUT.md, the homework sheet of a student copy (written by ``python -m course.assignment``)."""

from pathlib import Path

from course.grade import HIDDEN, TIMEOUT, WEIGHTS, load_weights
from course.markers import student_markers

PAPER_NAMES = {
    "common": "the shared library (common/)",
    "planar_flows": "Rezende & Mohamed 2015, Variational Inference with Normalizing Flows",
    "iaf": "Kingma et al. 2016, Improved Variational Inference with Inverse Autoregressive Flow",
    "maf": "Papamakarios et al. 2017, Masked Autoregressive Flow for Density Estimation",
    "nsf": "Durkan et al. 2019, Neural Spline Flows",
    "realnvp": "Dinh et al. 2017, Density estimation using Real NVP",
}


def _points(value):
    return f"{value:g}"


def _student_lines(chosen, copy):
    """{(path, begin in the reference): line of its BEGIN YOUR CODE in the student copy}."""
    lines = {}
    for path in dict.fromkeys(r.path for r in chosen):
        markers = student_markers((Path(copy) / path).read_text())
        for region, (_, line) in zip([r for r in chosen if r.path == path], markers, strict=False):
            lines[path, region.begin] = line
    return lines


def handout(chosen, root, copy=None):
    """The handout's markdown for the stubbed regions ``chosen`` (line numbers from ``copy``)."""
    where_in = _student_lines(chosen, copy) if copy else {}

    def at(region):
        return f"`{region.path}:{where_in.get((region.path, region.begin), region.begin)}`"

    weights = load_weights(Path(root) / WEIGHTS)
    parts = list(dict.fromkeys(r.part for r in chosen))
    graded = [p for p in parts if weights[p]["points"] > 0]
    files = list(dict.fromkeys(r.path for r in chosen if weights[r.part]["points"] > 0))
    total = sum(weights[p]["points"] for p in graded)
    lines = [
        "# Homework: normalizing flows, one paper at a time",
        "",
        f"You implement {len(parts)} part{'s' * (len(parts) != 1)} of this repository "
        f"({len(graded)} graded, {_points(total)} points in all). Each is a "
        "`raise NotImplementedError(...)` between the markers `# BEGIN YOUR CODE <part>` and "
        "`# END YOUR CODE`, with the hints as `# HINT:` lines above it. Everything else is "
        "written for you and is the reference implementation: read it, it is part of the lesson.",
        "",
        "## The parts",
        "",
        "| part | what | points | where |",
        "|---|---|---|---|",
    ]
    for part in parts:
        regions = [r for r in chosen if r.part == part]
        where = ", ".join(at(r) for r in regions)
        points = _points(weights[part]["points"]) if weights[part]["points"] else "ungraded"
        lines.append(f"| `{part}` | {weights[part]['title']} | {points} | {where} |")
    lines += [
        "",
        "## How to work",
        "",
        "1. Read the paper section and the notebook section named under each part (the notebooks "
        "are "
        "the `tutorial.py` files; `jupytext --to ipynb <paper>/tutorial.py` makes a notebook). The "
        "contract every layer follows is in README.md: `forward` maps data to noise, `inverse` "
        "noise to data, each returns `(output, log|det d output / d input|)` with the log-det of "
        "shape (batch,).",
        "2. Write each part between its two markers. Keep the markers: only the lines between them "
        "are graded, so a helper function or a constant written elsewhere is not seen by the "
        "grader (your self-grade runs your files as they are and would still see it): put it "
        "inside the block. **Imports** may go inside the block or at the top of "
        "the file: the grader keeps the `import` lines you add at the top of a file (not "
        "`import *`) and puts them at the start of each of your blocks in that file, so for "
        "imports your self-grade and your grade see the same code.",
        "3. Run the tests: `python -m pytest -q` (all), `python -m pytest -q tests/test_maf.py` "
        "(one paper). A test that reaches an unwritten part fails once, naming it, and the other "
        "tests that need it are skipped; the run ends with `not implemented: <part>`.",
        "4. Self-grade: `python -m course.grade` prints your points per part from the tests you "
        "have, with the weights in `course/grading.toml`.",
        "",
        "## What to upload",
        "",
        "The files you changed, either **in their folders as in this copy** (upload the whole "
        "copy, or e.g. " + ", ".join(f"`{p}`" for p in files[:3]) + "; a zip with one top "
        "folder around them works too) or **flat**: the changed `.py` files alone at the top "
        "level (" + ", ".join(f"`{Path(p).name}`" for p in files[:3]) + "), each file name "
        "standing for the one file of this copy with that name. The files holding your parts:",
        "",
        *[f"- `{p}`" for p in files],
        "",
        "A part whose file is missing scores 0 and says which file; a file with a syntax error "
        "scores 0 for its parts and shows the error with its line.",
        "",
        "## How you are graded",
        "",
        "- Each part is graded **alone**: its tests run with the reference implementation of every "
        "other part in place, so a mistake in one part costs only that part.",
        "- A part's points are split over its test **groups** (one group is one test function with "
        "all its parametrisations) by the weights in `course/grading.toml`; a group earns its "
        "share times the fraction of its tests that pass.",
        "- The grade uses the instructor's copy of the tests and weights: editing `tests/` or "
        "`course/grading.toml` changes your self-grade, not your grade.",
        f"- **Hidden tests exist.** Every graded part has hidden tests (in `{HIDDEN}` of the "
        "instructor's copy, not in yours) that pin the paper's formula at points computed by "
        "hand: the values, not just the shapes, must be right. Your self-grade lists them as "
        '"hidden".',
        f"- Each test has a time limit of {TIMEOUT:g} s; a test that runs longer fails (an "
        "infinite loop costs the part it is in).",
        "",
        "## Each part",
    ]
    for part in parts:
        entry, regions = weights[part], [r for r in chosen if r.part == part]
        public = [p for p in entry["groups"] if not p.startswith(HIDDEN)]
        hidden = [p for p in entry["groups"] if p.startswith(HIDDEN)]
        points = f"{_points(entry['points'])} points" if entry["points"] else "ungraded"
        lines += ["", f"### `{part}`: {entry['title']} ({points})", ""]
        lines += [f"**Read first:** {entry['read']}", "", f"**Contract:** {entry['contract']}", ""]
        lines.append("**Where:** " + ", ".join(at(r) for r in regions))
        lines += ["", "**Hints:**", ""]
        for region in regions:
            lines.append(f"- {at(region)}: {' '.join(region.hints)}")
        if public:
            lines += ["", "**Tests:** " + ", ".join(f"`{p}`" for p in public)]
        if hidden:
            lines += [
                "",
                f"**Hidden:** {len(hidden)} group(s) of hidden tests that pin the formula.",
            ]
    lines.append("")
    return "\n".join(lines)
