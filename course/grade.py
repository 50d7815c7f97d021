"""Grade an assignment: run the tests of every part and print points per paper and per part
    (markdown).

    python -m course.grade                      # in a student copy: the parts named in
    assignment.toml python -m course.grade --papers maf nsf     # only these papers' parts (in the
    reference: all by default) python -m course.grade > grade.md           # the table goes to
    stdout, pytest's output to stderr

The weights live in one file, ``course/grading.toml``: for each part its points and the tests that
    check it
(pytest node ids, ``*`` matches anything). A part earns ``points * passed / run`` of its tests; a
    test that
raises the NotImplementedError of a stub counts as failed. Exits 1 when any test fails, 0 when all
    pass.

The pytest hooks below are imported by ``tests/conftest.py``: when a test fails on a stub's
``NotImplementedError("<part>: <hint>")``, the first such test of each part fails with a one-line
    message
naming the part, the following ones are reported as skipped ("needs <part>"), and the run ends with
``not implemented: <part> (blocks N tests)``. Without stubs (the reference), they change nothing.
"""

import argparse
import contextlib
import re
import sys
import tomllib
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = Path("course") / "grading.toml"
MANIFEST = "assignment.toml"
STUB_MESSAGE = re.compile(r"([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+): ")
PROPERTY = "not_implemented"
BLOCKED = pytest.StashKey[dict]()


# ---------------------------------------------------------------- pytest hooks (imported by
# tests/conftest.py)


def unimplemented_part(excinfo):
    """(part, message, "file:line") when the exception, or one it was raised from, is a stub's; else None."""
    error, seen = excinfo.value if excinfo is not None else None, set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        match = STUB_MESSAGE.match(str(error)) if isinstance(error, NotImplementedError) else None
        if match:
            frame = traceback.extract_tb(error.__traceback__)[-1]
            try:
                filename = Path(frame.filename).resolve().relative_to(Path.cwd())
            except ValueError:
                filename = frame.filename
            return match.group(1), str(error), f"{filename}:{frame.lineno}"
        error = error.__cause__ or error.__context__
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    found = unimplemented_part(call.excinfo) if report.failed else None
    if found is None:
        return report
    part, message, where = found
    report.user_properties.append((PROPERTY, part))
    blocked = item.config.stash.setdefault(BLOCKED, {})
    if (
        part in blocked
    ):  # the part already has its one failure: the other tests it blocks are skipped
        path, line, _ = item.location
        report.outcome, report.longrepr = (
            "skipped",
            (str(path), (line or 0) + 1, f"Skipped: needs {part}"),
        )
    else:
        report.longrepr = (
            f"{part} is not implemented yet: NotImplementedError raised at {where}\n"
            f"    {message}\n"
            f"Write the part there; every test that needs it is skipped until then."
        )
    blocked.setdefault(part, []).append(item.nodeid)
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    blocked = config.stash.get(BLOCKED, {})
    if blocked:
        terminalreporter.section("assignment parts not implemented yet")
        for part, nodes in blocked.items():
            terminalreporter.line(
                f"not implemented: {part} (blocks {len(nodes)} test{'s' * (len(nodes) != 1)})"
            )


# ---------------------------------------------------------------- grading


def load_weights(path):
    """{part: {"points": float, "tests": [patterns]}} from the weights file, checked."""
    with open(path, "rb") as file:
        weights = tomllib.load(file)
    for part, entry in weights.items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("points"), (int, float))
            or not isinstance(entry.get("tests"), list)
            or not (entry["tests"] or entry["points"] == 0)
        ):
            raise ValueError(
                f'{path}: ["{part}"] needs points = <number> and tests = [<node id patterns>] '
                "(tests = [] only for an ungraded part, points = 0)"
            )
    return weights


def _pattern(glob):
    return re.compile(".*".join(re.escape(piece) for piece in glob.split("*")))


def matches(nodeid, globs):
    return any(_pattern(g).fullmatch(nodeid) for g in globs)


class Recorder:
    """A pytest plugin: keeps only the tests the graded parts name, and records each one's outcome."""

    def __init__(self, globs):
        self.globs, self.outcomes, self.blocked_by, self.collected = globs, {}, {}, []

    def pytest_collection_modifyitems(self, config, items):
        kept = [item for item in items if matches(item.nodeid, self.globs)]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
        self.collected = [item.nodeid for item in kept]

    def pytest_runtest_logreport(self, report):
        for name, value in report.user_properties:
            if name == PROPERTY:
                self.blocked_by[report.nodeid] = value
        previous = self.outcomes.get(report.nodeid)
        if report.failed or report.nodeid in self.blocked_by:
            self.outcomes[report.nodeid] = "failed"
        elif report.skipped and previous != "failed":
            self.outcomes[report.nodeid] = "skipped"
        elif report.when == "call" and previous is None:
            self.outcomes[report.nodeid] = "passed"


def run_tests(globs, root=ROOT, verbose=False):
    """Run the tests matching ``globs`` in-process from ``root`` (pytest's output on stderr); returns a Recorder."""
    files = sorted({g.split("::")[0] for g in globs if "*" not in g.split("::")[0]} or {"tests"})
    recorder = Recorder(globs)
    with contextlib.chdir(root), contextlib.redirect_stdout(sys.stderr):
        pytest.main(
            ["-q" if not verbose else "-v", "-p", "no:cacheprovider", *files], plugins=[recorder]
        )
    return recorder


def score(weights, parts, recorder):
    """One row per part: its tests, how many passed, the points earned, and why points were lost."""
    rows = []
    for part in parts:
        nodes = [n for n in recorder.collected if matches(n, weights[part]["tests"])]
        counted = [n for n in nodes if recorder.outcomes.get(n) != "skipped"]
        passed = sum(recorder.outcomes.get(n) == "passed" for n in counted)
        points = weights[part]["points"]
        earned = round(points * passed / len(counted), 2) if counted else 0.0
        blockers = sorted({recorder.blocked_by[n] for n in counted if n in recorder.blocked_by})
        if not weights[part]["tests"]:
            note = "ungraded (a notebook exercise: run the notebook)"
        elif not counted:
            note = "no test ran"
        elif part in blockers:
            note = "not implemented"
        elif blockers:
            note = "blocked by " + ", ".join(blockers)
        else:
            note = "" if passed == len(counted) else "wrong results"
        rows.append(
            {
                "part": part,
                "paper": part.split(".")[0],
                "run": len(counted),
                "passed": passed,
                "points": points,
                "earned": earned,
                "note": note,
            }
        )
    return rows


def _number(value):
    return f"{value:g}"


def table(rows):
    """The markdown table a TA pastes: each part, a subtotal per paper, the total."""
    lines = ["| paper | part | tests passed | points | note |", "|---|---|---|---|---|"]
    papers = list(dict.fromkeys(row["paper"] for row in rows))
    for paper in papers:
        mine = [row for row in rows if row["paper"] == paper]
        for row in mine:
            lines.append(
                f"| {paper} | `{row['part']}` | {row['passed']} / {row['run']} | "
                f"{_number(row['earned'])} / {_number(row['points'])} | {row['note']} |"
            )
        earned, points = sum(r["earned"] for r in mine), sum(r["points"] for r in mine)
        lines.append(f"| **{paper}** | | | **{_number(round(earned, 2))} / {_number(points)}** | |")
    earned, points = sum(r["earned"] for r in rows), sum(r["points"] for r in rows)
    lines.append(f"| **total** | | | **{_number(round(earned, 2))} / {_number(points)}** | |")
    return "\n".join(lines)


def graded_parts(weights, root=ROOT, papers=None):
    """The parts to grade: those of assignment.toml in a student copy, else every part of the weights file."""
    manifest = root / MANIFEST
    if manifest.exists():
        with open(manifest, "rb") as file:
            parts = tomllib.load(file)["parts"]
    else:
        parts = list(weights)
    missing = [p for p in parts if p not in weights]
    if missing:
        raise ValueError(f"parts {missing} have no entry in {WEIGHTS}")
    return [p for p in weights if p in parts and (not papers or p.split(".")[0] in papers)]


def main(argv=None):
    parser = argparse.ArgumentParser(
        "python -m course.grade",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--papers", nargs="+", metavar="PAPER", help="grade only these papers' parts"
    )
    parser.add_argument("--weights", default=None, help=f"the weights file (default: {WEIGHTS})")
    parser.add_argument("--verbose", action="store_true", help="list every test pytest runs")
    args = parser.parse_args(argv)
    weights_path = Path(args.weights) if args.weights else ROOT / WEIGHTS
    try:
        weights = load_weights(weights_path)
        parts = graded_parts(weights, ROOT, args.papers)
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not parts:
        print("error: no part to grade (check --papers)", file=sys.stderr)
        return 2
    globs = [g for part in parts for g in weights[part]["tests"]]
    recorder = run_tests(globs, ROOT, args.verbose)
    rows = score(weights, parts, recorder)
    print(table(rows))
    failed = [n for n, outcome in recorder.outcomes.items() if outcome == "failed"]
    return 1 if failed or any(row["earned"] < row["points"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
