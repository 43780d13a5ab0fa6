"""The data-center hub: stores every shelter's events, applies them into hub-wide tables.

- :mod:`sync.hub.store`   tables (own SQLAlchemy ``MetaData``, never the shelter's), identity,
  devices and enrolment, request authentication, idempotent ingest, feed, status
- :mod:`sync.hub.apply`   turns events into hub_evacuee / hub_stay / hub_decision / links /
  review items, order-insensitively where possible
- :mod:`sync.hub.bundles` USB bundle import and signed receipts
- :mod:`sync.hub.server`  the FastAPI face (``create_hub_app``) and ``serve``
- :mod:`sync.hub.tenants` municipalities (tenants), sharing agreements, HQ users
- :mod:`sync.hub.registry` registry backups sealed at rest, pulled by laptops
- :mod:`sync.hub.crossmatch` evacuees across town lines (matching against sharing homes)
- :mod:`sync.hub.hq`      what each municipality's HQ sees, and its ``/v1/hq`` routes
- :mod:`sync.hub.audit`   the hash-chained audit log of each municipality
"""
