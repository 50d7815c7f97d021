"""Every Transform class defined in common/ or a paper folder goes through the Jacobian harness.

Each tests/test_*.py lists its layers in HARNESS_CASES; this test builds every case and fails when a
Transform subclass of the repository appears in none of the built layers.
"""

import importlib
import inspect
import pkgutil
from pathlib import Path

from common.flows import Transform
from tools.papers import PAPERS

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", *PAPERS)
NOT_LIBRARY = ("__main__", "tutorial", "benchmark")


def repository_transforms():
    found = set()
    for package in PACKAGES:
        if not (ROOT / package / "__init__.py").exists():
            continue
        for info in pkgutil.iter_modules([str(ROOT / package)]):
            if info.name.startswith(NOT_LIBRARY):
                continue
            module = importlib.import_module(f"{package}.{info.name}")
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if (
                    issubclass(cls, Transform)
                    and cls is not Transform
                    and cls.__module__ == module.__name__
                ):
                    found.add(cls)
    return found


def covered_transforms():
    covered = set()
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        module = importlib.import_module(f"tests.{path.stem}")
        for _, factory, contexts in getattr(module, "HARNESS_CASES", []):
            for context in contexts:
                covered.update(type(m) for m in factory(2, context).modules())
    return covered


def test_every_transform_is_in_the_harness():
    missing = repository_transforms() - covered_transforms()
    names = sorted(f"{c.__module__}.{c.__qualname__}" for c in missing)
    assert not names, f"these Transform classes are in no HARNESS_CASES of tests/: {names}"
