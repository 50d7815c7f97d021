"""The checks of the MAF notebook's exercises (called by tutorial.py, tested by
tests/test_notebook_checks.py with planted wrong answers). Not part of the paper's core."""

import math

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
        try:
            reach = reach_of(masks)
        except RuntimeError as error:  # shapes that do not chain: a mask skipped or transposed
            raise AssertionError(
                f"{name}: reach_of(masks) failed with {type(error).__name__}: {error}. Its masks "
                f"have shapes {[tuple(m.shape) for m in masks]}: a product of masks that does not "
                "chain (one skipped, or taken in the wrong order) only works while the hidden "
                "layers happen to have equal sizes"
            ) from error
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
    if error >= 1e-4:
        x1, x2 = x.double().unbind(-1)
        off = log_p.double() - target.log_prob(x).double()  # each slip's offset, in closed form
        half_log_2pi = 0.5 * math.log(2 * math.pi)
        usual = [  # the usual slips, named without the formula
            (-math.log(2) + 3 * x2**2 / 32, "Normal takes a standard deviation, not a variance"),
            (
                x2**2 / 8 - x1**2 / 8 + ((x1 - x2**2 / 4) ** 2 - (x2 - x1**2 / 4) ** 2) / 2,
                "the two variables are swapped: which one does the target draw first?",
            ),
            (
                half_log_2pi + (x1 - x2**2 / 4) ** 2 / 2,
                "only one factor: the chain rule multiplies two densities",
            ),
            (
                half_log_2pi + math.log(2) + x2**2 / 8,
                "only one factor: the chain rule multiplies two densities",
            ),
        ]
        hint = next((why for v, why in usual if torch.allclose(off, v, rtol=1e-5, atol=1e-4)), None)
        raise AssertionError(
            f"your chain-rule log p differs from the target's by up to {error:.3g} nats: "
            + (
                hint
                or "log p(x) is the log of the first variable's density plus the log of "
                "the other's conditional density, read off the target's definition"
            )
        )
    print(f"Exercise 2: right: the chain rule (largest difference {error:.1e} nats)")
