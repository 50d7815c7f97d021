"""Training loops shared by every paper: forward KL (maximum likelihood) and reverse KL (from an
energy).

Both loops: Adam, optional gradient clipping, a progress line on stderr, and a guard that stops on a
non-finite loss, names the step, and restores the last weights that gave a finite loss.
"""

import argparse
import copy
import os
import random
import sys
import time

import numpy as np
import torch


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or inf loss; the model holds the last weights whose loss was finite."""


def fast_mode():
    """True when the environment asks for tiny runs (CI executes notebooks with FLOWS_FAST=1)."""
    return os.environ.get("FLOWS_FAST", "0") not in ("", "0")


def seed_everything(seed):
    """Seed Python, NumPy and torch so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def demo_parser(doc, paper):
    """An argparse parser with the flags every paper's demo shares: --quick, --out runs/<paper>, --seed, --device."""
    parser = argparse.ArgumentParser(
        f"python -m {paper}", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny run, seconds (same as FLOWS_FAST=1)"
    )
    parser.add_argument(
        "--out", default=os.path.join("runs", paper), help="directory for the figures"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)"
    )
    return parser


def parse_demo_args(parser, argv=None):
    """Parse, check the device, fold FLOWS_FAST into --quick, create --out and seed everything."""
    args = parser.parse_args(argv)
    try:
        torch.empty(0, device=args.device)
    except (RuntimeError, AssertionError) as error:
        parser.error(f"--device {args.device!r} is not usable here ({error}); use cpu")
    args.quick = args.quick or fast_mode()
    os.makedirs(args.out, exist_ok=True)
    seed_everything(args.seed)
    return args


class Progress:
    """A one-line progress display on stderr: step, loss and rate, refreshed every ``every`` steps."""

    def __init__(self, steps, enabled=True, every=None):
        self.steps, self.enabled, self.start = steps, enabled, time.perf_counter()
        self.every = every or max(1, steps // 50)

    def update(self, step, **values):
        if self.enabled and (step % self.every == 0 or step == self.steps):
            rate = step / (time.perf_counter() - self.start + 1e-9)
            shown = "  ".join(f"{k} {v:.4f}" for k, v in values.items())
            end = "\n" if step == self.steps else ""
            print(
                f"\r  step {step:>6}/{self.steps}  {shown}  ({rate:.0f} steps/s)",
                end=end,
                file=sys.stderr,
            )


class _LastFinite:
    """Keeps a copy of the weights (and buffers) that last gave a finite loss, in preallocated tensors."""

    def __init__(self, flow):
        self.flow, self.saved = flow, {k: v.detach().clone() for k, v in flow.state_dict().items()}

    def save(self):
        with torch.no_grad():
            for k, v in self.flow.state_dict().items():
                self.saved[k].copy_(v)

    def restore(self):
        self.flow.load_state_dict(self.saved)


def _step(flow, optimizer, loss, step, last_finite, clip):
    """One optimiser step, guarded: a non-finite loss restores the last finite weights and raises."""
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
        torch.nn.utils.clip_grad_norm_(flow.parameters(), clip)
    optimizer.step()


def _batches(data, context, batch_size, generator=None):
    """Endless shuffled minibatches (x, context) from a tensor dataset."""
    n = data.shape[0]
    while True:
        perm = torch.randperm(n, generator=generator, device="cpu")
        for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            idx = perm[i : i + batch_size].to(data.device)
            yield data[idx], None if context is None else context[idx]


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
):
    """Maximum likelihood: minimise -E_data[log q(x)] with Adam.

    Args:
        data: a target with ``.sample(n)`` (fresh samples every step) or a tensor (N, D) (minibatches).
        context: with a tensor dataset, the (N, C) context of each row.
        val: an optional (M, D) validation tensor; the weights with the best validation NLL are kept.
        preprocess: an optional function applied to each batch (e.g. dequantisation of digits).
        snapshots: optional steps at which to keep a copy of the weights (history["snapshots"][step]),
            e.g. to plot the density during training.
    Returns:
        a history dict: "loss" per step, "val" as (step, nll) pairs, "seconds", "snapshots".
    """
    param = next(flow.parameters())
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    batches = None if hasattr(data, "sample") else _batches(data, context, batch_size)
    history = {"loss": [], "val": [], "snapshots": {}, "seconds": 0.0}
    best, best_state, last_finite = float("inf"), None, _LastFinite(flow)
    bar, start = Progress(steps, progress), time.perf_counter()
    for step in range(1, steps + 1):
        flow.train()
        if batches is None:
            x, c = data.sample(batch_size).to(param), None
        else:
            x, c = next(batches)
        x = x.to(param) if preprocess is None else preprocess(x).to(param)
        loss = -flow.log_prob(x, c).mean()
        _step(flow, optimizer, loss, step, last_finite, clip)
        history["loss"].append(loss.item())
        if snapshots and step in snapshots:
            history["snapshots"][step] = copy.deepcopy(flow.state_dict())
        if val is not None and (step % val_every == 0 or step == steps):
            flow.eval()
            with torch.no_grad():
                v = val if preprocess is None else preprocess(val)
                nll = -flow.log_prob(v.to(param), val_context).mean().item()
            history["val"].append((step, nll))
            if nll < best:
                best, best_state = nll, copy.deepcopy(flow.state_dict())
        bar.update(
            step, loss=loss.item(), **({"val": history["val"][-1][1]} if history["val"] else {})
        )
    if best_state is not None:
        flow.load_state_dict(best_state)  # keep the weights with the best validation NLL
    flow.eval()
    history["seconds"] = time.perf_counter() - start
    return history


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
):
    """Reverse KL (the free energy of Rezende & Mohamed 2015, Eq. 15): minimise E_q[log q(x) +
    beta_t U(x)].

    Needs only the unnormalised density exp(-U): log Z is a constant. ``energy`` has ``.energy(x)``
    or is a callable U. ``anneal=T`` uses beta_t = min(1, 0.01 + t / T) (Rezende & Mohamed, Sec.
    6.1). Samples come from ``flow.rsample_and_log_prob`` (reparameterised, one pass of
    ``inverse``).
    """
    U = energy.energy if hasattr(energy, "energy") else energy
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    history = {"loss": [], "beta": [], "snapshots": {}, "seconds": 0.0}
    last_finite, bar, start = _LastFinite(flow), Progress(steps, progress), time.perf_counter()
    flow.train()
    for step in range(1, steps + 1):
        beta = 1.0 if anneal is None else min(1.0, 0.01 + step / anneal)
        # BEGIN SOLUTION common.reverse_kl
        # draw x ~ q with its log q(x) in one reparameterised pass, one call of
        # flow.rsample_and_log_prob(batch_size, context) per step; the loss is the mean of
        # log q(x) + beta U(x).
        x, log_q = flow.rsample_and_log_prob(batch_size, context)
        loss = (log_q + beta * U(x)).mean()
        # END SOLUTION
        _step(flow, optimizer, loss, step, last_finite, clip)
        history["loss"].append(loss.item())
        history["beta"].append(beta)
        if snapshots and step in snapshots:
            history["snapshots"][step] = copy.deepcopy(flow.state_dict())
        bar.update(step, loss=loss.item(), beta=beta)
    flow.eval()
    history["seconds"] = time.perf_counter() - start
    return history


def save_checkpoint(flow, path, **extra):
    """Save the weights (and any plain-Python extras) so ``load_checkpoint`` restores them."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save({"state_dict": flow.state_dict(), "extra": extra}, path)


def load_checkpoint(flow, path, map_location="cpu"):
    """Load weights saved by ``save_checkpoint`` (``weights_only=True``: no arbitrary code runs)."""
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    flow.load_state_dict(checkpoint["state_dict"])
    return checkpoint["extra"]
