"""The demo skeleton (common/cli.py): every entry point refuses bad arguments before any work,
--help works, a tiny run goes through main(argv), and Ctrl-C keeps the best weights."""

import importlib
import importlib.util
from pathlib import Path

import pytest
import torch

from common import cli
from common.checkpoint import load_flow
from common.flows import Flow
from common.targets import get_target
from common.train import TrainingInterrupted, train_forward_kl, train_reverse_kl
from maf import MAF

ENTRY_POINTS = [
    "planar_flows.__main__",
    "iaf.__main__",
    "maf.__main__",
    "nsf.__main__",
    "realnvp.__main__",
    "planar_flows.vae",
    "iaf.vae",
]


def refused(capsys, main, argv, flag):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and flag in err, err
    return err


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_bad_arguments_are_argparse_errors_before_any_work(module, tmp_path, capsys):
    main = importlib.import_module(module).main
    out = ["--out", str(tmp_path / "out")]
    assert "must be an integer >= 1, got 0" in refused(
        capsys, main, ["--steps", "0", *out], "--steps"
    )
    refused(capsys, main, ["--steps", "-3", *out], "--steps")
    assert ">= 0, got -1" in refused(capsys, main, ["--seed", "-1", *out], "--seed")
    refused(capsys, main, ["--device", "no-such-device", *out], "--device")
    # meta holds shapes, no values: nothing can train on it
    assert "meta" in refused(capsys, main, ["--device", "meta", *out], "--device")
    (tmp_path / "file").write_text("")
    assert "existing file" in refused(capsys, main, ["--out", str(tmp_path / "file")], "--out")
    refused(capsys, main, ["--out", str(tmp_path / "file" / "sub")], "--out")
    refused(capsys, main, ["--out", "/proc/no/such/dir"], "--out")
    assert not (tmp_path / "out").exists()  # nothing was created, nothing ran
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0 and "--no-progress" in capsys.readouterr().out


def test_iaf_vae_refuses_an_unknown_step(tmp_path, capsys):
    from iaf.vae import main

    err = refused(capsys, main, ["--step", "lstm", "--out", str(tmp_path / "o")], "--step")
    assert "gated" in err and "affine" in err  # the choices are named


def test_benchmarks_refuse_before_computing(tmp_path, capsys):
    if not (Path(__file__).resolve().parent.parent / "benchmarks").is_dir():
        pytest.skip("the student copy does not ship benchmarks/")
    from benchmarks.__main__ import main
    from benchmarks.speed import main as speed

    refused(capsys, main, ["--seeds", "-1", "--out", str(tmp_path)], "--seeds")
    refused(capsys, main, ["--device", "cuda", "--out", str(tmp_path)], "--device")
    (tmp_path / "file").write_text("")
    refused(capsys, main, ["--quick", "--out", str(tmp_path / "file")], "--out")
    refused(capsys, main, ["--report", "--out", str(tmp_path / "none")], "--report")
    refused(capsys, speed, ["maf", "--steps", "0"], "--steps")
    refused(capsys, speed, ["maf", "--features", "0"], "--features")
    refused(capsys, speed, ["maf", "--actnorm"], "--actnorm")
    refused(capsys, speed, ["iaf", "--sampling"], "--sampling")
    refused(capsys, speed, ["iaf", "--step", "lstm"], "--step")
    refused(capsys, speed, ["maf", "--compile", "--sampling"], "--compile")
    from benchmarks.profile import main as profile

    refused(capsys, profile, ["nsf", "--floor"], "--floor")
    refused(capsys, profile, ["glow"], "glow")


def test_settings_fill_only_what_was_not_given(tmp_path, monkeypatch):
    monkeypatch.delenv("FLOWS_FAST", raising=False)
    parser = cli.demo_parser("doc", "paper")
    parser.add_argument("--steps", type=cli.positive)
    full, quick = {"steps": 100, "n": 5}, {"steps": 2, "n": 1}
    args = cli.parse_demo_args(parser, ["--out", str(tmp_path / "o"), "--seed", "3"], full, quick)
    assert (args.steps, args.n, args.seed, args.quick, args.progress) == (100, 5, 3, False, True)
    assert (tmp_path / "o").is_dir()
    monkeypatch.setenv("FLOWS_FAST", "1")
    args = cli.parse_demo_args(parser, ["--out", str(tmp_path / "o"), "--steps", "7"], full, quick)
    assert args.quick and (args.steps, args.n) == (7, 1)


def test_a_tiny_quick_run_through_main_writes_a_loadable_checkpoint(tmp_path, capsys):
    from planar_flows.__main__ import main

    argv = ["--quick", "--kind", "planar", "--targets", "U1", "--K", "2", "--steps", "5"]
    main([*argv, "--n-eval", "500", "--no-progress", "--save", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| planar | U1 | 1.8775 |" in out and "5 Adam steps per flow" in out
    flow, extra = load_flow(tmp_path / "planar_U1_K2.pt")
    assert len(extra["history"]["loss"]) == 5 and flow.builder["args"]["transforms"] == 2
    assert torch.isfinite(flow.log_prob(torch.randn(3, 2))).all()
    assert (tmp_path / "figure3_planar.png").exists() and (tmp_path / "kl_table.md").exists()


class StopAt:
    """A callback that raises KeyboardInterrupt at ``step``, as Ctrl-C would."""

    def __init__(self, step):
        self.step = step

    def __call__(self, step, loss):
        if step == self.step:
            raise KeyboardInterrupt


def test_ctrl_c_keeps_the_best_weights_and_the_partial_history():
    torch.manual_seed(0)
    flow, data = MAF(2, 1, (8,)), torch.randn(256, 2) * 0.5 + 1.0
    best = {}

    def remember(step, loss):
        if step == 20:
            best.update({k: v.clone() for k, v in flow.state_dict().items()})
        StopAt(27)(step, loss)

    with pytest.raises(TrainingInterrupted, match="step 27 of 50") as info:
        train_forward_kl(
            flow, data, 50, 64, 1e-2, val=data[:64], val_every=10, progress=False, callback=remember
        )
    history = info.value.history
    assert info.value.step == 27 and len(history["loss"]) == 27 and history["interrupted_at"] == 27
    nll = dict(history["val"])
    assert set(nll) == {10, 20}
    if nll[20] < nll[10]:  # the best validation weights are those of step 20
        assert all(torch.equal(best[k], v) for k, v in flow.state_dict().items())
    assert not flow.training


def test_ctrl_c_in_reverse_kl_keeps_finite_weights_and_run_exits_130(tmp_path, capsys):
    flow = MAF(2, 1, (8,))
    with pytest.raises(TrainingInterrupted, match="weights of step 3"):
        train_reverse_kl(flow, get_target("U1"), 10, 32, progress=False, callback=StopAt(3))

    def main(argv):
        args = cli.parse_demo_args(cli.demo_parser("doc", "x"), ["--out", str(tmp_path)])
        cli.fit(args, "u1", train_reverse_kl, flow, get_target("U1"), 10, 32, callback=StopAt(4))

    with pytest.raises(SystemExit) as info:
        cli.run(main)
    assert info.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted at step 4 of 10" in err and "Traceback" not in err
    model, extra = load_flow(tmp_path / "u1.pt")  # where the run would have put it
    assert len(extra["history"]["loss"]) == 4


def test_empty_dataset_and_nan_data_say_what_is_wrong():
    flow = MAF(2, 1, (8,))
    with pytest.raises(ValueError, match="non-empty"):
        train_forward_kl(flow, torch.zeros(0, 2), 5, progress=False)
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        train_forward_kl(flow, torch.zeros(4, 2), 0, progress=False)
    data = torch.randn(64, 2)
    data[5] = float("nan")
    before = Flow(MAF(2, 1, (8,)).transform, features=2)
    before.load_state_dict(flow.state_dict())
    with pytest.raises(ValueError, match="must not contain NaN"):  # refused before any step
        train_forward_kl(flow, data, 5, batch_size=64, progress=False)
    assert all(
        torch.equal(a, b) for a, b in zip(flow.parameters(), before.parameters(), strict=True)
    )


def test_progress_writes_plain_lines_when_not_a_terminal(capsys):
    bar = cli_progress(10)
    for step in range(1, 11):
        bar.update(step, loss=0.5)
    bar.close()
    err = capsys.readouterr().err
    assert "\r" not in err and err.count("\n") == 10 and "step     10/10  loss 0.5000" in err


def cli_progress(steps):
    from common.train import Progress

    return Progress(steps, every=1)


def _exit_code(main, argv):
    """The exit status of ``main(argv)``: its SystemExit code or its return value."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


# (module, argv, what the error names); {tmp} is a scratch folder holding "file" (a text file),
# "notes.zip" (text, not a zip) and "student" (a folder); {tmp}/never must not be created
BAD_ARGUMENTS = [
    ("realnvp.__main__", "--data digits --scales 5 --out {tmp}/never", "--scales"),
    ("realnvp.__main__", "--scales 9 --out {tmp}/never", "--scales"),
    ("course.grade", "--parts realnvp.masks --timeout -1", "--timeout"),
    ("course.grade", "--parts realnvp.masks --timeout nan", "--timeout"),
    ("course.grade", "--parts realnvp.masks --timeout inf", "--timeout"),
    ("course.grade", "--parts realnvp.masks --timeout 0", "--timeout"),
    ("course.grade", "--parts realnvp.masks --jobs 0", "--jobs"),
    ("course.gradescope", "--parts realnvp.masks --timeout nan --out {tmp}/never", "--timeout"),
    ("course.gradescope", "--parts realnvp.masks --timeout -1 --out {tmp}/never", "--timeout"),
    ("course.gradescope", "--parts realnvp.masks --jobs -2 --out {tmp}/never", "--jobs"),
    ("course.gradescope", "--try {tmp}/notes.zip --submission {tmp}/student", "--try"),
    ("course.gradescope", "--try {tmp}/none.zip --submission {tmp}/student", "--try"),
    ("course.__main__", "--bogus", "--bogus"),
    ("course.__main__", "grade", "grade"),
    ("tools.site", "build --out {tmp}/file", "--out"),
    ("tools.site", "build --out {tmp}/file/sub", "--out"),
    ("tools.fuzz", "--scale nan", "--scale"),
    ("tools.fuzz", "--scale inf", "--scale"),
    ("tools.fuzz", "--scale -0.1", "--scale"),
    ("tools.lines", "nonsense_folder", "nonsense_folder"),
]


@pytest.mark.parametrize(
    "module, argv, named", BAD_ARGUMENTS, ids=[f"{m} {a}" for m, a, _ in BAD_ARGUMENTS]
)
def test_every_cli_refuses_a_bad_argument_in_one_line_before_any_work(
    module, argv, named, tmp_path, capsys
):
    """Issue 25, item 12 (and item 6's --timeout): exit 2 with argparse's usage and one error line
    naming the argument, no traceback, nothing written."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is instructors' tooling, not shipped in the student copy")
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "notes.zip").write_text("not a zip")
    (tmp_path / "student").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.format(tmp=tmp_path) for a in argv.split()]
    code = _exit_code(importlib.import_module(module).main, argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert "Traceback" not in err and lines and ": error: " in lines[-1] and named in lines[-1], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created
    assert (tmp_path / "file").read_text() == "not a folder"


def test_an_empty_out_is_refused(capsys):
    from tools.site import main

    assert _exit_code(main, ["build", "--out", ""]) == 2
    assert "--out" in capsys.readouterr().err


def test_course_without_arguments_prints_its_commands(capsys):
    if importlib.util.find_spec("course.__main__") is None:
        pytest.skip("course/__main__.py is instructors' tooling, not shipped in the student copy")
    from course.__main__ import main

    assert _exit_code(main, []) == 0
    assert "python -m course.grade" in capsys.readouterr().out


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KB tmpfs at tmp_path/disk (issue 25, item 7); skipped where mounting is not allowed."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs here (not root?): {mounted.stderr.decode()!r}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def read_only(disk):
    import subprocess

    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)


def test_a_full_disk_is_one_line_per_file_and_the_numbers_are_printed(small_disk, capsys):
    from planar_flows.__main__ import main

    (small_disk / "filler").write_bytes(b"\0" * 63_000)  # the disk is full
    argv = ["--quick", "--kind", "planar", "--targets", "U1", "--K", "2", "--steps", "5"]
    with pytest.raises(SystemExit) as info:
        cli.run(
            main, [*argv, "--n-eval", "500", "--no-progress", "--save", "--out", str(small_disk)]
        )
    out, err = capsys.readouterr()
    assert info.value.code == 1 and "Traceback" not in err
    assert "| planar | U1 | 1.8775 |" in out  # the trained model's numbers are not lost
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[0].startswith("could not write the checkpoint of planar_U1_K2 to ")
    assert "No space left on device" in lines[0] and "planar_U1_K2.pt" in lines[0]
    assert lines[-1].startswith("could not write ") and "No space left on device" in lines[-1]
    assert len(lines) <= 3
    left = sorted(p.name for p in small_disk.iterdir())
    assert all(not name.endswith((".tmp", ".pt")) for name in left), left  # nothing half-written
    assert all((small_disk / n).stat().st_size > 0 for n in left if n.endswith(".png")), left


def test_save_figure_on_a_full_disk_leaves_no_truncated_png(small_disk):
    from common.plot import plt, save_figure

    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(torch.rand(400, 400).numpy())  # a PNG far over 64 KB
    with pytest.raises(OSError, match="No space left on device") as info:
        save_figure(fig, small_disk / "big.png")
    plt.close(fig)
    assert info.value.filename == str(small_disk / "big.png")
    assert list(small_disk.iterdir()) == []


def test_save_or_ctrl_c_on_a_read_only_disk_keep_the_model(small_disk, capsys):
    out = small_disk / "out"
    out.mkdir()
    args = cli.parse_demo_args(
        cli.demo_parser("doc", "x"), ["--out", str(out), "--save", "--no-progress"]
    )
    read_only(small_disk)
    torch.manual_seed(0)
    flow = MAF(2, 1, (8,))
    cli.FAILED_WRITES.clear()
    history = cli.fit(args, "u1", train_reverse_kl, flow, get_target("U1"), 10, 32)
    err = capsys.readouterr().err
    assert len(history["loss"]) == 10 and torch.isfinite(flow.log_prob(torch.randn(3, 2))).all()
    assert err.strip() == (
        f"could not write the checkpoint of u1 to {out / 'u1.pt'}: Read-only file system; "
        "the run goes on"
    )

    def main(argv):
        cli.fit(args, "u1", train_reverse_kl, flow, get_target("U1"), 10, 32, callback=StopAt(4))

    with pytest.raises(SystemExit) as info:
        cli.run(main)
    err = capsys.readouterr().err
    assert info.value.code == 130 and "Traceback" not in err
    assert "interrupted at step 4 of 10" in err and "nothing written" in err
    assert "could not write the checkpoint of u1" in err and "Read-only file system" in err
    assert torch.isfinite(flow.log_prob(torch.randn(3, 2))).all()  # still in memory
