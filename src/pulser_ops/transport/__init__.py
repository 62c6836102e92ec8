"""Transports execute ``calls.Call`` objects; they hold no control-plane logic of their own.

- ``postgres``: psycopg 3 straight to PostgreSQL (workers, the embedded database, LISTEN/NOTIFY).
- ``supabase``: supabase-py over HTTP (PostgREST RPC, Storage, Realtime).
"""

from .base import AsyncTransport, FeedItem, Hint, Record, Transport

__all__ = ["AsyncTransport", "FeedItem", "Hint", "Record", "Transport"]
