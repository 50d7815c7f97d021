"""Training loops shared by every paper: forward KL (maximum likelihood) and reverse KL (from an
energy), on one skeleton (``training``) that the VAE's loop shares too.

Both loops: Adam, optional gradient clipping, progress on stderr (tqdm on a terminal, a plain line
every tenth of the run otherwise), a guard that stops on a non-finite loss, names the step and
restores the last weights that gave a finite loss (``NonFiniteLoss``; the weights after the last
update are checked too), Ctrl-C handling that keeps the best weights and raises
``TrainingInterrupted`` with the partial history, and optional periodic checkpoints (``Periodic``)
from which a run resumes to the same numbers.

The optimiser is created inside each loop and dropped when it raises: after ``NonFiniteLoss`` its
moments (which took the update that led to the non-finite loss) are never reused, a new call starts
a fresh Adam. A periodic checkpoint holds the optimiser state that belongs to its weights.
"""

import copy
import math
import random
import sys
import time

import numpy as np
import torch
from tqdm import tqdm


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or inf loss; the model holds the last weights whose loss was
    finite."""


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
    """Ctrl-C, a stop signal (``signum``) or a KeyboardInterrupt from a callback during training.

    The model already holds the weights it would have been left with (the best validation weights
    where there is a validation set, otherwise those of the last completed step); ``step`` is the
    step that was running, ``completed`` the number of steps whose update was applied and whose
    loss is in ``history`` (``step`` itself when the interruption came after its update, else
    ``step - 1``).
    """

    def __init__(self, step, completed, steps, history, kept, signum=None):
        when = "after its update" if completed == step else "before its update was complete"
        super().__init__(
            f"interrupted at step {step} of {steps}, {when}; the model keeps {kept} "
            f"(the history holds {completed} completed steps)"
        )
        self.step, self.completed, self.steps, self.history = step, completed, steps, history
        self.signum = signum


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


def check_steps(steps):
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")


def check_finite_rows(tensor, name):
    """Raise a ValueError naming the rows of ``tensor`` (N, ...) that hold a NaN or an inf."""
    if tensor is None or not torch.is_tensor(tensor) or tensor.numel() == 0:
        return
    if tensor.is_floating_point() or tensor.is_complex():
        bad = ~torch.isfinite(tensor.reshape(tensor.shape[0], -1)).all(1)
        if bad.any():
            rows = bad.nonzero().flatten().tolist()
            shown = f"{rows[:10]}{' ...' if len(rows) > 10 else ''}"
            raise ValueError(
                f"the {name} must not contain NaN or inf: rows {shown} ({len(rows)} of "
                f"{tensor.shape[0]}) do; remove or fix them before training"
            )


class Batches:
    """Endless shuffled minibatches (x, context) of a tensor dataset (N, D): ``next(batches)``.

    ``state_dict()`` / ``load_state_dict()`` hold the current epoch's permutation and position, so a
    resumed run draws the same batches.
    """

    def __init__(self, data, context, batch_size, generator=None):
        self.data, self.context, self.batch_size, self.generator = (
            data,
            context,
            batch_size,
            generator,
        )
        self.perm, self.position = None, 0

    def __iter__(self):
        return self

    def __next__(self):
        n = self.data.shape[0]
        if self.perm is None or self.position > max(n - self.batch_size, 0):
            self.perm = torch.randperm(n, generator=self.generator, device="cpu")
            self.position = 0
        idx = self.perm[self.position : self.position + self.batch_size].to(self.data.device)
        self.position += self.batch_size
        return self.data[idx], None if self.context is None else self.context[idx]

    def state_dict(self):
        return {"perm": self.perm, "position": self.position}

    def load_state_dict(self, state):
        self.perm, self.position = state["perm"], state["position"]


def batches(data, context, batch_size, generator=None):
    """Endless shuffled minibatches (x, context) from a tensor dataset (N, D), a ``Batches``.

    Checked once, before any step: N >= 1, the context's rows, and no NaN or inf in any row (the
    rows are named).
    """
    if data.dim() != 2 or data.shape[0] == 0:
        raise ValueError(
            f"the dataset must be a non-empty (N, D) tensor, got shape {tuple(data.shape)}"
        )
    if context is not None and context.shape[0] != data.shape[0]:
        raise ValueError(f"context has {context.shape[0]} rows but the dataset has {data.shape[0]}")
    check_finite_rows(data, "training data")
    check_finite_rows(context, "training context")
    return Batches(data, context, batch_size, generator)


def rng_state():
    """The states of Python's, NumPy's and torch's random generators (CPU, and CUDA if in use)."""
    kind, keys, position, gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.copy()), position, gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restore what ``rng_state`` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy(), position, gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


class Periodic:
    """Periodic checkpoints of one training run, and the state it resumes from.

    Every ``every`` steps (not after the last) ``write(model, state)`` is called with ``state`` a
    dict of plain values (the step, the optimiser's and the batches' states, the random generators,
    the history, the best weights so far). ``resume``: such a state (with the model already holding
    its weights) to continue from; the run then gives the same numbers as an uninterrupted one.
    """

    def __init__(self, every=0, write=None, resume=None):
        self.every, self.write, self.resume = every, write, resume


class TrainingRun:
    """The skeleton every training loop shares (the two below and ``common.vae.train_vae``): the
    NaN guard, the best weights, Ctrl-C and the progress display.

        history = {"loss": []}
        with TrainingRun(model, steps, progress, history, callback) as run:
            for step in run:  # 1, ..., steps
                loss = ...
                run.optimise(optimizer, loss)  # guarded: a non-finite loss raises NonFiniteLoss
                history["loss"].append(loss.item())
                run.keep_if_best(step, score)  # after a validation; lower is better
                run.end_step(loss=loss.item())  # progress, then callback(step, loss)
        return run.finish()

    On Ctrl-C the ``with`` raises ``TrainingInterrupted`` (best or last finite weights kept); on any
    other error it closes the progress bar and lets the error through. With ``periodic`` (a
    ``Periodic``) and ``resumable`` (objects with ``state_dict`` / ``load_state_dict`` by name: the
    optimiser, the batches) it writes periodic checkpoints and resumes from one.
    """

    def __init__(
        self, model, steps, progress, history, callback=None, periodic=None, resumable=None
    ):
        check_steps(steps)
        self.model, self.steps, self.history, self.callback = model, steps, history, callback
        self.periodic, self.resumable = periodic or Periodic(), resumable or {}
        self.last_finite, self.step, self.completed, self.updating = LastFinite(model), 0, 0, False
        self.best = self.best_state = self.best_step = None
        self.bar, self.start = Progress(steps, progress), time.perf_counter()

    def __iter__(self):
        first = 1
        if self.periodic.resume is not None:
            first = self._resume(self.periodic.resume) + 1
        for step in range(first, self.steps + 1):
            self.step = step
            yield step

    def _resume(self, state):
        """Take the run's state from a periodic checkpoint (the model holds its weights already)."""
        if state["steps"] != self.steps:
            raise ValueError(
                f"the checkpoint to resume is of a run of {state['steps']} steps, this run has "
                f"{self.steps}: resume with the same settings"
            )
        for name, thing in self.resumable.items():
            thing.load_state_dict(state[name])
        self.history.clear()
        self.history.update(copy.deepcopy(state["history"]))
        self.best, self.best_step, self.best_state = state["best"], state["best_step"], None
        if state["best_state"] is not None:
            self.best_state = copy.deepcopy(state["best_state"])
        self.last_finite.save()
        set_rng_state(state["rng"])
        self.completed = self.step = state["step"]
        self.bar.update(self.step)
        return self.step

    def _state(self):
        return {
            "step": self.step,
            "steps": self.steps,
            **{name: thing.state_dict() for name, thing in self.resumable.items()},
            "history": self.history,
            "best": self.best,
            "best_step": self.best_step,
            "best_state": self.best_state,
            "rng": rng_state(),
        }

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is None:
            return False
        self.bar.close()
        if issubclass(kind, KeyboardInterrupt) and not isinstance(error, TrainingInterrupted):
            raise self._interrupted(getattr(error, "signum", None)) from None
        return False

    def optimise(self, optimizer, loss, clip=None):
        """One optimiser step, guarded: a non-finite loss restores the last finite weights and
        raises ``NonFiniteLoss`` naming the step."""
        if not torch.isfinite(loss):
            self.last_finite.restore()
            raise NonFiniteLoss(
                f"loss became {loss.item()} at step {self.step}; the model keeps the weights "
                f"of step {self.step - 1}, the last whose loss was finite"
            )
        self.last_finite.save()  # these weights produced a finite loss
        self.updating = True  # from here until the update is applied, the model is in flux
        optimizer.zero_grad()
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        optimizer.step()
        self.completed = self.step
        self.updating = False

    def keep_if_best(self, step, score):
        """Keep a copy of the weights if ``score`` (lower is better) is the best so far; a NaN or
        infinite score is never the best."""
        if not math.isfinite(score):
            return
        if self.best is None or score < self.best:
            self.best, self.best_step = score, step
            self.best_state = copy.deepcopy(self.model.state_dict())

    def end_step(self, loss, **shown):
        """Show the step's values, call ``callback(step, loss)``, then write the periodic
        checkpoint if one is due."""
        self.bar.update(self.step, loss=loss, **shown)
        if self.callback is not None:
            self.callback(self.step, loss)
        every = self.periodic.every
        if every and self.step % every == 0 and self.step < self.steps:
            self._check_weights()
            self.periodic.write(self.model, self._state())

    def _finite_weights(self):
        return all(torch.isfinite(v).all() for v in self.model.state_dict().values() if v.numel())

    def _check_weights(self):
        """After an update: non-finite weights restore the last finite ones (NonFiniteLoss)."""
        if not self._finite_weights():
            self.last_finite.restore()
            raise NonFiniteLoss(
                f"the weights became NaN or inf in the update of step {self.step}; the model "
                f"keeps those from before it (of step {self.step - 1}, its loss was finite)"
            )

    def _interrupted(self, signum=None):
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            kept = f"the best validation weights (step {self.best_step})"
        elif self.updating:
            self.last_finite.restore()  # the weights before the update that was under way
            kept = f"the weights of step {self.completed}, the last completed"
        elif not self._finite_weights():
            self.last_finite.restore()
            kept = f"the weights of step {self.completed - 1} (step {self.completed}'s gave NaN)"
        else:
            kept = f"the weights of step {self.completed}, the last completed"
        self.model.eval()
        self.history["seconds"] = time.perf_counter() - self.start
        self.history["interrupted_at"] = self.step
        self.history["completed_steps"] = self.completed
        return TrainingInterrupted(
            self.step, self.completed, self.steps, self.history, kept, signum
        )

    def finish(self):
        """The history, with the best validation weights (if any) in the model, in eval mode.

        The weights of the last update are checked first: NaN or inf raises ``NonFiniteLoss``
        with the last finite weights restored."""
        self.bar.close()
        self._check_weights()
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        self.history["seconds"] = time.perf_counter() - self.start
        return self.history


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
    periodic=None,
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
            (``history["snapshots"][step]``), e.g. to plot the density during training.
        callback: an optional ``callback(step, loss)`` called after every step.
        periodic: an optional ``Periodic``: checkpoints every so many steps, or the state to
            resume from.
    Returns:
        a history dict: "loss" per step, "val" as (step, nll) pairs, "seconds", "snapshots".
    Raises:
        ValueError before the first step if a row of the tensor dataset, its context, ``val`` or
        ``val_context`` holds NaN or inf (the rows are named); NonFiniteLoss on a NaN or inf loss
        or weights; TrainingInterrupted on Ctrl-C (best weights kept).
    """
    param = next(flow.parameters())
    stream = None if hasattr(data, "sample") else batches(data, context, batch_size)
    check_finite_rows(val, "validation data")
    check_finite_rows(val_context, "validation context")
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    history = {"loss": [], "val": [], "snapshots": {}, "seconds": 0.0}
    resumable = {"optimizer": optimizer, **({} if stream is None else {"batches": stream})}
    with TrainingRun(flow, steps, progress, history, callback, periodic, resumable) as run:
        for step in run:
            flow.train()
            if stream is None:
                x, c = data.sample(batch_size).to(param), None
            else:
                x, c = next(stream)
            x = x.to(param) if preprocess is None else preprocess(x).to(param)
            loss = -flow.log_prob(x, c).mean()
            run.optimise(optimizer, loss, clip)
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
            run.end_step(loss.item(), **({"val": history["val"][-1][1]} if history["val"] else {}))
    return run.finish()


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
    periodic=None,
):
    """Reverse KL (the free energy of Rezende & Mohamed 2015, Eq. 15): minimise E_q[log q(x) +
    beta_t U(x)].

    Needs only the unnormalised density exp(-U): log Z is a constant. ``energy`` has ``.energy(x)``
    or is a callable U. ``anneal=T`` uses beta_t = min(1, 0.01 + t / T) (Rezende & Mohamed, Sec.
    6.1). Samples come from ``flow.rsample_and_log_prob`` (reparameterised, one pass of
    ``inverse``). ``callback(step, loss)`` is called after every step; Ctrl-C raises
    ``TrainingInterrupted`` with the weights of the last completed step; ``periodic`` as in
    ``train_forward_kl``.
    """
    U = energy.energy if hasattr(energy, "energy") else energy
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    history = {"loss": [], "beta": [], "snapshots": {}, "seconds": 0.0}
    flow.train()
    resumable = {"optimizer": optimizer}
    with TrainingRun(flow, steps, progress, history, callback, periodic, resumable) as run:
        for step in run:
            beta = 1.0 if anneal is None else min(1.0, 0.01 + step / anneal)
            # BEGIN SOLUTION common.reverse_kl
            # draw x ~ q with its log q(x) in one reparameterised pass, one call of
            # flow.rsample_and_log_prob(batch_size, context) per step; the loss is the mean of
            # log q(x) + beta U(x).
            x, log_q = flow.rsample_and_log_prob(batch_size, context)
            loss = (log_q + beta * U(x)).mean()
            # END SOLUTION
            run.optimise(optimizer, loss, clip)
            history["loss"].append(loss.item())
            history["beta"].append(beta)
            if snapshots and step in snapshots:
                history["snapshots"][step] = copy.deepcopy(flow.state_dict())
            run.end_step(loss.item(), beta=beta)
    return run.finish()
