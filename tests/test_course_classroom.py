"""A class graded in one command (course/classroom.py): three fake students (a folder, a zip, a
folder with the part wrong), one part, one CSV, feedback files, a regrade of that part, and zips
that try to write outside their folder."""

import csv
import json
import shutil
import zipfile

import pytest

from course.assignment import MANIFEST, fill, make_assignment
from course.classroom import grade_class, main, students, unzip
from course.grade import ROOT, WEIGHTS, load_weights, reference_code, wrong_code

if (ROOT / MANIFEST).exists():
    pytest.skip(
        "a student copy: the course tooling is tested in the reference", allow_module_level=True
    )

PART = "realnvp.masks"
FILE = "realnvp/realnvp.py"


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    copy = root / "copy"
    make_assignment(copy, check=False)
    assert not (copy / "course" / "classroom.py").exists()  # instructors' tooling, not shipped
    folder = root / "submissions"
    for student, code in (
        ("alice", reference_code(ROOT, PART)),
        ("bob", wrong_code(ROOT, PART)),
        ("carol", reference_code(ROOT, PART)),
    ):
        (folder / student / "realnvp").mkdir(parents=True)
        shutil.copy(copy / FILE, folder / student / FILE)
        fill(folder / student, PART, code)
    with zipfile.ZipFile(folder / "carol.zip", "w") as zipped:  # carol uploads a zip ...
        zipped.write(folder / "carol" / FILE, f"hw/{FILE}")  # ... with one top folder
    shutil.rmtree(folder / "carol")
    return folder


def test_a_class_grades_to_one_csv_with_feedback_and_regrades_one_part(submissions, tmp_path):
    weights = load_weights(ROOT / WEIGHTS)
    out = tmp_path / "grades"
    assert main([str(submissions), "--out", str(out), "--parts", PART, "--jobs", "2"]) == 0
    with open(out / "grades.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["student"], r["part"]) for r in rows] == [
        (s, PART) for s in ("alice", "bob", "carol")
    ]
    points = {r["student"]: float(r["points"]) for r in rows}
    top = weights[PART]["points"]
    assert points["alice"] == points["carol"] == top and points["bob"] < 0.4 * top
    assert all(float(r["max_points"]) == top and r["total"] == r["points"] for r in rows)
    with open(out / "summary.csv", newline="") as file:
        summary = list(csv.DictReader(file))
    assert [r["student"] for r in summary] == ["alice", "bob", "carol"]
    assert float(summary[1][PART]) == points["bob"] and float(summary[1]["max_total"]) == top
    bob = (out / "feedback" / "bob.md").read_text()
    assert "test_masks" in bob and "details after publication" in bob  # hidden: points only
    recorded = json.loads((out / "results" / "bob.json").read_text())
    assert any(g["hidden"] and g["output"] for g in recorded[0]["groups"])  # the instructor's copy
    assert "assert" not in (out / "feedback" / "alice.md").read_text()
    # bob's fix is accepted (a regrade after a fixed test works the same): only this part again
    fill(submissions / "bob", PART, reference_code(ROOT, PART))
    records = grade_class(submissions, out, weights, [PART], regrade=[PART], progress=False)
    assert records["bob"][0]["earned"] == top
    with open(out / "grades.csv", newline="") as file:
        assert {float(r["points"]) for r in csv.DictReader(file)} == {top}


def test_zips_cannot_write_outside_their_folder_and_bad_input_is_one_line(tmp_path, capsys):
    archive = tmp_path / "mallory.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../escaped.py", "x = 1\n")
        zipped.writestr("/tmp/absolute.py", "x = 1\n")
        zipped.writestr("ok/realnvp.py", "x = 1\n")
    unzip(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.py").exists()
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.py")) == ["realnvp.py"]
    (tmp_path / "mallory").mkdir()
    with pytest.raises(ValueError, match="submitted twice"):
        students(tmp_path)
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert main([str(tmp_path), "--out", str(tmp_path / "o"), "--parts", "no.such"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "Traceback" not in err
