"""For every graded part, graded alone: the reference scores full, the stub zero, each plausible
wrong implementation in course/wrong/ well under half (below 40 %), and each correct alternative
in course/wrong/right/ full marks.

course/wrong/ holds ``<part>.txt`` (every graded part has one) and ``<part>.<mistake>.txt`` (more
usual mistakes of the same part); course/wrong/right/ holds ``<part>.<name>.txt``, correct answers
that differ from the reference (issue 26). A part name is ``<paper>.<name>``: the first two dotted
pieces of a file's stem.

Slow (each part is a pytest subprocess, several times): opt-in with ``COURSE_WRONG=1`` (.ci/run
sets it). ``COURSE_WRONG_JOBS`` sets how many parts run at once (default 2).
"""

import os
from pathlib import Path

import pytest

from course.assignment import make_assignment
from course.grade import (
    ROOT,
    WEIGHTS,
    code_from_text,
    grade_parts,
    grade_submission,
    load_weights,
    reference_code,
)

SLOW = pytest.mark.skipif(
    os.environ.get("COURSE_WRONG") != "1", reason="slow (~8 min on 2 cores): COURSE_WRONG=1"
)
WEIGHTS_ = load_weights(ROOT / WEIGHTS)
GRADED = [part for part, entry in WEIGHTS_.items() if entry["points"] > 0]
JOBS = int(os.environ.get("COURSE_WRONG_JOBS", "2"))
WRONG = ROOT / "course" / "wrong"


def variants(folder=WRONG):
    """[(part, label, path)] of the ``.txt`` files of ``folder``, sorted; label is the file's stem
    after the part ('' for ``<part>.txt``)."""
    out = []
    for path in sorted(Path(folder).glob("*.txt")):
        pieces = path.stem.split(".")
        out.append((".".join(pieces[:2]), ".".join(pieces[2:]), path))
    return out


def grade_variants(found, weights=WEIGHTS_, jobs=JOBS):
    """Grade every (part, label, path) alone; returns rows in the same order, each with "label".

    Variants run in rounds of at most one per part (a round is one ``grade_parts`` call, so its
    parts share one reference copy and ``jobs`` of them run at once)."""
    rounds, rows = [], {}
    for item in found:
        for batch in rounds:
            if item[0] not in batch:
                batch[item[0]] = item
                break
        else:
            rounds.append({item[0]: item})
    for batch in rounds:
        texts = {part: path.read_text() for part, (_, _, path) in batch.items()}
        graded = grade_parts(
            lambda p, texts=texts: code_from_text(texts[p], ROOT, p),
            weights,
            list(batch),
            jobs=jobs,
        )
        for row, item in zip(graded, batch.values(), strict=True):
            rows[item] = {**row, "label": item[1] or "(the first)", "file": item[2].name}
    return [rows[item] for item in found]


def mistake(path):
    """The mistake a wrong file names on its first line."""
    first = Path(path).read_text().splitlines()[0]
    return first.removeprefix("#").strip().removeprefix("Wrong on purpose:").strip()


def test_every_graded_part_has_a_wrong_implementation_and_every_file_names_a_part():
    found = variants()
    assert sorted(part for part, label, _ in found if not label) == sorted(GRADED)
    right = variants(WRONG / "right")
    assert right, "course/wrong/right/ holds the correct alternatives"
    for part, _, path in found + right:
        assert part in GRADED, f"{path.name}: {part} is not a graded part"
        assert code_from_text(path.read_text(), ROOT, part), path.name
        assert path.read_text().startswith("# "), f"{path.name}: first line names the mistake"


@SLOW
def test_reference_full_stub_zero_wrong_well_under_half_right_full(tmp_path):
    reference = grade_parts(lambda p: reference_code(ROOT, p), WEIGHTS_, GRADED, jobs=JOBS)
    student = tmp_path / "stub"
    make_assignment(student, check=False)
    stub = grade_submission(student, WEIGHTS_, GRADED, jobs=JOBS)
    wrong_rows = grade_variants(variants())
    right_rows = grade_variants(variants(WRONG / "right"))
    lines = ["| part | points | reference | stub |", "|---|---|---|---|"]
    for ref, st in zip(reference, stub, strict=True):
        lines.append(
            f"| `{ref['part']}` | {ref['points']:g} | {ref['earned']:g} | {st['earned']:g} |"
        )
    lines += ["", "| file | points | earned | share | the mistake |", "|---|---|---|---|---|"]
    for row in wrong_rows + right_rows:
        share = row["earned"] / row["points"]
        lines.append(
            f"| `{row['file']}` | {row['points']:g} | {row['earned']:g} | {share:.0%} | "
            f"{mistake(WRONG / row['file']) if (WRONG / row['file']).exists() else 'correct'} |"
        )
    table = "\n".join(lines)
    print(table)
    Path(os.environ.get("COURSE_WRONG_TABLE", tmp_path / "table.md")).write_text(table + "\n")
    for ref, st in zip(reference, stub, strict=True):
        assert ref["earned"] == ref["points"], (ref["part"], ref["note"], table)
        assert st["earned"] == 0, (st["part"], st["note"], table)
    for row in wrong_rows:
        assert row["earned"] < 0.4 * row["points"], (row["file"], table)
    for row in right_rows:
        assert row["earned"] == row["points"], (row["file"], row["note"], table)
