"""Monitoring tests run real processes (workers, the exporter, the sweeper, Prometheus): the
worker tests' fixtures serve here too."""

from tests.worker.conftest import (  # noqa: F401 - fixtures shared with the worker tests
    client,
    spawn_worker,
    storage_dir,
)
