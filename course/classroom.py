"""Grade a whole class without Gradescope: a folder of submissions to one CSV and feedback files.

    python -m course.classroom SUBMISSIONS --out grades/                 # every student, every part
    python -m course.classroom SUBMISSIONS --out grades/ --jobs 2        # two parts at once
    python -m course.classroom SUBMISSIONS --out grades/ --regrade maf.step   # after a fix

``SUBMISSIONS`` holds one sub-folder or one ``.zip`` per student; the student's name is the
folder's (or the zip's) name. Each submission is graded as ``python -m course.grade --submission``
grades it (``course.grade.grade_submission``: each part alone, the instructor's tests, hidden ones
included). ``--out`` receives:

- ``grades.csv``: one row per student and part: student, part, points, max_points, total,
  max_total, note (the CSV the issue asks for; sort or pivot it in a spreadsheet);
- ``summary.csv``: one row per student: student, one column per part, total, max_total (what
  otter-grader's ``final_grades.csv`` and nbgrader's gradebook export give: a row per student);
- ``feedback/<student>.md``: the student's grade table and, per visible test group, what failed;
  hidden groups show their points only (their output stays with the instructor, as Gradescope's
  ``after_published``);
- ``results/<student>.json``: every row with every group's output (the instructor's record, and
  what ``--regrade`` starts from).

``--regrade PART ...`` grades only those parts again, for every student already in ``--out``, and
rewrites the CSVs and feedback; the other parts keep their recorded rows.
"""

import csv
import json
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from course.grade import (
    ROOT,
    TIMEOUT,
    WEIGHTS,
    grade_submission,
    graded_parts,
    load_weights,
    positive_integer,
    positive_seconds,
    table,
)
from tools.cli import script_parser

MAX_UNZIPPED = 200 * 2**20  # bytes a student's zip may expand to
MAX_FEEDBACK = 2000  # characters of failure output per group in a feedback file


def students(folder):
    """{name: path} of the sub-folders and ``.zip`` files of ``folder``, sorted by name; a name
    given both ways (``alice/`` and ``alice.zip``) is refused."""
    found = {}
    for path in sorted(Path(folder).iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir() or (path.is_file() and path.suffix.lower() == ".zip"):
            name = path.stem if path.is_file() else path.name
            if name in found:
                raise ValueError(f"{name} is submitted twice: {found[name].name} and {path.name}")
            found[name] = path
    return found


def unzip(archive, out):
    """Extract ``archive`` into ``out``; only plain files with relative paths, at most
    MAX_UNZIPPED bytes in all (a zip is untrusted)."""
    out = Path(out)
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.infolist() if not m.is_dir()]
            if sum(m.file_size for m in members) > MAX_UNZIPPED:
                raise ValueError(f"{Path(archive).name} expands past {MAX_UNZIPPED >> 20} MiB")
            for member in members:
                target = (out / member.filename).resolve()
                if Path(member.filename).is_absolute() or not target.is_relative_to(out.resolve()):
                    continue  # an absolute or ../ path: not part of the submission
                if (member.external_attr >> 16) & 0o170000 == 0o120000:
                    continue  # a symbolic link
                target.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(member) as source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink)
    except zipfile.BadZipFile:
        raise ValueError(f"{Path(archive).name} is not a zip file") from None
    return out


def grade_student(path, weights, parts, **options):
    """The rows of one student's submission (a folder or a zip)."""
    path = Path(path)
    if path.is_dir():
        return grade_submission(path, weights, parts, ROOT, **options)
    with tempfile.TemporaryDirectory(prefix="classroom-") as scratch:
        try:
            folder = unzip(path, scratch)
        except ValueError as error:
            return [
                {
                    "part": part,
                    "paper": part.split(".")[0],
                    "points": weights[part]["points"],
                    "earned": 0.0,
                    "note": f"not graded: {error}",
                    "groups": [],
                }
                for part in parts
            ]
        return grade_submission(folder, weights, parts, ROOT, **options)


def feedback(student, rows):
    """The student's feedback (markdown): the grade table, then what failed per visible group."""
    lines = [f"# {student}", "", table(rows), ""]
    for row in rows:
        if row["earned"] >= row["points"]:
            continue
        lines += [f"## `{row['part']}`: {row['earned']:g} / {row['points']:g}", ""]
        if row["note"]:
            lines += [row["note"], ""]
        for group in row["groups"]:
            if group["earned"] >= group["max"]:
                continue
            name = group["pattern"].split("::")[-1].rstrip("*[")
            score = f"{group['earned']:.2f} / {group['max']:.2f}"
            if group["hidden"]:
                lines += [f"- hidden test `{name}`: {score} (details after publication)"]
                continue
            lines += [f"- `{name}`: {score}, {group['passed']} of {group['run']} tests passed"]
            if group["output"]:
                text = group["output"][:MAX_FEEDBACK]
                lines += ["", "```", text.replace("```", "'''"), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_outputs(out, records, weights, parts):
    """grades.csv, summary.csv and the feedback files from {student: rows}."""
    out = Path(out)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    with open(out / "grades.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["student", "part", "points", "max_points", "total", "max_total", "note"])
        for student, rows in records.items():
            total = round(sum(r["earned"] for r in rows), 2)
            max_total = sum(r["points"] for r in rows)
            for row in rows:
                writer.writerow(
                    [student, row["part"], row["earned"], row["points"], total, max_total]
                    + [row["note"]]
                )
    with open(out / "summary.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["student", *parts, "total", "max_total"])
        for student, rows in records.items():
            by_part = {r["part"]: r["earned"] for r in rows}
            total = round(sum(r["earned"] for r in rows), 2)
            writer.writerow(
                [student, *(by_part.get(p, "") for p in parts), total]
                + [sum(r["points"] for r in rows)]
            )
    for student, rows in records.items():
        (out / "feedback" / f"{student}.md").write_text(feedback(student, rows))


def grade_class(submissions, out, weights, parts, regrade=None, progress=True, **options):
    """Grade every student of ``submissions`` into ``out``; with ``regrade`` (a list of parts)
    only those parts, merged into the recorded results. Returns {student: rows}."""
    out = Path(out)
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    records = {}
    for number, (student, path) in enumerate(students(submissions).items(), 1):
        start = time.perf_counter()
        record = results / f"{student}.json"
        if regrade:
            if not record.exists():
                raise ValueError(f"--regrade: {student} has no recorded results in {results}")
            old = {row["part"]: row for row in json.loads(record.read_text())}
            new = {row["part"]: row for row in grade_student(path, weights, regrade, **options)}
            rows = [new.get(part, old.get(part)) for part in parts if part in new or part in old]
        else:
            rows = grade_student(path, weights, parts, **options)
        record.write_text(json.dumps(rows, indent=1) + "\n")
        records[student] = rows
        if progress:
            total = sum(r["earned"] for r in rows)
            seconds = time.perf_counter() - start
            print(f"[{number}] {student}: {total:.2f} ({seconds:.0f} s)", file=sys.stderr)
    write_outputs(out, records, weights, parts)
    return records


def main(argv=None):
    parser = script_parser(__doc__, "course.classroom")
    parser.add_argument("submissions", help="a folder with one sub-folder or .zip per student")
    parser.add_argument("--out", required=True, help="where grades.csv, feedback/ etc. go")
    parser.add_argument("--parts", nargs="+", metavar="PART", help="grade only these parts")
    parser.add_argument("--papers", nargs="+", metavar="PAPER", help="only these papers' parts")
    parser.add_argument(
        "--regrade", nargs="+", metavar="PART", help="grade these parts again for everyone"
    )
    parser.add_argument(
        "--timeout", type=positive_seconds, default=TIMEOUT, help="seconds per test"
    )
    parser.add_argument(
        "--jobs", type=positive_integer, default=1, help="parts graded at once (default 1)"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        weights = load_weights(ROOT / WEIGHTS)
        parts = graded_parts(weights, ROOT, args.papers, args.parts, manifest=False)
        parts = [p for p in parts if weights[p]["points"] > 0]  # notebook exercises: 0 points
        if not parts:
            raise ValueError("no graded part among --parts/--papers (notebook exercises have 0)")
        regrade = graded_parts(weights, ROOT, None, args.regrade, manifest=False)
        if args.regrade and not set(regrade) <= set(parts):
            raise ValueError("--regrade: the parts must be among those graded (--parts/--papers)")
        if not Path(args.submissions).is_dir():
            raise ValueError(f"{args.submissions} is not a folder")
        if not students(args.submissions):
            raise ValueError(f"{args.submissions} holds no sub-folder and no .zip")
        records = grade_class(
            args.submissions,
            args.out,
            weights,
            parts,
            regrade=regrade if args.regrade else None,
            timeout=args.timeout,
            jobs=args.jobs,
        )
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(
        f"{len(records)} students graded in {seconds:.0f} s: {Path(args.out) / 'grades.csv'}, "
        f"{Path(args.out) / 'summary.csv'}, {Path(args.out) / 'feedback'}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
