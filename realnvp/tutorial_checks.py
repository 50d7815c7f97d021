"""The checks of the Real NVP notebook's exercises (called by tutorial.py, tested by
tests/test_notebook_checks.py with planted wrong answers). Not part of the paper's core."""

import math

import torch

from common.metrics import bits_per_dim
from tools.exercises import tried


def _maps(D):
    """Maps R^D -> R^D whose Jacobians are full and whose determinants are negative or tiny."""
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(D, D, generator=gen, dtype=torch.float64)
    if torch.linalg.det(A) > 0:
        A = A.flip(0)  # swapping rows flips the sign of the determinant
    v = torch.randn(D, generator=gen, dtype=torch.float64)
    return {
        "x -> A x (det < 0)": (lambda x: A @ x, v),
        "x -> x + tanh(A x) (dense)": (lambda x: x + torch.tanh(A @ x), v),
        "x -> 1e-3 x^3 + A x": (lambda x: 1e-3 * x**3 + A @ x, 2 * v),
    }


def check_autograd_logdet(autograd_logdet, f, x):
    """Exercise 1: ``autograd_logdet(f, x)`` = (J, log|det J|) by autograd, for ``f`` (the
    coupling layer at ``x``) and three other maps with dense Jacobians and negative determinants,
    so that the layer's own log-det, log det (no abs) or a diagonal product fails."""
    cases = {"the coupling layer": (f, x), **_maps(len(x))}
    worst = 0.0
    for number, (name, (fn, point)) in enumerate(cases.items()):
        expected = torch.func.jacrev(fn)(point)
        sign, log_abs = torch.linalg.slogdet(expected)
        answer = autograd_logdet(fn, point)
        if number == 0 and not tried(answer, "autograd_logdet(f, x)", "Exercise 1"):
            return None
        assert isinstance(answer, tuple) and len(answer) == 2, (
            f"{name}: autograd_logdet should return two things, (J, log|det J|), got {answer!r}"
        )
        J, logdet = answer
        assert tuple(J.shape) == tuple(expected.shape), (
            f"{name}: J should be {tuple(expected.shape)}, got {tuple(J.shape)}"
        )
        assert torch.allclose(J, expected, atol=1e-10), (
            f"{name}: your Jacobian differs from autograd's by up to "
            f"{(J - expected).abs().max():.3g}: expected J[i, j] = df_i / dx_j at x"
        )
        logdet = torch.as_tensor(logdet, dtype=torch.float64)
        assert logdet.numel() == 1 and torch.isfinite(logdet) and abs(logdet - log_abs) < 1e-8, (
            f"{name} (det sign {sign.item():+.0f}): your log|det J| = {logdet.flatten().tolist()}, "
            f"expected {log_abs.item():.6f}, the log of the absolute determinant of your J"
        )
        worst = max(worst, abs(logdet - log_abs).item())
    print(
        f"Exercise 1: right on the coupling layer and {len(cases) - 1} dense maps (largest "
        f"log|det| difference {worst:.1e})"
    )


def check_bits_per_dim(my_bits, nll_nats):
    """Exercise 2: ``my_bits`` is bits/dim of 8x8 digits with 17 levels for test NLLs ``nll_nats``
    (nats per image of x in [0, 1]^64), against common.metrics.bits_per_dim (1e-6)."""
    if not tried(my_bits, "my_bits", "Exercise 2"):
        return None
    assert my_bits is not None, "my_bits is not set: write it in the Exercise 2 cell above"
    expected = torch.tensor([bits_per_dim(v.item()) for v in nll_nats], dtype=torch.float64)
    mine = torch.as_tensor(my_bits, dtype=torch.float64)
    assert mine.shape == expected.shape, (
        f"my_bits should have nll_nats's shape {tuple(nll_nats.shape)}, got {tuple(mine.shape)}"
    )
    if not torch.allclose(mine, expected, rtol=0, atol=1e-6):
        nll, log17, log2 = nll_nats.double(), math.log(17), math.log(2)
        usual = [  # the usual slips, named without the formula
            (
                (nll - 64 * log17) / (64 * log2),
                "the correction has the wrong sign: k + u is 17 "
                "times wider per pixel than x, so its density is lower and its NLL higher",
            ),
            (
                nll / (64 * log2),
                "the dequantisation's scaling is missing: the code length is "
                "bounded by the NLL of k + u, not of x in [0, 1]",
            ),
            ((nll + 64 * log17) / 64, "still in nats: a bit is log 2 nats"),
            ((nll + 64 * log17) / log2, "per image, not per dimension: there are 64 pixels"),
            ((nll + log17) / (64 * log2), "the scaling applies once per pixel, 64 times"),
        ]
        hint = next((why for v, why in usual if torch.allclose(mine, v, rtol=0, atol=1e-6)), None)
        raise AssertionError(
            f"your bits/dim {mine.tolist()} differ from common.metrics.bits_per_dim's: "
            + (
                hint
                or "write the NLL of k + u from that of x, then convert nats per image to "
                "bits per pixel"
            )
        )
    error = (mine - expected).abs().max().item()
    print(
        f"Exercise 2: right: NLLs of {nll_nats.tolist()} nats are "
        f"{[round(b, 3) for b in mine.tolist()]} bits/dim (largest difference {error:.0e})"
    )


def check_importance_bits(my_bits, log_p, levels=17):
    """Exercise 3: ``my_bits`` (n,) is, per digit, the K-sample estimate of the discrete code
    length in bits/dim, ``-(log (1/K) sum_j p(x_j) - D log levels) / (D log 2)``, from ``log_p``
    (n, K), log p(x_j) in nats of K dequantisations x_j = (k + u_j) / levels in [0, 1]^D, to 1e-4
    bits/dim."""
    if not tried(my_bits, "my_iw_bits", "Exercise 3"):
        return None
    assert my_bits is not None, "my_iw_bits is not set: write it in the Exercise 3 cell above"
    n, k = log_p.shape
    d = 64  # 8 x 8 pixels

    def bits(log_mean_p):  # nats per image of x in [0, 1]^D -> bits/dim of the integers k
        return (-log_mean_p + d * math.log(levels)) / (d * math.log(2))

    lp = log_p.double()
    lse = torch.logsumexp(lp, 1)
    expected = bits(lse - math.log(k))
    mine = torch.as_tensor(my_bits, dtype=torch.float64).detach().cpu()
    assert mine.shape == expected.shape, (
        f"expected one number per digit, shape {tuple(expected.shape)}, got {tuple(mine.shape)}"
    )
    assert torch.isfinite(mine).all(), (
        f"your bits/dim {mine.tolist()} are not finite: log p reaches {lp.max():.0f} nats, and "
        "exp of more than 88 overflows float32: average the densities without leaving logs"
    )
    wrong = {  # plausible wrong answers and their values here
        "the mean of log p over u (the Jensen bound), not the K-sample estimate": bits(lp.mean(1)),
        "log of the sum of p, without the 1/K": bits(lse),
        "the 1/K counted twice": bits(lse - 2 * math.log(k)),
        "nats per dimension, not bits": expected * math.log(2),
        "no 64 log 17: the density of x in [0, 1], not of k + u": expected - math.log2(levels),
    }
    error = (mine - expected).abs().max().item()
    if error > 1e-4:
        near = [name for name, value in wrong.items() if (mine - value).abs().max() < 1e-3]
        raise AssertionError(
            f"your bits/dim {[round(v, 4) for v in mine.tolist()]} differ from the K-sample "
            f"estimate by up to {error:.3g}"
            + (f"; they match {near[0]}" if near else "")
            + ": expected -log of the mean over the K draws of p, in bits per pixel of the "
            "integer digits"
        )
    print(f"Exercise 3: right (largest difference {error:.1e} bits/dim)")
