"""Temporary directories the embedded server can reach when the tests run as root."""

from __future__ import annotations

import tempfile
from pathlib import Path


def reachable_temp_dir(prefix: str) -> Path:
    """A new directory under the system temp dir that the ``postgres`` OS user can enter.

    Under root the embedded server runs as ``postgres``, so every directory on the way to its
    home must be traversable by others. pytest's ``tmp_path`` lives under
    ``/tmp/pytest-of-<user>``, which every pytest session that starts resets to mode 0700: on a
    machine where another session starts while a test runs, a home there becomes unreachable
    half way through (pg_ctl stop then fails and the server is left running). The caller removes
    the directory."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    return base
