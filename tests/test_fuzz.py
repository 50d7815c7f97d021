"""Fuzz every pre-built flow (issue 14, "Tests that keep it so"): no NaN, exact round trips.

A few hundred inputs per flow and dtype from ``tools.fuzz`` (``python -m tools.fuzz`` runs the
10,000-input version and prints the README's table): N(0, 1), x1e3, x1e6, +-1e3, one coordinate at
+-1e3 or +-1e6, zeros, and for NSF the exact bounds and knots; weights perturbed by N(0, 0.1^2).
log_prob may be -inf far from the support (a density that underflows), never NaN or +inf.
"""

import math

import pytest
import torch

from nsf.nsf import knots, rq_spline
from realnvp import RealNVP
from tools.fuzz import (
    DTYPES,
    FLOWS,
    MODELS,
    RESIDUAL_TOL,
    ROUND_TRIP_TOL,
    build,
    contexts,
    far_inputs,
    fuzz_inputs,
    layers,
    ordinary_inputs,
    round_trip_error,
    worst_round_trip,
)

N = 400  # inputs per flow and dtype
CASES = [(name, dtype) for name in FLOWS for dtype in DTYPES]
IDS = [f"{name}-{str(dtype)[6:]}" for name, dtype in CASES]


@pytest.mark.parametrize("name, dtype", CASES, ids=IDS)
def test_no_nan_in_log_prob_samples_or_gradients(name, dtype):
    flow = build(name, dtype)
    x = fuzz_inputs(flow, N)
    assert x.shape == (N, flow.features) and x.dtype == dtype
    log_prob = flow.log_prob(x)
    assert not log_prob.isnan().any(), f"{int(log_prob.isnan().sum())} of {N} log_prob are NaN"
    assert not (log_prob == math.inf).any(), "log_prob is +inf"
    finite = torch.isfinite(log_prob)
    assert finite[: N // 8].all(), "log_prob of N(0, 1) points is not finite"
    log_prob[finite].sum().backward()  # the gradient of the finite rows only
    bad = [n for n, p in flow.named_parameters() if p.grad is not None and p.grad.isnan().any()]
    assert not bad, f"NaN gradients in {bad}"
    samples = flow.sample(N)
    assert samples.dtype == dtype and not samples.isnan().any(), "NaN in samples"


MODEL_CASES = [(name, dtype) for name in MODELS for dtype in DTYPES]
MODEL_IDS = [f"{name}-{str(dtype)[6:]}" for name, dtype in MODEL_CASES]


@pytest.mark.parametrize("name, dtype", MODEL_CASES, ids=MODEL_IDS)
def test_far_inputs_are_minus_inf_never_nan_and_leave_the_other_rows_gradients_finite(name, dtype):
    """Issue 25, item 8: finite points from 1e3 up to the dtype's largest float, next to ordinary
    points: log_prob is finite or -inf in every row (never NaN or +inf), the ordinary rows stay
    finite, and the gradient of the finite rows has no NaN."""
    flow = build(name, dtype)
    x = torch.cat([ordinary_inputs(flow, N // 4), far_inputs(flow, N)])
    log_prob = flow.log_prob(x, contexts(flow, x.shape[0]))
    nan = log_prob.isnan()
    assert not nan.any(), f"{int(nan.sum())} NaN, e.g. at {x[nan][:3].tolist()}"
    assert not (log_prob == math.inf).any(), "log_prob is +inf"
    finite = torch.isfinite(log_prob)
    assert finite[: N // 4].all(), "an ordinary point lost its density next to far points"
    log_prob[finite].sum().backward()
    bad = [n for n, p in flow.named_parameters() if p.grad is not None and p.grad.isnan().any()]
    assert not bad, f"NaN gradients in {bad}"


def test_far_inputs_reach_the_largest_float():
    for dtype in DTYPES:
        x = far_inputs(build("maf", dtype), 100)
        assert torch.isfinite(x).all() and (x.abs() == torch.finfo(dtype).max).any()
        assert (x.abs().amax(-1) >= 1e3).all()


@pytest.mark.parametrize("name", MODELS)
def test_half_precision_log_prob_and_samples(name):
    """Issue 25, item 17: every model runs in float16 (IAF's input bound fits the dtype)."""
    flow = build(name, torch.float16)
    x = ordinary_inputs(flow, 64)
    log_prob = flow.log_prob(x, contexts(flow, 64))
    assert log_prob.dtype == torch.float16 and torch.isfinite(log_prob).all(), log_prob
    samples = flow.sample(64, contexts(flow, 64))
    assert samples.dtype == torch.float16 and not samples.isnan().any()


@pytest.mark.parametrize("name, dtype", CASES, ids=IDS)
def test_round_trips(name, dtype):
    """inverse(forward(x)) == x on N(0, 1) points, every layer and the whole transform, both ways;
    and on every fuzz input the backward error |forward(inverse(z)) - z| of every layer."""
    flow = build(name, dtype)
    gen = torch.Generator().manual_seed(1)
    ordinary = torch.randn(N, flow.features, generator=gen, dtype=torch.float64).to(dtype)
    err = worst_round_trip(flow, ordinary)
    assert err < ROUND_TRIP_TOL[dtype], f"round trip {err:.1e} > {ROUND_TRIP_TOL[dtype]:g}"
    x = fuzz_inputs(flow, N)
    res = worst_round_trip(flow, x, sampling=False, whole=False, residual=True)
    assert res < RESIDUAL_TOL[dtype], f"layer residual {res:.1e} > {RESIDUAL_TOL[dtype]:g}"


def test_round_trip_error_can_fail():
    """The measure sees an inverse that is off by 1e-3 and a NaN output."""
    from common.flows import Transform

    class Off(Transform):
        def forward(self, x, context=None):
            return 2 * x, x.new_zeros(x.shape[0])

        def inverse(self, z, context=None):
            return z / 2.002, z.new_zeros(z.shape[0])

    x = torch.ones(3, 2, dtype=torch.float64)
    assert round_trip_error(Off(), x)[0] == pytest.approx((1 - 2 / 2.002) / 2, rel=1e-6)
    assert round_trip_error(Off(), x, residual=True)[0] > 1e-4
    assert len(layers(build("iaf", torch.float64))) == 3  # IAF: the affine start and 2 steps


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("inverse", [False, True], ids=["forward", "inverse"])
def test_spline_at_knots_and_bounds(dtype, inverse):
    """rq_spline at every knot, at +-B exactly and just inside/outside: finite values,
    log-derivatives and gradients; knots map to knots; the tails are the identity with
    log-derivative exactly 0."""
    gen = torch.Generator().manual_seed(0)
    K, B, n = 8, 3.0, 64
    params = (torch.randn(n, 3 * K - 1, generator=gen, dtype=torch.float64)).to(dtype)
    params.requires_grad_(True)
    xk, yk, _ = (k.detach() for k in knots(params, B))  # x-knots map to y-knots
    if inverse:
        xk, yk = yk, xk  # and the inverse maps y-knots back to x-knots
    eps = torch.finfo(dtype).eps
    x = torch.cat([xk, xk[:, :1] - 10 * eps * B, xk[:, -1:] + 10 * eps * B, xk[:, :1] - 1e3], 1)
    p = params[:, None].expand(n, x.shape[1], -1)
    y, log_d = rq_spline(x, p, B, inverse=inverse)
    assert torch.isfinite(y).all() and torch.isfinite(log_d).all()
    tol = {torch.float32: 1e-4, torch.float64: 1e-12}[dtype]
    assert (y[:, : K + 1] - yk).abs().max() < tol, "a knot does not map to its knot"
    assert (y[:, K + 1 :] - x[:, K + 1 :]).abs().max() <= 4 * eps * (1 + x[:, K + 1 :].abs()).max()
    (y.sum() + log_d.sum()).backward()
    assert torch.isfinite(params.grad).all()
    assert (log_d[:, -1] == 0).all(), "the far tail's log-derivative is not exactly 0"
    back, log_back = rq_spline(y.detach(), p.detach(), B, inverse=not inverse)
    assert (back - x).abs().max() < tol * (1 + x.abs().max()), "round trip at the knots"
    # log g' at a knot next to a steep bin moves by 1e-3 for one ulp of the knot in float32 (nflows'
    # spline shows the same), so the log-derivatives cancel only to that
    log_tol = {torch.float32: 1e-2, torch.float64: 1e-10}[dtype]
    assert (log_back + log_d.detach()).abs().max() < log_tol


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("inverse", [False, True], ids=["forward", "inverse"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_spline_tails_are_exactly_the_identity(side, inverse, dtype):
    """The docstring's promise: at and outside +-B the spline is the identity, log g' exactly 0."""
    gen = torch.Generator().manual_seed(0)
    K, B, n = 8, 3.0, 200
    params = (2 * torch.randn(n, 3 * K - 1, generator=gen, dtype=torch.float64)).to(dtype)
    eps = torch.finfo(dtype).eps
    x = torch.tensor([B, B * (1 + eps), B + 1, 1e3, 1e30], dtype=dtype)
    x = (x if side == "right" else -x).expand(n, -1)
    y, log_d = rq_spline(x, params[:, None].expand(n, x.shape[1], -1), B, inverse=inverse)
    assert (y == x).all(), f"tail moved by {(y - x).abs().max():.1e}"
    assert (log_d == 0).all(), f"tail log-derivative {log_d.abs().max():.1e}"


EMPTY = {
    **FLOWS,
    "realnvp-bn": lambda: RealNVP(3, transforms=2, hidden_features=(16,), batch_norm=True),
}


@pytest.mark.parametrize("name", EMPTY)
def test_empty_batch(name):
    """sample(0) and log_prob of a (0, D) batch are empty, in eval and (log_prob) train mode."""
    flow = EMPTY[name]().eval()
    D = flow.features
    assert flow.sample(0).shape == (0, D)
    assert flow.log_prob(torch.empty(0, D)).shape == (0,)
    assert flow.train().log_prob(torch.empty(0, D)).shape == (0,)


@pytest.mark.parametrize("name", ["maf-bn", "realnvp-bn"])
def test_batch_norm_survives_an_empty_or_nan_batch(name):
    """Train-mode batch norm: an empty batch returns empty, a NaN row is refused (ValueError) or
    stays in its row; either way the statistics used afterwards in eval mode stay finite."""
    flow = (build("maf-bn", torch.float32) if name == "maf-bn" else EMPTY[name]()).train()
    D = flow.features
    assert flow.log_prob(torch.empty(0, D)).shape == (0,)
    x = torch.randn(8, D)
    x[0, 0] = math.nan
    try:
        log_prob = flow.log_prob(x)
        assert torch.isfinite(log_prob[1:]).all(), "one NaN row turned the others NaN"
    except ValueError:
        pass
    assert torch.isfinite(flow.eval().log_prob(torch.randn(16, D))).all()


def test_planar_constraint_keeps_a_margin_in_float32():
    from common.flows import Flow
    from planar_flows.planar import Planar

    layer = Planar(2)
    with torch.no_grad():
        layer.w.copy_(torch.tensor([1.0, 0.0])), layer.u.copy_(torch.tensor([-20.0, 0.0]))
        layer.b.zero_()
    x = torch.randn(100, 2)
    x[:, 0] = 0.0  # where tanh' = 1: the layer's slope there is 1 + w^T u_hat
    assert 1 + (layer.w * layer.u_hat()).sum() > 0
    assert not Flow([layer], features=2).log_prob(x).isnan().any()


def test_radial_constraint_keeps_a_margin_in_float32():
    from common.flows import Flow
    from planar_flows.planar import Radial

    layer = Radial(2)
    with torch.no_grad():
        layer.beta_raw.fill_(-20.0)
    x = layer.z0.detach()[None] + torch.tensor([[0.0, 0.0], [1e-6, 0.0], [0.0, -1e-3]])
    assert not Flow([layer], features=2).log_prob(x).isnan().any()


def test_planar_round_trip_near_a_singular_layer():
    """At the most singular layer the constraint allows (1 + w^T u_hat = MARGIN, slope 1e-4 on the
    line w^T z + b = 0) the round trip is as exact as its conditioning (1e4 eps): the final Newton
    step removes the root finder's residual (4e-10 without it)."""
    from planar_flows.planar import MARGIN, Planar

    layer = Planar(2).double()
    with torch.no_grad():  # softplus(w^T u) = softplus(-20) < MARGIN: 1 + w^T u_hat = MARGIN
        layer.w.copy_(torch.tensor([1.0, 0.0])), layer.b.zero_()
        layer.u.copy_(torch.tensor([-20.0, 0.3]))
    assert (1 + (layer.w * layer.u_hat()).sum()).item() == pytest.approx(MARGIN, rel=1e-9)
    z = torch.randn(2000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    z[:, 0] *= 1e-3  # near w^T z + b = 0, where the layer's slope is MARGIN
    x, _ = layer.inverse(z)
    z_back, _ = layer(x)
    assert (z_back - z).abs().max() < 1e-12


@pytest.mark.parametrize("name", FLOWS)
@pytest.mark.parametrize("value", [math.inf, -math.inf], ids=["+inf", "-inf"])
def test_infinite_input_is_minus_inf_or_refused(name, value):
    flow = build(name, torch.float64)
    x = torch.zeros(2, flow.features, dtype=torch.float64)
    x[0, 0] = value
    try:
        log_prob = flow.log_prob(x)
    except ValueError as error:
        assert "inf" in str(error)
        return
    assert log_prob[0] == -math.inf and torch.isfinite(log_prob[1])


@pytest.mark.parametrize("name", ["maf-bn", "realnvp-bn", "nsf-actnorm"])
@pytest.mark.parametrize("far", [1e18, 1e30, 3e38])
def test_a_far_row_in_a_training_batch_leaves_the_others_and_the_statistics_finite(name, far):
    """Train mode: batch norm's statistics leave out a row so large that the variance overflows
    (it made every row of the batch -inf and a running variance inf)."""
    flow = build(name, torch.float32).train()
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    x[0] = far
    log_prob = flow.log_prob(x)
    assert torch.isfinite(log_prob[1:]).all() and not log_prob[0].isnan(), log_prob
    log_prob[1:].sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in flow.parameters() if p.grad is not None)
    assert all(torch.isfinite(b).all() for b in flow.buffers() if b.is_floating_point())


def test_a_nan_near_the_support_is_not_hidden():
    """Only a row beyond sqrt(largest float / D) may turn a NaN into -inf: a NaN that a layer
    makes at ordinary points (a bug) stays NaN."""
    from common.flows import Flow, Transform

    class Broken(Transform):  # NaN wherever x_0 > 1, finite elsewhere
        def forward(self, x, context=None):
            nan = torch.where(x[:, :1] > 1, math.nan, 0.0)
            return x + nan, x.new_zeros(x.shape[0]) + nan[:, 0]

    flow = Flow([Broken()], features=2)
    log_prob = flow.log_prob(torch.tensor([[0.0, 0.0], [2.0, 0.0], [1e20, 0.0], [1e10, 1e20]]))
    assert torch.isfinite(log_prob[0]) and log_prob[1].isnan(), log_prob
    assert log_prob[2] == -math.inf and log_prob[3] == -math.inf  # beyond sqrt(3.4e38 / 2) = 1.3e19
