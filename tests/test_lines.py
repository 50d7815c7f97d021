"""tools/lines.py: the README's papers table counts logical lines, physical lines and the share of
prose (comments and docstrings) of each paper's core module, and the counter refuses what is not a
paper folder."""

import subprocess
import sys
from pathlib import Path

from tools.lines import count, logical_lines, physical_lines, prose_share

ROOT = Path(__file__).resolve().parent.parent

# 11 physical lines; 3 logical (the import, the wrapped def, the return); non-blank characters:
# prose 16 (module docstring) + 6 ('# the os') + 22 (f's docstring) + 19 (the comment line) = 63,
# code 8 ('importos') + 7 ('deff(a,') + 3 ('b):') + 9 ('returna+b') = 27, so prose is 63 / 90
SOURCE = '''"""Module doc."""

import os  # the os


def f(a,
      b):
    """F's doc,
    two lines."""
    # a whole-line comment
    return a + b
'''


def test_counts_of_a_known_source(tmp_path):
    assert logical_lines(SOURCE) == 3
    assert physical_lines(SOURCE) == 11
    assert abs(prose_share(SOURCE) - 63 / 90) < 1e-12
    assert prose_share("") == 0.0 and physical_lines("") == 0
    # a string that is not a docstring is code; the files of a folder are counted together
    other = 'x = "not a docstring"  # c\n'
    assert abs(prose_share(other) - 2 / 19) < 1e-12
    (tmp_path / "a.py").write_text(SOURCE)
    (tmp_path / "b.py").write_text(other)
    logical, physical, prose = count(sorted(tmp_path.glob("*.py")))
    assert (logical, physical) == (4, 12) and abs(prose - 65 / 109) < 1e-12


def _lines(*args):
    return subprocess.run(
        [sys.executable, "-m", "tools.lines", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_the_table_has_the_three_columns_and_refuses_unknown_folders():
    table = _lines("maf")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split()[:7] == [
        "paper",
        "logical",
        "lines",
        "physical",
        "lines",
        "prose",
        "files",
    ]
    assert row.split()[0] == "maf" and row.split()[3].endswith("%")
    bad = _lines("nonsense_folder")
    assert bad.returncode == 2 and bad.stdout == ""
    assert "unknown paper folder 'nonsense_folder'" in bad.stderr, bad.stderr
