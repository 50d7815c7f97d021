"""The leak check of the student copy: the full copy passes, planted leaks are caught (file:line).

The full-copy test is xfail(strict) while the two known leaks of issue 13/15 are in the code
(``AffineAutoregressive`` in nsf/__main__.py, the planar log-det in the root find of
planar_flows/planar.py): the check must catch them, and must find nothing else.
"""

import json
from pathlib import Path

import pytest

from course.assignment import MANIFEST, LeakError, make_assignment
from course.leaks import find_leaks, fingerprints
from course.markers import parse

ROOT = Path(__file__).resolve().parent.parent
if (ROOT / MANIFEST).exists():
    pytest.skip(
        "a student copy: the course tooling is tested in the reference", allow_module_level=True
    )


@pytest.fixture(scope="module")
def student_copy(tmp_path_factory):
    out = tmp_path_factory.mktemp("leaks") / "student"
    make_assignment(out, check=False)
    return out


def test_the_full_student_copy_has_no_leak(student_copy):
    from course.assignment import marked_files

    leaks = find_leaks(student_copy, fingerprints(ROOT, marked_files(), lambda part: True))
    assert not leaks, "\n".join(leaks)


def test_a_planted_leak_is_caught_in_code_docstrings_comments_and_notebooks(student_copy, tmp_path):
    from course.assignment import marked_files

    copy = tmp_path / "copy"
    for name in ("common", "maf", "tests"):  # enough of the copy, and quick to search
        (copy / name).mkdir(parents=True)
        for path in (student_copy / name).glob("*.py"):
            (copy / name / path.name).write_text(path.read_text())
    prints = fingerprints(ROOT, marked_files(), lambda part: True)
    assert [leak for leak in find_leaks(copy, prints) if "maf.step" in leak] == []
    plot = copy / "common" / "plot.py"
    lines = plot.read_text().splitlines()
    lines[0] += "\n    >>> v = (a - m) * torch.exp(-al)  # renamed, still the statement"
    plot.write_text("\n".join(lines) + "\n")
    (copy / "tests" / "test_maf.py").write_text(
        (copy / "tests" / "test_maf.py").read_text()
        + "\n# y = z * torch.exp(a) + m\n"
        + "def helper(u, w):\n    return torch.log((1 + (1 - q**2) * (u * w).sum(-1)).abs())\n"
    )
    notebook = {
        "cells": [
            {"cell_type": "markdown", "source": ["The layer:\n"]},
            {"cell_type": "code", "source": ["z = (x - mu) *\\\n", "  torch.exp(-alpha)\n"]},
        ]
    }
    (copy / "maf" / "tutorial.ipynb").write_text(json.dumps(notebook))
    leaks = find_leaks(copy, prints)
    text = "\n".join(leaks)
    assert "common/plot.py:2: a statement of maf.step (maf/maf.py:" in text, text
    assert "tests/test_maf.py:" in text and "planar_flows.planar" in text, text
    maf_lines = (ROOT / "maf" / "maf.py").read_text().splitlines()
    begins = [i + 1 for i, line in enumerate(maf_lines) if "# BEGIN SOLUTION maf.step" in line]
    inverse = f"maf.step (maf/maf.py:{begins[1]})"  # the second region: the D-pass inverse
    assert sum(inverse in leak for leak in leaks) >= 1, text
    assert "maf/tutorial.ipynb:1 (cell 2): a statement of maf.step" in text, text


def test_the_generator_refuses_a_leaking_copy_before_writing_anything(tmp_path):
    root = tmp_path / "repo"
    (root / "maf").mkdir(parents=True)
    (root / "course").mkdir()
    (root / "course" / "grading.toml").write_text(
        '["maf.step"]\npoints = 1\ntitle = "t"\nread = "r"\ncontract = "c"\n'
        '["maf.step".tests]\n"tests/test_maf.py::test_x" = 1\n'
    )
    (root / "maf" / "maf.py").write_text(
        "import torch\n\n\ndef forward(x, mu, alpha):\n"
        "    # BEGIN SOLUTION maf.step\n    # u = (x - mu) exp(-alpha)\n"
        "    return (x - mu) * torch.exp(-alpha)\n    # END SOLUTION\n"
    )
    (root / "maf" / "notes.py").write_text(
        '"""Notes.\n\nThe answer::\n\n    u = (x - m) * torch.exp(-a)\n"""\n'
    )
    assert [r.part for r in parse((root / "maf" / "maf.py").read_text(), "maf/maf.py")] == [
        "maf.step"
    ]
    out = tmp_path / "hw"
    with pytest.raises(
        LeakError, match=r"maf/notes\.py:5: a statement of maf\.step \(maf/maf\.py:5\)"
    ):
        make_assignment(out, root=root)
    assert not out.exists() or not any(out.iterdir())
    (root / "maf" / "notes.py").write_text('"""Notes: the answer is in the paper."""\n')
    make_assignment(out, root=root)
    assert "raise NotImplementedError" in (out / "maf" / "maf.py").read_text()
    assert (out / "HANDOUT.md").exists() and (out / "course" / "grading.toml").exists()


NEAR_SOLUTIONS = [
    # (what issue 26 found, or its shape, in code the old check let through; the part it gives)
    ("x = (z - self.beta) * (-log_scale).exp() + m", "common.batch_norm"),  # no [:, None]
    ("y = (z - self.beta.unsqueeze(1)) * torch.exp(-log_scale)[:, None] + m", "common.batch_norm"),
    ("u.add_((-5 - w @ u) * w / (w @ w))", "planar_flows.constraint"),  # the tests' projection
    (
        "v = q + (target - torch.sum(q * p, dim=-1)) * p / (p * p).sum(-1)",
        "planar_flows.constraint",
    ),
    ("slope = 1 + c * (1 - t**2)", "planar_flows.planar"),  # commuted: the planar slope
    (
        "ladj = torch.log((1 + (1 - torch.tanh(s) ** 2) * (w * u).sum(-1)).abs())",
        "planar_flows.planar",
    ),
]
NEAR_SOLUTIONS += [
    ("expected = 1 + wu / math.cosh(4.0) ** 2", "planar_flows.notebook_fold"),  # math. as torch.
    ("expected = 1 + wu * (1 - math.tanh(4.0) ** 2)", "planar_flows.planar"),  # t inlined
]
NOT_LEAKS = [  # shapes the widened match must still let through (found while widening it)
    "return 0.5 * math.log(2 * math.pi * math.e) + 0.5 * (2 * math.log(2) - 1), 0.0",
    "sizes = MIN_WIDTH + (1 - MIN_WIDTH * K) * e / e.sum(-1, keepdim=True)",
]


@pytest.mark.parametrize("code, part", NEAR_SOLUTIONS, ids=[p for _, p in NEAR_SOLUTIONS])
def test_a_near_solution_up_to_broadcasting_order_and_inlining_is_caught(code, part, tmp_path):
    """Issue 26: a stripped statement written with its broadcasting dropped or changed
    ([:, None], unsqueeze, expand, keepdim), with @ for a sum of products, with + or * operands
    swapped, or with an intermediate inlined, is a leak; the old check matched none of these."""
    from course.assignment import marked_files

    prints = fingerprints(ROOT, marked_files(), lambda name: name == part)
    (tmp_path / "notes.py").write_text(
        f"def helper(z, w, u, c, t, m, log_scale, self):\n    {code}\n"
    )
    leaks = find_leaks(tmp_path, prints)
    assert any(f"a statement of {part}" in leak for leak in leaks), (code, leaks)


@pytest.mark.parametrize("code", NOT_LEAKS)
def test_arithmetic_alone_is_not_a_leak(code, tmp_path):
    from course.assignment import marked_files

    prints = fingerprints(ROOT, marked_files(), lambda name: name != "nsf.spline_inverse")
    (tmp_path / "notes.py").write_text(f"def helper():\n    {code}\n")
    assert find_leaks(tmp_path, prints) == []


def test_a_notebook_written_from_its_tutorial_has_the_tutorials_allowances(student_copy, tmp_path):
    """``--ipynb``: intro/tutorial.ipynb holds what intro/tutorial.py holds (its allowed elementwise
    affine layer included), so it is allowed the same; the same cells in another folder are not."""
    import jupytext

    from course.assignment import marked_files

    prints = fingerprints(ROOT, marked_files(), lambda part: True)
    notebook = jupytext.read(student_copy / "intro" / "tutorial.py")
    for name in ("intro", "nsf"):
        (tmp_path / name).mkdir()
        jupytext.write(notebook, tmp_path / name / "tutorial.ipynb")
    leaks = find_leaks(tmp_path, prints)
    assert leaks and all(leak.startswith("nsf/tutorial.ipynb:") for leak in leaks), leaks
