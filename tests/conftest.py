"""Every test starts from the same random state, so a failure can be reproduced exactly."""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
# the models under test are small: one thread is fastest, and faster still beside other processes
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
