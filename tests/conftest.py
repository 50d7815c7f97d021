"""Every test starts from the same random state, so a failure can be reproduced exactly."""

import matplotlib
import pytest
import torch

# In a student copy (python -m course.assignment), a test that hits an unwritten part fails once,
# naming the part
from course.grade import pytest_runtest_makereport, pytest_terminal_summary  # noqa: F401

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
