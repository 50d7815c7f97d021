"""Neural spline flows: the rational-quadratic spline alone (monotone, invertible, exact
log-derivative, finite everywhere, float32 round trips, the same numbers as nflows), both NSF
variants in the Jacobian harness, empty batches, infinite inputs, and bad hyperparameters."""

import math

import pytest
import torch

from common.flows import Flow, Inverse
from nsf import NSF, SplineAutoregressive, SplineCoupling, rq_spline
from nsf.nsf import DERIVATIVE_BOUND, LOGIT_BOUND, MIN_WIDTH, knots, soft_bound
from tests.harness import check_bad_input_raises, check_flow_normalised, check_transform, perturb

B, K = 5.0, 8


def _unstandardised(n, features, seed=0):
    """Points of sd 6 around 12: mostly outside [-B, B], where a spline is the identity."""
    gen = torch.Generator().manual_seed(seed)
    return 12 + 6 * torch.randn(n, features, generator=gen, dtype=torch.float64)


def _with_actnorm(features, context, coupling):
    """NSF(actnorm=True) past ActNorm's start on its first training batch, then perturbed."""
    flow = NSF(features, 3, (16, 16), coupling=coupling, context=context, actnorm=True).double()
    h = torch.randn(64, context, dtype=torch.float64) if context else None
    flow.log_prob(_unstandardised(64, features), h)  # training mode: ActNorm's start
    return perturb(flow, 0.2).transform


# Perturbation scales: at the harness's default 0.5 some random splines get slopes of 1e-8 and the
# composed map is so ill-conditioned that float64 rounding alone (error = eps / slope) breaks 1e-6;
# that is the map, not the code. The spline tests below cover extreme parameters in the
# well-conditioned direction.
HARNESS_CASES = [
    (
        "spline-autoregressive",
        lambda d, c: perturb(SplineAutoregressive(d, K, B, (16, 16), c).double(), 0.3),
        (0, 3),
    ),
    (
        "spline-coupling",
        lambda d, c: perturb(SplineCoupling(d, K, B, (16, 16), c).double(), 0.3),
        (0, 3),
    ),
    (
        "nsf-ar",
        lambda d, c: perturb(NSF(d, 3, (16, 16), context=c).double(), 0.2).transform,
        (0, 3),
    ),
    (
        "nsf-c",
        lambda d, c: perturb(NSF(d, 3, (16, 16), coupling=True, context=c).double(), 0.2).transform,
        (0, 3),
    ),
    ("nsf-ar-actnorm", lambda d, c: _with_actnorm(d, c, coupling=False), (0, 3)),
    ("nsf-c-actnorm", lambda d, c: _with_actnorm(d, c, coupling=True), (0, 3)),
]
PARAMS = [
    (name, factory, context, features)
    for name, factory, contexts in HARNESS_CASES
    for context in contexts
    for features in (1, 2, 3, 6)
]


def unreachable(features, context):
    """One feature and no context: the conditioner's first layer sees nothing (MADE masks it whole;
    a coupling's MLP has no input), so no gradient may reach it."""
    return ("*net.0.weight",) if features == 1 and context == 0 else ()


@pytest.mark.parametrize(
    "name,factory,context,features", PARAMS, ids=[f"{p[0]}-c{p[2]}-d{p[3]}" for p in PARAMS]
)
# a one-feature coupling's MLP has no input: torch warns that it initialises a (16, 0) weight
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors:UserWarning")
def test_harness(name, factory, context, features):
    layer = factory(features, context)
    check_transform(layer, features, context, unreachable=unreachable(features, context))


def _params(n, scale=2.0, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, 3 * K - 1, generator=gen, dtype=dtype)


def _knots(params):
    """Knot coordinates x^k, y^k (n, K+1) written independently of the module (Sec. 3.1), with
    the module's soft bound v / (1 + |v| / c) on the logits."""
    logits = params[:, : 2 * K].view(-1, 2, K)
    logits = logits / (1 + logits.abs() / LOGIT_BOUND)
    wh = MIN_WIDTH + (1 - MIN_WIDTH * K) * torch.softmax(logits, -1)
    knots = -B + 2 * B * torch.cat([torch.zeros_like(wh[..., :1]), wh.cumsum(-1)], -1)
    return knots[:, 0], knots[:, 1]


def _points(params, seed=1):
    """Random points in [-B - 2, B + 2], every knot (including +-B), and points just inside and
    outside +-B."""
    n = params.shape[0]
    gen = torch.Generator().manual_seed(seed)
    xk, _ = _knots(params)
    edges = torch.tensor(
        [-B, B, -B - 1e-12, B + 1e-12, -B + 1e-12, B - 1e-12, -B - 3, B + 3], dtype=params.dtype
    )
    # (n, m): one spline per row
    x = torch.cat(
        [
            (2 * B + 4) * torch.rand(n, 64, generator=gen, dtype=params.dtype) - B - 2,
            xk,
            edges.expand(n, -1),
        ],
        1,
    )
    return x, params[:, None, :].expand(-1, x.shape[1], -1)


def test_spline_passes_through_its_knots():
    params = _params(50)
    xk, yk = _knots(params)
    y, _ = rq_spline(xk, params[:, None].expand(-1, K + 1, -1), B)
    assert torch.allclose(y, yk, atol=1e-12, rtol=0)  # g(x^k) = y^k: Eq. 4 at xi = 0 and 1
    ends = torch.tensor([-B, B], dtype=torch.float64).expand(50, -1)
    assert torch.allclose(
        rq_spline(ends, params[:, None].expand(-1, 2, -1), B)[0], ends, atol=1e-14, rtol=0
    )
    x, _ = rq_spline(yk, params[:, None].expand(-1, K + 1, -1), B, inverse=True)
    assert torch.allclose(x, xk, atol=1e-12, rtol=0)


def test_spline_is_monotone():
    params = _params(30, scale=3.0)
    x = torch.linspace(-B - 1, B + 1, 4001, dtype=torch.float64).expand(30, -1)
    y, log_dg = rq_spline(x, params[:, None].expand(-1, x.shape[1], -1), B)
    assert (y.diff(dim=-1) > 0).all()
    assert torch.isfinite(log_dg).all()


def test_spline_inverts_everywhere_to_1e10():
    # trained conditioners' range; steeper splines: test_extreme_parameters
    params = _params(200, scale=1.0)
    x, p = _points(params)
    y, ladj = rq_spline(x, p, B)
    x_back, ladj_inv = rq_spline(y, p, B, inverse=True)
    assert (x_back - x).abs().max() < 1e-10
    assert (ladj + ladj_inv).abs().max() < 1e-10
    y_back, _ = rq_spline(rq_spline(x, p, B, inverse=True)[0], p, B)  # the other direction
    assert (y_back - x).abs().max() < 1e-10


def test_tails_are_the_identity():
    params = _params(20)
    x = torch.tensor([-1e6, -B - 1e-9, -7.0, B + 1e-9, 9.5, 1e6], dtype=torch.float64).expand(
        20, -1
    )
    for inverse in (False, True):
        y, ladj = rq_spline(x, params[:, None].expand(-1, 6, -1), B, inverse)
        assert torch.allclose(y, x, atol=1e-12, rtol=1e-15) and ladj.abs().max() < 1e-12


@pytest.mark.parametrize("inverse", [False, True])
def test_log_derivative_equals_autograd(inverse):
    params = _params(100)
    x, p = _points(params)
    if inverse:
        x = rq_spline(x, p, B)[0]  # spline outputs, including the y-knots and +-B
    x = x.clone().requires_grad_()
    y, log_dg = rq_spline(x, p, B, inverse)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(grad.log(), log_dg, atol=1e-9, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_values_and_gradients_at_1e6_and_on_all_tail_batches(dtype):
    params = _params(4, dtype=dtype).requires_grad_()
    x = (
        torch.tensor([[1e6, -1e6, B + 1, -B - 1]], dtype=dtype)
        .expand(4, -1)
        .clone()
        .requires_grad_()
    )
    for inverse in (False, True):
        y, ladj = rq_spline(x, params[:, None].expand(-1, 4, -1), B, inverse)
        gx, gp = torch.autograd.grad(y.sum() + ladj.sum(), (x, params))
        # tails ignore the parameters, up to rounding (and no NaN * 0)
        eps = 1e4 * torch.finfo(dtype).eps
        assert torch.allclose(y, x, atol=0, rtol=eps) and ladj.abs().max() < eps
        assert torch.allclose(gx, torch.ones_like(gx)) and gp.abs().max() < eps
    # a whole flow, both directions, on a batch that lies in the tails only
    for coupling in (False, True):
        flow = NSF(3, transforms=2, hidden_features=(8,), coupling=coupling).to(dtype)
        x = torch.tensor([[1e6, -1e6, 7.0], [-1e6, 1e6, -8.0]], dtype=dtype)
        log_p = flow.log_prob(x)
        log_p.sum().backward()
        assert torch.isfinite(log_p).all()
        assert all(torch.isfinite(p.grad).all() for p in flow.parameters())
        z, ladj = flow.transform.inverse(x)
        assert torch.isfinite(z).all() and torch.isfinite(ladj).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_parameters(dtype):
    """Huge and tiny widths, heights and derivatives: finite values and gradients, monotone, and
    forward(inverse(y)) = y (the well-conditioned direction: inverse(forward(x)) can only be as good
    as rounding / slope, and slopes here go down to 1e-9)."""
    n, scales = 12, torch.tensor([1e1, 1e2, 1e3, 1e6], dtype=dtype)
    rows = []
    for s in scales:
        rows += [_params(n, 1.0, seed=int(s), dtype=dtype) * s]
    params = torch.cat(
        rows
        + [
            torch.cat(
                [
                    torch.full((n, 2 * K), v, dtype=dtype),  # equal bins, extreme slopes
                    torch.full((n, K - 1), d, dtype=dtype),
                ],
                1,
            )
            for v, d in ((0.0, 1e6), (0.0, -1e6), (1e6, 0.0))
        ]
    )
    params = params.requires_grad_()
    x = torch.linspace(-B - 0.5, B + 0.5, 257, dtype=dtype).expand(params.shape[0], -1)
    p = params[:, None].expand(-1, x.shape[1], -1)
    y, log_dg = rq_spline(x, p, B)
    assert torch.isfinite(y).all() and torch.isfinite(log_dg).all() and (y.diff(dim=-1) >= 0).all()
    x_back, log_inv = rq_spline(y, p, B, inverse=True)
    y_back, _ = rq_spline(x_back, p, B)
    # accurate in the better-conditioned coordinate (x where the spline is steep, y where it is
    # flat), to a few eps times the largest derivative: forming the quadratic's a, b, c cancels
    # terms of size delta^k ~ 1e6
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    assert torch.minimum((x_back - x).abs(), (y_back - y).abs()).max() < tol
    (grad,) = torch.autograd.grad(y.sum() + log_dg.sum() + x_back.sum() + log_inv.sum(), params)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("coupling,context", [(False, 0), (True, 2)])
def test_nsf_density_integrates_to_one(coupling, context):
    flow = perturb(
        NSF(2, transforms=2, hidden_features=(16,), coupling=coupling, context=context).double(),
        0.15,
    )
    c = torch.tensor([0.3, -1.2], dtype=torch.float64) if context else None
    check_flow_normalised(flow, lim=8.0, n=200, tol=5e-3, context=c)


def test_inverted_nsf_samples_in_one_pass_and_scores_its_samples():
    """Inverse(NSF-AR) samples with one MADE pass per layer; its log_prob (D passes) agrees."""
    base = perturb(NSF(3, transforms=2, hidden_features=(16,)).double(), scale=0.2)
    flow = Flow(Inverse(base.transform), features=3).double()
    x, log_q = flow.rsample_and_log_prob(64)
    assert torch.allclose(flow.log_prob(x), log_q, atol=1e-8)


def test_bad_hyperparameters_raise():
    for kwargs in [
        dict(features=0),
        dict(features=2, transforms=0),
        dict(features=2, bins=1),
        dict(features=2, bins=1000),
        dict(features=2, bins=8.0),
        dict(features=2, bound=0.0),
        dict(features=2, bound=-1),
        dict(features=2, hidden_features=()),
        dict(features=2, hidden_features=(0,)),
        dict(features=2, context=-1),
        dict(features=2, coupling="yes"),
        dict(features=2, actnorm="yes"),
        dict(features=True),
    ]:
        with pytest.raises(ValueError):
            NSF(**kwargs)
    check_bad_input_raises(NSF(2, context=1), features=2, context=1)


def test_float32_round_trip_and_log_derivatives_for_per_point_parameters_over_50_seeds():
    """zuko's univariate-transform test, reproduced: float32, unit-scale random parameters per
    point, 256 points on [-5, 5]; inverse(forward(x)) = x to 1e-4 and both log-derivatives equal
    autograd's to 1e-4, for each of 50 seeds (all at once: seed = leading axis). Without the soft
    bounds on the bins, 20 of the 50 seeds failed: bins 200 times wider than high gave slopes of
    1e-4, where float32's rounding of y alone moves x by 1e-3."""
    rows = []
    for seed in range(50):
        gen = torch.Generator().manual_seed(seed)
        rows.append(torch.randn(256, 3 * K - 1, generator=gen))
    params = torch.stack(rows)  # (50 seeds, 256 points, 3K - 1)
    x = torch.linspace(-B, B, 256).expand(50, -1).clone().requires_grad_()
    y, log_dg = rq_spline(x, params, B)
    (dy_dx,) = torch.autograd.grad(y.sum(), x)
    y = y.detach().requires_grad_()
    x_back, log_dx = rq_spline(y, params, B, inverse=True)
    (dx_dy,) = torch.autograd.grad(x_back.sum(), y)
    ok = (
        ((x_back - x).abs() <= 1e-4 + 1e-5 * x.abs())  # torch.allclose(atol=1e-4), per point
        & ((log_dg - dy_dx.log()).abs() <= 1e-4 + 1e-5 * log_dg.abs())
        & ((log_dx - dx_dy.log()).abs() <= 1e-4 + 1e-5 * log_dx.abs())
    )
    failing = (~ok).any(-1).nonzero()[:, 0].tolist()
    assert not failing, f"seeds {failing} fail"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("inverse", [False, True])
def test_both_tails_are_exact(dtype, inverse):
    """|x| >= B, and x = +-B itself: g(x) = x and log g' = 0 exactly, at raw parameter scale 2 (the
    inverse's right tail used to come out of the root with xi = 1 only up to rounding and
    log-derivatives of 0.1 in float32)."""
    params = _params(200, scale=2.0, dtype=dtype)[:, None].expand(-1, 6, -1)
    x = torch.tensor([-1e6, -B - 1e-3, -B, B, B + 1e-3, 1e6], dtype=dtype).expand(200, -1)
    y, ladj = rq_spline(x, params, B, inverse)
    assert torch.equal(y, x) and torch.equal(ladj, torch.zeros_like(ladj))


def _soft_derivatives(raw):
    return raw / (1 + raw.abs() / DERIVATIVE_BOUND)


def test_knots_are_the_soft_bounded_softmax_and_softplus():
    """knots(): x- and y-knots from -B to B exactly, the authors' minimum widths and derivatives,
    bins within a factor ~1e3 of each other and slopes within (1e-3, 1e3) for any raw values."""
    params = torch.cat([_params(20, scale=3.0), 1e6 * _params(20, seed=5)])
    xk, yk, d = knots(params, B)
    xk_ref, yk_ref = _knots(params)
    assert torch.allclose(xk, xk_ref, atol=1e-12) and torch.allclose(yk, yk_ref, atol=1e-12)
    assert (xk[:, 0] == -B).all() and (xk[:, -1] == B).all() and (yk[:, -1] == B).all()
    interior = 1e-3 + torch.nn.functional.softplus(_soft_derivatives(params[:, 2 * K :]))
    assert torch.allclose(d[:, 1:-1], interior) and (d[:, [0, -1]] == 1).all()
    widths = xk.diff(dim=-1)
    assert (widths.amax(-1) / widths.amin(-1) < 1.01e3).all() and (d < 1e3 + 1e-3).all()
    assert torch.equal(soft_bound(torch.tensor([0.0, 1e30]), 2.0), torch.tensor([0.0, 2.0]))


def test_the_formulas_are_nflows_on_the_same_knots():
    """Eq. 4, 5 and App. A against nflows (float64, 1e-10): nflows' spline fed the soft-bounded
    raw parameters (its own parametrisation otherwise: softmax, minimum widths, softplus)."""
    splines = pytest.importorskip("nflows.transforms.splines.rational_quadratic")
    params = _params(300, scale=1.0)
    x, p = _points(params)
    x = x.clamp(-B + 1e-9, B - 1e-9)  # nflows' tails are masked-indexed; compare the spline itself
    w, h = soft_bound(p[..., : 2 * K], LOGIT_BOUND).split(K, -1)
    d = soft_bound(p[..., 2 * K :], DERIVATIVE_BOUND)
    for inverse in (False, True):
        inputs = rq_spline(x, p, B)[0] if inverse else x
        ours = rq_spline(inputs, p, B, inverse)
        theirs = splines.unconstrained_rational_quadratic_spline(
            inputs, w, h, d, inverse=inverse, tails="linear", tail_bound=B
        )
        for a, b in zip(ours, theirs, strict=True):
            assert (a - b).abs().max() < 1e-10, (inverse, (a - b).abs().max())


@pytest.mark.parametrize("coupling", [False, True])
def test_empty_batches_give_empty_results(coupling):
    flow = NSF(2, transforms=2, hidden_features=(8,), coupling=coupling)
    assert flow.sample(0).shape == (0, 2)
    assert flow.log_prob(torch.empty(0, 2)).shape == (0,)
    z, ladj = flow.transform.inverse(torch.empty(0, 2))
    assert z.shape == (0, 2) and ladj.shape == (0,)


@pytest.mark.parametrize("coupling", [False, True])
def test_infinite_inputs_have_log_prob_minus_infinity(coupling):
    """An infinite coordinate lies in a tail (the identity), so log p = -inf, not NaN; a finite
    row of the same batch is unaffected, and the transform itself stays NaN-free."""
    flow = perturb(NSF(3, transforms=2, hidden_features=(8,), coupling=coupling), 0.3)
    inf = math.inf
    x = torch.tensor([[inf, 0.0, 0.5], [0.2, -inf, 1.0], [0.1, 0.3, inf], [0.1, 0.3, 0.2]])
    log_p = flow.log_prob(x)
    assert (log_p[:3] == -inf).all() and torch.isfinite(log_p[3])
    assert torch.allclose(log_p[3], flow.log_prob(x[3:]))
    for direction in (flow.transform.forward, flow.transform.inverse):
        z, ladj = direction(x)
        assert not z.isnan().any() and torch.isfinite(ladj).all()
        assert torch.equal(z.isinf().sum(1), x.isinf().sum(1))  # each stays in its tail


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(bins=0), "bins must be an integer >= 2, got 0"),
        (dict(bins=True), "bins must be an integer >= 2, got True"),
        (dict(bins=1000), r"bins must be a finite number in \[2, 1000\), got 1000"),
        (dict(bound=math.inf), r"bound must be a finite number in \(0, inf\], got inf"),
        (dict(bound=math.nan), r"bound must be a finite number in \(0, inf\], got nan"),
        (dict(bound=0), r"bound must be a finite number in \(0, inf\], got 0"),
        (dict(bound=True), r"bound must be a finite number in \(0, inf\], got True"),
        (dict(bound="5"), r"bound must be a finite number in \(0, inf\], got '5'"),
    ],
)
def test_bad_bins_and_bounds_name_what_was_expected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NSF(2, **kwargs)


def test_actnorm_brings_unstandardised_data_into_the_bound_and_survives_a_checkpoint(tmp_path):
    """NSF(actnorm=True): after the first training batch the points reaching the first spline are
    standardised (inside [-B, B]); load_flow and load_checkpoint restore that start, not redo it."""
    from common.checkpoint import load_checkpoint, load_flow, save_checkpoint
    from common.layers import ActNorm

    flow = NSF(2, 2, (8,), actnorm=True)
    assert isinstance(flow.transform.transforms[0], ActNorm)
    assert not any(isinstance(m, ActNorm) for m in NSF(2, 2, (8,)).modules())
    x = _unstandardised(512, 2).float()
    assert (x.abs() > B).float().mean() > 0.5
    log_p = flow.log_prob(x)  # training mode: the start
    z, _ = flow.transform.transforms[0](x)
    assert (z.abs() < B).float().mean() > 0.99
    save_checkpoint(flow, tmp_path / "nsf.pt")
    rebuilt, _ = load_flow(tmp_path / "nsf.pt")
    rebuilt.train()
    assert torch.equal(rebuilt.log_prob(x - 30), flow.log_prob(x - 30))  # no second start
    assert torch.equal(rebuilt.log_prob(x), log_p)
    into = NSF(2, 2, (8,), actnorm=True)
    load_checkpoint(into, tmp_path / "nsf.pt")
    assert torch.equal(into.log_prob(x - 30), flow.log_prob(x - 30))


@pytest.mark.parametrize("rows", [0, 1])
def test_a_fresh_actnorm_flow_takes_empty_and_one_row_batches(rows):
    """Issue 25, item 16: a new model is in training mode; ActNorm sets itself from the first
    training batch of >= 2 points, and before that it is the identity (no error)."""
    flow = NSF(2, transforms=2, hidden_features=(8,), actnorm=True)
    x = torch.randn(rows, 2)
    log_prob = flow.log_prob(x)
    assert log_prob.shape == (rows,) and torch.isfinite(log_prob).all()
    actnorm = flow.transform.transforms[0]
    assert not actnorm.initialised and (actnorm.shift == 0).all() and (actnorm.log_scale == 0).all()
    flow.log_prob(5 + 3 * torch.randn(64, 2))  # the first batch of >= 2 points sets it
    assert actnorm.initialised and (actnorm.shift != 0).all()
