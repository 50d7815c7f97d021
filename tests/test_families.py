"""The page comparing the families (intro/families.md): its diagrams are drawn by
``python -m tools.diagrams`` and its table's pass counts are what the layers do."""

import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from tools import diagrams

ROOT = Path(__file__).resolve().parent.parent


def test_diagrams_write_every_png(tmp_path, capsys):
    diagrams.main(["--out", str(tmp_path / "figures")])
    written = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert written == sorted(f"graph_{name}.png" for name in diagrams.DIAGRAMS), written
    for name in written:
        image = matplotlib.image.imread(tmp_path / "figures" / name)
        assert image.shape[1] >= 800 and image.shape[0] >= 400, (name, image.shape)
        assert image.std() > 0.05, f"{name} is blank"
    assert "wrote" in capsys.readouterr().out


def test_diagrams_only_some(tmp_path):
    diagrams.main(["--out", str(tmp_path), "--only", "iaf"])
    assert [p.name for p in tmp_path.iterdir()] == ["graph_iaf.png"]


def test_the_page_shows_every_diagram_shipped():
    page = (ROOT / "intro" / "families.md").read_text()
    for name in diagrams.DIAGRAMS:
        assert f"figures/graph_{name}.png" in page, name
        assert (ROOT / "intro" / "figures" / f"graph_{name}.png").is_file(), name


def test_help_and_bad_arguments(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "tools.diagrams", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and "--out" in run.stdout and "--passes" in run.stdout, run
    file = tmp_path / "a_file"
    file.write_text("")
    for argv in (["--out", str(file)], ["--only", "glow"], ["--passes", "--features", "0"]):
        with pytest.raises(SystemExit) as stop:
            diagrams.main(argv)
        assert stop.value.code == 2, argv
    assert file.read_text() == ""


def test_pass_counts_are_those_of_the_table():
    """One layer on R^5: the conditioner passes of the density (forward) and of sampling
    (inverse), as the page's table states them; planar's density needs its root finder."""
    D = 5
    rows = diagrams.passes(D, n=64)
    got = {name: (density, sampling) for name, density, sampling, _ in rows}
    assert got == {
        "planar": (0, 0),
        "radial": (0, 0),
        "MAF": (1, D),
        "IAF": (D, 1),
        "Real NVP (coupling)": (1, 1),
        "NSF-AR": (1, D),
        "NSF-C": (1, 1),
    }
    steps = {name: s for name, _, _, s in rows}
    assert steps["planar"] >= 1, "planar's density is found by a root finder"
