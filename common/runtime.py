"""The settings of a run: its seed and whether it should be tiny (``FLOWS_FAST=1``)."""

import os
import random

import numpy as np
import torch


def fast_mode():
    """True when the environment asks for tiny runs (CI executes notebooks with FLOWS_FAST=1)."""
    return os.environ.get("FLOWS_FAST", "0") not in ("", "0")


def seed_everything(seed):
    """Seed Python, NumPy and torch so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
