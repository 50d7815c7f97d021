"""Make a course assignment: a copy of the repository with the marked solutions replaced by stubs.

Marker syntax (comments only, so the reference code runs and reads as before)::

    def double_plus_one(x):
        # BEGIN SOLUTION demo.step
        # return 2 x + 1 (the hint: every comment line right after BEGIN)
        return 2 * x + 1
        # END SOLUTION

* ``BEGIN SOLUTION <part>`` opens a region; ``<part>`` is ``<paper>.<name>``, where ``<paper>`` is
  the folder the file lives in (``maf``, ``nsf``, ..., or ``common`` for the shared code). Several
  regions may share a part (e.g. a layer's ``forward`` and ``inverse``): the part is graded as a
  whole.
* the comment lines directly after ``BEGIN`` are the part's hint: they survive stripping as
  ``# HINT: ...`` lines (and form the error message), so the reference states each hint once.
* ``END SOLUTION`` closes it, at the same indentation. Regions hold whole statements and do not
  nest.

In the student copy every selected region becomes ``# BEGIN YOUR CODE <part>``, its hint lines,
``raise NotImplementedError("<part>: <hint>")`` and ``# END YOUR CODE``; the grader takes only the
lines between those two markers. In regions that are not selected only the marker and hint lines
disappear. The copy holds what a student needs (see ``NOT_FOR_STUDENTS``: no benchmarks, CI,
hidden tests, wrong implementations or tooling tests), plus ``assignment.toml`` (the parts set),
``HANDOUT.md`` (the homework sheet) and a ``conftest.py`` that loads the stub reporting
(``course/pytest_plugin.py``). Before anything is written to ``--out``, the copy is searched for any
statement of a stripped region (``course/leaks.py``); a hit refuses with file:line.

    python -m course.assignment --out ../hw                      # every part, common/ included
    python -m course.assignment --out ../hw --papers maf nsf     # only these papers' parts
    python -m course.assignment --out ../hw --papers maf common  # ... plus the shared parts
    python -m course.assignment --out ../hw --parts maf.step     # single parts (--ipynb: notebooks)
    python -m course.assignment --list                           # the parts and where they are
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from course.leaks import find_leaks, fingerprints
from course.markers import (
    GROUPS,
    STUDENT_BEGIN,
    MarkerError,
    Region,
    parse,
    splice,
    strip,
    student_blocks,
    student_markers,
)
from tools.cli import script_parser
from tools.papers import PAPERS

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = Path("course") / "grading.toml"
HIDDEN_DIR = "course/hidden_tests/"
INSTRUCTORS = re.compile(r"## For instructors\b")
TESTS_HEADER = re.compile(r'\["([^"]+)"\.tests\]')
HIDDEN_LINE = re.compile(rf'"({re.escape(HIDDEN_DIR)}[^"]*)"(\s*=.*\n?)', re.DOTALL)
MANIFEST = "assignment.toml"
# a notebook exercise (py:percent): an ``exercise`` cell holding ``...``, then the folded solution
CELL_TAGS = re.compile(r"\s*tags=\[([^\]]*)\]")
SOURCE_HIDDEN = 'jupyter={"source_hidden": true}'
FOLDED_NOTE = "# Our solution (folded: open it after you have tried)."
HANDOUT = "HANDOUT.md"
NOT_COPIED = {
    ".git",
    "runs",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".benchmarks",
    ".ipynb_checkpoints",
}
# what a student does not receive (item 8 of issue 15): the benchmarks and their results, CI, the
# course tooling beyond the self-grader, the instructors' notes, hidden tests, the tooling's tests
# the student copy's top-level conftest.py: a student's ``python -m pytest`` reports the stubs
# (the repository's own tests do not load this plugin; the grader passes it with -p)
STUDENT_CONFTEST = '''"""Written by `python -m course.assignment`: a test that needs a part you
have not written yet fails once, naming the part, and the other tests that need it are skipped."""

pytest_plugins = ["course.pytest_plugin"]
'''
NOT_FOR_STUDENTS = (
    "benchmarks/",
    ".ci/",
    "course/assignment.py",
    "course/gradescope.py",
    "course/leaks.py",
    "course/handout.py",
    "course/README.md",
    "course/__main__.py",
    "course/classroom.py",
    "course/hidden_tests/",
    "course/wrong/",
    "tests/test_assignment.py",
    "tests/test_course_",
    "tests/test_benchmarks.py",
    # tests of benchmarks/ alone (issue 26): the copy's suite must collect without benchmarks/
    "tests/test_fit.py",
    "tests/test_board.py",
    "tests/test_notebook_checks.py",  # plants the notebook exercises' reference answers
)
__all__ = [
    "GROUPS",
    "PAPERS",
    "MarkerError",
    "Region",
    "parse",
    "splice",
    "strip",
    "student_blocks",
]


def marked_files(root=ROOT):
    """Every .py file in common/ and the paper folders (tutorials too), relative to ``root``."""
    return sorted(p.relative_to(root) for group in GROUPS for p in (root / group).glob("*.py"))


def all_regions(root=ROOT):
    """Every region of the repository, checked: raises MarkerError on the first defect."""
    return [r for path in marked_files(root) for r in parse((root / path).read_text(), str(path))]


def repository_files(root=ROOT):
    """The files a copy holds: tracked and untracked-but-not-ignored files per git, else a walk."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
            text=True,
        ).stdout.split("\0")
        files = [Path(p) for p in listed if p]
    except (OSError, subprocess.CalledProcessError):
        files = [p.relative_to(root) for p in root.rglob("*") if p.is_file()]
    return sorted(
        {
            p
            for p in files
            if (root / p).is_file() and not NOT_COPIED & set(p.parts) and p.suffix != ".pyc"
        }
    )


def for_students(path):
    """Whether the student copy holds ``path`` (relative to the repository root)."""
    name = path.as_posix()
    return not any(name.startswith(prefix) for prefix in NOT_FOR_STUDENTS)


def _selector(papers, parts):
    if parts:
        return lambda part: part in parts
    return lambda part: part.split(".")[0] in papers


class LeakError(ValueError):
    """A statement of a stripped region appears elsewhere in the student copy (file:line listed)."""


def make_assignment(
    out, papers=GROUPS, parts=None, force=False, ipynb=False, root=ROOT, check=True
):
    """Write the student copy into ``out``; returns the regions turned into stubs. Refuses (before
    anything reaches ``out``) when a statement of a stripped region appears elsewhere in it."""
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a directory, got the file {out}")
    if out.exists() and any(out.iterdir()) and not force:
        raise ValueError(f"{out} is not empty; pass --force to write into it anyway")
    regions = all_regions(root)  # refuse before writing anything
    known = sorted({r.part for r in regions})
    unknown = sorted(set(parts or ()) - set(known))
    if unknown:
        raise ValueError(f"unknown parts {unknown}; the marked parts are {known}")
    selected = _selector(set(papers), set(parts or ()))
    chosen = [r for r in regions if selected(r.part)]
    if not chosen:
        raise ValueError("no part selected (check --papers / --parts)")
    files = [
        p
        for p in repository_files(root)
        if for_students(p) and not (root / p).resolve().is_relative_to(out)
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".assignment-", dir=out.parent))
    try:
        write_copy(scratch, files, selected, chosen, ipynb, root)
        if check:
            prints = fingerprints(root, marked_files(root), selected)
            leaks = find_leaks(scratch, prints)
            if leaks:
                raise LeakError(
                    f"{len(leaks)} statements of stripped regions appear elsewhere in the student "
                    "copy (remove them, or build them from something that is not the graded part):"
                    "\n  " + "\n  ".join(leaks)
                )
        out.mkdir(parents=True, exist_ok=True)
        for entry in scratch.iterdir():
            target = out / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            shutil.move(str(entry), target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return chosen


def write_copy(out, files, selected, chosen, ipynb=False, root=ROOT):
    """The student copy's files, manifest and handout, written into ``out``."""
    from course.handout import handout

    marked = set(marked_files(root))
    for path in files:
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if path in marked:
            text = strip((root / path).read_text(), str(path), selected)[0]
            target.write_text(unfold_stubs(text) if path.name == "tutorial.py" else text)
        else:
            shutil.copy2(root / path, target)
    set_parts = sorted({r.part for r in chosen})
    set_papers = sorted({r.paper for r in chosen}, key=GROUPS.index)
    (out / MANIFEST).write_text(
        "# Written by `python -m course.assignment`: the parts this copy asks you to write.\n"
        "# Each is a `raise NotImplementedError(...)` between `# BEGIN YOUR CODE <part>` and\n"
        "# `# END YOUR CODE`; `python -m course.grade` grades them.\n"
        f"papers = {json.dumps(set_papers)}\n"
        f"parts = {json.dumps(set_parts)}\n"
    )
    (out / HANDOUT).write_text(handout(chosen, root, out))
    if (out / "README.md").is_file():
        (out / "README.md").write_text(student_readme((out / "README.md").read_text()))
    if (out / WEIGHTS).is_file():
        (out / WEIGHTS).write_text(student_weights((out / WEIGHTS).read_text()))
    (out / "conftest.py").write_text(STUDENT_CONFTEST)
    if ipynb:
        import jupytext

        for notebook in sorted(out.glob("*/tutorial.py")):
            jupytext.write(jupytext.read(notebook), notebook.with_suffix(".ipynb"))


def _cell_tags(header):
    """The tags of a py:percent cell header (``# %% tags=["exercise"]``), [] if none."""
    found = CELL_TAGS.search(header)
    return json.loads(f"[{found.group(1)}]") if found else []


def unfold_stubs(text):
    """A stripped notebook (py:percent) as the student copy shows it. A folded solution cell whose
    region became a stub is where the student writes: it loses its folding (the ``solution`` tag
    and ``jupyter={"source_hidden": true}``) and its "Our solution" line, and the ``exercise`` cell
    just before it goes (the grader reads only the stub's block, never that cell's ``...``). Every
    other cell, an unselected part's exercise and folded solution included, is left as it is."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("# %%")]
    cells = [lines[: starts[0] if starts else len(lines)]]
    cells += [lines[a:b] for a, b in zip(starts, [*starts[1:], len(lines)], strict=True)]
    out = []
    for cell in cells:
        header = cell[0] if cell and cell[0].startswith("# %%") else ""
        stubbed = any(STUDENT_BEGIN.fullmatch(line.strip()) for line in cell)
        if "solution" in _cell_tags(header) and stubbed:
            if out and "exercise" in _cell_tags(out[-1][0]):
                out.pop()
            tags = [tag for tag in _cell_tags(header) if tag != "solution"]
            header = CELL_TAGS.sub("", header.replace(SOURCE_HIDDEN, "")).rstrip()
            header = header + (f" tags={json.dumps(tags)}" if tags else "") + "\n"
            cell = [header] + [line for line in cell[1:] if line.strip() != FOLDED_NOTE]
        out.append(cell)
    return "".join(line for cell in out for line in cell)


def student_readme(text):
    """README.md without its instructors' section (its ``## For instructors`` heading up to the
    next ``## `` heading): the table of wrong implementations and the grading internals."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            skipping = INSTRUCTORS.match(line) is not None
        if not skipping:
            out.append(line)
    return "".join(out)


def student_weights(text):
    """The copy's ``course/grading.toml``: each hidden group keeps its part and weight (the
    self-grade lists it as "hidden" with its share of the points) but not its test's name. Raises
    ValueError when the result would not weigh the same or would still name a hidden test."""
    out, part, count = [], None, {}
    for line in text.splitlines(keepends=True):
        header = TESTS_HEADER.match(line)
        if header:
            part = header.group(1)
        hidden = HIDDEN_LINE.match(line)
        if hidden and part:
            count[part] = count.get(part, 0) + 1
            line = f'"{HIDDEN_DIR}{part} (hidden group {count[part]})"{hidden.group(2)}'
        out.append(line)
    result = "".join(out)
    before, after = tomllib.loads(text), tomllib.loads(result)
    same = all(
        sorted(before[p].get("tests", {}).values()) == sorted(after[p].get("tests", {}).values())
        and before[p].get("points") == after[p].get("points")
        for p in before
    )
    hidden = [g for e in before.values() for g in e.get("tests", {}) if g.startswith(HIDDEN_DIR)]
    names = {g.split("::")[-1].split("[")[0].rstrip("*") for g in hidden}
    if not same or before.keys() != after.keys() or any(n and n in result for n in names):
        raise ValueError(f"{WEIGHTS}: the hidden tests' names could not be removed from the copy")
    return result


def fill(copy, part, code):
    """Write ``code`` ({file: [lines of each region]}) between the student markers of ``part`` in
    the student copy ``copy`` (the markers stay): a copy with that part done."""
    for path, bodies in code.items():
        target = Path(copy) / path
        lines, out, given = target.read_text().splitlines(), [], iter(bodies)
        blocks = student_blocks("\n".join(lines), str(path))
        markers = [line for name, line in student_markers("\n".join(lines)) if name == part]
        if len(markers) != len(bodies) or len([b for b in blocks if b[0] == part]) != len(bodies):
            raise ValueError(f"{path}: {len(markers)} blocks of {part}, {len(bodies)} bodies given")
        skipping = False
        for number, line in enumerate(lines, start=1):
            if number in markers:
                out += [line, *next(given)]
                skipping = True
            elif skipping and line.strip().startswith("# END YOUR CODE"):
                out.append(line)
                skipping = False
            elif not skipping:
                out.append(line)
        target.write_text("\n".join(out) + "\n")


def main(argv=None):
    parser = script_parser(__doc__, "course.assignment")
    parser.add_argument(
        "--out", help="directory of the student copy (must be empty unless --force)"
    )
    parser.add_argument(
        "--papers",
        nargs="+",
        choices=GROUPS,
        default=list(GROUPS),
        metavar="PAPER",
        help=f"whose parts to strip, among {', '.join(GROUPS)} (default: all); 'common' is the "
        "shared code's parts (MADE masks, change of variables, reverse-KL loss)",
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        metavar="PART",
        help="strip only these parts, e.g. maf.step (instead of --papers)",
    )
    parser.add_argument(
        "--force", action="store_true", help="write into a non-empty --out directory"
    )
    parser.add_argument(
        "--ipynb", action="store_true", help="also write every tutorial.py as tutorial.ipynb"
    )
    parser.add_argument("--list", action="store_true", help="list the marked parts and exit")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for region in all_regions():
                print(f"{region.part:<28} {region.path}:{region.begin}-{region.end}")
            return 0
        if not args.out:
            parser.error("--out DIR is required (or --list)")
        chosen = make_assignment(args.out, args.papers, args.parts, args.force, args.ipynb)
    except (MarkerError, LeakError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    parts = sorted({r.part for r in chosen})
    print(
        f"wrote {os.path.abspath(args.out)}: {len(chosen)} regions stubbed in {len(parts)} parts: "
        f"{', '.join(parts)}; the homework sheet is {HANDOUT}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
