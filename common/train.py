"""Training loops shared by every paper: forward KL (maximum likelihood) and reverse KL (from an
energy), and checkpoints.

Both loops: Adam, optional gradient clipping, progress on stderr (tqdm on a terminal, a plain line
every tenth of the run otherwise), a guard that stops on a non-finite loss, names the step and
restores the last weights that gave a finite loss (``NonFiniteLoss``), and Ctrl-C handling that
keeps the best weights and raises ``TrainingInterrupted`` with the partial history.

Checkpoints: ``save_checkpoint`` (atomic, plain-Python extras only), ``load_checkpoint`` (all or
nothing), ``load_flow`` (rebuilds the model from the builder record that ``@recorded`` attaches).
"""

import collections
import copy
import functools
import hashlib
import importlib
import inspect
import os
import random
import sys
import tempfile
import time

import numpy as np
import torch
from tqdm import tqdm


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or inf loss; the model holds the last weights whose loss was
    finite."""


def fast_mode():
    """True when the environment asks for tiny runs (CI executes notebooks with FLOWS_FAST=1)."""
    return os.environ.get("FLOWS_FAST", "0") not in ("", "0")


def seed_everything(seed):
    """Seed Python, NumPy and torch so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Progress:
    """Progress on stderr: a tqdm bar on a terminal, otherwise a plain line every ``every`` steps.

    ``enabled=False`` prints nothing. ``update(step, **values)`` shows the step and the values.
    """

    def __init__(self, steps, enabled=True, every=None):
        self.steps, self.enabled, self.start = steps, enabled, time.perf_counter()
        self.every = every or max(1, steps // 10)
        self.bar = None
        if enabled and sys.stderr.isatty():
            self.bar = tqdm(total=steps, file=sys.stderr, leave=False, dynamic_ncols=True)

    def update(self, step, **values):
        if not self.enabled:
            return
        shown = "  ".join(f"{k} {v:.4f}" for k, v in values.items())
        if self.bar is not None:
            self.bar.set_postfix_str(shown, refresh=False)
            self.bar.update(step - self.bar.n)
        elif step % self.every == 0 or step == self.steps:
            rate = step / (time.perf_counter() - self.start + 1e-9)
            print(f"  step {step:>6}/{self.steps}  {shown}  ({rate:.0f} steps/s)", file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a KeyboardInterrupt from a callback) during training.

    The model already holds the weights it would have been left with (the best validation weights
    where there is a validation set, otherwise those of the last completed step); ``step`` is the
    step that was interrupted and ``history`` the history up to there.
    """

    def __init__(self, step, steps, history, kept):
        super().__init__(f"interrupted at step {step} of {steps}; the model keeps {kept}")
        self.step, self.steps, self.history = step, steps, history


class LastFinite:
    """A copy of the weights (and buffers) that last gave a finite loss, in preallocated tensors;
    ``saves`` counts the copies, so it is the step whose loss those weights gave."""

    def __init__(self, model):
        self.model, self.saved = (
            model,
            {k: v.detach().clone() for k, v in model.state_dict().items()},
        )
        self.saves = 0

    def save(self):
        with torch.no_grad():
            for k, v in self.model.state_dict().items():
                self.saved[k].copy_(v)
        self.saves += 1

    def restore(self):
        self.model.load_state_dict(self.saved)


def guarded_step(model, optimizer, loss, step, last_finite, clip=None):
    """One optimiser step, guarded: a non-finite loss restores the last finite weights, raises."""
    if not torch.isfinite(loss):
        last_finite.restore()
        raise NonFiniteLoss(
            f"loss became {loss.item()} at step {step}; the model keeps the weights "
            f"of step {step - 1}, the last whose loss was finite"
        )
    last_finite.save()  # these weights produced a finite loss
    optimizer.zero_grad()
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()


def check_steps(steps):
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")


def batches(data, context, batch_size, generator=None):
    """Endless shuffled minibatches (x, context) from a tensor dataset (N, D); N >= 1 is checked."""
    if data.dim() != 2 or data.shape[0] == 0:
        raise ValueError(
            f"the dataset must be a non-empty (N, D) tensor, got shape {tuple(data.shape)}"
        )
    if context is not None and context.shape[0] != data.shape[0]:
        raise ValueError(f"context has {context.shape[0]} rows but the dataset has {data.shape[0]}")
    n = data.shape[0]

    def endless():
        while True:
            perm = torch.randperm(n, generator=generator, device="cpu")
            for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
                idx = perm[i : i + batch_size].to(data.device)
                yield data[idx], None if context is None else context[idx]

    return endless()


class TrainingRun:
    """What every training loop shares: the NaN guard (``last_finite``), the best weights
    (``keep_if_best``), Ctrl-C (``interrupted``) and the progress display (``bar``).

    A loop calls ``keep_if_best(step, score)`` after each validation (lower is better), raises
    ``run.interrupted(step, history)`` on KeyboardInterrupt and returns ``run.finish(history)``.
    """

    def __init__(self, model, steps, progress, callback):
        check_steps(steps)
        self.model, self.steps, self.callback = model, steps, callback
        self.last_finite, self.best, self.best_state, self.best_step = (
            LastFinite(model),
            None,
            None,
            None,
        )
        self.bar, self.start = Progress(steps, progress), time.perf_counter()

    def keep_if_best(self, step, score):
        """Keep a copy of the weights if ``score`` (lower is better) is the best so far."""
        if self.best is None or score < self.best:
            self.best, self.best_state, self.best_step = (
                score,
                copy.deepcopy(self.model.state_dict()),
                step,
            )

    def interrupted(self, step, history):
        self.bar.close()
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            kept = f"the best validation weights (step {self.best_step})"
        else:
            self.last_finite.restore()  # consistent weights, even if Adam was stopped half-way
            kept = f"the weights of step {self.last_finite.saves} (its loss is the last recorded)"
        self.model.eval()
        history["seconds"], history["interrupted_at"] = time.perf_counter() - self.start, step
        return TrainingInterrupted(step, self.steps, history, kept)

    def finish(self, history):
        self.bar.close()
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)  # keep the weights with the best validation
        self.model.eval()
        history["seconds"] = time.perf_counter() - self.start
        return history


def train_forward_kl(
    flow,
    data,
    steps=2000,
    batch_size=512,
    lr=1e-3,
    context=None,
    val=None,
    val_context=None,
    val_every=100,
    clip=None,
    preprocess=None,
    progress=True,
    snapshots=None,
    callback=None,
):
    """Maximum likelihood: minimise -E_data[log q(x)] with Adam.

    Args:
        data: a target with ``.sample(n)`` (fresh samples every step) or a tensor (N, D)
            (minibatches).
        context: with a tensor dataset, the (N, C) context of each row.
        val: an optional (M, D) validation tensor; the weights with the best validation NLL are
            kept.
        preprocess: an optional function applied to each batch (e.g. dequantisation of digits).
        snapshots: optional steps at which to keep a copy of the weights
            (history["snapshots"][step]), e.g. to plot the density during training.
        callback: an optional ``callback(step, loss)`` called after every step.
    Returns:
        a history dict: "loss" per step, "val" as (step, nll) pairs, "seconds", "snapshots".
    Raises:
        NonFiniteLoss on a NaN or inf loss; TrainingInterrupted on Ctrl-C (best weights kept).
    """
    param = next(flow.parameters())
    stream = None if hasattr(data, "sample") else batches(data, context, batch_size)
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    history = {"loss": [], "val": [], "snapshots": {}, "seconds": 0.0}
    run, step = TrainingRun(flow, steps, progress, callback), 0
    try:
        for step in range(1, steps + 1):
            flow.train()
            if stream is None:
                x, c = data.sample(batch_size).to(param), None
            else:
                x, c = next(stream)
            x = x.to(param) if preprocess is None else preprocess(x).to(param)
            loss = -flow.log_prob(x, c).mean()
            guarded_step(flow, optimizer, loss, step, run.last_finite, clip)
            history["loss"].append(loss.item())
            if snapshots and step in snapshots:
                history["snapshots"][step] = copy.deepcopy(flow.state_dict())
            if val is not None and (step % val_every == 0 or step == steps):
                flow.eval()
                with torch.no_grad():
                    v = val if preprocess is None else preprocess(val)
                    nll = -flow.log_prob(v.to(param), val_context).mean().item()
                history["val"].append((step, nll))
                run.keep_if_best(step, nll)
            run.bar.update(
                step, loss=loss.item(), **({"val": history["val"][-1][1]} if history["val"] else {})
            )
            if callback is not None:
                callback(step, loss.item())
    except KeyboardInterrupt:
        raise run.interrupted(step, history) from None
    except BaseException:
        run.bar.close()
        raise
    return run.finish(history)


def train_reverse_kl(
    flow,
    energy,
    steps=2000,
    batch_size=256,
    lr=1e-3,
    anneal=None,
    clip=None,
    context=None,
    progress=True,
    snapshots=None,
    callback=None,
):
    """Reverse KL (the free energy of Rezende & Mohamed 2015, Eq. 15): minimise E_q[log q(x) +
    beta_t U(x)].

    Needs only the unnormalised density exp(-U): log Z is a constant. ``energy`` has ``.energy(x)``
    or is a callable U. ``anneal=T`` uses beta_t = min(1, 0.01 + t / T) (Rezende & Mohamed, Sec.
    6.1). Samples come from ``flow.rsample_and_log_prob`` (reparameterised, one pass of
    ``inverse``). ``callback(step, loss)`` is called after every step; Ctrl-C raises
    ``TrainingInterrupted`` with the weights of the last completed step.
    """
    U = energy.energy if hasattr(energy, "energy") else energy
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    history = {"loss": [], "beta": [], "snapshots": {}, "seconds": 0.0}
    run, step = TrainingRun(flow, steps, progress, callback), 0
    flow.train()
    try:
        for step in range(1, steps + 1):
            beta = 1.0 if anneal is None else min(1.0, 0.01 + step / anneal)
            # BEGIN SOLUTION common.reverse_kl
            # draw x ~ q with its log q(x) in one reparameterised pass, one call of
            # flow.rsample_and_log_prob(batch_size, context) per step; the loss is the mean of
            # log q(x) + beta U(x).
            x, log_q = flow.rsample_and_log_prob(batch_size, context)
            loss = (log_q + beta * U(x)).mean()
            # END SOLUTION
            guarded_step(flow, optimizer, loss, step, run.last_finite, clip)
            history["loss"].append(loss.item())
            history["beta"].append(beta)
            if snapshots and step in snapshots:
                history["snapshots"][step] = copy.deepcopy(flow.state_dict())
            run.bar.update(step, loss=loss.item(), beta=beta)
            if callback is not None:
                callback(step, loss.item())
    except KeyboardInterrupt:
        raise run.interrupted(step, history) from None
    except BaseException:
        run.bar.close()
        raise
    return run.finish(history)


# ------------------------------------------------------------------------------------------------
# checkpoints
CHECKPOINT_FORMAT = "normalizing-flows checkpoint"
CHECKPOINT_VERSION = 1
_PLAIN = (type(None), bool, int, float, complex, str, bytes)


class CheckpointError(ValueError):
    """A checkpoint that cannot be saved or loaded: the message says which file, what is wrong."""


def recorded(builder):
    """Decorator for a model builder (e.g. ``maf.MAF``): the model it returns remembers its
    builder's name and arguments in ``model.builder = {"builder": "maf.maf.MAF", "args": {...}}``.

    ``save_checkpoint`` writes that record, ``load_checkpoint`` refuses a file whose record differs
    from the model's, and ``load_flow(path)`` rebuilds the model from it. Only decorated builders
    can be called by ``load_flow``.
    """
    signature = inspect.signature(builder)

    @functools.wraps(builder)
    def build(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        model = builder(*bound.args, **bound.kwargs)
        arguments = dict(bound.arguments)
        _check_plain(arguments, f"{builder.__name__}'s arguments")
        model.builder = {
            "builder": f"{builder.__module__}.{builder.__qualname__}",
            "args": arguments,
        }
        return model

    build.records_builder = True
    return build


def _check_plain(value, where):
    """Refuse what ``torch.load(weights_only=True)`` could not read back, naming where it is."""
    if type(value) in _PLAIN or type(value) in (torch.Tensor, torch.nn.Parameter):
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if type(value) in (dict, collections.OrderedDict):
        for key, item in value.items():
            _check_plain(key, f"{where} key {key!r}")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise CheckpointError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__} ({value!r:.60}); a "
        "checkpoint holds only None, bool, int, float, str, bytes, tensors and lists, tuples and "
        "dicts of them (torch.load(weights_only=True) reads nothing else): convert it first, e.g. "
        "float(x), str(path), vars(namespace)"
    )


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
            f"{path!r} was not written by common.train.save_checkpoint"
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
