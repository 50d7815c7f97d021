"""Targets and energies: normalised densities, exact entropies and log Z, samplers that match their
densities;
the digits split."""

import math
from collections import Counter

import pytest
import torch

from common.data import LEVELS, binarize, dequantize, load_digits_split
from common.targets import (
    ENERGIES,
    SAMPLE_TARGETS,
    Energy,
    NoisyCurves,
    get_target,
    grid_entropy,
    grid_logsumexp,
    u3,
)

# log Z and entropies as the peer libraries' benchmark reports them (zuko, nflows and normflows
# measured on the same targets), an independent check of the quadrature here.
PEER_LOG_Z = {"U1": 1.8775, "U2": 2.1129, "U3": 2.6726, "U4": 2.7416, "sine": 1.6120}
PEER_ENTROPY = {"gauss8": 1.6983, "checker": math.log(8), "ua_nb": 1.6121}


@pytest.mark.parametrize("name", SAMPLE_TARGETS)
def test_log_prob_integrates_to_one(name):
    """Midpoint rule on a grid other than the entropy's two (cells 0.5 to 1 noise std wide on the
    curves;
    cell edges fall on the integers, where checker and ua_nb jump)."""
    target = get_target(name)
    assert abs(grid_logsumexp(target.log_prob, target.bounds, 3 * target.quad_n // 4)) < 1e-5


@pytest.mark.parametrize("name", SAMPLE_TARGETS)
def test_sampler_matches_density(name):
    """-mean log p(samples) estimates H(sampler) + KL(sampler || p): H(p) only if they agree."""
    target = get_target(name)
    torch.manual_seed(0)
    x = target.sample(20_000)
    torch.manual_seed(0)
    assert (
        x.dtype == torch.float32
        and x.shape == (20_000, 2)
        and torch.equal(x, target.sample(20_000))
    )
    log_p = target.log_prob(x.double())
    assert torch.isfinite(log_p).all()
    entropy, err = target.entropy()
    stderr = math.hypot(log_p.std().item() / math.sqrt(x.shape[0]), err)
    assert abs(-log_p.mean().item() - entropy) < 4 * stderr + 1e-6


@pytest.mark.parametrize("name", SAMPLE_TARGETS)
def test_log_prob_float32_matches_float64(name):
    target = get_target(name)
    x = target.sample(2000, generator=torch.Generator().manual_seed(1))
    lp32, lp64 = target.log_prob(x), target.log_prob(x.double())
    assert lp32.dtype == torch.float32 and lp64.dtype == torch.float64
    assert torch.allclose(lp32.double(), lp64, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("name", SAMPLE_TARGETS)
def test_entropy_error_is_small(name):
    """Quadrature entropies: two grids (n and n/2 cells a side) agree."""
    assert get_target(name).entropy()[1] < 1e-5


@pytest.mark.parametrize("name", ["gauss", "ua_nb", "checker", "banana"])
def test_closed_form_entropy_matches_quadrature(name):
    target = get_target(name)
    assert abs(grid_entropy(target.log_prob, target.bounds, 800) - target.entropy()[0]) < 1e-5


def test_known_entropies():
    # 2-D, var 0.5
    assert get_target("gauss").entropy()[0] == pytest.approx(math.log(math.pi * math.e), abs=1e-12)
    assert get_target("checker").entropy()[0] == pytest.approx(math.log(8), abs=1e-12)
    banana = get_target("banana").entropy()[0]  # MAF's Figure 1: log(2 pi e) + log 2
    assert banana == pytest.approx(3.5310, abs=1e-4)
    for name, value in PEER_ENTROPY.items():
        assert abs(get_target(name).entropy()[0] - value) < 2e-3, name


@pytest.mark.parametrize("name", ["moons", "spirals"])
def test_curve_quadrature_converged(name):
    """Doubling the Gauss-Legendre nodes of the arc-parameter integral leaves log p unchanged."""
    target = get_target(name)
    finer = NoisyCurves(name, target.curves, target.std, target.bounds, nodes=2 * len(target.u))
    x = target.sample(2000, generator=torch.Generator().manual_seed(2)).double()
    assert torch.allclose(target.log_prob(x), finer.log_prob(x), atol=1e-6, rtol=0)


def test_rings_bessel_form_matches_angle_integral():
    rings = get_target("rings")

    def circles(u):
        angle = 2 * math.pi * u
        unit = torch.stack([angle.cos(), angle.sin()], -1)
        return rings.radii[:, None, None] * unit

    by_angle = NoisyCurves("rings", circles, rings.std, rings.bounds, nodes=256)
    x = (
        torch.rand(500, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 5
        - 2.5
    )
    assert torch.allclose(rings.log_prob(x), by_angle.log_prob(x), atol=1e-8, rtol=0)


@pytest.mark.parametrize("name", ENERGIES)
def test_energy_log_z(name):
    energy = get_target(name)
    log_z = energy.log_z()
    assert abs(log_z - PEER_LOG_Z[name]) < 1e-3
    third = grid_logsumexp(lambda x: -energy.energy(x), energy.quad_bounds, 3 * energy.quad_n // 4)
    assert abs(third - log_z) < 1e-4
    # The plotting window holds essentially all the mass.
    assert abs(grid_logsumexp(energy.log_prob, energy.bounds, energy.quad_n // 2)) < 1e-4
    x = torch.randn(7, 2)
    assert energy.energy(x).shape == (7,) and energy.log_prob(x).dtype == torch.float32


def test_coarse_log_z_is_refused():
    with pytest.raises(RuntimeError, match="not converged"):
        Energy("U3", u3, bounds=(-4.5, 4.5), quad_bounds=(-5, 5), quad_n=16).log_z()


def test_confinement_only_outside_the_window():
    z = torch.tensor([[3.9, 0.3], [4.3, 0.3]])
    u2 = get_target("U2").energy(z)
    plain = 0.5 * ((z[:, 1] - torch.sin(math.pi * z[:, 0] / 2)) / 0.4) ** 2
    assert torch.allclose(u2[0], plain[0]) and torch.allclose(u2[1], plain[1] + 0.5 * 3.0**2)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        get_target("no-such-target")
    assert all(name in str(info.value) for name in SAMPLE_TARGETS + ENERGIES)
    for name in SAMPLE_TARGETS + ENERGIES:
        target = get_target(name)
        assert target.name == name and target.dim == 2 and target.bounds[0] < target.bounds[1]


def test_digits_split():
    from sklearn.datasets import load_digits

    split = load_digits_split(seed=0)
    sizes = {name: split[name].shape[0] for name in ("train", "val", "test")}
    assert sizes == {"train": 1257, "val": 180, "test": 360}
    for name in ("train", "val", "test"):
        x, y = split[name], split[f"{name}_labels"]
        assert (
            x.shape[1] == 64
            and x.dtype == torch.float32
            and y.dtype == torch.long
            and y.shape == x.shape[:1]
        )
        assert torch.equal(x, x.round()) and x.min() >= 0 and x.max() <= LEVELS - 1
    # The three parts together are exactly the whole data set (a partition, not overlapping
    # samples).
    rows = lambda x, y: Counter(
        tuple(r) + (int(label),) for r, label in zip(x.int().tolist(), y.tolist(), strict=False)
    )
    digits = load_digits()
    whole = rows(torch.tensor(digits.data), torch.tensor(digits.target))
    parts = sum((rows(split[n], split[f"{n}_labels"]) for n in ("train", "val", "test")), Counter())
    assert parts == whole
    assert torch.equal(load_digits_split(seed=0)["train"], split["train"])
    assert not torch.equal(load_digits_split(seed=1)["train"], split["train"])


def test_dequantize_and_binarize():
    x = load_digits_split()["train"]
    u = dequantize(x, generator=torch.Generator().manual_seed(0))
    assert u.min() >= 0 and u.max() < 1
    # the same integer level
    assert ((u * LEVELS - x) > -1e-5).all() and ((u * LEVELS - x) < 1 + 1e-5).all()
    assert not torch.equal(u, dequantize(x, generator=torch.Generator().manual_seed(1)))
    assert dequantize(torch.full((3, 64), 16.0)).max() < 1
    b = binarize(x)
    assert set(b.unique().tolist()) <= {0.0, 1.0} and torch.equal(b, (x > 8).float())
