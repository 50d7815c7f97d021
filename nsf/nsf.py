"""Neural Spline Flows (Durkan, Bekasov, Murray & Papamakarios, NeurIPS 2019). arXiv:1906.04032.

An affine layer (MAF, Real NVP) can only shift and stretch each variable; NSF replaces it by a
monotone rational-quadratic spline (Gregory & Delbourgo 1982): K bins on [-B, B], in each bin a
ratio of two quadratics through the bin's corners with given slopes at the knots. It is monotone,
smooth, has an analytic derivative and an analytic inverse (the root of a quadratic), and outside
[-B, B] it is the identity, so it is a bijection of R. Its 3K - 1 parameters per variable come from
a conditioner: an MLP of the other half (coupling, NSF-C) or a MADE (autoregressive, NSF-AR).

Direction, under the repository's contract: ``forward`` maps data to noise (the density; one
conditioner pass); ``inverse`` maps noise to data (sampling; one pass for coupling, D passes for
NSF-AR). Wrap a layer in ``common.flows.Inverse`` to make sampling the one-pass direction
(variational inference).

Robust by construction: the formulas only ever see inputs clamped into [-B, B], so values and
gradients stay finite for any input, and outside (-B, B) the result is exactly the identity with
log-derivative exactly 0 (no boolean-mask indexing, no in-place edits). The parameters are soft-
bounded before the softmax and softplus, so no bin is more than ~1e3 times another and no slope
leaves (~1e-3, ~1e3): the inverse then round-trips in float32 for unit-scale raw parameters.
By design, not a defect: with saturated conditioners (every weight perturbed by N(0, 0.3), D >= 5)
the slopes of five layers multiply to ~1e-5 in places, and a round trip there is limited by
conditioning (error ~ eps / slope, ~1e-5 in float64 for NSF-C), not by the formulas; the tests
perturb at 0.2-0.3 per layer, where the composed map is well conditioned.
"""

import math

import torch
import torch.nn.functional as F

from common.checks import check_builder_args, check_integer, recorded
from common.flows import Flow, Permute, Transform
from common.layers import ActNorm
from common.nets import MADE, MLP

MIN_WIDTH = MIN_HEIGHT = MIN_DERIVATIVE = 1e-3  # the authors' defaults: no bin or slope is 0
# Soft bounds on the raw parameters (not in the paper; zuko bounds its spline the same way): width
# and height logits within +-3.45, so no bin is more than e^6.9 = 1e3 times another, and the raw
# derivatives within +-1e3, so every knot slope lies in (1e-3, ~1e3).
LOGIT_BOUND, DERIVATIVE_BOUND = 0.5 * math.log(1e3), 1e3
# The conditioners' output layers start at this times PyTorch's default, so every layer starts
# near the spline of raw parameters 0 (equal bins, slopes softplus(0) = 0.69). Not in the paper;
# nflows divides its coupling layers' bin parameters by sqrt(hidden) for the same reason (issue 17).
OUTPUT_SCALE = 0.1


def soft_bound(v, c):
    """v / (1 + |v| / c): close to v for |v| << c, never beyond +-c."""
    return c * F.softsign(v / c)


def start_small(net):
    """``net`` (an ``nn.Sequential`` ending in a linear layer) with that layer's weight and bias
    multiplied by OUTPUT_SCALE: its raw spline parameters start near 0."""
    for p in net[-1].parameters():
        p.data.mul_(OUTPUT_SCALE)
    return net


def knots(params, bound=5.0):
    """Sec. 3.1: raw parameters (..., 3K - 1) -> x-knots, y-knots, derivatives, each (..., K + 1).

    >>> xk, yk, d = knots(torch.zeros(3 * 4 - 1), bound=2.0)  # K = 4 equal bins on [-2, 2]
    >>> xk
    tensor([-2., -1.,  0.,  1.,  2.])
    >>> d  # softplus(0) + 1e-3 inside; exactly 1 at -B and B, where the identity tails join
    tensor([1.0000, 0.6941, 0.6941, 0.6941, 1.0000])
    """
    K = (params.shape[-1] + 1) // 3
    widths, heights, derivatives = params.split((K, K, K - 1), -1)
    # Sec. 3.1: positive slopes, each > 1e-3 (softplus, as in the paper)
    interior = MIN_DERIVATIVE + F.softplus(soft_bound(derivatives, DERIVATIVE_BOUND))
    return (
        _positions(widths, MIN_WIDTH, bound),
        _positions(heights, MIN_HEIGHT, bound),
        F.pad(interior, (1, 1), value=1.0),
    )


def _positions(logits, minimum, bound):
    """Bin sizes from a softmax, each at least ``minimum`` of 2B; their cumulative sums from -B."""
    e = soft_bound(logits, LOGIT_BOUND).exp()  # a softmax needs no max-shift: e^3.45 is finite
    sizes = minimum + (1 - minimum * e.shape[-1]) * e / e.sum(-1, keepdim=True)  # (..., K)
    cumulative = F.pad(sizes.cumsum(-1), (1, 0))  # (..., K + 1): 0, ..., ~1
    return bound * (2 * cumulative / cumulative[..., -1:] - 1)  # exactly -B, ..., B


def _corners(table, k):
    """``table`` (..., K + 1) at knots k and k + 1 of each point: its bin's left and right value."""
    k = k[..., None]
    return table.gather(-1, k)[..., 0], table.gather(-1, k + 1)[..., 0]


def _straight_through_clamp(v, low, high):
    """v clamped into [low, high] in value, with v's own gradient (``clamp`` would zero it)."""
    return v + (v.clamp(low, high) - v).detach()


def rational_quadratic(xi, y0, h, s, d0, d1):
    """Eq. 4 and Eq. 5 at the position xi in [0, 1] of a bin: (g, log g').

    The bin: lower y-knot y0, height h, slope s = height / width, knot derivatives d0 and d1.
    """
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
    # the same root in two forms, each free of cancellation where the other has it; choosing the
    # numerator and the denominator (not the quotient) keeps both divisions away from 0
    b_positive = b >= 0
    numerator = torch.where(b_positive, 2 * c, sqrt_discriminant - b)
    denominator = torch.where(b_positive, -b - sqrt_discriminant, 2 * a)  # a = h s - b > 0 if b < 0
    return _straight_through_clamp(numerator / denominator, 0, 1)  # rounding can leave [0, 1]
    # END SOLUTION


def rq_spline(x, params, bound=5.0, inverse=False):
    """The monotone rational-quadratic spline of Sec. 3.1, elementwise, identity outside [-B, B].

    Args:
        x: inputs (...,); with ``inverse=True`` they are spline outputs.
        params: raw parameters (..., 3K - 1): K widths, K heights, K - 1 interior derivatives.
    Returns:
        (g(x), log g'(x)) or, if ``inverse``, (g^-1(x), log |d g^-1 / dx|), both (...,).
    """
    xk, yk, d = knots(params, bound)
    xc = x.clamp(-bound, bound)  # the formulas see only [-B, B]: finite values and gradients
    k = (xc[..., None] >= (yk if inverse else xk)[..., 1:-1]).sum(-1)  # bin: interior knots <= xc
    (x0, x1), (y0, y1), (d0, d1) = _corners(xk, k), _corners(yk, k), _corners(d, k)
    h = y1 - y0
    s = h / (x1 - x0)  # the bin's slope, s^k in Sec. 3.1
    if (
        inverse
    ):  # xc is a spline output: find xi, then x = x0 + xi (x1 - x0), log-derivative -log g'
        xi = rational_quadratic_root(xc, y0, h, s, d0, d1)
        y, log_dg = x0 + xi * (x1 - x0), -rational_quadratic(xi, y0, h, s, d0, d1)[1]
    else:
        y, log_dg = rational_quadratic((xc - x0) / (x1 - x0), y0, h, s, d0, d1)
    tail = x.abs() >= bound  # outside (-B, B): exactly the identity, log-derivative exactly 0
    return torch.where(tail, x, y), torch.where(tail, 0, log_dg)


def _conditioner_input(x):
    """x with infinite entries read as 0 by the conditioner; their own tail sends log p to -inf."""
    return torch.where(x.isinf(), 0, x)


class SplineCoupling(Transform):
    """NSF-C (Sec. 3.2 with Sec. 2.1's coupling): z_{<d} = x_{<d}; z_i = g_theta(x_i) for i >= d,
    with theta = MLP(x_{<d}, context) and d = features // 2.

    ``forward(x, context) -> (z, sum log g')`` maps data to noise; ``inverse`` maps noise to data,
    both in one MLP pass. Shapes: x, z (batch, D); context (batch, C); ladj (batch,).
    """

    def __init__(self, features, bins=8, bound=5.0, hidden_features=(64, 64), context=0):
        super().__init__()
        self.split, self.bins, self.bound = features // 2, bins, bound
        outputs = (features - self.split) * (3 * bins - 1)  # 3K - 1 per transformed feature
        self.net = start_small(MLP(self.split + context, outputs, hidden_features))

    def _spline(self, x, context, inverse):
        kept, rest = x[:, : self.split], x[:, self.split :]  # (batch, d), (batch, D - d)
        h = _conditioner_input(kept)
        params = self.net(h if context is None else torch.cat([h, context], 1))
        params = params.unflatten(1, (rest.shape[1], 3 * self.bins - 1))  # (batch, D - d, 3K - 1)
        y, log_dg = rq_spline(rest, params, self.bound, inverse)
        return torch.cat([kept, y], 1), log_dg.sum(-1)  # triangular Jacobian: sum of log g'

    def forward(self, x, context=None):
        return self._spline(x, context, inverse=False)

    def inverse(self, z, context=None):
        return self._spline(z, context, inverse=True)


class SplineAutoregressive(Transform):
    """NSF-AR (Sec. 3.2 with Sec. 2.2's autoregressive layer): z_i = g_theta_i(x_i), theta_i =
    MADE(x_{<i}, context).

    ``forward`` (data -> noise) costs one MADE pass; ``inverse`` (noise -> data) costs D passes, one
    per variable of the order, as in MAF. Shapes: x, z (batch, D); context (batch, C); ladj
    (batch,).
    """

    def __init__(
        self, features, bins=8, bound=5.0, hidden_features=(64, 64), context=0, order=None
    ):
        super().__init__()
        self.features, self.bound = features, bound
        self.made = MADE(features, 3 * bins - 1, hidden_features, context, order)
        start_small(self.made.net)

    def forward(self, x, context=None):
        params = self.made(_conditioner_input(x), context)  # (batch, D, 3K - 1)
        z, log_dg = rq_spline(x, params, self.bound)
        return z, log_dg.sum(-1)

    def inverse(self, z, context=None):
        x = torch.zeros_like(z)
        for _ in range(self.features):  # pass k fixes the k-th variable of the order
            params = self.made(_conditioner_input(x), context)
            x, log_dg = rq_spline(z, params, self.bound, inverse=True)
        return x, log_dg.sum(-1)  # the last pass saw the exact x_{<i} of every i


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
    """A neural spline flow on R^features: ``transforms`` rational-quadratic layers on N(0, I).

    ``coupling=False`` (default): NSF-AR, MADE conditioners, the order reversed between layers.
    ``coupling=True``: NSF-C, MLP conditioners, the features reversed (``Permute``) between layers.
    ``bound=5.0`` (B): zuko's default and the peer benchmark's; the paper uses B = 3 on standardised
    data. Data outside [-B, B] only see the identity tails, so B should cover the data. ``bins=8``
    (K) as in the paper. ``context`` > 0 gives p(x | context). Returns a ``common.flows.Flow``.
    ``actnorm=True`` puts ``common.layers.ActNorm`` first (data side): a per-feature affine map set
    from the first training batch's mean and standard deviation, then trained. The paper
    standardises its data before fitting; this does it inside the model, for data that are not
    standardised beyond [-B, B], which the splines would otherwise see only through the identity
    tails (10-D data reaching +-20, B = 5, 2000 steps, 3 seeds: gap to the entropy 910.1 +- 1.7
    nats without, 0.167 +- 0.030 with; ``python -m benchmarks.fit --only bound``).
    The start (not in the paper): each conditioner's output layer is PyTorch's default times
    OUTPUT_SCALE = 0.1, so every layer starts near the paper's spline of raw parameters 0: equal
    bins, slopes softplus(0) + 1e-3 = 0.69. At equal architecture, NSF-AR 5 x 8 bins, 1500 steps
    (``python -m benchmarks.fit --only nsf``), checkerboard / rings / gauss8 gaps 0.150 / 0.094 /
    0.041 nats against 0.157 / 0.104 / 0.045 with PyTorch's start, within a spread of the best
    peer on all three; a start at the identity (slopes 1, zuko's) is better for reverse KL (U3 0.060
    against 0.086). Every start's numbers: benchmarks/README.md.
    """
    check_builder_args(
        features, transforms, hidden_features, context, coupling=coupling, actnorm=actnorm
    )
    check_integer("bins", bins, 2)  # K = 1 with boundary derivatives 1 is the identity
    if bins * MIN_WIDTH >= 1:
        raise ValueError(
            f"bins must be < {round(1 / MIN_WIDTH)} (each bin >= {MIN_WIDTH} of 2B), got {bins}"
        )
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not 0 < bound < math.inf:
        raise ValueError(f"bound must be a finite positive number, got {bound!r}")
    layers = [ActNorm(features)] if actnorm else []  # the data's scale, from the first batch
    for t in range(transforms):
        if coupling:
            layers += [Permute.reverse(features)] if t else []  # swap which half is kept
            layers.append(SplineCoupling(features, bins, float(bound), hidden_features, context))
        else:
            order = torch.arange(features)  # reversed in every other layer
            order = order if t % 2 == 0 else order.flip(0)
            layers.append(
                SplineAutoregressive(features, bins, float(bound), hidden_features, context, order)
            )
    return Flow(layers, features=features, context=context)
