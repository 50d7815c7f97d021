"""benchmarks/board.py: equal sizes, one change per variant (undone after), the mirrored board."""

import json
import math

import pytest
import torch

import nsf.nsf as nsf_core
from benchmarks.board import MODELS, VARIANTS, OddBoard, main, patched, zuko_bound
from benchmarks.models import available, parameters
from common.targets import get_target


def test_every_row_has_the_same_parameter_count():
    rows = {**MODELS, **{label: build for label, (build, _) in VARIANTS.items()}}
    counts = {
        label: parameters(build())
        for label, build in rows.items()
        if available(label.split(",")[0])  # "zuko, B = 3" needs zuko
    }
    assert set(counts.values()) == {36_710}, counts


def test_patched_sets_nsf_globals_inside_and_restores_them_after():
    params = torch.randn(3, 23)
    before = nsf_core.knots(params)
    with patched({"MIN_WIDTH": 1e-6, "knots": "exp"}):
        assert nsf_core.MIN_WIDTH == 1e-6
        xk, yk, d = nsf_core.knots(params)
        # zuko's slopes: exp of the soft-bounded raw derivative
        raw = params[..., 16:]
        assert torch.allclose(d[..., 1:-1], (raw / (1 + raw.abs() / -math.log(1e-3))).exp())
    assert nsf_core.MIN_WIDTH == 1e-3
    after = nsf_core.knots(params)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_the_mirrored_board_is_uniform_on_the_other_eight_cells():
    board, even = OddBoard(), get_target("checker")
    x = board.sample(4096, torch.Generator().manual_seed(0))
    assert torch.all(board.log_prob(x) == -math.log(8))
    assert torch.all(even.log_prob(x) == -math.inf)  # not one point on an even cell
    cells = torch.floor(x).long() + 2
    assert len(set(map(tuple, cells.tolist()))) == 8 and torch.all(cells.sum(-1) % 2 == 1)
    assert board.entropy() == (math.log(8), 0.0)


def test_it_runs_and_keeps_its_records(tmp_path, capsys):
    main(
        ["--models", "ours", "ours, B = 3", "--seeds", "0", "--steps", "2", "--out", str(tmp_path)]
    )
    records = json.loads((tmp_path / "board.json").read_text())["records"]
    assert [r["model"] for r in records] == ["ours", "ours, B = 3"]
    assert all(math.isfinite(r["gap"]) and r["params"] == 36_710 for r in records)
    assert nsf_core.MIN_WIDTH == 1e-3  # no variant left its change behind
    assert "| ours, B = 3, 2 steps | 36,710 |" in capsys.readouterr().out


def test_unknown_rows_and_targets_are_refused_before_any_work(tmp_path):
    for argv in (["--models", "ours, B = 4"], ["--targets", "chequer"]):
        with pytest.raises(SystemExit):
            main([*argv, "--out", str(tmp_path)])
    assert not (tmp_path / "board.json").exists()


@pytest.mark.skipif(not available("zuko"), reason="zuko is not installed")
def test_zuko_with_another_bound_changes_only_the_bound():
    x = torch.tensor([[2.9, 0.5], [3.1, -0.5], [-4.0, 1.0]])
    torch.manual_seed(0)
    default = MODELS["zuko"]()
    torch.manual_seed(0)
    assert torch.equal(zuko_bound(5.0).log_prob(x), default.log_prob(x))  # zuko's own B = 5
    first = zuko_bound(3.0).module.transform.transforms[0]
    y = first(None)(x)
    assert torch.equal(y[1:, 0], x[1:, 0]) and y[0, 0] != x[0, 0]  # identity beyond 3 only


def test_the_readme_table_is_the_results_files():
    """benchmarks/README.md's board table is what ``--report`` makes of results/board.json."""
    from benchmarks.board import README, README_BEGIN, README_END, RESULTS, report
    from benchmarks.report import load, readme_tables

    table = report(load(f"{RESULTS}/board.json"))
    assert readme_tables(README, README_BEGIN, README_END) == table.strip()
    assert "| ours | 36,710 |" in table and "| zuko | 36,710 |" in table
