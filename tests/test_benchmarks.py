"""The cross-paper benchmark: its report turns results into tables; its equal-size claims hold."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.__main__ import QUICK, main
from benchmarks.models import density_model, digits_models, match_width, parameters, vi_models
from benchmarks.report import load, readme_tables, save, spread, write_report

ROOT = Path(__file__).resolve().parent.parent


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


def _vi_record(seed, kl):
    return {
        "section": "vi",
        "seed": seed,
        "params": 10,
        "energy": "U1",
        "model": "planar K=2",
        "library": "ours",
        "kl": kl,
        "log_z": 1.8775,
        "ms_per_step": 1.0,
    }


@pytest.fixture
def committed(tmp_path, monkeypatch):
    """A results folder holding 3 vi records and 1 cost record, with the report stubbed out (no
    figures) and the vi section replaced by ``sections["vi"]``: a fake that yields records."""
    import benchmarks.__main__ as bench

    records = [_vi_record(s, 0.5) for s in range(3)]
    records.append({"section": "cost", "seed": 0, "family": "MAF", "library": "ours"})
    old = {"config": {"vi": {"seeds": [0, 1, 2], "quick": False}}, "records": records}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(old, indent=1))
    monkeypatch.setattr(bench, "report", lambda results, out: "")
    return path


def _section(records, then=None):
    def run(config, seeds, log, keep):
        for record in records:
            log(record, "a record")
            yield record
        if then is not None:
            raise then

    return run


def test_a_stopped_benchmark_leaves_the_results_file_as_it_was(committed, monkeypatch, capsys):
    """Issue 25, item 5: Ctrl-C after some records of the chosen sections used to leave only those
    in the file (528 records -> 3). The file is replaced only by a complete run; the stopped run's
    records are in results.partial.json beside it."""
    from benchmarks.tasks import SECTIONS
    from common.cli import run

    before = committed.read_bytes()
    new = [_vi_record(0, 0.1), _vi_record(1, 0.2)]
    monkeypatch.setitem(SECTIONS, "vi", _section(new, KeyboardInterrupt()))
    with pytest.raises(SystemExit) as info:
        run(main, ["--only", "vi", "--out", str(committed.parent)])
    err = capsys.readouterr().err
    assert info.value.code == 130 and "Traceback" not in err
    assert committed.read_bytes() == before
    partial = committed.parent / "results.partial.json"
    assert f"{committed} is as it was; this run's 2 records are in {partial}" in err
    assert load(partial)["records"] == new
    assert sorted(p.name for p in committed.parent.iterdir()) == [
        "results.json",
        "results.partial.json",
    ]

    # a complete run replaces the vi records, keeps the cost record, drops the partial file
    monkeypatch.setitem(SECTIONS, "vi", _section(new))
    main(["--only", "vi", "--out", str(committed.parent)])
    after = load(committed)
    assert [r["section"] for r in after["records"]] == ["cost", "vi", "vi"]
    assert after["records"][1:] == new and not partial.exists()


def test_a_benchmark_stopped_before_its_first_record_says_so(committed, monkeypatch, capsys):
    from benchmarks.tasks import SECTIONS
    from common.cli import run

    before = committed.read_bytes()
    monkeypatch.setitem(SECTIONS, "vi", _section([], KeyboardInterrupt()))
    with pytest.raises(SystemExit):
        run(main, ["--only", "vi", "--out", str(committed.parent)])
    assert "is as it was; no record was complete" in capsys.readouterr().err
    assert committed.read_bytes() == before
    assert [p.name for p in committed.parent.iterdir()] == ["results.json"]


def test_ctrl_c_during_a_save_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    """A Ctrl-C between writing the new text and renaming it used to leave results.json.tmp."""
    import benchmarks.report as report

    path = tmp_path / "results.json"
    save({"config": {}, "records": [1]}, str(path))
    before = path.read_bytes()

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(report.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save({"config": {}, "records": []}, str(path))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_benchmark_killed_by_a_real_sigint_keeps_the_committed_file(committed):
    """The same with a real signal, in a subprocess, while a section is computing."""
    script = f"""
import sys, time
import benchmarks.__main__ as bench
from benchmarks.tasks import SECTIONS
from common.cli import run
bench.report = lambda results, out: ""
def slow(config, seeds, log, keep):
    record = {_vi_record(0, 0.1)!r}
    log(record, "first record")
    yield record
    log(record, "saved")  # the run has saved the record beside the file
    time.sleep(60)
    yield record
SECTIONS["vi"] = slow
run(bench.main, ["--only", "vi", "--out", {str(committed.parent)!r}])
"""
    before = committed.read_bytes()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", script], stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        assert "first record" in process.stderr.readline()
        assert "saved" in process.stderr.readline()
        process.send_signal(signal.SIGINT)
        err = process.stderr.read()
        assert process.wait(timeout=60) == 130, err
    finally:
        process.kill()
    assert "Traceback" not in err and "is as it was; this run's 1 records are in" in err, err
    assert committed.read_bytes() == before
    assert len(load(committed.parent / "results.partial.json")["records"]) == 1


def test_an_empty_out_is_an_argparse_error(tmp_path, monkeypatch, capsys):
    """--out '' used to fall back to the committed folder and run there."""
    import benchmarks.__main__ as bench
    from benchmarks.tasks import SECTIONS

    def never(*args):
        raise AssertionError("the benchmark ran")

    monkeypatch.setattr(bench, "RESULTS", str(tmp_path / "committed"))
    for name in list(SECTIONS):
        monkeypatch.setitem(SECTIONS, name, never)
    for out in ("", " "):
        with pytest.raises(SystemExit) as info:
            main(["--out", out])
        assert info.value.code == 2 and "--out" in capsys.readouterr().err
    assert not (tmp_path / "committed").exists()
