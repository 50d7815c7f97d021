"""The pytest plugin of one grading run (``python -m pytest -p course.runner``), in a subprocess.

Reads its settings from the environment: ``COURSE_GLOBS`` (a JSON list of node-id patterns: only the
tests they match run), ``COURSE_TIMEOUT`` (seconds per test: a test that runs longer fails with
"timed out", the others go on) and the results channel the grader opened for it:
``COURSE_RESULTS_FD`` (the write end of a pipe the grader reads: one line per collected test, per
finished test and one at the end of the session) and ``COURSE_KEY_FD`` (a pipe the grader wrote a
one-time key into; every line is sealed with an HMAC of that key, so a line written by anything
else is a forgery the grader sees). Both are read when pytest loads this plugin, before any test
file (and so any student code) is imported, and the variables are removed from the environment.
Without them it changes nothing.

Forging here would need code that runs inside pytest to dig the key out of this module's closures:
the grader also cross-checks the records against the tests it collected itself from the reference
and against pytest's exit status (see ``course/grade.py``, ``run_tests``), and it counts a skipped
test as failed.
"""

import ctypes
import gc
import hashlib
import hmac
import json
import os
import re
import signal
import traceback

import pytest

from course.grade import matches
from course.pytest_plugin import PROPERTY

GLOBS = json.loads(os.environ.get("COURSE_GLOBS", "null") or "null")
TIMEOUT = float(os.environ.get("COURSE_TIMEOUT", "0") or 0)
MEMORY = os.environ.get("COURSE_MEMORY", "?")  # MiB, for the message
MESSAGE_CHARS = 600  # what one failed test may say (the grader caps it again)


def _channel():
    """A function that writes one sealed line to the grader, or None without a channel."""
    fd, key_fd = os.environ.pop("COURSE_RESULTS_FD", ""), os.environ.pop("COURSE_KEY_FD", "")
    if not fd or not key_fd:
        return None
    with os.fdopen(int(key_fd), "rb") as file:
        key = file.read()
    out = os.fdopen(int(fd), "w", buffering=1)
    dumps, new, sha256, count = json.dumps, hmac.new, hashlib.sha256, [0]

    def send(record):
        count[0] += 1
        line = dumps({**record, "seq": count[0]}, sort_keys=True)
        out.write(line + "\t" + new(key, line.encode(), sha256).hexdigest() + "\n")
        out.flush()

    return send


SEND = _channel()


class TestTimedOut(Exception):  # noqa: N818 (the name is what a student reads)
    pass


def pytest_collection_modifyitems(config, items):
    if GLOBS is None:
        return
    kept = [item for item in items if matches(item.nodeid, GLOBS)]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept
    if SEND:
        for item in kept:
            SEND({"collected": item.nodeid})


class TestOutOfMemory(Exception):  # noqa: N818
    pass


def _out_of_memory(error):
    text = str(error)
    return isinstance(error, MemoryError) or (
        isinstance(error, RuntimeError) and ("can't allocate memory" in text or "bad_alloc" in text)
    )


def _free(error):
    """Drop what the failed test built: the frames of the error (and of the errors it chains)
    hold it; then hand the freed heap back to the system (the address-space limit counts it)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    timed = TIMEOUT and hasattr(signal, "setitimer")

    def expired(signum, frame):
        raise TestTimedOut(f"timed out after {TIMEOUT:g} s (the per-test limit of the grader)")

    if timed:
        previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    full = False
    try:
        return (yield)
    except (MemoryError, RuntimeError) as error:
        if not _out_of_memory(error):
            raise
        _free(error)  # so that the part's next tests can run
        full = True
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    if full:
        _free(None)
        # what is left of the heap is not to be trusted with the next test: the part ends here
        item.session.shouldstop = "a test ran out of memory"
        raise TestOutOfMemory(
            f"ran out of memory: the grader gives a part {MEMORY} MiB (an unbounded loop or graph?)"
        )


def _message(report):
    text = str(report.longrepr or "")
    lines = [line for line in text.splitlines() if re.match(r"^E\s", line)] or text.splitlines()
    message = "\n".join(lines[-8:])
    if len(message) > MESSAGE_CHARS:
        message = message[: MESSAGE_CHARS - 20] + "\n... (cut by the grader)"
    return message


def pytest_runtest_logreport(report):
    if not SEND:
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
    elif outcome == "skipped":
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        record["message"] = f"skipped ({str(reason)[:200]}): a skipped test counts as failed"
    SEND(record)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if SEND:
        SEND({"finished": int(exitstatus), "testscollected": session.testscollected})
