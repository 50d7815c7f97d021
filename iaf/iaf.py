"""Inverse Autoregressive Flow (Kingma et al., NeurIPS 2016; arXiv:1606.04934).

A step (Alg. 1): [m, s] = AutoregressiveNN(z, h), sigma = sigmoid(s), z' = sigma * z + (1 - sigma)
* m, log|det| = sum_i log sigma_i: m_i, sigma_i see only z_<i, so one pass samples and scores, and
a new point's density takes D. IAF wraps its steps in ``Inverse`` to make that pass (each step's
``forward``) the flow's sampling ``inverse``; MAF is the same construction the other way round.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from common.checks import check_builder_args, check_choice, check_number, recorded
from common.flows import Compose, Flow, Inverse, Transform
from common.layers import autoregressive_inverse, soft_bound
from common.nets import MADE


class DiagonalAffine(Transform):
    """Alg. 1's start, eps -> z_0 = mu_0 + sigma_0 * eps, ladj = sum log sigma_0; x (batch, D), h
    (batch, C); mu_0, log sigma_0 free (the encoder's in the paper), plus a linear map of h."""

    def __init__(self, features, context=0):
        super().__init__()
        self.shift_and_log_scale = nn.Parameter(torch.zeros(2 * features))
        self.net = nn.Linear(context, 2 * features) if context else None

    def _params(self, x, context):
        p = self.shift_and_log_scale.expand(x.shape[0], -1)
        p = p if self.net is None else p + self.net(context)  # mu_0, log sigma_0 as functions of h
        return p.chunk(2, dim=-1)  # (batch, D) each

    def forward(self, x, context=None):
        mu, log_sigma = self._params(x, context)
        return mu + log_sigma.exp() * x, log_sigma.sum(-1)  # Alg. 1: z <- sigma * eps + mu

    def inverse(self, z, context=None):
        mu, log_sigma = self._params(z, context)
        return (z - mu) * torch.exp(-log_sigma), -log_sigma.sum(-1)


class AffineAutoregressive(Transform):
    """The general step (Eq. 10): z' = mu + sigma * z, [mu, log sigma] = MADE(z, h), sigma free.
    ``forward`` (sampling, inside IAF) is one MADE pass, ``inverse`` D. z (batch, D), h (batch, C),
    ladj (batch,) = sum log sigma; ``order``: MADE's.

    >>> step, z = AffineAutoregressive(3, hidden_features=(8,)), torch.randn(4, 3)
    >>> assert torch.allclose(step.inverse(step(z)[0])[0], z, atol=1e-5)  # one pass, then D
    """

    def __init__(self, features, hidden_features=(64, 64), context=0, order=None):
        super().__init__()
        self.features = features
        self.made = MADE(features, 2, hidden_features, context, order)  # Eq. 10: [mu, s] = NN(z, h)

    def mu_and_log_sigma(self, z, context=None):
        """(mu, log sigma), each (batch, D): one MADE pass (input and log sigma bounded, below)."""
        mu, s = self.made(bounded(z), context).unbind(-1)
        return mu, soft_bound(s, LOG_SIGMA_BOUND)

    def forward(self, z, context=None):
        mu, log_sigma = self.mu_and_log_sigma(z, context)
        return mu + log_sigma.exp() * z, log_sigma.sum(-1)  # Eq. 10: z_t = mu_t + sigma_t * z_t-1

    def inverse(self, y, context=None):
        def invert(z):  # Eq. 10 solved for z_t-1, the MADE fed the current guess z
            mu, log_sigma = self.mu_and_log_sigma(z, context)
            return (y - mu) / log_sigma.exp(), -log_sigma.sum(-1)

        return autoregressive_inverse(invert, y, self.features)


class GatedAutoregressive(Transform):
    """The step of Alg. 1 (Eq. 14, LSTM-type): z' = sigma * z + (1 - sigma) * m, [m, s] = MADE(z,
    h), sigma = sigmoid(s) in (0, 1), ladj sum log sigma; the rest as in AffineAutoregressive.

    >>> step, z = GatedAutoregressive(3, hidden_features=(8,)), torch.randn(4, 3)
    >>> assert torch.allclose(step.inverse(step(z)[0])[0], z, atol=1e-5)  # one pass, then D
    """

    def __init__(self, features, hidden_features=(64, 64), context=0, order=None, gate_bias=2.0):
        super().__init__()
        check_number("gate_bias", gate_bias)
        self.features = features
        self.made = MADE(features, 2, hidden_features, context, order)  # Alg. 1: h enters every NN
        # Sec. 4, an LSTM's forget-gate bias: s starts near +gate_bias and sigma near 1, so every
        # step starts close to the identity and a deep stack trains stably from the start.
        with torch.no_grad():
            self.made.net[-1].bias.view(features, 2)[:, 1] += gate_bias

    def gate(self, z, context=None):
        """(m, s), each (batch, D): one MADE pass (its input bounded, below)."""
        return self.made(bounded(z), context).unbind(-1)  # Alg. 1

    def forward(self, z, context=None):
        # BEGIN SOLUTION iaf.step
        # (m, s) = self.gate(z, context), sigma = sigmoid(s), z' = sigma z + (1 - sigma) m
        # (Alg. 1); the log-det is sum_i log sigma_i (F.logsigmoid is the stable form).
        m, s = self.gate(z, context)
        sigma = torch.sigmoid(s)  # Alg. 1
        z = sigma * z + (1 - sigma) * m  # Alg. 1
        return z, F.logsigmoid(s).sum(-1)  # Alg. 1
        # END SOLUTION

    def inverse(self, y, context=None):
        # BEGIN SOLUTION iaf.step
        # autoregressive_inverse, D passes: invert(z) solves z' = sigma z + (1 - sigma) m for z,
        # (m, s) = self.gate(z, context) on the guess z, and returns it with -sum_i log sigma_i;
        # divide by sigma in log space with over_sigma (below), as sigmoid(s) underflows to 0.
        def invert(z):
            m, s = self.gate(z, context)
            log_sigma = F.logsigmoid(s)
            return m + over_sigma(y - m, log_sigma), -log_sigma.sum(-1)  # Alg. 1 solved

        return autoregressive_inverse(invert, y, self.features)
        # END SOLUTION


STEPS = {"gated": GatedAutoregressive, "affine": AffineAutoregressive}


@recorded  # the model remembers this builder and its arguments (checkpoints)
def IAF(features, transforms=5, hidden_features=(64, 64), context=0, gate_bias=2.0, step="gated"):
    """An IAF on R^features (Alg. 1), a ``Flow``: eps ~ N(0, I), z_0 = mu_0 + sigma_0 * eps, then
    ``transforms`` steps, the order reversed between them, h (size ``context``) fed to each; gated
    (Eq. 14, for VAEs; ``gate_bias``) or ``step="affine"`` (Eq. 10, a q that must stretch the base).

    >>> flow = IAF(2, transforms=2, hidden_features=(8,))
    >>> x, log_q = flow.rsample_and_log_prob(3)  # one MADE pass per step
    >>> assert torch.allclose(flow.log_prob(x), log_q, atol=1e-4)  # D passes per step
    """
    check_builder_args(features, transforms, hidden_features, context)
    check_number("gate_bias", gate_bias)
    check_choice("step", step, STEPS)
    gate = {"gate_bias": gate_bias} if step == "gated" else {}
    steps = [DiagonalAffine(features, context)]  # Alg. 1: z <- sigma * eps + mu
    for t in range(transforms):  # Alg. 1: for t = 1..T; the order is reversed between steps
        order = list(range(features))[::-1] if t % 2 else list(range(features))
        steps.append(STEPS[step](features, hidden_features, context, order, **gate))
    # eps -> z_T is the steps' one-pass forward: the sampling direction, so the contract's inverse
    return Flow(Inverse(Compose(*steps)), features=features, context=context)


# ---- not in the paper: guards for points far from the support and for large scales
INPUT_BOUND = 1e15  # on the MADE's input: an inverse gone to +-inf gives -inf, not NaN (inf * 0)
LOG_SIGMA_BOUND = math.log(1000)  # Eq. 10's log sigma, soft-bounded: a step scales at most 1000x


def bounded(z):  # z clamped to +-INPUT_BOUND, or to the dtype's largest float (float16's 65504)
    bound = min(INPUT_BOUND, torch.finfo(z.dtype).max)
    return z.clamp(-bound, bound)


def over_sigma(v, log_sigma):
    """v / sigma = v * exp(-log sigma), and v * inf without a gradient where exp overflows: an entry
    the D-pass inverse has not fixed yet then keeps its zero gradient, not 0 * inf = NaN."""
    overflow = -log_sigma >= math.log(torch.finfo(log_sigma.dtype).max)
    finite = v * torch.exp((-log_sigma).masked_fill(overflow, 0))
    return torch.where(overflow, v.detach() * math.inf, finite)
