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
import functools
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from tools.cli import script_parser
from tools.papers import PAPERS

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = Path("course") / "grading.toml"
MANIFEST = "assignment.toml"
HIDDEN = "course/hidden_tests/"
TIMEOUT = 60.0  # seconds per test; the slowest reference test takes about 3 s on one thread
PART_TIMEOUT = 900.0  # seconds for all the tests of one part (a backstop for a hung process)
# what a scratch tree copies from the instructor's repository
TREE = ("common", "intro", *PAPERS, "tests", "course", "tools")
TREE_FILES = ("pyproject.toml",)


# ---------------------------------------------------------------- weights


def load_weights(path):
    """{part: {"points", "groups": {pattern: weight}, "title", "read", "contract"}}, checked."""
    with open(path, "rb") as file:
        weights = tomllib.load(file)
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


def run_tests(tree, globs, timeout=TIMEOUT, part_timeout=PART_TIMEOUT, verbose=False):
    """Run the tests of ``tree`` that match ``globs`` in a pytest subprocess.

    Returns {"collected": [node ids], "results": {node id: record}, "log": pytest's output}; a
    test that did not finish (the run was killed) is missing from "results"."""
    tree = Path(tree)
    files = sorted({_file(g) for g in globs if "*" not in _file(g) and (tree / _file(g)).exists()})
    if not files:
        return {"collected": [], "results": {}, "log": "no test file found"}
    with tempfile.TemporaryDirectory(prefix="grade-") as scratch:
        record = Path(scratch) / "results.jsonl"
        env = {
            **os.environ,
            "COURSE_GLOBS": json.dumps(list(globs)),
            "COURSE_RESULTS": str(record),
            "COURSE_TIMEOUT": str(timeout),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            "MPLBACKEND": "Agg",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": str(tree),
        }
        command = [sys.executable, "-m", "pytest", "-q" if not verbose else "-v"]
        command += ["-p", "no:cacheprovider", "-p", "course.runner", "-p", "course.pytest_plugin"]
        command += ["-o", "addopts=", *files]
        try:
            done = subprocess.run(
                command,
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                timeout=part_timeout,
            )
            log = done.stdout + done.stderr
        except subprocess.TimeoutExpired as expired:
            log = f"{expired.stdout or ''}\nkilled after {part_timeout:g} s"
        collected, results = [], {}
        lines = record.read_text().splitlines() if record.exists() else []
        for line in lines:
            entry = json.loads(line)
            if "collected" in entry:
                collected.append(entry["collected"])
                continue
            previous = results.get(entry["nodeid"])
            if previous is None or (entry["outcome"] == "failed" != previous["outcome"]):
                results[entry["nodeid"]] = entry
    return {"collected": collected, "results": results, "log": log}


# ---------------------------------------------------------------- scoring


def score_part(part, entry, run, available=lambda pattern: True, note=""):
    """One row: the part's groups, what each earned, and a note saying why points were lost."""
    total_weight = sum(entry["groups"].values())
    groups, blockers = [], set()
    for pattern, weight in entry["groups"].items():
        share = entry["points"] * weight / total_weight
        hidden = pattern.startswith(HIDDEN)
        nodes = [n for n in run["collected"] if matches(n, [pattern])] if run else []
        counted = [n for n in nodes if run["results"].get(n, {}).get("outcome") != "skipped"]
        passed = sum(run["results"].get(n, {}).get("outcome") == "passed" for n in counted)
        failures = []
        for n in counted:
            result = run["results"].get(n)
            if result is None:
                failures.append(f"{n}: did not finish (the part ran out of time)")
            elif result["outcome"] == "failed":
                failures.append(failure_text(n, result, run, part))
                if "blocked_by" in result:
                    blockers.add(result["blocked_by"])
        group = {
            "pattern": pattern,
            "hidden": hidden,
            "max": share,
            "run": len(counted),
            "passed": passed,
            "earned": share * passed / len(counted) if counted else 0.0,
            "output": "\n\n".join(failures)[:4000],
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
        if unavailable:
            extra = f"{len(unavailable)} hidden group(s) graded on submission"
            note = f"{note}; {extra}" if note else extra
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


def gradescope(rows, seconds, hidden_visibility="after_published"):
    """Gradescope's results.json: one test per group (name, score, max_score, output, visibility),
    the total score and the execution time."""
    tests = []
    for row in rows:
        for group in row["groups"]:
            name = group["pattern"].split("::")[-1].rstrip("*[")
            label = "hidden test " if group["hidden"] else ""
            output = group["output"] or (
                "passed" if group["run"] and group["passed"] == group["run"] else ""
            )
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
        "output": table(rows),
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
        with open(root / MANIFEST, "rb") as file:
            parts = tomllib.load(file)["parts"]
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


def grade_parts(
    code_of, weights, parts, reference=ROOT, timeout=TIMEOUT, jobs=1, part_timeout=PART_TIMEOUT
):
    """Grade each part alone: ``code_of(part)`` gives {file: [region lines]} (or raises
    ValueError); the part's tests run on the reference with only that code in place."""
    with tempfile.TemporaryDirectory(prefix="grade-trees-") as scratch:
        base = reference_base(reference, Path(scratch) / "reference")

        def one(part):
            entry = weights[part]
            if not entry["groups"]:
                return score_part(part, entry, None)
            try:
                bodies = code_of(part)
            except ValueError as error:
                return score_part(part, entry, None, note=f"not graded: {error}")
            tree = Path(scratch) / part
            try:
                build_tree(base, tree, part, bodies)
            except ValueError as error:
                return score_part(part, entry, None, note=f"not graded: {error}")
            run = run_tests(tree, list(entry["groups"]), timeout, part_timeout)
            shutil.rmtree(tree, ignore_errors=True)
            return score_part(part, entry, run)

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
    parser.add_argument("--verbose", action="store_true", help="show pytest's output")
    args = parser.parse_args(argv)
    if args.submission and args.weights:
        parser.error("--weights and --submission: a submission is graded with course/grading.toml")
    start = time.perf_counter()
    try:
        weights = load_weights(Path(args.weights) if args.weights else ROOT / WEIGHTS)
        parts = graded_parts(weights, ROOT, args.papers, args.parts, manifest=not args.submission)
        if args.submission and not Path(args.submission).is_dir():
            raise ValueError(f"--submission must be a directory, got {args.submission}")
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not parts:
        print("error: no part to grade (check --parts / --papers)", file=sys.stderr)
        return 2
    if args.submission:
        rows = grade_submission(
            args.submission, weights, parts, ROOT, timeout=args.timeout, jobs=args.jobs
        )
    else:
        rows = grade_in_place(ROOT, weights, parts, args.timeout, args.verbose)
    print(table(rows))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        result = gradescope(rows, time.perf_counter() - start)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 1 if any(row["earned"] < row["points"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
