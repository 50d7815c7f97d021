"""Conditioner networks shared by several papers: a plain MLP and MADE (Germain et al. 2015)."""

import torch
from torch import nn


def MLP(in_features, out_features, hidden_features=(64, 64), activation=nn.ReLU):
    """A fully connected network ``in -> hidden... -> out`` with ``activation`` between layers.

    >>> MLP(3, 2, (8,))
    Sequential(
      (0): Linear(in_features=3, out_features=8, bias=True)
      (1): ReLU()
      (2): Linear(in_features=8, out_features=2, bias=True)
    )
    """
    layers, sizes = [], [in_features, *hidden_features]
    for a, b in zip(sizes[:-1], sizes[1:], strict=False):
        layers += [nn.Linear(a, b), activation()]
    layers.append(nn.Linear(sizes[-1], out_features))
    return nn.Sequential(*layers)


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed 0/1 mask of shape (out, in).

    >>> layer = MaskedLinear(torch.tensor([[1, 0], [1, 1]]))  # output 0 must not see input 1
    >>> x = torch.zeros(1, 2, requires_grad=True)
    >>> layer(x)[0, 0].backward()
    >>> x.grad[0, 1].item()
    0.0
    """

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

    >>> made = MADE(3, 2, hidden_features=(8,))
    >>> made(torch.randn(5, 3)).shape  # (batch, features, params)
    torch.Size([5, 3, 2])
    >>> made.net[0].mask[:3].int()  # hidden units of degree 1, 2, 1 see inputs of degree <= theirs
    tensor([[1, 0, 0],
            [1, 1, 0],
            [1, 0, 0]], dtype=torch.int32)
    """

    def __init__(
        self, features, params, hidden_features=(64, 64), context=0, order=None, activation=nn.ReLU
    ):
        super().__init__()
        order = torch.arange(features) if order is None else order
        order = torch.as_tensor(order, device=order.device if torch.is_tensor(order) else "cpu")
        # the values are checked unless they are on "meta" (a build that holds no data)
        identity = torch.arange(features, device="cpu")
        if order.shape != (features,) or not (
            order.is_meta or torch.equal(order.sort().values.cpu(), identity)
        ):
            seen = f"shape {tuple(order.shape)} on meta" if order.is_meta else order.tolist()
            raise ValueError(f"order must be a permutation of range({features}), got {seen}")
        order = order.to(torch.get_default_device())  # where the layers' weights are
        self.features, self.params, self.context = features, params, context
        self.register_buffer("order", order)
        # BEGIN SOLUTION common.made
        # Degrees (Sec. 4): input i has order[i] + 1, context inputs 0. A hidden layer of h
        # units cycles its degrees over 1..D-1, or over 0..D-1 when there is a context and
        # h >= D (degree-0 units see only the context: they let the first feature's outputs
        # depend on it), or is all 0 when D = 1. A unit sees the degrees <= its own; output i
        # (params numbers each, laid out as (D, params)) sees only degrees < order[i] + 1.
        # self.net must be an nn.Sequential whose last layer is the output MaskedLinear (IAF
        # edits its bias).
        deg_in = torch.cat([order + 1, torch.zeros(context, dtype=torch.long)])
        layers, deg_prev = [], deg_in
        for h in hidden_features:
            # 1..D-1 (Germain et al.) first; 0 joins only where it costs none of them
            low = 0 if features == 1 or (context and h >= features) else 1
            deg_h = torch.arange(h) % (features - low) + low
            layers += [MaskedLinear(deg_h[:, None] >= deg_prev[None, :]), activation()]  # >=
            deg_prev = deg_h
        deg_out = (order + 1).repeat_interleave(params)  # output laid out as (features, params)
        layers.append(MaskedLinear(deg_out[:, None] > deg_prev[None, :]))  # output mask: strict >
        self.net = nn.Sequential(*layers)
        # END SOLUTION

    def forward(self, x, context=None):
        if self.context:
            x = torch.cat([x, context], dim=-1)
        return self.net(x).view(x.shape[0], self.features, self.params)  # (batch, D, params)
