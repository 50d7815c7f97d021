"""Fuzz every pre-built flow: log_prob, samples, gradients and round trips on awkward inputs.

    python -m tools.fuzz                # 10,000 inputs per flow and dtype, a markdown table
    python -m tools.fuzz --n 400        # the size tests/test_fuzz.py runs

Each flow is built small (3 features, 2 layers of hidden width 16; planar and radial: 2 features,
4 layers), every parameter perturbed by N(0, SCALE^2) so that no layer is an identity, and put in
evaluation mode. SCALE = 0.1 keeps every conditioner output of order 1 (at 0.3 MAF's log-scales
and IAF's gates already saturate), so what the table measures is the code, not a broken network.
Inputs (``fuzz_inputs``): N(0, 1) points, the same points times 1e3 and 1e6, points with one
coordinate at +-1e3 or +-1e6, zeros, and for NSF the exact bounds +-B and the first layer's knots;
log_prob and its gradients also see as many far inputs (``far_inputs``: 1e3 up to the dtype's
largest float), and every model of ``MODELS`` (batch norm, ActNorm, a context, the image flow).

Columns: non-finite log_prob (-inf is accepted far from the support, never NaN or +inf), +inf and
NaN log_prob, NaN rows of ``sample(n)``, NaN entries of the gradients of ``log_prob`` with respect
to the parameters (summed over the points whose log_prob is finite), the worst round trip
``|inverse(forward(x)) - x| / (1 + |x|)`` (max norm) on N(0, 1) points over every layer and the
whole transform, both directions (tolerance ROUND_TRIP_TOL), and the worst layer residual
``|forward(inverse(z)) - z| / (1 + |z|)``, z = forward(x), over every layer and every fuzz input
(the backward error; tolerance RESIDUAL_TOL).
"""

import argparse
import math
import time

import torch

from common.flows import Compose, Flow, Inverse
from common.layers import Logit
from iaf import IAF
from maf import MAF
from nsf import NSF
from nsf.nsf import knots as nsf_knots
from planar_flows import PlanarFlow
from realnvp import RealNVP
from realnvp.realnvp import RealNVPImage

SCALE = 0.1  # perturbation of every parameter: conditioner outputs stay of order 1
DTYPES = (torch.float32, torch.float64)
# Round-trip tolerances, relative to 1 + |x|: what a well-conditioned layer reaches in each dtype
# (planar and radial layers invert by an iterative or closed-form solve, splines by a root).
ROUND_TRIP_TOL = {torch.float32: 1e-4, torch.float64: 1e-10}
RESIDUAL_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}  # the backward error, any input

FLOWS = {
    "planar": lambda: PlanarFlow(2, transforms=4, kind="planar"),
    "radial": lambda: PlanarFlow(2, transforms=4, kind="radial"),
    "iaf": lambda: IAF(3, transforms=2, hidden_features=(16, 16)),
    "maf": lambda: MAF(3, transforms=2, hidden_features=(16, 16)),
    "maf-bn": lambda: MAF(3, transforms=2, hidden_features=(16, 16), batch_norm=True),
    "nsf-ar": lambda: NSF(3, transforms=2, hidden_features=(16, 16)),
    "nsf-c": lambda: NSF(3, transforms=2, hidden_features=(16, 16), coupling=True),
    "realnvp": lambda: RealNVP(3, transforms=4, hidden_features=(16, 16)),
}
# every other pre-built model: the far inputs (``far_inputs``) go through these too
MODELS = {
    **FLOWS,
    "realnvp-bn": lambda: RealNVP(3, transforms=4, hidden_features=(16, 16), batch_norm=True),
    "nsf-actnorm": lambda: NSF(3, transforms=2, hidden_features=(16, 16), actnorm=True),
    "maf-context": lambda: MAF(3, transforms=2, hidden_features=(16, 16), context=2),
    "realnvp-image": lambda: RealNVPImage((1, 4, 4), scales=2, hidden_channels=8),
}


def build(name, dtype, seed=0, scale=SCALE):
    """The model ``name`` in ``dtype``, every parameter perturbed by N(0, scale^2), in eval mode."""
    torch.manual_seed(seed)
    flow = MODELS[name]().to(dtype)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=torch.float64).to(dtype))
    return flow.eval()


def layers(transform):
    """The layers of a Flow or Transform in data -> noise order, each with forward and inverse."""

    def walk(t, inverted=False):
        if isinstance(t, Inverse):
            return walk(t.transform, not inverted)
        if isinstance(t, Compose):
            parts = [walk(s, inverted) for s in t.transforms]
            return [layer for part in (reversed(parts) if inverted else parts) for layer in part]
        return [Inverse(t) if inverted else t]

    return walk(transform.transform if isinstance(transform, Flow) else transform)


def nsf_knot_inputs(flow, n, gen):
    """Points whose transformed coordinates sit exactly on the first NSF layer's x-knots (or
    bounds): coupling layers take the knots of the MLP's output for a random kept half;
    autoregressive layers fix one variable per MADE pass, in the layer's order."""
    layer = layers(flow)[0]
    bound, dtype = layer.bound, flow.base.loc.dtype
    D = flow.features
    x = torch.randn(n, D, generator=gen, dtype=torch.float64).to(dtype)
    with torch.no_grad():
        if hasattr(layer, "net"):  # SplineCoupling
            d = layer.split
            params = layer.net(x[:, :d]).view(n, D - d, -1)
            knots = nsf_knots(params, bound)[0]  # x-knots (n, D - d, K + 1)
            pick = torch.randint(0, knots.shape[-1], (n, D - d, 1), generator=gen)
            x[:, d:] = knots.gather(-1, pick)[..., 0]
        else:  # SplineAutoregressive
            for i in torch.argsort(layer.made.order).tolist():
                knots = nsf_knots(layer.made(x)[:, i], bound)[0]  # (n, K + 1)
                pick = torch.randint(0, knots.shape[-1], (n, 1), generator=gen)
                x[:, i] = knots.gather(-1, pick)[:, 0]
    return x


def fuzz_inputs(flow, n, seed=0):
    """``n`` inputs (n, D) in the flow's dtype: ordinary, huge, zero and (NSF) knot points."""
    gen = torch.Generator().manual_seed(seed)
    D, dtype = flow.features, flow.base.loc.dtype
    is_nsf = hasattr(layers(flow)[0], "bound")
    parts = 8 if is_nsf else 6
    m = max(n // parts, 1)
    normal = torch.randn(m, D, generator=gen, dtype=torch.float64)
    sign = torch.where(torch.rand(m, D, generator=gen) < 0.5, -1.0, 1.0).to(torch.float64)
    one_big = torch.randn(m, D, generator=gen, dtype=torch.float64)
    col = torch.randint(0, D, (m,), generator=gen)
    one_big[torch.arange(m), col] = sign[:, 0] * torch.where(torch.arange(m) % 2 == 0, 1e3, 1e6)
    chunks = [normal, 1e3 * normal, 1e6 * normal, sign * 1e3, one_big, torch.zeros(m, D)]
    if is_nsf:
        bound = layers(flow)[0].bound
        bounds = sign * bound  # every coordinate exactly at +-B
        mixed = torch.where(torch.rand(m, D, generator=gen) < 0.5, bounds, normal)
        chunks += [bounds, mixed]
    x = torch.cat([c.to(dtype) for c in chunks])
    if is_nsf:
        x = torch.cat([x, nsf_knot_inputs(flow, m, gen)])
    rest = n - x.shape[0]
    if rest > 0:
        x = torch.cat([x, torch.randn(rest, D, generator=gen, dtype=torch.float64).to(dtype)])
    return x[:n]


def far_inputs(flow, n, seed=0):
    """``n`` finite points (n, D) far from the support, in the flow's dtype: magnitudes 10^3 up to
    the dtype's largest float (a tenth of them exactly at it), random signs, on every coordinate or
    on one (the others N(0, 1))."""
    gen = torch.Generator().manual_seed(seed)
    D, dtype = flow.features, flow.base.loc.dtype
    top = math.log10(torch.finfo(dtype).max)
    size = 10 ** (3 + (top - 3) * torch.rand(n, 1, generator=gen, dtype=torch.float64))
    size = torch.where(torch.arange(n)[:, None] % 10 == 0, torch.finfo(dtype).max, size)
    sign = torch.where(torch.rand(n, D, generator=gen) < 0.5, -1.0, 1.0).to(torch.float64)
    x = torch.randn(n, D, generator=gen, dtype=torch.float64)
    every = torch.arange(n)[:, None] % 2 == 0
    one = torch.arange(D) == torch.randint(0, D, (n, 1), generator=gen)
    x = torch.where(every | one, sign * size, x)
    return x.to(dtype).clamp(-torch.finfo(dtype).max, torch.finfo(dtype).max)


def ordinary_inputs(flow, n, seed=0):
    """``n`` points (n, D) where the model has its mass: N(0, 1), or uniform pixels for an image
    model (one that starts with a ``Logit``)."""
    gen = torch.Generator().manual_seed(seed)
    D, dtype = flow.features, flow.base.loc.dtype
    if isinstance(layers(flow)[0], Logit):
        return torch.rand(n, D, generator=gen, dtype=torch.float64).to(dtype)
    return torch.randn(n, D, generator=gen, dtype=torch.float64).to(dtype)


def contexts(flow, n, seed=0):
    """N(0, 1) contexts (n, C) for a flow with a context, else None."""
    if flow.context == 0:
        return None
    gen = torch.Generator().manual_seed(seed + 2)
    return torch.randn(n, flow.context, generator=gen, dtype=torch.float64).to(flow.base.loc.dtype)


def round_trip_error(transform, x, residual=False, context=None):
    """max over points of |inverse(forward(x)) - x| / (1 + |x|) (max norm), over finite outputs,
    and the outputs. With ``residual``, the error is measured where the map sends it instead,
    |forward(inverse(z)) - z| / (1 + |z|) with z = forward(x): the backward error, which stays at
    rounding level where the layer is ill-conditioned (an NSF layer whose conditioner sees 1e3
    can have g' = 1e-7, so x itself cannot come back to better than 1e7 ulps of z)."""
    with torch.no_grad():
        z, _ = transform(x, context)
        ok = torch.isfinite(z).all(-1)
        if not ok.any():
            return 0.0, z
        kept = None if context is None else context[ok]
        back, _ = transform.inverse(z[ok], kept)
        if residual:
            again, _ = transform(back, kept)
            err = (again - z[ok]).abs().amax(-1) / (1 + z[ok].abs().amax(-1))
        else:
            err = (back - x[ok]).abs().amax(-1) / (1 + x[ok].abs().amax(-1))
        err = torch.where(torch.isnan(err), torch.full_like(err, math.inf), err)
    return err.max().item(), z


def fuzz_flow(name, dtype, n, seed=0, scale=SCALE):
    """One row of the table: a dict of counts and the worst round-trip errors. log_prob and its
    gradients see ``n`` fuzz inputs and ``n`` far inputs (with N(0, 1) contexts if the flow has a
    context); the round trips see the fuzz inputs only."""
    flow = build(name, dtype, seed, scale)
    x = fuzz_inputs(flow, n, seed)
    everything = torch.cat([x, far_inputs(flow, n, seed)])
    flow.zero_grad()
    log_prob = flow.log_prob(everything, contexts(flow, 2 * n, seed))
    finite = torch.isfinite(log_prob)
    log_prob[finite].sum().backward()
    grad_nan = sum(int(p.grad.isnan().sum()) for p in flow.parameters() if p.grad is not None)
    with torch.no_grad():
        samples = flow.sample(n, contexts(flow, n, seed))
    ordinary = ordinary_inputs(flow, n, seed + 1)
    context = contexts(flow, n, seed)
    return {
        "flow": name,
        "dtype": str(dtype).replace("torch.", ""),
        "inputs": everything.shape[0],
        "non-finite log_prob": int((~finite).sum()),
        "+inf log_prob": int((log_prob == math.inf).sum()),
        "NaN log_prob": int(log_prob.isnan().sum()),
        "NaN samples": int(samples.isnan().any(-1).sum()),
        "NaN gradient entries": grad_nan,
        "round trip N(0,1)": worst_round_trip(flow, ordinary, context=context),
        "layer residual, all inputs": worst_round_trip(
            flow, x, sampling=False, whole=False, residual=True, context=context
        ),
    }


def worst_round_trip(flow, x, sampling=True, whole=True, residual=False, context=None):
    """The worst round trip over every layer, each on the point it really receives, in the density
    direction from data ``x``; with ``whole``, also over the whole transform; with ``sampling``,
    also from ``x`` read as base noise (inverse, then forward). Far from the origin only the layers
    are meaningful: a chain of well-conditioned float32 layers is not a well-conditioned map at 1e6
    (a small coordinate next to a huge one is lost to rounding). ``context``: (batch, C) or None."""
    worst = 0.0
    for transform in (flow.transform, Inverse(flow.transform)) if sampling else (flow.transform,):
        h = x
        for layer in layers(transform):
            err, h = round_trip_error(layer, h, residual, context)
            worst = max(worst, err)
            h = torch.where(torch.isfinite(h), h, torch.zeros_like(h))
        if whole:
            worst = max(worst, round_trip_error(transform, x, context=context)[0])
    return worst


def table(rows):
    """The rows as a markdown table."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{v:.1e}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tools.fuzz",
        description="Fuzz every pre-built flow (both dtypes) and print a markdown table.",
    )
    parser.add_argument("--n", type=int, default=10_000, help="inputs per flow and dtype")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and inputs")
    parser.add_argument("--scale", type=float, default=SCALE, help="std of the weight perturbation")
    parser.add_argument(
        "--flows", nargs="+", choices=sorted(MODELS), default=list(MODELS), help="flows to fuzz"
    )
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be >= 1, got {args.n}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    if not (math.isfinite(args.scale) and args.scale >= 0):
        parser.error(
            f"--scale must be a finite number >= 0 (a standard deviation), got {args.scale}"
        )
    start, rows = time.perf_counter(), []
    for name in args.flows:
        for dtype in DTYPES:
            rows.append(fuzz_flow(name, dtype, args.n, args.seed, args.scale))
    print(table(rows))
    print(
        f"\n{args.n} inputs per flow and dtype, seed {args.seed}, weights perturbed by "
        f"N(0, {args.scale}^2); round trip = max |inverse(forward(x)) - x| / (1 + |x|) on N(0, 1) "
        f"points over every layer and the whole transform, both directions; layer residual = max "
        f"|forward(inverse(z)) - z| / (1 + |z|), z = forward(x), over every layer and input; "
        f"{time.perf_counter() - start:.1f} s."
    )


if __name__ == "__main__":
    main()
