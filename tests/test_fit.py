"""benchmarks/fit.py: its models are of equal size, its 10-D target is what it claims, it runs."""

import json
import math
import os

import pytest
import torch

from benchmarks.fit import (
    DEFAULT_OUTPUT,
    SLOPE_SHIFT,
    ScaleThenShift,
    SplineStart,
    WideMixture,
    ZukoAffine,
    bound_models,
    iaf_models,
    made_models,
    main,
    nsf_digits_models,
    nsf_models,
    nsf_output_scaled,
    nsf_scaled_start,
    nsf_started,
    planar,
    planar_models,
    slopes_069,
    small_out,
)
from benchmarks.models import available, parameters
from common.flows import Flow
from nsf import NSF
from nsf.nsf import OUTPUT_SCALE, knots
from tests.harness import check_transform, perturb


def _counts(models):
    return {
        label: parameters(build())
        for label, (library, build) in models.items()
        if available(library)
    }


def test_models_compared_in_one_item_have_the_same_parameter_count():
    planar_counts = _counts(planar_models())
    assert set(planar_counts.values()) <= {160, 164}  # 164: normflows' trainable base (4 numbers)
    assert planar_counts["ours planar K=32, uniform u and w (after)"] == 5 * 32
    iaf = _counts(iaf_models())
    ours = {n for label, n in iaf.items() if label.startswith("ours")}
    peers = {n for label, n in iaf.items() if not label.startswith("ours")}
    assert len(ours) == 1 and all(o - p == 4 for o in ours for p in peers)  # our z_0 = mu_0 + s_0 e
    assert len(set(_counts(made_models(hidden=16)).values())) == 1
    assert len(set(_counts(nsf_models()).values())) == 1  # 36,710 for every library's NSF-AR
    assert len(set(_counts(nsf_digits_models(hidden=8)).values())) == 1
    bound = _counts(bound_models())
    plain = {n for label, n in bound.items() if "ActNorm" not in label}
    assert len(plain) == 1
    if "ours ActNorm + NSF-AR, B=5" in bound:
        assert bound["ours ActNorm + NSF-AR, B=5"] == plain.pop() + 2 * 10  # shift and log-scale


def test_the_planar_starts_are_the_documented_ones():
    torch.manual_seed(0)
    flows = {start: planar(start) for start in ("identity", "unit", "uniform")}

    def stacked(flow, name):
        return torch.stack([getattr(layer, name) for layer in flow.transform.transforms])

    assert stacked(flows["identity"], "u").std() < 0.15  # 0.1 N(0, 1/2): near the identity
    assert 0.7 < stacked(flows["unit"], "u").std() < 1.3
    u, w = stacked(flows["uniform"], "u"), stacked(flows["uniform"], "w")
    assert u.abs().max() <= math.sqrt(2) and u.abs().max() > 1.2  # U(-sqrt 2, sqrt 2)
    assert w.abs().max() <= 1 and w.abs().max() > 0.8  # U(-sqrt(2 / D), sqrt(2 / D)), D = 2
    for flow in flows.values():
        assert all(layer.b == 0 for layer in flow.transform.transforms)


@pytest.mark.parametrize("form", [ScaleThenShift, ZukoAffine])
def test_scale_then_shift_is_an_exact_maf_layer(form):
    layer = perturb(form(3, (16, 16), 0, torch.tensor([2, 0, 1])).double())
    check_transform(layer, 3)


def test_bin_scale_divides_only_the_widths_and_heights():
    torch.manual_seed(0)
    flow = nsf_scaled_start()
    layer = flow.transform.transforms[0]
    assert isinstance(layer.made, SplineStart)
    x = torch.randn(7, 2)
    raw, scaled = layer.made.made(x), layer.made(x)  # (7, 2, 3K - 1), K = 8
    assert torch.allclose(scaled[..., :16], raw[..., :16] / 8)  # sqrt(64)
    assert torch.allclose(scaled[..., 16:], raw[..., 16:] + SLOPE_SHIFT)  # slopes start at 1
    check_transform(perturb(layer.double()), 2)  # still an exact spline layer
    shifted = nsf_started(derivative_offset=SLOPE_SHIFT).transform.transforms[0]
    x = torch.randn(7, 2)
    d = shifted.made(x)[..., 16:] - shifted.made.made(x)[..., 16:]
    assert torch.allclose(d, torch.full_like(d, SLOPE_SHIFT))
    # a raw derivative of 0 is a slope of 0.69 (softplus(0) + 1e-3) in nsf, and 1 with the shift
    slopes = knots(torch.zeros(23))[2][1:-1]
    assert slopes.allclose(torch.full((7,), math.log(2) + 1e-3))
    shifted = knots(torch.cat([torch.zeros(16), torch.full((7,), SLOPE_SHIFT)]))[2][1:-1]
    assert shifted.allclose(torch.ones(7), atol=1e-6, rtol=0)  # float32


def test_nsf_starts_its_output_layers_small_and_the_rows_undo_it():
    """nsf multiplies every conditioner's last layer by OUTPUT_SCALE (NSF-AR and NSF-C alike);
    the rows of the starts before it multiply it back to PyTorch's default (same seed, same
    weights to float rounding)."""
    torch.manual_seed(0)
    made = NSF(2).transform.transforms[0].made.net[-1]
    torch.manual_seed(0)
    undone = slopes_069().transform.transforms[0].made.made.net[-1]
    assert torch.allclose(made.weight, OUTPUT_SCALE * undone.weight, atol=0, rtol=1e-6)
    assert undone.weight.abs().max() > 5 * made.weight.abs().max()
    assert undone.weight.abs().max() <= 1 / 8 + 1e-6  # PyTorch's bound 1 / sqrt(fan_in)
    coupling = NSF(4, coupling=True).transform.transforms[0].net[-1]
    assert coupling.weight.abs().max() <= OUTPUT_SCALE / 8 + 1e-7
    assert DEFAULT_OUTPUT * OUTPUT_SCALE == pytest.approx(1.0)


def test_a_zero_output_layer_with_slopes_1_starts_nsf_as_the_identity():
    """With SLOPE_SHIFT, raw parameters of 0 are the identity spline: an NSF-AR whose MADEs end in
    a zero layer maps x to itself with log-det 0, in both directions; without the shift (nsf's
    softplus, slopes 0.69) or with nsf's own x 0.1 it does not."""
    torch.manual_seed(0)
    x = 3 * torch.randn(64, 2, dtype=torch.float64)
    flow = small_out(scale=0.0).double()
    z, ladj = flow.transform(x)
    assert torch.allclose(z, x, atol=1e-12) and ladj.abs().max() < 1e-12
    back, ladj_back = flow.transform.inverse(x)
    assert torch.allclose(back, x, atol=1e-12) and ladj_back.abs().max() < 1e-12
    for other in (small_out(), nsf_output_scaled(NSF(2), 0.0)):
        z, _ = other.double().transform(x)
        assert (z - x).abs().max() > 1e-3


def test_nflows_autoregressive_spline_does_not_scale_its_bins():
    """nflows divides the raw widths and heights by sqrt(hidden) only if its conditioner has a
    ``hidden_features`` attribute; its MADE has none, so its NSF-AR starts as the paper's softplus
    start does (the 0.69 row of the nsf item), not as the / sqrt(hidden) rows."""
    pytest.importorskip("nflows")
    from nflows.transforms.autoregressive import (
        MaskedPiecewiseRationalQuadraticAutoregressiveTransform as Spline,
    )

    from benchmarks.models import _nflows

    layers = [m for m in _nflows("NSF-AR", 2, (64, 64)).modules() if isinstance(m, Spline)]
    assert len(layers) == 5
    assert not any(hasattr(layer.autoregressive_net, "hidden_features") for layer in layers)


def test_wide_mixture_reaches_20_and_its_entropy_is_right():
    target = WideMixture()
    x = target.sample(50_000, torch.Generator().manual_seed(0))
    assert x.abs().max() > 18 and (x.abs() > 5).float().mean() > 0.7  # mostly beyond B = 5
    exact, _ = target.entropy()
    mc, stderr = target.entropy_mc(50_000)
    assert abs(mc - exact) < 4 * stderr
    # log_prob integrates to 1 along a line through one component (a 1-D slice is a Gaussian
    # in its free coordinate, times the constant density of the others at the mean)
    grid = torch.linspace(-40, 40, 80_001, dtype=torch.float64)
    points = target.means[2].double().repeat(grid.numel(), 1)
    points[:, 0] = grid
    slice_mass = torch.exp(target.log_prob(points)).sum() * (grid[1] - grid[0])
    at_mean = 0.2 * (2 * math.pi * 16) ** -4.5  # the other 9 coordinates at their mean
    assert abs(slice_mass.item() / at_mean - 1) < 1e-6


def test_a_short_run_writes_the_results_and_the_table(tmp_path):
    main(
        [
            "--only",
            "planar",
            "--steps",
            "20",
            "--seeds",
            "0",
            "--tasks",
            "sine",
            "--models",
            "after",
            "--out",
            str(tmp_path),
        ]
    )
    records = json.loads((tmp_path / "fit.json").read_text())["records"]
    assert len(records) == 1 and records[0]["params"] == 160 and records[0]["steps"] == 20
    assert math.isfinite(records[0]["kl"]) and records[0]["kl"] > 0
    assert "uniform u and w (after)" in (tmp_path / "fit.md").read_text()


def test_bad_steps_are_refused():
    with pytest.raises(SystemExit):
        main(["--steps", "0"])


def test_our_made_is_zukos_so_the_digits_gap_is_the_layer_form():
    """Same seed: our MADE and zuko's MaskedMLP hold the same weights and masks, and our MAF layer
    written in zuko's form (u = x exp(alpha) + mu) gives zuko's log-density; the paper's form u =
    (x - mu) exp(-alpha) (Eq. 4) is the only difference."""
    zuko = pytest.importorskip("zuko")
    from common.runtime import seed_everything

    seed_everything(0)
    layers = [
        ZukoAffine(6, (16, 16), 0, torch.arange(6).flip(0) if t % 2 else None) for t in range(3)
    ]
    ours = Flow(layers, features=6)
    seed_everything(0)
    theirs = zuko.flows.MAF(6, transforms=3, hidden_features=(16, 16))
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)
    x = 3 * torch.randn(7, 6)
    with torch.no_grad():
        assert torch.allclose(ours.log_prob(x), theirs().log_prob(x), atol=1e-5)


def test_the_readme_tables_are_the_results_files():
    """benchmarks/README.md's fit tables are ``python -m benchmarks.fit --report`` of the committed
    results/fit.json: regenerated, never edited by hand."""
    from benchmarks.fit import README, README_BEGIN, README_END, RESULTS, load, report
    from benchmarks.report import readme_tables

    tables = readme_tables(README, README_BEGIN, README_END)
    assert tables == report(load(os.path.join(RESULTS, "fit.json"))).strip()
