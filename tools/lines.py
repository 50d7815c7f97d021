"""Count each paper's core module: logical lines, physical lines and the share of prose.

The core modules are every .py file of the folder except ``__init__.py``, ``__main__.py``,
``tutorial.py``, ``tutorial_checks.py`` (the notebook exercises' checks), ``vae.py`` (the VAE
experiment scripts; the amortised layers themselves are in the core modules), ``benchmark*.py`` and
``train*.py``. For each paper it prints:

* logical lines: Python's logical lines, one per statement however many lines it is wrapped over;
  no blank lines, comments or docstrings (the README's budget of ~100);
* physical lines: every line of the files, blank lines, comments and docstrings included;
* prose: the share of the files' non-blank characters that are in comments and docstrings.

    python -m tools.lines                # table for all five papers
    python -m tools.lines maf nsf        # only these
"""

import ast
import io
import tokenize
from pathlib import Path

from tools.cli import script_parser
from tools.papers import PAPERS

# tutorial_checks.py: the notebook exercises' checks, beside tutorial.py, not the paper
SKIP = ("__init__.py", "__main__.py", "tutorial.py", "tutorial_checks.py", "vae.py")


def _docstring_lines(source):
    """The line numbers covered by module, class and function docstrings."""
    lines = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if not (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
        ):
            continue
        first = body[0]
        value = getattr(first, "value", None)
        if (
            isinstance(first, ast.Expr)
            and isinstance(value, ast.Constant)
            and isinstance(value.value, str)
        ):
            lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def logical_lines(source):
    """Python's logical lines: one per statement, however many physical lines it is wrapped over.

    Blank lines, comments and module, class and function docstrings do not count.

    >>> logical_lines("x = f(1,\\n      2)\\n# a comment\\n\\ny = 3\\n")
    2
    """
    docstrings = _docstring_lines(source)
    statements = 0
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        # a NEWLINE token ends a logical line; a wrapped statement has one, on its last line
        if token.type == tokenize.NEWLINE and token.start[0] not in docstrings:
            statements += 1
    return statements


def physical_lines(source):
    """Every line of the source, blank lines, comments and docstrings included.

    >>> physical_lines("x = 1\\n\\n# a comment\\n")
    3
    """
    return len(source.splitlines())


def prose_share(source):
    """The fraction of the source's non-blank characters that are in comments and docstrings.

    A comment counts from its ``#``, a docstring with its quotes; whitespace counts nowhere.

    >>> prose_share("x = 1  # one\\n")  # '#one' of 'x=1#one'
    0.5714285714285714
    """
    prose, total = _characters(source)
    return prose / total if total else 0.0


def _characters(source):
    """(non-blank characters in comments and docstrings, all non-blank characters)."""
    docstrings = _docstring_lines(source)
    prose = 0
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        is_docstring = token.type == tokenize.STRING and token.start[0] in docstrings
        if token.type == tokenize.COMMENT or is_docstring:
            prose += sum(not c.isspace() for c in token.string)
    return prose, sum(not c.isspace() for c in source)


def core_files(folder):
    return sorted(
        p
        for p in Path(folder).glob("*.py")
        if p.name not in SKIP and not p.name.startswith(("benchmark", "train"))
    )


def count(files):
    """(logical lines, physical lines, prose share) of the files together."""
    sources = [f.read_text() for f in files]
    prose, total = (sum(column) for column in zip(*map(_characters, sources), strict=True))
    return (
        sum(map(logical_lines, sources)),
        sum(map(physical_lines, sources)),
        prose / total if total else 0.0,
    )


def main(argv=None):
    parser = script_parser(__doc__, "tools.lines")
    parser.add_argument(
        "papers", nargs="*", default=PAPERS, metavar="PAPER", help=f"one of {', '.join(PAPERS)}"
    )
    args = parser.parse_args(argv)
    unknown = [paper for paper in args.papers if paper not in PAPERS]
    if unknown:
        parser.error(f"unknown paper folder {unknown[0]!r}, expected one of {', '.join(PAPERS)}")
    root = Path(__file__).resolve().parent.parent
    print(f"{'paper':<14}{'logical lines':>14}{'physical lines':>16}{'prose':>7}  files")
    for paper in args.papers:
        files = core_files(root / paper)
        if files:
            logical, physical, prose = count(files)
            names = ", ".join(f.name for f in files)
            print(f"{paper:<14}{logical:>14}{physical:>16}{prose:>6.0%}  {names}")


if __name__ == "__main__":
    main()
