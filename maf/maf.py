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
from torch import nn

from common.flows import Compose, Flow, Transform, check_builder_args
from common.nets import MADE
from common.train import recorded

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


class BatchNorm(Transform):
    """The paper's batch normalisation as a bijection (Appendix B): u = (x - m) (v + eps)^(-1/2)
    exp(gamma) + beta.

    ``forward(x) -> (u, sum_i [gamma_i - 0.5 log(v_i + eps)])`` maps data to noise. In training mode
    m, v are the minibatch mean and variance (and a running average is kept for validation during
    training); in evaluation mode they are buffers, which ``set_batch_norm_stats`` sets to the
    statistics of the whole training set, as the paper prescribes. ``inverse`` exists only in
    evaluation mode: in training mode the map depends on the very batch it is applied to. Shapes: x
    (batch, D); ladj (batch,).
    """

    def __init__(self, features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.gamma = nn.Parameter(torch.zeros(features))  # log-scale
        self.beta = nn.Parameter(torch.zeros(features))  # shift
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("var", torch.ones(features))

    def _log_scale(self, var):
        return self.gamma - 0.5 * torch.log(var + self.eps)  # log of (v + eps)^(-1/2) exp(gamma)

    def forward(self, x, context=None):
        if self.training and x.shape[0] > 0:  # an empty batch has no statistics to take
            m, v = x.mean(0), x.var(0, unbiased=False)  # minibatch statistics (Appendix B)
            if torch.isfinite(m).all() and torch.isfinite(v).all():
                with torch.no_grad():  # a non-finite batch must not poison the running average
                    self.mean.lerp_(m, self.momentum)
                    self.var.lerp_(v, self.momentum)
        else:
            m, v = self.mean, self.var
        # BEGIN SOLUTION maf.batch_norm
        # u = (x - m) (v + eps)^(-1/2) exp(gamma) + beta (Appendix B); self._log_scale(v) is
        # gamma - 0.5 log(v + eps). The log-det is its sum, the same for every row: shape (batch,).
        log_scale = self._log_scale(v)
        u = (x - m) * torch.exp(log_scale) + self.beta  # Appendix B
        return u, log_scale.sum().expand(x.shape[0])  # log det = sum(gamma - 0.5 log(v + eps))
        # END SOLUTION

    def inverse(self, u, context=None):
        if self.training:
            raise RuntimeError(
                "BatchNorm.inverse needs fixed statistics, but the layer is in training mode, "
                "where it normalises each batch by that batch's own mean and variance. Call "
                "flow.eval() (and set_batch_norm_stats(flow, train_data)) before sampling."
            )
        # BEGIN SOLUTION maf.batch_norm
        # undo forward with the stored statistics self.mean, self.var.
        log_scale = self._log_scale(self.var)
        x = (u - self.beta) * torch.exp(-log_scale) + self.mean
        return x, -log_scale.sum().expand(u.shape[0])
        # END SOLUTION


@torch.no_grad()
def set_batch_norm_stats(flow, data, context=None):
    """Set every BatchNorm's evaluation statistics to those of the whole training set ``data`` (N,
    D) as it arrives at that layer (Appendix B): the data are pushed through the flow in order,
    layer by layer. Leaves ``flow`` in evaluation mode and returns it. ``context``: (N, C) or None.
    """
    flow.eval()
    param = next(flow.parameters())
    x = data.to(param)
    context = flow.check_context(None if context is None else context.to(param), x.shape[0])

    def push(transform, x):
        if isinstance(transform, Compose):
            for t in transform.transforms:
                x = push(t, x)
            return x
        if isinstance(transform, BatchNorm):
            transform.mean.copy_(x.mean(0))
            transform.var.copy_(x.var(0, unbiased=False))
        return transform(x, context)[0]

    push(flow.transform, x)
    return flow


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
