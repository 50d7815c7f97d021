"""The course tooling: make a student copy, grade, write a Gradescope bundle.

    python -m course.assignment --out ../hw   # the student copy, its HANDOUT.md (leak-checked)
    python -m course.assignment --list        # the marked parts and where they are
    python -m course.grade                    # in a student copy: the student's self-check
    python -m course.grade --submission DIR   # the grade: each part alone, the instructor's tests
    python -m course.gradescope --out autograder.zip   # the Gradescope autograder bundle
    python -m course.gradescope --try autograder.zip --submission DIR   # ... run locally

Each command has --help; course/README.md is the instructors' guide.
"""

import sys

if __name__ == "__main__":
    print(__doc__.strip())
    sys.exit(0)
