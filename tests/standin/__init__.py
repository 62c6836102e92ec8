"""Supabase stand-in: a TEST FIXTURE speaking PostgREST, Storage and Realtime.

It is not the real service and must never be presented as one; it lets the real
supabase-py clients run against a real PostgreSQL in tests. See README.md.
"""

from .server import StandIn

__all__ = ["StandIn"]
