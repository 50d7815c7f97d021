"""Planar and radial flows: Rezende & Mohamed, *Variational Inference with Normalizing Flows*, ICML
2015.

Direction: the paper's map ``f`` turns a base sample into a sample of the flow, so under this
repository's contract it is each layer's ``inverse`` (noise -> data, closed form). That is all
reverse-KL training needs: ``Flow.rsample_and_log_prob`` only calls ``inverse``. ``forward`` (data
-> noise) evaluates ``f^{-1}``, which the paper never needs and which has no closed form for planar
layers; it is solved here so that ``Flow.log_prob`` works on any point:

* planar: ``w^T f(z) = a + (w^T u_hat) tanh(a + b)`` with ``a = w^T z`` is increasing in ``a``, so a
  1-D root find (safeguarded Newton, vectorised over the batch) recovers ``a``, then ``z = x - u_hat
  tanh(a + b)``;
* radial: ``||f(z) - z0|| = r + beta r / (alpha + r)`` with ``r = ||z - z0||`` is increasing in
  ``r`` and is a quadratic equation in ``r``, solved in closed form.

References:
    Rezende & Mohamed (2015), https://arxiv.org/abs/1505.05770 (Sec. 4.1, Appendix A).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from common.checks import check_choice, check_integer, recorded
from common.flows import Flow, Transform
from common.roots import solve_increasing

# The constraints keep this margin above their bound (w^T u_hat >= -1 + MARGIN, and likewise for
# radial layers), so that rounding in float32 (eps 1.2e-7) never makes a layer singular.
MARGIN = 1e-4


def constrain(u, w):
    """The constrained u with ``w^T u_hat = m(w^T u) > -1``, which makes ``f`` invertible (Appendix
    A.1). ``u``, ``w``: (D,) for one layer, or (batch, D) for per-point (amortised) parameters."""
    # BEGIN SOLUTION planar_flows.constraint
    # u_hat = u + [m(w^T u) - w^T u] w / ||w||^2 with m(x) = -1 + softplus(x) (Appendix A.1),
    # softplus kept >= MARGIN; sum over dim -1.
    wu = (w * u).sum(-1, keepdim=True)
    m = -1 + F.softplus(wu).clamp_min(MARGIN)  # m(x) = -1 + log(1 + e^x) (A.1), >= -1 + MARGIN
    return u + (m - wu) * w / (w * w).sum(-1, keepdim=True)  # u_hat (A.1)
    # END SOLUTION


class Planar(Transform):
    """One planar layer (Sec. 4.1): ``inverse(z) = f(z) = z + u_hat tanh(w^T z + b)`` (noise ->
    data, Eq. 10); ``forward(x) = f^{-1}(x)`` (data -> noise) by a 1-D root find. Inputs (batch, D);
    ladj (batch,).

    ``context=0``: u, w, b are parameters shared by every point. ``context=C > 0``: the amortised
    layer of Sec. 4, whose u, w, b are computed for each data point from the encoder's output h
    (batch, C) by a linear head, the last layer of the inference network.

    Start (the paper gives none). Shared layers: ``u ~ U(-sqrt 2, sqrt 2)``, ``w ~ U(-sqrt(2 / D),
    sqrt(2 / D))``, ``b = 0``, so every layer folds the plane from the first step. From a start near
    the identity (``u = 0.1 N(0, 1/D)``, ``w ~ N(0, 1/D)``) reverse KL with K = 32 (2000 steps, 3
    seeds) ended at KL 0.514 +- 0.083 on U4 and 0.826 +- 0.413 on the sine energy; from this one at
    0.387 +- 0.072 and 0.518 +- 0.126 (5 seeds), ahead of normflows' planar flow on U1-U4 and sine
    (``python -m benchmarks.fit --only planar``). Amortised
    layers keep their near-identity start, shifted by h (not re-measured: the VAE was not part of
    that comparison).
    """

    def __init__(self, features, context=0):
        super().__init__()
        self.features = features
        self.head = nn.Linear(context, 2 * features + 1) if context else None
        if context:  # amortised: near the identity (w of norm ~1, small u, b = 0), shifted by h
            with torch.no_grad():
                self.head.bias.zero_()[:features] = torch.randn(features) / math.sqrt(features)
                self.head.weight[features:].mul_(0.1)
        else:  # shared: a clear fold from step 0 (the paper gives no start; see the docstring)
            self.w = nn.Parameter(torch.empty(features).uniform_(-1, 1) * math.sqrt(2 / features))
            self.u = nn.Parameter(torch.empty(features).uniform_(-1, 1) * math.sqrt(2))
            self.b = nn.Parameter(torch.zeros(()))

    def u_hat(self):
        return constrain(self.u, self.w)

    def flow_parameters(self, context):
        """(u_hat, w, b): (D,), (D,), () shared, or (batch, D), (batch, D), (batch,) from h."""
        if self.head is None:
            return self.u_hat(), self.w, self.b
        w, u, b = self.head(context).split([self.features, self.features, 1], dim=-1)
        return constrain(u, w), w, b[:, 0]

    def inverse(self, z, context=None):
        u, w, b = self.flow_parameters(context)
        # BEGIN SOLUTION planar_flows.planar
        # f(z) = z + u h(w^T z + b), h = tanh (Eq. 10); log|det| = log|1 + u^T psi(z)|, psi =
        # h' w (Eq. 11-12).
        t = torch.tanh((z * w).sum(-1) + b)  # h(w^T z + b), h = tanh; (batch,)
        x = z + t[:, None] * u  # f(z) = z + u h(w^T z + b)  (Eq. 10)
        # log|det df/dz| = log|1 + u^T psi(z)| with psi(z) = h'(w^T z + b) w  (Eq. 11-12)
        ladj = torch.log((1 + (1 - t**2) * (w * u).sum(-1)).abs())
        return x, ladj
        # END SOLUTION

    def forward(self, x, context=None):
        u, w, b = self.flow_parameters(context)
        # w^T x = a + c tanh(a + b) with a = w^T z and c = w^T u_hat > -1: solve it for a
        wx, c = (x * w).sum(-1), (w * u).sum(-1)

        def g(a):  # the increasing 1-D map a -> w^T f(z) and its slope
            t = torch.tanh(a + b)
            return a + c * t, 1 + c * (1 - t**2)

        # |tanh| < 1 brackets a in [wx - |c|, wx + |c|]; the start is exact where tanh saturates
        with torch.no_grad():
            start = wx - c * torch.tanh(wx + b)
            a = solve_increasing(g, wx, wx - c.abs(), wx + c.abs(), start)
            # one polishing Newton step removes the solver's residual (its tolerance / slope: 4e-10
            # in float64 at the margin); kept only where it lowers the residual, since next to a
            # fold (slope ~ 1e-12) it would overshoot
            value, slope = g(a)
            polished = a - (value - wx) / slope
            better = (g(polished)[0] - wx).abs() < (value - wx).abs()
            a = torch.where(better, polished, a)
        value, slope = g(a)
        # Newton's correction with its value taken out: a keeps its value, and autograd sees the
        # implicit-function gradient da = -d(g(a) - w^T x) / g'(a)
        correction = value - wx
        a = a - (correction - correction.detach()) / slope
        t = torch.tanh(a + b)
        z = x - t[:, None] * u  # invert Eq. 10 once w^T z is known
        _, slope = g(a)  # det df/dz is the slope of the 1-D map at a (matrix determinant lemma)
        return z, -torch.log(slope.abs())


class Radial(Transform):
    """One radial layer (Sec. 4.1): ``inverse(z) = f(z) = z + beta h(alpha, r)(z - z0)``, ``h = 1 /
    (alpha + r)``, ``r = ||z - z0||`` (noise -> data, Eq. 14); ``forward(x) = f^{-1}(x)`` (data ->
    noise) in closed form. Inputs (batch, D); ladj (batch,).
    """

    def __init__(self, features):
        super().__init__()
        self.z0 = nn.Parameter(torch.randn(features))
        self.alpha_raw = nn.Parameter(torch.zeros(()))
        self.beta_raw = nn.Parameter(torch.zeros(()))

    def alpha_beta(self):
        alpha = F.softplus(self.alpha_raw)  # alpha > 0
        # beta >= -alpha keeps f invertible (Appendix A.2); the margin keeps 1 + beta / alpha > 0
        return alpha, -alpha + F.softplus(self.beta_raw).clamp_min(MARGIN * alpha)

    def _ladj(self, r, alpha, beta):
        # BEGIN SOLUTION planar_flows.radial
        # log|det df/dz| = (d - 1) log(1 + beta h) + log(1 + beta h + beta h' r), h = 1 /
        # (alpha + r) (Eq. 14).
        h = 1 / (alpha + r)
        h_prime = -(h**2)  # h'(alpha, r) = -1 / (alpha + r)^2
        # log|det df/dz| = (d - 1) log(1 + beta h) + log(1 + beta h + beta h' r)  (Eq. 14)
        d = self.z0.shape[0]
        return (d - 1) * torch.log1p(beta * h) + torch.log1p(beta * h + beta * h_prime * r)
        # END SOLUTION

    def inverse(self, z, context=None):
        alpha, beta = self.alpha_beta()
        # BEGIN SOLUTION planar_flows.radial
        # f(z) = z + beta h(alpha, r) (z - z0) with r = ||z - z0|| (Eq. 14); the log-det is
        # self._ladj.
        r = (z - self.z0).norm(dim=-1)
        x = z + (beta / (alpha + r))[:, None] * (z - self.z0)  # f(z) = z + beta h (z - z0) (Eq. 14)
        return x, self._ladj(r, alpha, beta)
        # END SOLUTION

    def forward(self, x, context=None):
        alpha, beta = self.alpha_beta()
        # rho = r + beta r / (alpha + r), i.e. r^2 + p r - alpha rho = 0
        rho = (x - self.z0).norm(dim=-1)
        p = alpha + beta - rho
        q = torch.sqrt(p**2 + 4 * alpha * rho)
        r = torch.where(p > 0, 2 * alpha * rho / (p + q), (q - p) / 2)  # the positive root, stably
        z = self.z0 + (x - self.z0) / (1 + beta / (alpha + r))[:, None]  # x - z0 = (1 + beta h)(..)
        return z, -self._ladj(r, alpha, beta)


LAYERS = {"planar": Planar, "radial": Radial}


@recorded  # the model remembers this builder and its arguments (checkpoints)
def PlanarFlow(features, transforms=8, kind="planar"):
    """A flow of K = ``transforms`` planar (or radial) layers on a standard normal base (Eq. 13).

    Sampling computes z_K = f_K(... f_1(z_0)) and log q_K(z_K) = log q_0(z_0) - sum_k log|det
    df_k/dz|; ``log_prob`` of a new point runs the 1-D inverses. No context (the paper's flows are
    not conditional here).

    >>> flow = PlanarFlow(2, transforms=4)
    >>> x, log_q = flow.rsample_and_log_prob(3)
    >>> torch.allclose(flow.log_prob(x), log_q, atol=1e-4)
    True
    """
    check_choice("kind", kind, LAYERS)
    check_integer("features", features)
    check_integer("transforms", transforms)
    return Flow([LAYERS[kind](features) for _ in range(transforms)], features=features)
