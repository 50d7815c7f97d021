"""The instructor's grade: the Gradescope bundle run locally on a student copy, each part graded
alone, the student's tests and weights ignored, hidden tests run, a per-test timeout.

One bundle run (three parts) and one timeout run keep this file near 40 s; the per-part scores of
the reference, the stub and the wrong implementations are checked by tests/test_course_wrong.py
(``COURSE_WRONG=1``, run by .ci/run).
"""

import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pytest

from course.assignment import fill, make_assignment
from course.grade import (
    ROOT,
    WEIGHTS,
    grade_parts,
    load_weights,
    reference_code,
    sandbox_available,
    uid_lock_path,
    wrong_code,
)
from course.gradescope import bundle_files, try_bundle, write_bundle

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
    # issue 26: the grader runs on Python 3.10 (JSON weights), torch is pinned, and the output
    # every student sees before publication holds no points of a hidden group
    assert "course/grading.json" in names
    with zipfile.ZipFile(bundle) as archive:
        setup = archive.read("setup.sh").decode()
    assert re.search(r"torch==\d+\.\d+", setup), setup
    assert "4 / 4" not in result["output"] and "Hidden tests" in result["output"], result["output"]


def _endless_masks():
    """realnvp.masks as a submission whose first block loops forever."""
    code = reference_code(ROOT, "realnvp.masks")
    for path, bodies in code.items():
        indent = bodies[0][0][: len(bodies[0][0]) - len(bodies[0][0].lstrip())]
        code[path] = [[f"{indent}while True:", f"{indent}    pass"]] + bodies[1:]
    return code


def test_an_infinite_loop_costs_its_part_and_times_out(tmp_path):
    weights, code = load_weights(ROOT / WEIGHTS), _endless_masks()
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


def test_a_growing_graph_ends_its_part_on_the_memory_limit_and_the_rest_is_graded():
    """Issue 26: an infinite loop in maf.step's inverse that grows an autograd graph (23 GB and
    983 s before). The part ends at its address-space limit with one clear line; the next part is
    graded as usual."""
    weights = load_weights(ROOT / WEIGHTS)
    code = reference_code(ROOT, "maf.step")
    ((path, (forward, _)),) = code.items()
    pad = " " * 12
    loop = [f"{pad}mu, alpha = self.conditioner(x, context)", f"{pad}while True:"]
    loop += [f"{pad}    x = u * torch.exp(alpha) + mu", f"{pad}    mu, alpha = self.conditioner(x)"]
    codes = {"maf.step": {path: [forward, loop]}}
    start = time.perf_counter()
    rows = grade_parts(
        lambda part: codes.get(part) or reference_code(ROOT, part),
        weights,
        ["maf.step", "realnvp.masks"],
        memory_limit=1536,
    )
    seconds = time.perf_counter() - start
    assert [row["earned"] for row in rows] == [0, 1], rows
    assert "ran out of the part's 1536 MiB of memory" in rows[0]["note"], rows[0]["note"]
    outputs = "\n".join(g["output"] for g in rows[0]["groups"])
    assert "ran out of memory: the grader gives a part 1536 MiB" in outputs, outputs
    assert seconds < 600, seconds  # the per-part wall limit (900 s) never came into play


def test_an_infinite_loop_ends_its_part_on_the_cpu_limit():
    weights, code = load_weights(ROOT / WEIGHTS), _endless_masks()
    (row,) = grade_parts(lambda part: code, weights, ["realnvp.masks"], cpu_limit=4)
    assert row["earned"] == 0, row
    assert "used up its 4 s of CPU" in row["note"], row["note"]


def test_the_bundle_ships_only_what_git_tracks(tmp_path):
    """Issue 26: rglob shipped a stray, untracked course/instructor_notes.md."""
    repo = tmp_path / "repo"
    (repo / "course").mkdir(parents=True)
    (repo / "course" / "grade.py").write_text("# tracked\n")
    (repo / "requirements.txt").write_text("torch\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    (repo / "course" / "instructor_notes.md").write_text("the answers\n")
    names = [name for name, _ in bundle_files(repo)]
    assert names == ["course/grade.py", "requirements.txt"], names
    shutil.copytree(repo, tmp_path / "plain", ignore=shutil.ignore_patterns(".git"))
    with pytest.raises(ValueError, match="not a git checkout"):
        bundle_files(tmp_path / "plain")


def test_a_memory_limit_too_small_to_collect_is_an_error_not_zero_points():
    """A limit the reference's tests cannot even be collected under (a CUDA build of torch
    reserves gigabytes of address space) must not grade every part 0."""
    weights = load_weights(ROOT / WEIGHTS)
    code = reference_code(ROOT, "realnvp.masks")
    with pytest.raises(ValueError, match="cannot even be collected within --memory 64 MiB"):
        grade_parts(lambda part: code, weights, ["realnvp.masks"], memory_limit=64)


@pytest.mark.skipif(
    not sandbox_available(), reason="the graded code runs as another uid only as root"
)
def test_a_python_the_graded_codes_user_cannot_run_is_one_clear_error(tmp_path, monkeypatch):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", private / "venv"],
        check=True,
    )
    monkeypatch.setattr(sys, "executable", str(private / "venv" / "bin" / "python"))
    weights = load_weights(ROOT / WEIGHTS)
    code = reference_code(ROOT, "realnvp.masks")
    with pytest.raises(ValueError, match=r"cannot run .* make that Python and its packages"):
        grade_parts(lambda part: code, weights, ["realnvp.masks"])


def test_graders_running_at_once_never_share_a_sandbox_uid():
    """Each part ends by killing every process of its uid, so two graders on one machine (or two
    parts of one) must never hold the same uid: a lock per uid, here held by another process."""
    import subprocess
    import sys

    from course.grade import claimed_uid

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from course.grade import claimed_uid\n"
            "import sys, time\nwith claimed_uid() as uid:\n    print(uid, flush=True)\n"
            "    time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        theirs = int(holder.stdout.readline())
        with claimed_uid() as first, claimed_uid() as second:
            assert len({theirs, first, second}) == 3, (theirs, first, second)
    finally:
        holder.kill()
        holder.wait()
    with claimed_uid() as again:  # released when its holder died
        assert again == theirs


@pytest.mark.skipif(not sandbox_available(), reason="root only")
def test_the_grader_counts_a_killed_process_waiting_to_be_reaped_as_gone():
    """A zombie of a sandbox uid runs nothing: kill_user must not spend its 100 rounds on it and
    call it a survivor (the grader reaps its own pytest child only after kill_user)."""
    import fcntl
    from pathlib import Path

    from course.grade import SANDBOX_UID, kill_user

    uid = SANDBOX_UID + 4095  # the last: a grader claims the lowest free uid
    with open(uid_lock_path(uid), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        child = subprocess.Popen([sys.executable, "-c", "pass"], user=uid, group=uid, cwd="/")
        try:
            deadline = time.monotonic() + 30
            while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
                assert time.monotonic() < deadline, "the child did not finish"
                time.sleep(0.02)
            start = time.monotonic()
            assert kill_user(uid) == (0, True)
            assert time.monotonic() - start < 1.0
        finally:
            child.kill()
            child.wait()


@pytest.mark.skipif(not sandbox_available(), reason="the sandbox needs root")
def test_the_grader_kills_a_sandbox_process_that_made_itself_non_dumpable():
    """prctl(PR_SET_DUMPABLE, 0) makes /proc/<pid> root's on Linux (not under every sandboxing
    kernel); kill_user reads the process's uids from /proc/<pid>/status, so it still finds it."""
    import fcntl

    from course.grade import SANDBOX_UID, kill_user

    hide = "import ctypes, time; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); print(1, flush=True)"
    hide += "; time.sleep(60)"
    uid = SANDBOX_UID + 4094
    with open(uid_lock_path(uid), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        child = subprocess.Popen(
            [sys.executable, "-c", hide], user=uid, group=uid, cwd="/", stdout=subprocess.PIPE
        )
        try:
            assert child.stdout.readline().strip() == b"1"
            assert kill_user(uid) == (1, True)
            assert child.wait(timeout=10) == -signal.SIGKILL
        finally:
            child.kill()
            child.wait()
