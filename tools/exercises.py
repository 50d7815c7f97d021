"""What every notebook exercise shares (``<folder>/tutorial_checks.py`` import it).

An exercise cell starts with ``...`` where the answer goes (``return ...`` in a function to write).
A check prints its verdict and returns None (so a notebook cell shows no stray value): "right"
with the error it measured, or, given ``...``, "not tried yet", which is not a wrong answer: the
notebook runs on to the folded solution cell, which sets the answer and checks it. A wrong answer
raises AssertionError saying what was expected.
"""


def tried(answer, name, exercise):
    """False, after saying what to do, when ``answer`` is still ``...``; True otherwise.

    >>> tried(..., "log_p", "Exercise 1")
    Exercise 1 not tried yet: write your answer in place of the ... of `log_p`, run the cell again.
    (Our solution is in the folded cell below it.)
    False
    >>> tried(0.5, "log_p", "Exercise 1")
    True
    """
    if answer is ...:
        print(
            f"{exercise} not tried yet: write your answer in place of the ... of `{name}`, "
            "run the cell again.\n(Our solution is in the folded cell below it.)"
        )
        return False
    return True
