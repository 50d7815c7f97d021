"""The stub reporting of an assignment, as a pytest plugin (``-p course.pytest_plugin``).

When a test fails on a stub's ``NotImplementedError("<part>: <hint>")``, the first such test of each
part fails with a one-line message naming the part, the following ones are reported as skipped
("needs <part>"), and the run ends with ``not implemented: <part> (blocks N tests)``. Without stubs
(the reference), it changes nothing.

Loaded where an assignment is worked on or graded, never by the repository's own tests: the grader
passes ``-p course.pytest_plugin`` to every pytest it runs (``course/grade.py``), and a student copy
(``python -m course.assignment``) gets a top-level ``conftest.py`` that loads it, so a student's
``python -m pytest`` reports the stubs the same way.
"""

import re
import traceback
from pathlib import Path

import pytest

STUB_MESSAGE = re.compile(r"([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+): ")
PROPERTY = "not_implemented"
BLOCKED = pytest.StashKey[dict]()


def unimplemented_part(excinfo):
    """(part, message, "file:line") when the exception (or its cause) is a stub's; else None."""
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
    # the part already has its one failure: the other tests it blocks are skipped
    if part in blocked:
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
