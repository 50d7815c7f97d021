"""Checkpoints (common/train.py): atomic saves, all-or-nothing loads, the builder record,
corruption."""

import argparse
import pathlib

import numpy as np
import pytest
import torch

from common.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_flow,
    read_checkpoint,
    save_checkpoint,
)
from common.checks import recorded
from common.flows import Flow
from common.layers import Logit
from maf import MAF
from nsf import NSF
from realnvp import RealNVPImage
from tests.harness import perturb


@recorded
def logit_maf(alpha=0.05, features=3):
    """A builder of this test module: Logit(alpha) then a small MAF (like the digits demos)."""
    return Flow([Logit(alpha), MAF(features, 2, (8, 8)).transform], features=features)


def state_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_is_bit_exact_and_rebuilds_from_the_record(tmp_path):
    flow = perturb(NSF(2, 2, (8, 8), bins=4, bound=3.0), seed=1)
    path = save_checkpoint(flow, tmp_path / "nsf.pt", steps=7, history={"loss": [1.5, 1.25]})
    other = NSF(2, 2, (8, 8), bins=4, bound=3.0)
    assert load_checkpoint(other, path) == {"steps": 7, "history": {"loss": [1.5, 1.25]}}
    assert state_equal(flow, other)
    rebuilt, extra = load_flow(path)
    assert rebuilt.builder == flow.builder and extra["steps"] == 7 and not rebuilt.training
    x = torch.randn(5, 2)
    assert torch.equal(rebuilt.log_prob(x), flow.eval().log_prob(x))
    torch.load(path, weights_only=True)  # plain torch can read it without running code


def test_rebuild_a_module_level_builder_and_an_image_model(tmp_path):
    save_checkpoint(logit_maf(0.1), tmp_path / "a.pt")
    model, _ = load_flow(tmp_path / "a.pt")
    assert model.builder["args"] == {"alpha": 0.1, "features": 3}
    image = RealNVPImage((1, 4, 4), scales=1, hidden_channels=4)
    save_checkpoint(image, tmp_path / "b.pt")
    assert state_equal(load_flow(tmp_path / "b.pt")[0], image)


def test_another_builder_argument_is_a_clear_error_and_leaves_the_model(tmp_path):
    save_checkpoint(NSF(2, 2, (8, 8)), tmp_path / "nsf.pt")
    other = NSF(2, 2, (8, 8), bound=3.0)  # same keys and shapes, another bound
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"bound=5.0 \(model: 3.0\)"):
        load_checkpoint(other, tmp_path / "nsf.pt")
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())
    save_checkpoint(logit_maf(0.05), tmp_path / "logit.pt")
    with pytest.raises(CheckpointError, match=r"alpha=0.05 \(model: 0.1\)"):
        load_checkpoint(logit_maf(0.1), tmp_path / "logit.pt")


def test_another_architecture_leaves_the_model_unchanged(tmp_path):
    save_checkpoint(MAF(2, 3, (8, 8)), tmp_path / "maf.pt")
    unrecorded = Flow(MAF(2, 2, (8, 8)).transform, features=2)  # no record: keys decide
    before = {k: v.clone() for k, v in unrecorded.state_dict().items()}
    with pytest.raises(CheckpointError, match="keys differ"):
        load_checkpoint(unrecorded, tmp_path / "maf.pt")
    wider = Flow(MAF(2, 3, (16, 8)).transform, features=2)
    with pytest.raises(CheckpointError, match=r"shape \(8, 2\), the model's \(16, 2\)"):
        load_checkpoint(wider, tmp_path / "maf.pt")
    double = Flow(MAF(2, 3, (8, 8)).transform, features=2).double()
    with pytest.raises(CheckpointError, match="dtype torch.float32, the model's torch.float64"):
        load_checkpoint(double, tmp_path / "maf.pt")
    assert all(torch.equal(before[k], v) for k, v in unrecorded.state_dict().items())


def test_a_failed_save_leaves_the_previous_file_loadable(tmp_path, monkeypatch):
    flow = perturb(MAF(2, 2, (8, 8)), seed=2)
    path = tmp_path / "flow.pt"
    save_checkpoint(flow, path, steps=1)
    for bad, name in (
        (np.float64(1.0), "numpy.float64"),
        (pathlib.Path("x"), "Path"),
        (argparse.Namespace(a=1), "argparse.Namespace"),
    ):
        with pytest.raises(CheckpointError, match=name):
            save_checkpoint(MAF(2, 2, (8, 8)), path, steps=2, value={"nested": [bad]})

    def disk_full(obj, f):
        f.write(b"half a file")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)  # fails half-way through writing
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(MAF(2, 2, (8, 8)), path, steps=3)
    monkeypatch.undo()
    other = MAF(2, 2, (8, 8))
    assert load_checkpoint(other, path) == {"steps": 1} and state_equal(other, flow)
    assert [p.name for p in tmp_path.iterdir()] == ["flow.pt"]  # no temporary file left


def test_masks_are_not_in_the_file_and_corruption_is_detected(tmp_path):
    flow = MAF(3, 2, (8, 8))
    path = tmp_path / "flow.pt"
    save_checkpoint(flow, path)
    assert not any("mask" in key for key in read_checkpoint(path)["state_dict"])
    data = bytearray(path.read_bytes())
    gen = torch.Generator().manual_seed(0)
    for trial in range(12):
        damaged = bytearray(data)
        for i in torch.randint(0, len(data), (64,), generator=gen).tolist():
            damaged[i] ^= 0xFF
        (tmp_path / "bad.pt").write_bytes(bytes(damaged))
        other = MAF(3, 2, (8, 8))
        try:
            load_checkpoint(other, tmp_path / "bad.pt")
        except CheckpointError:
            continue
        assert state_equal(other, flow), f"trial {trial}: flipped bytes changed the weights"
    checkpoint = torch.load(path, weights_only=True)  # a change behind the zip's own checks:
    checkpoint["state_dict"]["transform.transforms.0.made.net.0.weight"][0, 0] += 1e-3
    torch.save(checkpoint, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(MAF(3, 2, (8, 8)), tmp_path / "edited.pt")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"step,loss\n1,0.5\n", "not a readable checkpoint"),
        (None, "bare state_dict"),
        ("missing", "does not exist"),
    ],
)
def test_foreign_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "x.pt"
    if content is None:
        torch.save(MAF(2, 2, (8, 8)).state_dict(), path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(MAF(2, 2, (8, 8)), path)


def test_later_format_version_and_unrecorded_builders_are_refused(tmp_path):
    path = tmp_path / "flow.pt"
    save_checkpoint(MAF(2, 2, (8, 8)), path)
    checkpoint = torch.load(path, weights_only=True)
    torch.save({**checkpoint, "version": 99}, path)
    with pytest.raises(CheckpointError, match="version 99"):
        read_checkpoint(path)
    record = {"builder": "os.system", "args": {"command": "true"}}
    torch.save({**checkpoint, "builder": record}, path)
    with pytest.raises(CheckpointError, match="corrupted|not a @recorded"):
        load_flow(path)
    with pytest.raises(CheckpointError, match="directory"):
        save_checkpoint(MAF(2, 2, (8, 8)), tmp_path)


def test_an_option_added_since_the_file_was_written_takes_its_default(tmp_path):
    """A checkpoint written before NSF gained ``actnorm`` (its record lacks the argument) still
    loads into a model built with the default, and is refused by one built otherwise."""
    old = NSF(2, transforms=2, hidden_features=(8,))
    del old.builder["args"]["actnorm"]  # as a file of the version before the option existed
    path = save_checkpoint(old, tmp_path / "old.pt")
    load_checkpoint(NSF(2, transforms=2, hidden_features=(8,)), path)
    model, _ = load_flow(path)
    assert model.builder["args"]["actnorm"] is False
    with pytest.raises(CheckpointError, match=r"actnorm=False \(model: True\)"):
        load_checkpoint(NSF(2, transforms=2, hidden_features=(8,), actnorm=True), path)
