"""The pytest plugin of one grading run (``python -m pytest -p course.runner``), in a subprocess.

Reads three environment variables: ``COURSE_GLOBS`` (a JSON list of node-id patterns: only the
tests they match run), ``COURSE_RESULTS`` (a file that gets one JSON line per test as it ends, so a
run killed half-way still tells what finished) and ``COURSE_TIMEOUT`` (seconds per test: a test that
runs longer fails with "timed out", the others go on). Without them it changes nothing.
"""

import json
import os
import re
import signal

import pytest

from course.grade import matches
from course.pytest_plugin import PROPERTY

GLOBS = json.loads(os.environ.get("COURSE_GLOBS", "null") or "null")
RESULTS = os.environ.get("COURSE_RESULTS")
TIMEOUT = float(os.environ.get("COURSE_TIMEOUT", "0") or 0)


class TestTimedOut(Exception):  # noqa: N818 (the name is what a student reads)
    pass


def pytest_collection_modifyitems(config, items):
    if GLOBS is None:
        return
    kept = [item for item in items if matches(item.nodeid, GLOBS)]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept
    if RESULTS:
        with open(RESULTS, "a") as file:
            for item in kept:
                file.write(json.dumps({"collected": item.nodeid}) + "\n")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    if not TIMEOUT or not hasattr(signal, "setitimer"):
        return (yield)

    def expired(signum, frame):
        raise TestTimedOut(f"timed out after {TIMEOUT:g} s (the per-test limit of the grader)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    try:
        return (yield)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _message(report):
    text = str(report.longrepr or "")
    lines = [line for line in text.splitlines() if re.match(r"^E\s", line)] or text.splitlines()
    return "\n".join(lines[-8:])[-1500:]


def pytest_runtest_logreport(report):
    if not RESULTS:
        return
    blocked = dict(report.user_properties).get(PROPERTY)
    if report.failed or blocked:
        outcome = "failed"
    elif report.skipped:
        outcome = "skipped"
    elif report.when == "call":
        outcome = "passed"
    else:
        return
    record = {"nodeid": report.nodeid, "when": report.when, "outcome": outcome}
    if blocked:
        record["blocked_by"] = blocked
    if blocked and report.skipped:
        record["message"] = f"needs {blocked}, which is not implemented"
    elif outcome == "failed":
        record["message"] = _message(report)
    with open(RESULTS, "a") as file:
        file.write(json.dumps(record) + "\n")
