"""Offline-first synchronisation between shelter laptops and the municipal hub.

Layout (ARCHITECTURE.md §8: nothing here imports ``app``):

- :mod:`sync.events`   event payload types, versioned, JSON-serialisable
- :mod:`sync.outbox`   append events inside the caller's transaction (gap-free seq per stream)
- :mod:`sync.models`   shelter-side SQLModel tables (device identity, outbox, remote events, cursors)
- :mod:`sync.crypto`   Ed25519 signing, request signatures, Curve25519 boxes
- :mod:`sync.client`   push/pull over HTTP (``sync_once``, ``BackgroundSyncer``, ``enroll``)
- :mod:`sync.bundles`  USB bundles (shelter side) and receipts
- :mod:`sync.periodic` the every-N-seconds daemon thread (background sync; the shelter's automatic backups)
- :mod:`sync.hub`      the data-center hub: store, apply, bundle import, HTTP server
"""
