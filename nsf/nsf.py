"""Neural Spline Flows (Durkan, Bekasov, Murray & Papamakarios, NeurIPS 2019). arXiv:1906.04032.

Where MAF and Real NVP shift and scale, NSF applies a monotone rational-quadratic spline: K bins
on [-B, B], the identity outside, with an analytic derivative and inverse. Its 3K - 1 parameters
per variable come from an MLP of the other half (coupling, NSF-C) or a MADE (NSF-AR). ``forward``
maps data to noise in one pass; ``inverse`` maps noise to data in one pass (NSF-C) or D (NSF-AR).
"""

import math

import torch
import torch.nn.functional as F

from common.checks import check_builder_args, check_integer, check_number, recorded
from common.flows import Flow, Permute, Transform
from common.layers import ActNorm, autoregressive_inverse, soft_bound
from common.nets import MADE, MLP

MIN_WIDTH = MIN_DERIVATIVE = 1e-3  # the authors' minimum bin width (and height) and slope


def knots(params, bound=5.0):
    """Sec. 3.1: raw parameters (..., 3K - 1) -> x-knots, y-knots, derivatives, each (..., K + 1):
    bins by a softmax, slopes by a softplus, all >= 1e-3; slope 1 at -B and B, where the tails join.

    >>> xk, yk, d = knots(torch.zeros(3 * 4 - 1), bound=2.0)  # K = 4 equal bins on [-2, 2]
    >>> xk, d
    (tensor([-2., -1.,  0.,  1.,  2.]), tensor([1.0000, 0.6941, 0.6941, 0.6941, 1.0000]))
    """
    K = (params.shape[-1] + 1) // 3
    e = soft_bound(params[..., : 2 * K], LOGIT_BOUND).unflatten(-1, (2, K)).exp()  # finite: bounded
    sizes = MIN_WIDTH + (1 - MIN_WIDTH * K) * e / e.sum(-1, keepdim=True)  # (..., 2, K): w, h
    cumulative = F.pad(sizes.cumsum(-1), (1, 0))  # (..., 2, K + 1): 0, ..., ~1
    xk, yk = (bound * (2 * cumulative / cumulative[..., -1:] - 1)).unbind(-2)  # exactly -B, ..., B
    interior = MIN_DERIVATIVE + F.softplus(soft_bound(params[..., 2 * K :], DERIVATIVE_BOUND))
    return xk, yk, F.pad(interior, (1, 1), value=1.0)


def rational_quadratic(xi, y0, h, s, d0, d1):
    """Eq. 4 and Eq. 5 at the position xi in [0, 1] of a bin: (g, log g'). The bin: lower y-knot
    y0, height h, slope s = height / width, knot derivatives d0 and d1."""
    # BEGIN SOLUTION nsf.spline
    # Eq. 4: g = y0 + h [s xi^2 + d0 xi (1 - xi)] / [s + (d0 + d1 - 2 s) xi (1 - xi)]; Eq. 5:
    # g' = s^2 [d1 xi^2 + 2 s xi (1 - xi) + d0 (1 - xi)^2] / (same denominator)^2. The tests
    # compare log g' with autograd's derivative to 1e-9 in float64: return the log of Eq. 5.
    t = xi * (1 - xi)
    denominator = s + (d0 + d1 - 2 * s) * t
    g = y0 + h * (s * xi * xi + d0 * t) / denominator  # Eq. 4
    numerator = d1 * xi * xi + 2 * s * t + d0 * (1 - xi) ** 2
    return g, torch.log(numerator) + 2 * torch.log(s / denominator)  # Eq. 5, as a log
    # END SOLUTION


def rational_quadratic_root(y, y0, h, s, d0, d1):
    """App. A: the xi in [0, 1] with g(xi) = y, for y in the bin of ``rational_quadratic``."""
    # BEGIN SOLUTION nsf.spline_inverse
    # g(xi) = y is a xi^2 + b xi + c = 0 with, for dy = y - y0 and slack = d0 + d1 - 2 s,
    # a = h (s - d0) + dy slack, b = h d0 - dy slack, c = -s dy (App. A). The tests round-trip to
    # 1e-10 in float64, so avoid cancellation: the root is 2c / (-b - sqrt(b^2 - 4ac)) for b >= 0
    # and (-b + sqrt(b^2 - 4ac)) / 2a for b < 0. Clamp the discriminant at 0, and the root into
    # [0, 1] with _straight_through_clamp (its gradient is checked at the knots).
    dy, slack = y - y0, d0 + d1 - 2 * s
    a = h * (s - d0) + dy * slack
    b = h * d0 - dy * slack
    c = -s * dy
    sqrt_discriminant = (b * b - 4 * a * c).clamp(min=0).sqrt()  # >= 0 up to rounding
    # one root in two forms, each free of cancellation (and of a 0 / 0) where the other has it
    b_positive = b >= 0
    numerator = torch.where(b_positive, 2 * c, sqrt_discriminant - b)
    denominator = torch.where(b_positive, -b - sqrt_discriminant, 2 * a)  # a = h s - b > 0 if b < 0
    return _straight_through_clamp(numerator / denominator, 0, 1)  # rounding can leave [0, 1]
    # END SOLUTION


def rq_spline(x, params, bound=5.0, inverse=False):
    """The spline of Sec. 3.1, elementwise: x (...,), params (..., 3K - 1) -> (g(x), log g'(x)),
    both (...,); with ``inverse``, x holds outputs and it returns (g^-1(x), -log g'(g^-1(x))).

    >>> x, params = torch.tensor([-9.0, 0.25, 9.0]), torch.zeros(3, 11)  # K = 4 bins on [-2, 2]
    >>> rq_spline(x, params, bound=2.0)  # the tails are exactly the identity
    (tensor([-9.0000,  0.2176,  9.0000]), tensor([0.0000, 0.0315, 0.0000]))
    >>> rq_spline(rq_spline(x, params, 2.0)[0], params, 2.0, inverse=True)[0]  # the round trip
    tensor([-9.0000,  0.2500,  9.0000])
    """
    xk, yk, d = knots(params, bound)
    xc = x.clamp(-bound, bound)  # the formulas see only [-B, B]: finite values and gradients
    k = (xc[..., None] >= (yk if inverse else xk)[..., 1:-1]).sum(-1)  # bin: interior knots <= xc
    i = torch.stack((k, k + 1), -1)  # (..., 2): the bin's two knots
    (x0, x1), (y0, y1), (d0, d1) = (t.gather(-1, i).unbind(-1) for t in (xk, yk, d))
    w, h = x1 - x0, y1 - y0
    s = h / w  # the bin's slope, s^k in Sec. 3.1
    xi = rational_quadratic_root(xc, y0, h, s, d0, d1) if inverse else (xc - x0) / w  # App. A
    g, log_dg = rational_quadratic(xi, y0, h, s, d0, d1)
    y, log_dg = (x0 + xi * w, -log_dg) if inverse else (g, log_dg)
    tail = x.abs() >= bound  # outside (-B, B): exactly the identity, log-derivative exactly 0
    return torch.where(tail, x, y), torch.where(tail, 0, log_dg)


class SplineCoupling(Transform):
    """NSF-C (Sec. 3.2, coupling): z_{<d} = x_{<d}; z_i = g_theta(x_i) for i >= d, theta =
    MLP(x_{<d}, context), d = D // 2. x, z (batch, D); context (batch, C); ladj (batch,)."""

    def __init__(self, features, bins=8, bound=5.0, hidden_features=(64, 64), context=0):
        super().__init__()
        self.split, self.bins, self.bound = features // 2, bins, bound
        outputs = (features - self.split) * (3 * bins - 1)  # 3K - 1 per transformed feature
        self.net = start_small(MLP(self.split + context, outputs, hidden_features))

    def _spline(self, x, context, inverse):
        kept, rest = x[:, : self.split], x[:, self.split :]  # (batch, d), (batch, D - d)
        h = _conditioner_input(kept)
        params = self.net(h if context is None else torch.cat([h, context], 1))
        params = params.unflatten(1, (-1, 3 * self.bins - 1))  # (batch, D - d, 3K - 1)
        y, log_dg = rq_spline(rest, params, self.bound, inverse)
        return torch.cat([kept, y], 1), log_dg.sum(-1)  # triangular Jacobian: sum of log g'

    def forward(self, x, context=None):
        return self._spline(x, context, inverse=False)

    def inverse(self, z, context=None):
        return self._spline(z, context, inverse=True)


class SplineAutoregressive(Transform):
    """NSF-AR (Sec. 3.2, autoregressive): z_i = g_theta_i(x_i), theta_i = MADE(x_{<i}, context).
    ``forward`` is one MADE pass, ``inverse`` D passes. x, z (batch, D); ladj (batch,)."""

    def __init__(
        self, features, bins=8, bound=5.0, hidden_features=(64, 64), context=0, order=None
    ):
        super().__init__()
        self.features, self.bound = features, bound
        self.made = MADE(features, 3 * bins - 1, hidden_features, context, order)
        start_small(self.made.net)

    def _spline(self, y, x, context, inverse):  # the spline of y, its parameters from MADE(x)
        y, log_dg = rq_spline(y, self.made(_conditioner_input(x), context), self.bound, inverse)
        return y, log_dg.sum(-1)

    def forward(self, x, context=None):
        return self._spline(x, x, context, inverse=False)

    def inverse(self, z, context=None):
        return autoregressive_inverse(lambda x: self._spline(z, x, context, True), z, self.features)


@recorded  # the model remembers this builder and its arguments (checkpoints)
def NSF(
    features,
    transforms=5,
    hidden_features=(64, 64),
    bins=8,
    bound=5.0,
    coupling=False,
    context=0,
    actnorm=False,
):
    """A ``common.flows.Flow`` of ``transforms`` spline layers: NSF-AR, the order reversed between
    layers, or (``coupling=True``) NSF-C, the halves swapped. Data outside [-bound, bound] see only
    the identity tails: the paper standardises them first, ``actnorm=True`` does it in the model.

    >>> NSF(2, transforms=2, hidden_features=(8,)).log_prob(torch.zeros(3, 2)).shape
    torch.Size([3])
    """
    check_builder_args(
        features, transforms, hidden_features, context, coupling=coupling, actnorm=actnorm
    )
    check_integer("bins", bins, 2)  # K = 1 with boundary derivatives 1 is the identity
    check_number("bins", bins, low=2, high=round(1 / MIN_WIDTH), high_open=True)  # K w_min < 1
    check_number("bound", bound, low=0, low_open=True)
    layers = [ActNorm(features)] if actnorm else []  # the data's scale, from the first batch
    for t in range(transforms):
        if coupling:
            layers += [Permute.reverse(features)] if t else []  # swap which half is kept
            layers.append(SplineCoupling(features, bins, float(bound), hidden_features, context))
        else:
            order = torch.arange(features).flip(0) if t % 2 else None  # reversed every other layer
            layers.append(
                SplineAutoregressive(features, bins, float(bound), hidden_features, context, order)
            )
    return Flow(layers, features=features, context=context)


# ---- not in the paper (nsf/README.md says why): soft bounds, the start, the clamp, infinite inputs
LOGIT_BOUND, DERIVATIVE_BOUND = 0.5 * math.log(1e3), 1e3  # bins within 1e3 x, slopes in (1e-3, 1e3)
OUTPUT_SCALE = 0.1  # output layers start at 0.1 x PyTorch's: near the spline of raw parameters 0


def start_small(net):  # net's last (linear) layer times OUTPUT_SCALE: raw parameters start near 0
    for p in net[-1].parameters():
        p.data.mul_(OUTPUT_SCALE)
    return net


def _straight_through_clamp(v, low, high):  # clamp's value, v's own gradient (clamp's would be 0)
    return v + (v.clamp(low, high) - v).detach()


def _conditioner_input(x):  # conditioners read an infinite entry as 0; its tail sends log p to -inf
    return torch.where(x.isinf(), 0, x)
