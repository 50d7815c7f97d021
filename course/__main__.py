"""The course tooling: make a student copy, grade, write a Gradescope bundle.

    python -m course.assignment --out ../hw   # the student copy, its HANDOUT.md (leak-checked)
    python -m course.assignment --list        # the marked parts and where they are
    python -m course.grade                    # in a student copy: the student's self-check
    python -m course.grade --submission DIR   # the grade: each part alone, the instructor's tests
    python -m course.gradescope --out autograder.zip   # the Gradescope autograder bundle
    python -m course.gradescope --try autograder.zip --submission DIR   # ... run locally

Each command has --help; course/README.md is the instructors' guide.
"""

import argparse
import sys


def main(argv=None):
    """Print the commands above; any argument (other than --help) is an argparse error, exit 2."""
    parser = argparse.ArgumentParser(
        "python -m course",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="This command takes no arguments: run one of the commands above.",
    )
    _, extra = parser.parse_known_args(argv)
    if extra:
        parser.error(
            f"unrecognized arguments: {' '.join(extra)} (this command only lists the others: "
            "python -m course.assignment, course.grade or course.gradescope)"
        )
    print(__doc__.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
