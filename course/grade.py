"""Grade an assignment: run each part's tests and print points per paper and per part (markdown).

    python -m course.grade                          # self-grade a student copy in place (its parts)
    python -m course.grade --submission ../alice    # the instructor's grade of a submission
    python -m course.grade --submission ../alice --json results.json   # ... also Gradescope's JSON
    python -m course.grade --papers maf nsf         # only these papers' parts

Weights: ``course/grading.toml``. A part's points are split over its test groups by weight (a group
is one pattern, usually one test function with all its parametrisations) and a group earns its
share times the fraction of its tests that pass.

``--submission DIR`` is the grade that counts. It never runs the student's tests or reads the
student's weights: for each part it builds a scratch tree from this (the instructor's) repository,
with the reference implementation of every other part, takes from the submission only the lines
between that part's ``# BEGIN YOUR CODE <part>`` and ``# END YOUR CODE`` markers, and runs the
instructor's tests, hidden ones included (``course/hidden_tests/``), in a subprocess with a
timeout per test. So a wrong MADE costs ``common.made`` and nothing else, and an infinite loop
costs the part it is in.

Without ``--submission`` the tests run in place, in a subprocess, on the copy's own code and tests:
a student's self-check. Hidden groups are listed as "hidden" there (the copy does not hold them).
Exits 1 when a part lost points, 0 when every part earned full marks, 2 on bad arguments.

Every grading run loads two pytest plugins: ``course.runner`` (which tests run, their time limit,
the results file) and ``course.pytest_plugin`` (the stub reporting: a test that fails on a stub's
``NotImplementedError`` names its part, and the tests it blocks are skipped).
"""

import argparse
import ast
import concurrent.futures
import contextlib
import fcntl
import functools
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tools.cli import script_parser
from tools.papers import PAPERS

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = Path("course") / "grading.toml"
# the same weights as JSON: written into the Gradescope bundle only (Python 3.10 has no tomllib)
WEIGHTS_JSON = Path("course") / "grading.json"
MANIFEST = "assignment.toml"
HIDDEN = "course/hidden_tests/"
TIMEOUT = 60.0  # seconds per test; the slowest reference test takes about 3 s on one thread
PART_TIMEOUT = 900.0  # seconds for all the tests of one part (a backstop for a hung process)
CPU_LIMIT = 300.0  # seconds of CPU for all the tests of one part (the reference needs under 20)
MEMORY_LIMIT = 3072  # MiB of address space for one part (the reference peaks near 1000)
FEEDBACK_CHARS = 600  # what one failed test may say in the feedback
GROUP_FEEDBACK_CHARS = 1500  # ... and one test group
SANDBOX_UID = 64000  # as root: each part runs as a uid/gid from here up that no other grader holds
SANDBOX_UIDS = range(SANDBOX_UID, SANDBOX_UID + 4096)
# what a scratch tree copies from the instructor's repository
TREE = ("common", "intro", *PAPERS, "tests", "course", "tools")
TREE_FILES = ("pyproject.toml",)


# ---------------------------------------------------------------- weights


def read_table(path):
    """A TOML file as a dict, or a JSON one (``.json``: the Gradescope bundle converts
    grading.toml, so the grader runs on Python 3.10, which has no tomllib)."""
    path = Path(path)
    if path.suffix == ".json":
        return json.loads(path.read_text())
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ValueError(f"{path}: reading TOML needs Python 3.11 or tomli") from None
    with open(path, "rb") as file:
        return tomllib.load(file)


def load_weights(path):
    """{part: {"points", "groups": {pattern: weight}, "title", "read", "contract"}}, checked."""
    weights = read_table(path)
    out = {}
    for part, entry in weights.items():
        tests = entry.get("tests", {}) if isinstance(entry, dict) else None
        if isinstance(tests, list):  # the old form: every pattern weighs 1
            tests = dict.fromkeys(tests, 1)
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("points"), (int, float))
            or not isinstance(tests, dict)
            or not all(isinstance(w, (int, float)) and w > 0 for w in tests.values())
            or not (tests or entry["points"] == 0)
        ):
            raise ValueError(
                f'{path}: ["{part}"] needs points = <number> and a ["{part}".tests] table of '
                "<node id pattern> = <weight > 0> (no tests only for an ungraded part, points = 0)"
            )
        out[part] = {
            "points": entry["points"],
            "groups": tests,
            **{key: entry.get(key, "") for key in ("title", "read", "contract")},
        }
    return out


def _pattern(glob):
    return re.compile(".*".join(re.escape(piece) for piece in glob.split("*")))


def matches(nodeid, globs):
    return any(_pattern(g).fullmatch(nodeid) for g in globs)


def _file(pattern):
    return pattern.split("::")[0]


# ---------------------------------------------------------------- running tests


# what the sandboxed pytest process may use (resource.setrlimit, set before pytest starts)
LIMITS = """
import os, resource, sys
cpu, memory, processes = (int(v) for v in sys.argv[1:4])
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
if memory:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
if processes:
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 28, 1 << 28))
os.execv(sys.executable, [sys.executable, *sys.argv[4:]])
"""


def sandbox_available():
    """True where the grader runs as root: student code then runs as an unprivileged user."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def uid_lock_path(uid):
    """The lock file a grader holds while one of its parts runs as sandbox ``uid``."""
    return Path(tempfile.gettempdir()) / f".course-grade-uid-{uid}.lock"


def finished(pid):
    """True when ``pid`` is gone or a zombie (it runs nothing; it waits for its parent, or init, to
    reap it: the grader's own pytest child is reaped only after ``kill_user``)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


def process_uids(pid):
    """The real, effective, saved and filesystem uids of ``pid`` (empty when it is gone). Read from
    ``/proc/<pid>/status``, not the owner of ``/proc/<pid>``: a process that makes itself
    non-dumpable shows as root's there."""
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("Uid:"):
                    return {int(v) for v in line.split()[1:]}
    except (OSError, ValueError):
        pass
    return set()


def kill_user(uid):
    """Stop, then kill, every process of ``uid`` (root only): (how many there were, True when
    none is left running)."""
    found = 0
    for _ in range(100):
        pids = []
        for name in os.listdir("/proc"):
            if name.isdigit() and uid in process_uids(name):
                pids.append(int(name))
        pids = [pid for pid in pids if not finished(pid)]
        if not pids:
            return found, True
        found = found or len(pids)
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
        time.sleep(0.02)
    return found, False


def _read_records(fd, key):
    """The sealed lines of the results pipe: (records, problem or None)."""
    with os.fdopen(fd, "rb") as pipe:
        data = pipe.read()
    records, problem = [], None
    for number, line in enumerate(data.decode(errors="replace").splitlines(), 1):
        text, _, seal = line.rpartition("\t")
        good = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
        try:
            record = json.loads(text) if hmac.compare_digest(seal, good) else None
        except ValueError:
            record = None
        if record is None or record.get("seq") != number:
            problem = "forged results: a line on the results channel was not written by the grader"
            break
        records.append(record)
    return records, problem


def run_tests(
    tree,
    globs,
    timeout=TIMEOUT,
    part_timeout=PART_TIMEOUT,
    verbose=False,
    expected=None,
    sandbox=None,
    cpu_limit=CPU_LIMIT,
    memory_limit=MEMORY_LIMIT,
    collect_only=False,
):
    """Run the tests of ``tree`` that match ``globs`` in a pytest subprocess.

    Returns {"collected": [node ids], "results": {node id: record}, "log": pytest's output,
    "tampered": why the results cannot be trusted (or None), "problem": why the run ended early
    (or None)}. A test that did not finish is missing from "results". ``expected``: the node ids
    the grader collected itself from the reference (then "collected" is that list, whatever the
    run says). ``sandbox``: {"uid", "gid", "home"} to run pytest as that unprivileged user (root
    only); every process of that user is killed when the run ends. ``cpu_limit`` (s) and
    ``memory_limit`` (MiB of address space) bound the pytest process (resource.setrlimit)."""
    tree = Path(tree)
    files = sorted({_file(g) for g in globs if "*" not in _file(g) and (tree / _file(g)).exists()})
    empty = {"collected": list(expected or []), "results": {}, "tampered": None}
    if not files:
        return {**empty, "log": "no test file found", "problem": "no test file found", "flags": []}
    with tempfile.TemporaryDirectory(prefix="grade-") as scratch:
        home = Path(sandbox["home"]) if sandbox else Path(scratch)
        results_read, results_write = os.pipe()
        key_read, key_write = os.pipe()
        key = secrets.token_bytes(32)
        os.write(key_write, key)
        os.close(key_write)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("COURSE_")}
        if sandbox:  # nothing of the grader's environment reaches the student
            base_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
            base_env.update(HOME=str(home), USER="student", LOGNAME="student")
        env = {
            **base_env,
            "COURSE_GLOBS": json.dumps(list(globs)),
            "COURSE_RESULTS_FD": str(results_write),
            "COURSE_KEY_FD": str(key_read),
            "COURSE_TIMEOUT": str(timeout),
            "COURSE_MEMORY": f"{memory_limit:g}",
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            "MPLBACKEND": "Agg",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": str(tree),
            "TMPDIR": str(home),
        }
        limits = [str(int(cpu_limit)), str(int(memory_limit * 2**20)), "256" if sandbox else "0"]
        command = [sys.executable, "-c", LIMITS, *limits, "-m", "pytest"]
        command += ["-q" if not verbose else "-v", "-p", "no:cacheprovider"]
        command += ["-p", "course.runner", "-p", "course.pytest_plugin", "-o", "addopts="]
        command += ["--basetemp", str(home / "pytest"), *(["--collect-only"] * collect_only)]
        command += files
        user = {}
        if sandbox:
            user = {"user": sandbox["uid"], "group": sandbox["gid"], "extra_groups": []}
        log_path = Path(scratch) / "log.txt"
        problem = None
        records = {}
        try:
            with open(log_path, "w") as log_file:
                process = subprocess.Popen(
                    command,
                    cwd=tree,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    pass_fds=(results_write, key_read),
                    start_new_session=True,
                    **user,
                )
        except PermissionError as error:
            for fd in (results_read, results_write, key_read):
                os.close(fd)
            raise ValueError(
                f"the graded code's user (uid {sandbox and sandbox['uid']}) cannot run "
                f"{sys.executable} ({error.strerror}): make that Python and its packages "
                "readable by other users (chmod o+rX), as setup.sh does for the venv"
            ) from None
        os.close(results_write)
        os.close(key_read)

        def read():
            records["lines"], records["problem"] = _read_records(results_read, key)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            status = process.wait(timeout=part_timeout)
        except subprocess.TimeoutExpired:
            status = None
            problem = f"killed after {part_timeout:g} s (the part's time limit)"
        outlived, flags = False, []
        if sandbox:
            left, gone = kill_user(sandbox["uid"])
            outlived = not gone
            if left:
                flags.append(f"flagged: {left} process(es) it started were still running: killed")
        else:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:
                pass
        if status is None:
            status = process.wait()
        reader.join(timeout=10)
        if reader.is_alive():  # a process of the part still holds the channel
            outlived = True
            records = {"lines": [], "problem": "a process of the part outlived it"}
        log = log_path.read_text(errors="replace")
    lines, tampered = records.get("lines", []), records.get("problem")
    if outlived and not tampered:
        tampered = "a process started by the part kept running after it ended"
    collected, results, finished = [], {}, None
    for entry in lines:
        if "collected" in entry:
            collected.append(entry["collected"])
        elif "finished" in entry:
            finished = entry
        else:
            previous = results.get(entry["nodeid"])
            if previous is None or (entry["outcome"] == "failed" != previous["outcome"]):
                results[entry["nodeid"]] = entry
    if status in (-signal.SIGXCPU, -signal.SIGKILL) and problem is None:
        problem = f"stopped: the part used up its {cpu_limit:g} s of CPU (or its memory)"
    elif finished is None and problem is None:
        problem = f"pytest did not finish (exit status {status})"
    elif finished is not None and not tampered:
        # (pytest may turn an interrupted session's status 2 into 1 after it reported it)
        if (finished["finished"] == 0) != (status == 0):
            said = finished["finished"]
            tampered = f"pytest's exit status {status} is not the {said} it reported"
        elif status == 0 and any(r["outcome"] != "passed" for r in results.values()):
            tampered = "pytest exited 0 with failed tests"
    missing = [n for n in (expected or collected) if n not in results]
    out_of_memory = any("TestOutOfMemory" in r.get("message", "") for r in results.values())
    if missing and problem is None and out_of_memory:
        problem = f"stopped: a test ran out of the part's {memory_limit:g} MiB of memory"
    elif missing and problem is None:
        problem = f"pytest stopped early (exit status {status})"
        if "MemoryError" in log:
            problem += f"; it ran out of its {memory_limit:g} MiB of memory"
    if expected is not None:
        results = {n: r for n, r in results.items() if n in set(expected)}
        collected = list(expected)
    if verbose and problem:
        log += f"\n{problem}"
    return {
        "collected": collected,
        "results": results,
        "log": log,
        "tampered": tampered,
        "problem": problem,
        "flags": flags,
    }


# ---------------------------------------------------------------- scoring


def score_part(part, entry, run, available=lambda pattern: True, note=""):
    """One row: the part's groups, what each earned, and a note saying why points were lost."""
    total_weight = sum(entry["groups"].values())
    groups, blockers = [], set()
    for pattern, weight in entry["groups"].items():
        share = entry["points"] * weight / total_weight
        hidden = pattern.startswith(HIDDEN)
        nodes = [n for n in run["collected"] if matches(n, [pattern])] if run else []
        # a skipped test counts as failed: pytest.skip() cannot shrink the denominator
        counted = nodes
        trusted = run is not None and not run.get("tampered")
        passed = sum(run["results"].get(n, {}).get("outcome") == "passed" for n in nodes)
        passed = passed if trusted else 0
        failures = []
        for n in counted:
            result = run["results"].get(n)
            if result is None:
                failures.append(f"{n}: did not run ({run.get('problem') or 'the part stopped'})")
            elif result["outcome"] in ("failed", "skipped"):
                failures.append(_cap(failure_text(n, result, run, part), FEEDBACK_CHARS))
                if "blocked_by" in result:
                    blockers.add(result["blocked_by"])
        group = {
            "pattern": pattern,
            "hidden": hidden,
            "max": share,
            "run": len(counted),
            "passed": passed,
            "earned": share * passed / len(counted) if counted else 0.0,
            "output": _cap("\n\n".join(failures), GROUP_FEEDBACK_CHARS),
            "available": available(pattern),
        }
        groups.append(group)
    earned = sum(g["earned"] for g in groups)
    if not note:
        unavailable = [g for g in groups if not g["available"]]
        if not entry["groups"]:
            note = "ungraded (a notebook exercise: run the notebook)"
        elif part in blockers:
            note = "not implemented"
        elif blockers:
            note = "blocked by " + ", ".join(sorted(blockers))
        elif not any(g["run"] for g in groups):
            note = "no test ran"
        elif any(g["passed"] < g["run"] or (g["run"] == 0 and g["available"]) for g in groups):
            note = "wrong results"
        if run and run.get("tampered"):
            note = f"flagged, scored 0: {run['tampered']}"
        elif run and run.get("problem") and not (note and note.startswith("blocked")):
            note = f"{note}; {run['problem']}" if note else run["problem"]
        if unavailable:
            extra = f"{len(unavailable)} hidden group(s) graded on submission"
            note = f"{note}; {extra}" if note else extra
    for flag in (run or {}).get("flags", []):
        note = f"{note}; {flag}" if note else flag
    return {
        "part": part,
        "paper": part.split(".")[0],
        "points": entry["points"],
        "earned": round(earned, 2),
        "note": note,
        "groups": groups,
    }


SECTION = re.compile(r"^_{3,} (\S.*?) _{3,}$")
FRAME = re.compile(r"^(?P<path>[\w./-]+\.py):(?P<line>\d+): (?P<what>.*)$")
FRAMES_SHOWN = 6  # the deepest frames of the repository's code in a failure's text
CODE_SHOWN = 160  # characters of a frame's line of code


@functools.lru_cache(maxsize=4)
def _sections(log):
    """{pytest's section title: [section texts]} of the failures in a pytest log."""
    found, title, lines = {}, None, []
    for line in log.splitlines() + ["=" * 10]:
        header = SECTION.match(line)
        if header or line.startswith("=" * 10):
            if title is not None:
                found.setdefault(title, []).append(lines)
            title, lines = (header.group(1) if header else None), []
        elif title is not None:
            lines.append(line)
    return found


@functools.lru_cache(maxsize=64)
def _other_solutions(part, reference=ROOT):
    """The stripped lines of every solution region that is not ``part``'s: a failure's frames
    never show them (a student could otherwise read another part's reference by raising in it)."""
    from course.markers import GROUPS, body, parse

    found = set()
    for group in GROUPS:
        for path in sorted((Path(reference) / group).glob("*.py")):
            lines = path.read_text().splitlines()
            for region in parse("\n".join(lines), str(path.relative_to(reference))):
                if region.part != part:
                    found.update(line.strip() for line in body(region, lines) if line.strip())
    return frozenset(found)


def failure_frames(nodeid, log, part=None):
    """["file, in function: code"] of the repository code (not tests/, not course/, not installed
    packages) on the path of the exception that failed ``nodeid``, outermost first, from the
    failure's traceback in pytest's ``log``."""
    test_file, _, name = nodeid.partition("::")
    sections = _sections(log).get(name.replace("::", "."), [])
    lines = next((s for s in sections if any(x.startswith(f"{test_file}:") for x in s)), None)
    if lines is None:
        lines = sections[0] if len(sections) == 1 else []
    frames = []
    for index, line in enumerate(lines):
        frame = FRAME.match(line)
        if not frame or frame["path"].startswith(("tests/", "course/", "/")):
            continue
        what, code = frame["what"], ""
        if what.startswith("in ") and index + 1 < len(lines):  # a short entry: the code follows
            code = lines[index + 1].strip()
        else:  # a long entry: the code is its line marked with '>'
            marked = [x for x in lines[:index] if x.startswith(">")]
            code = marked[-1][1:].strip() if marked else ""
            what = f"raised {what}" if what else "raised"
        if part is not None and code in _other_solutions(part):
            code = "(another part's reference code)"
        frames.append(f"{frame['path']}, {what}: {code[:CODE_SHOWN]}".rstrip(": "))
    return frames[-FRAMES_SHOWN:]


def failure_text(nodeid, result, run, part=None):
    """What a failed test says to the student: the error (pytest's last ``E`` lines) and where it
    came from in the code being graded (file, function and the line of code, e.g. the student's
    line that passed a wrong shape to a reference layer)."""
    text = f"{nodeid}: {result.get('message', 'failed')}"
    frames = (
        failure_frames(nodeid, (run or {}).get("log", ""), part)
        if "blocked_by" not in result
        else []
    )
    if frames:
        text += "\n  from the code being graded (outermost first):\n    " + "\n    ".join(frames)
    return text


def _cap(text, chars):
    cut = "\n... (feedback cut by the grader)"
    return text if len(text) <= chars else text[: chars - len(cut)] + cut


def _number(value):
    return f"{value:g}"


def table(rows):
    """The markdown table a TA pastes: each part, a subtotal per paper, the total."""
    lines = ["| paper | part | groups passed | points | note |", "|---|---|---|---|---|"]
    papers = list(dict.fromkeys(row["paper"] for row in rows))
    for paper in papers:
        mine = [row for row in rows if row["paper"] == paper]
        for row in mine:
            full = sum(g["run"] > 0 and g["passed"] == g["run"] for g in row["groups"])
            lines.append(
                f"| {paper} | `{row['part']}` | {full} / {len(row['groups'])} | "
                f"{_number(row['earned'])} / {_number(row['points'])} | {row['note']} |"
            )
        earned, points = sum(r["earned"] for r in mine), sum(r["points"] for r in mine)
        lines.append(f"| **{paper}** | | | **{_number(round(earned, 2))} / {_number(points)}** | |")
    earned, points = sum(r["earned"] for r in rows), sum(r["points"] for r in rows)
    lines.append(f"| **total** | | | **{_number(round(earned, 2))} / {_number(points)}** | |")
    return "\n".join(lines)


def public_table(rows):
    """The table a student sees on Gradescope before the grades are published: the points of the
    visible test groups only (a hidden group's points, per part or in total, would tell how the
    hidden tests went)."""
    lines = ["| part | visible tests passed | visible points | note |", "|---|---|---|---|"]
    for row in rows:
        shown = [g for g in row["groups"] if not g["hidden"]]
        full = sum(g["run"] > 0 and g["passed"] == g["run"] for g in shown)
        earned, top = sum(g["earned"] for g in shown), sum(g["max"] for g in shown)
        note = row["note"] if all(not g["hidden"] for g in row["groups"]) else ""
        lines.append(
            f"| `{row['part']}` | {full} / {len(shown)} | "
            f"{_number(round(earned, 2))} / {_number(round(top, 2))} | {note} |"
        )
    hidden = sum(g["max"] for row in rows for g in row["groups"] if g["hidden"])
    if hidden:
        points = _number(round(hidden, 2))
        lines.append(f"\nHidden tests: {points} points, shown when the grades are published.")
    return "\n".join(lines)


def gradescope(rows, seconds, hidden_visibility="after_published"):
    """Gradescope's results.json: one test per group (name, score, max_score, output, visibility),
    the total score and the execution time."""
    tests = []
    for row in rows:
        for group in row["groups"]:
            name = group["pattern"].split("::")[-1].rstrip("*[")
            label = "hidden test " if group["hidden"] else ""
            if group["run"] == 0:
                output = "no test of this group ran: it scores 0"
            else:
                output = group["output"] or ("passed" if group["passed"] == group["run"] else "")
            if row["note"] and group["earned"] < group["max"]:
                output = f"{row['part']}: {row['note']}\n{output}"
            tests.append(
                {
                    "name": f"{row['part']}: {label}{name}",
                    "score": round(group["earned"], 6),
                    "max_score": round(group["max"], 6),
                    "output": output[:5000],
                    "visibility": hidden_visibility if group["hidden"] else "visible",
                    "tags": [row["part"]],
                }
            )
    return {
        "score": round(sum(g["earned"] for row in rows for g in row["groups"]), 6),
        "execution_time": round(seconds),
        "output": public_table(rows),
        "output_format": "md",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


# ---------------------------------------------------------------- grading


def graded_parts(weights, root=ROOT, papers=None, parts=None, manifest=True):
    """The parts to grade: ``parts``, else those of assignment.toml in a student copy (only when
    ``manifest``), else every part of the weights file; restricted to ``papers``."""
    if not parts and manifest and (root / MANIFEST).exists():
        parts = read_table(root / MANIFEST)["parts"]
    parts = list(parts or weights)
    missing = [p for p in parts if p not in weights]
    if missing:
        raise ValueError(f"parts {missing} have no entry in {WEIGHTS}")
    return [p for p in weights if p in parts and (not papers or p.split(".")[0] in papers)]


def grade_in_place(root, weights, parts, timeout=TIMEOUT, verbose=False):
    """The self-check: every part's tests on the code and tests of ``root`` itself."""
    root = Path(root)
    globs = [g for part in parts for g in weights[part]["groups"]]
    run = run_tests(root, globs, timeout, verbose=verbose)
    if verbose:
        print(run["log"], file=sys.stderr)

    def available(pattern):
        return (root / _file(pattern)).exists()

    return [score_part(p, weights[p], run, available) for p in parts]


def _submission_root(submission, files):
    """The folder of the submission that holds the marked files (it may be one level down)."""
    submission = Path(submission)
    candidates = [submission] + sorted(p for p in submission.glob("*") if p.is_dir())
    candidates += sorted(p for p in submission.glob("*/*") if p.is_dir())
    # the folders as in the copy first, else the changed files alone at one level (a flat upload)
    return max(
        candidates,
        key=lambda d: (
            sum((d / f).is_file() for f in files),
            sum((d / Path(f).name).is_file() for f in files),
        ),
    )


def part_files(reference, part):
    """The reference files (relative) holding regions of ``part``."""
    from course.markers import GROUPS, parse

    found = []
    for group in GROUPS:
        for path in sorted((Path(reference) / group).glob("*.py")):
            rel = path.relative_to(reference)
            if any(r.part == part for r in parse(path.read_text(), str(rel))):
                found.append(rel)
    return found


def student_code(submission, reference, part):
    """{file: [lines of each region]} of ``part`` from a submission; raises ValueError naming the
    file when a file is missing or its markers are broken, and ``file:line: SyntaxError`` (the
    student's line) when the part's blocks do not compile in the reference."""
    from course.markers import MarkerError, student_blocks, student_markers

    bodies = {}
    for path in part_files(reference, part):
        target = _find_file(Path(submission), path, reference)
        try:
            text = target.read_text(errors="replace")
            blocks = student_blocks(text, str(path))
        except MarkerError as error:
            raise ValueError(str(error)) from None
        imports = _added_imports(text, Path(reference) / path, path)
        markers = [line for name, line in student_markers(text) if name == part]
        rows = text.splitlines()
        indents = [rows[m - 1][: len(rows[m - 1]) - len(rows[m - 1].lstrip())] for m in markers]
        mine = [lines for name, lines in blocks if name == part]
        bodies[path] = [
            [f"{indent}{source}" for source in imports] + lines
            for indent, lines in zip(indents, mine, strict=False)
        ] + mine[len(indents) :]
        firsts = [m + 1 - len(imports) for m in markers]
        _check_syntax(Path(reference) / path, path, part, bodies[path], firsts)
    return bodies


def _top_imports(text):
    """{source: line} of the module-level imports of ``text`` ({} if it does not parse)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.setdefault(ast.unparse(node), node.lineno)
    return found


def _added_imports(text, reference_file, path):
    """The import statements a student wrote at the top level of ``path`` that the reference file
    does not have. The grade keeps them (as the student's own run does) by putting them at the top
    of each of the file's blocks; ``from __future__`` is left out, ``import *`` refused."""
    known = _top_imports(reference_file.read_text()) if reference_file.is_file() else {}
    added = []
    for source, line in _top_imports(text).items():
        if source in known or source.startswith("from __future__"):
            continue
        if source.endswith("import *"):
            raise ValueError(
                f"{path}:{line}: '{source}' outside the markers: name what you import "
                "(from m import a, b) or write the import inside your block"
            )
        added.append(source)
    return added


def _find_file(submission, path, reference=ROOT):
    """``submission/path``, or a file of the same name at the submission's top level (a flat
    upload of the changed files) when no other marked file shares that name."""
    target = submission / path
    if target.is_file():
        return target
    flat = submission / path.name
    if flat.is_file() and _marked_names(reference).count(path.name) == 1:
        return flat
    raise ValueError(
        f"{path} is not in the submission (upload the folders as in your copy, e.g. "
        f"{path}, or the changed .py files alone at the top level)"
    )


def _marked_names(reference=ROOT):
    from course.markers import GROUPS

    return [p.name for group in GROUPS for p in sorted((Path(reference) / group).glob("*.py"))]


def _check_syntax(reference_file, path, part, bodies, firsts):
    """Raise ValueError("path:line: SyntaxError: ...", the student's line) when ``bodies`` spliced
    into the reference file do not compile; ``firsts`` are the student's first lines per block."""
    from course.markers import MarkerError, body, parse, splice

    if not reference_file.is_file():
        return
    source = reference_file.read_text()
    try:
        spliced = splice(source, str(path), part, bodies)
    except MarkerError as error:
        raise ValueError(str(error)) from None
    try:
        compile(spliced, str(path), "exec", dont_inherit=True)
    except SyntaxError as error:
        line = error.lineno or 0
        # where each block starts in the spliced file: regions before it change its position
        shift, starts, given = 0, [], iter(bodies)
        for region in parse(source, str(path)):
            size = region.end - region.begin + 1
            if region.part == part:
                block = next(given)
                starts.append((region.begin + shift, len(block)))
                shift += len(block) - size
            else:
                shift += len(body(region, source.splitlines())) - size
        for (start, length), first in zip(starts, firsts, strict=False):
            if start <= line < start + max(length, 1):
                line = first + line - start
                break
        else:
            line = firsts[0] if firsts else line
        rows = spliced.splitlines()  # not error.text: compile() may read it from a file on disk
        text = rows[error.lineno - 1].strip() if 0 < (error.lineno or 0) <= len(rows) else ""
        shown = f": {text}" if text else ""
        raise ValueError(f"{path}:{line}: {type(error).__name__}: {error.msg}{shown}") from None


def reference_code(reference, part):
    """{file: [lines of each region]} of ``part`` from the reference itself (the full score)."""
    from course.markers import body, parse

    code = {}
    for path in part_files(reference, part):
        lines = (Path(reference) / path).read_text().splitlines()
        regions = parse("\n".join(lines), str(path))
        code[path] = [body(r, lines) for r in regions if r.part == part]
    return code


def code_from_text(text, reference, part):
    """{file: [lines of each region]} of ``part`` from a text of BEGIN/END YOUR CODE blocks (the
    format of course/wrong/); the part must live in one file."""
    from course.markers import student_blocks

    files = part_files(reference, part)
    if len(files) != 1:
        raise ValueError(f"{part} spans {len(files)} files; a text of blocks needs one")
    return {files[0]: [lines for name, lines in student_blocks(text, part, True) if name == part]}


def wrong_code(reference, part):
    """{file: [lines of each region]} of ``part``'s plausible wrong implementation,
    ``course/wrong/<part>.txt`` (the instructor's check that the tests catch it)."""
    text = (Path(reference) / "course" / "wrong" / f"{part}.txt").read_text()
    return code_from_text(text, reference, part)


def build_tree(base, out, part, bodies):
    """A scratch tree: ``base`` (a reference copy) with ``part``'s regions from ``bodies``."""
    from course.markers import splice

    shutil.copytree(base, out, symlinks=False)
    for path, blocks in bodies.items():
        source = (Path(base) / path).read_text()
        (Path(out) / path).write_text(splice(source, str(path), part, blocks))


def reference_base(reference, out):
    """Copy what a scratch tree needs from the reference repository into ``out``."""
    reference, out = Path(reference), Path(out)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "runs", "*.ipynb")
    for name in TREE:
        if (reference / name).is_dir():
            shutil.copytree(reference / name, out / name, ignore=ignore)
    for name in TREE_FILES:
        if (reference / name).is_file():
            shutil.copy2(reference / name, out / name)
    return out


def secret_lines(reference, weights):
    """Lines a student's feedback must never quote: the hidden tests' and every part's reference
    code (stripped, at least 12 characters)."""
    reference = Path(reference)
    lines = set()
    for path in sorted((reference / HIDDEN).glob("*.py")):
        lines.update(line.strip() for line in path.read_text().splitlines())
    for part in weights:
        for blocks in reference_code(reference, part).values():
            lines.update(line.strip() for block in blocks for line in block)
    return {line for line in lines if len(line) >= 12 and not line.startswith("#")}


def redact(run, secret):
    """Remove from ``run``'s messages every line that quotes ``secret``; the count removed."""
    removed = 0
    for result in run["results"].values():
        kept = []
        for line in result.get("message", "").splitlines():
            text = re.sub(r"^E\s+", "", line).strip()
            if any(s in text for s in secret if len(s) <= len(text)):
                removed += 1
                line = "[lines quoting the grader's tests or reference, removed]"
                if kept and kept[-1] == line:
                    continue
            kept.append(line)
        if "message" in result:
            result["message"] = "\n".join(kept)
    return removed


def _readable_by_others(path):
    """True when a user outside root's group could read ``path`` (every folder above it open)."""
    path = Path(path).resolve()
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH or (folder == path and not mode & stat.S_IROTH):
            return False
    return True


_COLLECTED = {}  # (reference, globs, memory limit): the node ids collected from the reference


def collect(base, globs, memory_limit=MEMORY_LIMIT):
    """The node ids of ``globs`` in the reference copy ``base``, collected by the grader (no
    student code), under the parts' memory limit; ValueError when nothing can be collected."""
    if not globs:
        return []
    run = run_tests(base, globs, collect_only=True, memory_limit=memory_limit)
    if run["collected"]:
        return run["collected"]
    if run_tests(base, globs, collect_only=True, memory_limit=0)["collected"]:
        raise ValueError(
            f"the tests cannot even be collected within --memory {memory_limit:g} MiB of address "
            "space (a CUDA build of torch reserves more): raise --memory or use the CPU wheel"
        )
    last = (run["log"].strip().splitlines() or ["no output"])[-1]
    raise ValueError(f"the grader could not collect the reference's tests: {last}")


@contextlib.contextmanager
def claimed_uid():
    """A sandbox uid (from ``SANDBOX_UID`` up) that no other part, here or in another grader on this
    machine, holds: a lock file per uid, held while the part runs, since each part ends by killing
    every process of its uid."""
    for uid in SANDBOX_UIDS:
        lock = open(uid_lock_path(uid), "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        try:
            yield uid
        finally:
            lock.close()  # releases the lock
        return
    raise RuntimeError(f"no free sandbox uid in {SANDBOX_UIDS[0]}..{SANDBOX_UIDS[-1]}")


def grade_parts(
    code_of,
    weights,
    parts,
    reference=ROOT,
    timeout=TIMEOUT,
    jobs=1,
    part_timeout=PART_TIMEOUT,
    cpu_limit=CPU_LIMIT,
    memory_limit=MEMORY_LIMIT,
):
    """Grade each part alone: ``code_of(part)`` gives {file: [region lines]} (or raises
    ValueError); the part's tests run on the reference with only that code in place.

    As root, each part's pytest runs as its own unprivileged uid (``SANDBOX_UID`` + slot) in a
    tree only that uid can read, which holds no reference of the part; the reference copy the
    trees are built from and the results are root's; every process of the uid is killed when the
    part ends. Without root the same runs as the calling user (see course/README.md, Integrity)."""
    isolated = sandbox_available()
    if not isolated:
        print(
            "warning: not root, so student code runs as you: it could read the reference and "
            "outlive its part (course/README.md, Integrity)",
            file=sys.stderr,
        )
    elif _readable_by_others(reference):
        print(
            f"warning: {reference} is readable by every user, so by the graded code too "
            f"(chmod o-rwx it, as run_autograder does for /autograder/source)",
            file=sys.stderr,
        )
    secret = secret_lines(reference, weights)
    with tempfile.TemporaryDirectory(prefix="grade-trees-") as scratch:
        scratch = Path(scratch)
        base = reference_base(reference, scratch / "base")
        os.chmod(base, 0o700)
        if isolated:
            os.chmod(scratch, 0o711)  # the trees' random names cannot be listed
        # the tests each part must report, collected here from the reference (no student code)
        globs = tuple(g for part in parts for g in weights[part]["groups"])
        key = (str(reference), globs, memory_limit)
        if key not in _COLLECTED:
            _COLLECTED[key] = collect(base, globs, memory_limit)
        collected = _COLLECTED[key]

        def one(part):
            entry = weights[part]
            if not entry["groups"]:
                return score_part(part, entry, None)
            try:
                bodies = code_of(part)
            except ValueError as error:
                return score_part(part, entry, None, note=f"not graded: {error}")
            claim = contextlib.ExitStack()
            folder = scratch / secrets.token_hex(12)
            folder.mkdir(mode=0o700)
            try:
                tree, sandbox = folder / "tree", None
                try:
                    build_tree(base, tree, part, bodies)
                except ValueError as error:
                    return score_part(part, entry, None, note=f"not graded: {error}")
                if isolated:
                    os.chmod(tree, 0o755)  # the base it was copied from is root's alone
                    uid = claim.enter_context(claimed_uid())
                    sandbox = {"uid": uid, "gid": uid, "home": folder / "home"}
                    sandbox["home"].mkdir(mode=0o700)
                    os.chown(sandbox["home"], uid, uid)
                    os.chown(folder, 0, uid)
                    os.chmod(folder, 0o750)
                expected = [n for n in collected if matches(n, list(entry["groups"]))]
                run = run_tests(
                    tree,
                    list(entry["groups"]),
                    timeout,
                    part_timeout,
                    expected=expected,
                    sandbox=sandbox,
                    cpu_limit=cpu_limit,
                    memory_limit=memory_limit,
                )
                quoted = redact(run, secret)
                if quoted:
                    run["flags"].append(
                        f"flagged: its feedback quoted {quoted} line(s) of the grader"
                    )
                return score_part(part, entry, run)
            finally:
                claim.close()
                shutil.rmtree(folder, ignore_errors=True)

        with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
            return list(pool.map(one, parts))


def grade_submission(submission, weights, parts, reference=ROOT, **options):
    """The instructor's grade of a student's copy (or of any folder holding the marked files)."""
    files = sorted({f for part in parts for f in part_files(reference, part)})
    root = _submission_root(submission, files)
    return grade_parts(
        lambda part: student_code(root, reference, part), weights, parts, reference, **options
    )


def positive_seconds(text):
    """argparse type: a finite number of seconds > 0 (a time limit that can be met)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


def positive_integer(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def main(argv=None):
    parser = script_parser(__doc__, "course.grade")
    parser.add_argument(
        "--submission",
        metavar="DIR",
        help="grade this student copy against this repository's tests, weights and hidden tests",
    )
    parser.add_argument("--parts", nargs="+", metavar="PART", help="grade only these parts")
    parser.add_argument(
        "--papers", nargs="+", metavar="PAPER", help="grade only these papers' parts"
    )
    parser.add_argument(
        "--weights", default=None, help=f"the weights file (default: {WEIGHTS}; not --submission)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write Gradescope's results.json here")
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=TIMEOUT,
        help=f"seconds per test (default {TIMEOUT:g})",
    )
    parser.add_argument(
        "--jobs",
        type=positive_integer,
        default=1,
        help="parts graded at once with --submission (default 1)",
    )
    parser.add_argument(
        "--cpu",
        type=positive_seconds,
        default=CPU_LIMIT,
        help=f"seconds of CPU per part with --submission (default {CPU_LIMIT:g})",
    )
    parser.add_argument(
        "--memory",
        type=positive_seconds,
        default=MEMORY_LIMIT,
        metavar="MIB",
        help=f"MiB of address space per part with --submission (default {MEMORY_LIMIT})",
    )
    parser.add_argument("--verbose", action="store_true", help="show pytest's output")
    args = parser.parse_args(argv)
    if args.submission and args.weights:
        parser.error("--weights and --submission: a submission is graded with course/grading.toml")
    start = time.perf_counter()
    try:
        default = ROOT / (WEIGHTS_JSON if (ROOT / WEIGHTS_JSON).is_file() else WEIGHTS)
        weights = load_weights(Path(args.weights) if args.weights else default)
        parts = graded_parts(weights, ROOT, args.papers, args.parts, manifest=not args.submission)
        if args.submission and not Path(args.submission).is_dir():
            raise ValueError(f"--submission must be a directory, got {args.submission}")
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not parts:
        print("error: no part to grade (check --parts / --papers)", file=sys.stderr)
        return 2
    try:
        rows = _grade_rows(args, weights, parts)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table(rows))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        result = gradescope(rows, time.perf_counter() - start)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 1 if any(row["earned"] < row["points"] for row in rows) else 0


def _grade_rows(args, weights, parts):
    """The rows of ``main``: the submission's grade, or the self-grade in place."""
    if args.submission:
        return grade_submission(
            args.submission,
            weights,
            parts,
            ROOT,
            timeout=args.timeout,
            jobs=args.jobs,
            cpu_limit=args.cpu,
            memory_limit=args.memory,
        )
    return grade_in_place(ROOT, weights, parts, args.timeout, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
