"""Checkpoints: a file format for a model's weights, its builder record and plain-Python extras.

* ``save_checkpoint(model, path, **extra)``: atomic (written beside ``path``, then renamed over it);
* ``load_checkpoint(model, path)``: all or nothing, every key, shape, dtype and the builder record
  checked before the model is touched;
* ``load_flow(path)``: rebuilds the model from the record that ``common.checks.recorded`` leaves on
  it (dry run on the "meta" device first), then loads its weights.

Files are read with ``torch.load(weights_only=True)`` (no code from the file runs) and carry a
SHA-256 digest of their contents: it detects corruption; anyone can recompute it, so it is not a
signature. Weights with NaN or inf are neither written nor read.
"""

import hashlib
import importlib
import inspect
import os
import re
import tempfile
import time

import torch

from common.checks import check_plain

CHECKPOINT_FORMAT = "normalizing-flows checkpoint"
CHECKPOINT_VERSION = 1
STALE_SECONDS = 60  # a temporary file of the same target this old is a killed save's, removed
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the folder holding common/
NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")  # package.module[.more].builder


class CheckpointError(ValueError):
    """A checkpoint that cannot be saved or loaded: the message says which file, what is wrong."""


def _check_plain(value, where):
    """``common.checks.check_plain``, raising CheckpointError."""
    try:
        check_plain(value, where)
    except ValueError as error:
        raise CheckpointError(str(error)) from None


def _non_finite(state):
    """``"KEY holds N non-finite values"`` for the first floating tensor of ``state`` with NaN or
    inf entries, or None."""
    for key, tensor in state.items():
        if torch.is_tensor(tensor) and tensor.is_floating_point() and not tensor.is_meta:
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                return f"{key} holds {bad} non-finite value{'s' if bad > 1 else ''} (NaN or inf)"
    return None


def _check_record(record, path):
    """Raise CheckpointError unless ``record`` is None or ``{"builder": "package.module.name",
    "args": {str: plain value}}``, the shape ``@recorded`` writes."""
    if record is None:
        return
    where = f"{os.fspath(path)!r} has a malformed builder record"
    if not isinstance(record, dict) or set(record) != {"builder", "args"}:
        got = sorted(map(str, record)) if isinstance(record, dict) else type(record).__name__
        raise CheckpointError(
            f"{where}: the record must be a dict with the keys 'builder' and 'args', got {got}"
        )
    name, args = record["builder"], record["args"]
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise CheckpointError(
            f"{where}: the builder name must be a dotted 'package.module.name', got {name!r:.80}"
        )
    if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
        raise CheckpointError(
            f"{where}: its args must be a dict of argument names, got {type(args).__name__}"
            + (f" with keys {list(args)[:5]}" if isinstance(args, dict) else "")
        )
    _check_plain(args, f"{os.fspath(path)!r}: the builder's args")


def _largest_int(value):
    """The largest integer in ``value`` (nested lists, tuples and dicts), or 0."""
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple, dict)):
        items = value.values() if isinstance(value, dict) else value
        return max((_largest_int(v) for v in items), default=0)
    return 0


def _packages():
    """This repository's packages: the folders beside ``common/`` that hold an ``__init__.py``."""
    return {
        name for name in os.listdir(ROOT) if os.path.isfile(os.path.join(ROOT, name, "__init__.py"))
    }


def _builder(record, path):
    """The @recorded builder that ``record`` names, imported only when its top-level package is
    one of this repository's; CheckpointError otherwise."""
    name = record["builder"]
    if name.split(".")[0] not in _packages():
        raise CheckpointError(
            f"{os.fspath(path)!r} names the builder {name!r}, and {name.split('.')[0]!r} is not a "
            f"package of this repository ({', '.join(sorted(_packages()))}): nothing imported"
        )
    module, _, attributes = name.rpartition(".")
    try:
        builder = importlib.import_module(module)
        for part in attributes.split("."):
            builder = getattr(builder, part)
    except (ImportError, AttributeError) as error:
        raise CheckpointError(f"cannot find the builder {name!r}: {error}") from None
    if not getattr(builder, "records_builder", False):
        raise CheckpointError(f"{name!r} is not a @recorded builder; refusing to call it")
    return builder


def _canonical(value):
    """Lists and tuples compare alike (argparse gives lists, defaults are tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return value


def _tensors(value, where="extra"):
    """(name, tensor) for every tensor inside ``value`` (nested lists, tuples and dicts)."""
    if torch.is_tensor(value):
        yield where, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _tensors(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f"{where}[{key!r}]")


def _digest(state, builder, extra):
    """SHA-256 of every tensor's name, dtype, shape and bytes (the weights and any tensor in the
    extras, whose repr shows only some of its values), and of the record and extras."""
    h = hashlib.sha256(repr((builder, _canonical(extra))).encode())
    for key, tensor in [*state.items(), *_tensors(extra)]:
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
    problem = _non_finite(state)
    if problem:
        raise CheckpointError(f"refusing to write {path!r}: {problem}")
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
    _remove_stale_temporaries(folder, os.path.basename(path))
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


def _remove_stale_temporaries(folder, name):
    """Remove the ``.NAME.XXXXXXXX.tmp`` files (``mkstemp``'s pattern for this target, nothing
    else) older than ``STALE_SECONDS``: what a save killed by SIGKILL leaves. Younger ones may be
    another process's save in progress and are kept."""
    pattern = re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{8}\.tmp")
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:  # an unreadable folder: the save itself says what is wrong
        return
    for entry in entries:
        try:
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                if now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS:
                    os.remove(entry.path)
        except OSError:  # removed meanwhile by another save, or not ours to remove
            continue


def read_checkpoint(path, map_location="cpu"):
    """The checkpoint dict of ``path``, checked (format, version, digest) but applied to nothing.

    Raises ``CheckpointError`` for a missing, empty, truncated, corrupted or foreign file (a bare
    state dict, a text file), for a file of a later format version, for a builder record of another
    shape than ``@recorded`` writes, and for weights holding NaN or inf.
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
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path!r} is damaged: its state_dict is not a dict of tensors")
    if checkpoint["digest"] != _digest(state, checkpoint["builder"], checkpoint["extra"]):
        raise CheckpointError(f"{path!r} is corrupted: its contents do not match their checksum")
    _check_record(checkpoint["builder"], path)
    problem = _non_finite(state)
    if problem:
        raise CheckpointError(f"{path!r} cannot be loaded: {problem}")
    return checkpoint


def _with_new_defaults(record):
    """The recorded arguments, plus the default of every argument the builder gained since the file
    was written (so adding an option with a default does not orphan old checkpoints)."""
    try:
        parameters = inspect.signature(_builder(record, "")).parameters.values()
    except (CheckpointError, TypeError, ValueError):
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
    its weights and return ``(model, extra)``: the model in eval mode, in the floating dtype of the
    file's tensors (float64 stays float64), on ``map_location`` (a device: "cpu" by default,
    "cuda:0", a ``torch.device``; the file is read on the CPU whatever device wrote it).

    Nothing in the file is trusted: the record must name a @recorded builder of this repository's
    packages (nothing else is imported) and arguments it takes, none of their integers larger than
    the number of values in the file's tensors; the model is first built on the "meta" device (no
    memory) and its keys, shapes and dtypes compared with the file's tensors, and built for real
    only when they fit. Every refusal is a ``CheckpointError``.
    """
    try:
        device = torch.device(map_location)
    except (TypeError, RuntimeError, ValueError):
        raise CheckpointError(
            f"map_location must be a device such as 'cpu' or 'cuda:0', got {map_location!r}"
        ) from None
    where = repr(os.fspath(path))
    checkpoint = read_checkpoint(path, "cpu")
    record = checkpoint["builder"]
    if record is None:
        raise CheckpointError(
            f"{where} has no builder record (the model was not made by a @recorded "
            "builder): build the model yourself and use load_checkpoint(model, path)"
        )
    builder = _builder(record, path)
    try:
        inspect.signature(builder).bind(**record["args"])
    except TypeError as error:
        raise CheckpointError(
            f"{where}: {record['builder']} does not take the recorded arguments: {error}"
        ) from None
    size = sum(t.numel() for t in checkpoint["state_dict"].values())
    large = [f"{k}={v!r:.40}" for k, v in record["args"].items() if _largest_int(v) > size]
    if large:  # no architecture has a size larger than the number of values it holds
        raise CheckpointError(
            f"{where}: {record['builder']} is recorded with {', '.join(large)}, more than the "
            f"{size} values of the file's tensors: refusing to build it"
        )
    dtypes = {t.dtype for t in checkpoint["state_dict"].values() if t.is_floating_point()}
    dtype = dtypes.pop() if len(dtypes) == 1 else None  # several: the builder's, then compared

    def build():
        try:
            model = builder(**record["args"])
        except Exception as error:  # a crafted argument of a type or value the builder cannot use
            message = (str(error).splitlines() or [""])[0]
            raise CheckpointError(
                f"{where}: {record['builder']} refuses the recorded arguments: "
                f"{type(error).__name__}: {message}"
            ) from None
        return model if dtype is None else model.to(dtype)

    with torch.device("meta"):  # the dry run: shapes without data
        problem = _mismatch(build(), checkpoint, path)
    if problem:
        raise CheckpointError(f"{where} does not fit its own builder: {problem}")
    model = build()
    problem = _mismatch(model, checkpoint, path)
    if problem:
        raise CheckpointError(f"{where} does not fit its own builder: {problem}")
    with torch.no_grad():
        model.load_state_dict(checkpoint["state_dict"])
    try:
        model = model.to(device)
    except (RuntimeError, AssertionError) as error:  # e.g. "Torch not compiled with CUDA enabled"
        message = (str(error).splitlines() or [""])[0]
        raise CheckpointError(f"cannot move the model of {where} to {device}: {message}") from None
    return model.eval(), checkpoint["extra"]
