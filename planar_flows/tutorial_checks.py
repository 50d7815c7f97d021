"""The checks of the planar notebook's exercises (called by tutorial.py, tested by
tests/test_notebook_checks.py with planted wrong answers). Not part of the paper's core."""

import torch

from tools.exercises import tried


def lemma_inputs():
    """Exercise 1's u and psi in R^5 (float64, seed 0): 1 + psi^T u is negative (about -3.07), so
    the absolute value in log|1 + psi^T u| matters."""
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(5, generator=gen, dtype=torch.float64)
    psi = torch.randn(5, generator=gen, dtype=torch.float64)
    return u, psi


def check_lemma(logdet_lemma, u, psi):
    """Exercise 1: ``logdet_lemma`` is log|det(I + u psi^T)|, compared with slogdet to 1e-10."""
    if not tried(logdet_lemma, "logdet_lemma", "Exercise 1"):
        return None
    assert logdet_lemma is not None, (
        "logdet_lemma is not set: write it in the Exercise 1 cell above"
    )
    mine = torch.as_tensor(logdet_lemma, dtype=torch.float64)
    assert mine.dim() == 0, f"logdet_lemma should be a 0-d tensor, got shape {tuple(mine.shape)}"
    dense = torch.linalg.slogdet(torch.eye(len(u), dtype=torch.float64) + torch.outer(u, psi))[1]
    if not (torch.isfinite(mine) and abs(mine - dense) < 1e-10):
        dot = torch.dot(u, psi)
        usual = [  # the usual slips, named without the formula
            (
                torch.log(1 + dot),
                "it is NaN: the determinant is negative here, and a "
                "log-determinant is the log of its absolute value",
            ),
            (torch.log(dot.abs()), "the identity's contribution is missing from the lemma"),
            (torch.log(1 + dot.abs()), "the absolute value belongs around the whole determinant"),
            ((1 + dot).abs(), "that is |det|, not its log"),
        ]
        hint = next(
            (why for v, why in usual if torch.isclose(mine, v, atol=1e-10, equal_nan=True)), None
        )
        raise AssertionError(
            f"your log|det| {mine.item():.6f} differs from slogdet's {dense.item():.6f}: "
            + (
                hint
                or "the lemma turns det(I + u psi^T) into one scalar built from a dot "
                "product; take the log of its absolute value"
            )
        )
    error = abs(mine - dense).item()
    print(f"Exercise 1: right: log|det| = {mine.item():.6f}, slogdet's to {error:.0e}")


def check_min_slope(min_slope, a):
    """Exercise 2: ``min_slope(wu)``, the smallest slope 1 + wu sech^2(a) over the grid ``a``, for
    wu on both sides of 0 and of -1 (to 1e-6: the same grid gives the same minimum, and a grid
    with a point at a = 0, as the notebook's, holds the exact minimum 1 + wu of wu < 0)."""
    if not tried(min_slope(-3.0), "min_slope(wu)", "Exercise 2"):
        return None
    worst = 0.0
    for wu in (-3.0, -1.5, -1.0, -0.5, 0.0, 0.7, 2.0):
        grid = a.double().requires_grad_()  # the slope by autograd, not by its formula
        (slopes,) = torch.autograd.grad((grid + wu * torch.tanh(grid)).sum(), grid)
        expected = slopes.min().item()
        mine = min_slope(wu)
        assert isinstance(mine, float), f"min_slope({wu}) should be a float, got {type(mine)}"
        if abs(mine - expected) >= 1e-6:
            g = a.double()
            usual = [  # the usual slips, named without the formula
                (
                    (g + wu * torch.tanh(g)).min().item(),
                    "that is the map's smallest value, not its slope's: differentiate in a first",
                ),
                (
                    (1 + wu * torch.tanh(g) ** 2).min().item(),
                    "tanh's derivative is 1 - tanh^2, not tanh^2",
                ),
                ((1 + wu / torch.cosh(g)).min().item(), "tanh's derivative is sech squared"),
                ((wu / torch.cosh(g) ** 2).min().item(), "the derivative of a itself is missing"),
            ]
            hint = next((why for v, why in usual if abs(mine - v) < 1e-6), None)
            raise AssertionError(
                f"min_slope({wu}) = {mine:.6f} is not the smallest slope over the grid a: "
                + (
                    hint
                    or "differentiate a + wu tanh(a) in a, then take the minimum over a "
                    "(where is it when wu < 0? when wu > 0?)"
                )
            )
        worst = max(worst, abs(mine - expected))
    print(f"Exercise 2: right for w^T u from -3 to 2 (largest difference {worst:.1e})")
