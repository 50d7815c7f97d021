"""Fit at equal architecture and budget (issue 17): where this repository's flows trailed the best
peer, measure ours before a fix, ours after it, and the peer, in one loop, on one thread.

    python -m benchmarks.fit                        # every item, seeds 0 1 2 (tens of minutes)
    python -m benchmarks.fit --only planar --seeds 0 # one item, one seed
    python -m benchmarks.fit --only iaf --steps 100  # override the item's number of steps
    python -m benchmarks.fit --report               # the tables from the results file only
    python -m benchmarks.fit --import-benchmark --report  # first copy the benchmark's same runs

Items (each a list of models of equal architecture, parameter counts printed):

* planar: reverse KL, planar K = 32, 2000 steps, batch 256, Adam 1e-3, on U1-U4 and the sine energy.
  "start near identity" is the initialisation the repository used (w ~ N(0, 1/D), u = 0.1 N(0,
  1/D)), "uniform u and w" the fix (u ~ U(-sqrt 2, sqrt 2), w ~ U(-sqrt(2/D), sqrt(2/D)), the
  ranges normflows uses, now ``Planar``'s own start), "u ~ N(0, I)" a start that was tried; b = 0
  in all. Each is set here explicitly, so a row means the same thing before and after the fix.
  Peer: normflows' planar flow (its diagonal Gaussian base trainable, 164 parameters, as in
  normflows' own examples, and fixed, 160); ours with that trainable base too (164).
* iaf: reverse KL, IAF 5 x MADE 2 x 64, 400 steps (the budget of ``python -m benchmarks``), gated
  step (Eq. 14) and general step (Eq. 10, ``IAF(..., step="affine")``), beside zuko's
  MAF run backwards.
* nsf: forward KL on checker, rings and gauss8, NSF-AR 5 x 8 bins, MADE 2 x 64, B = 5, 1500 steps,
  batch 512: ours (the paper's softplus slopes, soft-bounded raw parameters, every output layer at
  ``nsf.OUTPUT_SCALE`` = 0.1 of PyTorch's default start), the same with other starts (PyTorch's
  default output layer, ``DEFAULT_OUTPUT``: the repository's start before issue 17, and nflows'
  NSF-AR's; ``SplineStart``: slopes starting at 1, ``SLOPE_SHIFT``, zuko's start and the
  repository's between commits f217744 and 0b7c94c; widths and heights / sqrt(hidden); with the
  output layer x 0.1 or x 0 and slopes 1, near or at the identity), zuko's and nflows' NSF-AR.
  nflows divides by sqrt(hidden) only when its conditioner has a ``hidden_features`` attribute (its
  ResidualNet, in coupling layers); its MADE has none. The records of the other starts were taken
  with the code of their time and are marked with its commit in their "source"; their builders
  here give the same starts (to float rounding) from today's nsf.
* nsf-vi: reverse KL, inverted NSF-AR at 400 steps (the benchmark's), ours and the other starts
  beside zuko's (ours and zuko's: the runs of ``python -m benchmarks --only vi``).
* nsf-digits: the digits as in ``made``, NSF-AR 5 x 8 bins, MADE 2 x 64, ours and the other starts
  beside zuko's (ours and zuko's: the runs of ``python -m benchmarks --only digits``).
* made: forward KL on the 8x8 digits, MAF 5 x MADE 2 x 128 without batch norm, 600 steps, batch 128
  (the budget of ``python -m benchmarks``): ours (Eq. 4), the shift after the scale, zuko's form of
  the layer (``ZukoAffine``), and zuko's MAF.
* bound: forward KL on ``wide10``, a 10-D Gaussian mixture whose coordinates reach +-20 (defined
  below), NSF-AR 5 x 8 bins, MADE 2 x 64, B = 5, 2000 steps, batch 512; ours without and with an
  ActNorm first layer (``common.layers.ActNorm``), beside zuko's and nflows' NSF.

Results go to benchmarks/results/fit.json (a record per model, task and seed, saved after every
record; records already there are kept and not re-run unless --fresh) and fit.md (mean +- sd over
seeds), which is also written into benchmarks/README.md between its markers when --out is the
default. A model whose library (or, in an older checkout, whose fix) is missing is skipped with a
message.
"""

import inspect
import math
import os
import sys
import time

import torch
from torch import nn

from common.data import dequantize, load_digits_split
from common.flows import Flow
from common.layers import Logit
from common.metrics import bits_per_dim, dataset_nll, nll_gap, reverse_kl
from common.runtime import seed_everything
from common.targets import get_target
from common.train import NonFiniteLoss, train_forward_kl, train_reverse_kl
from iaf import IAF
from maf import MAF
from maf.maf import MAFLayer
from nsf.nsf import DERIVATIVE_BOUND, MIN_DERIVATIVE, OUTPUT_SCALE
from planar_flows import PlanarFlow
from tools.cli import script_parser

from .models import (
    PeerFlow,
    _nflows,
    available,
    inverted,
    ours,
    parameters,
    zuko_flow,
    zuko_inverted,
)
from .report import fmt, load, save, update_readme

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
ENERGIES = ("U1", "U2", "U3", "U4", "sine")


# ------------------------------------------------------------------------------------------------
# a 10-D target beyond NSF's bound
class WideMixture:
    """``wide10``: a 10-D mixture of three Gaussians with diagonal, unequal scales, far apart.

    Weights 0.5, 0.3, 0.2; means +15 s, -15 s and 0, with s = (1, -1, 1, -1, ...); standard
    deviations 1.5, 0.5 and 4 in every coordinate. Coordinates reach about +-20 (15 + 3 x 1.5), so
    most of the mass lies outside a spline bound B = 5. ``log_prob`` is exact (a logsumexp over
    the components). The entropy: the components are more than 20 standard deviations apart, so
    up to a term below 1e-20 it is the closed form H(weights) + sum_k w_k H(N_k); ``entropy()``
    returns that and ``entropy_mc(n)`` checks it by Monte Carlo with its standard error.
    """

    name, dim = "wide10", 10

    def __init__(self):
        sign = torch.tensor([(-1.0) ** i for i in range(self.dim)])
        self.means = torch.stack([15 * sign, -15 * sign, torch.zeros(self.dim)])
        self.stds = torch.tensor([1.5, 0.5, 4.0])
        self.weights = torch.tensor([0.5, 0.3, 0.2])

    def sample(self, n, generator=None):
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator)
        return self.means[k] + self.stds[k, None] * noise

    def log_prob(self, x):
        x = x.double()
        means, stds = self.means.double(), self.stds.double()
        z = (x[:, None, :] - means) / stds[:, None]  # (n, K, D)
        log_n = -0.5 * (z**2).sum(-1) - self.dim * (torch.log(stds) + 0.5 * math.log(2 * math.pi))
        return torch.logsumexp(log_n + torch.log(self.weights.double()), dim=-1)

    def entropy(self):
        """(entropy in nats, its error): the closed form for non-overlapping components."""
        w = self.weights.double()
        gauss = self.dim * (torch.log(self.stds.double()) + 0.5 * math.log(2 * math.pi * math.e))
        return (-(w * w.log()).sum() + (w * gauss).sum()).item(), 0.0

    def entropy_mc(self, n=200_000, seed=0):
        """(Monte Carlo entropy, its standard error) from ``n`` samples."""
        values = -self.log_prob(self.sample(n, torch.Generator().manual_seed(seed)))
        return values.mean().item(), (values.std() / math.sqrt(n)).item()


# ------------------------------------------------------------------------------------------------
# planar
class DiagonalNormal(nn.Module):
    """N(loc, diag(exp(log_scale))^2), loc and log_scale trainable (normflows' trainable base)."""

    def __init__(self, features):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(features))
        self.log_scale = nn.Parameter(torch.zeros(features))

    @property
    def features(self):
        return self.loc.shape[0]

    def log_prob(self, z):
        u = (z - self.loc) * torch.exp(-self.log_scale)
        return (-0.5 * u**2 - self.log_scale).sum(-1) - 0.5 * self.features * math.log(2 * math.pi)

    def rsample(self, n):
        eps = torch.randn(n, self.features, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + torch.exp(self.log_scale) * eps


def planar(start, K=32, base="fixed"):
    """Our planar flow with an explicit start, b = 0 in all: "identity" (w ~ N(0, 1/D), u = 0.1 N(0,
    1/D), the repository's initialisation before the fix), "unit" (w ~ N(0, 1/D), u ~ N(0, I),
    tried)
    or "uniform" (u ~ U(-sqrt 2, sqrt 2), w ~ U(-sqrt(2/D), sqrt(2/D)), the fix)."""
    with torch.random.fork_rng():  # the library's own initial draws do not touch the seed's stream
        flow = PlanarFlow(2, transforms=K)
    with torch.no_grad():
        for _ in range(2 * K):  # skip the draws the repository's PlanarFlow made before the fix
            torch.randn(2)  # (w, u per layer), so rows measured then are reproduced exactly
        for layer in flow.transform.transforms:
            layer.w.normal_(0, 1 / math.sqrt(2))
            layer.b.zero_()
            if start == "identity":
                layer.u.normal_(0, 0.1 / math.sqrt(2))
            elif start == "unit":
                layer.u.normal_()
            else:  # "uniform": u ~ U(-sqrt 2, sqrt 2), w ~ U(-sqrt(2 / D), sqrt(2 / D)), normflows'
                layer.u.uniform_(-math.sqrt(2), math.sqrt(2))
                layer.w.uniform_(-1, 1)
    if base == "diagonal":
        flow = Flow(flow.transform, base=DiagonalNormal(2))
    return flow


def normflows_planar(K=32, trainable=True):
    import normflows as nf

    layers = [nf.flows.Planar((2,)) for _ in range(K)]
    base = nf.distributions.DiagGaussian(2, trainable=trainable)
    return PeerFlow("normflows", nf.NormalizingFlow(base, layers))


def planar_models():
    return {
        "ours planar K=32, start near identity (before)": ("ours", lambda: planar("identity")),
        "ours planar K=32, uniform u and w (after)": ("ours", lambda: planar("uniform")),
        "ours planar K=32, u ~ N(0, I) (tried)": ("ours", lambda: planar("unit")),
        "ours planar K=32, uniform u and w, trainable diagonal base": (
            "ours",
            lambda: planar("uniform", base="diagonal"),
        ),
        "normflows planar K=32, trainable base": ("normflows", lambda: normflows_planar()),
        "normflows planar K=32, fixed base": (
            "normflows",
            lambda: normflows_planar(trainable=False),
        ),
    }


# ------------------------------------------------------------------------------------------------
# IAF
def has_argument(function, name):
    return name in inspect.signature(function).parameters


def zuko_inverted_maf():
    return PeerFlow("zuko", zuko_inverted("MAF"))


def iaf_models():
    models = {"ours IAF 5 x MADE 2 x 64, gated step (Eq. 14)": ("ours", lambda: IAF(2))}
    if has_argument(IAF, "step"):
        models["ours IAF 5 x MADE 2 x 64, general step (Eq. 10)"] = (
            "ours",
            lambda: ours("IAF", 2, step="affine"),
        )
    else:
        print("iaf: IAF has no step= argument (issue 17's general step); skipped")
    models["zuko inverted MAF 5 x MADE 2 x 64"] = ("zuko", zuko_inverted_maf)
    return models


# ------------------------------------------------------------------------------------------------
# digits
def with_logit(flow):
    return Flow([Logit(0.05), flow.transform], features=64)


class ScaleThenShift(MAFLayer):
    """MAF's layer with the shift applied after the scale: u = x exp(-alpha) + mu, instead of the
    paper's u = (x - mu) exp(-alpha) (Eq. 4). The same family of maps (mu' = -mu exp(-alpha)), a
    different parametrisation: the gradient reaching mu is not multiplied by exp(-alpha). This is
    the form of zuko's affine layer."""

    def forward(self, x, context=None):
        mu, alpha = self.conditioner(x, context)
        return x * torch.exp(-alpha) + mu, -alpha.sum(-1)

    def inverse(self, u, context=None):
        x = torch.zeros_like(u)
        for _ in range(self.features):
            mu, alpha = self.conditioner(x, context)
            x = (u - mu) * torch.exp(alpha)
        return x, alpha.sum(-1)


class ZukoAffine(ScaleThenShift):
    """zuko's affine layer exactly: u = x exp(alpha) + mu, the sign of alpha flipped against
    ``ScaleThenShift``. With our MADE (whose weights at a seed are zuko's) it is zuko's MAF."""

    def forward(self, x, context=None):
        mu, alpha = self.conditioner(x, context)
        return x * torch.exp(alpha) + mu, alpha.sum(-1)

    def inverse(self, u, context=None):
        x = torch.zeros_like(u)
        for _ in range(self.features):
            mu, alpha = self.conditioner(x, context)
            x = (u - mu) * torch.exp(-alpha)
        return x, -alpha.sum(-1)


def scale_then_shift_maf(features, hidden, layer=ScaleThenShift):
    layers = [
        layer(features, hidden, 0, torch.arange(features).flip(0) if t % 2 else None)
        for t in range(5)
    ]
    return Flow(layers, features=features)


def made_models(hidden=128):
    h = (hidden, hidden)
    return {
        f"ours MAF 5 x MADE 2 x {hidden}": ("ours", lambda: with_logit(MAF(64, 5, h))),
        f"ours MAF 5 x MADE 2 x {hidden}, shift after scale": (
            "ours",
            lambda: with_logit(scale_then_shift_maf(64, h)),
        ),
        f"ours MAF 5 x MADE 2 x {hidden}, zuko's form u = x exp(alpha) + mu": (
            "ours",
            lambda: with_logit(scale_then_shift_maf(64, h, ZukoAffine)),
        ),
        f"zuko MAF 5 x MADE 2 x {hidden}": (
            "zuko",
            lambda: PeerFlow("zuko", zuko_flow("MAF", 64, h), logit=Logit(0.05)),
        ),
    }


# ------------------------------------------------------------------------------------------------
# NSF at equal architecture
class SplineStart(nn.Module):
    """A spline layer's MADE with another start for the same parameters: the raw bin widths and
    heights divided by ``bin_scale`` (nflows' coupling layer divides them by sqrt(hidden features)
    when its conditioner is its ResidualNet, so the first bins are near-uniform),
    ``derivative_offset`` added to the raw interior derivatives (SLOPE_SHIFT: slopes start at 1,
    zuko's start, the repository's for a while in issue 17)."""

    def __init__(self, made, bins, bin_scale=1.0, derivative_offset=0.0):
        super().__init__()
        self.made, self.bins = made, bins
        self.bin_scale, self.derivative_offset = bin_scale, derivative_offset

    def forward(self, x, context=None):
        params = self.made(x, context)  # (batch, D, 3K - 1): widths, heights, derivatives
        widths_heights = params[..., : 2 * self.bins] / self.bin_scale
        return torch.cat(
            [widths_heights, params[..., 2 * self.bins :] + self.derivative_offset], -1
        )


# added to the raw derivatives, a raw 0 is a slope of 1: softplus(soft_bound(SLOPE_SHIFT)) + 1e-3
# = 1 (nsf soft-bounds what the MADE gives, here the shifted value, at +-DERIVATIVE_BOUND)
_SHIFT = math.log(math.expm1(1 - MIN_DERIVATIVE))
SLOPE_SHIFT = _SHIFT / (1 - _SHIFT / DERIVATIVE_BOUND)
# multiplies nsf's output layers back to PyTorch's default start (to float rounding): the starts
# measured before nsf.OUTPUT_SCALE; their records are marked with the commit that took them
DEFAULT_OUTPUT = 1 / OUTPUT_SCALE


def nsf_output_scaled(flow, scale):
    """``flow`` (an NSF-AR) with the last linear layer of every MADE multiplied by ``scale`` (on
    top of nsf's own OUTPUT_SCALE): 0 makes every raw spline parameter 0 at the start (with
    SLOPE_SHIFT, the identity; normflows starts its splines at the identity, Glow zero-initialises
    its last layers), DEFAULT_OUTPUT gives back PyTorch's default output layer."""
    with torch.no_grad():
        for layer in flow.transform.transforms:
            last = [m for m in layer.made.modules() if isinstance(m, nn.Linear)][-1]
            last.weight.mul_(scale)
            last.bias.mul_(scale)
    return flow


def nsf_started(features=2, hidden=64, bin_scale=1.0, derivative_offset=0.0, output=1.0):
    flow = nsf_output_scaled(ours("NSF-AR", features, (hidden, hidden)), output)
    for layer in flow.transform.transforms:
        layer.made = SplineStart(layer.made, 8, bin_scale, derivative_offset)
    return flow


def nsf_scaled_start(features=2, hidden=64, derivative_offset=SLOPE_SHIFT):
    return nsf_started(features, hidden, math.sqrt(hidden), derivative_offset, DEFAULT_OUTPUT)


SLOPES_1 = "slopes 1 at the start (zuko's start; ours at commit 0b7c94c)"
SLOPES_069 = "slopes 0.69 at the start (the paper's softplus of 0; ours before issue 17)"
SMALL_OUT = "output layer x 0.1 and slopes 1 at the start (near the identity)"
ZERO_OUT = "output layer 0 and slopes 1 at the start (the identity)"


def slopes_1(features=2, hidden=64):
    return nsf_started(features, hidden, derivative_offset=SLOPE_SHIFT, output=DEFAULT_OUTPUT)


def slopes_069(features=2, hidden=64):
    return nsf_started(features, hidden, output=DEFAULT_OUTPUT)


def small_out(features=2, hidden=64, scale=1.0):
    return nsf_started(features, hidden, derivative_offset=SLOPE_SHIFT, output=scale)


NSF_START = "(output layer x 0.1, slopes 0.69 at the start)"  # nsf's own start, OUTPUT_SCALE
OURS_NSF = f"ours NSF-AR 5 x 8 bins, MADE 2 x 64 {NSF_START}"
OURS_NSF_DIGITS = f"ours NSF-AR 5 x 8 bins, 2 x 64 {NSF_START}"
OURS_NSF_VI = f"ours inverted NSF-AR 5 x 8 bins, MADE 2 x 64 {NSF_START}"


def nsf_models():
    h = (64, 64)
    return {
        OURS_NSF: ("ours", lambda: ours("NSF-AR", 2)),
        f"ours NSF-AR, {SLOPES_1}": ("ours", slopes_1),
        f"ours NSF-AR, {SLOPES_069}": ("ours", slopes_069),
        f"ours NSF-AR, {SMALL_OUT}": ("ours", small_out),
        f"ours NSF-AR, {ZERO_OUT}": ("ours", lambda: small_out(scale=0.0)),
        "ours NSF-AR, widths and heights / sqrt(64), slopes 1": ("ours", nsf_scaled_start),
        "ours NSF-AR, / sqrt(64) and slopes 0.69 (nflows' ResidualNet start)": (
            "ours",
            lambda: nsf_scaled_start(derivative_offset=0.0),
        ),
        "zuko NSF-AR 5 x 8 bins, MADE 2 x 64": (
            "zuko",
            lambda: PeerFlow("zuko", zuko_flow("NSF-AR", 2, h)),
        ),
        "nflows NSF-AR 5 x 8 bins, MADE 2 x 64, B=5": (
            "nflows",
            lambda: PeerFlow("nflows", _nflows("NSF-AR", 2, h)),
        ),
    }


def nsf_digits_models(hidden=64):
    h = (hidden, hidden)
    mine = f"ours NSF-AR 5 x 8 bins, 2 x {hidden}"
    return {
        f"{mine} {NSF_START}": (
            "ours",
            lambda: with_logit(ours("NSF-AR", 64, h)),
        ),
        f"{mine}, {SLOPES_1}": ("ours", lambda: with_logit(slopes_1(64, hidden))),
        f"{mine}, {SMALL_OUT}": ("ours", lambda: with_logit(small_out(64, hidden))),
        f"{mine}, {ZERO_OUT}": ("ours", lambda: with_logit(small_out(64, hidden, 0.0))),
        f"{mine}, {SLOPES_069}": ("ours", lambda: with_logit(slopes_069(64, hidden))),
        f"zuko NSF-AR 5 x 8 bins, 2 x {hidden}": (
            "zuko",
            lambda: PeerFlow("zuko", zuko_flow("NSF-AR", 64, h), logit=Logit(0.05)),
        ),
    }


def nsf_vi_models():
    return {
        OURS_NSF_VI: (
            "ours",
            lambda: inverted(ours("NSF-AR", 2)),
        ),
        f"ours inverted NSF-AR, {SLOPES_1}": ("ours", lambda: inverted(slopes_1())),
        f"ours inverted NSF-AR, {SMALL_OUT}": ("ours", lambda: inverted(small_out())),
        f"ours inverted NSF-AR, {ZERO_OUT}": ("ours", lambda: inverted(small_out(scale=0.0))),
        f"ours inverted NSF-AR, {SLOPES_069}": ("ours", lambda: inverted(slopes_069())),
        "zuko inverted NSF-AR 5 x 8 bins, MADE 2 x 64": (
            "zuko",
            lambda: PeerFlow("zuko", zuko_inverted("NSF-AR")),
        ),
    }


# ------------------------------------------------------------------------------------------------
# beyond the bound
def bound_models(features=10):
    models = {
        "ours NSF-AR 5 x 8 bins, MADE 2 x 64, B=5": (
            "ours",
            lambda: ours("NSF-AR", features),
        ),
        "ours ActNorm + NSF-AR, B=5": ("ours", lambda: ours("NSF-AR", features, actnorm=True)),
    }
    models["zuko NSF-AR 5 x 8 bins, MADE 2 x 64"] = (
        "zuko",
        lambda: PeerFlow("zuko", zuko_flow("NSF-AR", features, (64, 64))),
    )
    models["nflows NSF-AR 5 x 8 bins, MADE 2 x 64, B=5"] = (
        "nflows",
        lambda: PeerFlow("nflows", _nflows("NSF-AR", features, (64, 64))),
    )
    return models


# ------------------------------------------------------------------------------------------------
# items: (models, tasks, default steps, run(flow, task, steps) -> metrics)
def _reverse(flow, name, steps):
    energy = get_target(name)
    history = train_reverse_kl(flow, energy, steps=steps, batch_size=256, lr=1e-3, progress=False)
    return {"train_seconds": history["seconds"], **reverse_kl(flow, energy, n=100_000)}


def _digits(flow, name, steps):
    split = load_digits_split(0)
    test = dequantize(split["test"], torch.Generator().manual_seed(0))
    history = train_forward_kl(
        flow,
        split["train"],
        steps=steps,
        batch_size=128,
        lr=1e-3,
        val=split["val"],
        preprocess=dequantize,
        progress=False,
    )
    nll, stderr = dataset_nll(flow, test)
    return {
        "train_seconds": history["seconds"],
        "nll": nll,
        "stderr": stderr,
        "bits_per_dim": bits_per_dim(nll),
    }


def _density(flow, name, steps):
    target = get_target(name)
    history = train_forward_kl(flow, target, steps=steps, batch_size=512, lr=1e-3, progress=False)
    return {"train_seconds": history["seconds"], **nll_gap(flow, target, n=100_000)}


WIDE = WideMixture()


def _wide(flow, name, steps):
    history = train_forward_kl(flow, WIDE, steps=steps, batch_size=512, lr=1e-3, progress=False)
    return {"train_seconds": history["seconds"], **nll_gap(flow, WIDE, n=100_000)}


ITEMS = {
    "planar": dict(models=planar_models, tasks=ENERGIES, steps=2000, run=_reverse, metric="kl"),
    "iaf": dict(models=iaf_models, tasks=ENERGIES, steps=400, run=_reverse, metric="kl"),
    "nsf": dict(
        models=nsf_models,
        tasks=("checker", "rings", "gauss8"),
        steps=1500,
        run=_density,
        metric="gap",
    ),
    "made": dict(
        models=made_models, tasks=("digits",), steps=600, run=_digits, metric="bits_per_dim"
    ),
    "nsf-vi": dict(models=nsf_vi_models, tasks=ENERGIES, steps=400, run=_reverse, metric="kl"),
    "nsf-digits": dict(
        models=nsf_digits_models, tasks=("digits",), steps=600, run=_digits, metric="bits_per_dim"
    ),
    "bound": dict(models=bound_models, tasks=("wide10",), steps=2000, run=_wide, metric="gap"),
}


# ------------------------------------------------------------------------------------------------
# the benchmark's records that are the same runs as items here (same builder, loop, budget and
# seed: on U1 the gated IAF gave 3.7319, 3.7822, 3.8678 in both, seeds 0-2)
BENCHMARK_LABELS = {
    ("vi", "IAF 5 x MADE 2 x 64"): ("iaf", "ours IAF 5 x MADE 2 x 64, gated step (Eq. 14)"),
    ("vi", "zuko inverted MAF (IAF)"): ("iaf", "zuko inverted MAF 5 x MADE 2 x 64"),
    ("digits", "MAF 5 x MADE 2 x 128"): ("made", "ours MAF 5 x MADE 2 x 128"),
    ("digits", "zuko MAF 5 x MADE 2 x 128"): ("made", "zuko MAF 5 x MADE 2 x 128"),
    ("vi", "inverted NSF-AR"): ("nsf-vi", OURS_NSF_VI),
    ("vi", "zuko inverted NSF-AR"): ("nsf-vi", "zuko inverted NSF-AR 5 x 8 bins, MADE 2 x 64"),
    ("digits", "NSF-AR 5 x 8 bins, 2 x 64"): ("nsf-digits", OURS_NSF_DIGITS),
    ("digits", "zuko NSF-AR 5 x 8 bins, 2 x 64"): (
        "nsf-digits",
        "zuko NSF-AR 5 x 8 bins, 2 x 64",
    ),
}


def import_benchmark(results, path):
    """Copy the records of ``python -m benchmarks`` (``path``, its results.json) that are runs of
    this file's items, marked with their source; records already here are kept."""
    for r in load(path)["records"]:
        section = r["section"]
        if (section, r.get("model")) not in BENCHMARK_LABELS:
            continue
        item, model = BENCHMARK_LABELS[section, r["model"]]
        task = r["energy"] if section == "vi" else "digits"
        key = dict(item=item, task=task, model=model, seed=r["seed"], steps=r["steps"])
        if any(all(old[k] == v for k, v in key.items()) for old in results["records"]):
            continue
        extra = {k: v for k, v in r.items() if k not in ("section", "energy", "model", "seed")}
        results["records"].append({**key, **extra, "source": "python -m benchmarks"})


METRICS = {
    "kl": "KL(q||p), nats",
    "gap": "test NLL - entropy, nats",
    "bits_per_dim": "bits/dim",
}
README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")
README_BEGIN = (
    "<!-- fit tables: written by python -m benchmarks.fit --report from results/fit.json -->"
)
README_END = "<!-- end of the fit tables -->"


def report(results):
    """One markdown table per item: a row per model (and number of steps, where it is not the
    item's), a column per task, each cell the mean +- sd of the item's metric over the seeds run
    (n given where it is not 3); parameter counts beside each row."""
    lines = []
    for item, spec in ITEMS.items():
        records = [r for r in results["records"] if r["item"] == item]
        if not records:
            continue
        metric = spec["metric"]
        tasks = [t for t in spec["tasks"] if any(r["task"] == t for r in records)]
        order = list(spec["models"]())  # the item's own order of models
        rows = []
        for r in records:
            if (r["model"], r["steps"]) not in rows:
                rows.append((r["model"], r["steps"]))
        rows.sort(key=lambda row: order.index(row[0]) if row[0] in order else len(order))
        lines += [
            f"**{item}** ({METRICS[metric]}, lower is better; {spec['steps']} steps):",
            "",
            "| model | params | " + " | ".join(tasks) + " |",
            "|---|---|" + "---|" * len(tasks),
        ]
        for model, steps in rows:
            mine = [r for r in records if (r["model"], r["steps"]) == (model, steps)]
            cells = []
            for task in tasks:
                done = [r for r in mine if r["task"] == task]
                diverged = sum("diverged" in r for r in done)
                cell = fmt([r.get(metric) for r in done]) if done else "—"
                cell += f" (n={len(done)})" if done and len(done) != 3 else ""
                cells.append(cell + (f" ({diverged} NaN)" if diverged else ""))
            label = model + ("" if steps == spec["steps"] else f", {steps} steps")
            lines.append(f"| {label} | {mine[0]['params']:,} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = script_parser(__doc__, "benchmarks.fit")
    parser.add_argument("--only", nargs="+", choices=list(ITEMS), help="run only these items")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default 0 1 2")
    parser.add_argument("--steps", type=int, help="override every chosen item's number of steps")
    parser.add_argument("--tasks", nargs="+", help="only these tasks (e.g. U4 sine)")
    parser.add_argument("--models", nargs="+", help="only models whose label contains one of these")
    parser.add_argument(
        "--out", default=RESULTS, help="results directory (default benchmarks/results)"
    )
    parser.add_argument("--fresh", action="store_true", help="re-run records already in the file")
    parser.add_argument("--report", action="store_true", help="only write the table from the file")
    parser.add_argument(
        "--import-benchmark",
        action="store_true",
        help="first copy the matching records of benchmarks/results/results.json (same runs)",
    )
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    path = os.path.join(args.out, "fit.json")
    results = load(path)
    if args.import_benchmark:
        import_benchmark(results, os.path.join(RESULTS, "results.json"))
        save(results, path)
    torch.set_num_threads(1)
    start = time.perf_counter()
    for item in [] if args.report else args.only or list(ITEMS):
        spec = ITEMS[item]
        steps = args.steps or spec["steps"]
        for task in spec["tasks"]:
            if args.tasks and task not in args.tasks:
                continue
            for label, (library, build) in spec["models"]().items():
                if args.models and not any(m in label for m in args.models):
                    continue
                if not available(library):
                    print(f"{item}: {library} is not installed; {label} skipped")
                    continue
                for seed in args.seeds:
                    key = dict(item=item, task=task, model=label, seed=seed, steps=steps)
                    old = [r for r in results["records"] if all(r[k] == v for k, v in key.items())]
                    if old and not args.fresh:
                        continue
                    results["records"] = [r for r in results["records"] if r not in old]
                    seed_everything(seed)
                    flow = build()
                    record = dict(**key, library=library, params=parameters(flow))
                    try:
                        record.update(spec["run"](flow, task, steps))
                    except NonFiniteLoss as error:
                        record["diverged"] = str(error)
                    results["records"].append(record)
                    save(results, path)
                    value = record.get(spec["metric"], math.nan)
                    print(
                        f"[{time.perf_counter() - start:5.0f} s] {item} {task} seed {seed} "
                        f"{label} ({record['params']} params): {spec['metric']} {value:.4f}",
                        file=sys.stderr,
                        flush=True,
                    )
    table = report(results)
    with open(os.path.join(args.out, "fit.md"), "w") as f:
        f.write(table)
    if os.path.abspath(args.out) == RESULTS:  # the committed results: the README's tables too
        update_readme(table, README, README_BEGIN, README_END)
    print(table)


if __name__ == "__main__":
    main()
