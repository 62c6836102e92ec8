"""The worker fixtures (a client on a fresh database, real worker processes) for the run tests."""

from tests.worker.conftest import client, spawn_worker, storage_dir  # noqa: F401
