"""The checks of the intro notebook's exercises (called by tutorial.py, tested by
tests/test_notebook_checks.py with planted wrong answers). Not part of any paper's core."""

import math

import torch


def check_reverse_kl(my_kl, x, log_q, energy):
    """Exercise 3: ``my_kl`` must be KL(q || p) estimated on exactly these samples ``x`` of q with
    their ``log_q``: the same samples give the same number up to float rounding, so the tolerance
    is 1e-5 nats, far below the KL itself, its half or its sign flipped."""
    assert my_kl is not None, "my_kl is not set: fill in the Exercise 3 cell above"
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
    return kl
