"""Planar and radial flows (Rezende & Mohamed 2015).

Both directions, the constraints, normalisation.
"""

import math

import pytest
import torch

from common.roots import solve_increasing
from planar_flows import Planar, PlanarFlow, Radial
from planar_flows.planar import MARGIN
from tests.harness import check_bad_input_raises, check_flow_normalised, check_transform, perturb

# the 1-D inverses are solved to about 1e-13 in float64; this is the accuracy the tests demand
TOL = 1e-8


def planar(features, context):
    """context > 0: the amortised layer (Sec. 4), u, w, b different for every row of the batch."""
    return perturb(Planar(features, context).double())


def set_wu(layer, target):
    """Move the raw u of ``layer`` so that w^T u = ``target``: the smallest change (least squares,
    torch.linalg.pinv of the 1 x D matrix w^T), in place, without the gradient."""
    with torch.no_grad():
        change = torch.linalg.pinv(layer.w[None])[:, 0] * (target - layer.w @ layer.u)
        layer.u.add_(change)


def planar_violating(features, context):
    """Raw u with w^T u = -5 < -1: the raw map would fold; u_hat must keep it invertible."""
    layer = perturb(Planar(features).double(), seed=1)
    with torch.no_grad():
        set_wu(layer, -5.0)
        layer.b.fill_(0.3)
    assert layer.w @ layer.u < -1
    return layer


def radial(features, context):
    layer = perturb(Radial(features).double(), scale=1.0, seed=2)
    with torch.no_grad():  # beta close to its bound -alpha: a strong contraction towards z0
        layer.beta_raw.fill_(-3.0)
    return layer


HARNESS_CASES = [
    ("planar", planar, (0, 3)),
    ("planar_violating", planar_violating, (0,)),
    ("radial", radial, (0,)),
]


@pytest.mark.parametrize("features", [1, 2, 3, 6])
@pytest.mark.parametrize("name,factory,contexts", HARNESS_CASES)
def test_harness(name, factory, contexts, features):
    for context in contexts:
        check_transform(factory(features, context), features, context, tol=TOL)


def test_far_points_and_root_accuracy():
    """Points far out on either side of the hyperplane (tanh saturated), and a flat spot.

    The flat spot is one of the 1-D map.
    """
    torch.manual_seed(0)
    layer = planar_violating(3, 0)
    x = 20 * torch.randn(200, 3, dtype=torch.float64)
    z, ladj = layer(x)
    x_back, ladj_i = layer.inverse(z)
    assert (x_back - x).abs().max() < TOL and (ladj + ladj_i).abs().max() < TOL
    # w^T u_hat = -1: slope 0 at a = 0
    g = lambda a: (a - torch.tanh(a), 1 - (1 - torch.tanh(a) ** 2))
    target = torch.tensor([-3.0, -1e-9, 0.0, 1e-9, 2.0], dtype=torch.float64)
    a = solve_increasing(g, target, target - 1, target + 1, start=target)
    assert (g(a)[0] - target).abs().max() < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_steep_layers_do_not_cycle(dtype):
    """Newton on a + c tanh(a + b) can bounce between the two flat tails; the safeguard stops it.

    (A trained 2-layer flow on U1 had |w| = 7 and w^T u_hat = 5.3: plain safeguarded Newton
    cycled.)
    """
    for c in (5.2578, 20.0, 200.0):
        s = torch.linspace(-40, 40, 4001, dtype=dtype)
        g = lambda a, c=c: torch.func.jvp(  # the map and its slope
            lambda a: a + c * torch.tanh(a - 0.0949), (a,), (torch.ones_like(a),)
        )
        a = solve_increasing(g, s, s - c, s + c, start=s - c * torch.tanh(s - 0.0949))
        scale = 64 * torch.finfo(dtype).eps * (1 + s.abs() + 2 * c)
        assert (g(a)[0] - s).abs().max() <= scale.max(), c
    layer = Planar(2).to(dtype)
    with torch.no_grad():
        layer.w.copy_(torch.tensor([7.0206, 0.1581]))
        layer.u.copy_(5.2578 * layer.w / (layer.w @ layer.w))
        layer.b.fill_(-0.0949)
    t = torch.linspace(-4, 4, 101, dtype=dtype)
    x = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    x_back, _ = layer.inverse(layer(x)[0])
    assert (x_back - x).abs().max() < (TOL if dtype == torch.float64 else 1e-4)


@pytest.mark.parametrize("dtype,rel", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_planar_constraint_adversarial(dtype, rel):
    """w^T u_hat = m(w^T u) >= -1 for huge negative or positive w^T u and tiny ||w||.

    Up to rounding in |w^T u|.
    """
    torch.manual_seed(0)
    for wu in (-1e6, -1e3, -50.0, -1.0, 0.0, 30.0, 1e4):
        for norm in (1e-6, 1e-3, 1.0, 1e3):
            layer = Planar(4).to(dtype)
            with torch.no_grad():
                layer.w.mul_(norm / layer.w.norm())
                set_wu(layer, wu)
            c = layer.w @ layer.u_hat()
            assert torch.isfinite(c) and c >= -1 - rel * (1 + abs(wu)), (wu, norm, c.item())
    # an inverse still converges where the constraint is nearly tight (w^T u_hat ~ -1): a fold would
    # break it
    layer = Planar(2).double()
    with torch.no_grad():  # |w| = 1: the error in x at the tangency grows as |u_hat| = 1 / |w|
        layer.w.copy_(torch.tensor([0.6, -0.8]))
        layer.u.copy_(-1e3 * layer.w / (layer.w @ layer.w))
    x = torch.linspace(-3, 3, 101, dtype=torch.float64)[:, None] * layer.w / layer.w.norm()
    x_back, _ = layer.inverse(layer(x)[0])
    assert (x_back - x).abs().max() < 1e-6


def test_radial_constraint():
    """beta >= -alpha (and alpha > 0) for any raw parameters, so the radial map never folds."""
    layer = Radial(2)
    for a, b in ((-30.0, -30.0), (-5.0, 5.0), (0.0, -50.0), (10.0, -10.0), (3.0, 40.0)):
        with torch.no_grad():
            layer.alpha_raw.fill_(a)
            layer.beta_raw.fill_(b)
        alpha, beta = layer.alpha_beta()
        assert alpha > 0 and beta >= -alpha, (a, b, alpha.item(), beta.item())


@pytest.mark.parametrize("kind", ["planar", "radial"])
def test_flow_normalised_and_consistent(kind):
    """A 2-D flow's density integrates to 1, and log_prob (1-D inverses) agrees with sampling's."""
    torch.manual_seed(0)
    flow = perturb(PlanarFlow(2, transforms=4, kind=kind).double(), seed=3)
    check_flow_normalised(flow, lim=10.0, n=300)
    x, log_q = flow.rsample_and_log_prob(500)
    assert torch.allclose(flow.log_prob(x), log_q, atol=TOL, rtol=0)


def test_radial_flow_with_beta_far_from_zero_is_normalised_and_consistent():
    """As above with every beta set far from 0 (perturbing the raw parameters leaves beta near 0,
    where (D - 1) log(1 + beta h) and D log(1 + beta h) agree: issue 26)."""
    torch.manual_seed(0)
    flow = perturb(PlanarFlow(2, transforms=4, kind="radial").double(), seed=3)
    layers = [m for m in flow.modules() if isinstance(m, Radial)]
    assert len(layers) == 4
    with torch.no_grad():
        for layer, raw in zip(layers, (2.0, -1.5, 1.0, -1.0), strict=True):
            layer.beta_raw.fill_(raw)
    betas = [layer.alpha_beta()[1].item() for layer in layers]
    assert min(abs(b) for b in betas) > 0.2, betas
    check_flow_normalised(flow, lim=10.0, n=300)
    x, log_q = flow.rsample_and_log_prob(500)
    assert torch.allclose(flow.log_prob(x), log_q, atol=TOL, rtol=0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        PlanarFlow(2, kind="sylvester")
    with pytest.raises(ValueError, match="transforms"):
        PlanarFlow(2, transforms=0)
    with pytest.raises(ValueError, match="features"):
        PlanarFlow(0)
    with pytest.raises(ValueError):
        PlanarFlow(2).log_prob(torch.zeros(3, 3))


def test_constraints_keep_a_margin_that_survives_float32():
    """w = (1, 0), u = (-20, 0): softplus(-20) = 2e-9 is lost in -1 + 2e-9 in float32, so without a
    margin w^T u_hat + 1 == 0, the layer is singular at w^T z + b = 0 and log q is NaN there."""
    layer = Planar(2)
    with torch.no_grad():
        layer.w.copy_(torch.tensor([1.0, 0.0]))
        layer.u.copy_(torch.tensor([-20.0, 0.0]))
        layer.b.zero_()
    assert 1 + layer.w @ layer.u_hat() >= 0.5 * MARGIN
    x = torch.tensor([[0.0, 0.0], [1e-4, 1.0], [-3.0, 2.0]])
    z, ladj = layer(x)
    x_back, ladj_i = layer.inverse(z)
    assert torch.isfinite(ladj).all() and torch.allclose(x_back, x, atol=1e-3)
    radial = Radial(2)
    with torch.no_grad():
        radial.beta_raw.fill_(-20.0)
    z, ladj = radial(radial.z0.detach()[None])  # the centre: 1 + beta / alpha is the margin
    assert torch.isfinite(z).all() and torch.isfinite(ladj).all()


def test_float32_planar_flow_near_its_bound_gives_finite_densities():
    torch.manual_seed(0)
    flow = PlanarFlow(2, transforms=4)
    with torch.no_grad():
        for layer in flow.transform.transforms:  # w^T u = -20 in every layer: right at the bound
            set_wu(layer, -20.0)
    x, log_q = flow.rsample_and_log_prob(20000)
    assert torch.isfinite(log_q).all() and torch.isfinite(flow.log_prob(x[:2000])).all()


def test_forward_near_a_singular_layer_keeps_the_roots_value(monkeypatch):
    """1 + w^T u_hat = 1e-12: near the fold, w^T x = -b + eps (a + b) + (a + b)^3 / 3 recovers a
    only to about eps^(1/3) ~ 1e-5, and a final Newton step with slope ~ 1e-12 that also moved the
    root made forward(inverse(z)) miss z by 3e-2. The gradient-only step keeps the root."""
    import planar_flows.planar as planar_module

    monkeypatch.setattr(planar_module, "MARGIN", 1e-13)
    layer = Planar(2).double()
    with torch.no_grad():
        layer.w.copy_(torch.tensor([0.6, 0.8], dtype=torch.float64))
        layer.u.copy_(math.log(math.expm1(1e-12)) * layer.w)  # softplus(w^T u) = 1e-12
        layer.b.fill_(0.1)
    assert abs(1 + layer.w @ layer.u_hat() - 1e-12) < 1e-14
    gen = torch.Generator().manual_seed(0)
    z = -0.1 * layer.w.detach() + 1e-2 * torch.randn(2000, 2, generator=gen, dtype=torch.float64)
    z_back, _ = layer(layer.inverse(z)[0])
    assert (z_back - z).abs().max() < 1e-3, (z_back - z).abs().max()
    x = 2 * torch.randn(200, 2, generator=gen, dtype=torch.float64)  # and away from the fold
    assert (layer.inverse(layer(x)[0])[0] - x).abs().max() < 1e-8


@pytest.mark.parametrize("kind", ["planar", "radial"])
def test_empty_batches(kind):
    flow = PlanarFlow(2, transforms=2, kind=kind)
    assert flow.sample(0).shape == (0, 2)
    assert flow.log_prob(torch.zeros(0, 2)).shape == (0,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(features=2, transforms=True), "transforms must be an integer >= 1, got True"),
        (dict(features=True), "features must be an integer >= 1, got True"),
        (dict(features=2, kind=["planar"]), r"kind must be one of \['planar', 'radial'\]"),
        (dict(features=2, kind="sylvester"), "kind must be one of.*got 'sylvester'"),
    ],
)
def test_bad_builder_arguments_name_what_was_expected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PlanarFlow(**kwargs)


def test_bad_inputs_raise():
    check_bad_input_raises(PlanarFlow(3, 2), features=3, context=0)


@pytest.mark.parametrize(
    "dtype, far", [(torch.float32, 1e8), (torch.float32, 1e20), (torch.float64, 1e160)]
)
def test_a_far_radial_row_is_minus_inf_or_finite_and_leaves_the_others_gradients_finite(dtype, far):
    """Issue 25, item 8: [[1e20, 0]] gave NaN in float32 (||x||^2 overflows), 1e160 in float64;
    at 1e8 the stable root's unused branch divided by 0 and its 0 * inf reached the gradients."""
    torch.manual_seed(0)
    flow = PlanarFlow(2, transforms=4, kind="radial").to(dtype)
    log_prob = flow.log_prob(torch.tensor([[0.0, 0.0], [far, 0.0]], dtype=dtype))
    assert torch.isfinite(log_prob[0]) and not log_prob[1].isnan(), log_prob
    log_prob[0].backward()
    assert all(torch.isfinite(p.grad).all() for p in flow.parameters())
