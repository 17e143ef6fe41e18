"""Subcommand handlers named by "module:function" and imported only when that subcommand runs.

`hedgebot --help` and argument errors must not pay for pydantic, structlog, aiomqtt or rich:
registration modules declare arguments with argparse alone and point at their handler by name.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any


class LazyHandler:
    """A handler that imports `module:function` when called and returns its exit code."""

    def __init__(self, target: str) -> None:
        module, _, name = target.partition(":")
        if not module or not name:
            raise ValueError(f"handler target must be 'module:function', got {target!r}")
        self.target = target
        self._module, self._name = module, name

    def __call__(self, args: argparse.Namespace, *extra: Any) -> int:
        # `extra` reaches the handler as is (tests pass a recording console).
        func: Any = getattr(importlib.import_module(self._module), self._name)
        return int(func(args, *extra))

    def __repr__(self) -> str:
        return f"LazyHandler({self.target!r})"


def lazy(target: str) -> LazyHandler:
    return LazyHandler(target)
