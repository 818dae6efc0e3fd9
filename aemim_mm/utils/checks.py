"""Type checks shared by the option validators of the components.

One rule everywhere: a bool is neither an int nor a number (``True`` as an
``eps`` or a ``steps`` is a typo, not a 1), and numpy scalars count like
Python ones (a config may compute its values with numpy).
"""
import math
from numbers import Integral, Real
from typing import Any


def is_int(value: Any) -> bool:
    """Whether ``value`` is a Python or numpy integer, not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite real number (Python or numpy), not a
    bool."""
    return isinstance(value, Real) and not isinstance(value, bool) \
        and math.isfinite(value)
