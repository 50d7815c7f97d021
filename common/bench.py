"""Timing helpers for the benchmark scripts (never used in tests: timings are not assertions)."""

import statistics
import time

import torch


def ms_per_training_step(
    log_prob, parameters, sample, steps=100, warmup=10, clock=time.perf_counter, adam=None
):
    """Median milliseconds of one maximum-likelihood step (forward + backward + Adam).

    ``log_prob(x)`` is the model's density, ``sample()`` returns a batch; drawing the batch is not
    timed. ``clock``: wall-clock time by default; ``time.thread_time`` counts only the CPU time of
    this thread, which time spent waiting for a core (a machine shared with other jobs) leaves out.
    ``adam``: keyword arguments for ``torch.optim.Adam`` (``{"fused": True}``, say).
    """
    optimizer = torch.optim.Adam(list(parameters), lr=1e-3, **(adam or {}))
    times = []
    for i in range(warmup + steps):
        x = sample()
        start = clock()
        loss = -log_prob(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= warmup:
            times.append(clock() - start)
    return 1000 * statistics.median(times)


@torch.no_grad()
def seconds(fn, repeat=3):
    """Best of ``repeat`` wall-clock seconds of ``fn()``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
