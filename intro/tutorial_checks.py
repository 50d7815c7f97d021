"""The checks of the intro notebook's exercises (called by tutorial.py, tested by
tests/test_notebook_checks.py with planted wrong answers). Not part of any paper's core."""

import math

import torch

from tools.exercises import tried


def check_reverse_kl(my_kl, x, log_q, energy):
    """Exercise 3: ``my_kl`` must be KL(q || p) estimated on exactly these samples ``x`` of q with
    their ``log_q``: the same samples give the same number up to float rounding, so the tolerance
    is 1e-5 nats, far below the KL itself, its half or its sign flipped."""
    if not tried(my_kl, "my_kl", "Exercise 3"):
        return None
    assert my_kl is not None, "my_kl is not set: write it in the Exercise 3 cell above"
    assert isinstance(my_kl, (float, int)) or (torch.is_tensor(my_kl) and my_kl.numel() == 1), (
        f"my_kl should be one number (a float), got {type(my_kl).__name__}"
    )
    free_energy = torch.mean(log_q.double()) + torch.mean(energy.energy(x).double())
    kl = free_energy.item() + energy.log_z()
    my_kl = float(my_kl)
    assert math.isfinite(my_kl) and abs(my_kl - kl) < 1e-5, (
        f"your KL estimate {my_kl:.6f} differs from {kl:.6f} on the same samples: expected "
        "mean(log q + U) over the samples x of q, plus log Z"
    )
    error = abs(my_kl - kl)
    print(
        f"Exercise 3: right: KL(q || p) = {my_kl:.4f} nats on these samples (difference "
        f"{error:.0e})"
    )
    return error


def check_lognormal(log_p, x):
    """Exercise 1: ``log_p`` is log p_X(x) of x = e^z, z ~ N(0, 1), against torch's LogNormal."""
    if not tried(log_p, "log_p", "Exercise 1"):
        return None
    assert log_p is not None, "log_p is not set: write it in the Exercise 1 cell above"
    expected = torch.distributions.LogNormal(0.0, 1.0).log_prob(x)
    assert torch.is_tensor(log_p) and log_p.shape == x.shape, (
        f"log_p should be a tensor of shape {tuple(x.shape)}, got {getattr(log_p, 'shape', log_p)}"
    )
    error = (log_p - expected).abs().max().item()
    assert error < 1e-5, (
        f"your log p_X differs from torch's LogNormal(0, 1) by up to {error:.3g} nats: expected "
        "log N(log x) + log|d log x / dx|"
    )
    print(f"Exercise 1: right: the log-normal density (largest difference {error:.1e} nats)")
    return error


def check_triangular(ladj, x, f):
    """Exercise 2: ``ladj`` (n,) is log|det J| of ``f`` at each row of ``x``, against slogdet of
    autograd's Jacobian (float64, 1e-10)."""
    if not tried(ladj, "ladj", "Exercise 2"):
        return None
    assert ladj is not None, "ladj is not set: write it in the Exercise 2 cell above"
    assert torch.is_tensor(ladj) and ladj.shape == (len(x),), (
        f"ladj should have shape ({len(x)},), got {tuple(getattr(ladj, 'shape', ()))}"
    )
    jacobians = torch.stack([torch.func.jacrev(f)(row) for row in x])
    by_autograd = torch.linalg.slogdet(jacobians)[1]
    error = (ladj - by_autograd).abs().max().item()
    assert error < 1e-10, (
        f"your log-det differs from autograd's by up to {error:.3g}: expected the sum of the logs "
        "of the Jacobian's diagonal"
    )
    print(f"Exercise 2: right: matches slogdet of autograd's Jacobian to {error:.1e}")
    return error
