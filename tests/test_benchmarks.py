"""The cross-paper benchmark: its report turns results into tables; its equal-size claims hold."""

import os

import pytest
import torch

from benchmarks.__main__ import QUICK, main
from benchmarks.models import density_model, digits_models, match_width, parameters, vi_models
from benchmarks.report import load, readme_tables, spread, write_report


def _record(section, seed, **values):
    return {"section": section, "seed": seed, "params": 100, **values}


def test_report_turns_a_results_file_into_tables(tmp_path):
    records = [
        _record("density", s, target="gauss8", family="MAF", library=lib, gap=gap)
        for s, (a, b) in enumerate([(0.10, 0.30), (0.20, 0.50)])
        for lib, gap in (("ours", a), ("zuko", b))
    ]
    records += [
        _record(
            "cost",
            0,
            family="MAF",
            library=lib,
            features=2,
            ms_per_step=ms,
            sample_s_per_100k=1.0,
            log_prob_s_per_100k=0.5,
        )
        for lib, ms in (("ours", 4.0), ("zuko", 5.0))
    ]
    records += [
        _record(
            "vi",
            0,
            energy="U1",
            model="planar K=2",
            library="ours",
            kl=0.7,
            log_z=1.8775,
            ms_per_step=2.0,
            diverged="loss became nan at step 3",
        )
    ]
    config = {
        "density": {"steps": 5, "n_test": 10, "seeds": [0, 1]},
        "vi": {"steps": 5, "n_test": 10, "seeds": [0]},
        "cost": {"steps": 2, "n": 10, "seeds": [0]},
    }
    markdown = write_report({"config": config, "records": records}, str(tmp_path))
    # mean ± sd over the two seeds
    assert "| MAF | ours | 100 | 0.150 ± 0.071 | 4.00 ± — |" in markdown
    # the goals row: ours / zuko = 4 / 5
    assert "| MAF | gauss8 | 0.150 | 0.400 (zuko) | yes | 0.80 |" in markdown
    assert "0.700 ± — (1/1 NaN)" in markdown  # a diverged run is flagged, not hidden
    assert (tmp_path / "tables.md").read_text() == markdown
    assert all((tmp_path / f"{name}.png").stat().st_size > 0 for name in ("density", "vi", "cost"))


def test_spread_ignores_missing_values():
    assert spread([1.0, None, float("nan"), 3.0])[:2] == (2.0, pytest.approx(2**0.5))
    assert spread([])[2] == 0


def test_equal_parameter_rows_are_equal():
    """The issue-4 and issue-5 rows claim "about the same parameter count": within 3 %."""
    counts = {
        label: parameters(build())
        for label, (_, build) in digits_models(QUICK["digits"]["hidden"]).items()
    }
    maf, realnvp = (
        next(v for k, v in counts.items() if k.startswith(name) and "batch norm" in k)
        for name in ("MAF", "RealNVP")
    )
    assert abs(realnvp - maf) / maf < 0.03
    models = vi_models(QUICK["vi"]["planar_layers"])
    planar, iaf = (
        parameters(build())
        for label, (_, build) in models.items()
        if label.startswith("planar") or "= planar params" in label
    )
    assert abs(iaf - planar) / planar < 0.03
    assert match_width(lambda h: torch.nn.Linear(h, 1), 10) == (9, 10)  # h weights + 1 bias


@pytest.mark.parametrize("library", ["zuko", "nflows", "normflows"])
def test_peers_match_our_autoregressive_flows_exactly(library):
    pytest.importorskip(library)
    for family in ("MAF", "NSF-AR"):
        for features in (2, 5):
            assert parameters(density_model(library, family, features)) == parameters(
                density_model("ours", family, features)
            )


def test_the_readme_tables_are_the_results_files():
    """benchmarks/README.md's tables are what ``python -m benchmarks --report`` makes of the
    committed results/results.json: re-run the report after a benchmark run, never edit by hand."""
    from benchmarks.__main__ import README, RESULTS, load

    results = load(os.path.join(RESULTS, "results.json"))
    assert readme_tables(README) == write_report(results).strip()


def test_some_rows_are_re_run_and_the_others_kept(tmp_path):
    """--models/--libraries re-run only the rows they name: every other record of the section, and
    its recorded budget and time, stay as they were; other seeds than the file's are refused."""

    out = str(tmp_path)
    main(["--quick", "--only", "vi", "--out", out])
    path = os.path.join(out, "results.json")
    before = load(path)
    main(
        ["--quick", "--only", "vi", "--models", "inverted NSF", "--libraries", "ours", "--out", out]
    )
    after = load(path)

    def chosen(r):
        return r["library"] == "ours" and "inverted NSF" in r["model"]

    assert [r for r in after["records"] if not chosen(r)] == [
        r for r in before["records"] if not chosen(r)
    ]
    assert sum(map(chosen, after["records"])) == sum(map(chosen, before["records"])) > 0
    assert after["config"]["vi"] == before["config"]["vi"]
    with pytest.raises(SystemExit):
        main(["--quick", "--only", "vi", "--models", "NSF", "--seeds", "1", "--out", out])
    assert load(path) == after
