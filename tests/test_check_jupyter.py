"""The README's notebook instruction, as Jupyter follows it (tools/check_jupyter.py)."""

import pytest

pytest.importorskip("jupyter_server", reason="the notebook extra is not installed")

from tools.check_jupyter import open_as_notebooks  # noqa: E402


def test_a_paired_tutorial_opens_as_a_notebook_and_without_jupytext_it_would_not():
    assert open_as_notebooks(["intro/tutorial.py"])["intro/tutorial.py"] > 10
    without = ["--ServerApp.jpserver_extensions={'jupyterlab_jupytext': False}"]
    assert "not as a notebook" in str(
        open_as_notebooks(["intro/tutorial.py"], options=without)["intro/tutorial.py"]
    )
