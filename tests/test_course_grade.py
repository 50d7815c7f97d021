"""The instructor's grade: the Gradescope bundle run locally on a student copy, each part graded
alone, the student's tests and weights ignored, hidden tests run, a per-test timeout.

One bundle run (three parts) and one timeout run keep this file near 40 s; the per-part scores of
the reference, the stub and the wrong implementations are checked by tests/test_course_wrong.py
(``COURSE_WRONG=1``, run by .ci/run).
"""

import shutil

import pytest

from course.assignment import MANIFEST, fill, make_assignment
from course.grade import ROOT, WEIGHTS, grade_parts, load_weights, reference_code, wrong_code
from course.gradescope import try_bundle, write_bundle

if (ROOT / MANIFEST).exists():
    pytest.skip(
        "a student copy: the course tooling is tested in the reference", allow_module_level=True
    )

PARTS = ["common.made", "maf.step", "realnvp.masks"]
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def test_the_bundle_grades_each_part_alone_with_the_instructors_tests(tmp_path):
    weights = load_weights(ROOT / WEIGHTS)
    student = tmp_path / "alice"
    make_assignment(student, check=False)
    fill(student, "common.made", wrong_code(ROOT, "common.made"))  # a wrong MADE ...
    fill(student, "maf.step", reference_code(ROOT, "maf.step"))  # ... under a right MAF layer
    fill(student, "realnvp.masks", reference_code(ROOT, "realnvp.masks"))
    # the student "fixes" the tests and the weights: none of it may count
    (student / "tests" / "test_common.py").write_text(
        "def test_made_is_autoregressive():\n    pass\n"
    )
    weights_file = student / "course" / "grading.toml"
    weights_file.write_text(weights_file.read_text().replace("points = 3", "points = 300"))
    shutil.rmtree(student / "tests" / "__pycache__", ignore_errors=True)
    bundle = tmp_path / "autograder.zip"
    names = write_bundle(bundle, PARTS, jobs=2)
    assert {"setup.sh", "run_autograder", "course/grading.toml"} <= set(names)
    assert "course/hidden_tests/test_pins.py" in names and "maf/maf.py" in names
    result, _ = try_bundle(bundle, student)

    assert set(result) >= {"score", "execution_time", "tests"}
    assert isinstance(result["execution_time"], int) and result["execution_time"] >= 0
    for test in result["tests"]:
        assert set(test) >= {"name", "score", "max_score", "output", "visibility"}, test
        assert test["visibility"] in VISIBILITY and 0 <= test["score"] <= test["max_score"] + 1e-9
    assert abs(sum(t["score"] for t in result["tests"]) - result["score"]) < 1e-3
    by_part = {}
    for test in result["tests"]:
        part = test["name"].split(":")[0]
        earned, top = by_part.get(part, (0, 0))
        by_part[part] = (earned + test["score"], top + test["max_score"])
    assert sorted(by_part) == sorted(PARTS)
    for part in PARTS:
        assert abs(by_part[part][1] - weights[part]["points"]) < 1e-3, part
    # the wrong MADE costs maf.step nothing
    assert by_part["maf.step"][0] == pytest.approx(4, abs=1e-3)
    assert by_part["realnvp.masks"][0] == pytest.approx(1, abs=1e-3)
    assert by_part["common.made"][0] < 0.5 * 3  # ... and common.made most of its points
    hidden = [t for t in result["tests"] if "hidden test" in t["name"]]
    assert len(hidden) == 3 and all(t["visibility"] == "after_published" for t in hidden)


def test_an_infinite_loop_costs_its_part_and_times_out(tmp_path):
    weights = load_weights(ROOT / WEIGHTS)
    code = reference_code(ROOT, "realnvp.masks")
    for path, bodies in code.items():
        indent = bodies[0][0][: len(bodies[0][0]) - len(bodies[0][0].lstrip())]
        code[path] = [[f"{indent}while True:", f"{indent}    pass"]] + bodies[1:]
    (row,) = grade_parts(lambda part: code, weights, ["realnvp.masks"], timeout=1.5)
    assert row["earned"] == 0, row
    assert any("timed out after 1.5 s" in group["output"] for group in row["groups"]), row


def test_a_submission_without_its_markers_scores_zero_with_a_reason(tmp_path):
    weights = load_weights(ROOT / WEIGHTS)
    student = tmp_path / "bob"
    (student / "realnvp").mkdir(parents=True)
    (student / "realnvp" / "realnvp.py").write_text("# the markers were deleted\n")
    from course.grade import grade_submission

    rows = grade_submission(student, weights, ["realnvp.masks", "common.made"])
    assert [r["earned"] for r in rows] == [0, 0]
    assert "1 BEGIN YOUR CODE blocks" in rows[0]["note"] or "0 BEGIN YOUR CODE" in rows[0]["note"]
    assert "common/nets.py is not in the submission" in rows[1]["note"]


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -1, 0, "60", True])
def test_a_bundle_refuses_a_timeout_no_test_can_meet(tmp_path, timeout):
    """Issue 25, item 6: a bundle with --timeout nan gave every student 0; nothing is written."""
    with pytest.raises(ValueError, match="timeout must be a .*number of seconds"):
        write_bundle(tmp_path / "autograder.zip", ["realnvp.masks"], timeout=timeout)
    assert not (tmp_path / "autograder.zip").exists()
