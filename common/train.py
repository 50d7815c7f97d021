"""Training loops shared by every paper: forward KL (maximum likelihood) and reverse KL (from an
energy), on one skeleton (``training``) that the VAE's loop shares too.

Both loops: Adam, optional gradient clipping, progress on stderr (tqdm on a terminal, a plain line
every tenth of the run otherwise), a guard that stops on a non-finite loss, names the step and
restores the last weights that gave a finite loss (``NonFiniteLoss``), and Ctrl-C handling that
keeps the best weights and raises ``TrainingInterrupted`` with the partial history.
"""

import copy
import sys
import time

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
    other error it closes the progress bar and lets the error through.
    """

    def __init__(self, model, steps, progress, history, callback=None):
        check_steps(steps)
        self.model, self.steps, self.history, self.callback = model, steps, history, callback
        self.last_finite, self.step = LastFinite(model), 0
        self.best = self.best_state = self.best_step = None
        self.bar, self.start = Progress(steps, progress), time.perf_counter()

    def __iter__(self):
        for step in range(1, self.steps + 1):
            self.step = step
            yield step

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is None:
            return False
        self.bar.close()
        if issubclass(kind, KeyboardInterrupt) and not isinstance(error, TrainingInterrupted):
            raise self._interrupted() from None
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
        optimizer.zero_grad()
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        optimizer.step()

    def keep_if_best(self, step, score):
        """Keep a copy of the weights if ``score`` (lower is better) is the best so far."""
        if self.best is None or score < self.best:
            self.best, self.best_step = score, step
            self.best_state = copy.deepcopy(self.model.state_dict())

    def end_step(self, loss, **shown):
        """Show the step's values and call ``callback(step, loss)``."""
        self.bar.update(self.step, loss=loss, **shown)
        if self.callback is not None:
            self.callback(self.step, loss)

    def _interrupted(self):
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            kept = f"the best validation weights (step {self.best_step})"
        else:
            self.last_finite.restore()  # consistent weights, even if Adam was stopped half-way
            kept = f"the weights of step {self.last_finite.saves} (its loss is the last recorded)"
        self.model.eval()
        self.history["seconds"] = time.perf_counter() - self.start
        self.history["interrupted_at"] = self.step
        return TrainingInterrupted(self.step, self.steps, self.history, kept)

    def finish(self):
        """The history, with the best validation weights (if any) in the model, in eval mode."""
        self.bar.close()
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
    with TrainingRun(flow, steps, progress, history, callback) as run:
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
    flow.train()
    with TrainingRun(flow, steps, progress, history, callback) as run:
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
