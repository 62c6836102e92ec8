"""The control room's page tests: the real app through ``httpx.ASGITransport`` on real
PostgreSQL, once over a direct URL and once over Supabase (the contract suite's ``env``)."""

from tests.contract.conftest import (  # noqa: F401 - fixtures shared with the contract suite
    _clean,
    _no_env_overrides,
    client,
    env,
)
