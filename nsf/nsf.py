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

Robust by construction: inputs are clamped into [-B, B] *before* the spline formula and the
overshoot x - clamp(x) is added back, so the tails are exactly the identity (the boundary
derivatives are 1, so the log-derivative there is exactly 0); no formula ever sees a point outside
[0, 1] of its bin, so values and gradients stay finite for any input, with no in-place edits and no
boolean-mask indexing.
"""

import torch
import torch.nn.functional as F

from common.flows import Flow, Permute, Transform, check_builder_args, check_integer
from common.nets import MADE, MLP
from common.train import recorded

MIN_WIDTH = MIN_HEIGHT = MIN_DERIVATIVE = (
    1e-3  # the authors' defaults: no bin or slope collapses to 0
)


def rq_spline(x, params, bound=5.0, inverse=False):
    """The monotone rational-quadratic spline of Sec. 3.1, elementwise, identity outside [-bound,
    bound].

    Args:
        x: inputs, any shape (...,). With ``inverse=True`` they are spline outputs.
        params: unconstrained parameters (..., 3K - 1): K widths, K heights, K - 1 interior derivatives.
    Returns:
        (g(x), log g'(x)) or, if ``inverse``, (g^-1(x), log |d g^-1 / dx|), both of shape (...,).
    """
    K = (params.shape[-1] + 1) // 3
    # Sec. 3.1: softmax widths and heights, each at least MIN, summing to 2B; softplus derivatives
    e = params[..., : 2 * K].unflatten(-1, (2, K))  # (..., 2, K) unnormalised widths and heights
    e = (
        e - e.detach().amax(-1, keepdim=True)
    ).exp()  # softmax, written out: 2x faster than torch's for K = 8
    wh = MIN_WIDTH + (1 - MIN_WIDTH * K) * e / e.sum(-1, keepdim=True)  # (..., 2, K)
    cum = wh.cumsum(-1)
    knots = (
        2 * bound * F.pad(cum / cum[..., -1:], (1, 0)) - bound
    )  # (..., 2, K+1): x^k, y^k; exactly -B ... B
    d = F.pad(
        MIN_DERIVATIVE + F.softplus(params[..., 2 * K :]), (1, 1), value=1.0
    )  # boundary derivatives 1
    # Clamp BEFORE the formula: tails reach it as the point +-B, where g = +-B and g' = 1 (boundary
    # derivatives).
    xc = x.clamp(-bound, bound)
    k = (xc[..., None] >= knots[..., int(inverse), 1:K]).sum(
        -1, keepdim=True
    )  # bin of each point, 0..K-1
    table = torch.cat([knots, d.unsqueeze(-2)], -2)  # (..., 3, K+1): x^k, y^k, delta^k
    corners = table.gather(-1, torch.cat([k, k + 1], -1).unsqueeze(-2).expand(*k.shape[:-1], 3, 2))
    (x0, x1), (y0, y1), (d0, d1) = (
        c.unbind(-1) for c in corners.unbind(-2)
    )  # bin k's corners and slopes
    w, h = x1 - x0, y1 - y0
    s = h / w  # s^k = (y^{k+1} - y^k) / (x^{k+1} - x^k)
    if (
        inverse
    ):  # App. A: g(xi) = y is a quadratic a xi^2 + b xi + c = 0 in xi; take its root in [0, 1]
        # BEGIN SOLUTION nsf.spline_inverse
        # set xi, the position in bin k in [0, 1], from a xi^2 + b xi + c = 0 (App. A) with y
        # = xc; xi = 2c / (-b - sqrt(b^2 - 4ac)) cancels badly when b < 0: use (-b + sqrt(.))
        # / 2a there.
        dy, slack = xc - y0, d0 + d1 - 2 * s
        a = h * (s - d0) + dy * slack
        b = h * d0 - dy * slack
        c = -s * dy
        root = (
            (b * b - 4 * a * c).clamp(min=torch.finfo(x.dtype).tiny).sqrt()
        )  # discriminant >= 0 up to rounding
        # App. A: xi = 2c / (-b - sqrt(b^2 - 4ac)); for b < 0 that denominator cancels
        # catastrophically, so use the same root written (-b + sqrt(.)) / 2a there (then a > h s >
        # 0). Neither denominator can be 0.
        xi = torch.where(b < 0, root - b, 2 * c) / torch.where(b < 0, 2 * a, -b - root)
        xi = (
            xi + (xi.clamp(0, 1) - xi).detach()
        )  # clip rounding overshoot, keep the root's gradient (at knots)
        # END SOLUTION
    else:
        # BEGIN SOLUTION nsf.spline
        # xi = (x - x^k) / (x^{k+1} - x^k), the position of xc in its bin (Sec. 3.1).
        xi = (xc - x0) / w  # Sec. 3.1: xi = (x - x^k) / (x^{k+1} - x^k) in [0, 1]
        # END SOLUTION
    # BEGIN SOLUTION nsf.spline
    # g = y^k + h [s xi^2 + d^k xi (1 - xi)] / [s + (d^{k+1} + d^k - 2 s) xi (1 - xi)] (Eq.
    # 4), log g' from Eq. 5; add the overshoot x - xc back (identity tails). Inverse: return
    # x^k + xi w and -log g'.
    t = xi * (1 - xi)
    den = s + (d0 + d1 - 2 * s) * t
    # Sec. 3.1, Eq. 5: g'(x) = s^2 [d1 xi^2 + 2 s xi (1 - xi) + d0 (1 - xi)^2] / den^2
    log_dg = torch.log(d1 * xi * xi + 2 * s * t + d0 * (1 - xi) ** 2) + 2 * torch.log(s / den)
    if inverse:
        return x0 + xi * w + (x - xc), -log_dg  # the tails: identity
    return y0 + h * (s * xi * xi + d0 * t) / den + (
        x - xc
    ), log_dg  # Sec. 3.1, Eq. 4 (+ identity tails)
    # END SOLUTION


class SplineCoupling(Transform):
    """NSF-C (Sec. 3.2 with Sec. 2.1's coupling): z_{<d} = x_{<d}; z_i = g_theta(x_i) for i >= d,
    with theta = MLP(x_{<d}, context) and d = features // 2.

    ``forward(x, context) -> (z, sum log g')`` maps data to noise; ``inverse`` maps noise to data,
    both in one MLP pass. Shapes: x, z (batch, D); context (batch, C); ladj (batch,).
    """

    def __init__(self, features, bins=8, bound=5.0, hidden_features=(64, 64), context=0):
        super().__init__()
        self.split, self.bins, self.bound = features // 2, bins, bound
        self.net = MLP(
            self.split + context, (features - self.split) * (3 * bins - 1), hidden_features
        )

    def _spline(self, x, context, inverse):
        kept, rest = x[:, : self.split], x[:, self.split :]
        params = self.net(kept if context is None else torch.cat([kept, context], 1))
        y, log_dg = rq_spline(rest, params.view(*rest.shape, -1), self.bound, inverse)
        return torch.cat([kept, y], 1), log_dg.sum(
            -1
        )  # Jacobian triangular: log det = sum of log g'

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

    def forward(self, x, context=None):
        z, log_dg = rq_spline(x, self.made(x, context), self.bound)
        return z, log_dg.sum(-1)

    def inverse(self, z, context=None):
        x = torch.zeros_like(z)
        for _ in range(self.features):  # pass k fixes the k-th variable of the order
            x, log_dg = rq_spline(z, self.made(x, context), self.bound, inverse=True)
        return x, log_dg.sum(-1)  # the last pass saw the exact x_{<i} of every i


@recorded  # the model remembers this builder and its arguments (checkpoints)
def NSF(
    features, transforms=5, hidden_features=(64, 64), bins=8, bound=5.0, coupling=False, context=0
):
    """A neural spline flow on R^features: ``transforms`` rational-quadratic layers on a N(0, I)
    base.

    ``coupling=False`` (default): NSF-AR, MADE conditioners, the order reversed between layers.
    ``coupling=True``: NSF-C, MLP conditioners, the features reversed (``Permute``) between layers.
    ``bound=5.0`` (B): zuko's default and the peer benchmark's; the paper uses B = 3 on standardised
    data. Data outside [-B, B] only see the identity tails, so B should cover the data. ``bins=8``
    (K) as in the paper. ``context`` > 0 gives p(x | context). Returns a ``common.flows.Flow``.
    """
    check_builder_args(features, transforms, hidden_features, context, coupling=coupling)
    check_integer("bins", bins, 2)  # K = 1 with boundary derivatives 1 is the identity
    if bins * MIN_WIDTH >= 1:
        raise ValueError(
            f"bins must be < {round(1 / MIN_WIDTH)} (minimum width {MIN_WIDTH}), got {bins}"
        )
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not bound > 0:
        raise ValueError(f"bound must be a positive number, got {bound!r}")
    layers = []
    for t in range(transforms):
        if coupling:
            layers += (
                [Permute.reverse(features)] if t else []
            )  # alternate which half conditions the other
            layers.append(SplineCoupling(features, bins, float(bound), hidden_features, context))
        else:
            order = (
                torch.arange(features) if t % 2 == 0 else torch.arange(features).flip(0)
            )  # reverse the order
            layers.append(
                SplineAutoregressive(features, bins, float(bound), hidden_features, context, order)
            )
    return Flow(layers, features=features, context=context)
