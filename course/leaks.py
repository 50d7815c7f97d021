"""The leak check: no statement of a stripped region may appear anywhere else in the student copy.

The fingerprints of a region are its statements and its larger expressions, parsed with ``ast``.
A statement matches when it is the same after renaming local names (``u = (x - mu) * ...`` and
``z = (y - m) * ...`` are one statement); an expression matches when it is the region's expression
with some of its sub-expressions replaced by local names (``torch.log((1 + (1 - t**2) * c).abs())``
is ``torch.log((1 + (1 - t**2) * (w * u).sum(-1)).abs())`` with ``c`` for ``(w * u).sum(-1)``), as
long as at least ``MIN_OPS`` operations (arithmetic, calls, subscripts, comparisons) agree.
Whitespace, line breaks and comments never matter. The copy is searched everywhere: code,
docstrings and other strings, comments, notebooks (.ipynb) and text files (.md, .txt, .toml),
where any line or paragraph that parses as Python is checked. The stub's own ``# HINT:`` lines are
the instructor's and are not searched.
"""

import ast
import builtins
import json
import re
import textwrap
from copy import deepcopy
from pathlib import Path

from course.markers import body, parse

MIN_OPS = 4  # operations an expression must share with a region's to count as a leak
MIN_STATEMENT_OPS = 3  # operations a region's statement needs to be a fingerprint on its own
GLOBALS = {"torch", "F", "nn", "np", "math", "jacobian", *dir(builtins)}
OPS = (ast.BinOp, ast.UnaryOp, ast.Call, ast.Compare, ast.Subscript, ast.BoolOp, ast.IfExp)
TEXT_SUFFIXES = {".md", ".txt", ".toml", ".rst", ".cfg"}
# Known, reviewed repetitions: (file, part) -> why the statement there is not the graded part's
# solution. Keep this short; everything else that matches refuses the copy.
ALLOWED = {
    ("iaf/iaf.py", "maf.step"): "DiagonalAffine, an elementwise affine map with learned constants "
    "(no conditioner, no D-pass inverse); its formula is the maf.step hint's",
    ("tests/test_common.py", "maf.step"): "ElementwiseAffine, the tests' elementwise affine layer; "
    "its formula is the maf.step hint's",
    # issue 26: with torch.exp(x) read as x.exp(), these two also share (a - b) * exp(-c) with the
    # batch norm's inverse; they are elementwise affine layers with learned constants, no statistics
    ("iaf/iaf.py", "common.batch_norm"): "DiagonalAffine, an elementwise affine map with learned "
    "constants: it shares (z - shift) * exp(-log_scale) with any elementwise affine inverse, "
    "not the batch statistics, the per-channel broadcast or the log-det over positions",
    ("tests/test_common.py", "common.batch_norm"): "ElementwiseAffine, the tests' elementwise "
    "affine layer: it shares (x - shift) * exp(-log_scale) with any elementwise affine inverse",
    ("intro/tutorial.py", "maf.step"): "Affine, the opening notebook's first layer: an elementwise "
    "affine map with learned constants (no conditioner, no D-pass inverse); its formula is the "
    "maf.step hint's (issue 26: found once broadcasting, .expand, is normalised)",
    # the gated step's inverse divides by sigma in log space, (y - ...) * exp(-log_sigma), the shape
    # of any elementwise affine inverse; these two are elementwise layers, not the gated step
    ("iaf/iaf.py", "iaf.step"): "DiagonalAffine.inverse, an elementwise affine map with learned "
    "constants; it shares only the division by exp(log_sigma) with the gated step's inverse",
    (
        "tests/test_common.py",
        "iaf.step",
    ): "ElementwiseAffine.inverse, the tests' elementwise affine "
    "layer; it shares only the division by exp(log_scale) with the gated step's inverse",
}
PROMPT = re.compile(r"^\s*(?:#+|>>>|\.\.\.)?\s?")


def _is_op(node):
    """An operation, not a negative literal such as ``-1``."""
    literal = isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant)
    return isinstance(node, OPS) and not literal


def _ops(node):
    return sum(_is_op(n) for n in ast.walk(node))


def _local(node):
    return isinstance(node, ast.Name) and node.id not in GLOBALS


def _normal(node):
    """The statement's dump with local names numbered in order of appearance."""
    names = {}
    for n in ast.walk(node):
        if _local(n):
            n.id = names.setdefault(n.id, f"_v{len(names)}")
    return ast.dump(node, annotate_fields=False, include_attributes=False)


BROADCAST_CALLS = {"unsqueeze", "expand", "expand_as"}  # shape-only: x.expand(n) is x
REDUCTIONS = {"sum", "mean", "prod"}
# torch.f(x, ...) (or math.f, np.f) is x.f(...) for these
METHODS = {"exp", "log", "log1p", "expm1", "tanh", "cosh", "sigmoid", "sqrt", "abs", "square"}
METHODS |= {"norm", "sin", "cos"}
COMMUTATIVE = (ast.Add, ast.Mult)
# what a match that inlines a region's local names must also share (a call, an attribute, a
# constant other than 0 or 1 is fine too): arithmetic alone, a * (b - c) + d * e, is too common
ANCHORS = (ast.Call, ast.Attribute, ast.Constant)


def _literal(node):
    return isinstance(node, ast.Constant) and node.value in (0, 1, None)


def _is_broadcast_index(index):
    """``None``, ``...`` and ``:`` only, at least one ``None``: ``x[:, None]``, ``x[None]``."""
    items = index.elts if isinstance(index, ast.Tuple) else [index]

    def plain(item):
        if isinstance(item, ast.Slice):
            return item.lower is item.upper is item.step is None
        return isinstance(item, ast.Constant) and item.value in (None, Ellipsis)

    some_none = any(isinstance(i, ast.Constant) and i.value is None for i in items)
    return some_none and all(plain(i) for i in items)


class _Canonical(ast.NodeTransformer):
    """One spelling for what only broadcasting or notation tells apart: ``x[:, None]``,
    ``x.unsqueeze(1)``, ``x.expand(...)`` are ``x``; ``a @ b`` is ``(a * b).sum(-1)``;
    ``torch.sum(x, d)`` is ``x.sum(d)``, ``torch.exp(x)`` (``math.``, ``np.``) is ``x.exp()``;
    ``dim=d`` is positional and ``keepdim`` dropped."""

    def visit_Subscript(self, node):
        self.generic_visit(node)
        return node.value if _is_broadcast_index(node.slice) else node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.MatMult):
            product = ast.BinOp(node.left, ast.Mult(), node.right)
            return _reduce(product, "sum", [ast.UnaryOp(ast.USub(), ast.Constant(1))])
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        func = node.func
        if not isinstance(func, ast.Attribute):
            return node
        if func.attr in BROADCAST_CALLS:
            return func.value
        if func.attr in METHODS and _is_module(func.value) and node.args and not node.keywords:
            return _reduce(node.args[0], func.attr, node.args[1:])
        if func.attr in REDUCTIONS:
            args, keywords = list(node.args), []
            for keyword in node.keywords:
                if keyword.arg == "dim":
                    args.insert(1 if _is_torch(func.value) else 0, keyword.value)
                elif keyword.arg != "keepdim":
                    keywords.append(keyword)
            if _is_torch(func.value) and args:
                return _reduce(args[0], func.attr, args[1:], keywords)
            return _reduce(func.value, func.attr, args, keywords)
        return node


def _is_module(node):
    return isinstance(node, ast.Name) and node.id in ("torch", "math", "np")


def _is_torch(node):
    return isinstance(node, ast.Name) and node.id == "torch"


def _reduce(value, name, args, keywords=()):
    return ast.Call(ast.Attribute(value, name, ast.Load()), list(args), list(keywords))


def canonical(tree):
    """``tree`` (modified in place) with broadcasting and notation normalised (``_Canonical``)."""
    tree = _Canonical().visit(tree)
    return ast.fix_missing_locations(tree)


def _dump(node):
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def _match(pattern, candidate, bound=None):
    """Operations of ``pattern`` that ``candidate`` repeats; None when they differ. A local name of
    ``candidate`` stands for any sub-expression of ``pattern``, and a local name of ``pattern``
    for any sub-expression of ``candidate`` (the same one wherever that name appears: a solution
    written with its intermediates inlined); ``+`` and ``*`` match in either order."""
    bound = {} if bound is None else bound
    if _local(candidate) and isinstance(pattern, ast.expr):
        stands = _dump(pattern)
        if bound.setdefault(("candidate", candidate.id), stands) != stands:
            return None
        if _local(pattern) and bound.setdefault(("pattern", pattern.id), _dump(candidate)) != (
            _dump(candidate)
        ):
            return None
        return 0
    if _local(pattern) and isinstance(candidate, ast.expr):
        seen = _dump(candidate)
        if bound.setdefault(("pattern", pattern.id), seen) != seen:
            return None
        bound["inlined"] = True
        return 0
    if type(pattern) is not type(candidate):
        return None
    if isinstance(pattern, ast.BinOp) and isinstance(pattern.op, COMMUTATIVE):
        if type(pattern.op) is not type(candidate.op):
            return None
        best = None
        for left, right in ((candidate.left, candidate.right), (candidate.right, candidate.left)):
            trial = dict(bound)
            a = _match(pattern.left, left, trial)
            b = None if a is None else _match(pattern.right, right, trial)
            if b is not None and (best is None or a + b + 1 > best[0]):
                best = (a + b + 1, trial)
        if best is None:
            return None
        bound.update(best[1])
        return best[0]
    count = int(_is_op(pattern))
    if isinstance(pattern, ANCHORS) and not _literal(pattern):
        bound["anchors"] = bound.get("anchors", 0) + 1
    for name in pattern._fields:
        if name == "ctx":
            continue
        a, b = getattr(pattern, name, None), getattr(candidate, name, None)
        if isinstance(a, list) or isinstance(b, list):
            if not isinstance(a, list) or not isinstance(b, list) or len(a) != len(b):
                return None
            pairs = zip(a, b, strict=True)
        else:
            pairs = [(a, b)]
        for x, y in pairs:
            if isinstance(x, ast.AST) or isinstance(y, ast.AST):
                if not isinstance(x, ast.AST) or not isinstance(y, ast.AST):
                    return None
                sub = _match(x, y, bound)
                if sub is None:
                    return None
                count += sub
            elif x != y and not (_local(pattern) and name == "id"):
                return None
    return count


class Fingerprints:
    """The statements and expressions of the stripped regions, indexed for the search."""

    def __init__(self):
        self.statements, self.expressions = {}, {}

    def add(self, region, lines):
        code = textwrap.dedent("\n".join(body(region, lines)))
        try:
            tree = canonical(ast.parse(code))
        except SyntaxError:
            return
        where = f"{region.part} ({region.path}:{region.begin})"
        for node in ast.walk(tree):
            if isinstance(node, ast.stmt) and not isinstance(node, ast.FunctionDef):
                if _ops(node) >= MIN_STATEMENT_OPS and not hasattr(node, "body"):
                    self.statements.setdefault(_normal(_copy(node)), where)
            if isinstance(node, ast.expr) and _ops(node) >= MIN_OPS:
                self.expressions.setdefault(type(node), []).append((node, where))

    def find(self, tree):
        """(line offset, what leaked) for each match in ``tree``."""
        found = []
        tree = canonical(deepcopy(tree))  # line numbers kept
        for node in ast.walk(tree):
            if isinstance(node, ast.stmt) and not hasattr(node, "body"):
                where = self.statements.get(_normal(_copy(node)))
                if where:
                    found.append((node.lineno, where))
                    continue
            if isinstance(node, ast.expr) and _ops(node) >= MIN_OPS:
                for pattern, where in self.expressions.get(type(node), ()):
                    bound = {}
                    count = _match(pattern, node, bound)
                    if bound.get("inlined") and not bound.get("anchors"):
                        continue
                    if count is not None and count >= MIN_OPS:
                        found.append((node.lineno, where))
                        break
        return found


def _copy(node):
    return ast.parse(ast.unparse(node)).body[0] if isinstance(node, ast.stmt) else node


def fingerprints(root, paths, selected):
    """Fingerprints of the ``selected`` regions of the reference files ``paths`` under ``root``."""
    prints = Fingerprints()
    for path in paths:
        lines = (Path(root) / path).read_text().splitlines()
        for region in parse("\n".join(lines), str(path)):
            if selected(region.part):
                prints.add(region, lines)
    return prints


def _snippets(lines, first=1):
    """(line number, tree) for every line and every paragraph of text that parses as Python."""
    cleaned = [PROMPT.sub("", line, count=1) if line.strip() else "" for line in lines]
    out, paragraph = [], []
    for number, line in enumerate(cleaned + [""], start=first):
        original = lines[number - first] if number - first < len(lines) else ""
        if line.strip() and "HINT:" not in original:
            paragraph.append((number, line))
            continue
        if len(paragraph) > 1:
            tree = _parse(textwrap.dedent("\n".join(text for _, text in paragraph)))
            if tree is not None:
                out.append((paragraph[0][0], tree))
        paragraph = []
    for number, line in enumerate(cleaned, start=first):
        skip = not line.strip() or "HINT:" in lines[number - first]
        tree = None if skip else _parse(line.strip())
        if tree is not None:
            out.append((number, tree))
    return out


def _parse(text):
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None


def _python_sources(text):
    """(line number, tree) of a .py file: its code, then its strings and comments as text."""
    lines = text.splitlines()
    out, tree = [], _parse(text)
    if tree is not None:
        out.append((1, tree))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and "\n" in node.value
            ):
                for number, sub in _snippets(node.value.splitlines()):
                    out.append((node.lineno + number - 1, sub))
    comments = [
        (n, line.split("#", 1)[1])
        for n, line in enumerate(lines, start=1)
        if "#" in line and "HINT:" not in line
    ]
    for n, comment in comments:
        sub = _parse(comment.strip())
        if sub is not None:
            out.append((n, sub))
    return out


def _notebook_sources(text):
    out = []
    for index, cell in enumerate(json.loads(text).get("cells", [])):
        source = "".join(cell.get("source", []))
        lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        tree = _parse("\n".join(lines)) if cell.get("cell_type") == "code" else None
        if tree is not None:
            out.append((1, tree, f"cell {index + 1}"))
        out += [(n, t, f"cell {index + 1}") for n, t in _snippets(source.splitlines())]
    return out


def find_leaks(copy, prints, skip=()):
    """["file:line: ..."] for every statement of a stripped region found in the copy ``copy``."""
    copy, leaks = Path(copy), []
    for path in sorted(p for p in copy.rglob("*") if p.is_file()):
        rel = path.relative_to(copy)
        if rel in skip or "__pycache__" in rel.parts:
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        if path.suffix == ".py":
            sources = [(n, t, None) for n, t in _python_sources(text)]
        elif path.suffix == ".ipynb":
            sources = _notebook_sources(text)
        elif path.suffix in TEXT_SUFFIXES:
            sources = [(n, t, None) for n, t in _snippets(text.splitlines())]
        else:
            continue
        seen = set()
        # a notebook written from its paired tutorial.py (--ipynb) has the .py file's allowances
        names = {
            rel.as_posix(),
            rel.with_suffix(".py").as_posix() if rel.suffix == ".ipynb" else "",
        }
        for offset, tree, cell in sources:
            for line, where in prints.find(tree):
                if any((name, where.split()[0]) in ALLOWED for name in names):
                    continue
                number = offset + line - 1
                key = (number, where)
                if key in seen:
                    continue
                seen.add(key)
                place = f"{rel}:{number}" + (f" ({cell})" if cell else "")
                lines = text.splitlines()
                shown = lines[number - 1].strip() if not cell and number <= len(lines) else ""
                leaks.append(f"{place}: a statement of {where} appears here: {shown}".rstrip())
    return leaks
