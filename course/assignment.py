"""Make a course assignment: a copy of the repository with the marked solutions replaced by stubs.

Marker syntax (comments only, so the reference code runs and reads as before)::

    def forward(self, x, context=None):
        # BEGIN SOLUTION maf.step
        # u_i = (x_i - mu_i) exp(-alpha_i) (Eq. 4); the log-det is -sum_i alpha_i (Eq. 5).
        mu, alpha = self.conditioner(x, context)
        u = (x - mu) * torch.exp(-alpha)  # Eq. 4
        return u, -alpha.sum(-1)
        # END SOLUTION

* ``BEGIN SOLUTION <part>`` opens a region; ``<part>`` is ``<paper>.<name>``, where ``<paper>`` is
  the folder the file lives in (``maf``, ``nsf``, ..., or ``common`` for the shared code). Several
  regions may share a part (e.g. a layer's ``forward`` and ``inverse``): the part is graded as a
  whole.
* the comment lines directly after ``BEGIN`` are the part's hint: they survive stripping as
  ``# HINT: ...`` lines (and form the error message), so the reference states each hint once.
* ``END SOLUTION`` closes it, at the same indentation. Regions hold whole statements and do not
  nest.

In the student copy every selected region becomes its hint lines and ``raise
NotImplementedError("<part>: <hint>")`` at the marker's indentation; in regions that are not
selected only the marker and hint lines disappear. The copy holds every file of the repository that
git tracks (or would track: untracked files that .gitignore does not exclude), with nothing else
changed, plus ``assignment.toml``, which names the parts that were set (``python -m course.grade``
reads it).

    python -m course.assignment --out ../hw                          # every part of every paper and of common/
    python -m course.assignment --out ../hw --papers maf nsf         # only these papers' parts
    python -m course.assignment --out ../hw --papers maf common      # ... plus the shared parts (MADE masks, ...)
    python -m course.assignment --out ../hw --parts maf.step --ipynb # single parts; also write .ipynb notebooks
    python -m course.assignment --list                               # the parts and where they are
"""

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from tools.papers import PAPERS

GROUPS = PAPERS + ("common",)  # "common" is the pseudo-paper of the shared code's parts
MANIFEST = "assignment.toml"
NOT_COPIED = {
    ".git",
    "runs",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".benchmarks",
    ".ipynb_checkpoints",
}

PART_ID = r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+"
MARKER_LIKE = re.compile(r"#\s*(BEGIN|END)\W*SOLUTION", re.IGNORECASE)
BEGIN = re.compile(rf"# BEGIN SOLUTION ({PART_ID})")
END = re.compile(r"# END SOLUTION")
# the comment lines right after BEGIN are the part's hint: written once, read by the reference's
# reader as a comment and by the student as the stub's "HINT:" lines
HINT = re.compile(r"#(?! (?:BEGIN|END) SOLUTION)\s?(.*)")


class MarkerError(ValueError):
    """A solution marker is malformed, unbalanced or nested; the message names the file and line."""


@dataclass
class Region:
    """One marked region: ``begin`` and ``end`` are the 1-based lines of its two markers."""

    part: str
    path: str
    begin: int
    end: int
    indent: str
    hints: list = field(default_factory=list)

    @property
    def paper(self):
        return self.part.split(".")[0]

    @property
    def message(self):
        return f"{self.part}: {' '.join(self.hints) if self.hints else 'not implemented yet'}"


def _comment_lines(source):
    """Line numbers (1-based) of the comments that stand alone on their line (tokenize: never inside strings)."""
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and token.line.strip() == token.string.strip():
            lines.add(token.start[0])
    return lines


def parse(source, path="<string>"):
    """The solution regions of ``source``, in order. Raises ``MarkerError`` (with ``path:line``) on any defect."""
    lines = source.splitlines()
    regions, open_region = [], None
    folder = Path(path).parts[0] if Path(path).parts else ""
    for number in sorted(_comment_lines(source)):
        line = lines[number - 1]
        text, indent = line.strip(), line[: len(line) - len(line.lstrip())]
        where = f"{path}:{number}"
        if not MARKER_LIKE.match(text):
            continue
        begin, end = BEGIN.fullmatch(text), END.fullmatch(text)
        if begin:
            if open_region is not None:
                raise MarkerError(
                    f"{where}: nested BEGIN SOLUTION: the region opened at "
                    f"{path}:{open_region.begin} is not closed yet (regions do not nest)"
                )
            part = begin.group(1)
            if folder in GROUPS and part.split(".")[0] != folder:
                raise MarkerError(
                    f"{where}: part {part!r} must start with the folder name, '{folder}.'"
                )
            open_region = Region(part, path, number, 0, indent)
        elif end:
            if open_region is None:
                raise MarkerError(f"{where}: END SOLUTION without a BEGIN SOLUTION before it")
            if indent != open_region.indent:
                raise MarkerError(
                    f"{where}: END SOLUTION is not at the indentation of its BEGIN SOLUTION "
                    f"({path}:{open_region.begin})"
                )
            open_region.end = number
            _check_body(open_region, lines)
            regions.append(open_region)
            open_region = None
        else:
            raise MarkerError(
                f"{where}: malformed marker {text!r}; expected '# BEGIN SOLUTION <paper>.<name>' "
                f"(e.g. '# BEGIN SOLUTION maf.step') or '# END SOLUTION'"
            )
    if open_region is not None:
        raise MarkerError(
            f"{path}:{open_region.begin}: BEGIN SOLUTION {open_region.part} is never closed "
            f"(no END SOLUTION before the end of the file)"
        )
    return regions


def _check_body(region, lines):
    """Collect the hint lines after BEGIN and check that no line of the region is indented less than the markers."""
    body = lines[region.begin : region.end - 1]
    for line in body:
        hint = HINT.fullmatch(line.strip())
        if not hint or line[: len(region.indent)] != region.indent:
            break
        region.hints.append(hint.group(1).strip())
    for offset, line in enumerate(body):
        if line.strip() and not line.startswith(region.indent):
            raise MarkerError(
                f"{region.path}:{region.begin + 1 + offset}: line inside the region "
                f"{region.part} is indented less than its BEGIN SOLUTION marker"
            )


def stub(region):
    """The lines that replace ``region``: its hints, then ``raise NotImplementedError("<part>: <hint>")``."""
    lines = [f"{region.indent}# HINT: {hint}" for hint in region.hints]
    message = region.message.replace("\\", "\\\\").replace('"', '\\"')
    first = f'{region.indent}raise NotImplementedError("{message}")'
    if len(first) <= 100:
        return lines + [first]
    width = 96 - len(region.indent) - 4
    pieces = textwrap.wrap(message, width, drop_whitespace=False)
    return (
        lines
        + [f"{region.indent}raise NotImplementedError("]
        + [f'{region.indent}    "{piece}"' for piece in pieces]
        + [f"{region.indent})"]
    )


def strip(source, path="<string>", selected=lambda part: True):
    """``source`` with every region whose part is ``selected`` replaced by its stub, and the marker
    and hint
    lines of the other regions removed. Returns (new source, regions)."""
    regions = parse(source, path)
    lines = source.splitlines()
    out, start = [], 0
    for region in regions:
        out += lines[start : region.begin - 1]
        body = lines[region.begin + len(region.hints) : region.end - 1]
        out += stub(region) if selected(region.part) else body
        start = region.end
    out += lines[start:]
    ending = "\n" if source.endswith("\n") else ""
    return "\n".join(out) + ending, regions


def marked_files(root=ROOT):
    """Every .py file in common/ and the paper folders (tutorials included), relative to ``root``."""
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


def _selector(papers, parts):
    if parts:
        return lambda part: part in parts
    return lambda part: part.split(".")[0] in papers


def make_assignment(out, papers=GROUPS, parts=None, force=False, ipynb=False, root=ROOT):
    """Write the student copy into ``out``; returns the regions turned into stubs."""
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
    files = [p for p in repository_files(root) if not (root / p).resolve().is_relative_to(out)]
    marked = set(marked_files(root))
    for path in files:
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if path in marked:
            target.write_text(strip((root / path).read_text(), str(path), selected)[0])
        else:
            shutil.copy2(root / path, target)
    chosen = [r for r in regions if selected(r.part)]
    set_parts = sorted({r.part for r in chosen})
    set_papers = sorted({r.paper for r in chosen}, key=GROUPS.index)
    (out / MANIFEST).write_text(
        "# Written by `python -m course.assignment`: the parts this copy asks you to write.\n"
        '# Each is a `raise NotImplementedError("<part>: ...")` in the code; `python -m course.grade` grades them.\n'
        f"papers = {json.dumps(set_papers)}\n"
        f"parts = {json.dumps(set_parts)}\n"
    )
    if ipynb:
        import jupytext

        for notebook in sorted(out.glob("*/tutorial.py")):
            jupytext.write(jupytext.read(notebook), notebook.with_suffix(".ipynb"))
    return chosen


def main(argv=None):
    parser = argparse.ArgumentParser(
        "python -m course.assignment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    except (MarkerError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    parts = sorted({r.part for r in chosen})
    print(
        f"wrote {os.path.abspath(args.out)}: {len(chosen)} regions stubbed in {len(parts)} parts: {', '.join(parts)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
