"""The checks of the NSF notebook's exercises (called by tutorial.py, tested by
tests/test_notebook_checks.py with planted wrong answers). Not part of the paper's core."""

import torch

from nsf.nsf import knots, rational_quadratic, rq_spline
from tools.exercises import tried


def spline_formula(x, params, bound):
    """Eq. 4 and 5 with NO tails: x is placed in its bin (the first or last bin when |x| > B) and
    the bin's rational quadratic is evaluated at xi = (x - x^k) / w, even outside [0, 1]. Right
    on [-B, B] only; far out xi^2 overflows and its gradient is inf or NaN."""
    xk, yk, d = knots(params, bound)
    k = (x[..., None] >= xk[..., 1:-1]).sum(-1)
    i = torch.stack((k, k + 1), -1)
    (x0, x1), (y0, y1), (d0, d1) = (t.gather(-1, i).unbind(-1) for t in (xk, yk, d))
    return rational_quadratic((x - x0) / (x1 - x0), y0, y1 - y0, (y1 - y0) / (x1 - x0), d0, d1)


TAIL_POINTS = [-1e200, -1e6, -7.0, -5.0, -4.999, 0.3, 2.0, 5.0, 5.001, 1e6, 1e200]


def check_tails(with_tails, params, bound):
    """Exercise 1: ``with_tails(x, params)`` against ``rq_spline`` at points inside, at and far
    beyond +-B (1e200: the formula overflows there), values and log-derivatives to 1e-12, and the
    gradient of both with respect to x finite (1 in the tails)."""
    x = torch.tensor(TAIL_POINTS, dtype=torch.float64, requires_grad=True)
    p = params.expand(len(x), -1)
    answer = with_tails(x, p)
    if not tried(answer, "with_tails(x, params)", "Exercise 1"):
        return None
    assert isinstance(answer, tuple) and len(answer) == 2, (
        f"with_tails should return two tensors, (g(x), log g'(x)), got {type(answer).__name__}"
    )
    mine, log_mine = answer
    ref, log_ref = rq_spline(x.detach(), p, bound)
    close = torch.isclose(mine, ref, rtol=1e-12, atol=1e-12)
    close &= torch.isclose(log_mine, log_ref, rtol=0, atol=1e-12)
    assert close.all(), (
        f"at x = {x[~close].tolist()} your (g, log g') = {mine[~close].tolist()}, "
        f"{log_mine[~close].tolist()}; expected {ref[~close].tolist()}, {log_ref[~close].tolist()}"
        f": the identity (log g' = 0) outside [-{bound}, {bound}], the spline inside"
    )
    (grad,) = torch.autograd.grad((mine + log_mine).sum(), x)
    assert torch.isfinite(grad).all(), (
        f"your gradient d(g + log g')/dx is not finite: {grad.tolist()} at x = {TAIL_POINTS}: "
        "torch.where differentiates both branches; clamp before the formula"
    )
    tails = x.detach().abs() > bound
    assert torch.allclose(grad[tails], torch.ones_like(grad[tails])), (
        f"your gradient in the tails is {grad[tails].tolist()}, expected 1 (g(x) = x there)"
    )
    error = max((mine - ref).abs().max().item(), (log_mine - log_ref).abs().max().item())
    print(
        "Exercise 1: right: identity tails, finite gradients up to |x| = 1e200 (largest "
        f"difference {error:.0e})"
    )


def check_quadratic(inverse, bound, n=20_000):
    """Exercise 2: ``inverse(y, params)`` (the paper's root formula alone) on n points of steep,
    uneven splines (float64, seed 0): g(inverse(y)) = y to 1e-9 and inverse(y) = x to 1e-7."""
    gen = torch.Generator().manual_seed(0)
    K = 8
    params = 5 * torch.randn(n, 3 * K - 1, generator=gen, dtype=torch.float64)
    x = (2 * bound) * torch.rand(n, generator=gen, dtype=torch.float64) - bound
    y, _ = rq_spline(x, params, bound)
    x_back = inverse(y, params)
    if not tried(x_back, "paper_root_only(y, params)", "Exercise 2"):
        return None
    assert torch.is_tensor(x_back) and x_back.shape == x.shape, (
        f"your inverse should return a tensor of shape {tuple(x.shape)}, got "
        f"{tuple(getattr(x_back, 'shape', ()))}"
    )
    y_again, _ = rq_spline(x_back, params, bound)
    error, miss = (y_again - y).abs(), (x_back - x).abs()
    worst = int(torch.nan_to_num(error, nan=float("inf")).argmax())
    assert torch.isfinite(x_back).all() and error.max() < 1e-9 and miss.max() < 1e-7, (
        f"your inverse is off: max |g(x_back) - y| = {error.max():.3g}, max |x_back - x| = "
        f"{miss.max():.3g} (worst at y = {y[worst]:.6f}: x = {x[worst]:.6f}, yours "
        f"{x_back[worst]:.6f}): expected the root in [0, 1] of a xi^2 + b xi + c, as x^k + xi w"
    )
    print(f"Exercise 2: right: your root inverts {n:,} points to {error.max().item():.0e}")
