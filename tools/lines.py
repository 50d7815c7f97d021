"""Count each paper's logical lines (statements): no blank lines, comments or docstrings.

Counts the paper's core modules: every .py file of the folder except ``__init__.py``,
``__main__.py``,
``tutorial.py``, ``vae.py`` (the VAE experiment scripts; the amortised layers themselves are in the
core
modules), ``benchmark*.py`` and ``train*.py``.

    python -m tools.lines            # table for all five papers
"""

import argparse
import ast
import io
import tokenize
from pathlib import Path

from tools.papers import PAPERS

SKIP = ("__init__.py", "__main__.py", "tutorial.py", "vae.py")


def logical_lines(source):
    """Python's logical lines: one per statement, however many physical lines it is wrapped over.

    Blank lines, comments and module, class and function docstrings do not count.

    >>> logical_lines("x = f(1,\\n      2)\\n# a comment\\n\\ny = 3\\n")
    2
    """
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
        ):
            first = body[0]
            value = getattr(first, "value", None)
            if (
                isinstance(first, ast.Expr)
                and isinstance(value, ast.Constant)
                and isinstance(value.value, str)
            ):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    statements = 0
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        # a NEWLINE token ends a logical line; a wrapped statement has one, on its last line
        if token.type == tokenize.NEWLINE and token.start[0] not in docstrings:
            statements += 1
    return statements


def core_files(folder):
    return sorted(
        p
        for p in Path(folder).glob("*.py")
        if p.name not in SKIP and not p.name.startswith(("benchmark", "train"))
    )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("papers", nargs="*", default=PAPERS, help="paper folders to count")
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    print(f"{'paper':<14}{'logical lines':>14}  files")
    for paper in args.papers:
        files = core_files(root / paper)
        if files:
            total = sum(logical_lines(f.read_text()) for f in files)
            print(f"{paper:<14}{total:>14}  {', '.join(f.name for f in files)}")


if __name__ == "__main__":
    main()
