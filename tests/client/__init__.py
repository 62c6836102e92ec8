"""The client's one source: the generator that writes the sync surface, and the parity of the
two surfaces. (What the client does over each transport is tests/contract.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_unasync() -> ModuleType:
    """``scripts/unasync.py`` as a module (scripts/ is not a package)."""
    name = "pulser_ops_scripts_unasync"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "unasync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module
