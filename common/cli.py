"""The skeleton every demo (``python -m <paper>``, the VAE scripts, the benchmark) is built on.

* ``demo_parser(doc, prog)``: the shared flags --quick (also FLOWS_FAST=1), --out, --seed, --device,
  --no-progress and --save (write every trained model's checkpoint into --out);
* ``positive`` / ``non_negative``: argparse types, so --steps 0 or --seed -1 is a one-line argparse
  error (exit 2) before any work;
* ``parse_demo_args(parser, argv, full=FULL, quick=QUICK)``: parse, check --device and --out,
  fill every option left unset (None) from the demo's FULL or QUICK settings dict (one per section
  with ``section=``), create --out, seed;
* ``fit(args, name, train, model, ...)``: one training run with the demo's progress switch; with
  --save, or when Ctrl-C stops it, the model (best weights) and its history go to --out/NAME.pt;
* ``run(main)``: the ``if __name__ == "__main__"`` entry: Ctrl-C exits with code 130, no traceback;
* ``dispatch(args, default, **commands)``: run the demo's section chosen by its flags, then print
  the total time.

What the demos print as tables and banners is ``common/report.py``.
"""

import argparse
import math
import os
import sys
import time

import torch

from common.checkpoint import save_checkpoint
from common.runtime import fast_mode, seed_everything
from common.train import TrainingInterrupted


def positive(text):
    """argparse type: an integer >= 1."""
    return _integer(text, 1)


def non_negative(text):
    """argparse type: an integer >= 0."""
    return _integer(text, 0)


def positive_float(text):
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _integer(text, low):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
    return value


def demo_parser(doc, prog, out=None, save=True):
    """An argparse parser named ``python -m <prog>`` with the flags every demo shares.

    ``out`` is the default of --out (``runs/<prog>`` with dots as underscores); ``save=False``
    leaves out --save (a demo that trains nothing worth keeping).
    """
    parser = argparse.ArgumentParser(
        f"python -m {prog}", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny run, seconds (same as FLOWS_FAST=1)"
    )
    parser.add_argument(
        "--out",
        default=out or os.path.join("runs", prog.replace(".", "_")),
        help="directory for figures, tables and checkpoints (default %(default)s)",
    )
    parser.add_argument("--seed", type=non_negative, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)"
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress lines on stderr"
    )
    if save:
        parser.add_argument(
            "--save",
            action="store_true",
            help="also write every trained model to --out as NAME.pt (common.checkpoint.load_flow)",
        )
    return parser


def check_device(parser, device):
    """--device must hold values and compute on them: a tiny sum is computed there and read back,
    so a device that is not here (cuda without a GPU) or holds shapes only (meta) is an argparse
    error before any work."""
    try:
        if torch.device(device).type == "meta":
            raise ValueError("meta tensors have shapes but no values, so nothing can train on them")
        (torch.ones(2, device=device) * 2).sum().item()
    except (RuntimeError, AssertionError, ValueError, ImportError, TypeError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        parser.error(f"--device {device!r} is not usable here ({message}); use cpu")


def check_out(parser, out, flag="--out"):
    """--out must be a directory that exists or can be created, and be writable (it is created)."""
    if os.path.exists(out) and not os.path.isdir(out):
        parser.error(f"{flag} {out!r} is an existing file; give a directory")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as error:
        parser.error(f"{flag} {out!r} cannot be created ({error.strerror or error})")
    if not os.access(out, os.W_OK | os.X_OK):
        parser.error(f"{flag} {out!r} is not writable")


def settings(args, full=None, quick=None, section=None):
    """Fill every option that is None (not given) from the FULL or QUICK dict; return the dict used.

    With ``section`` (a function of ``args``), FULL and QUICK hold one dict per section, e.g.
    ``{"2d": {...}, "digits": {...}}`` and ``section=lambda args: args.data``.
    """
    chosen = (quick if args.quick else full) or {}
    if section is not None:
        chosen = chosen[section(args)]
    for key, value in chosen.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return chosen


def parse_demo_args(parser, argv=None, full=None, quick=None, section=None):
    """Parse ``argv``; check --device and --out (argparse errors, exit 2, before any work); fold
    FLOWS_FAST into --quick; fill options left unset from ``full`` / ``quick``; seed."""
    args = parser.parse_args(argv)
    check_device(parser, args.device)
    check_out(parser, args.out)
    args.quick = args.quick or fast_mode()  # --out is created by check_out
    settings(args, full, quick, section)
    seed_everything(args.seed)
    return args


def history_record(history):
    """The plain-Python part of a training history (no weight snapshots), for a checkpoint."""
    return {k: v for k, v in history.items() if k != "snapshots"}


def fit(args, name, train, model, *positional, save=None, **options):
    """``train(model, *positional, progress=args.progress, **options)``, e.g. ``train_forward_kl``.

    With --save (or ``save=True``; ``save=False`` leaves it to the caller, e.g. after a
    post-training step, with ``save_run``) the trained model and its history are written to
    ``<out>/<name>.pt``. On Ctrl-C (``TrainingInterrupted``) they are written there in any case
    (the best weights so far) before the interruption goes on to ``run``, which exits with 130.
    """
    options.setdefault("progress", args.progress)
    try:
        history = train(model, *positional, **options)
    except TrainingInterrupted as stop:
        path = save_run(args, name, model, stop.history)
        print(f"\n{name}: {stop}; checkpoint and partial history in {path}", file=sys.stderr)
        raise
    if getattr(args, "save", False) if save is None else save:
        save_run(args, name, model, history)
    return history


def save_run(args, name, model, history):
    """Write ``model`` and its history to ``<out>/<name>.pt``; return the path."""
    return save_checkpoint(
        model, os.path.join(args.out, f"{name}.pt"), history=history_record(history)
    )


def run(main, argv=None):
    """Call ``main(argv)``; Ctrl-C ends the demo with exit code 130 and one line, no traceback."""
    try:
        return main(argv)
    except KeyboardInterrupt as stop:
        said = isinstance(stop, TrainingInterrupted) or not str(stop)  # fit has said where
        print(f"\nstopped by Ctrl-C{'' if said else f': {stop}'}", file=sys.stderr)
        raise SystemExit(130) from None


def dispatch(args, default, **commands):
    """Run ``commands[name](args)`` for the first ``name`` whose option is set (e.g. ``data``,
    ``target``), else ``default(args)``; then print the total time."""
    start = time.perf_counter()
    for option, command in commands.items():
        if getattr(args, option, None):
            command(args)
            break
    else:
        default(args)
    print(f"total {time.perf_counter() - start:.0f} s")
