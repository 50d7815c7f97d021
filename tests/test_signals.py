"""Real signals sent to a running demo (issue 25, items 4 and 14): SIGTERM and SIGHUP stop it like
Ctrl-C, two quick SIGINTs still exit 130 with the checkpoint written, a run killed with SIGKILL
resumes from its periodic checkpoint to the numbers of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from common.checkpoint import load_flow, read_checkpoint

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ROOT = Path(__file__).resolve().parents[1]
NAME = "planar_U1_K2"  # the one training of the tiny run below


def demo(out, steps, *flags):
    """Start a tiny planar demo (one flow, K = 2, reverse KL) writing into ``out``."""
    argv = ["--quick", "--kind", "planar", "--targets", "U1", "--K", "2", "--n-eval", "500"]
    command = [sys.executable, "-m", "planar_flows", *argv, "--steps", str(steps)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [*command, "--no-progress", "--out", str(out), *flags],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path, process, timeout=120):
    """Wait until ``path`` exists (the run has reached a periodic save)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the run ended before {path.name}: {process.stderr.read()}"
        assert time.monotonic() < deadline, f"no {path.name} after {timeout} s"
        time.sleep(0.005)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_like_ctrl_c(tmp_path, signum):
    process = demo(tmp_path, 100_000, "--save-every", "20")
    wait_for(tmp_path / f"{NAME}.resume.pt", process)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err and f"stopped by {signal.Signals(signum).name}" in err, err
    assert f"{NAME}: interrupted at step" in err, err
    model, extra = load_flow(tmp_path / f"{NAME}.pt")  # best weights and partial history
    history = extra["history"]
    assert len(history["loss"]) == history["completed_steps"] >= 20
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("count", [2, 1000])
def test_sigints_20_ms_apart_exit_130_with_the_checkpoint(tmp_path, count):
    # two, as a double Ctrl-C; then one every 20 ms until it exits, so that some land while it
    # writes the checkpoint and some during the interpreter's shutdown
    process = demo(tmp_path, 100_000, "--save-every", "20")
    wait_for(tmp_path / f"{NAME}.resume.pt", process)
    for _ in range(count):
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGINT)
        time.sleep(0.02)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "stopped by Ctrl-C" in err, err
    load_flow(tmp_path / f"{NAME}.pt")


def test_a_run_killed_after_a_periodic_save_resumes_to_the_same_numbers(tmp_path):
    whole = demo(tmp_path / "whole", 400, "--save", "--save-every", "50")
    out_whole, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err
    assert not (tmp_path / "whole" / f"{NAME}.resume.pt").exists()  # removed once finished

    killed = demo(tmp_path / "killed", 400, "--save", "--save-every", "50")
    periodic = tmp_path / "killed" / f"{NAME}.resume.pt"
    wait_for(periodic, killed)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    step = read_checkpoint(periodic)["extra"]["resume"]["step"]
    assert step % 50 == 0 and step < 400

    resumed = demo(tmp_path / "killed", 400, "--save", "--save-every", "50", "--resume", periodic)
    out_resumed, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    a, extra_a = load_flow(tmp_path / "whole" / f"{NAME}.pt")
    b, extra_b = load_flow(tmp_path / "killed" / f"{NAME}.pt")
    b_state = b.state_dict()
    assert all(torch.equal(v, b_state[k]) for k, v in a.state_dict().items())
    assert extra_a["history"]["loss"] == extra_b["history"]["loss"]
    table = [line for line in out_whole.splitlines() if line.startswith("| planar")]
    assert table and table == [line for line in out_resumed.splitlines() if line in table]


def test_resume_refuses_what_is_not_a_periodic_checkpoint(tmp_path, capsys):
    from planar_flows.__main__ import main

    (tmp_path / "text.pt").write_text("hello")
    for path in (tmp_path / "text.pt", tmp_path / "missing.pt"):
        with pytest.raises(SystemExit) as info:
            main(["--resume", str(path), "--out", str(tmp_path / "o")])
        assert info.value.code == 2 and "--resume" in capsys.readouterr().err


def test_ctrl_c_while_the_demo_imports_is_one_line(tmp_path):
    # python -v names each module as it is imported: signal just after common.runtime, while
    # torch, matplotlib and the rest are still loading
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-v", "-m", "maf", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith("import 'common.runtime'"):
            process.send_signal(signal.SIGINT)
            break
    err = "".join(seen) + process.stderr.read()
    process.wait(timeout=60)
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-2000:]
    assert "\nstopped by Ctrl-C while starting\n" in err
