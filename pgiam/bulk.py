"""Reading and writing thousands of rows without the cyclic garbage collector walking them over and over.

Parsing a config, a password file or a state of 10,000 services creates some 100,000 dicts, tuples and
rows, none of them in a reference cycle. Each 700 new objects the collector walks the young ones, and
now and then the old generation, which they have joined: a third of a 10,000-service `refresh NAME` went
there (issue 25). Reference counting frees these objects anyway (Python docs, `gc`: "Automatic collection
can be disabled ... if you are sure your program does not create reference cycles"), so the collector is
paused while they are built and runs again afterwards, for everything else.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def no_gc(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` run with the cyclic collector paused (and resumed after it, if it was running)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        was = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was:
                gc.enable()

    return wrapper
