"""Hidden tests: each part's formula pinned at points computed by hand (issue 15, item 7).

They are not in the student copy; ``python -m course.grade --submission`` and the Gradescope bundle
run them. Each test builds a layer whose parameters are set to known values, so the expected output
is a short calculation with Python floats, written here from the paper's equation; a plausible
wrong implementation (a sign, a missing mask, a linear spline) fails them even where the public
round-trip tests pass.
"""

import math

import torch
from torch import nn

from common.flows import Flow, Transform
from common.layers import BatchNorm
from common.nets import MADE, MaskedLinear
from common.train import train_reverse_kl
from iaf.iaf import GatedAutoregressive
from maf.maf import MAFLayer
from nsf.nsf import DERIVATIVE_BOUND, LOGIT_BOUND, MIN_DERIVATIVE, MIN_WIDTH, rq_spline
from planar_flows.planar import Planar, Radial, constrain
from realnvp.realnvp import AffineCoupling, channel_mask, checkerboard
from tests.harness import perturb

LOG_2PI = math.log(2 * math.pi)


def close(got, expected, tol=1e-9):
    expected = torch.as_tensor(expected, dtype=torch.float64)
    got = torch.as_tensor(got, dtype=torch.float64)
    assert got.shape == expected.shape, (
        f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    )
    assert torch.allclose(got, expected, atol=tol, rtol=0), (
        f"got {got.tolist()}, expected {expected.tolist()}"
    )


# ---------------------------------------------------------------- common


class TwoXPlusOne(Transform):
    """z = 2 x + 1 (data -> noise): log|det dz/dx| = D log 2."""

    def forward(self, x, context=None):
        return 2 * x + 1, torch.full(x.shape[:1], x.shape[1] * math.log(2), dtype=x.dtype)

    def inverse(self, z, context=None):
        return (z - 1) / 2, torch.full(z.shape[:1], -z.shape[1] * math.log(2), dtype=z.dtype)


class ShiftByContext(Transform):
    """z = x + c (data -> noise), c the context (batch, D); log|det dz/dx| = 0. Without a context
    (a caller that drops it) the shift is 0, so a forgotten context gives wrong numbers."""

    def forward(self, x, context=None):
        return x + (0 if context is None else context), x.new_zeros(x.shape[:1])

    def inverse(self, z, context=None):
        return z - (0 if context is None else context), z.new_zeros(z.shape[:1])


def test_change_of_variables_by_hand():
    flow = Flow([TwoXPlusOne()], features=2).double()
    x = torch.tensor([[0.5, -1.0], [0.0, 0.0]], dtype=torch.float64)
    # z = (2, -1) and (1, 1): log p(x) = log N(z) + 2 log 2
    expected = [
        -0.5 * (2.0**2 + 1.0**2) - LOG_2PI + 2 * math.log(2),
        -0.5 * (1.0 + 1.0) - LOG_2PI + 2 * math.log(2),
    ]
    close(flow.log_prob(x), expected)
    torch.manual_seed(1)
    x, log_p = flow.rsample_and_log_prob(4)
    assert x.shape == (4, 2) and log_p.shape == (4,)
    for row, value in zip(x.tolist(), log_p.tolist(), strict=True):
        z = [2 * v + 1 for v in row]  # the base point this sample came from
        by_hand = -0.5 * sum(v * v for v in z) - LOG_2PI + 2 * math.log(2)
        assert abs(value - by_hand) < 1e-9, (value, by_hand)
    # the context reaches the transform both ways (issue 26): z = 2 (x + c) + 1
    flow = Flow([ShiftByContext(), TwoXPlusOne()], features=2, context=2).double()
    c = torch.tensor([[1.0, -0.5], [-1.0, 0.5]], dtype=torch.float64)
    x = torch.tensor([[0.5, -1.0], [0.0, 0.0]], dtype=torch.float64)
    expected = [
        -0.5 * (4.0**2 + 2.0**2) - LOG_2PI + 2 * math.log(2),  # z = (4, -2)
        -0.5 * ((-1.0) ** 2 + 2.0**2) - LOG_2PI + 2 * math.log(2),  # z = (-1, 2)
    ]
    close(flow.log_prob(x, c), expected)
    x, log_p = flow.rsample_and_log_prob(2, c)
    for row, shift, value in zip(x.tolist(), c.tolist(), log_p.tolist(), strict=True):
        z = [2 * (v + s) + 1 for v, s in zip(row, shift, strict=True)]
        by_hand = -0.5 * sum(v * v for v in z) - LOG_2PI + 2 * math.log(2)
        assert abs(value - by_hand) < 1e-9, ("with a context", value, by_hand)
    close(flow.log_prob(x, c), log_p)


# MADE (Germain et al. 2015, Sec. 4): any degree assignment that gives the autoregressive property
# is correct, so the masks are checked for what they connect, not for one assignment (issue 26).
# Output row r belongs to feature r // params (the (features, params) layout forward reshapes to).
MADE_CASES = [  # (features, hidden, context, order)
    (3, (4,), 0, (0, 1, 2)),
    (3, (4,), 2, (0, 1, 2)),
    (4, (8, 8), 0, (2, 0, 3, 1)),
    (4, (8, 8), 3, (3, 1, 0, 2)),
    (5, (16, 16), 1, (4, 3, 2, 1, 0)),
    (1, (4,), 2, (0,)),
]


def _reach(layers):
    """reach[r, j]: some path through the masks' nonzero entries links input j to output row r."""
    reach = (layers[0].mask != 0).to(torch.float64)
    for layer in layers[1:]:
        reach = (layer.mask != 0).to(torch.float64) @ reach
    return reach > 0


def test_made_masks_connect_exactly_the_allowed_inputs():
    """One test for all the cases: a MADE that is wrong in some of them loses the whole group."""
    for case in MADE_CASES:
        _check_made(*case)


def _check_made(features, hidden, context, order):
    params = 2
    where = f"MADE({features}, {params}, {hidden}, context={context}, order={order}): "
    made = MADE(features, params, hidden, context=context, order=torch.tensor(order))
    assert isinstance(made.net, nn.Sequential), where + "self.net must be an nn.Sequential"
    layers = [m for m in made.net if isinstance(m, MaskedLinear)]
    assert made.net[-1] is layers[-1], where + "the last layer of self.net must be a MaskedLinear"
    assert len(layers) == len(hidden) + 1, where + f"{len(hidden)} hidden MaskedLinear, 1 output"
    assert layers[0].mask.shape[1] == features + context, (
        where + "the first mask sees x, then the context"
    )
    assert layers[-1].mask.shape[0] == features * params, (
        where + "the output mask: features * params rows"
    )
    reach = _reach(layers)
    for r in range(features * params):
        i = r // params
        for j in range(features):
            allowed = order[j] < order[i]
            assert bool(reach[r, j]) == allowed, where + (
                f"output {i} (order {order[i]}) {'cannot' if allowed else 'can'} see input {j} "
                f"(order {order[j]}): it {'should' if allowed else 'must not'}"
            )
        for k in range(context):
            assert reach[r, features + k], (
                where + f"output {i} (order {order[i]}) cannot see context {k}"
            )
    # and the network computes through these masks: perturb every weight, compare the Jacobian
    made = perturb(made.double(), seed=1)
    with torch.no_grad():
        for layer in layers:
            layer.bias.zero_()
    x = torch.randn(32, features, dtype=torch.float64)
    c = torch.randn(32, context, dtype=torch.float64) if context else None
    jac = torch.autograd.functional.jacobian(lambda x: made(x, c).sum(0), x).abs().sum((1, 2))
    forbidden = torch.tensor(order)[None, :] >= torch.tensor(order)[:, None]
    assert torch.all(jac[forbidden] == 0), where + "an output depends on an input at or after it"


class FixedQ(nn.Module):
    """q gives x = theta + (0, 1) for each draw with log q = theta - 1 (any numbers do). Both ways
    to get (x, log q) are offered: ``rsample_and_log_prob`` (one pass) or ``rsample`` then
    ``log_prob`` (two passes, also correct: issue 26); ``log_prob`` is log q on q's samples and
    its total derivative along them is that of theta - 1, so both ways give the same loss and the
    same gradient, and a draw cut from theta (``sample``, ``detach``) gives another gradient."""

    def __init__(self):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(0.5, dtype=torch.float64))
        self.calls = []

    def _draw(self, n):
        offset = torch.tensor([0.0, 1.0], dtype=torch.float64)
        return self.theta + offset.expand(n, 2)

    def rsample_and_log_prob(self, n, context=None):
        self.calls.append(("rsample_and_log_prob", n))
        return self._draw(n), (self.theta - 1).expand(n)

    def rsample(self, n, context=None):
        self.calls.append(("rsample", n))
        return self._draw(n)

    def log_prob(self, x, context=None):
        self.calls.append(("log_prob", x.shape[0]))
        # theta - 1 on q's draws (x_0 = theta), with a direct dependence on theta, as a flow's
        # log-density has: d/dtheta along x = theta + (0, 1) is -1 + 2 = 1, that of theta - 1
        return x[:, 0] - 1 + 2 * (self.theta - x[:, 0])

    @torch.no_grad()
    def sample(self, n, context=None):
        self.calls.append(("sample", n))
        return self._draw(n)

    def forward(self, *args, **kwargs):  # noqa: ARG002
        raise AssertionError("draw x ~ q with rsample_and_log_prob (or rsample, then log_prob)")


def test_reverse_kl_loss_by_hand():
    def energy(x):
        return (x**2).sum(-1)

    flow = FixedQ()
    history = train_reverse_kl(
        flow, energy, steps=2, batch_size=3, lr=0.0, anneal=4, progress=False
    )
    one_pass, two_passes = [("rsample_and_log_prob", 3)], [("rsample", 3), ("log_prob", 3)]
    assert flow.calls in (one_pass * 2, two_passes * 2), (
        f"per step, one call of flow.rsample_and_log_prob(batch_size, ...) (or rsample then "
        f"log_prob of those draws); got {flow.calls}"
    )
    # U(x) = 0.5^2 + 1.5^2 = 2.5, log q = -0.5; beta_1 = 0.01 + 1/4, beta_2 = 0.01 + 2/4
    expected = [-0.5 + (0.01 + 0.25) * 2.5, -0.5 + (0.01 + 0.5) * 2.5]
    close(history["loss"], expected)
    # the last step's gradient (lr = 0 leaves theta at 0.5): d/dtheta of log q + beta U(theta +
    # (0, 1)) = 1 + beta (2 theta + 2 (theta + 1)); without the reparameterised path through x
    # (sample, detach) U's part is missing
    assert flow.theta.grad is not None, "the loss must reach q's parameters (rsample, not sample)"
    close(flow.theta.grad, 1 + (0.01 + 0.5) * (2 * 0.5 + 2 * 1.5))


# ---------------------------------------------------------------- iaf, maf


def _constant_outputs(made, values):
    """Make MADE output the constants ``values`` (features, params) for every input."""
    with torch.no_grad():
        made.net[-1].weight.zero_()
        made.net[-1].bias.copy_(torch.tensor(values, dtype=made.net[-1].bias.dtype).flatten())


def test_iaf_step_by_hand():
    layer = GatedAutoregressive(3, (8,)).double()
    # (m, s) per variable: sigma = sigmoid(s) = 1/2, 3/4, 1/4
    _constant_outputs(layer.made, [[0.5, 0.0], [-1.0, math.log(3)], [2.0, -math.log(3)]])
    z = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    y, ladj = layer(z)
    # z' = sigma z + (1 - sigma) m (Alg. 1)
    close(y, [[0.5 * 1 + 0.5 * 0.5, 0.75 * 2 + 0.25 * -1.0, 0.25 * 3 + 0.75 * 2.0]])
    close(ladj, [math.log(0.5 * 0.75 * 0.25)])
    back, ladj_back = layer.inverse(y)
    close(back, z)
    close(ladj_back, [-math.log(0.5 * 0.75 * 0.25)])
    # random weights: forward is the formula on one gate pass
    torch.manual_seed(3)
    layer = perturb(GatedAutoregressive(3, (8,), order=torch.tensor([2, 0, 1])).double())
    z = torch.randn(4, 3, dtype=torch.float64)
    m, s = layer.gate(z)
    y, ladj = layer(z)
    sigma = torch.sigmoid(s)
    close(y, sigma * z + (1 - sigma) * m)
    close(ladj, torch.log(sigma).sum(-1))
    close(layer.inverse(y)[0], z, 1e-8)


def test_maf_step_by_hand():
    layer = MAFLayer(3, (8,)).double()
    _constant_outputs(layer.made, [[0.5, 0.0], [-1.0, 1.0], [2.0, -1.0]])
    x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    mu, alpha = layer.conditioner(x)  # the soft bound of alpha is not part of maf.step
    a1, a2 = alpha[0, 1].item(), alpha[0, 2].item()
    u, ladj = layer(x)
    # u = (x - mu) exp(-alpha) (Eq. 4), ladj = -sum alpha (Eq. 5)
    close(u, [[1.0 - 0.5, (2.0 + 1.0) * math.exp(-a1), (3.0 - 2.0) * math.exp(-a2)]])
    close(ladj, [-(a1 + a2)])
    back, ladj_back = layer.inverse(u)
    close(back, x)
    close(ladj_back, [a1 + a2])
    torch.manual_seed(4)
    layer = perturb(MAFLayer(3, (8,), order=torch.tensor([1, 2, 0])).double())
    x = torch.randn(4, 3, dtype=torch.float64)
    mu, alpha = layer.conditioner(x)
    u, ladj = layer(x)
    close(u, (x - mu) * torch.exp(-alpha))
    close(ladj, -alpha.sum(-1))
    back, ladj_back = layer.inverse(u)
    close(back, x, 1e-8)
    close(ladj_back, alpha.sum(-1), 1e-8)


def test_maf_batch_norm_by_hand():
    eps = 1e-5
    layer = BatchNorm(2, eps=eps).double()
    with torch.no_grad():
        layer.log_gamma.copy_(torch.tensor([0.5, -1.0]))
        layer.beta.copy_(torch.tensor([1.0, 2.0]))
        layer.running_mean.copy_(torch.tensor([1.0, -1.0]))
        layer.running_var.copy_(torch.tensor([4.0, 0.25]))
    layer.eval()
    x = torch.tensor([[3.0, 0.0], [1.0, -1.0]], dtype=torch.float64)
    u, ladj = layer(x)
    # u = (x - m) (v + eps)^(-1/2) exp(gamma) + beta (Appendix B)
    k0, k1 = math.exp(0.5) / math.sqrt(4 + eps), math.exp(-1.0) / math.sqrt(0.25 + eps)
    close(u, [[2 * k0 + 1, 1 * k1 + 2], [1.0, 2.0]])
    log_det = 0.5 - 0.5 * math.log(4 + eps) - 1.0 - 0.5 * math.log(0.25 + eps)
    close(ladj, [log_det, log_det])
    back, ladj_back = layer.inverse(u)
    close(back, x)
    close(ladj_back, [-log_det, -log_det])
    # training mode: the batch's own mean (1, 2) and biased variance (1, 4)
    layer.train()
    x = torch.tensor([[0.0, 0.0], [2.0, 4.0]], dtype=torch.float64)
    u, ladj = layer(x)
    k0, k1 = math.exp(0.5) / math.sqrt(1 + eps), math.exp(-1.0) / math.sqrt(4 + eps)
    close(u, [[-k0 + 1, -2 * k1 + 2], [k0 + 1, 2 * k1 + 2]])
    log_det = 0.5 - 0.5 * math.log(1 + eps) - 1.0 - 0.5 * math.log(4 + eps)
    close(ladj, [log_det, log_det])


# ---------------------------------------------------------------- nsf

# K = 2 bins on [-1, 1]: equal widths (x knots -1, 0, 1), heights 1 : 3 before the minimum height
# is mixed in, interior derivative 2, boundary derivatives 1.
H0 = MIN_WIDTH + (1 - 2 * MIN_WIDTH) * 0.25  # the first bin's height, as a fraction of 2B
Y1 = 2 * H0 - 1
D1 = 2.0


def _unbounded(t, c):
    """The raw value whose soft bound v / (1 + |v| / c) is t (nsf.nsf.soft_bound's inverse)."""
    return t / (1 - abs(t) / c)


def _params():
    raw = math.log(math.expm1(D1 - MIN_DERIVATIVE))  # softplus(raw) + MIN_DERIVATIVE = 2
    logits = [0.0, 0.0, 0.0, math.log(3.0)]  # widths 1:1, heights 1:3 after the softmax
    raw_logits = [_unbounded(v, LOGIT_BOUND) for v in logits]
    return torch.tensor([*raw_logits, _unbounded(raw, DERIVATIVE_BOUND)], dtype=torch.float64)


def _by_hand(xi, x0, w, y0, h, d0, d1):
    """Eq. 4 and Eq. 5 of Durkan et al. 2019 at the position xi of a bin."""
    s = h / w
    den = s + (d1 + d0 - 2 * s) * xi * (1 - xi)
    g = y0 + h * (s * xi**2 + d0 * xi * (1 - xi)) / den
    dg = s**2 * (d1 * xi**2 + 2 * s * xi * (1 - xi) + d0 * (1 - xi) ** 2) / den**2
    return g, dg


def test_spline_knots_slopes_and_eq4_by_hand():
    params = _params().expand(4, 5)
    x = torch.tensor([-1.0, 0.0, 1.0, -0.5], dtype=torch.float64)
    y, log_dg = rq_spline(x, params, bound=1.0)
    g, dg = _by_hand(0.5, -1.0, 1.0, -1.0, Y1 + 1, 1.0, D1)  # x = -0.5: the middle of bin 0
    close(y, [-1.0, Y1, 1.0, g])  # g(x^k) = y^k at the knots, Eq. 4 inside
    close(log_dg.exp(), [1.0, D1, 1.0, dg])  # g'(x^k) = delta^k, Eq. 5 inside
    g, dg = _by_hand(0.25, 0.0, 1.0, Y1, 1 - Y1, D1, 1.0)  # x = 0.25: a quarter into bin 1
    y, log_dg = rq_spline(torch.tensor([0.25], dtype=torch.float64), params[:1], bound=1.0)
    close(y, [g])
    close(log_dg.exp(), [dg])
    y, log_dg = rq_spline(torch.tensor([3.0, -2.0], dtype=torch.float64), params[:2], bound=1.0)
    close(y, [3.0, -2.0])  # the tails: identity
    close(log_dg, [0.0, 0.0])


def test_spline_inverse_by_hand():
    params = _params().expand(5, 5)
    g0, dg0 = _by_hand(0.5, -1.0, 1.0, -1.0, Y1 + 1, 1.0, D1)
    g1, dg1 = _by_hand(0.25, 0.0, 1.0, Y1, 1 - Y1, D1, 1.0)
    y = torch.tensor([-1.0, Y1, 1.0, g0, g1], dtype=torch.float64)
    x, log_dx = rq_spline(y, params, bound=1.0, inverse=True)
    close(x, [-1.0, 0.0, 1.0, -0.5, 0.25], 1e-10)
    close(log_dx.exp(), [1.0, 1 / D1, 1.0, 1 / dg0, 1 / dg1], 1e-10)
    # App. A's b = h d0 - dy (d0 + d1 - 2 s) is negative high in bin 0 (issue 26: the root formula
    # of the b < 0 branch was never reached): x = -0.1 and -0.2, and x = 0.9 in bin 1 for b >= 0
    h0 = Y1 + 1
    points = [(-0.1, -1.0, 0.9, -1.0, h0, 1.0, D1), (-0.2, -1.0, 0.8, -1.0, h0, 1.0, D1)]
    points.append((0.9, 0.0, 0.9, Y1, 1 - Y1, D1, 1.0))
    ys, slopes = [], []
    for _, _, xi, y0, h, d0, d1 in points:
        g, dg = _by_hand(xi, 0.0, 1.0, y0, h, d0, d1)
        ys.append(g)
        slopes.append(dg)
    pairs = zip(ys, points, strict=True)
    b = [h * d0 - (g - y0) * (d0 + d1 - 2 * h) for g, (_, _, _, y0, h, d0, d1) in pairs]
    assert b[0] < 0 and b[1] < 0, b  # widths are 1, so s = h
    y = torch.tensor(ys, dtype=torch.float64)
    x, log_dx = rq_spline(y, params[:3], bound=1.0, inverse=True)
    close(x, [p[0] for p in points], 1e-10)
    close(log_dx.exp(), [1 / v for v in slopes], 1e-10)


# ---------------------------------------------------------------- planar_flows


def test_planar_constraint_by_hand():
    u = torch.tensor([1.0, 0.0], dtype=torch.float64)
    w = torch.tensor([1.0, 1.0], dtype=torch.float64)
    m = -1 + math.log1p(math.e)  # m(w^T u) = -1 + softplus(1) (Appendix A.1)
    expected = [1 + (m - 1) / 2, (m - 1) / 2]  # u + [m - w^T u] w / ||w||^2
    close(constrain(u, w), expected)
    close(constrain(u.expand(3, 2), w.expand(3, 2)), [expected] * 3)
    # a u with w^T u = -3, below -1: u_hat is moved along w only, to w^T u_hat = m(-3) > -1
    u, w = torch.tensor([-1.5, 0.0]).double(), torch.tensor([2.0, 0.0]).double()
    m = -1 + math.log1p(math.exp(-3))
    close(constrain(u, w), [m / 2, 0.0])
    for wu in (-10.0, -50.0, -1e4):  # far below: w^T u_hat stays >= -1
        u_hat = constrain(torch.tensor([wu / 2, 1.0]).double(), torch.tensor([2.0, 0.0]).double())
        assert 2 * u_hat[0].item() >= -1 and u_hat[1].item() == 1.0, u_hat
    for wu in (30.0, 100.0):  # large w^T u: m(x) = x - 1, u_hat = u - w / ||w||^2
        close(
            constrain(torch.tensor([wu, 0.0]).double(), torch.tensor([1.0, 0.0]).double()),
            [wu - 1, 0],
        )


def test_planar_by_hand():
    layer = Planar(2).double()
    with torch.no_grad():
        layer.w.copy_(torch.tensor([1.0, 0.5]))
        layer.u.copy_(torch.tensor([0.3, -0.6]))
        layer.b.fill_(0.2)
    u0, u1 = layer.u_hat().tolist()
    z = torch.tensor([[0.3, -0.2], [1.0, 2.0]], dtype=torch.float64)
    x, ladj = layer.inverse(z)
    rows, dets = [], []
    for z0, z1 in z.tolist():
        t = math.tanh(1.0 * z0 + 0.5 * z1 + 0.2)  # h(w^T z + b) (Eq. 10)
        rows.append([z0 + u0 * t, z1 + u1 * t])
        dets.append(math.log(abs(1 + (1 - t * t) * (1.0 * u0 + 0.5 * u1))))  # Eq. 11-12
    close(x, rows)
    close(ladj, dets)


def test_radial_by_hand():
    layer = Radial(2).double()
    with torch.no_grad():
        layer.z0.copy_(torch.tensor([0.5, -0.5]))
        layer.alpha_raw.fill_(0.3)
        layer.beta_raw.fill_(1.2)
    alpha, beta = (v.item() for v in layer.alpha_beta())
    z = torch.tensor([[1.5, 0.5], [0.5, -0.5]], dtype=torch.float64)
    x, ladj = layer.inverse(z)
    r = math.sqrt(2.0)  # ||z - z0|| of the first point; the second is z0 itself
    h = 1 / (alpha + r)
    close(x, [[1.5 + beta * h * 1.0, 0.5 + beta * h * 1.0], [0.5, -0.5]])
    expected = [
        math.log(1 + beta * h) + math.log(1 + beta * h - beta * r / (alpha + r) ** 2),  # Eq. 14
        2 * math.log(1 + beta / alpha),  # r = 0
    ]
    close(ladj, expected)


# ---------------------------------------------------------------- realnvp


def test_coupling_by_hand():
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0])
    net = nn.Linear(2, 8).double()
    s_raw, t = [0.3, 0.5, 0.7, 0.2], [9.0, 1.0, 9.0, -2.0]  # kept dimensions ignore theirs
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor(s_raw + t, dtype=torch.float64))
    layer = AffineCoupling(mask, net).double()
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    z, ladj = layer(x)
    s1, s3 = math.tanh(0.5), math.tanh(0.2)  # s = scale tanh(raw), scale 1
    close(z, [[1.0, 2.0 * math.exp(s1) + 1.0, 3.0, 4.0 * math.exp(s3) - 2.0]])  # Eq. 4-5
    close(ladj, [s1 + s3])  # Eq. 6
    back, ladj_back = layer.inverse(z)
    close(back, x)
    close(ladj_back, [-(s1 + s3)])
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 8)).double()
    layer = AffineCoupling(mask, net).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    z, ladj = layer(x)
    s, t = layer._s_t(x, None)
    close(z, x * torch.exp(s) + t)
    close(z[:, [0, 2]], x[:, [0, 2]])
    close(ladj, s.sum(1))
    # with a context (issue 26: it was never tested): the net sees (x_0, x_2, c); here only c
    # moves s and t, raw s = 0.5 c, t = c on the changed dimensions
    net = nn.Linear(3, 8).double()
    with torch.no_grad():
        net.weight.zero_()
        net.bias.zero_()
        net.weight[[1, 3], 2] = 0.5
        net.weight[[5, 7], 2] = 1.0
    layer = AffineCoupling(mask, net).double()
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    c = torch.tensor([[2.0], [-1.0]], dtype=torch.float64)
    z, ladj = layer(x, c)
    rows, dets = [], []
    for (cv,) in c.tolist():
        s = math.tanh(0.5 * cv)
        rows.append([1.0, 2.0 * math.exp(s) + cv, 3.0, 4.0 * math.exp(s) + cv])
        dets.append(2 * s)
    close(z, rows)
    close(ladj, dets)
    back, ladj_back = layer.inverse(z, c)
    close(back, x)
    close(ladj_back, [-v for v in dets])


def test_masks_by_hand():
    board = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    flipped = [[1.0 - v for v in row] for row in board]
    got = checkerboard((2, 2, 3))
    assert got.dtype == torch.float32 and got.shape == (2, 2, 3)
    assert got.tolist() == [board, board]
    assert checkerboard((1, 2, 3), parity=1).tolist() == [flipped]
    for c, parity, kept in [
        (4, 0, [1, 1, 0, 0]),
        (4, 1, [0, 0, 1, 1]),
        (3, 0, [1, 0, 0]),
        (3, 1, [0, 1, 1]),
    ]:
        got = channel_mask((c, 1, 2), parity)
        assert got.dtype == torch.float32 and got.shape == (c, 1, 2)
        assert got.tolist() == [[[float(k)] * 2] for k in kept], (c, parity, got.tolist())
