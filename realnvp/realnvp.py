"""Real NVP (Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP", arXiv
1605.08803): a coupling keeps the dimensions a binary mask ``b`` selects and scales and shifts the
others by functions of the kept ones, a triangular Jacobian: one pass each way. Every layer maps
**data to noise** in ``forward`` on (batch, D). ``RealNVP``: vectors; ``RealNVPImage``: images.

>>> flow = RealNVP(2, transforms=2, hidden_features=(8,))
>>> x, log_p = flow.rsample_and_log_prob(3)  # one pass noise -> data
>>> torch.allclose(flow.log_prob(x), log_p, atol=1e-5)  # one pass back
True
"""

import torch
from torch import nn

from common.checks import check_builder_args, check_integer, recorded
from common.flows import Compose, Flow, Permute, Transform
from common.layers import BatchNorm, Logit
from common.nets import MLP


class AffineCoupling(Transform):
    """Affine coupling with a mask (Sec. 3.3-3.4), data -> noise, x and z (batch, D), ladj (batch,):
    ``z = b * x + (1 - b) * (x * exp(s(b * x)) + t(b * x))``, ``log|det dz/dx| = sum (1 - b) s``.
    ``mask``: 0/1, (D,) or (C, H, W), 1 = kept; ``net``: kept features and context (vectors) or
    ``b * x`` (images) -> (batch, 2 * mask.shape[0], ...), the log-scales and shifts."""

    def __init__(self, mask, net):
        super().__init__()
        self.register_buffer("mask", mask.float().contiguous())
        # made once, not per call: 1 - b (Eq. 9) and the kept features' indices (vectors; on
        # "meta", which holds no values and never runs, none)
        vector = mask.dim() == 1 and not mask.is_meta
        kept = mask.nonzero()[:, 0] if vector else mask.new_zeros(0, dtype=torch.long)
        self.register_buffer("kept", kept, persistent=False)
        self.register_buffer("free", 1 - self.mask, persistent=False)
        self.net = net
        ones = [1] * (mask.dim() - 1)  # (C,) or (C, 1, 1): one scale per feature / channel
        self.scale = nn.Parameter(torch.ones(mask.shape[0], *ones))

    def _s_t(self, x, context):
        b = self.mask  # below: x_{1:d} (Eq. 4-5) or b * x (Eq. 9)
        h = x.index_select(1, self.kept) if b.dim() == 1 else b * x
        s, t = self.net(h if context is None else torch.cat([h, context], 1)).chunk(2, 1)
        s = self.scale * torch.tanh(s)  # Sec. 4.1: a tanh times a learned scale (bounded)
        return self.free * s, self.free * t  # Eq. 9: (1 - b) s, (1 - b) t: kept ones left alone

    def forward(self, x, context=None):
        x = x.reshape(x.shape[0], *self.mask.shape)
        # BEGIN SOLUTION realnvp.coupling
        # (s, t) = self._s_t(x, context) are zero on the kept dimensions; z = x exp(s) + t
        # (Eq. 4-5, 9), log det = sum of s (Eq. 6). Return z as (batch, D), the log-det (batch,).
        s, t = self._s_t(x, context)
        z = x * torch.exp(s) + t  # Eq. 4-5, 9
        return z.flatten(1), s.flatten(1).sum(1)  # Eq. 6
        # END SOLUTION

    def inverse(self, z, context=None):
        z = z.reshape(z.shape[0], *self.mask.shape)
        # BEGIN SOLUTION realnvp.coupling
        # the kept dimensions of z equal those of x: self._s_t(z, context) gives the same s, t.
        s, t = self._s_t(z, context)  # Eq. 7
        x = (z - t) * torch.exp(-s)  # Eq. 8
        return x.flatten(1), -s.flatten(1).sum(1)
        # END SOLUTION


def checkerboard(shape, parity=0):
    """Sec. 3.4 spatial checkerboard mask (C, H, W): 1 where (h + w + parity) is even."""
    c, h, w = shape
    # BEGIN SOLUTION realnvp.masks
    # a float tensor (C, H, W), 1 where row + column + parity is even, the same in every channel
    return ((torch.arange(h)[:, None] + torch.arange(w) + parity) % 2 == 0).float().expand(c, h, w)
    # END SOLUTION


def channel_mask(shape, parity=0):
    """Sec. 3.4 channel-wise mask (C, H, W): the first half of the channels is kept (parity 0)."""
    c, h, w = shape
    # BEGIN SOLUTION realnvp.masks
    # a float tensor (C, H, W), 1 on the first C // 2 channels for parity 0, else on the others
    return ((torch.arange(c) < c // 2) != bool(parity)).float()[:, None, None].expand(c, h, w)
    # END SOLUTION


class Squeeze(Permute):
    """Sec. 3.6 squeeze, data -> noise: (C, H, W) -> (4C, H/2, W/2), a permutation, ``ladj = 0``.

    >>> z, ladj = Squeeze((1, 4, 4))(torch.arange(16.0)[None])  # pixel (i, j) holds 4 i + j
    >>> z.view(4, 2, 2)[:, 0, 0]  # the top-left 2 x 2 block became the 4 channels at (0, 0)
    tensor([0., 1., 4., 5.])
    """

    def __init__(self, shape):
        c, h, w = shape
        index = torch.arange(c * h * w).view(c, h // 2, 2, w // 2, 2)  # (C, H/2, 2, W/2, 2)
        # (C, 2, 2, H/2, W/2): pixel (2h + i, 2w + j) of channel c goes to channel 4c + 2i + j
        super().__init__(index.permute(0, 2, 4, 1, 3).flatten())


class FactorOut(Transform):
    """Sec. 3.6 multi-scale step, data -> noise: ``(z_i, h_i) = block(h_{i-1})``; the first half of
    the output is final noise ``z_i``, the second half goes through ``rest`` (the next scales)."""

    def __init__(self, block, rest):
        super().__init__()
        self.block, self.rest = block, rest

    def forward(self, x, context=None):
        h, ladj = self.block(x, context)
        z1, h = h.chunk(2, 1)  # factor out the first half of the channels
        z2, ladj_rest = self.rest(h, context)
        return torch.cat([z1, z2], 1), ladj + ladj_rest

    def inverse(self, z, context=None):
        z1, z2 = z.chunk(2, 1)
        h, ladj_rest = self.rest.inverse(z2, context)
        x, ladj = self.block.inverse(torch.cat([z1, h], 1), context)
        return x, ladj + ladj_rest


def multiscale(shape, scales, hidden=32, batch_norm=False):
    """Sec. 3.6 on flattened (C, H, W): per scale 3 checkerboard couplings, squeeze, 3 channel
    couplings, factor out half; last scale: 4 checkerboard ones; optional batch norm (Sec. 3.7)."""
    c, h, w = shape

    def couplings(masks):
        layers = []
        for m in masks:
            layers.append(AffineCoupling(m, conv_net(m.shape[0], hidden)))
            layers += [BatchNorm(m.shape[0])] if batch_norm else []
        return layers

    if scales == 1:
        return Compose(*couplings([checkerboard(shape, i % 2) for i in range(4)]))
    block = Compose(
        *couplings([checkerboard(shape, i % 2) for i in range(3)]),
        Squeeze(shape),
        *couplings([channel_mask((4 * c, h // 2, w // 2), i % 2) for i in range(3)]),
    )
    return FactorOut(block, multiscale((2 * c, h // 2, w // 2), scales - 1, hidden, batch_norm))


@recorded  # the model remembers this builder and its arguments (checkpoints)
def RealNVP(features, transforms=8, hidden_features=(64, 64), context=0, batch_norm=False):
    """Real NVP for vectors (batch, features): ``transforms`` couplings with alternating masks, MLP
    conditioners on the kept features (and the context), optional batch norm between them. The
    MLPs keep PyTorch's default start: on 2-D targets it trained better than the identity."""
    check_builder_args(features, transforms, hidden_features, context, batch_norm=batch_norm)
    layers = []
    for i in range(transforms):
        # Sec. 3.4: alternate which features are kept (one feature: none, the context decides)
        mask = (torch.arange(features) + i) % 2 == 0 if features > 1 else torch.zeros(1)
        d = (features + 1 - i % 2) // 2 if features > 1 else 0  # x_{1:d} kept: mask.sum()
        layers.append(AffineCoupling(mask, MLP(d + context, 2 * features, hidden_features)))
        layers += [BatchNorm(features)] if batch_norm and i < transforms - 1 else []
    return Flow(layers, features=features, context=context)


@recorded  # the model remembers this builder and its arguments (checkpoints)
def RealNVPImage(shape=(1, 8, 8), scales=2, hidden_channels=32, batch_norm=False, alpha=0.05):
    """Multi-scale Real NVP (Sec. 3.6) for flattened images (batch, C * H * W) in [0, 1]: a logit
    with ``alpha`` (Sec. 4.1; its Jacobian counts in the likelihood), then ``scales`` scales."""
    check_integer("scales", scales)
    check_integer("hidden_channels", hidden_channels)
    k = 2 ** (scales - 1)  # H and W halve at every scale but the last
    sizes = tuple(shape) if isinstance(shape, (tuple, list)) and len(shape) == 3 else (0, 0, 0)
    integers = all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes)
    if not integers or sizes[1] % k or sizes[2] % k:
        raise ValueError(
            "shape must be (C, H, W), positive integers, H and W divisible by 2^(scales - 1) = "
            f"{k}, got {shape!r}"
        )
    layers = [Logit(alpha), multiscale(sizes, scales, hidden_channels, batch_norm)]
    return Flow(layers, features=sizes[0] * sizes[1] * sizes[2])


# ---- not in the paper: a small CNN in place of the paper's deep ResNets
def conv_net(channels, hidden):
    """(batch, C, H, W) -> (batch, 2C, H, W) log-scales and shifts; the last layer starts at 0, so
    every image coupling starts as the identity."""
    net = nn.Sequential(
        nn.Conv2d(channels, hidden, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(hidden, hidden, 1),
        nn.ReLU(),
        nn.Conv2d(hidden, 2 * channels, 3, padding=1),
    )
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net
