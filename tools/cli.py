"""The argparse parser every repository script starts from (tools, course, benchmarks).

The paper demos add their shared flags on top of the same parser in ``common/cli.py``; this module
imports nothing but argparse, so that the grader (``python -m course.grade``) starts even when a
student's copy of ``common/`` does not.
"""

import argparse


def script_parser(doc, prog):
    """An argparse parser named ``python -m <prog>`` whose --help prints ``doc`` as written."""
    return argparse.ArgumentParser(
        f"python -m {prog}", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
