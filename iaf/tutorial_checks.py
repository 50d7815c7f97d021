"""The checks of the IAF notebook's exercises (called by tutorial.py, tested by
tests/test_notebook_checks.py with planted wrong answers). Not part of the paper's core."""

import math

import torch

from tools.exercises import tried


def kl_to_mixture(q, other, x):
    """KL(q || p) on the samples x of q, p = (q + other) / 2: log q - log p = log 2 - log(1 +
    other / q), written stably."""
    log_q, log_other = q.log_prob(x).double(), other.log_prob(x).double()
    return (math.log(2) - torch.nn.functional.softplus(log_other - log_q)).mean().item()


def check_kl_one_mode(kl_one_mode, q, other, x):
    """Exercise 2: ``kl_one_mode`` is the Monte Carlo KL(q || p) on exactly the samples ``x`` of q,
    p = (q + other) / 2; the same samples give the same number up to rounding (1e-6 nats)."""
    if not tried(kl_one_mode, "kl_one_mode", "Exercise 2"):
        return None
    assert kl_one_mode is not None, "kl_one_mode is not set: write it in the Exercise 2 cell above"
    kl = kl_to_mixture(q, other, x)
    mine = float(kl_one_mode)
    assert math.isfinite(mine) and abs(mine - kl) < 1e-6, (
        f"your KL(q || p) = {mine:.6f} differs from {kl:.6f} on the same samples x: expected the "
        "mean over x of log q(x) - log p(x), with p the two-component mixture (weights 1/2)"
    )
    error = abs(mine - kl)
    print(
        f"Exercise 2: right: KL(q || p) = {mine:.4f} nats on these samples (difference {error:.0e})"
    )


def check_passes(predicted, counted, D, T):
    """Exercise 1: ``predicted`` (a dict) equals the MADE passes the hook ``counted``, per call."""
    if not tried(predicted, "predicted", "Exercise 1"):
        return None
    assert isinstance(predicted, dict) and set(predicted) == set(counted), (
        f"predicted should be a dict with the keys {sorted(counted)}, got {predicted!r}"
    )
    for call, passes in counted.items():
        assert predicted[call] == passes, (
            f"{call}: you predicted {predicted[call]} MADE passes, the hook counted {passes} "
            f"(D = {D}, T = {T}): which direction is the one-pass one?"
        )
    print(f"Exercise 1: right: all four predictions (D = {D}, T = {T}: MADE passes {counted})")
