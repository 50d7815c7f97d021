"""The hidden tests start from the same random state as tests/ (the same fixture as
tests/conftest.py, repeated: neither conftest imports the other). The grader loads the stub
reporting itself (``-p course.pytest_plugin``, see course/grade.py)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
