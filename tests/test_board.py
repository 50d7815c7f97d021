"""benchmarks/board.py: equal sizes, one change per variant (undone after), the mirrored board."""

import json
import math

import torch

import nsf.nsf as nsf_core
from benchmarks.board import MODELS, VARIANTS, OddBoard, main, patched
from benchmarks.models import available, parameters
from common.targets import get_target


def test_every_row_has_the_same_parameter_count():
    rows = {**MODELS, **{k: v for k, (v, _) in VARIANTS.items()}}
    counts = {
        name: parameters(build())
        for name, build in rows.items()
        if name in VARIANTS or available(name)
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
    assert "| ours, B = 3 | 36,710 |" in capsys.readouterr().out
