"""The end-of-session check of tests/conftest.py (tests/leftovers.py): it names each kind of
leftover, ends the processes, and lets alone what is finished or held by a running grader."""

import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from course.grade import SANDBOX_UIDS, uid_lock_path
from tests.leftovers import end_leftovers, leftovers, sandbox_processes

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_child_process_left_running_is_named_then_ended():
    child = subprocess.Popen(SLEEP)
    try:
        assert any(f"child process {child.pid}:" in line for line in leftovers()), leftovers()
        end_leftovers()
        assert child.wait(timeout=10) < 0  # killed by a signal, not finished
        assert not any(str(child.pid) in line for line in leftovers())
    finally:
        child.kill()
        child.wait()


def test_a_finished_child_nobody_waited_for_is_not_a_leftover():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child did not finish"
        time.sleep(0.02)
    assert not any(str(child.pid) in line for line in leftovers())  # a zombie holds nothing
    child.wait()


def test_a_thread_that_is_not_a_daemon_is_named():
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="held-open", daemon=False)
    thread.start()
    try:
        assert any("'held-open'" in line for line in leftovers()), leftovers()
    finally:
        release.set()
        thread.join()
    assert not any("'held-open'" in line for line in leftovers())


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="root only")
def test_a_sandbox_uid_process_is_a_leftover_once_no_grader_holds_its_uid():
    # the last sandbox uid: a grader claims the lowest free one, so none reaches for this one
    uid = SANDBOX_UIDS[-1]
    lock = open(uid_lock_path(uid), "a")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a grader holds the uid of a running part
    # a grandchild, in its own session: it is not a child of this process once its parent exits
    spawn = f"import subprocess, sys; subprocess.Popen({SLEEP!r}, start_new_session=True)"
    subprocess.run([sys.executable, "-c", spawn], user=uid, group=uid, check=True, cwd="/")
    try:
        assert not any(f"sandbox uid {uid}" in line for line in leftovers())
        lock.close()  # the part ended without killing it
        assert any(f"sandbox uid {uid}" in line for line in leftovers()), leftovers()
        assert uid not in sandbox_processes(since=2**62).values()  # not one started later
        end_leftovers()
        deadline = time.monotonic() + 10
        while any(f"sandbox uid {uid}" in line for line in leftovers()):
            assert time.monotonic() < deadline, leftovers()
            time.sleep(0.05)
    finally:
        lock.close()
        from course.grade import kill_user

        kill_user(uid)
