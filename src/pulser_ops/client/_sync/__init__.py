"""The sync client surface: ``client.py`` here is generated from ``../_async/client.py``.

Only ``concurrency.py`` is written by hand here: the sync side of what differs by nature.
"""
