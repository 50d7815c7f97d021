"""Every model the benchmark trains, this repository's and the peers', built at equal architecture.

A builder takes the number of features D and returns a module with this repository's ``Flow``
interface (``log_prob(x)``, ``rsample_and_log_prob(n)``, ``sample(n)``), so that ``common.train``
and ``common.metrics`` train and score every library alike. Peers are wrapped in ``PeerFlow``.

Architectures (the peers' reference sizes, the same for every library), ReLU conditioners and a
N(0, I) base everywhere:

* MAF: 5 affine autoregressive transforms, MADE 2 x 64, order reversed between transforms;
* NSF-AR: 5 autoregressive rational-quadratic transforms, 8 bins, linear tails, bound 5,
  MADE 2 x 64;
* NSF-C: 5 rational-quadratic couplings, 8 bins, bound 5, MLP 2 x 64, halves swapped between
  couplings;
* coupling (Real NVP): 8 affine couplings, alternating masks, MLP 2 x 64 per coupling;
* "MAF, NSF-AR size" (ours only): MAF with MADEs widened to NSF-AR's parameter count, so that the
  spline-against-affine comparison of the NSF paper is made at equal size.

nflows' and normflows' MADE take ``num_blocks=1, use_residual_blocks=False`` (input layer, one
hidden block, output layer: 2 hidden layers of 64, the same weights as a MADE 2 x 64).
"""

import importlib

import torch
from torch import nn

from common.flows import Flow, Inverse, Logit
from common.metrics import count_parameters
from iaf import IAF
from maf import MAF
from nsf import NSF
from planar_flows import PlanarFlow
from realnvp import RealNVP

HIDDEN = (64, 64)
PEERS = ("zuko", "nflows", "normflows")
WIDE_MAF = "MAF, NSF-AR size"  # 5 x MADE 2 x h, h chosen for NSF-AR's parameter count


parameters = count_parameters  # the name the benchmark code uses


def available(library):
    """True when ``library`` ("ours" or a peer) can be imported."""
    if library == "ours":
        return True
    try:
        importlib.import_module(library)
    except ImportError:
        return False
    return True


def match_width(build, target, widths=range(1, 1025)):
    """(h, count): the width h whose ``build(h)`` has the parameter count closest to ``target``."""
    best = None
    for h in widths:
        count = parameters(build(h))
        if best is None or abs(count - target) < abs(best[1] - target):
            best = (h, count)
        if count > target:
            break  # counts grow with h
    return best


class PeerFlow(nn.Module):
    """A peer library's flow behind this repository's interface. ``logit``: a ``common.flows.Logit``
    applied first (its Jacobian counted), for image data in [0, 1]."""

    def __init__(self, library, module, logit=None):
        super().__init__()
        self.library, self.module, self.logit = library, module, logit

    def log_prob(self, x, context=None):
        ladj = 0.0
        if self.logit is not None:
            x, ladj = self.logit(x)
        if self.library == "zuko":
            # zuko flows are lazy: calling one gives the distribution
            return self.module().log_prob(x) + ladj
        return self.module.log_prob(x) + ladj  # nflows and normflows alike

    def rsample_and_log_prob(self, n, context=None):
        if self.logit is not None:
            raise ValueError("sampling through the logit is not needed by the benchmark")
        if self.library == "zuko":
            return self.module().rsample_and_log_prob((n,))
        if self.library == "nflows":
            x, log_q = self.module.sample_and_log_prob(n)
            return x, log_q
        return self.module.sample(n)  # normflows: reparameterised samples and their log q

    def rsample(self, n, context=None):
        return self.rsample_and_log_prob(n)[0]

    @torch.no_grad()
    def sample(self, n, context=None):
        return self.rsample(n)


# ------------------------------------------------------------------------------------------------
# this repo
def ours(family, features, hidden=HIDDEN, **options):
    """This repository's model of ``family`` on R^features; ``options`` go to the paper's builder
    (``actnorm=True`` for NSF, ``step="affine"`` for IAF)."""
    if family == "MAF":
        return MAF(features, transforms=5, hidden_features=hidden, **options)
    if family in ("NSF-AR", "NSF-C"):
        coupling = family == "NSF-C"
        return NSF(features, 5, hidden, bins=8, bound=5.0, coupling=coupling, **options)
    if family == "coupling":
        return RealNVP(features, transforms=8, hidden_features=hidden, **options)
    if family == "IAF":
        return IAF(features, transforms=5, hidden_features=hidden, **options)
    if family == WIDE_MAF:  # the affine autoregressive flow at the size of NSF-AR
        width, _ = match_width(
            lambda h: MAF(features, 5, (h, h)), parameters(ours("NSF-AR", features))
        )
        return MAF(features, transforms=5, hidden_features=(width, width))
    raise ValueError(f"unknown family {family!r}")


def inverted(flow):
    """The flow run backwards, so that sampling takes its one-pass direction (for reverse KL)."""
    return Flow(Inverse(flow.transform), features=flow.features)


# ------------------------------------------------------------------------------------------------
# peers
def zuko_flow(family, features, hidden):
    import zuko

    if family == "MAF":
        return zuko.flows.MAF(features, transforms=5, hidden_features=hidden)
    if family == "NSF-AR":
        return zuko.flows.NSF(features, transforms=5, hidden_features=hidden, bins=8)
    if family == "NSF-C":
        return zuko.flows.NSF(features, transforms=5, hidden_features=hidden, bins=8, passes=2)
    if family == "coupling":
        return zuko.flows.RealNVP(features, transforms=8, hidden_features=hidden)
    return None


def zuko_inverted(family, features=2, hidden=HIDDEN):
    """zuko's ``family`` flow run backwards, so that sampling takes its one-pass direction."""
    import zuko

    flow = zuko_flow(family, features, hidden)
    return zuko.flows.Flow(flow.transform.inv, flow.base)


class _ConditionerMLP(nn.Sequential):
    """An MLP in -> hidden -> out with ReLU that accepts (and ignores) nflows' context argument."""

    def __init__(self, in_features, out_features, hidden):
        sizes = (in_features, *hidden)
        super().__init__(
            *[
                m
                for a, b in zip(sizes, sizes[1:], strict=False)
                for m in (nn.Linear(a, b), nn.ReLU())
            ],
            nn.Linear(sizes[-1], out_features),
        )

    def forward(self, x, context=None):
        return super().forward(x)


def _nflows_mlp(hidden):
    return lambda in_features, out_features: _ConditionerMLP(in_features, out_features, hidden)


def _alternating_mask(features, t):
    return ((torch.arange(features) + t) % 2 == 0).int() * 2 - 1  # nflows: +1 transformed, -1 kept


def _nflows(family, features, hidden):
    from nflows import distributions, flows, transforms

    made = dict(hidden_features=hidden[0], num_blocks=len(hidden) - 1, use_residual_blocks=False)
    layers = []
    for t in range(8 if family == "coupling" else 5):
        if family == "MAF":
            layers.append(transforms.MaskedAffineAutoregressiveTransform(features, **made))
        elif family == "NSF-AR":
            layers.append(
                transforms.MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
                    features, num_bins=8, tails="linear", tail_bound=5.0, **made
                )
            )
        elif family == "NSF-C":
            layers.append(
                transforms.PiecewiseRationalQuadraticCouplingTransform(
                    _alternating_mask(features, t),
                    _nflows_mlp(hidden),
                    num_bins=8,
                    tails="linear",
                    tail_bound=5.0,
                )
            )
        elif family == "coupling":
            layers.append(
                transforms.AffineCouplingTransform(
                    _alternating_mask(features, t), _nflows_mlp(hidden)
                )
            )
        else:
            return None
        if family in ("MAF", "NSF-AR"):
            layers.append(transforms.ReversePermutation(features))
    return flows.Flow(
        transforms.CompositeTransform(layers), distributions.StandardNormal([features])
    )


def _normflows(family, features, hidden):
    import normflows as nf
    from normflows.flows.neural_spline.autoregressive import (
        MaskedPiecewiseRationalQuadraticAutoregressive,
    )

    made = dict(num_blocks=len(hidden) - 1, use_residual_blocks=False)
    layers = []
    for _ in range(8 if family == "coupling" else 5):
        if family == "MAF":
            layers.append(nf.flows.MaskedAffineAutoregressive(features, hidden[0], **made))
        elif family == "NSF-AR":
            spline = nf.flows.AutoregressiveRationalQuadraticSpline(
                features, 1, hidden[0], tail_bound=5
            )
            # normflows' wrapper always uses residual blocks; its own inner class takes the plain
            # MADE 2 x 64
            spline.mprqat = MaskedPiecewiseRationalQuadraticAutoregressive(
                features,
                hidden[0],
                num_bins=8,
                tails="linear",
                tail_bound=5.0,
                activation=nn.ReLU(),
                **made,
            )
            layers.append(spline)
        elif family == "coupling":
            kept = features // 2
            net = nf.nets.MLP([kept, *hidden, 2 * (features - kept)])
            layers.append(nf.flows.AffineCouplingBlock(net))
        else:
            return None  # NSF-C: normflows' coupling spline only takes a residual conditioner
        layers.append(nf.flows.Permute(features, mode="swap"))
    return nf.NormalizingFlow(nf.distributions.DiagGaussian(features, trainable=False), layers)


def peer(library, family, features, hidden=HIDDEN):
    """The peer ``library``'s model of ``family`` wrapped in ``PeerFlow``; None if it has none."""
    build = {"zuko": zuko_flow, "nflows": _nflows, "normflows": _normflows}[library]
    module = build(family, features, hidden)
    return None if module is None else PeerFlow(library, module)


def density_model(library, family, features):
    """A forward-KL model, this repository's (``library="ours"``) or a peer's; None if none."""
    return ours(family, features) if library == "ours" else peer(library, family, features)


# ------------------------------------------------------------------------------------------------
# VI models
def vi_models(planar_layers=32):
    """Reverse-KL models on R^2 by label: (library, builder). The IAF "equal parameters" variant has
    the parameter count of the planar flow (issue 5: IAF beside planar flows of about the same
    size)."""
    width, _ = match_width(lambda h: IAF(2, transforms=5, hidden_features=(h,)), 5 * planar_layers)
    models = {
        f"planar K={planar_layers}": ("ours", lambda: PlanarFlow(2, transforms=planar_layers)),
        f"IAF 5 x MADE 1 x {width} (= planar params)": (
            "ours",
            lambda: IAF(2, 5, hidden_features=(width,)),
        ),
        "IAF 5 x MADE 2 x 64": ("ours", lambda: ours("IAF", 2)),
        "IAF 5 x MADE 2 x 64, general step (Eq. 10)": (
            "ours",
            lambda: ours("IAF", 2, step="affine"),
        ),
        "inverted NSF-AR": ("ours", lambda: inverted(ours("NSF-AR", 2))),
    }
    if available("zuko"):
        models["zuko inverted MAF (IAF)"] = ("zuko", lambda: PeerFlow("zuko", zuko_inverted("MAF")))
        models["zuko inverted NSF-AR"] = (
            "zuko",
            lambda: PeerFlow("zuko", zuko_inverted("NSF-AR")),
        )
    if available("normflows"):
        import normflows as nf

        models[f"normflows planar K={planar_layers}"] = (
            "normflows",
            lambda: PeerFlow(
                "normflows",
                nf.NormalizingFlow(
                    nf.distributions.DiagGaussian(2, trainable=False),
                    [nf.flows.Planar((2,)) for _ in range(planar_layers)],
                ),
            ),
        )
    return models


# ------------------------------------------------------------------------------------------------
# digits
def digits_models(hidden=128, nsf_hidden=None):
    """8x8 digits (64-D, Logit(0.05) first): MAF with batch norm beside a Real NVP with batch norm
    whose MLP width is chosen for about the same parameter count (issue 4, the MAF paper's Table 1),
    MAF without batch norm beside zuko's MAF at equal architecture, and (with ``nsf_hidden``) both
    NSF variants beside zuko's.
    Returns {label: (library, builder)}."""

    def with_logit(flow):
        return Flow([Logit(0.05), flow.transform], features=64)

    maf_params = parameters(MAF(64, 5, (hidden, hidden), batch_norm=True))
    width, _ = match_width(lambda h: RealNVP(64, 5, (h, h), batch_norm=True), maf_params)
    models = {
        f"MAF 5 x MADE 2 x {hidden}, batch norm": (
            "ours",
            lambda: with_logit(MAF(64, 5, (hidden, hidden), batch_norm=True)),
        ),
        f"RealNVP 5 x MLP 2 x {width}, batch norm (= MAF params)": (
            "ours",
            lambda: with_logit(RealNVP(64, 5, (width, width), batch_norm=True)),
        ),
        f"MAF 5 x MADE 2 x {hidden}": ("ours", lambda: with_logit(MAF(64, 5, (hidden, hidden)))),
    }
    if available("zuko"):
        models[f"zuko MAF 5 x MADE 2 x {hidden}"] = (
            "zuko",
            lambda: PeerFlow("zuko", zuko_flow("MAF", 64, (hidden, hidden)), logit=Logit(0.05)),
        )
    if nsf_hidden:
        h = (nsf_hidden, nsf_hidden)
        for family, coupling in (("NSF-AR", False), ("NSF-C", True)):
            models[f"{family} 5 x 8 bins, 2 x {nsf_hidden}"] = (
                "ours",
                lambda coupling=coupling: with_logit(NSF(64, 5, h, coupling=coupling)),
            )
            if available("zuko"):
                models[f"zuko {family} 5 x 8 bins, 2 x {nsf_hidden}"] = (
                    "zuko",
                    lambda family=family: PeerFlow(
                        "zuko", zuko_flow(family, 64, h), logit=Logit(0.05)
                    ),
                )
    return models
