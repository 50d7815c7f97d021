"""Masked Autoregressive Flow (Papamakarios, Pavlakou & Murray, NeurIPS 2017). arXiv:1705.07057.

Gaussian conditionals N(x_i | mu_i, exp(alpha_i)^2), (mu, alpha) = MADE(x_<i, y), make an
autoregressive model a flow; MAF stacks them, the order reversed between layers. In ``Inverse``
it samples in one pass (an IAF step); App. B's batch norm is ``common.layers.BatchNorm``."""

import math

import torch

from common.checks import check_builder_args, recorded
from common.flows import Flow, Transform
from common.layers import BatchNorm, autoregressive_inverse, soft_bound
from common.nets import MADE


class MAFLayer(Transform):
    """One MAF layer, data -> noise: u = (x - mu) exp(-alpha), ladj -sum alpha (Eq. 4-5), in one
    MADE pass; ``inverse`` (Eq. 3) takes D. x, u (batch, D); context (batch, C); ladj (batch,)."""

    def __init__(self, features, hidden_features=(64, 64), context=0, order=None):
        super().__init__()
        self.features = features
        self.made = MADE(features, 2, hidden_features, context, order)  # Sec. 3.4: y in every MADE

    def conditioner(self, x, context=None):
        """(mu, alpha), (batch, D), from x_<i (Eq. 2); |alpha| < log 1000 (not in the paper)."""
        mu, alpha = self.made(x, context).unbind(-1)
        return mu, soft_bound(alpha, math.log(1000))  # raw, far test points got huge NLL (README)

    def forward(self, x, context=None):
        # BEGIN SOLUTION maf.step
        # one conditioner pass; u = (x - mu) exp(-alpha) (Eq. 4); log-det -sum alpha (Eq. 5)
        mu, alpha = self.conditioner(x, context)
        u = (x - mu) * torch.exp(-alpha)  # Eq. 4
        return u, -alpha.sum(-1)  # Eq. 5
        # END SOLUTION

    def inverse(self, u, context=None):
        def step(x):
            # BEGIN SOLUTION maf.step
            # (mu, alpha) at the guess x; x = u exp(alpha) + mu (Eq. 3), log-det +sum alpha
            mu, alpha = self.conditioner(x, context)
            x = u * torch.exp(alpha) + mu  # Eq. 3
            return x, alpha.sum(-1)
            # END SOLUTION

        return autoregressive_inverse(step, u, self.features)  # x_i needs x_<i: D passes


@recorded  # the model remembers this builder and its arguments (checkpoints)
def MAF(features, transforms=5, hidden_features=(64, 64), context=0, batch_norm=False):
    """``transforms`` MAF layers on R^features, each followed by a BatchNorm if asked (Appendix B),
    on N(0, I): a ``common.flows.Flow``, of p(x | y) if ``context`` > 0 (Sec. 3.4).

    >>> flow = MAF(2, transforms=2, hidden_features=(8,))
    >>> x, log_q = flow.rsample_and_log_prob(3)  # D MADE passes per layer; log_prob: one
    >>> torch.allclose(flow.log_prob(x), log_q, atol=1e-4)
    True
    """
    check_builder_args(features, transforms, hidden_features, context, batch_norm=batch_norm)
    layers = []
    for t in range(transforms):  # the order reversed between layers
        order = torch.arange(features).flip(0) if t % 2 else torch.arange(features)
        layers.append(MAFLayer(features, hidden_features, context, order))
        if batch_norm:
            layers.append(BatchNorm(features))
    return Flow(layers, features=features, context=context)
