"""Layers and mechanisms that several papers use and none of them owns.

* ``soft_bound``: the smooth clamp every flow puts on a log-scale or a spline parameter;
* ``autoregressive_inverse``: the D-pass inverse of any autoregressive layer (MAF, IAF, NSF-AR);
* ``BatchNorm``: batch normalisation as a bijection (MAF Appendix B = Real NVP Sec. 3.7), with
  ``set_batch_norm_stats`` (MAF's rule: evaluate with the whole training set's statistics);
* ``Logit``: [0, 1]^D -> R^D before an image model (Real NVP Sec. 4.1);
* ``ActNorm``: a per-feature affine layer set from the first batch (Kingma & Dhariwal 2018).

Every layer follows the contract of ``common.flows``: ``forward`` maps data to noise.
"""

import math

import torch
from torch import nn

from common.checks import check_number
from common.flows import Compose, Transform


def soft_bound(v, bound):
    """v / (1 + |v| / bound): close to v for |v| << bound, never beyond +-bound.

    >>> soft_bound(torch.tensor([0.01, 1e9]), 5.0)
    tensor([0.0100, 5.0000])
    """
    return v / (1 + v.abs() / bound)


def autoregressive_inverse(invert, z, passes):
    """The inverse of an autoregressive layer, ``passes`` = D conditioner passes.

    ``invert(x)`` returns ``(x', ladj)``: the layer's elementwise inverse of ``z`` with its
    conditioner fed the current guess ``x``. Output i depends on x only through x_<i, so pass k
    fixes the k-th variable of the order, whatever the start; the last pass saw the exact x_<i of
    every i, so its log-determinant is exact too.

    >>> z = torch.tensor([[1.0, 2.0]])  # x_1 = z_1, x_2 = z_2 - x_1: the shift sees x_<2 only
    >>> autoregressive_inverse(lambda x: (z - torch.cat([0 * x[:, :1], x[:, :1]], 1), 0), z, 2)
    (tensor([[1., 1.]]), 0)
    """
    x = torch.zeros_like(z)
    for _ in range(passes):
        x, ladj = invert(x)
    return x, ladj


class BatchNorm(Transform):
    """Batch normalisation as a bijection (MAF Appendix B; Real NVP Sec. 3.7), data -> noise:
    ``z = (x - m) (v + eps)^(-1/2) exp(log_gamma) + beta``, per feature or per channel.

    Training mode: m, v are the minibatch's mean and (biased) variance, and running averages are
    kept; rows with an inf entry, or one so large that the variance could overflow (beyond
    sqrt(largest float / n) / 2, n values per channel), stay out of the statistics, and a batch
    with no row left (an empty one) takes none. Evaluation mode: m, v are ``running_mean``,
    ``running_var`` (MAF sets them to the whole training set's with ``set_batch_norm_stats``).
    ``inverse`` needs fixed statistics, so in training mode it raises. Input (batch, channels * N)
    is read as (batch, channels, N): N = 1 for vectors, H * W for images. ladj (batch,).
    """

    def __init__(self, channels, momentum=0.1, eps=1e-5):
        super().__init__()
        self.channels, self.momentum, self.eps = channels, momentum, eps
        self.log_gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def _log_scale(self, var):
        # log of (v + eps)^(-1/2) exp(gamma), (C,)
        return self.log_gamma - 0.5 * torch.log(var + self.eps)

    def forward(self, x, context=None):
        x = x.reshape(x.shape[0], self.channels, x.shape[1] // self.channels)  # (batch, C, N)
        m, v = self.running_mean, self.running_var
        # the statistics see only rows whose squared deviations cannot overflow: finite, and
        # |x| <= sqrt(largest float / n) / 2 for n values per channel
        n = max(x.shape[0] * x.shape[2], 1)
        rows = x[(x.flatten(1).abs() <= math.sqrt(torch.finfo(x.dtype).max / n) / 2).all(1)]
        if self.training and rows.shape[0] > 0:
            m, v = rows.mean((0, 2)), rows.var((0, 2), unbiased=False)  # minibatch statistics
            with torch.no_grad():
                self.running_mean.lerp_(m, self.momentum)
                self.running_var.lerp_(v, self.momentum)
        m = m[:, None]  # (C, 1): one statistic per channel, the same at every position
        # BEGIN SOLUTION common.batch_norm
        # z = (x - m) (v + eps)^(-1/2) exp(gamma) + beta with log_scale = self._log_scale(v) of
        # shape (C,); the log-det sums it over channels and over the N positions, the same for
        # every row: shape (batch,).
        log_scale = self._log_scale(v)
        z = (x - m) * log_scale.exp()[:, None] + self.beta[:, None]  # MAF App. B, Real NVP Eq. 12
        return z.flatten(1), (x.shape[2] * log_scale.sum()).expand(x.shape[0])
        # END SOLUTION

    def inverse(self, z, context=None):
        if self.training:
            raise RuntimeError(
                "BatchNorm.inverse needs fixed statistics, but the layer is in training mode, "
                "where it normalises each batch by that batch's own mean and variance. Call "
                "flow.eval() (and, for MAF, set_batch_norm_stats(flow, train_data)) before "
                "sampling."
            )
        z = z.reshape(z.shape[0], self.channels, z.shape[1] // self.channels)
        m, v = self.running_mean[:, None], self.running_var
        # BEGIN SOLUTION common.batch_norm
        # undo forward with the stored statistics m (C, 1) and v (C,).
        log_scale = self._log_scale(v)
        x = (z - self.beta[:, None]) * (-log_scale).exp()[:, None] + m
        return x.flatten(1), (-z.shape[2] * log_scale.sum()).expand(z.shape[0])
        # END SOLUTION


@torch.no_grad()
def set_batch_norm_stats(flow, data, context=None):
    """Set every BatchNorm's evaluation statistics to those of the whole training set ``data`` (N,
    D) as it arrives at that layer (MAF, Appendix B): the data are pushed through the flow layer by
    layer. Leaves ``flow`` in evaluation mode and returns it. ``context``: (N, C) or None.
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
            h = x.reshape(x.shape[0], transform.channels, x.shape[1] // transform.channels)
            transform.running_mean.copy_(h.mean((0, 2)))
            transform.running_var.copy_(h.var((0, 2), unbiased=False))
        return transform(x, context)[0]

    push(flow.transform, x)
    return flow


class Logit(Transform):
    """Data in [0, 1]^D -> R^D through ``logit(alpha + (1 - 2 alpha) x)`` (Real NVP, Sec. 4.1).

    Used before every image model so that bits/dim count this Jacobian too. Its domain is the open
    interval (-alpha / (1 - 2 alpha), 1 + alpha / (1 - 2 alpha)) per pixel: a row with a pixel
    outside (or at an end) is outside the support, ladj -inf (so log p = -inf) and z = 0 there.
    """

    def __init__(self, alpha=0.05):
        super().__init__()
        check_number("alpha", alpha, low=0.0, high=0.5, high_open=True)  # 1 - 2 alpha > 0
        self.alpha = float(alpha)

    def forward(self, x, context=None):
        s = self.alpha + (1 - 2 * self.alpha) * x
        outside = ((s <= 0) | (s >= 1)).any(-1, keepdim=True)  # rows the logit cannot take
        s = torch.where(outside, 0.5, s)  # a finite stand-in, so no NaN reaches any gradient
        z = torch.log(s) - torch.log1p(-s)
        ladj = (math.log(1 - 2 * self.alpha) - torch.log(s) - torch.log1p(-s)).sum(-1)
        return z, ladj.masked_fill(outside[:, 0], -math.inf)

    def inverse(self, z, context=None):
        s = torch.sigmoid(z)
        x = (s - self.alpha) / (1 - 2 * self.alpha)
        ladj = (torch.log(s) + torch.log1p(-s) - math.log(1 - 2 * self.alpha)).sum(-1)
        return x, ladj


class ActNorm(Transform):
    """A per-feature affine layer set from the data (ActNorm, Kingma & Dhariwal 2018, Sec. 3.1):
    ``forward(x) = (x - shift) / scale`` with ``scale = exp(log_scale)``; ladj ``-sum log_scale``.

    Data-dependent start, once: the first ``forward`` (data -> noise) in training mode sets
    ``shift`` and ``log_scale`` to that batch's mean and log standard deviation, so the first
    batch of at least 2 points leaves standardised (a batch of 0 or 1 cannot set a scale and
    passes through); from then on both are ordinary trained parameters. The buffer
    ``initialised`` records that this happened and is saved with the weights, so a restored model
    is never re-initialised. Before it, or in evaluation mode, the layer is the identity it starts
    as. Put first in a flow (data side), it standardises data that are not, as papers do before
    fitting. Shapes: x (batch, D); ladj (batch,).
    """

    def __init__(self, features):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(features))
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.register_buffer("initialised", torch.tensor(False))

    def forward(self, x, context=None):
        if self.training and not self.initialised and x.shape[0] >= 2:  # a scale needs 2 points
            with torch.no_grad():  # Kingma & Dhariwal, Sec. 3.1: zero mean, unit variance
                self.shift.copy_(x.mean(0))
                self.log_scale.copy_(x.std(0).clamp_min(1e-12).log())
                self.initialised.fill_(True)
        ladj = -self.log_scale.sum().expand(x.shape[0])  # log|det| of a diagonal map
        return (x - self.shift) / self.log_scale.exp(), ladj

    def inverse(self, z, context=None):
        return self.shift + self.log_scale.exp() * z, self.log_scale.sum().expand(z.shape[0])
