"""The flow contract shared by every paper folder.

Direction convention, used everywhere in this repository:

* ``forward(x, context=None) -> (z, ladj)`` maps **data to noise** (the density direction);
* ``inverse(z, context=None) -> (x, ladj)`` maps **noise to data** (the sampling direction);
* ``ladj`` is ``log|det d(out)/d(in)|`` of the map just applied, shape ``(batch,)``.

So ``log p(x) = log N(z) + ladj_forward`` and a sample ``x = inverse(z)`` has
``log p(x) = log N(z) - ladj_inverse``.

>>> flow = Flow([Permute.reverse(2)], features=2)
>>> flow.log_prob(torch.tensor([[0.0, 0.0], [math.inf, 1.0]]))  # N(0, I) at 0, and a far point
tensor([-1.8379,    -inf])

Shared layers (batch norm, logit, ActNorm, the D-pass autoregressive inverse) live in
``common.layers``; argument validation in ``common.checks``.
"""

import math

import torch
from torch import nn

from common.checks import check_input, check_integer


class Transform(nn.Module):
    """A bijection; subclasses implement ``forward`` (data -> noise) and ``inverse`` (back)."""

    def forward(self, x, context=None):
        """Map data ``x`` (batch, D) to noise; return ``(z, log|det dz/dx|)``."""
        raise NotImplementedError

    def inverse(self, z, context=None):
        """Map noise ``z`` (batch, D) to data; return ``(x, log|det dx/dz|)``."""
        raise NotImplementedError


class Inverse(Transform):
    """Swap the two directions of ``transform``: its ``inverse`` becomes this ``forward``.

    IAF wraps its autoregressive steps in ``Inverse``, so that sampling is their one-pass direction
    (``Inverse(maf.MAFLayer(D))`` is such a step too). Planar and radial layers instead put the
    paper's map in ``inverse`` directly.
    """

    def __init__(self, transform):
        super().__init__()
        self.transform = transform

    def forward(self, x, context=None):
        return self.transform.inverse(x, context)

    def inverse(self, z, context=None):
        return self.transform.forward(z, context)


class Compose(Transform):
    """Chain transforms: ``forward`` applies them in order (data -> noise) and sums the ``ladj``."""

    def __init__(self, *transforms):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x, context=None):
        ladj = x.new_zeros(x.shape[0])
        for t in self.transforms:
            x, l = t(x, context)
            ladj = ladj + l
        return x, ladj

    def inverse(self, z, context=None):
        ladj = z.new_zeros(z.shape[0])
        for t in reversed(self.transforms):
            z, l = t.inverse(z, context)
            ladj = ladj + l
        return z, ladj


class Permute(Transform):
    """Reorder features (volume preserving, ``ladj = 0``); ``Permute.reverse(D)`` flips them."""

    def __init__(self, permutation):
        super().__init__()
        permutation = torch.as_tensor(permutation)
        self.register_buffer("perm", permutation)
        self.register_buffer("inv_perm", torch.argsort(permutation))

    @classmethod
    def reverse(cls, features):
        return cls(torch.arange(features - 1, -1, -1))

    def forward(self, x, context=None):
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, z, context=None):
        return z[:, self.inv_perm], z.new_zeros(z.shape[0])


class StandardNormal(nn.Module):
    """N(0, I_D). Its mean ``loc`` is a buffer (the scale is 1, not stored), so ``.to(device)`` and
    ``.double()`` move it, and the flow reads its dtype and device from it.

    >>> StandardNormal(2).log_prob(torch.zeros(1, 2))  # -log(2 pi)
    tensor([-1.8379])
    """

    def __init__(self, features):
        super().__init__()
        self.register_buffer("loc", torch.zeros(features))

    @property
    def features(self):
        return self.loc.shape[0]

    def log_prob(self, z):
        return -0.5 * (z**2).sum(-1) - 0.5 * self.features * math.log(2 * math.pi)

    def rsample(self, n):
        return torch.randn(n, self.features, dtype=self.loc.dtype, device=self.loc.device)


class Flow(nn.Module):
    """A normalizing flow: ``transforms`` (data -> noise in ``forward``) on top of a ``base``
    density.

    Inputs are checked before any work: ``x`` and ``context`` must be float tensors of the flow's
    dtype and device and of the right shape; NaN in either raises a ValueError (a NaN point has no
    density); a row of ``x`` with an infinite coordinate gets ``log_prob`` -inf (it lies outside
    every flow's support) and is left out of the pass, so batch statistics never see it. A row
    whose log-density comes out -inf (a point so far out that it underflows) is left out of a
    second pass, so that it cannot turn the other rows' gradients into NaN (inf * 0); so is a row
    whose log-density is below -sqrt(largest float) (-1.8e19 in float32, -1.3e154 in float64),
    where the gradient overflows: it gets -inf too. So does a row with a coordinate beyond
    sqrt(largest float / D) (its squared norm can overflow) whose log-density comes out NaN: far
    from the support, where the layers' arithmetic overflows (inf - inf), the density is 0; a NaN
    anywhere else is left as it is, a bug to see. A context must be finite. A flow on the meta
    device (shapes, no values) refuses ``log_prob`` and sampling with a ValueError.

    >>> flow = Flow([Permute.reverse(2)], features=2)
    >>> flow.log_prob(torch.zeros(3, 2)).shape
    torch.Size([3])
    >>> flow.sample(0).shape
    torch.Size([0, 2])
    """

    def __init__(self, transforms, base=None, features=None, context=0):
        super().__init__()
        self.transform = transforms if isinstance(transforms, Transform) else Compose(*transforms)
        if base is None:
            if features is None:
                raise ValueError("Flow needs either a base distribution or the number of features")
            base = StandardNormal(features)
        self.base = base
        self.features = base.features
        self.context = context

    def _dtype(self):
        return self.base.loc.dtype

    def _check_values(self):
        """Refuse a flow on the meta device: it holds shapes but no values to compute with."""
        if self.base.loc.device.type == "meta":
            raise ValueError(
                "this flow is on device meta, which holds shapes but no values: log_prob and "
                "sampling need a device with values; call .to('cpu') (or another device) first"
            )

    def check_context(self, context, batch):
        """Check ``context`` and broadcast a single vector (context,) to (batch, context).

        Returns None for a flow built with ``context=0`` (and refuses a context given to it).
        """
        if self.context == 0:
            if context is not None:
                raise ValueError("this flow was built with context=0 but a context was given")
            return None
        if context is None:
            raise ValueError(f"this flow needs a context of size {self.context}, got None")
        if torch.is_tensor(context) and context.dim() == 1:
            context = context.expand(batch, -1)
        check_input(context, self.context, self._dtype(), "context", self.base.loc.device, True)
        if context.shape[0] != batch:
            raise ValueError(
                f"context has batch size {context.shape[0]} but {batch} points were given"
            )
        return context

    def log_prob(self, x, context=None):
        """log p(x) for data ``x`` (batch, D) -> (batch,): one pass of ``forward``.

        Raises ValueError for NaN in ``x``, NaN or inf in ``context``; rows of ``x`` with an
        infinite entry get -inf, and so do rows whose log-density underflows (below -sqrt(largest
        float)) or is NaN beyond sqrt(largest float / D), far from the support; all are left out
        of the pass that gives the result (see the class doc).
        """
        self._check_values()
        check_input(x, self.features, self._dtype(), device=self.base.loc.device)
        context = self.check_context(context, x.shape[0])
        keep = ~torch.isinf(x).any(-1)
        log_p = self._log_prob_of_rows(x, context, keep)
        # log p below -sqrt(largest float) is -inf: exp of it is 0 in every dtype, and its gradient
        # (~ z * dz, z ~ 1e10 in float32) overflows to inf, then inf * 0 = NaN in other rows' grads
        root = math.sqrt(torch.finfo(x.dtype).max)
        if (log_p >= -root).all():  # the usual case: no row lost (a NaN fails >= and looks on)
            return log_p
        lost = keep & (log_p < -root)
        # a row with a coordinate beyond sqrt(largest float / D), where its squared norm can
        # overflow, is far from the support: where its arithmetic overflows to NaN, p is 0 too
        lost |= keep & log_p.isnan() & (x.abs().amax(-1) > root / math.sqrt(self.features))
        if lost.any():  # so again without them, and -inf for them
            log_p = self._log_prob_of_rows(x, context, keep & ~lost)
        return log_p

    def _log_prob_of_rows(self, x, context, keep):
        """log p of the rows ``keep`` of x, computed without the others, which get -inf."""
        if keep.all():
            return self._log_prob(x, context)
        log_p = x.new_full(keep.shape, -math.inf)
        log_p[keep] = self._log_prob(x[keep], None if context is None else context[keep])
        return log_p

    def _log_prob(self, x, context):
        # BEGIN SOLUTION common.change_of_variables
        # map x to noise with self.transform (data -> noise); log p(x) = log N(z) + log|det
        # dz/dx|.
        z, ladj = self.transform(x, context)
        return self.base.log_prob(z) + ladj  # change of variables: log N(z) + log|det dz/dx|
        # END SOLUTION

    def rsample_and_log_prob(self, n, context=None):
        """Reparameterised samples (n, D) and their log-density (n,): one pass of ``inverse``.

        ``n`` is an integer >= 0; it may be None when ``context`` is a (batch, C) tensor.
        """
        if n is None and torch.is_tensor(context) and context.dim() == 2:
            n = context.shape[0]
        self._check_values()
        check_integer("the number of samples n", n, 0)
        context = self.check_context(context, n)
        # BEGIN SOLUTION common.change_of_variables
        # draw n points z from self.base, map them with self.transform.inverse (noise ->
        # data); log p(x) = log N(z) - log|det dx/dz|.
        z = self.base.rsample(n)
        x, ladj = self.transform.inverse(z, context)
        return x, self.base.log_prob(z) - ladj  # log p(x) = log N(z) - log|det dx/dz|
        # END SOLUTION

    def rsample(self, n, context=None):
        """Reparameterised samples (n, D): gradients reach the parameters through them."""
        return self.rsample_and_log_prob(n, context)[0]

    @torch.no_grad()
    def sample(self, n, context=None):
        """``n`` samples (n, D) without gradients."""
        return self.rsample(n, context)
