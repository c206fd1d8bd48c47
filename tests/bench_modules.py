"""Benchmark scripts loaded as modules, for tests that hold a benchmark's measure or reference to its word."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from .comfyui_server import REPO

BENCH = REPO / "bench"


def bench_module(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module; its own ``from common import ...`` finds bench/common.py."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module
