"""Every bad input of issue 14 and the 41 that were already refused, in one table.

Each case asserts the error type AND that the message names what was expected (a regex), so a
clear message cannot silently turn back into torch's raw error.
"""

import math

import numpy as np
import pytest
import torch

from common.checks import check_builder_args
from common.flows import Flow, Permute
from common.layers import BatchNorm, Logit
from common.nets import MADE
from common.targets import get_target
from common.vae import VAE
from iaf import IAF
from maf import MAF
from nsf import NSF
from planar_flows import PlanarFlow
from realnvp import RealNVP
from realnvp.realnvp import RealNVPImage

FLOWS = {  # every pre-built flow, small; the ones with a context take 2 context features
    "planar": lambda: PlanarFlow(2, transforms=2),
    "radial": lambda: PlanarFlow(2, transforms=2, kind="radial"),
    "iaf": lambda: IAF(2, 2, (8,)),
    "maf": lambda: MAF(2, 2, (8,)),
    "nsf": lambda: NSF(2, 2, (8,)),
    "nsf-c": lambda: NSF(2, 2, (8,), coupling=True),
    "realnvp": lambda: RealNVP(2, 2, (8,)),
}
CONTEXT_FLOWS = {
    "iaf": lambda: IAF(2, 2, (8,), context=2),
    "maf": lambda: MAF(2, 2, (8,), context=2),
    "nsf": lambda: NSF(2, 2, (8,), context=2),
    "realnvp": lambda: RealNVP(2, 2, (8,), context=2),
}


def x2(*shape, dtype=torch.float32):
    return torch.zeros(*shape, dtype=dtype)


def case(name, call, error, match):
    return pytest.param(call, error, match, id=name)


def _flow_cases():
    cases = []
    for name, build in FLOWS.items():
        cases += [
            case(
                f"{name}-x-3-features",
                lambda b=build: b().log_prob(x2(4, 3)),
                ValueError,
                r"shape \(batch, 2\).*\(4, 3\)",
            ),
            case(
                f"{name}-x-1d",
                lambda b=build: b().log_prob(x2(4)),
                ValueError,
                r"shape \(batch, 2\).*\(4,\)",
            ),
            case(
                f"{name}-x-3d",
                lambda b=build: b().log_prob(x2(4, 2, 1)),
                ValueError,
                r"shape \(batch, 2\).*\(4, 2, 1\)",
            ),
            case(
                f"{name}-x-numpy",
                lambda b=build: b().log_prob(np.zeros((4, 2))),
                ValueError,
                r"torch\.Tensor.*ndarray",
            ),
            case(
                f"{name}-x-float64",
                lambda b=build: b().log_prob(x2(4, 2, dtype=torch.float64)),
                ValueError,
                r"float64.*float32",
            ),
            case(
                f"{name}-x-long",
                lambda b=build: b().log_prob(torch.zeros(4, 2, dtype=torch.long)),
                ValueError,
                r"floating",
            ),
            case(
                f"{name}-x-nan",
                lambda b=build: b().eval().log_prob(torch.tensor([[0.0, math.nan]])),
                ValueError,
                r"NaN",
            ),
            case(
                f"{name}-unexpected-context",
                lambda b=build: b().log_prob(x2(4, 2), x2(4, 1)),
                ValueError,
                r"context=0",
            ),
            case(
                f"{name}-sample(-1)",
                lambda b=build: b().eval().sample(-1),
                ValueError,
                r"integer.*got -1",
            ),
            case(
                f"{name}-sample(2.5)",
                lambda b=build: b().eval().sample(2.5),
                ValueError,
                r"integer.*got 2\.5",
            ),
            case(
                f"{name}-sample('3')",
                lambda b=build: b().eval().sample("3"),
                ValueError,
                r"integer.*got '3'",
            ),
            case(
                f"{name}-sample(True)",
                lambda b=build: b().eval().sample(True),
                ValueError,
                r"integer.*got True",
            ),
        ]
    for name in ("maf", "realnvp"):  # a device the flow is not on ("meta" exists on every machine)
        cases.append(
            case(
                f"{name}-x-meta-device",
                lambda b=FLOWS[name]: b().log_prob(torch.zeros(4, 2, device="meta")),
                ValueError,
                r"device.*meta",
            )
        )
    for name, build in CONTEXT_FLOWS.items():
        c = x2(4, 2)
        cases += [
            case(
                f"{name}-missing-context",
                lambda b=build: b().log_prob(x2(4, 2)),
                ValueError,
                r"needs a context of size 2, got None",
            ),
            case(
                f"{name}-missing-context-rsample",
                lambda b=build: b().rsample_and_log_prob(4),
                ValueError,
                r"needs a context of size 2, got None",
            ),
            case(
                f"{name}-context-size",
                lambda b=build: b().log_prob(x2(4, 2), x2(4, 3)),
                ValueError,
                r"context must have shape \(batch, 2\), got \(4, 3\)",
            ),
            case(
                f"{name}-context-batch",
                lambda b=build: b().log_prob(x2(4, 2), x2(3, 2)),
                ValueError,
                r"context has batch size 3 but 4",
            ),
            case(
                f"{name}-context-float64",
                lambda b=build: b().log_prob(x2(4, 2), x2(4, 2, dtype=torch.float64)),
                ValueError,
                r"context has dtype torch\.float64.*float32",
            ),
            case(
                f"{name}-context-numpy",
                lambda b=build: b().log_prob(x2(4, 2), np.zeros((4, 2), np.float32)),
                ValueError,
                r"context.*torch\.Tensor.*ndarray",
            ),
            case(
                f"{name}-context-list",
                lambda b=build, c=c: b().log_prob(x2(4, 2), c.tolist()),
                ValueError,
                r"context.*torch\.Tensor.*list",
            ),
            case(
                f"{name}-x-features-with-context",
                lambda b=build: b().log_prob(x2(4, 3), x2(4, 2)),
                ValueError,
                r"shape \(batch, 2\)",
            ),
        ]
    return cases


def _builder_cases():
    bad = [
        (dict(features=0), r"features must be an integer >= 1, got 0"),
        (dict(features=2.5), r"features must be an integer >= 1, got 2\.5"),
        (dict(features=True), r"features must be an integer >= 1, got True"),
        (dict(features=2, transforms=0), r"transforms must be an integer >= 1, got 0"),
        (dict(features=2, transforms=True), r"transforms must be an integer >= 1, got True"),
        (dict(features=2, context=-1), r"context must be an integer >= 0, got -1"),
        (dict(features=2, hidden_features=()), r"hidden_features must be a non-empty tuple"),
        (dict(features=2, hidden_features=64), r"hidden_features must be a non-empty tuple"),
        (dict(features=2, hidden_features=(64, 0)), r"every hidden_features entry must be"),
    ]
    builders = {"iaf": IAF, "maf": MAF, "nsf": NSF, "realnvp": RealNVP}
    cases = [
        case(
            f"{b}-{'-'.join(f'{k}={v!r}' for k, v in kw.items())}",
            lambda f=builders[b], kw=kw: f(**kw),
            ValueError,
            m,
        )
        for b in builders
        for kw, m in bad
    ]
    cases += [
        case(
            "maf-batch_norm='yes'",
            lambda: MAF(2, batch_norm="yes"),
            ValueError,
            r"batch_norm must be True or False, got 'yes'",
        ),
        case(
            "realnvp-batch_norm=1",
            lambda: RealNVP(2, batch_norm=1),
            ValueError,
            r"batch_norm must be True or False, got 1",
        ),
        case(
            "nsf-coupling='yes'",
            lambda: NSF(2, coupling="yes"),
            ValueError,
            r"coupling must be True or False, got 'yes'",
        ),
        case("nsf-bins=1", lambda: NSF(2, bins=1), ValueError, r"bins must be an integer >= 2"),
        case(
            "nsf-bins=1000",
            lambda: NSF(2, bins=1000),
            ValueError,
            r"bins must be a finite number in \[2, 1000\)",
        ),
        case("nsf-bins=8.0", lambda: NSF(2, bins=8.0), ValueError, r"bins must be an integer"),
        case(
            "nsf-bound=0",
            lambda: NSF(2, bound=0.0),
            ValueError,
            r"bound must be a finite number in \(0, inf\], got 0\.0",
        ),
        case(
            "nsf-bound=-1",
            lambda: NSF(2, bound=-1),
            ValueError,
            r"bound must be a finite number in \(0, inf\], got -1",
        ),
        case(
            "nsf-bound=inf",
            lambda: NSF(2, bound=math.inf),
            ValueError,
            r"bound must be a finite number in \(0, inf\], got inf",
        ),
        case(
            "nsf-bound=nan",
            lambda: NSF(2, bound=math.nan),
            ValueError,
            r"bound must be a finite number in \(0, inf\], got nan",
        ),
        case(
            "iaf-gate_bias='x'",
            lambda: IAF(2, gate_bias="x"),
            ValueError,
            r"gate_bias.*number.*'x'",
        ),
        case(
            "planar-kind",
            lambda: PlanarFlow(2, kind="sylvester"),
            ValueError,
            r"kind must be one of \['planar', 'radial'\], got 'sylvester'",
        ),
        case(
            "planar-kind-list",
            lambda: PlanarFlow(2, kind=["planar"]),
            ValueError,
            r"kind must be one of \['planar', 'radial'\], got \['planar'\]",
        ),
        case(
            "planar-transforms=0",
            lambda: PlanarFlow(2, transforms=0),
            ValueError,
            r"transforms must be an integer >= 1, got 0",
        ),
        case(
            "planar-transforms=True",
            lambda: PlanarFlow(2, transforms=True),
            ValueError,
            r"transforms must be an integer >= 1, got True",
        ),
        case(
            "planar-features=0",
            lambda: PlanarFlow(0),
            ValueError,
            r"features must be an integer >= 1, got 0",
        ),
        case(
            "planar-features=True",
            lambda: PlanarFlow(True),
            ValueError,
            r"features must be an integer >= 1, got True",
        ),
        case(
            "realnvp-image-shape-scales",
            lambda: RealNVPImage((1, 6, 6), scales=3),
            ValueError,
            r"divisible by 2\^\(scales - 1\) = 4",
        ),
        case(
            "realnvp-image-shape-2d",
            lambda: RealNVPImage((8, 8)),
            ValueError,
            r"shape must be \(C, H, W\)",
        ),
        case(
            "realnvp-image-scales=0",
            lambda: RealNVPImage(scales=0),
            ValueError,
            r"scales must be an integer >= 1, got 0",
        ),
        case(
            "realnvp-image-hidden=0",
            lambda: RealNVPImage(hidden_channels=0),
            ValueError,
            r"hidden_channels must be an integer >= 1, got 0",
        ),
        case(
            "realnvp-image-unflattened",
            lambda: RealNVPImage((1, 4, 4)).log_prob(torch.rand(2, 1, 4, 4)),
            ValueError,
            r"shape \(batch, 16\)",
        ),
        case(
            "logit-alpha=0.5",
            lambda: Logit(alpha=0.5),
            ValueError,
            r"alpha.*got 0\.5",
        ),
        case(
            "logit-alpha=-0.1",
            lambda: Logit(alpha=-0.1),
            ValueError,
            r"alpha.*got -0\.1",
        ),
        case(
            "check_builder_args-transforms=2.0",
            lambda: check_builder_args(2, 2.0),
            ValueError,
            r"transforms must be an integer >= 1, got 2\.0",
        ),
        case(
            "made-order",
            lambda: MADE(3, 2, order=[0, 0, 1]),
            ValueError,
            r"order must be a permutation of range\(3\), got \[0, 0, 1\]",
        ),
        case(
            "flow-without-base-or-features",
            lambda: Flow([Permute.reverse(2)]),
            ValueError,
            r"base distribution or the number of features",
        ),
        case(
            "maf-batch-norm-inverse-train",
            lambda: BatchNorm(3).train().inverse(x2(5, 3)),
            RuntimeError,
            r"training mode.*flow\.eval\(\)",
        ),
        case(
            "maf-batch-norm-sample-train",
            lambda: MAF(2, 2, (8,), batch_norm=True).sample(3),
            RuntimeError,
            r"training mode",
        ),
        case(
            "target-unknown",
            lambda: get_target("no-such-target"),
            ValueError,
            r"unknown target 'no-such-target'; expected one of .*U1",
        ),
        case("vae-wrong-data-size", lambda: VAE(64, 4).elbo(torch.zeros(3, 63)), ValueError, r"64"),
        case(
            "vae-context-without-posterior",
            lambda: VAE(64, 4, context_features=3),
            ValueError,
            r"posterior is None",
        ),
        case(
            "vae-latent=0",
            lambda: VAE(64, 0),
            ValueError,
            r"latent_features must be an integer >= 1, got 0",
        ),
    ]
    return cases


CASES = _flow_cases() + _builder_cases()


@pytest.mark.parametrize("call, error, match", CASES)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_the_table_is_complete():
    """The README quotes this count; a case lost in an edit shows up here."""
    assert len(CASES) == 187


@pytest.mark.parametrize("name", CONTEXT_FLOWS)
@pytest.mark.parametrize("value", [math.inf, -math.inf], ids=["+inf", "-inf"])
def test_an_infinite_context_is_refused_like_nan(name, value):
    """Issue 25, item 9: an infinite context gave NaN silently (log_prob and sample); x may still
    hold inf (its row gets -inf)."""
    flow = CONTEXT_FLOWS[name]().eval()
    context = torch.zeros(2, 2)
    context[1, 0] = value
    with pytest.raises(ValueError, match=r"context must be finite, got inf in rows \[1\]"):
        flow.log_prob(torch.zeros(2, 2), context)
    with pytest.raises(ValueError, match=r"context must be finite, got inf in rows \[1\]"):
        flow.sample(2, context)
    x = torch.tensor([[math.inf, 0.0], [0.0, 0.0]])
    assert flow.log_prob(x, torch.zeros(2, 2))[0] == -math.inf


ALL_MODELS = {
    **FLOWS,
    **{f"{name}-context": build for name, build in CONTEXT_FLOWS.items()},
    "maf-bn": lambda: MAF(2, 2, (8,), batch_norm=True),
    "realnvp-bn": lambda: RealNVP(2, 2, (8,), batch_norm=True),
    "nsf-actnorm": lambda: NSF(2, 2, (8,), actnorm=True),
    "realnvp-image": lambda: RealNVPImage((1, 4, 4), 2, 4),
}


@pytest.mark.parametrize("name", ALL_MODELS)
def test_the_meta_device_is_refused_with_one_clear_error(name):
    """Issue 25, item 17: on "meta" (shapes without values) log_prob, sample and
    rsample_and_log_prob failed deep inside (Tensor.item(), nonzero); each is one ValueError."""
    flow = ALL_MODELS[name]().eval().to("meta")
    x = torch.zeros(3, flow.features, device="meta")
    context = torch.zeros(3, flow.context, device="meta") if flow.context else None
    expected = r"flow is on device meta.*no values.*\.to\('cpu'\)"
    for call in (
        lambda: flow.log_prob(x, context),
        lambda: flow.sample(3, context),
        lambda: flow.rsample_and_log_prob(3, context),
    ):
        with pytest.raises(ValueError, match=expected):
            call()
