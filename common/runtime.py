"""The settings of a run: its seed, whether it should be tiny (``FLOWS_FAST=1``), and how it stops
on a signal.

Light to import (numpy and torch are imported when first needed), so a demo can take over Ctrl-C
before its heavy imports.
"""

import os
import random
import signal
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
