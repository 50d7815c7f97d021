"""Checkpoints: a file format for a model's weights, its builder record and plain-Python extras.

* ``save_checkpoint(model, path, **extra)``: atomic (written beside ``path``, then renamed over it);
* ``load_checkpoint(model, path)``: all or nothing, every key, shape, dtype and the builder record
  checked before the model is touched;
* ``load_flow(path)``: rebuilds the model from the record that ``common.checks.recorded`` leaves on
  it, then loads its weights.

Files are read with ``torch.load(weights_only=True)`` (no code from the file runs) and carry a
SHA-256 digest of their contents: it detects corruption; anyone can recompute it, so it is not a
signature.
"""

import hashlib
import importlib
import inspect
import os
import tempfile

import torch

from common.checks import check_plain

CHECKPOINT_FORMAT = "normalizing-flows checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be saved or loaded: the message says which file, what is wrong."""


def _check_plain(value, where):
    """``common.checks.check_plain``, raising CheckpointError."""
    try:
        check_plain(value, where)
    except ValueError as error:
        raise CheckpointError(str(error)) from None


def _canonical(value):
    """Lists and tuples compare alike (argparse gives lists, defaults are tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return value


def _digest(state, builder, extra):
    """SHA-256 of every tensor's name, dtype, shape and bytes, and of the record and extras."""
    h = hashlib.sha256(repr((builder, _canonical(extra))).encode())
    for key, tensor in state.items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{key}:{t.dtype}:{tuple(tensor.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(model, path, **extra):
    """Write the weights, the builder record (if the model has one) and plain-Python ``extra``
    values to ``path`` so that ``load_checkpoint`` (or ``load_flow``) restores them.

    Atomic: the file is written next to ``path`` and renamed over it, so a failed save leaves the
    previous file as it was. Extras that ``torch.load(weights_only=True)`` could not read (numpy
    numbers, ``pathlib.Path``, ``argparse.Namespace``...) are refused here (``CheckpointError``).
    Non-persistent buffers (MADE masks) are not written: the architecture rebuilds them.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"cannot write a checkpoint to {path!r}: it is a directory")
    builder = getattr(model, "builder", None)
    _check_plain(extra, "extra")
    state = model.state_dict()
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "builder": builder,
        "state_dict": state,
        "extra": extra,
        "digest": _digest(state, builder, extra),
    }
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, temporary = tempfile.mkstemp(
        dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; a checkpoint is not
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def read_checkpoint(path, map_location="cpu"):
    """The checkpoint dict of ``path``, checked (format, version, digest) but applied to nothing.

    Raises ``CheckpointError`` for a missing, empty, truncated, corrupted or foreign file (a bare
    state dict, a text file) and for a file of a later format version.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path!r}: the file does not exist")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path!r} is empty (0 bytes), not a checkpoint")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # zip, unpickling and decoding errors alike
        raise CheckpointError(
            f"{path!r} is not a readable checkpoint (corrupted, truncated or not written by "
            f"torch.save): {type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        bare = isinstance(checkpoint, dict) and all(torch.is_tensor(v) for v in checkpoint.values())
        raise CheckpointError(
            f"{path!r} was not written by common.checkpoint.save_checkpoint"
            + (
                " (it looks like a bare state_dict: load it with model.load_state_dict)"
                if bare
                else ""
            )
        )
    if checkpoint.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path!r} has checkpoint format version {checkpoint.get('version')!r}; this code "
            "reads "
            f"version {CHECKPOINT_VERSION}"
        )
    missing = {"builder", "state_dict", "extra", "digest"} - set(checkpoint)
    if missing:
        raise CheckpointError(f"{path!r} lacks {sorted(missing)}: it is damaged")
    state = checkpoint["state_dict"]
    if checkpoint["digest"] != _digest(state, checkpoint["builder"], checkpoint["extra"]):
        raise CheckpointError(f"{path!r} is corrupted: its contents do not match their checksum")
    return checkpoint


def _with_new_defaults(record):
    """The recorded arguments, plus the default of every argument the builder gained since the file
    was written (so adding an option with a default does not orphan old checkpoints)."""
    module, _, name = record["builder"].rpartition(".")
    try:
        builder = importlib.import_module(module)
        for part in name.split("."):
            builder = getattr(builder, part)
        parameters = inspect.signature(builder).parameters.values()
    except (ImportError, AttributeError, TypeError, ValueError):
        return record["args"]
    defaults = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    return {**defaults, **record["args"]}


def _mismatch(model, checkpoint, path):
    """Why ``checkpoint`` does not fit ``model`` (builder arguments, keys, shapes, dtypes), or
    None."""
    ours, theirs = getattr(model, "builder", None), checkpoint["builder"]
    if ours is not None and theirs is not None:
        if ours["builder"] != theirs["builder"]:
            return f"it holds a {theirs['builder']}, the model is a {ours['builder']}"
        a, b = _canonical(ours["args"]), _canonical(_with_new_defaults(theirs))
        diff = [
            f"{k}={b.get(k)!r} (model: {a.get(k)!r})"
            for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)
        ]
        if diff:
            return f"its {theirs['builder']} was built with " + ", ".join(diff)
    state, expected = checkpoint["state_dict"], model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        return (
            f"the keys differ (another architecture?): missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}"
        )
    for key, value in expected.items():
        if state[key].shape != value.shape:
            return f"{key} has shape {tuple(state[key].shape)}, the model's {tuple(value.shape)}"
        if state[key].dtype != value.dtype:
            return f"{key} has dtype {state[key].dtype}, the model's {value.dtype}"
    return None


def load_checkpoint(model, path, map_location="cpu"):
    """Load weights saved by ``save_checkpoint`` into ``model``; return the extras.

    All or nothing: the builder record, every key, shape and dtype are checked first, and the model
    is touched only when everything fits (otherwise ``CheckpointError`` names the mismatch and the
    model is unchanged). Read with ``weights_only=True``: no code from the file runs.
    """
    checkpoint = read_checkpoint(path, map_location)
    problem = _mismatch(model, checkpoint, path)
    if problem:
        raise CheckpointError(f"{os.fspath(path)!r} does not fit this model: {problem}")
    with torch.no_grad():
        model.load_state_dict(checkpoint["state_dict"])
    return checkpoint["extra"]


def load_flow(path, map_location="cpu"):
    """Rebuild the model recorded in ``path`` (its builder called with the recorded arguments), load
    its weights and return ``(model, extra)``, the model in eval mode on ``map_location``."""
    checkpoint = read_checkpoint(path, map_location)
    record = checkpoint["builder"]
    if record is None:
        raise CheckpointError(
            f"{os.fspath(path)!r} has no builder record (the model was not made by a @recorded "
            "builder): build the model yourself and use load_checkpoint(model, path)"
        )
    module, _, name = record["builder"].rpartition(".")
    try:
        builder = importlib.import_module(module)
        for part in name.split("."):
            builder = getattr(builder, part)
    except (ImportError, AttributeError) as error:
        raise CheckpointError(f"cannot find the builder {record['builder']!r}: {error}") from None
    if not getattr(builder, "records_builder", False):
        raise CheckpointError(
            f"{record['builder']!r} is not a @recorded builder; refusing to call it"
        )
    model = builder(**record["args"])
    problem = _mismatch(model, checkpoint, path)
    if problem:
        raise CheckpointError(f"{os.fspath(path)!r} does not fit its own builder: {problem}")
    with torch.no_grad():
        model.load_state_dict(checkpoint["state_dict"])
    return model.to(map_location).eval(), checkpoint["extra"]
