"""The data-center hub: stores every shelter's events, applies them into hub-wide tables.

- :mod:`sync.hub.store`   tables (own SQLAlchemy ``MetaData``, never the shelter's), identity,
  devices and enrolment, request authentication, idempotent ingest, feed, status
- :mod:`sync.hub.apply`   turns events into hub_evacuee / hub_stay / hub_decision / links /
  review items, order-insensitively where possible
- :mod:`sync.hub.bundles` USB bundle import and signed receipts
- :mod:`sync.hub.server`  the FastAPI face (``create_hub_app``) and ``serve``
"""
