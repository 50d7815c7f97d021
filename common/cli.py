"""The skeleton every demo (``python -m <paper>``, the VAE scripts, the benchmark) is built on.

* ``demo_parser(doc, prog)``: the shared flags --quick (also FLOWS_FAST=1), --out, --seed, --device,
  --no-progress, --save (write every trained model's checkpoint into --out), --save-every N
  (periodic checkpoints, --out/NAME.resume.pt) and --resume PATH (continue from one);
* ``positive`` / ``non_negative``: argparse types, so --steps 0 or --seed -1 is a one-line argparse
  error (exit 2) before any work;
* ``parse_demo_args(parser, argv, full=FULL, quick=QUICK)``: parse, check --device and --out,
  fill every option left unset (None) from the demo's FULL or QUICK settings dict (one per section
  with ``section=``), create --out, seed;
* ``fit(args, name, train, model, ...)``: one training run with the demo's progress switch; with
  --save, or when Ctrl-C stops it, the model (best weights) and its history go to --out/NAME.pt; a
  checkpoint that cannot be written (full or read-only disk) is one line on stderr, the run goes on
  with the model in memory and ``run`` exits with 1 at the end;
* ``run(main)``: the ``if __name__ == "__main__"`` entry: Ctrl-C, SIGTERM and SIGHUP exit with
  128 + the signal's number (130 for Ctrl-C) and one line, no traceback (signals that come while
  it stops are ignored); a file that cannot be written is one line and exit 1;
* ``dispatch(args, default, **commands)``: run the demo's section chosen by its flags, then print
  the total time.

What the demos print as tables and banners is ``common/report.py``.
"""

import argparse
import errno
import inspect
import math
import os
import signal
import sys
import time

import torch

from common.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from common.runtime import (
    Stopped,
    fast_mode,
    ignore_stop_signals,
    seed_everything,
    stop_on_signals,
)
from common.train import Periodic, TrainingInterrupted

SAVE_EVERY = 500  # default --save-every of full runs (steps); --quick runs save no periodic ones
REFUSED_WRITES = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
FAILED_WRITES = []  # (what, path, reason) of every write that failed in this process


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
    parser.default_out = out or os.path.join("runs", prog.replace(".", "_"))
    parser.add_argument(
        "--out",
        help="directory for figures, tables and checkpoints (default "
        f"{parser.default_out}, or {parser.default_out}-quick with --quick)",
    )
    parser.add_argument(
        "--threads",
        type=positive,
        default=1,
        help="CPU threads for torch (default 1: these models are small, and one thread runs them "
        "fastest; more helps only large models)",
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
        parser.add_argument(
            "--save-every",
            type=non_negative,
            metavar="N",
            help=f"write a checkpoint to resume from every N steps, --out/NAME.resume.pt; 0: none "
            f"(default {SAVE_EVERY}, --quick 0)",
        )
        parser.add_argument(
            "--resume",
            metavar="PATH",
            help="continue the training that wrote this NAME.resume.pt (same flags and seed)",
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
    check_resume(parser, args)
    args.quick = args.quick or fast_mode()
    if args.out is None:  # a quick run does not overwrite a full run's figures
        args.out = parser.default_out + ("-quick" if args.quick else "")
    check_out(parser, args.out)  # creates --out
    torch.set_num_threads(args.threads)
    if getattr(args, "save_every", 0) is None:
        args.save_every = 0 if args.quick else SAVE_EVERY
    settings(args, full, quick, section)
    seed_everything(args.seed)
    return args


def check_resume(parser, args):
    """--resume must name a readable periodic checkpoint (an argparse error otherwise); its
    training name goes to ``args.resume_name``."""
    args.resume_name = None
    if getattr(args, "resume", None) is None:
        return
    try:
        extra = read_checkpoint(args.resume)["extra"]
    except CheckpointError as error:
        parser.error(f"--resume: {error}")
    if not isinstance(extra.get("resume"), dict) or not isinstance(extra.get("name"), str):
        parser.error(f"--resume {args.resume!r} is not a periodic checkpoint (NAME.resume.pt)")
    args.resume_name = extra["name"]


def history_record(history):
    """The plain-Python part of a training history (no weight snapshots), for a checkpoint."""
    return {k: v for k, v in history.items() if k != "snapshots"}


def fit(args, name, train, model, *positional, save=None, **options):
    """``train(model, *positional, progress=args.progress, **options)``, e.g. ``train_forward_kl``.

    With --save (or ``save=True``; ``save=False`` leaves it to the caller, e.g. after a
    post-training step, with ``save_run``) the trained model and its history are written to
    ``<out>/<name>.pt``. On Ctrl-C (``TrainingInterrupted``) they are written there in any case
    (the best weights so far) before the interruption goes on to ``run``, which exits with 130.
    A ``train`` that takes ``periodic`` (the forward- and reverse-KL loops) writes
    ``<out>/<name>.resume.pt`` every --save-every steps (removed when it finishes) and resumes from
    --resume when that file is this training's.
    """
    options.setdefault("progress", args.progress)
    resume_path = os.path.join(args.out, f"{name}.resume.pt")
    if "periodic" in inspect.signature(train).parameters:
        options.setdefault("periodic", periodic(args, name, model, resume_path))
    elif getattr(args, "resume_name", None) == name:
        raise SystemExit(f"--resume: {train.__name__} writes no periodic checkpoints to resume")
    try:
        history = train(model, *positional, **options)
    except TrainingInterrupted as stop:
        path = save_run(args, name, model, stop.history)
        where = f"checkpoint and partial history in {path}" if path else "nothing written"
        print(f"\n{name}: {stop}; {where}", file=sys.stderr)
        raise
    try:
        os.remove(resume_path)  # superseded by the finished run
    except OSError:
        pass  # none was written, or the disk refuses: it is only a stale file then
    if getattr(args, "save", False) if save is None else save:
        save_run(args, name, model, history)
    return history


def periodic(args, name, model, path):
    """The ``Periodic`` of the training ``name``: every --save-every steps to ``path``, and the
    state of --resume if it is this training's (its weights loaded into ``model``)."""
    resume = None
    if getattr(args, "resume_name", None) == name:
        resume = load_checkpoint(model, args.resume)["resume"]
        args.resume_name = None  # resumed once; a later training of that name starts afresh

    def write(model, state):
        written(
            "the periodic checkpoint",
            path,
            lambda: save_checkpoint(model, path, name=name, resume=state),
        )

    return Periodic(getattr(args, "save_every", 0) or 0, write, resume)


def written(what, path, write):
    """``write()``, which writes ``path``; if the disk refuses (full, read-only, no permission),
    one line on stderr says what could not be written where, the failure is remembered for
    ``run``'s exit code, and None is returned instead of raising."""
    try:
        return write()
    except (OSError, RuntimeError) as error:
        cause = error
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        reason = (cause.strerror or str(cause)) if cause is not None else str(error).splitlines()[0]
        if not any(path == failed[1] for failed in FAILED_WRITES):  # once per file
            print(f"could not write {what} to {path}: {reason}; the run goes on", file=sys.stderr)
        FAILED_WRITES.append((what, path, reason))
        return None


def save_run(args, name, model, history):
    """Write ``model`` and its history to ``<out>/<name>.pt``; return the path (None if the disk
    refused it: one line on stderr, see ``written``)."""
    path = os.path.join(args.out, f"{name}.pt")
    record = history_record(history)
    return written(
        f"the checkpoint of {name}",
        path,
        lambda: save_checkpoint(model, path, history=record),
    )


def run(main, argv=None):
    """Call ``main(argv)`` as a program's entry, with no traceback for what a user causes:

    * Ctrl-C, SIGTERM and SIGHUP stop it like Ctrl-C (``fit`` writes the best weights and partial
      history): one line, exit 128 + the signal's number (130 for Ctrl-C); further signals while
      it stops are ignored;
    * a file that cannot be written (full or read-only disk): one line naming it, exit 1.
    """
    FAILED_WRITES.clear()
    restore = stop_on_signals()
    try:
        result = main(argv)
    except KeyboardInterrupt as stop:
        signum = getattr(stop, "signum", None) or signal.SIGINT
        said = isinstance(stop, TrainingInterrupted) or not str(stop) or isinstance(stop, Stopped)
        how = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\nstopped by {how}{'' if said else f': {stop}'}", file=sys.stderr)
        if getattr(stop, "signum", None) is None:
            restore()  # raised by code, not a signal: the caller may go on
        else:
            ignore_stop_signals()  # the process exits: a second signal must not kill it first
        raise SystemExit(128 + signum) from None
    except OSError as error:
        restore()
        if error.errno not in REFUSED_WRITES:
            raise
        where = f" {error.filename!r}" if error.filename else ""
        print(f"could not write{where}: {error.strerror or error}", file=sys.stderr)
        raise SystemExit(1) from None
    restore()
    if FAILED_WRITES:
        what, path, reason = FAILED_WRITES[0]
        others = len({failed[1] for failed in FAILED_WRITES}) - 1
        more = f" (and {others} more files)" if others else ""
        print(f"could not write {what} to {path}: {reason}{more}", file=sys.stderr)
        raise SystemExit(1)
    return result


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
    if getattr(args, "resume_name", None) is not None:
        print(
            f"--resume {args.resume}: no training named {args.resume_name!r} ran with these flags; "
            "nothing was resumed",
            file=sys.stderr,
        )
        raise SystemExit(1)
