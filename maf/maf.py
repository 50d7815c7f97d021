"""Masked Autoregressive Flow (Papamakarios, Pavlakou & Murray, NeurIPS 2017). arXiv:1705.07057.

An autoregressive density with Gaussian conditionals, p(x_i | x_<i) = N(x_i | mu_i, exp(alpha_i)^2),
is already a flow: it generates x_i = u_i exp(alpha_i) + mu_i from noise u ~ N(0, I) (Eq. 3), and
the noise that generated a point is u_i = (x_i - mu_i) exp(-alpha_i) (Eq. 4). MAF stacks such
layers, each one modelling the noise of the next, with (mu, alpha) from a MADE (common/nets.py) and
the variable order reversed between layers.

Direction, under the repository's contract: ``forward`` is Eq. 4 (data -> noise, the density, ONE
MADE pass), ``inverse`` is Eq. 3 (noise -> data, sampling, D MADE passes). IAF (Kingma et al. 2016)
is the same layer run the other way round: ``common.flows.Inverse(MAFLayer(...))`` samples in one
pass and needs D passes for the density of a new point.

Also here: the paper's batch-normalisation layer (Appendix B; placed after every MADE, as the
authors' code does) and the conditional MAF of Sec. 3.4 (a context y enters every MADE: p(x | y)).
"""

import math

import torch

from common.checks import check_builder_args, recorded
from common.flows import Flow, Transform
from common.layers import BatchNorm
from common.nets import MADE

# the log-scale's soft bound: a point's density moves by at most 1000x per layer
ALPHA_BOUND = math.log(1000)


class MAFLayer(Transform):
    """One MAF layer: u_i = (x_i - mu_i) exp(-alpha_i), with (mu_i, alpha_i) = MADE(x_<i, y) (Eq.
    4).

    ``forward(x, context) -> (u, -sum_i alpha_i)`` maps data to noise; ``inverse(u, context) -> (x,
    sum_i alpha_i)`` maps noise to data. ``order[i]`` is the position of x_i in the autoregressive
    order (MADE's argument). Shapes: x, u (batch, D); context (batch, C); ladj (batch,).

    The paper uses alpha raw. Here it is softly bounded, alpha / (1 + |alpha| / log 1000), so
    |alpha| < 6.9 (zuko's default): with raw alpha one of three seeds of gauss8 (``python -m
    benchmarks``, 500 steps) sent a few test points to NLL ~ 1e3 (gap 8.6 instead of 0.5), scaled by
    exp(-alpha) from a region with no training data; bounded, the same seed gives 0.64 and the other
    seeds move by less than their spread.
    """

    def __init__(self, features, hidden_features=(64, 64), context=0, order=None):
        super().__init__()
        self.features = features
        self.made = MADE(features, 2, hidden_features, context, order)  # Sec. 3.4: y in every MADE

    def conditioner(self, x, context=None):
        """(mu, alpha), each (batch, D): mu_i = f_mu(x_<i), alpha_i = f_alpha(x_<i) (Eq. 2), one
        MADE pass."""
        mu, alpha = self.made(x, context).unbind(-1)
        return mu, alpha / (1 + alpha.abs() / ALPHA_BOUND)  # soft bound |alpha| < log 1000

    def forward(self, x, context=None):
        # Cost: ONE MADE pass. All of x is given, and MADE's masks let (mu_i, alpha_i) see only
        # x_<i, so every u_i comes out of the same pass, in parallel. This is why MAF trains fast.
        # BEGIN SOLUTION maf.step
        # one conditioner pass gives (mu, alpha); u = (x - mu) exp(-alpha) (Eq. 4), log-det
        # -sum alpha (Eq. 5).
        mu, alpha = self.conditioner(x, context)
        u = (x - mu) * torch.exp(-alpha)  # Eq. 4
        return u, -alpha.sum(-1)  # Eq. 5: du/dx is triangular with diagonal exp(-alpha_i)
        # END SOLUTION

    def inverse(self, u, context=None):
        # Cost: D MADE passes. x_i = u_i exp(alpha_i) + mu_i needs mu_i, alpha_i, which need x_<i,
        # which are themselves outputs: pass k fixes the k-th variable of the order, so sampling is
        # sequential.
        # BEGIN SOLUTION maf.step
        # start from x = 0 and repeat D times: x = u exp(alpha) + mu (Eq. 3), (mu, alpha) from
        # the current x.
        x = torch.zeros_like(u)
        for _ in range(self.features):
            mu, alpha = self.conditioner(x, context)
            x = u * torch.exp(alpha) + mu  # Eq. 3
        return x, alpha.sum(-1)  # the last pass saw the exact x_<i of every i: alpha is exact
        # END SOLUTION


@recorded  # the model remembers this builder and its arguments (checkpoints)
def MAF(features, transforms=5, hidden_features=(64, 64), context=0, batch_norm=False):
    """A masked autoregressive flow on R^features: ``transforms`` MAF layers, the order reversed
    between successive layers, optionally a BatchNorm after each (Appendix B), on a N(0, I) base.

    ``log_prob`` costs one MADE pass per layer; ``sample`` costs D per layer. ``context`` > 0 gives
    the conditional MAF p(x | y) of Sec. 3.4. Returns a ``common.flows.Flow``.

    >>> flow = MAF(2, transforms=2, hidden_features=(8,))
    >>> x, log_q = flow.rsample_and_log_prob(3)  # sampling: D MADE passes per layer
    >>> torch.allclose(flow.log_prob(x), log_q, atol=1e-4)  # density: one pass per layer
    True
    """
    check_builder_args(features, transforms, hidden_features, context, batch_norm=batch_norm)
    layers = []
    for t in range(transforms):
        order = torch.arange(features)
        order = order if t % 2 == 0 else order.flip(0)  # reversed between layers
        layers.append(MAFLayer(features, hidden_features, context, order))
        if batch_norm:
            layers.append(BatchNorm(features))
    return Flow(layers, features=features, context=context)
