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
    assert torch.isfinite(mine) and abs(mine - dense) < 1e-10, (
        f"your log|det| {mine.item():.6f} differs from slogdet's {dense.item():.6f} (here "
        f"1 + psi^T u = {(1 + torch.dot(u, psi)).item():.3f}): expected log|1 + psi^T u|"
    )
    error = abs(mine - dense).item()
    print(f"Exercise 1: right: log|det| = {mine.item():.6f}, slogdet's to {error:.0e}")


def check_min_slope(min_slope, a):
    """Exercise 2: ``min_slope(wu)``, the smallest slope 1 + wu sech^2(a) over the grid ``a``, for
    wu on both sides of 0 and of -1 (to 1e-9: the same grid gives the same minimum)."""
    if not tried(min_slope(-3.0), "min_slope(wu)", "Exercise 2"):
        return None
    worst = 0.0
    for wu in (-3.0, -1.5, -1.0, -0.5, 0.0, 0.7, 2.0):
        grid = a.double().requires_grad_()  # the slope by autograd, not by its formula
        (slopes,) = torch.autograd.grad((grid + wu * torch.tanh(grid)).sum(), grid)
        expected = slopes.min().item()
        mine = min_slope(wu)
        assert isinstance(mine, float), f"min_slope({wu}) should be a float, got {type(mine)}"
        assert abs(mine - expected) < 1e-6, (
            f"min_slope({wu}) = {mine:.6f}, expected {expected:.6f}: the slope "
            "1 + wu sech^2(a) over the grid a, smallest at a = 0 when wu < 0, at the ends if wu > 0"
        )
        worst = max(worst, abs(mine - expected))
    print(f"Exercise 2: right for w^T u from -3 to 2 (largest difference {worst:.1e})")
