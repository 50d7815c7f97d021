"""The checks of the intro notebook's exercises (called by tutorial.py, tested by
tests/test_notebook_checks.py with planted wrong answers). Not part of any paper's core."""

import math

import torch

from tests.harness import check_transform
from tools.exercises import tried


def check_reverse_kl(my_kl, x, log_q, energy):
    """Exercise 4: ``my_kl`` must be KL(q || p) estimated on exactly these samples ``x`` of q with
    their ``log_q``: the same samples give the same number up to float rounding, so the tolerance
    is 1e-5 nats, far below the KL itself, its half or its sign flipped."""
    if not tried(my_kl, "my_kl", "Exercise 4"):
        return None
    assert my_kl is not None, "my_kl is not set: write it in the Exercise 4 cell above"
    assert isinstance(my_kl, (float, int)) or (torch.is_tensor(my_kl) and my_kl.numel() == 1), (
        f"my_kl should be one number (a float), got {type(my_kl).__name__}"
    )
    free_energy = torch.mean(log_q.double()) + torch.mean(energy.energy(x).double())
    kl = free_energy.item() + energy.log_z()
    my_kl = float(my_kl)
    if not (math.isfinite(my_kl) and abs(my_kl - kl) < 1e-5):
        log_z = energy.log_z()
        flipped_u = torch.mean(log_q.double() - energy.energy(x).double()).item() + log_z
        usual = [  # the usual slips, each named without giving the formula away
            (free_energy.item(), "log Z is missing: p = exp(-U) / Z, and log p has two terms"),
            (-kl, "the sign is flipped: KL(q || p) is an expectation of log q minus log p"),
            (free_energy.item() - log_z, "log Z has the wrong sign: p = exp(-U) / Z"),
            (flipped_u, "U has the wrong sign: the energy is minus log p, up to a constant"),
        ]
        hint = next((why for value, why in usual if abs(my_kl - value) < 1e-5), None)
        raise AssertionError(
            f"your KL estimate {my_kl:.6f} is not the KL on these samples: "
            + (hint or "start from KL(q || p) = E_q[log q - log p] and write log p with U and Z")
        )
    error = abs(my_kl - kl)
    print(
        f"Exercise 4: right: KL(q || p) = {my_kl:.4f} nats on these samples (difference "
        f"{error:.0e})"
    )


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
    if error >= 1e-5:
        base = torch.distributions.Normal(0.0, 1.0).log_prob(torch.log(x))
        usual = {  # the usual slips, named without the formula
            "the log-determinant term is missing: add log|f'(x)|": base,
            "log|f'(x)| has the wrong sign: f' is the derivative of log x, not of exp": base
            + torch.log(x),
            "log p_Z is evaluated at x: the base density sees z = f(x)": torch.distributions.Normal(
                0.0, 1.0
            ).log_prob(x)
            - torch.log(x),
        }
        hint = next((why for why, v in usual.items() if (log_p - v).abs().max() < 1e-5), None)
        raise AssertionError(
            f"your log p_X differs from torch's LogNormal(0, 1) by up to {error:.3g} nats: "
            + (hint or "log p_X(x) = log p_Z(f(x)) + log|f'(x)|: check each of the two terms")
        )
    print(f"Exercise 1: right: the log-normal density (largest difference {error:.1e} nats)")


def check_triangular(ladj, x, f):
    """Exercise 3: ``ladj`` (n,) is log|det J| of ``f`` at each row of ``x``, against slogdet of
    autograd's Jacobian (float64, 1e-10)."""
    if not tried(ladj, "ladj", "Exercise 3"):
        return None
    assert ladj is not None, "ladj is not set: write it in the Exercise 3 cell above"
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
    print(f"Exercise 3: right: matches slogdet of autograd's Jacobian to {error:.1e}")


def check_cdf_flow(to_noise, mixture):
    """Exercise 2: ``to_noise`` is the increasing map that carries the 1-D ``mixture`` (a float64
    ``torch.distributions`` object) to N(0, 1). On a float64 grid over the mixture's bulk it must
    increase and satisfy log p_X = log phi(f) + log f' (f' by autograd) to 1e-6; 20,000 seeded
    samples of the mixture, mapped, must have mean 0 and standard deviation 1 (within 0.05) and a
    Kolmogorov-Smirnov distance to N(0, 1) below 0.02 (a right answer gives about 0.006)."""
    x = torch.linspace(-4.5, 4.5, 901, dtype=torch.float64, requires_grad=True)
    z = to_noise(x)
    if not tried(z, "to_noise", "Exercise 2"):
        return None
    assert torch.is_tensor(z) and z.shape == x.shape, (
        f"to_noise(x) should be a tensor of x's shape {tuple(x.shape)}, got "
        f"{getattr(z, 'shape', type(z).__name__)}"
    )
    assert torch.isfinite(z).all(), (
        f"to_noise(x) is not finite at x = {x[~torch.isfinite(z)][:3].tolist()}"
    )
    down = (z.diff() <= 0).nonzero()
    assert len(down) == 0, (
        f"to_noise is not increasing: it goes down (or stays flat) after x = "
        f"{x[down[0]].item():.2f}; the map asked for keeps the order of the points"
    )
    base = torch.distributions.Normal(torch.zeros((), dtype=x.dtype), 1.0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        mapped = to_noise(mixture.sample((20_000,))).detach().double()
    mean, std = mapped.mean().item(), mapped.std().item()
    ranked = base.cdf(mapped.sort().values)
    steps = torch.arange(1, len(mapped) + 1, dtype=x.dtype) / len(mapped)
    ks = torch.maximum(steps - ranked, ranked - (steps - 1 / len(mapped))).max().item()
    assert abs(mean) < 0.05 and abs(std - 1) < 0.05 and ks < 0.02, (
        f"samples of the mixture mapped by to_noise have mean {mean:.3f}, standard deviation "
        f"{std:.3f} and a Kolmogorov-Smirnov distance {ks:.3f} to N(0, 1): expected mean 0, "
        "standard deviation 1 and a distance near 0.006 (a uniform u in (0, 1) has mean 0.5 and "
        "standard deviation 0.29)"
    )
    (slope,) = torch.autograd.grad(z.sum(), x) if z.requires_grad else (None,)
    assert slope is not None, "to_noise(x) has no gradient: compute it with torch operations"
    by_flow = base.log_prob(z) + torch.log(slope)  # the change of variables, Section 2
    error = (by_flow - mixture.log_prob(x)).abs().max().item()
    assert error < 1e-6, (
        f"log phi(f(x)) + log f'(x) differs from log p_X(x) by up to {error:.3g} nats: the map "
        "does not carry this mixture's density to N(0, 1) exactly"
    )
    print(
        f"Exercise 2: right (log p_X recovered to {error:.1e} nats; mapped samples: mean "
        f"{mean:.3f}, std {std:.3f}, KS distance {ks:.4f} to N(0, 1))"
    )


BEND = {"s": (-1.5, 0.8), "t": (0.3, -0.4), "q": 0.35}  # the check's parameters: s1 < 0


def check_layer(Layer):
    """Exercise 5: ``Layer()`` is the bend layer, data -> noise: z1 = s1 (x1 - q x2^2 - t1),
    z2 = s2 (x2 - t2), with ``forward`` and ``inverse`` returning ``(output, ladj)``, ladj (batch,).

    With the parameters ``BEND`` (s1 negative, so a log-det without the absolute value is NaN) in
    float64: ``forward`` must follow the formula (a layer written noise -> data fails here), ladj
    must have shape (batch,), and then ``tests/harness.check_transform`` must pass: both round
    trips, both log-dets against slogdet of autograd's Jacobian, gradients to every parameter,
    and ladj's gradient equal to the log-det's (a ladj made with ``.item()`` cannot train). ladj
    must have x's dtype.
    """
    layer = Layer().double()
    with torch.no_grad():
        layer.s.copy_(torch.tensor(BEND["s"]))
        layer.t.copy_(torch.tensor(BEND["t"]))
        layer.q.fill_(BEND["q"])
    x = torch.tensor([[0.5, -1.0], [2.0, 1.5], [-1.0, 0.3], [0.0, 2.2]], dtype=torch.float64)
    out, back = layer(x), layer.inverse(x)
    if not tried(out, "Bend.forward", "Exercise 5"):
        return None
    if not tried(back, "Bend.inverse", "Exercise 5"):
        return None
    for name, result in (("forward", out), ("inverse", back)):
        assert isinstance(result, tuple) and len(result) == 2, (
            f"{name} should return a pair (output, ladj), got {type(result).__name__}"
        )
        assert result[0].shape == x.shape, (
            f"{name}'s output should have shape {tuple(x.shape)}, got {tuple(result[0].shape)}"
        )
        assert torch.is_tensor(result[1]) and result[1].shape == (len(x),), (
            f"{name}'s ladj should have shape (batch,) = ({len(x)},), one log-det per row of the "
            f"batch (summed over the features), got {tuple(getattr(result[1], 'shape', ()))}"
        )
    (s1, s2), (t1, t2), q = BEND["s"], BEND["t"], BEND["q"]
    x1, x2 = x.unbind(-1)
    by_formula = torch.stack([s1 * (x1 - t1) - s1 * q * x2**2, s2 * x2 - s2 * t2], -1)
    if not torch.allclose(out[0], by_formula, atol=1e-12):
        backwards = torch.allclose(layer(by_formula)[0], x, atol=1e-12) or torch.allclose(
            back[0], by_formula, atol=1e-12
        )
        assert not backwards, (
            "your forward maps noise to data: it computes the inverse of the formula. In this "
            "repository forward is data -> noise, z = f(x), and inverse goes back"
        )
        raise AssertionError(
            f"forward(x) differs from z1 = s1 (x1 - q x2^2 - t1), z2 = s2 (x2 - t2) by up to "
            f"{(out[0] - by_formula).abs().max():.3g}"
        )
    for name, result in (("forward", out), ("inverse", back)):
        assert torch.isfinite(result[1]).all(), (
            f"{name}'s ladj is {result[1].tolist()} with s1 = {s1} < 0: a log-determinant is "
            "log|det|, the log of an absolute value"
        )
    for name, result, inp in (("forward", out, x), ("inverse", back, x)):
        assert result[1].dtype == inp.dtype, (
            f"{name}'s ladj is {result[1].dtype}, its input {inp.dtype}: ladj must have x's "
            "dtype, so build it from x or the parameters (torch.ones(n) is float32)"
        )
    check_transform(layer, 2)  # the harness every layer of the repository passes
    slopes = torch.stack([torch.func.jacrev(lambda row: layer(row[None])[0][0])(r) for r in x])
    error = (out[1] - torch.linalg.slogdet(slopes)[1]).abs().max().item()
    print(
        "Exercise 5: right (tests/harness.py's check_transform passes; ladj within "
        f"{error:.0e} of autograd's slogdet)"
    )
