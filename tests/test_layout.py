"""The repository's layout rules (issue 24), checked on the files as they are: each core reads like
its paper and fits the budget, each mechanism is written once, and imports run one way only."""

import ast
import re
from pathlib import Path

import pytest

from tools.lines import PAPERS, core_files, count

ROOT = Path(__file__).resolve().parent.parent
CORES = {paper: core_files(ROOT / paper) for paper in PAPERS}
# seed statistics (0.123 +- 0.004), issue numbers and commit hashes belong in READMEs
HASH = r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b"
HISTORY = re.compile(rf"\d\.\d+ ?(\+-|±) ?\d|[Ii]ssue \d+|commit [0-9a-f]{{7}}|{HASH}")


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module or ""


def _student_copy():
    return (ROOT / "assignment.toml").exists()


@pytest.mark.parametrize("paper", PAPERS)
def test_each_core_fits_the_budget(paper):
    if _student_copy():
        pytest.skip("a student copy: its stubs are not the counted reference")
    logical, physical, _ = count(CORES[paper])
    assert logical <= 100, f"{paper}: {logical} logical lines, the budget is 100"
    assert physical <= 2 * logical, f"{paper}: {physical} physical lines for {logical} statements"


@pytest.mark.parametrize("paper", PAPERS)
def test_cores_import_no_training_or_checkpoint_module_and_no_other_paper(paper):
    for path in CORES[paper]:
        for name in _imports(path):
            assert name not in ("common.train", "common.checkpoint"), f"{path.name} imports {name}"
            top = name.split(".")[0]
            assert top not in PAPERS or top == paper, f"{path.name} imports {name}"


def test_common_imports_no_paper_folder():
    """``common/`` is what the papers share: no module of it imports a paper folder (the figure
    script that draws every paper's checkpoint is ``tools/figures.py``)."""
    for path in sorted((ROOT / "common").glob("*.py")):
        for name in _imports(path):
            assert name.split(".")[0] not in PAPERS, f"{path.name} imports {name}"


def test_tests_and_course_do_not_import_each_others_conftest():
    """The course's pytest hooks load only where grading runs (``-p course.pytest_plugin``)."""
    for name in _imports(ROOT / "tests" / "conftest.py"):
        assert name.split(".")[0] != "course", f"tests/conftest.py imports {name}"
    for path in ROOT.glob("course/**/conftest.py"):
        for name in _imports(path):
            assert name.split(".")[0] != "tests", f"{path.relative_to(ROOT)} imports {name}"


def test_no_measurement_history_in_cores_or_common():
    files = [p for paths in CORES.values() for p in paths] + sorted((ROOT / "common").glob("*.py"))
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not HISTORY.search(line), f"{path.relative_to(ROOT)}:{number}: {line.strip()}"


def test_each_shared_mechanism_is_written_once():
    """One BatchNorm, one soft bound, one D-pass autoregressive inverse: common/layers.py."""
    sources = {
        p.relative_to(ROOT).as_posix(): p.read_text()
        for folder in ("common", *PAPERS)
        for p in (ROOT / folder).glob("*.py")
    }
    defined = {
        name: sorted(
            f for f, text in sources.items() if re.search(rf"^(class|def) {name}\b", text, re.M)
        )
        for name in ("BatchNorm", "soft_bound", "autoregressive_inverse")
    }
    assert defined == {name: ["common/layers.py"] for name in defined}
    # the D-pass loop itself: a loop over the features that feeds its own output back
    for paper in PAPERS:
        for path in CORES[paper]:
            text = path.read_text()
            assert not re.search(r"for _ in (range\(self\.features\)|self\.made\.order)", text), (
                f"{path.relative_to(ROOT)} writes its own D-pass inverse: use "
                "common.layers.autoregressive_inverse"
            )
