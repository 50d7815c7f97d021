"""A Griffe extension of the course site (docs/mkdocs.yml): docstring examples render as code.

The docstrings of common/ show doctest examples (``>>>`` lines and their output) in free text, not
in a Google-style ``Examples:`` section; Markdown reads ``>>>`` as three nested blockquotes and
runs the lines together. This fences every such block as ``pycon`` (highlighted Python session)
before mkdocstrings renders the docstring; the source files stay as they are.
"""

import re

try:
    from griffe import Extension
except ImportError:  # without the site's packages (docs/requirements.txt): fence_doctests alone
    Extension = object

FENCE = re.compile(r"^\s*(```|~~~)")
PROMPT = re.compile(r"^(\s*)>>>( |$)")


def fence_doctests(text):
    """``text`` with each doctest block (``>>>``/``...`` lines, then output up to a blank line)
    inside a ```` ```pycon ```` fence; text already in a fence is left alone."""
    out, lines, i, in_fence = [], text.splitlines(), 0, False
    while i < len(lines):
        line = lines[i]
        if FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else PROMPT.match(line)
        if m is None:
            out.append(line)
            i += 1
            continue
        indent, block = m.group(1), []
        while i < len(lines) and lines[i].strip():
            block.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        if out and out[-1].strip():
            out.append("")  # a fence must not continue a paragraph
        out += [f"{indent}```pycon", *(indent + b for b in block), f"{indent}```"]
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


class DoctestAsCode(Extension):
    """Fence the doctest examples of every docstring that Griffe loads."""

    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
