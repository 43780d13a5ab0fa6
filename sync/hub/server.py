"""The hub's HTTP face (FastAPI).  Thin: every route calls plain functions in ``store``.

Routes (all JSON):

- ``GET  /healthz``  liveness, no personal data
- ``GET  /v1/hub``   hub id, public keys, hub time (public: laptops check clock skew here)
- ``POST /v1/enroll`` one-time code + device public key, self-signed → hub public keys
- ``POST /v1/push``  signed; ``{"events": [...], "laptop_time": T}`` → acks per stream and a
  status per event (held | applied | fork), *after* commit; the laptop's clock offset is recorded
- ``GET  /v1/acks[?laptop_time=T]``  signed; the gap-free watermark per stream of the calling device
- ``POST /v1/epoch``  signed; ``{"current_epoch", "reason"}`` → a fresh epoch no laptop got before
- ``GET|POST /v1/audit/head`` signed; the laptop audit chain head (see :mod:`sync.hub.audit_head`)
- ``GET  /v1/pull?after=N&limit=M`` signed; the device's municipality's feed: other shelters'
  events and the hub's notices (cross-town answers), never another municipality's; ``generation``
  says which numbering ``after``/``next`` belong to (new after a restore: :mod:`sync.hub.feed_generation`)
- ``GET  /v1/shelters`` signed; the municipality's enrolled shelters with their current population
- ``GET  /v1/card-key`` signed; the municipality's 避難者カード key boxed to the laptop (also sent at enrolment)
- ``GET  /v1/registry/latest[?enc=zstd]`` signed; the newest registry backup of the device's municipality
  (manifest signed by the hub, file boxed to the device) — see :mod:`sync.hub.registry`; with
  ``enc=zstd`` the file is described as a compressed sealed blob fetched by ``GET /v1/registry/chunk``;
  with ``base=SHA`` (an older file the laptop holds) the blob may be the difference (:mod:`sync.registry_diff`)
- ``POST /v1/push/probe`` signed; after a lost reply: does the hub hold exactly these events (wire v2)
- ``/v1/hq/…`` bearer-token routes for each municipality's HQ — see :mod:`sync.hub.hq`

Auth failures answer 401/403 with ``{"error": reason, "detail": …, "hub_time": …}``.
A hub whose database is a standby (read-only) answers any write — every signed request writes
its nonce — with 503 ``{"error": "hub_read_only"}``; a lost database with 503
``database_unavailable`` (see :mod:`sync.hub.replication` and the laptop side :mod:`sync.failover`).
After a push that queued cross-town work, the matching runs as a background task once the
reply is on its way (never delaying an acknowledgement).
Test hook: ``ANPI_HUB_CRASH_AFTER_COMMIT=N`` makes the process ``os._exit`` right after the
N-th push batch is committed and before the reply is sent — the worst moment for a client.
"""
from __future__ import annotations

import importlib
import os
import threading
import time
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect
from starlette.concurrency import run_in_threadpool

from sync.errors import AuthError, BadRequest, DataKeyError, EnrollmentError, IngestError, NoRegistry, RegistryError
from sqlalchemy.exc import DBAPIError, OperationalError

from sync import wire
from sync.hub import audit_head, bodies, crossmatch, forks, hq, ingest, registry, registry_pull, replication, store, wire_push
from sync.http_errors import error_answer
from sync.settings import SyncSettings

CRASH_ENV = "ANPI_HUB_CRASH_AFTER_COMMIT"
#: every hub node's public URL, primary first, comma-separated: handed to laptops at enrolment
HUB_URLS_ENV = "ANPI_HUB_URLS"
CROSSMATCH_ENV = "ANPI_HUB_CROSSMATCH"
MAX_BODY = 64 * 1024 * 1024


def _signed_path(request: Request) -> str:
    """The path a client signed: from ``/v1/`` on (survives a reverse-proxy prefix) plus query."""
    path = request.url.path
    i = path.find("/v1/")
    path = path[i:] if i >= 0 else path
    qs = request.scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{qs}" if qs else path


def create_hub_app(database_url: str, *, clock: Callable[[], float] = time.time,
                   engine: Any = None, data_key: registry.DataKey | None = None) -> FastAPI:
    """Build the hub app; creates tables and hub keys on first start.  ``data_key``: the hub
    data key for registry backups (default: from the environment, see :mod:`sync.hub.registry`)."""
    engine = engine or store.open_hub_engine(database_url)
    identity = store.hub_identity(engine)
    key = data_key or registry.load_data_key()
    registry.attach_data_key(engine, key)
    crash_after = SyncSettings.from_env().hub_crash_after_commit
    hub_urls = hub_urls_from_env()
    commits = {"n": 0}
    lock = threading.Lock()

    # no /docs or /redoc: they load scripts from a CDN (as on the shelter); /openapi.json stays
    app = FastAPI(title="Anpi hub", version="1", docs_url=None, redoc_url=None)
    app.state.engine = engine
    app.state.identity = identity
    app.state.data_key = key
    app.include_router(hq.hq_router(engine, lambda: key))
    # JSON answers (acks, feed pages, HQ lists) compressed for laptops that ask (httpx does): issue 16
    app.add_middleware(GZipMiddleware, minimum_size=512)

    # ANPI_HUB_CROSSMATCH=off: matching is left to a separate `anpi hub crossmatch run --watch`
    # process (its own CPU: ingest never competes with building a registry's matcher)
    inline = SyncSettings.from_env().hub_crossmatch.lower() != "off"
    runner = {"running": False, "again": False}
    runner_lock = threading.Lock()

    def crossmatch_now() -> None:
        """One runner at a time per process; a push that finds it busy only leaves a note, so
        background tasks never pile up on a lock while pushes wait for threads."""
        with runner_lock:
            if runner["running"]:
                runner["again"] = True
                return
            runner["running"] = True
        try:
            while True:
                crossmatch.run_pending(engine, key)
                with runner_lock:
                    if not runner["again"]:
                        runner["running"] = False
                        return
                    runner["again"] = False
        except Exception as exc:  # noqa: BLE001 - queued jobs stay pending and are retried next time
            with runner_lock:
                runner["running"] = False
            print(f"anpi hub: cross-town matching failed: {type(exc).__name__}: {exc}", flush=True)

    app.state.crossmatch_now = crossmatch_now

    def crash_hook() -> None:
        if not crash_after:
            return
        with lock:
            commits["n"] += 1
            if commits["n"] >= crash_after:
                os._exit(86)  # committed, reply never sent

    def refuse(exc: Exception) -> JSONResponse:
        """The one error shape (sync.http_errors); the hub's time rides along so a laptop with a
        wrong clock can correct itself."""
        body, status = error_answer(exc)
        return JSONResponse(body | {"hub_time": clock()}, status_code=status)

    async def authed(request: Request) -> tuple[Any, bytes]:
        try:
            body = await request.body()
        except ClientDisconnect:  # the link dropped mid-request (satellite phone): nothing to answer
            raise AuthError("disconnected", "the request was cut off", 400) from None
        if len(body) > MAX_BODY:
            raise AuthError("too_large", "request body too large", 413)
        dev = await run_in_threadpool(store.authenticate, engine, request.headers, request.method,
                                      _signed_path(request), body, clock())
        return dev, body

    @app.exception_handler(DBAPIError)
    async def database_refused(_request: Request, exc: DBAPIError) -> JSONResponse:
        """A standby refuses writes (503 ``hub_read_only``: the laptop tries its next hub URL at
        once); a database that is gone answers 503 too (the laptop retries, then moves on)."""
        if replication.is_read_only_error(exc):
            return JSONResponse({"error": replication.READ_ONLY_ERROR, "hub_time": clock(),
                                 "detail": "this hub's database is a standby (read-only); send to another hub"},
                                status_code=503)
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            return JSONResponse({"error": "database_unavailable", "hub_time": clock(),
                                 "detail": "this hub cannot reach its database"}, status_code=503)
        return JSONResponse({"error": "internal", "detail": "database error"}, status_code=500)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "role": "hub", "time": clock()}

    @app.get("/v1/hub")
    def hub_info() -> dict[str, Any]:
        return {**identity.public_info(), "time": clock()}

    @app.post("/v1/enroll")
    async def enroll(request: Request) -> JSONResponse:
        try:
            body = bodies.parse(bodies.EnrolBody, await request.body())
            result = await run_in_threadpool(
                store.complete_enrolment, engine, identity, code_id=body.code_id, device_id=body.device_id,
                public_key=body.public_key, shelter_name=body.shelter_name, signature=body.signature, mac=body.mac,
                hub_urls=hub_urls)
        except (BadRequest, EnrollmentError) as exc:
            return hq.answer(exc)
        return JSONResponse({**result, "time": clock()})

    @app.post("/v1/push")
    async def push(request: Request) -> Response:
        try:
            dev, body = await authed(request)
        except AuthError as exc:
            return refuse(exc)
        compact = request.headers.get("content-type", "").startswith(wire.BATCH_TYPE)
        try:
            raw_doc = await run_in_threadpool(wire_push.read_batch, dev["device_id"], body) if compact else None
            doc = (bodies.PushBody.model_validate(raw_doc) if raw_doc is not None
                   else bodies.parse(bodies.PushBody, body))
            result = await run_in_threadpool(ingest.ingest, engine, dev["device_id"], doc.events, via="http",
                                             after_commit=crash_hook, municipality=dev["municipality_code"],
                                             clock_offset=_offset(doc.laptop_time, clock()))
        except (BadRequest, IngestError) as exc:
            return hq.answer(exc)
        task = BackgroundTask(crossmatch_now) if result.crossmatch_jobs and key is not None and inline else None
        if compact:
            return Response(wire.encode_reply({**result.as_dict(), "hub_time": clock()}), media_type=wire.REPLY_TYPE,
                            background=task)
        return JSONResponse({**result.as_dict(), "hub_time": clock()}, background=task)

    @app.post("/v1/push/probe")
    async def push_probe(request: Request) -> JSONResponse:
        """After a lost reply: does the hub hold exactly these events? (the laptop then need not resend)"""
        try:
            dev, body = await authed(request)
        except AuthError as exc:
            return refuse(exc)
        try:
            held = await run_in_threadpool(wire_push.probe, engine, dev["device_id"], dev["municipality_code"],
                                           bodies.parse_object(body))
        except BadRequest as exc:
            return hq.answer(exc)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            return hq.answer(BadRequest(f"malformed probe: {exc}"))
        return JSONResponse({"held": held, "hub_time": clock()})

    @app.get("/v1/audit/head")
    async def audit_head_known(request: Request) -> JSONResponse:
        """The laptop's audit head the hub holds (the laptop answers for it in its next report)."""
        try:
            dev, _ = await authed(request)
        except AuthError as exc:
            return refuse(exc)
        got = await run_in_threadpool(audit_head.known_head, engine, dev["device_id"], dev["municipality_code"])
        return JSONResponse(got)

    @app.post("/v1/audit/head")
    async def audit_head_report(request: Request) -> JSONResponse:
        """A laptop's audit chain head at this sync, with the entries the hub does not hold yet."""
        try:
            dev, body = await authed(request)
        except AuthError as exc:
            return refuse(exc)
        try:
            got = await run_in_threadpool(audit_head.record_report, engine, dev["device_id"],
                                          dev["municipality_code"], bodies.parse_object(body))
        except (BadRequest, IngestError) as exc:
            return hq.answer(exc)
        return JSONResponse(got)

    @app.get("/v1/acks")
    async def acks(request: Request) -> JSONResponse:
        try:
            dev, _ = await authed(request)
        except AuthError as exc:
            return refuse(exc)
        offset = _offset(request.query_params.get("laptop_time"), clock())
        if offset is not None:
            await run_in_threadpool(forks.record_clock_engine, engine, dev["device_id"], dev["municipality_code"], offset)
        got = await run_in_threadpool(store.stream_acks, engine, dev["device_id"], dev["municipality_code"])
        return JSONResponse({"acks": [a.as_dict() for a in got], "hub_time": clock(), "clock_offset": offset,
                             "wire": wire.VERSION})

    @app.post("/v1/epoch")
    async def epoch(request: Request) -> JSONResponse:
        """A fresh epoch for a laptop that was restored or whose stream forked (see sync.hub.forks)."""
        try:
            dev, body = await authed(request)
        except AuthError as exc:
            return refuse(exc)
        try:
            doc = bodies.parse(bodies.EpochBody, body)
        except BadRequest as exc:
            return hq.answer(exc)
        current, reason = doc.current_epoch, doc.reason or "restore"
        got = await run_in_threadpool(lambda: forks.grant_epoch(engine, dev["device_id"], current=current,
                                                                reason=reason, municipality=dev["municipality_code"]))
        return JSONResponse({"epoch": got, "hub_time": clock()})

    @app.get("/v1/pull")
    async def pull(request: Request, after: int = 0, limit: int = 500) -> JSONResponse:
        try:
            dev, _ = await authed(request)
        except AuthError as exc:
            return refuse(exc)
        from sync.hub.feed_generation import feed_generation

        generation = await run_in_threadpool(feed_generation, engine)  # before the page it labels
        feed = await run_in_threadpool(store.pull_feed, engine, dev["device_id"], after, limit,
                                       dev["municipality_code"])
        extra = {} if generation is None else {"generation": generation}
        return JSONResponse({**feed, **extra, "hub_time": clock()})

    @app.get("/v1/shelters")
    async def shelters(request: Request) -> JSONResponse:
        from sync.hub.shelters import shelter_directory

        try:
            dev, _ = await authed(request)
        except AuthError as exc:
            return refuse(exc)
        rows = await run_in_threadpool(shelter_directory, engine, dev["municipality_code"])
        return JSONResponse({"shelters": rows, "hub_time": clock()})

    @app.get("/v1/card-key")
    async def card_key(request: Request) -> JSONResponse:
        """The municipality's 避難者カード key, boxed to the asking laptop (issued at enrolment too)."""
        try:
            dev, _ = await authed(request)
        except AuthError as exc:
            return refuse(exc)
        pkg = await run_in_threadpool(store.card_key_package, engine, identity, dev)
        return JSONResponse({**pkg, "hub_time": clock()})

    @app.get("/v1/registry/latest")
    async def registry_latest(request: Request, have: str = "", enc: str = "", base: str = "") -> JSONResponse:
        try:
            dev, _ = await authed(request)
        except AuthError as exc:
            return refuse(exc)
        if key is None:
            return hq.answer(DataKeyError("this hub has no data key configured"))
        try:
            if enc == "zstd":  # issue 16: compressed, sealed once, in hashed chunks (sync.hub.registry_pull)
                pkg = await run_in_threadpool(registry_pull.chunked_package, engine, identity, key, dev, have or None,
                                              base or None)
            else:
                pkg = await run_in_threadpool(registry.device_package, engine, identity, key, dev, have or None)
        except RegistryError as exc:  # whatever keeps the backup from the laptop: it keeps its own (404)
            return hq.answer(NoRegistry(str(exc)))
        return JSONResponse({**pkg, "hub_time": clock()})

    @app.get("/v1/registry/chunk")
    async def registry_chunk(request: Request, snapshot: str = "", i: int = 0, base: str = "") -> Response:
        """One piece of a chunked registry pull (``GET /v1/registry/latest?enc=zstd`` lists them)."""
        try:
            dev, _ = await authed(request)
        except AuthError as exc:
            return refuse(exc)
        if key is None:
            return hq.answer(DataKeyError("this hub has no data key configured"))
        try:
            data = await run_in_threadpool(registry_pull.chunk, engine, identity, key, dev, snapshot, i, base or None)
        except RegistryError as exc:
            return hq.answer(NoRegistry(str(exc)))
        return Response(data, media_type="application/octet-stream")

    return app


def hub_urls_from_env() -> list[str]:
    """``ANPI_HUB_URLS`` as a list (empty when unset: laptops then know only the URL they enrolled at)."""
    raw = SyncSettings.from_env().hub_urls
    return [u.strip().rstrip("/") for u in raw.replace(" ", ",").split(",") if u.strip()]


def _offset(laptop_time: Any, hub_time: float) -> float | None:
    """Hub time minus the laptop's own clock as it sent it (None when an older laptop did not)."""
    try:
        t = float(laptop_time)
    except (TypeError, ValueError):
        return None
    return round(hub_time - t, 3) if t > 0 else None


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (multi-worker): reads ``ANPI_HUB_DATABASE_URL``."""
    url = SyncSettings.from_env().hub_database_url
    if not url:
        raise SystemExit("ANPI_HUB_DATABASE_URL is not set")
    return create_hub_app(url)


def serve(database_url: str, *, host: str = "127.0.0.1", port: int = 8090, workers: int = 1,
          log_level: str = "info", factory: str = "sync.hub.server:app_from_env") -> None:
    """Run the hub with uvicorn (blocking).  ``factory``: import string of the app factory
    (``app.hub_app:app_from_env`` adds the desks' routes, which live above sync/)."""
    import uvicorn

    if workers > 1:
        os.environ["ANPI_HUB_DATABASE_URL"] = database_url
        eng = store.open_hub_engine(database_url)  # tables and keys once, not racing in workers
        store.hub_identity(eng)
        eng.dispose()
        uvicorn.run(factory, factory=True, host=host, port=port, workers=workers,
                    log_level=log_level)
    else:
        module, _, name = factory.partition(":")
        make = getattr(importlib.import_module(module), name)
        os.environ["ANPI_HUB_DATABASE_URL"] = database_url
        uvicorn.run(make(), host=host, port=port, log_level=log_level)
