"""Conditioner networks shared by several papers: a plain MLP and MADE (Germain et al. 2015)."""

import torch
from torch import nn


def MLP(in_features, out_features, hidden_features=(64, 64), activation=nn.ReLU):
    """A fully connected network ``in -> hidden... -> out`` with ``activation`` between layers."""
    layers, sizes = [], [in_features, *hidden_features]
    for a, b in zip(sizes[:-1], sizes[1:], strict=False):
        layers += [nn.Linear(a, b), activation()]
    layers.append(nn.Linear(sizes[-1], out_features))
    return nn.Sequential(*layers)


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed 0/1 mask of shape (out, in)."""

    def __init__(self, mask):
        super().__init__(mask.shape[1], mask.shape[0])
        # non-persistent: rebuilt from the architecture, never read from a checkpoint
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x):
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation (Germain et al. 2015, Sec. 4).

    ``MADE(features, params)(x, context)`` returns (batch, features, params): the parameters of
    feature ``i`` depend only on features that come before ``i`` in ``order`` (and on ``context``).

    Args:
        features: D, the number of autoregressive inputs.
        params: how many numbers per feature the caller needs (2 for affine, 3K-1 for splines).
        hidden_features: sizes of the hidden layers.
        context: size of an optional conditioning vector fed to every hidden layer's first mask.
        order: a permutation of range(D); ``order[i]`` is the position of feature ``i`` in the
            autoregressive ordering (default ``range(D)``; ``range(D)[::-1]`` reverses it).
    """

    def __init__(
        self, features, params, hidden_features=(64, 64), context=0, order=None, activation=nn.ReLU
    ):
        super().__init__()
        order = torch.arange(features) if order is None else torch.as_tensor(order)
        if sorted(order.tolist()) != list(range(features)):
            raise ValueError(
                f"order must be a permutation of range({features}), got {order.tolist()}"
            )
        self.features, self.params, self.context = features, params, context
        self.register_buffer("order", order)
        # BEGIN SOLUTION common.made
        # degrees (Sec. 4): input i has order[i] + 1, context inputs 0, hidden units cycle
        # over [1, D - 1]; a hidden unit sees degrees <= its own, output i (params numbers
        # each) only degrees < order[i] + 1.
        # Degrees (Sec. 4): inputs 1..D, hidden units in [1, D-1], context inputs 0 (seen by all).
        deg_in = torch.cat([order + 1, torch.zeros(context, dtype=torch.long)])
        layers, deg_prev = [], deg_in
        for h in hidden_features:
            # hidden degrees cycle over 1..D-1 (Sec. 4); with a context over 0..D-1, so that units
            # of degree 0 (context only) let the first feature's parameters depend on the context
            # too
            low = 0 if context or features == 1 else 1
            deg_h = torch.arange(h) % (features - low) + low
            layers += [
                MaskedLinear(deg_h[:, None] >= deg_prev[None, :]),
                activation(),
            ]  # hidden mask: >=
            deg_prev = deg_h
        deg_out = (order + 1).repeat_interleave(params)  # output laid out as (features, params)
        layers.append(MaskedLinear(deg_out[:, None] > deg_prev[None, :]))  # output mask: strict >
        self.net = nn.Sequential(*layers)
        # END SOLUTION

    def forward(self, x, context=None):
        if self.context:
            x = torch.cat([x, context], dim=-1)
        return self.net(x).view(x.shape[0], self.features, self.params)  # (batch, D, params)
