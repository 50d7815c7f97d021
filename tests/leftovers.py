"""What a test leaves running: a process or thread that outlives its test keeps pytest (and CI after
pytest's summary line) waiting, or keeps spending the machine's CPU under the next step.

``tests/conftest.py`` checks it once, when the session ends; ``tests/test_leftovers.py`` shows the
check finding each kind and ending it.
"""

import fcntl
import os
import signal
import threading
import time
from pathlib import Path

from course.grade import SANDBOX_UIDS, finished, process_uids, uid_lock_path


def _children(pid):
    """The pids of the live (not zombie) children of ``pid``."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return [p for p in found if not finished(p)]


def _started(pid):
    """When ``pid`` started, in clock ticks since boot (0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])
    except OSError:
        return 0


def command_line(pid):
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:160] or "?"


def _uid_held(uid):
    """True when a grader holds ``uid`` (its lock file is locked): its processes are that part's."""
    path = uid_lock_path(uid)
    if not path.exists():
        return False
    with open(path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


def sandbox_processes(since=None):
    """{pid: uid} of the processes of a sandbox uid that no grader holds, started after ``since``
    (this process's start by default: on a shared machine, older ones are not this session's).
    Root only: the grader runs student code as those uids only when it is root."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return {}
    since = _started(os.getpid()) if since is None else since
    found = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        uid = next((u for u in process_uids(name) if u in SANDBOX_UIDS), None)
        if uid is not None and not finished(name) and _started(name) >= since:
            found[int(name)] = uid
    return {pid: uid for pid, uid in found.items() if not _uid_held(uid)}


def leftovers(pid=None):
    """What is still running that a finished test session started: a list of one line each.

    - live child processes of ``pid`` (this process by default; zombies do not count);
    - Python threads of this process that are not daemons (the interpreter waits for them at exit);
    - as root, processes of the grader's sandbox uids that no grader holds, started after this
      process.
    """
    pid = pid or os.getpid()
    lines = [f"child process {p}: {command_line(p)}" for p in _children(pid)]
    lines += [
        f"thread {t.name!r} (not a daemon: the interpreter waits for it at exit)"
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    lines += [
        f"process {p} of sandbox uid {uid} (no grader holds that uid): {command_line(p)}"
        for p, uid in sandbox_processes().items()
    ]
    return lines


def end_leftovers(pid=None, grace=2.0):
    """Stop (SIGTERM, then SIGKILL) the processes ``leftovers`` finds; threads cannot be ended.
    The children are left to their ``Popen`` (or to init, once this process exits) to reap."""
    pid = pid or os.getpid()
    targets = _children(pid) + list(sandbox_processes())
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for target in targets:
            try:
                os.kill(target, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not all(finished(t) for t in targets):
            time.sleep(0.02)
