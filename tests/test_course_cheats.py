"""Issue 26, integrity: each attack a student could write inside their markers, as a submission.

Every submission is the reference everywhere else and, in the attacked part (``realnvp.masks``:
``checkerboard`` and ``channel_mask``, 1 point, five tests, the cheapest to grade), a stub plus the
cheat: it scores points only if the cheat works. Each test asserts the part scores 0 and, where the
grader can see it, that it is flagged. Run on the old grader (before issue 26) these scored 1/1
(see course/README.md, Integrity). The isolation ones need root (the grader then runs the student's
pytest as an unprivileged uid); without root they are skipped, with the reason.
"""

import os
import textwrap
import time

import pytest

from course.grade import (
    GROUP_FEEDBACK_CHARS,
    HIDDEN,
    ROOT,
    WEIGHTS,
    grade_parts,
    gradescope,
    load_weights,
    reference_code,
    sandbox_available,
)

PART = "realnvp.masks"
WEIGHTS_ = load_weights(ROOT / WEIGHTS)
root_only = pytest.mark.skipif(
    not sandbox_available(), reason="the grader isolates student code only when it runs as root"
)
STUB = 'raise NotImplementedError("realnvp.masks: stub")'
# what each of the part's two regions must compute, for a cheat that found the reference
CALLS = ["checkerboard(shape, parity)", "channel_mask(shape, parity)"]


def cheat(template):
    """The part's code: each region runs ``template`` (``{call}`` = what the region computes, from
    a namespace ``ns`` the cheat filled), then the stub."""
    lines = textwrap.dedent(template).strip().splitlines()
    return {
        path: [
            ["    " + line.replace("{call}", CALLS[i]) for line in lines] + ["    " + STUB]
            for i in range(len(blocks))
        ]
        for path, blocks in reference_code(ROOT, PART).items()
    }


def stub(part):
    """The part as the student copy has it: every region raises NotImplementedError."""
    message = f'raise NotImplementedError("{part}: stub")'
    return {
        path: [[b[0][: len(b[0]) - len(b[0].lstrip())] + message] for b in blocks]
        for path, blocks in reference_code(ROOT, part).items()
    }


def grade(code, parts=(PART,), stubs=(), **options):
    """Grade ``parts``: ``PART`` with ``code``, the ``stubs`` as stubs, the rest the reference."""
    codes = {PART: code, **{part: stub(part) for part in stubs}}
    return grade_parts(
        lambda part: codes.get(part) or reference_code(ROOT, part), WEIGHTS_, list(parts), **options
    )


@root_only
def test_the_reference_of_the_graded_part_cannot_be_read_or_run():
    """The shared base copy (``cwd.parent / "reference"`` before, ``../../base`` now) and the
    grader's working directory (``/proc/<ppid>/cwd``): none is readable by the student's uid."""
    (row,) = grade(
        cheat("""
        import os, pathlib
        here = pathlib.Path.cwd()
        for root in (here.parent / "reference", here.parent.parent / "base",
                     pathlib.Path(f"/proc/{os.getppid()}/cwd")):
            try:
                text = (root / "realnvp" / "realnvp.py").read_text()
            except OSError:
                continue
            ns = {}
            exec(compile(text, "ref", "exec"), ns)
            return ns["{call}".split("(")[0]](shape, parity)
        """)
    )
    assert row["earned"] == 0, row


@root_only
def test_forged_result_lines_and_os_exit_score_zero_and_are_flagged():
    """Passed records for every collected test, on $COURSE_RESULTS (before) or on every pipe the
    process holds (the channel now), a forged end-of-session line, then os._exit(0)."""
    (row,) = grade(
        cheat("""
        import gc, json, os
        ids = [o.nodeid for o in gc.get_objects() if type(o).__name__ == "Function"]
        lines = [{"nodeid": i, "when": "call", "outcome": "passed"} for i in ids]
        lines += [{"finished": 0, "testscollected": len(ids)}]
        text = "".join(json.dumps({**r, "seq": n}) + "\\n" for n, r in enumerate(lines, 2))
        if os.environ.get("COURSE_RESULTS"):
            open(os.environ["COURSE_RESULTS"], "a").write(text)
        for fd in os.listdir("/proc/self/fd"):
            try:
                if int(fd) > 2 and "pipe" in os.readlink(f"/proc/self/fd/{fd}"):
                    os.write(int(fd), text.encode())
            except OSError:
                pass
        os._exit(0)
        """)
    )
    assert row["earned"] == 0, row
    assert "flagged" in row["note"] and "forged" in row["note"], row


def test_replacing_the_runners_json_changes_nothing():
    """``course.runner.json`` swapped for one that writes every outcome as passed."""
    (row,) = grade(
        cheat("""
        import json, sys
        runner = sys.modules.get("course.runner")
        class Passed:
            @staticmethod
            def dumps(record, **options):
                if "outcome" in record:
                    record = {**record, "outcome": "passed"}
                return json.dumps(record, **options)
            loads = staticmethod(json.loads)
        if runner is not None:
            runner.json = Passed
        import torch
        return torch.zeros(shape)
        """)
    )
    assert row["earned"] == 0, row


@root_only
def test_a_detached_process_dies_with_its_part(tmp_path):
    """A double-forked, setsid'd process that would rewrite results.json after the grader wrote
    it: every process of the part's uid is killed when the part ends, and the part is flagged."""
    out = tmp_path / "drop"
    out.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(out, 0o777)  # writable by anyone: only the kill keeps the marker from appearing
    marker = out / "rewritten"
    (row,) = grade(
        cheat(f"""
        import subprocess, sys
        code = "import time; time.sleep(4); open({str(marker)!r}, 'w').write('35/35')"
        subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        """)
    )
    time.sleep(6)
    assert not marker.exists(), "a process of the graded part outlived it"
    assert row["earned"] == 0, row
    assert "flagged" in row["note"] and "still running" in row["note"], row


@root_only
def test_the_first_part_cannot_edit_the_runner_of_the_next():
    """The attacked part rewrites course/runner.py wherever it can reach (its own tree, the
    shared copy), so every later outcome would read "passed"; the next part is a plain stub."""
    (first, second) = grade(
        cheat("""
        import pathlib
        here = pathlib.Path.cwd()
        for root in (here, here.parent / "reference", here.parent.parent / "base"):
            path = root / "course" / "runner.py"
            try:
                text = path.read_text()
                path.write_text(text.replace('outcome = "failed"', 'outcome = "passed"'))
            except OSError:
                pass
        """),
        parts=(PART, "common.reverse_kl"),
        stubs=("common.reverse_kl",),
    )
    assert first["earned"] == 0 and second["earned"] == 0, (first, second)


def test_feedback_never_quotes_the_hidden_tests_or_a_reference(tmp_path):
    """An exception carrying the hidden tests' source and another part's reference region."""
    (row,) = grade(
        cheat("""
        import pathlib
        maf = pathlib.Path("maf/maf.py").read_text()
        region = maf.split("BEGIN SOLUTION maf.step")[1].split("END SOLUTION")[0]
        hidden = pathlib.Path("course/hidden_tests/test_pins.py").read_text()
        pins = hidden.split("def test_masks_by_hand")[1][:400]
        if "channel" in "{call}":  # the other region: everything on one line
            raise ValueError((pins + region).replace("\\n", " | "))
        raise ValueError(pins + region)
        """)
    )
    assert row["earned"] == 0, row
    assert "flagged" in row["note"] and "quoted" in row["note"], row
    secret = (ROOT / HIDDEN / "test_pins.py").read_text().splitlines()
    secret += [line for f in reference_code(ROOT, "maf.step").values() for b in f for line in b]
    secret = {line.strip() for line in secret if len(line.strip()) >= 12}
    for group in row["groups"]:
        assert len(group["output"]) <= GROUP_FEEDBACK_CHARS
        lines = group["output"].splitlines()
        quoted = [line for line in lines if any(s in line for s in secret)]
        assert not quoted, quoted


def test_skipping_the_inputs_it_gets_wrong_does_not_shrink_the_denominator():
    """Issue 26's coupling without its context (3.59/4) plus ``pytest.skip()`` wherever a context
    is given: 4/4 before; now it scores what the coupling without context scores."""
    pad = " " * 8
    honest = {
        "realnvp/realnvp.py": [
            [f"{pad}s, t = self._s_t(x, None)", f"{pad}z = x * torch.exp(s) + t"]
            + [f"{pad}return z.flatten(1), s.flatten(1).sum(1)"],
            [f"{pad}s, t = self._s_t(z, None)", f"{pad}x = (z - t) * torch.exp(-s)"]
            + [f"{pad}return x.flatten(1), -s.flatten(1).sum(1)"],
        ]
    }
    skip = f'{pad}if context is not None:\n{pad}    __import__("pytest").skip("no context")'
    skipping = {path: [[skip, *b] for b in blocks] for path, blocks in honest.items()}
    codes = {"realnvp.coupling": skipping}
    (row,) = grade_parts(lambda part: codes[part], WEIGHTS_, ["realnvp.coupling"])
    codes["realnvp.coupling"] = honest
    (baseline,) = grade_parts(lambda part: codes[part], WEIGHTS_, ["realnvp.coupling"])
    assert row["earned"] <= baseline["earned"] < 4, (row, baseline)
    outputs = "\n".join(g["output"] for g in row["groups"])
    assert "a skipped test counts as failed" in outputs, outputs


def test_a_group_in_which_no_test_ran_scores_zero_and_says_so():
    entry = {"points": 2, "groups": {"tests/test_x.py::test_a": 1, "tests/test_x.py::test_b": 1}}
    run = {"collected": ["tests/test_x.py::test_a"], "results": {}, "tampered": None}
    run["results"]["tests/test_x.py::test_a"] = {"outcome": "passed"}
    from course.grade import score_part

    row = score_part("x.y", entry, run)
    result = gradescope([row], 1)
    (empty,) = [t for t in result["tests"] if t["name"].endswith("test_b")]
    assert empty["score"] == 0 and "no test of this group ran" in empty["output"], empty
    assert row["earned"] == 1


def test_the_public_output_shows_no_points_of_hidden_groups():
    rows = grade(reference_code(ROOT, PART))
    result = gradescope(rows, 1)
    hidden = [g for g in rows[0]["groups"] if g["hidden"]]
    assert hidden and all(t["visibility"] == "after_published" for t in result["tests"][-1:])
    assert "1 / 1" not in result["output"], result["output"]  # the part's total includes hidden
    assert "Hidden tests" in result["output"], result["output"]
