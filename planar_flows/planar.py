"""Planar and radial flows: Rezende & Mohamed, *Variational Inference with Normalizing Flows*, ICML
2015, https://arxiv.org/abs/1505.05770 (Sec. 4.1, Appendix A).

The paper's map ``f`` (noise -> data, closed form) is each layer's ``inverse``: all that sampling
and reverse KL need. ``forward`` (data -> noise, ``f^{-1}``) is not in the paper and comes last.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from common.checks import check_choice, check_integer, recorded
from common.flows import Flow, Transform
from common.roots import solve_increasing

MARGIN = 1e-4  # the constraints keep this far from their bounds: float32 never folds a layer


def constrain(u, w):
    """The constrained u with ``w^T u_hat = m(w^T u) > -1``, which makes ``f`` invertible (Appendix
    A.1). ``u``, ``w``: (D,) for one layer, or (batch, D) for per-point (amortised) parameters."""
    # BEGIN SOLUTION planar_flows.constraint
    # u_hat = u + [m(w^T u) - w^T u] w / ||w||^2 with m(x) = -1 + softplus(x) (Appendix A.1),
    # softplus kept >= MARGIN; sum over dim -1.
    wu = (w * u).sum(-1, keepdim=True)
    m = -1 + F.softplus(wu).clamp_min(MARGIN)  # App. A.1
    return u + (m - wu) * w / (w * w).sum(-1, keepdim=True)  # App. A.1
    # END SOLUTION


class Planar(Transform):
    """One planar layer (Sec. 4.1), noise -> data: ``inverse(z) = f(z) = z + u_hat tanh(w^T z + b)``
    (Eq. 10) and ``log|det df/dz| = log|1 + u_hat^T psi(z)|`` (Eq. 11-12); ``forward`` is
    ``invert_planar``. Inputs (batch, D), ladj (batch,). ``context=C > 0``: the amortised layer of
    Sec. 4, u, w, b computed for each point by a linear head from the encoder's h (batch, C).

    >>> layer = Planar(2).double()
    >>> x, ladj = layer.inverse(torch.randn(5, 2, dtype=torch.float64))
    >>> torch.allclose(layer(x)[1], -ladj)
    True
    """

    def __init__(self, features, context=0):
        super().__init__()
        self.features = features
        self.head = nn.Linear(context, 2 * features + 1) if context else None
        if context:  # amortised: near the identity (w of norm ~1, small u, b = 0), shifted by h
            with torch.no_grad():
                self.head.bias.zero_()[:features] = torch.randn(features) / math.sqrt(features)
                self.head.weight[features:].mul_(0.1)
        else:  # shared: a clear fold from step 0 (the paper gives no start: see the README)
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
        t = torch.tanh((z * w).sum(-1) + b)  # (batch,)
        x = z + t[:, None] * u  # Eq. 10
        ladj = torch.log((1 + (1 - t**2) * (w * u).sum(-1)).abs())  # Eq. 11-12
        return x, ladj
        # END SOLUTION

    def forward(self, x, context=None):
        return invert_planar(self, x, context)


class Radial(Transform):
    """One radial layer (Sec. 4.1), noise -> data: ``inverse(z) = f(z) = z + beta h (z - z0)``,
    ``h = 1 / (alpha + r)``, ``r = ||z - z0||`` (Eq. 14); ``forward`` is ``invert_radial``. Inputs
    (batch, D), ladj (batch,).
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
        h_prime = -(h**2)  # h'(alpha, r)
        d = self.z0.shape[0]
        # Eq. 14
        return (d - 1) * torch.log1p(beta * h) + torch.log1p(beta * h + beta * h_prime * r)
        # END SOLUTION

    def inverse(self, z, context=None):
        alpha, beta = self.alpha_beta()
        # BEGIN SOLUTION planar_flows.radial
        # f(z) = z + beta h(alpha, r) (z - z0) with r = ||z - z0|| (Eq. 14); the log-det is
        # self._ladj.
        r = (z - self.z0).norm(dim=-1)
        x = z + (beta / (alpha + r))[:, None] * (z - self.z0)  # Eq. 14
        return x, self._ladj(r, alpha, beta)
        # END SOLUTION

    def forward(self, x, context=None):
        return invert_radial(self, x)


@recorded  # the model remembers this builder and its arguments (checkpoints)
def PlanarFlow(features, transforms=8, kind="planar"):
    """K = ``transforms`` planar (or radial) layers on a standard normal base (Eq. 13): sampling
    gives log q_K(z_K) = log q_0(z_0) - sum_k log|det df_k/dz|; ``log_prob`` inverts every layer.

    >>> flow = PlanarFlow(2, transforms=4)
    >>> x, log_q = flow.rsample_and_log_prob(3)
    >>> torch.allclose(flow.log_prob(x), log_q, atol=1e-4)
    True
    """
    layers = {"planar": Planar, "radial": Radial}
    check_choice("kind", kind, layers)
    check_integer("features", features)
    check_integer("transforms", transforms)
    return Flow([layers[kind](features) for _ in range(transforms)], features=features)


# ---- not in the paper: f^{-1} (forward, data -> noise), for the density of any point
def invert_planar(layer, x, context):
    """``Planar.forward``: (z, log|det dz/dx|) from x (batch, D). With ``a = w^T z``, ``w^T x = a +
    (w^T u_hat) tanh(a + b)`` is increasing in ``a`` (Appendix A.1): a 1-D root find recovers ``a``,
    then ``z = x - u_hat tanh(a + b)``."""
    u, w, b = layer.flow_parameters(context)
    wx, c = (x * w).sum(-1), (w * u).sum(-1)

    def g(a):  # the increasing 1-D map a -> w^T f(z) and its slope (forward-mode autograd)
        return torch.func.jvp(lambda a: a + c * torch.tanh(a + b), (a,), (torch.ones_like(a),))

    # |tanh| < 1 brackets a in [wx - |c|, wx + |c|]; the start is exact where tanh saturates
    with torch.no_grad():
        start = wx - c * torch.tanh(wx + b)
        a = solve_increasing(g, wx, wx - c.abs(), wx + c.abs(), start)
        # one more Newton step where it lowers the residual (near a fold it would overshoot)
        value, slope = g(a)
        polished = a - (value - wx) / slope
        better = (g(polished)[0] - wx).abs() < (value - wx).abs()
        a = torch.where(better, polished, a)
    # a Newton step with its value taken out: autograd sees da = -d(g(a) - w^T x) / g'(a)
    value, slope = g(a)
    correction = value - wx
    a = a - (correction - correction.detach()) / slope
    z = x - torch.tanh(a + b)[:, None] * u
    _, slope = g(a)  # the log-det comes from the 1-D map's slope at a (not from layer.inverse)
    return z, -torch.log(slope.abs())


def invert_radial(layer, x):
    """``Radial.forward``: (z, log|det dz/dx|) from x (batch, D). On the ray from z0, ``||x - z0|| =
    r + beta r / (alpha + r)`` with ``r = ||z - z0||``: a quadratic in r, solved in closed form."""
    alpha, beta = layer.alpha_beta()
    rho = (x - layer.z0).norm(dim=-1)
    p = alpha + beta - rho
    q = torch.sqrt(p**2 + 4 * alpha * rho)
    # the positive root, stably; |p| + q (= p + q where it is used) is never 0: 0 * inf is NaN
    r = torch.where(p > 0, 2 * alpha * rho / (p.abs() + q), (q - p) / 2)
    # z - z0 points along x - z0 with the length r (r = rho = 0 at z0 itself)
    z = layer.z0 + (x - layer.z0) * (r / rho.clamp_min(torch.finfo(rho.dtype).tiny))[:, None]
    return z, -layer._ladj(r, alpha, beta)
