"""Solution markers: find the regions of the reference, turn them into stubs, and splice a
student's code back into the reference.

In the reference a region is ``# BEGIN SOLUTION <part>`` ... ``# END SOLUTION``; the comment lines
right after BEGIN are the part's hint. In the student copy a set region becomes::

    # BEGIN YOUR CODE <part> (only the lines between these two markers are graded)
    # HINT: <hint line>
    raise NotImplementedError("<part>: <hint>")
    # END YOUR CODE

and the grader takes exactly the lines between the student's two markers (``student_blocks``) and
puts them in place of the reference's region (``splice``). Shipped in the student copy: the
student's ``pytest`` run and ``python -m course.grade`` need nothing else from ``course/``.
"""

import io
import re
import textwrap
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from tools.papers import PAPERS

# "common" is the pseudo-paper of the shared code's parts, "intro" the opening notebook's
GROUPS = PAPERS + ("common", "intro")

PART_ID = r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+"
MARKER_LIKE = re.compile(r"#\s*(BEGIN|END)\W*SOLUTION", re.IGNORECASE)
BEGIN = re.compile(rf"# BEGIN SOLUTION ({PART_ID})")
END = re.compile(r"# END SOLUTION")
# the comment lines right after BEGIN are the part's hint: written once, read by the reference's
# reader as a comment and by the student as the stub's "HINT:" lines
HINT = re.compile(r"#(?! (?:BEGIN|END) SOLUTION)\s?(.*)")
STUDENT_BEGIN = re.compile(rf"# BEGIN YOUR CODE ({PART_ID})\b.*")
STUDENT_END = re.compile(r"# END YOUR CODE\b.*")
STUDENT_NOTE = "(only the lines between these two markers are graded)"


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
    """Line numbers (1-based) of the comments alone on their line (tokenize: not in strings)."""
    lines = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT and token.line.strip() == token.string.strip():
                lines.add(token.start[0])
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # a student file that does not tokenize to the end: the comments seen so far
    return lines


def parse(source, path="<string>"):
    """The solution regions of ``source``, in order. Raises ``MarkerError`` (``path:line``)."""
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
    """Collect the hint lines after BEGIN; no line of the region may be indented less than it."""
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


def body(region, lines):
    """The solution lines of ``region`` (no markers, no hint lines) from the file's ``lines``."""
    return lines[region.begin + len(region.hints) : region.end - 1]


def stub(region):
    """What replaces a set region: the student's markers around its hints and a raise."""
    indent = region.indent
    lines = [f"{indent}# BEGIN YOUR CODE {region.part} {STUDENT_NOTE}"]
    lines += [f"{indent}# HINT: {hint}" for hint in region.hints]
    message = region.message.replace("\\", "\\\\").replace('"', '\\"')
    first = f'{indent}raise NotImplementedError("{message}")'
    if len(first) <= 100:
        lines.append(first)
    else:
        width = 96 - len(indent) - 4
        pieces = textwrap.wrap(message, width, drop_whitespace=False)
        lines += [f"{indent}raise NotImplementedError("]
        lines += [f'{indent}    "{piece}"' for piece in pieces] + [f"{indent})"]
    return lines + [f"{indent}# END YOUR CODE"]


def strip(source, path="<string>", selected=lambda part: True):
    """``source`` with every region whose part is ``selected`` replaced by its stub, and the marker
    and hint lines of the other regions removed. Returns (new source, regions)."""
    regions = parse(source, path)
    lines = source.splitlines()
    out, start = [], 0
    for region in regions:
        out += lines[start : region.begin - 1]
        out += stub(region) if selected(region.part) else body(region, lines)
        start = region.end
    out += lines[start:]
    ending = "\n" if source.endswith("\n") else ""
    return "\n".join(out) + ending, regions


def student_markers(source):
    """[(part, line)] of the ``BEGIN YOUR CODE`` markers of a student's file, in order."""
    lines = source.splitlines()
    found = []
    for number in sorted(_comment_lines(source)):
        begin = STUDENT_BEGIN.fullmatch(lines[number - 1].strip())
        if begin:
            found.append((begin.group(1), number))
    return found


def student_blocks(source, path="<string>", plain=False):
    """[(part, [lines])] for each ``BEGIN YOUR CODE`` ... ``END YOUR CODE`` block of a student's
    file, in order. Raises ``MarkerError`` when the markers are unbalanced or nested. ``plain``:
    every line may be a marker (for text files that are not Python, such as course/wrong/)."""
    lines = source.splitlines()
    blocks, open_block = [], None
    candidates = range(1, len(lines) + 1) if plain else sorted(_comment_lines(source))
    for number in candidates:
        text = lines[number - 1].strip()
        begin, end = STUDENT_BEGIN.fullmatch(text), STUDENT_END.fullmatch(text)
        if begin:
            if open_block is not None:
                raise MarkerError(f"{path}:{number}: BEGIN YOUR CODE inside another block")
            open_block = (begin.group(1), number)
        elif end:
            if open_block is None:
                raise MarkerError(f"{path}:{number}: END YOUR CODE without a BEGIN YOUR CODE")
            blocks.append((open_block[0], lines[open_block[1] : number - 1]))
            open_block = None
    if open_block is not None:
        raise MarkerError(f"{path}:{open_block[1]}: BEGIN YOUR CODE is never closed")
    return blocks


def splice(source, path, part, bodies):
    """The reference ``source`` with the regions of ``part`` replaced by ``bodies`` (one list of
    lines per region, in order); the other regions keep their solution, markers removed."""
    regions = parse(source, path)
    mine = [r for r in regions if r.part == part]
    if len(mine) != len(bodies):
        raise MarkerError(
            f"{path}: {part} has {len(mine)} regions in the reference, the submission "
            f"{len(bodies)} BEGIN YOUR CODE blocks"
        )
    lines, out, start, given = source.splitlines(), [], 0, iter(bodies)
    for region in regions:
        out += lines[start : region.begin - 1]
        out += next(given) if region.part == part else body(region, lines)
        start = region.end
    out += lines[start:]
    return "\n".join(out) + "\n"
