"""Numbers measured against their ceiling: NLL gap to the exact entropy, reverse KL with log Z,
bits/dim, and the parameter count every demo prints."""

import math

import torch


@torch.no_grad()
def _mean_and_stderr(values):
    values = values.double()
    return values.mean().item(), (values.std() / math.sqrt(values.numel())).item()


@torch.no_grad()
def dataset_nll(flow, x, context=None, batch_size=10_000):
    """Mean negative log-likelihood (nats) of the rows of ``x`` and its standard error."""
    flow.eval()
    param = next(flow.parameters())
    parts = [
        flow.log_prob(
            x[i : i + batch_size].to(param),
            None if context is None else context[i : i + batch_size],
        )
        for i in range(0, x.shape[0], batch_size)
    ]
    return _mean_and_stderr(-torch.cat(parts))


@torch.no_grad()
def nll_gap(flow, target, n=100_000, batch_size=10_000):
    """Test NLL on ``n`` fresh target samples minus the target's exact entropy (nats).

    The gap is KL(p || q) >= 0 estimated without bias: NLL = E_p[-log q] = H(p) + KL(p || q).
    """
    nll, stderr = dataset_nll(flow, target.sample(n), batch_size=batch_size)
    entropy, entropy_err = target.entropy()
    return {
        "nll": nll,
        "stderr": math.hypot(stderr, entropy_err),
        "entropy": entropy,
        "gap": nll - entropy,
    }


@torch.no_grad()
def reverse_kl(flow, energy, n=100_000, batch_size=10_000, context=None):
    """KL(q || p) = E_q[log q(x) + U(x)] + log Z, with log Z from quadrature (nats) and its
    standard error."""
    flow.eval()
    parts = []
    for i in range(0, n, batch_size):
        x, log_q = flow.rsample_and_log_prob(min(batch_size, n - i), context)
        parts.append(log_q + energy.energy(x))
    free_energy, stderr = _mean_and_stderr(torch.cat(parts))
    log_z = energy.log_z()
    return {"kl": free_energy + log_z, "stderr": stderr, "log_z": log_z, "n": n}


def bits_per_dim(nll_nats, dims=64, levels=17):
    """Bits per dimension of discrete data with ``levels`` values, from the NLL (nats) of its
    dequantised version scaled to [0, 1]: -log P(k) <= -log p(x) + D log(levels), so bits/dim = (NLL
    + D log L) / (D log 2).
    """
    return (nll_nats + dims * math.log(levels)) / (dims * math.log(2))


def count_parameters(model):
    """Number of trainable parameters (masked-out MADE weights included, as every library stores
    them)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
