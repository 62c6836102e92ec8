"""The async client surface: ``client.py`` here is the one source of both surfaces.

``scripts/unasync.py`` writes ``../_sync/client.py`` from it; ``concurrency.py`` (here and in
``_sync``) holds the little that differs by nature between the two.
"""
