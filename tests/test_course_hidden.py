"""The hidden tests (course/hidden_tests/) pass on the reference: run with the normal suite here,
since the student copy does not hold them and pyproject's testpaths do not reach course/."""

from course.hidden_tests.test_pins import *  # noqa: F403
