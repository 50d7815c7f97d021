"""Assignments: the marker parser, the student copy (every set part fails, naming itself, and scores
zero), the round trip (the reference passes with the full grade), and the weights file against the
code.

Two subprocess runs keep this file near 20 s: the student copy and the reference, each
self-graded in place on the parts of common/ and maf/ only. The instructor's grade (each part
alone, hidden tests, Gradescope) is tested in tests/test_course_grade.py and, per part with the
wrong implementations, in tests/test_course_wrong.py.
"""

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from course.assignment import (
    MANIFEST,
    STUDENT_CONFTEST,
    MarkerError,
    all_regions,
    for_students,
    make_assignment,
    marked_files,
    parse,
    repository_files,
    strip,
    student_readme,
    student_weights,
    unfold_stubs,
)
from tools.lines import logical_lines
from tools.papers import PAPERS

ROOT = Path(__file__).resolve().parent.parent
if (ROOT / MANIFEST).exists():
    pytest.skip(
        "a student copy: the assignment machinery is tested in the reference",
        allow_module_level=True,
    )

GRADED = ["common", "maf"]  # the papers the subprocess runs grade (a subset, for time)
REWRITTEN = {"README.md": student_readme, "course/grading.toml": student_weights}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}

SOURCE = """def step(x):
    y = 2 * x
    if y > 0:
        # BEGIN SOLUTION demo.step
        # return y + 1
        # (and nothing else)
        z = y + 1
        return z
        # END SOLUTION
    return y
"""


def test_a_region_becomes_its_hints_and_a_raise_at_its_indentation():
    regions = parse(SOURCE, "demo/demo.py")
    assert [(r.part, r.begin, r.end, r.hints) for r in regions] == [
        ("demo.step", 4, 9, ["return y + 1", "(and nothing else)"])
    ]
    stripped, _ = strip(SOURCE, "demo/demo.py")
    assert stripped.splitlines()[3:8] == [
        "        # BEGIN YOUR CODE demo.step (only the lines between these two markers are graded)",
        "        # HINT: return y + 1",
        "        # HINT: (and nothing else)",
        '        raise NotImplementedError("demo.step: return y + 1 (and nothing else)")',
        "        # END YOUR CODE",
    ]
    assert "z = y + 1" not in stripped and stripped.endswith("    return y\n")
    namespace = {}
    exec(compile(stripped, "demo.py", "exec"), namespace)
    assert namespace["step"](-1) == -2  # code outside the region is untouched
    with pytest.raises(NotImplementedError, match=r"^demo\.step: return y \+ 1"):
        namespace["step"](1)
    # not selected: only the markers go
    kept, _ = strip(SOURCE, "demo/demo.py", selected=lambda part: False)
    assert kept == SOURCE.replace(
        "        # BEGIN SOLUTION demo.step\n        # return y + 1\n"
        "        # (and nothing else)\n",
        "",
    ).replace("        # END SOLUTION\n", "")


def test_markers_inside_strings_are_not_markers():
    source = 'TEXT = """\n# BEGIN SOLUTION demo.x\n"""\n'
    assert parse(source, "demo/demo.py") == [] and strip(source)[0] == source


def test_a_long_message_is_wrapped_and_still_valid_python():
    source = (
        "def f():\n    # BEGIN SOLUTION demo.f\n"
        + "    # word word word word word word word\n" * 6
        + "    pass\n    # END SOLUTION\n"
    )
    stripped, _ = strip(source)
    assert max(len(line) for line in stripped.splitlines()) <= 120
    namespace = {}
    exec(stripped, namespace)
    with pytest.raises(NotImplementedError, match="^demo.f: word word"):
        namespace["f"]()


@pytest.mark.parametrize(
    "source, message",
    [
        (
            "# BEGIN SOLUTION a.b\n# BEGIN SOLUTION a.c\nx = 1\n# END SOLUTION\n# END SOLUTION\n",
            r"f\.py:2: nested BEGIN SOLUTION: the region opened at f\.py:1 is not closed",
        ),
        ("x = 1\n# END SOLUTION\n", r"f\.py:2: END SOLUTION without a BEGIN SOLUTION"),
        ("x = 1\n# BEGIN SOLUTION a.b\nx = 2\n", r"f\.py:2: BEGIN SOLUTION a\.b is never closed"),
        (
            "# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n",
            r"f\.py:1: malformed marker '# BEGIN SOLUTION'",
        ),
        ("#BEGIN SOLUTION a.b\n", r"f\.py:1: malformed marker"),
        (
            "def f():\n    # BEGIN SOLUTION a.b\n    x = 1\n# END SOLUTION\n",
            r"f\.py:4: END SOLUTION is not at the indent",
        ),
        (
            "if x:\n    # BEGIN SOLUTION a.b\n    y = 1\nz = 2\n    # END SOLUTION\n",
            r"f\.py:4: .* indented less",
        ),
    ],
)
def test_unbalanced_nested_or_malformed_markers_are_refused_with_file_and_line(source, message):
    with pytest.raises(MarkerError, match=message):
        parse(source, "f.py")


def test_a_part_is_named_after_its_folder():
    with pytest.raises(
        MarkerError, match=r"maf/maf\.py:1: part 'nsf\.x' must start with the folder name, 'maf\.'"
    ):
        parse("# BEGIN SOLUTION nsf.x\n# END SOLUTION\n", "maf/maf.py")


def test_repository_markers_parse_strip_to_valid_python_and_leave_line_counts_alone():
    regions = all_regions()
    assert {r.paper for r in regions} == {"common", "intro", *PAPERS}
    for path in marked_files():
        source = (ROOT / path).read_text()
        stripped, found = strip(source, str(path))
        ast.parse(stripped)  # the student copy imports
        for region in found:
            assert (
                f'raise NotImplementedError("{region.part}: ' in stripped
                or f'    "{region.part}: ' in stripped
            ), f"{path}: no stub for {region.part}"
        unmarked = strip(source, str(path), selected=lambda part: False)[0]
        assert logical_lines(unmarked) == logical_lines(source), (
            f"{path}: markers changed the logical lines"
        )


def test_every_marked_part_has_weights_and_every_weight_matches_a_test():
    from course.grade import load_weights

    weights = load_weights(ROOT / "course" / "grading.toml")
    assert {r.part for r in all_regions()} == set(weights)
    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            *sorted({g.split("::")[0] for entry in weights.values() for g in entry["groups"]}),
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    from course.grade import matches

    for part, entry in weights.items():
        for glob in entry["groups"]:
            assert any(matches(node, [glob]) for node in collected), (
                f"{part}: {glob!r} matches no test"
            )


def test_a_non_empty_directory_is_refused_unless_forced(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty; pass --force"):
        make_assignment(tmp_path)
    with pytest.raises(ValueError, match=r"unknown parts \['maf.nope'\]"):
        make_assignment(tmp_path, parts=["maf.nope"], force=True)
    # nothing written before refusing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def _grade(cwd):
    return subprocess.run(
        [sys.executable, "-m", "course.grade", "--verbose", "--papers", *GRADED],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _rows(table):
    """{part: (earned, points, note)} from the grader's markdown table."""
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and cells[1].startswith("`"):
            earned, points = (float(v) for v in cells[3].split(" / "))
            rows[cells[1].strip("`")] = (earned, points, cells[4])
    return rows


def test_student_copy_fails_once_per_part_and_scores_zero_and_the_reference_scores_full(tmp_path):
    out = tmp_path / "student"
    make_assignment(out, check=False)  # the leak check has its own test (test_course_leaks.py)
    manifest = tomllib.loads((out / MANIFEST).read_text())
    parts = sorted({r.part for r in all_regions()})
    assert manifest["parts"] == parts
    assert (out / "conftest.py").read_text() == STUDENT_CONFTEST  # the stub reporting, for pytest
    # everything but the marked regions is the reference, byte for byte (a notebook's stubbed
    # exercises unfolded, their exercise cells dropped)
    marked = set(marked_files())
    for path in filter(for_students, repository_files()):
        copied = (out / path).read_bytes()
        if path in marked:
            stripped = strip((ROOT / path).read_text(), str(path))[0]
            if path.name == "tutorial.py":
                stripped = unfold_stubs(stripped)
            assert copied.decode() == stripped
        elif path.as_posix() in REWRITTEN:  # issue 26: no instructors' section, no hidden names
            assert copied.decode() == REWRITTEN[path.as_posix()]((ROOT / path).read_text()), path
        else:
            assert copied == (ROOT / path).read_bytes(), path
    student = _grade(out)
    assert student.returncode == 1, student.stderr[-3000:]
    rows = _rows(student.stdout)
    graded = [p for p in parts if p.split(".")[0] in GRADED]
    assert sorted(rows) == graded
    for part, (earned, points, note) in rows.items():
        # a notebook exercise: listed, worth nothing, checked by running the notebook
        if ".notebook_" in part:
            assert earned == points == 0 and note.startswith("ungraded"), part
            continue
        assert (
            earned == 0
            and points > 0
            and (note.startswith("not implemented") or note.startswith("blocked by"))
        ), part
    # one failure per part hit, each naming the part; the tests they block are skipped, not failed
    named = re.findall(r"not implemented: (\S+) \(blocks (\d+) tests?\)", student.stderr)
    failed = int(re.search(r"(\d+) failed", student.stderr).group(1))
    assert named and failed == len(named), student.stderr[-3000:]
    assert {part for part, _ in named} >= {"common.made", "common.change_of_variables"}
    assert "**total** | | | **0 / " in student.stdout

    reference = _grade(ROOT)  # the round trip: with the solutions in place every test passes
    assert reference.returncode == 0, reference.stdout + reference.stderr[-3000:]
    rows = _rows(reference.stdout)
    assert sorted(rows) == graded and all(
        earned == points for earned, points, _ in rows.values()
    ), reference.stdout
    assert "not implemented" not in reference.stderr


def test_the_stub_reporting_is_a_plugin_that_tests_do_not_import():
    """tests/ does not depend on course/ (nor the hidden tests on tests/'s conftest): the stub
    reporting is ``course/pytest_plugin.py``, which the grader passes with ``-p`` and a student
    copy's own top-level conftest.py loads."""

    def imported(path):
        names = set()
        for node in ast.walk(ast.parse((ROOT / path).read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                names.add(node.module or "")
        return names

    assert not {n for n in imported("tests/conftest.py") if n.split(".")[0] == "course"}
    assert not {n for n in imported("course/hidden_tests/conftest.py") if n.startswith("tests")}
    assert "course.pytest_plugin" in STUDENT_CONFTEST


def _hidden_test_names():
    return {
        node.name
        for path in (ROOT / "course" / "hidden_tests").glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def test_the_copy_has_no_instructors_section_no_hidden_test_names_and_its_suite_collects(tmp_path):
    """Issue 26: the copy's README loses the instructors' section (the wrong implementations'
    table), its grading.toml keeps each hidden group's weight but not its test's name, and its own
    ``python -m pytest`` collects (tests/test_fit.py, all benchmarks/, is not shipped)."""
    names = _hidden_test_names()
    assert names and "## For instructors" in (ROOT / "README.md").read_text()
    assert any(n in (ROOT / "course/grading.toml").read_text() for n in names)  # what would leak
    out = tmp_path / "student"
    make_assignment(out, check=False)
    readme = (out / "README.md").read_text()
    assert "## For instructors" not in readme and "course/wrong/" not in readme
    assert "## Tests" in readme  # the section after it survives
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".md", ".toml", ".txt", ".ipynb"}:
            text = path.read_text()
            assert not [n for n in names if n in text], path
    from course.grade import HIDDEN, load_weights

    ours, theirs = (
        load_weights(ROOT / "course/grading.toml"),
        load_weights(out / "course/grading.toml"),
    )
    assert ours.keys() == theirs.keys()
    for part, entry in ours.items():
        assert theirs[part]["points"] == entry["points"]
        hidden = [w for g, w in entry["groups"].items() if g.startswith(HIDDEN)]
        kept = [w for g, w in theirs[part]["groups"].items() if g.startswith(HIDDEN)]
        assert sorted(hidden) == sorted(kept), part
    assert not (out / "tests/test_fit.py").exists()
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider"],
        cwd=out,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = collected.stdout.strip().splitlines()[-1]
    assert collected.returncode == 0 and "error" not in summary, collected.stdout[-3000:]


def test_a_hidden_group_the_copy_cannot_anonymise_is_refused():
    text = (
        '["maf.step"]\npoints = 1\n["maf.step".tests]\n\'course/hidden_tests/t.py::test_x\' = 1\n'
    )
    with pytest.raises(ValueError, match="hidden tests' names"):
        student_weights(text)


@pytest.fixture(scope="module")
def maf_done(tmp_path_factory):
    """A student copy with only ``maf.step`` stubbed and then written (the reference's code)."""
    from course.assignment import fill
    from course.grade import reference_code

    out = tmp_path_factory.mktemp("maf_done") / "copy"
    make_assignment(out, parts=["maf.step"], check=False)
    fill(out, "maf.step", reference_code(ROOT, "maf.step"))
    return out


def test_a_flat_upload_is_graded_like_the_folders_and_a_missing_file_says_how_to_upload(
    maf_done, tmp_path
):
    """Issue 26: only maf.py at the top level (or one folder down) scored 0 ("maf/maf.py is not in
    the submission"); it is now the same code as the folder layout."""
    from course.grade import _submission_root, part_files, reference_code, student_code

    expected = reference_code(ROOT, "maf.step")
    assert student_code(maf_done, ROOT, "maf.step") == expected
    flat = tmp_path / "upload" / "alice"
    flat.mkdir(parents=True)
    (flat / "maf.py").write_text((maf_done / "maf/maf.py").read_text())
    files = part_files(ROOT, "maf.step") + part_files(ROOT, "common.made")
    root = _submission_root(tmp_path / "upload", files)
    assert root == flat
    assert student_code(root, ROOT, "maf.step") == expected
    with pytest.raises(ValueError, match=r"common/nets.py is not in the submission \(upload"):
        student_code(root, ROOT, "common.made")


def test_imports_outside_the_markers_are_graded_as_the_student_runs_them(maf_done, tmp_path):
    """Issue 26: an import at the top of the file was dropped by the grader (NameError, 0 points)
    while the self-grade, which runs the file as it is, used it. The grader now puts the added
    imports at the start of each block of that file; ``import *`` is refused in one line."""
    import shutil

    from course.grade import ROOT as GRADER_ROOT
    from course.grade import student_code

    copy = tmp_path / "copy"
    shutil.copytree(maf_done, copy)
    path = copy / "maf/maf.py"
    text = (
        path.read_text()
        .replace("torch.exp(-alpha)", "exp_(-alpha)")
        .replace("torch.exp(alpha)", "exp_(alpha)")
    )
    path.write_text("from torch import exp as exp_\n" + text)
    bodies = student_code(copy, GRADER_ROOT, "maf.step")[Path("maf/maf.py")]
    assert all(block[0].strip() == "from torch import exp as exp_" for block in bodies)
    from course.markers import splice

    spliced = splice((ROOT / "maf/maf.py").read_text(), "maf/maf.py", "maf.step", bodies)
    namespace = {"__name__": "graded_maf"}
    exec(compile(spliced, "maf/maf.py", "exec"), namespace)  # the graded file runs
    layer = namespace["MAFLayer"](3, hidden_features=[8])
    import torch

    x = torch.randn(4, 3)
    u, ladj = layer(x)
    back, ladj_inverse = layer.inverse(u)
    assert torch.allclose(back, x, atol=1e-5) and torch.allclose(ladj, -ladj_inverse, atol=1e-5)
    path.write_text("from torch import *\n" + text)
    with pytest.raises(ValueError, match=r"maf/maf.py:1: 'from torch import \*' outside the"):
        student_code(copy, GRADER_ROOT, "maf.step")


def test_a_syntax_error_is_shown_with_the_students_line(maf_done, tmp_path):
    """Issue 26: a syntax error in one part said "no test ran"; now the part is not graded with
    ``file:line: SyntaxError: ...`` at the student's own line (both regions of maf.step)."""
    import shutil

    from course.grade import student_code

    for target in ("u = (x - mu) * torch.exp(-alpha)", "x = u * torch.exp(alpha) + mu"):
        copy = tmp_path / f"copy{len(target)}"
        shutil.copytree(maf_done, copy)
        path = copy / "maf/maf.py"
        lines = ["import math as _unused_math", *path.read_text().splitlines()]
        number = next(i for i, line in enumerate(lines, start=1) if target in line)
        lines[number - 1] = lines[number - 1].replace(" = ", " = = ", 1)
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(ValueError) as error:
            student_code(copy, ROOT, "maf.step")
        assert str(error.value).startswith(f"maf/maf.py:{number}: SyntaxError: invalid syntax: ")
        assert "= =" in str(error.value) and "\n" not in str(error.value)


def test_a_failure_names_the_students_line_it_came_through(tmp_path):
    """Issue 26: a forgotten context showed only pytest's last E lines ("expected Tensor ...",
    "mat1 and mat2 shapes cannot be multiplied") with no line; the failure text now lists the
    repository frames with their line of code, the student's call first."""
    from course.grade import (
        build_tree,
        reference_base,
        reference_code,
        run_tests,
        score_part,
    )

    code = reference_code(ROOT, "maf.step")
    blocks = code[Path("maf/maf.py")]
    blocks[0] = [line.replace("(x, context)", "(x)") for line in blocks[0]]
    base = reference_base(ROOT, tmp_path / "reference")
    build_tree(base, tmp_path / "tree", "maf.step", code)
    glob = "tests/test_maf.py::test_harness[maf-layer-1]"
    run = run_tests(tmp_path / "tree", [glob])
    group = score_part("maf.step", {"points": 1, "groups": {glob: 1}}, run)["groups"][0]
    assert group["passed"] == 0 and group["run"] == 1
    assert "maf/maf.py, in forward: mu, alpha = self.conditioner(x)" in group["output"], group
    assert "raised" in group["output"]


def test_every_graded_contract_names_the_function_or_class_its_regions_are_in():
    """Issue 26: the nsf contracts described a region of rq_spline after the stubs had moved into
    rational_quadratic(...) and rational_quadratic_root(...). A contract names where the student
    writes: a function (or class) around each of its part's regions."""
    from course.grade import load_weights

    weights = load_weights(ROOT / "course" / "grading.toml")
    for region in all_regions():
        entry = weights.get(region.part)
        if not entry or not entry["points"]:
            continue
        tree = ast.parse((ROOT / region.path).read_text())
        around = [
            node.name
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            and node.lineno < region.begin <= node.end_lineno
        ]
        named = [
            n for n in around if re.search(rf"\b{re.escape(n.lstrip('_'))}\b", entry["contract"])
        ]
        assert named, (region.part, region.path, region.begin, around)
    assert "`rational_quadratic(" in weights["nsf.spline"]["contract"]
    assert "`rational_quadratic_root(" in weights["nsf.spline_inverse"]["contract"]


def test_a_part_that_did_not_compile_says_so_and_no_group_reads_passed():
    """Issue 26: with a syntax error every group's Gradescope output ended in "passed" (no test
    ran, so none failed); now it is the error with the student's line, and nothing says passed."""
    from course.grade import gradescope, score_part

    entry = {
        "points": 2,
        "groups": {"tests/test_maf.py::test_a": 1, "tests/test_maf.py::test_b": 1},
    }
    note = "not graded: maf/maf.py:34: SyntaxError: invalid syntax: u = = x"
    row = score_part("maf.step", entry, None, note=note)
    tests = gradescope([row], 0.0)["tests"]
    assert len(tests) == 2 and all(t["score"] == 0 for t in tests)
    for test in tests:
        assert "maf/maf.py:34: SyntaxError" in test["output"], test
        assert "passed" not in test["output"], test


def test_a_failures_frames_never_show_another_parts_reference_line():
    """The frames of a failure show lines of code; one inside another part's solution region (the
    student raised in it on purpose, say) is replaced, so the feedback cannot read it out."""
    from course.grade import failure_frames

    log = "\n".join(
        [
            "_____ test_x _____",
            "tests/test_maf.py:3: in test_x",
            "    layer(x)",
            "maf/maf.py:32: in forward",
            "    mu, alpha = self.conditioner(x)",
            "planar_flows/planar.py:27: in constrain",
            "    wu = (w * u).sum(-1, keepdim=True)",
            "E   RuntimeError: boom",
            "===== short test summary info =====",
        ]
    )
    frames = failure_frames("tests/test_maf.py::test_x", log, "maf.step")
    assert frames[0] == "maf/maf.py, in forward: mu, alpha = self.conditioner(x)"
    assert frames[1] == "planar_flows/planar.py, in constrain: (another part's reference code)"
    shown = failure_frames("tests/test_maf.py::test_x", log, "planar_flows.constraint")
    assert shown[1].endswith("wu = (w * u).sum(-1, keepdim=True)")  # its own part: the student's


def _cells(text):
    """[(header, body)] of a py:percent text's cells."""
    parts = re.split(r"^(# %%.*)$", text, flags=re.M)
    return list(zip(parts[1::2], parts[2::2], strict=True))


def test_a_stubbed_notebook_exercise_is_written_in_its_unfolded_cell_and_others_stay_folded(
    tmp_path,
):
    """A notebook part whose region is stubbed: the exercise cell before it (its ``...`` is never
    graded) is gone and the stub's cell is an ordinary one, shown unfolded in Jupyter; a part not
    selected keeps its exercise cell and folded solution as in the reference; nothing leaks (the
    copy's .ipynb cells included)."""
    out = tmp_path / "student"
    make_assignment(out, parts=["iaf.notebook_passes"], ipynb=True)  # the leak check runs
    reference, copy = (ROOT / "iaf/tutorial.py").read_text(), (out / "iaf/tutorial.py").read_text()
    ours, theirs = _cells(reference), _cells(copy)
    assert len(theirs) == len(ours) - 1  # the stubbed part's exercise cell
    (stub,) = [i for i, (_, body) in enumerate(theirs) if "BEGIN YOUR CODE" in body]
    header, body = theirs[stub]
    assert header == "# %%" and "iaf.notebook_passes" in body and "Our solution" not in body
    assert "check_passes(predicted" in body  # the check runs the student's answer
    assert "predicted = ..." not in copy and "exercise" not in theirs[stub - 1][0]
    # the part not selected: exercise then folded solution, as in the reference
    folded = [(h, b) for h, b in ours if "kl_one_mode" in b and "tags=" in h]
    assert [h for h, _ in folded] == [
        '# %% tags=["exercise"]',
        '# %% jupyter={"source_hidden": true} tags=["solution"]',  # jupytext's order
    ]
    assert folded[0] in theirs and "BEGIN SOLUTION" not in copy
    cells = json.loads((out / "iaf/tutorial.ipynb").read_text())["cells"]
    (stub_cell,) = [c for c in cells if "BEGIN YOUR CODE" in "".join(c["source"])]
    assert "jupyter" not in stub_cell["metadata"] and not stub_cell["metadata"].get("tags")
    hidden = [c for c in cells if c["metadata"].get("jupyter", {}).get("source_hidden")]
    assert len(hidden) == 1 and "kl_one_mode" in "".join(hidden[0]["source"])
    # another notebook, no part of it selected: word for word the reference without markers
    assert (out / "maf/tutorial.py").read_text() == strip(
        (ROOT / "maf/tutorial.py").read_text(), "maf/tutorial.py", lambda part: False
    )[0]
