"""The checks of the MAF notebook's exercises (called by tutorial.py, tested by
tests/test_notebook_checks.py with planted wrong answers). Not part of the paper's core."""

import torch

from common.nets import MADE
from tools.exercises import tried


def _paths(masks):
    """Reach by following connections layer by layer (a set of reachable units per input)."""
    reachable = masks[0].bool().T  # (in, hidden 1): unit k of layer 1 is reached from input j
    for mask in masks[1:]:
        reachable = (reachable[:, None, :] & mask.bool()[None, :, :]).any(-1)  # (in, out)
    return reachable.T  # (out, in)


def check_reach(reach_of):
    """Exercise 1: ``reach_of(masks)`` on three MADEs, D = 4: the notebook's, one with the order
    reversed and one with a random order and hidden layers of 6 and 10 units, so that a product
    that skips the middle mask, a transposed product or a hard-coded triangle fails."""
    gen = torch.Generator().manual_seed(0)
    mades = {
        "MADE(4, hidden (8, 8))": MADE(4, params=1, hidden_features=(8, 8)),
        "reversed order": MADE(4, params=1, hidden_features=(8, 8), order=torch.arange(4).flip(0)),
        "random order, hidden (6, 10)": MADE(
            4, params=1, hidden_features=(6, 10), order=torch.randperm(4, generator=gen)
        ),
    }
    for number, (name, made) in enumerate(mades.items()):
        masks = [m.mask for m in made.net if hasattr(m, "mask")]
        expected = _paths(masks)
        reach = reach_of(masks)
        if number == 0 and not tried(reach, "reach_of(masks)", "Exercise 1"):
            return None
        assert torch.is_tensor(reach) and reach.dtype == torch.bool, (
            f"{name}: reach_of should return a boolean tensor, got {getattr(reach, 'dtype', reach)}"
        )
        assert reach.shape == (4, 4), f"{name}: reach should be (4, 4), got {tuple(reach.shape)}"
        assert torch.equal(reach, expected), (
            f"{name}: your reach matrix is\n{reach.int()}\nexpected\n{expected.int()}\n"
            "(entry (i, j): some path from input j through every layer to output i)"
        )
    print(f"Exercise 1: right on {len(mades)} MADEs (the notebook's, reversed, random order)")


def check_chain_rule(log_p, x, target):
    """Exercise 2: ``log_p`` (n,) is log p(x) of the banana target by the chain rule, against the
    target's own log_prob (1e-4 nats)."""
    if not tried(log_p, "log_p", "Exercise 2"):
        return None
    assert log_p is not None, "log_p is not set: write it in the Exercise 2 cell above"
    assert torch.is_tensor(log_p) and log_p.shape == (len(x),), (
        f"log_p should have shape ({len(x)},), got {tuple(getattr(log_p, 'shape', ()))}"
    )
    error = (log_p - target.log_prob(x)).abs().max().item()
    assert error < 1e-4, (
        f"your chain-rule log p differs from the target's by up to {error:.3g} nats: expected "
        "log N(x2 | 0, 4) + log N(x1 | x2^2 / 4, 1)"
    )
    print(f"Exercise 2: right: the chain rule (largest difference {error:.1e} nats)")
