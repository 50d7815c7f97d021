"""Checkpoints (common/train.py): atomic saves, all-or-nothing loads, the builder record,
corruption."""

import argparse
import os
import pathlib
import signal
import subprocess
import sys
import time

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
from planar_flows import PlanarFlow
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


def test_a_changed_value_of_a_large_tensor_in_the_extras_is_detected(tmp_path):
    """The extras' repr shows only some values of a tensor over 1000 entries: its bytes are hashed
    too (periodic checkpoints keep optimiser moments and random states there)."""
    path = tmp_path / "flow.pt"
    save_checkpoint(MAF(2, 1, (8,)), path, moments={"m": torch.zeros(5000)})
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["extra"]["moments"]["m"][2500] = 1.0  # a value repr(tensor) elides
    torch.save(checkpoint, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="checksum"):
        read_checkpoint(tmp_path / "edited.pt")
    assert read_checkpoint(path)["extra"]["moments"]["m"].shape == (5000,)


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


def craft(path, out, **changes):
    """Write ``out``: the checkpoint ``path`` with ``changes`` applied and its digest recomputed, as
    anyone can (the digest detects corruption, it authenticates nothing)."""
    from common.checkpoint import _digest

    checkpoint = {**torch.load(path, weights_only=True), **changes}
    checkpoint["digest"] = _digest(
        checkpoint["state_dict"], checkpoint["builder"], checkpoint["extra"]
    )
    torch.save(checkpoint, out)
    return out


def test_digits_models_of_a_demo_run_as_a_module_load_by_every_route(tmp_path):
    """``digits_flow`` is @recorded in ``maf/__main__.py`` and ``nsf/__main__.py``: a run of
    ``python -m nsf`` records it as ``nsf.__main__.digits_flow`` (importable), not ``__main__``."""
    import maf.__main__
    import nsf.__main__

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    root = pathlib.Path(__file__).resolve().parents[1]
    for module in ("nsf", "maf"):
        run = subprocess.run(
            [sys.executable, "-m", module, "--data", "digits", "--quick", "--steps", "2"]
            + ["--save", "--no-progress", "--out", str(tmp_path / module)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-2000:]
    files = sorted(tmp_path.glob("*/digits_*.pt"))
    assert [p.name for p in files] == [
        "digits_conditional.pt",
        "digits_maf.pt",
        "digits_nsf_ar.pt",
        "digits_nsf_c.pt",
    ]
    for path in files:
        model, _ = load_flow(path)
        record = read_checkpoint(path)["builder"]
        assert record["builder"] == f"{path.parent.name}.__main__.digits_flow"
        builder = {"maf": maf.__main__, "nsf": nsf.__main__}[path.parent.name].digits_flow
        mine = builder(**record["args"])  # built by importing the demo, as a notebook would
        load_checkpoint(mine, path)
        assert state_equal(mine, model)


def test_load_flow_gives_the_saved_dtype_on_map_location(tmp_path):
    flow = perturb(MAF(2, 2, (8, 8)), seed=3).double()
    path = save_checkpoint(flow, tmp_path / "double.pt")
    model, _ = load_flow(path)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    x = torch.randn(4, 2, dtype=torch.float64)
    assert torch.equal(model.log_prob(x), flow.eval().log_prob(x))
    model, _ = load_flow(path, map_location="cpu")
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    half = PlanarFlow(2, 2).half()
    model, _ = load_flow(save_checkpoint(half, tmp_path / "half.pt"))
    assert state_equal(model, half) and next(model.parameters()).dtype == torch.float16
    with pytest.raises(CheckpointError, match="map_location must be a device"):
        load_flow(path, map_location="nowhere")


def test_non_finite_weights_are_refused_by_save_and_by_every_load(tmp_path):
    good = perturb(MAF(2, 2, (8, 8)), seed=4)
    path = save_checkpoint(good, tmp_path / "flow.pt")
    key = "transform.transforms.0.made.net.0.weight"
    for value in (float("nan"), float("inf")):
        bad = MAF(2, 2, (8, 8))
        with torch.no_grad():
            bad.state_dict()[key][1, 0] = value
        with pytest.raises(CheckpointError, match=rf"{key} holds 1 non-finite"):
            save_checkpoint(bad, path)
    assert [p.name for p in tmp_path.iterdir()] == ["flow.pt"]
    state = {
        k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
        for k, v in read_checkpoint(path)["state_dict"].items()
    }
    craft(path, tmp_path / "nan.pt", state_dict=state)  # a valid digest over NaN weights
    other = MAF(2, 2, (8, 8))
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError, match="non-finite"):
        load_checkpoint(other, tmp_path / "nan.pt")
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())
    with pytest.raises(CheckpointError, match="non-finite"):
        load_flow(tmp_path / "nan.pt")


@pytest.mark.parametrize(
    "record, message",
    [
        (5, "record must be a dict"),
        ({"args": {}}, "record must be a dict"),
        ({"builder": 5, "args": {}}, "builder name must be"),
        ({"builder": "maf.maf.MAF", "args": [2]}, "args must be a dict"),
        ({"builder": "maf.maf.MAF", "args": {1: 2}}, "args must be a dict"),
        ({"builder": "maf.maf.MAF", "args": {}, "more": 1}, "record must be a dict"),
        ({"builder": "maf..MAF", "args": {}}, "builder name must be"),
        ({"builder": "MAF", "args": {}}, "builder name must be"),
        ({"builder": "this.x", "args": {}}, "not a package of this repository"),
        ({"builder": "os.system", "args": {"command": "true"}}, "not a package of this"),
        ({"builder": "maf.maf.check_builder_args", "args": {}}, "not a @recorded"),
        ({"builder": "maf.nothing.MAF", "args": {}}, "cannot find the builder"),
        ({"builder": "maf.maf.MAF", "args": {"features": 2, "bogus": 1}}, "bogus"),
        ({"builder": "maf.maf.MAF", "args": {"features": "2"}}, "features must be an integer"),
        ({"builder": "maf.maf.MAF", "args": {"features": 3}}, "does not fit its own builder"),
        # a loop of 10**12 layers even on meta: refused from the size of the file's tensors
        ({"builder": "maf.maf.MAF", "args": {"features": 2, "transforms": 10**12}}, "more than"),
        ({"builder": "maf.maf.MAF", "args": {"features": 10**30}}, "more than the"),
    ],
)
def test_a_crafted_record_is_a_checkpoint_error_before_anything_is_imported(
    tmp_path, capsys, record, message
):
    path = save_checkpoint(MAF(2, 2, (8, 8)), tmp_path / "flow.pt")
    craft(path, tmp_path / "crafted.pt", builder=record)
    had_this = "this" in sys.modules
    with pytest.raises(CheckpointError, match=message):
        load_flow(tmp_path / "crafted.pt")
    assert capsys.readouterr().out == ""  # `import this` would print the Zen of Python
    assert ("this" in sys.modules) == had_this


def test_crafted_huge_arguments_are_refused_without_allocating(tmp_path):
    """hidden_features=[60000, 60000] in a record over (256, 256) weights (135,182 values, so no
    argument exceeds the file's size): 28.8 GB if it were built; the dry run on the meta device
    sees the shapes differ first."""
    import resource

    path = save_checkpoint(MAF(2, 2, (256, 256)), tmp_path / "flow.pt")
    record = read_checkpoint(path)["builder"]
    args = {**record["args"], "hidden_features": [60000, 60000]}
    craft(path, tmp_path / "huge.pt", builder={**record, "args": args})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"shape \(256, 2\), the model's \(60000, 2\)"):
        load_flow(tmp_path / "huge.pt")
    assert time.perf_counter() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 500_000


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # RealNVP(1): no kept x
def test_every_builder_of_the_repository_builds_on_meta():
    """load_flow's dry run: each @recorded builder, built under torch.device("meta"), has the keys,
    shapes and dtypes of the real model and holds no data."""
    import maf.__main__
    import nsf.__main__
    from iaf import IAF
    from realnvp import RealNVP

    builders = [
        lambda: MAF(3, 2, (8, 8), context=2, batch_norm=True),
        lambda: NSF(3, 2, (8,), actnorm=True),
        lambda: NSF(3, 2, (8,), coupling=True),
        lambda: IAF(3, 2, (8,)),
        lambda: IAF(3, 2, (8,), step="affine"),
        lambda: RealNVP(3, 2, (8,), context=2, batch_norm=True),
        lambda: RealNVP(1, 2, (8,)),
        lambda: RealNVPImage((1, 8, 8), 2, 4, batch_norm=True),
        lambda: PlanarFlow(2, 3),
        lambda: PlanarFlow(2, 3, kind="radial"),
        lambda: maf.__main__.digits_flow(10, 2, 8),
        lambda: nsf.__main__.digits_flow(2, 8, True),
        lambda: logit_maf(0.1),
    ]
    for build in builders:
        real = build()
        with torch.device("meta"):
            dry = build()
        shapes = lambda m: {k: (v.shape, v.dtype) for k, v in m.state_dict().items()}
        assert shapes(dry) == shapes(real)
        assert {v.device.type for v in dry.state_dict().values()} == {"meta"}


def test_stale_temporary_files_of_a_killed_save_are_removed_by_the_next_save(tmp_path):
    """A save killed by SIGKILL leaves its ``.NAME.*.tmp``; the next save of the same file removes
    such files once they are a minute old, and nothing else."""
    target = tmp_path / "model.pt"
    script = (
        "import os, signal, torch\n"
        "from common.checkpoint import save_checkpoint\n"
        "from maf import MAF\n"
        "def killed(obj, f):\n"
        "    f.write(b'half a file'); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
        "torch.save = killed\n"
        f"save_checkpoint(MAF(2, 2, (8, 8)), {str(target)!r})\n"
    )
    root = pathlib.Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, timeout=120)
    assert run.returncode == -signal.SIGKILL
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".model.pt.") and left.name.endswith(".tmp")
    fresh = tmp_path / ".model.pt.abcd1234.tmp"  # another save, still writing
    fresh.write_bytes(b"x")
    keep = [tmp_path / n for n in (".model.pt.abcd1234.tmp.bak", ".other.pt.abcd1234.tmp", "a.tmp")]
    for p in [left, *keep]:
        p.write_bytes(b"x")
        os.utime(p, (time.time() - 120, time.time() - 120))
    save_checkpoint(MAF(2, 2, (8, 8)), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["model.pt", fresh.name, *(p.name for p in keep)]
    )
