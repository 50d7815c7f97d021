"""Inverse Autoregressive Flow (Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling, NeurIPS
2016).

arXiv:1606.04934. The paper's step (its Algorithm 1, the numerically stable form), in the *sampling*
direction:

    [m, s] = AutoregressiveNN(z, h);  sigma = sigmoid(s);  z' = sigma * z + (1 - sigma) * m
    log|det dz'/dz| = sum_i log sigma_i

Because m_i and sigma_i depend only on z_{<i}, all D outputs come from ONE network pass, and the
log-density of the samples drawn this way is known for free. Undoing the step (the density of a new
point) must recover z_1, z_2, ... one after another: D passes.

Direction, under the repository's contract (``forward`` = data -> noise, ``inverse`` = noise ->
data): ``GatedAutoregressive.forward`` is the one-pass map above. Used as it is, that makes the
layer a MAF (Papamakarios et al. 2017): density in one pass, sampling in D. IAF is the *same* layer
run the other way: ``IAF`` wraps the chain of steps in ``Inverse``, so the flow's ``inverse``
(sampling) is the one pass and its ``forward`` (density) the D-pass recursion.
"""

import torch
import torch.nn.functional as F
from torch import nn

from common.flows import Compose, Flow, Inverse, Transform, check_builder_args
from common.nets import MADE
from common.train import recorded


class DiagonalAffine(Transform):
    """The start of Algorithm 1: z_0 = mu_0 + sigma_0 * eps, an elementwise affine map.

    ``forward(eps) -> (z_0, sum log sigma_0)`` is the sampling step (one pass, like every layer
    here); ``inverse`` undoes it. In the paper mu_0 and sigma_0 come from the encoder; here they are
    free parameters, plus a linear function of the context h when ``context > 0``. Shapes: x (batch,
    D), context (batch, C); ladj (batch,).
    """

    def __init__(self, features, context=0):
        super().__init__()
        self.shift_and_log_scale = nn.Parameter(torch.zeros(2 * features))  # starts as the identity
        self.net = nn.Linear(context, 2 * features) if context else None

    def _params(self, x, context):
        p = self.shift_and_log_scale.expand(x.shape[0], -1)
        if self.net is not None:
            p = p + self.net(context)  # mu_0, log sigma_0 as functions of h (the encoder's role)
        return p.chunk(2, dim=-1)  # (batch, D) each

    def forward(self, x, context=None):
        mu, log_sigma = self._params(x, context)
        return mu + log_sigma.exp() * x, log_sigma.sum(-1)  # Alg. 1: z <- sigma * eps + mu

    def inverse(self, z, context=None):
        mu, log_sigma = self._params(z, context)
        return (z - mu) * torch.exp(-log_sigma), -log_sigma.sum(-1)


class GatedAutoregressive(Transform):
    """One IAF step (Alg. 1): z' = sigma * z + (1 - sigma) * m, [m, s] = MADE(z, h), sigma =
    sigmoid(s).

    ``forward(z, context) -> (z', sum log sigma)``: ONE MADE pass. Read alone under the contract
    this is data -> noise, i.e. a MAF layer; IAF uses it wrapped in ``Inverse``, where it is the
    sampling step. ``inverse(z', context) -> (z, -sum log sigma)``: D MADE passes, one more variable
    fixed each time. ``order`` is MADE's autoregressive order; IAF reverses it between steps.
    Shapes: z (batch, D), context (batch, C); ladj (batch,).
    """

    def __init__(self, features, hidden_features=(64, 64), context=0, order=None, gate_bias=2.0):
        super().__init__()
        self.features = features
        self.made = MADE(
            features, 2, hidden_features, context, order
        )  # Alg. 1: h enters every AutoregressiveNN
        # Forget-gate initialisation (the paper's "LSTM-type update", bias +1 or +2): a positive
        # bias on s puts sigma = sigmoid(s) near 1 (sigmoid(2) = 0.88), so z' ~ z and each step
        # starts close to the identity. Gradients then flow through the chain of steps as through an
        # LSTM's cell state, and deep stacks train stably from the start instead of being scrambled
        # by random shifts m.
        with torch.no_grad():
            self.made.net[-1].bias.view(features, 2)[:, 1] += gate_bias

    def gate(self, z, context=None):
        """(m, s), each (batch, D): the shift and the gate's pre-activation of every variable, one MADE pass."""
        return self.made(z, context).unbind(-1)  # Alg. 1: [m, s] <- AutoregressiveNN[t](z, h)

    def forward(self, z, context=None):
        # BEGIN SOLUTION iaf.step
        # (m, s) = self.gate(z, context), sigma = sigmoid(s), z' = sigma z + (1 - sigma) m
        # (Alg. 1); the log-det is sum_i log sigma_i (F.logsigmoid is the stable form).
        m, s = self.gate(z, context)
        sigma = torch.sigmoid(s)  # Alg. 1: sigma <- sigmoid(s)
        z = sigma * z + (1 - sigma) * m  # Alg. 1: z <- sigma * z + (1 - sigma) * m
        return z, F.logsigmoid(s).sum(
            -1
        )  # Alg. 1: l <- l - sum(log sigma), i.e. ladj = sum log sigma
        # END SOLUTION

    def inverse(self, y, context=None):
        # BEGIN SOLUTION iaf.step
        # solve z' = sigma z + (1 - sigma) m for z one variable at a time, in the order
        # self.made.order, calling self.gate on the z solved so far (D passes).
        z = torch.zeros_like(y)
        for i in torch.argsort(self.made.order).tolist():  # variables in the autoregressive order
            m, s = self.gate(
                z, context
            )  # exact for variable i: it sees only the already-solved z_{<i}
            z = z.clone()
            z[:, i] = (y[:, i] - (1 - torch.sigmoid(s[:, i])) * m[:, i]) / torch.sigmoid(
                s[:, i]
            )  # Alg. 1 solved
        return z, -F.logsigmoid(s).sum(-1)  # the last pass saw every z_{<i}, so all gates are exact
        # END SOLUTION


@recorded  # the model remembers this builder and its arguments (checkpoints)
def IAF(features, transforms=5, hidden_features=(64, 64), context=0, gate_bias=2.0):
    """An inverse autoregressive flow on R^features: eps ~ N(0, I), z_0 = mu_0 + sigma_0 eps, then
    ``transforms`` gated steps with the variable order reversed between them (Algorithm 1).

    ``rsample_and_log_prob`` costs one MADE pass per step; ``log_prob`` of a new point costs D per
    step. ``context`` is the size of h, fed to every step. Returns a ``common.flows.Flow``.
    """
    check_builder_args(features, transforms, hidden_features, context)
    forward_order, reversed_order = list(range(features)), list(range(features))[::-1]
    steps = [
        DiagonalAffine(features, context)
    ]  # Alg. 1: z <- sigma * eps + mu (the encoder's Gaussian)
    for t in range(transforms):  # Alg. 1: for t = 1..T; the order is reversed between steps
        order = forward_order if t % 2 == 0 else reversed_order
        steps.append(GatedAutoregressive(features, hidden_features, context, order, gate_bias))
    # The chain eps -> z_0 -> z_1 -> ... -> z_T is Compose(*steps).forward, one pass per step. The
    # contract wants noise -> data in ``inverse``, so the flow is that chain wrapped in Inverse: a
    # MAF run backwards.
    return Flow(Inverse(Compose(*steps)), features=features, context=context)
