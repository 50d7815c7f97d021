"""What every builder and every entry point checks, and the record a builder leaves on its model.

The ``check_*`` functions raise a ``ValueError`` that names the argument, what was expected and what
came. ``recorded`` makes a builder's model remember how it was built (``model.builder``), so that
``common.checkpoint.load_flow`` can rebuild it from a file.
"""

import collections
import functools
import inspect
import math
import numbers
import sys

import torch

PLAIN = (type(None), bool, int, float, complex, str, bytes)


def check_input(x, features, dtype=None, what="x", device=None, finite=False):
    """Raise a ValueError naming what was expected unless ``x`` is a (batch, features) float tensor
    of ``dtype`` on ``device`` (each checked when given) without NaN entries; inf is allowed unless
    ``finite`` (a context: a flow's conditioners have no limit at inf).

    >>> check_input([[0.0, 1.0]], 2)
    Traceback (most recent call last):
    ValueError: x must be a torch.Tensor of shape (batch, 2), got list
    """
    if not torch.is_tensor(x):
        raise ValueError(
            f"{what} must be a torch.Tensor of shape (batch, {features}), got {type(x).__name__}"
        )
    if x.dim() != 2 or x.shape[1] != features:
        raise ValueError(f"{what} must have shape (batch, {features}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{what} must be a floating-point tensor, got {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise ValueError(
            f"{what} has dtype {x.dtype} but the flow's parameters are {dtype}; "
            f"call .to({dtype}) on one of them"
        )
    if device is not None and x.device != device:
        raise ValueError(
            f"{what} is on device {x.device} but the flow is on {device}; "
            f"call .to('{device}') on one of them"
        )
    if x.device.type != "meta" and torch.isnan(x).any():
        rows = torch.isnan(x).any(-1).nonzero()[:, 0].tolist()
        raise ValueError(f"{what} must not contain NaN, got NaN in rows {rows[:5]}")
    if finite and x.device.type != "meta" and torch.isinf(x).any():
        rows = torch.isinf(x).any(-1).nonzero()[:, 0].tolist()
        raise ValueError(f"{what} must be finite, got inf in rows {rows[:5]}")


def check_integer(name, value, low=1):
    """Raise a ValueError unless ``value`` is an integer >= ``low`` (True and False are refused).

    >>> check_integer("transforms", 2.5)
    Traceback (most recent call last):
    ValueError: transforms must be an integer >= 1, got 2.5
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def check_number(name, value, low=-math.inf, high=math.inf, high_open=False, low_open=False):
    """Raise a ValueError unless ``value`` is a finite real number in [low, high] (either end may
    be open).

    >>> check_number("alpha", 0.5, low=0.0, high=0.5, high_open=True)
    Traceback (most recent call last):
    ValueError: alpha must be a finite number in [0.0, 0.5), got 0.5
    """
    where = ""
    if (low, high) != (-math.inf, math.inf):
        where = f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    at_open_end = ok and ((high_open and value == high) or (low_open and value == low))
    if not ok or not low <= value <= high or at_open_end:
        raise ValueError(f"{name} must be a finite number{where}, got {value!r}")


def check_flag(name, value):
    """Raise a ValueError unless ``value`` is True or False."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def check_choice(name, value, choices):
    """Raise a ValueError unless ``value`` is one of the strings ``choices``.

    >>> check_choice("kind", ["planar"], ("planar", "radial"))
    Traceback (most recent call last):
    ValueError: kind must be one of ['planar', 'radial'], got ['planar']
    """
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")


def check_builder_args(features, transforms, hidden_features=(64,), context=0, **flags):
    """Validate the zuko-style arguments every paper's builder shares; ``flags`` must be bools."""
    check_integer("features", features)
    check_integer("transforms", transforms)
    check_integer("context", context, 0)
    if not isinstance(hidden_features, (list, tuple)) or not hidden_features:
        raise ValueError(
            f"hidden_features must be a non-empty tuple of layer sizes, got {hidden_features!r}"
        )
    for h in hidden_features:
        check_integer("every hidden_features entry", h)
    for name, flag in flags.items():
        check_flag(name, flag)


def check_plain(value, where):
    """Raise a ValueError unless ``value`` is what ``torch.load(weights_only=True)`` reads back:
    None, bool, int, float, str, bytes, tensors, and lists, tuples and dicts of them."""
    if type(value) in PLAIN or type(value) in (torch.Tensor, torch.nn.Parameter):
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
        return
    if type(value) in (dict, collections.OrderedDict):
        for key, item in value.items():
            check_plain(key, f"{where} key {key!r}")
            check_plain(item, f"{where}[{key!r}]")
        return
    raise ValueError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__} ({value!r:.60}); a "
        "checkpoint holds only None, bool, int, float, str, bytes, tensors and lists, tuples and "
        "dicts of them (torch.load(weights_only=True) reads nothing else): convert it first, e.g. "
        "float(x), str(path), vars(namespace)"
    )


def recorded(builder):
    """Decorator for a model builder (e.g. ``maf.MAF``): the model it returns remembers its
    builder's name and arguments in ``model.builder = {"builder": "maf.maf.MAF", "args": {...}}``.

    A builder defined in a module run as ``python -m maf`` is recorded by the name that imports it
    (``maf.__main__.digits_flow``), not as ``__main__``. ``common.checkpoint`` writes that record,
    refuses a file whose record differs from the model's, and ``load_flow(path)`` rebuilds the model
    from it. Only decorated builders of this repository's packages are ever called by ``load_flow``.
    """
    signature = inspect.signature(builder)
    module = builder.__module__
    if module == "__main__":  # run as `python -m maf`: record the name it is imported by
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else module

    @functools.wraps(builder)
    def build(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        model = builder(*bound.args, **bound.kwargs)
        arguments = dict(bound.arguments)
        check_plain(arguments, f"{builder.__name__}'s arguments")
        model.builder = {
            "builder": f"{module}.{builder.__qualname__}",
            "args": arguments,
        }
        return model

    build.records_builder = True
    return build
