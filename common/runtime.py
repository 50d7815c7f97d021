"""The settings of a run: its seed, whether it should be tiny (``FLOWS_FAST=1``), and how it stops
on a signal.

Light to import (numpy and torch are imported when first needed). Imported while ``python -m
<package>`` is still importing that package (``sys.argv[0] == "-m"``, as every paper package does
first), it makes Ctrl-C, SIGTERM and SIGHUP during the imports one line and exit 128 + the signal's
number, no traceback; ``common.cli.run`` takes over from there.
"""

import os
import random
import signal
import sys
import threading

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Stopped(KeyboardInterrupt):
    """A stop signal (Ctrl-C, SIGTERM, SIGHUP) turned into a KeyboardInterrupt; ``signum`` is its
    number, so the program can exit with 128 + signum."""

    def __init__(self, signum):
        super().__init__(f"{signal.Signals(signum).name} received")
        self.signum = signum


def stop_on_signals():
    """Make SIGINT, SIGTERM and SIGHUP raise ``Stopped`` in the main thread, the first one only:
    later ones are ignored while the program stops (writes its checkpoint, exits). Returns a
    function that puts the previous handlers back. Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    stopping = []

    def handler(signum, frame):
        if stopping:
            return  # already stopping: let the checkpoint be written
        stopping.append(signum)
        raise Stopped(signum)

    for s in STOP_SIGNALS:
        signal.signal(s, handler)

    def restore():
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)

    return restore


def ignore_stop_signals():
    """Ignore SIGINT, SIGTERM and SIGHUP from now on, at the OS level: a program exiting on one of
    them is not killed by a second one during interpreter shutdown (Python resets its own handlers
    to the default there, but leaves ignored signals ignored)."""
    if threading.current_thread() is threading.main_thread():
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)


def _stop_while_starting(signum, frame):
    ignore_stop_signals()
    how = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    print(f"\nstopped by {how} while starting", file=sys.stderr)
    raise SystemExit(128 + signum)


if sys.argv[:1] == ["-m"] and threading.current_thread() is threading.main_thread():
    for _signum in STOP_SIGNALS:
        signal.signal(_signum, _stop_while_starting)


def fast_mode():
    """True when the environment asks for tiny runs (CI executes notebooks with FLOWS_FAST=1)."""
    return os.environ.get("FLOWS_FAST", "0") not in ("", "0")


def seed_everything(seed):
    """Seed Python, NumPy and torch so a run can be repeated."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
