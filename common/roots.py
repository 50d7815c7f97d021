"""A safeguarded 1-D root finder, vectorised over a batch (planar flows' ``f^{-1}``)."""

import torch


def solve_increasing(g, target, lo, hi, start, iters=100):
    """Solve ``g(a) = target`` elementwise for an increasing ``g`` whose root lies in ``[lo, hi]``,
    from ``start``. ``g(a)`` returns ``(value, slope)``; every tensor has the batch's shape.

    Safeguarded Newton: bisect instead when the Newton step would leave the bracket or the last step
    did not halve the residual (Newton alone can bounce between the flat tails of ``tanh`` forever).
    Stops when every ``|g(a) - target| <= 64 eps (1 + |target| + |hi - lo|)`` (eps of the dtype) or
    after ``iters`` steps. Returns ``a`` without gradients: the caller restores them.

    >>> g = lambda a: (a**3 + a, 3 * a**2 + 1)
    >>> target = torch.tensor([2.0, 10.0], dtype=torch.float64)
    >>> solve_increasing(g, target, target - 10, target + 10, start=target)
    tensor([1., 2.], dtype=torch.float64)
    """
    tol = 64 * torch.finfo(target.dtype).eps * (1 + target.abs() + (hi - lo).abs())
    a, previous = start, torch.full_like(target, float("inf"))
    for _ in range(iters):
        value, slope = g(a)
        residual = value - target
        done = residual.abs() <= tol
        if done.all():
            break
        lo = torch.where(residual < 0, a, lo)  # keep the root bracketed
        hi = torch.where(residual > 0, a, hi)
        newton = a - residual / slope
        use_newton = (newton >= lo) & (newton <= hi) & (residual.abs() <= previous / 2)
        previous = residual.abs()
        step = torch.where(use_newton, newton, (lo + hi) / 2)
        a = torch.where(done, a, step)  # converged entries stay put while the rest finish
    return a
