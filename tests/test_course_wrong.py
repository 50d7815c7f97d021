"""For every graded part, graded alone: the reference scores full, the stub zero, and the part's
plausible wrong implementation (course/wrong/<part>.txt) well under half (below 40 %).

Slow (each part is a pytest subprocess, three times): opt-in with ``COURSE_WRONG=1`` (.ci/run sets
it). ``COURSE_WRONG_JOBS`` sets how many parts run at once (default 2).
"""

import os
from pathlib import Path

import pytest

from course.assignment import MANIFEST, make_assignment
from course.grade import (
    ROOT,
    WEIGHTS,
    grade_parts,
    grade_submission,
    load_weights,
    reference_code,
    wrong_code,
)

if (ROOT / MANIFEST).exists():
    pytest.skip(
        "a student copy: the course tooling is tested in the reference", allow_module_level=True
    )
pytestmark = pytest.mark.skipif(
    os.environ.get("COURSE_WRONG") != "1", reason="slow (~5 min on 2 cores): COURSE_WRONG=1"
)
WEIGHTS_ = load_weights(ROOT / WEIGHTS)
GRADED = [part for part, entry in WEIGHTS_.items() if entry["points"] > 0]
JOBS = int(os.environ.get("COURSE_WRONG_JOBS", "2"))


def test_every_graded_part_has_a_wrong_implementation():
    assert sorted(p.stem for p in (ROOT / "course" / "wrong").glob("*.txt")) == sorted(GRADED)


def test_reference_full_stub_zero_wrong_well_under_half(tmp_path):
    reference = grade_parts(lambda p: reference_code(ROOT, p), WEIGHTS_, GRADED, jobs=JOBS)
    student = tmp_path / "stub"
    make_assignment(student, check=False)
    stub = grade_submission(student, WEIGHTS_, GRADED, jobs=JOBS)
    wrong_rows = grade_parts(lambda p: wrong_code(ROOT, p), WEIGHTS_, GRADED, jobs=JOBS)
    lines = ["| part | points | reference | stub | wrong |", "|---|---|---|---|---|"]
    for ref, st, wr in zip(reference, stub, wrong_rows, strict=True):
        lines.append(
            f"| `{ref['part']}` | {ref['points']:g} | {ref['earned']:g} | "
            f"{st['earned']:g} | {wr['earned']:g} |"
        )
    table = "\n".join(lines)
    print(table)
    Path(os.environ.get("COURSE_WRONG_TABLE", tmp_path / "table.md")).write_text(table + "\n")
    for ref, st, wr in zip(reference, stub, wrong_rows, strict=True):
        assert ref["earned"] == ref["points"], (ref["part"], ref["note"], table)
        assert st["earned"] == 0, (st["part"], st["note"], table)
        assert wr["earned"] < 0.4 * wr["points"], (wr["part"], table)
