"""The Jacobian harness every transform layer and pre-built flow in the repository goes through.

Each check runs in float64 on random, non-identity parameters (``perturb``), so a log-determinant
that is off by a constant, a wrong sign or a missing term fails, and so does one with the right
value and no gradient (computed with ``.item()`` or detached), which cannot train.
"""

from fnmatch import fnmatch

import torch
from torch.autograd.functional import jacobian

TOL = 1e-6  # float64: affine layers agree to ~1e-12; iterative inverses (planar, radial) to ~1e-8


def perturb(module, scale=0.5, seed=0):
    """Add noise to every parameter so no layer is an identity map (zero-init last layers are)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def check_transform(layer, features, context=0, batch=5, x=None, tol=TOL, seed=0, unreachable=()):
    """Invertibility both ways, ladj == slogdet of the autograd Jacobian both ways, ladj sums to 0,
    gradients reach every parameter, and ladj's own parameter gradient is right
    (``check_ladj_gradient``: a detached ladj fails). ``layer`` is a Transform in float64 with
    perturbed parameters.

    ``unreachable``: name patterns (``fnmatch``, e.g. ``"*made.net.0.weight"``) of the parameters
    that this input cannot reach by construction (one feature and no context leaves a conditioner
    nothing to see). They must get exactly no gradient, and every other parameter some, so the
    option states a fact about the layer instead of skipping a check.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, features, generator=gen, dtype=torch.float64) if x is None else x
    c = torch.randn(batch, context, generator=gen, dtype=torch.float64) if context else None
    z, ladj_f = layer(x, c)
    x_back, ladj_i = layer.inverse(z, c)
    assert z.shape == x.shape and ladj_f.shape == (batch,) and ladj_i.shape == (batch,)
    assert torch.allclose(x_back, x, atol=tol, rtol=0), (
        f"inverse(forward(x)) != x: {(x_back - x).abs().max():.2e}"
    )
    assert torch.allclose(ladj_f + ladj_i, torch.zeros(batch, dtype=x.dtype), atol=tol), (
        "ladj do not cancel"
    )
    x2, _ = layer.inverse(x, c)  # the other direction, from a fresh point
    z2, _ = layer(x2, c)
    assert torch.allclose(z2, x, atol=tol, rtol=0), (
        f"forward(inverse(z)) != z: {(z2 - x).abs().max():.2e}"
    )
    for direction, fn, inp in (("forward", layer.forward, x), ("inverse", layer.inverse, x)):
        J = torch.stack(
            [
                jacobian(
                    lambda xi, fn=fn, i=i: fn(xi[None], None if c is None else c[i : i + 1])[0][0],
                    xi,
                )
                for i, xi in enumerate(inp)
            ]
        )
        expected = torch.linalg.slogdet(J)[1]
        got = fn(inp, c)[1]
        assert torch.allclose(got, expected, atol=tol, rtol=0), (
            f"{direction} ladj {got.tolist()} != slogdet {expected.tolist()}"
        )
    params = [p for p in layer.parameters() if p.requires_grad]
    if params:
        layer.zero_grad()
        z, ladj_f = layer(x, c)
        (z.square().sum() + ladj_f.sum()).backward()
        names = [name for name, p in layer.named_parameters() if p.requires_grad]
        expected = {name for name in names if any(fnmatch(name, pat) for pat in unreachable)}
        assert expected or not unreachable, f"no parameter matches unreachable={unreachable}"
        reached = {
            name
            for name, p in layer.named_parameters()
            if p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0
        }
        missing = sorted(set(names) - reached - expected)
        assert not missing, f"no gradient reaches {missing}"
        leaked = sorted(reached & expected)
        assert not leaked, f"a gradient reaches {leaked}, declared unreachable"
        check_ladj_gradient(layer, x[:2], None if c is None else c[:2])


def check_ladj_gradient(layer, x, c, h=1e-6, seed=0):
    """For each parameter and both directions, the derivative of sum(ladj) along a random direction
    by autograd equals its central finite difference. The value of ladj is checked against slogdet
    above, so this says that ladj's gradient is the log-det's gradient: a ladj computed with
    ``.item()`` or ``.detach()`` has the right value and no gradient, and such a layer cannot
    train. A parameter the log-det does not depend on (a shift, a volume-preserving layer) gets 0
    both ways. (Differentiating autograd's slogdet instead would need second derivatives, which a
    root finder's implicit gradient does not give exactly.)"""
    gen = torch.Generator().manual_seed(seed)
    buffers = {name: b.clone() for name, b in layer.named_buffers()}  # BatchNorm's running stats
    for name, p in layer.named_parameters():
        if not p.requires_grad:
            continue
        v = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        for direction, fn in (("forward", layer.forward), ("inverse", layer.inverse)):
            ladj = fn(x, c)[1].sum()
            (grad,) = (
                torch.autograd.grad(ladj, p, allow_unused=True) if ladj.requires_grad else (None,)
            )
            by_autograd = 0.0 if grad is None else (grad * v).sum().item()
            kept = p.detach().clone()
            with torch.no_grad():
                p.copy_(kept + h * v)
                up = fn(x, c)[1].sum().item()
                p.copy_(kept - h * v)
                down = fn(x, c)[1].sum().item()
                p.copy_(kept)
            by_difference = (up - down) / (2 * h)  # error ~ h^2 + eps |ladj| / h: 1e-4 is ample
            assert abs(by_autograd - by_difference) <= 1e-4 * (1 + abs(by_difference)), (
                f"{direction}: d sum(ladj) / d {name} is {by_autograd:.8g} by autograd but "
                f"{by_difference:.8g} by finite differences: part of ladj carries no gradient "
                "(.item(), .detach(), a new tensor?), so training cannot change the log-det"
            )
    with torch.no_grad():
        for name, b in layer.named_buffers():
            b.copy_(buffers[name])


def check_flow_normalised(flow, lim=8.0, n=400, context=None, tol=1e-2):
    """exp(log_prob) of a 2-D flow integrates to 1 on a [-lim, lim]^2 grid."""
    t = torch.linspace(-lim, lim, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    grid = torch.stack([xx.flatten(), yy.flatten()], -1)
    ctx = None if context is None else context.expand(grid.shape[0], -1)
    with torch.no_grad():
        mass = flow.log_prob(grid, ctx).exp().sum() * (t[1] - t[0]) ** 2
    assert abs(mass.item() - 1) < tol, f"density integrates to {mass.item():.4f}, not 1"


def count_calls(model, module_type, fn):
    """How many times ``fn()`` runs a ``module_type`` submodule of ``model`` (e.g. MADE passes)."""
    calls = []
    hooks = [
        m.register_forward_hook(lambda *a: calls.append(1))
        for m in model.modules()
        if isinstance(m, module_type)
    ]
    fn()
    for hook in hooks:
        hook.remove()
    return len(calls)


def check_bad_input_raises(flow, features, context):
    """A flow refuses, with a ValueError naming what was expected, a wrong number of features, NaN
    in x, a bad number of samples and (when built with ``context`` > 0) a missing, NaN or
    non-tensor context, both in ``log_prob`` and in ``rsample_and_log_prob``. Rows with an infinite
    coordinate get -inf, and empty batches give empty results."""
    import pytest

    x = torch.randn(4, features)
    c = torch.zeros(4, context) if context else None
    one_c = c[0] if context else None
    with pytest.raises(ValueError, match=f"shape \\(batch, {features}\\)"):
        flow.log_prob(torch.zeros(4, features + 1), c)
    with pytest.raises(ValueError, match="x must not contain NaN"):
        flow.log_prob(torch.cat([x[:3], torch.full((1, features), float("nan"))]), c)
    for n in (-1, 2.5, "3", True):
        with pytest.raises(ValueError, match="n must be an integer >= 0"):
            flow.sample(n, one_c)
    if context:
        with pytest.raises(ValueError, match="context"):
            flow.log_prob(x)
        with pytest.raises(ValueError, match="context"):
            flow.rsample_and_log_prob(4)
        with pytest.raises(ValueError, match="context must not contain NaN"):
            flow.log_prob(x, torch.full((4, context), float("nan")))
        with pytest.raises(ValueError, match="context must be a torch.Tensor"):
            flow.log_prob(x, c.tolist())
    x_inf = x.clone()
    x_inf[1, 0] = float("inf")
    log_p = flow.log_prob(x_inf, c)
    assert log_p[1] == -float("inf") and torch.isfinite(log_p[[0, 2, 3]]).all(), log_p
    assert flow.sample(0, one_c).shape == (0, features)
    empty_c = None if c is None else c[:0]
    assert flow.log_prob(torch.zeros(0, features), empty_c).shape == (0,)
