"""Shelter side of online sync: enrol, push, pull.

:func:`sync_once` is the one entry point that the CLI (``anpi sync``) and the
:class:`BackgroundSyncer` thread both call.  It is resumable after any interruption because
it never trusts local memory: it asks the hub what it holds (``/v1/acks``), pushes from the
first unacknowledged event in batches, and commits each acknowledgement locally before the
next batch.  A crash anywhere (laptop, network, hub) costs at most one resent batch, which
the hub absorbs idempotently.
"""
from __future__ import annotations

import json
import os
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

import httpx
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from sync.settings import SyncSettings
from sync import crypto, failover, outbox
from sync.canonical import canonical_bytes, sha256_hex
from sync.errors import AuthError, EnrollmentError, HubReadOnly, HubRejected, HubUnavailable, NotEnrolled, SyncError
from sync.models import RemoteEvent, SyncDevice
from sync.periodic import PeriodicThread

SessionFactory = Callable[[], ContextManager[Session]]
#: the face's answer to "what does your audit chain hold?": (hub's last head seq, entries the hub
#: holds up to) → {"head": report, "entries": [...]} or None (sync/ cannot read app's tables itself)
AuditReporter = Callable[[int | None, int], dict[str, Any] | None]

#: test hook: the laptop process dies after the N-th push reply, before committing the ack
CLIENT_CRASH_ENV = "ANPI_SYNC_CRASH_AFTER_PUSH"

_sync_lock = threading.Lock()  # one sync_once at a time per process (CLI + background thread)


@dataclass
class SyncProgress:
    phase: str  # "push" | "pull"
    done: int
    total: int | None


@dataclass
class SyncResult:
    """What one run achieved.  ``ok`` is what ``anpi sync`` turns into exit status 0."""

    hub_url: str
    pushed: int = 0
    acknowledged: int = 0
    pending: int = 0
    pulled: int = 0
    batches: int = 0
    retries: int = 0
    forks: list[dict[str, Any]] = field(default_factory=list)
    epoch_bumped: bool = False
    feed_restarted: bool = False  # the hub's feed generation changed: pulled again from 0
    new_epoch: int | None = None  # granted by the hub in this run
    error: str | None = None
    audit: str | None = None  # the hub's verdict on the audit chain head (ok, first, cut, restored …)
    wire: int = 1  # the batch format used: 2 (compact, sync.wire) when the hub speaks it
    bytes_up: int = 0  # v2 only: what crossed the link, bodies and headers (sync.link.LinkStats)
    bytes_down: int = 0
    resumed: int = 0  # v2: batches whose reply was lost and that the hub turned out to hold (not resent)
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    finished_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.pending == 0

    def as_dict(self) -> dict[str, Any]:
        return {"hub_url": self.hub_url, "ok": self.ok, "pushed": self.pushed, "acknowledged": self.acknowledged,
                "pending": self.pending, "pulled": self.pulled, "batches": self.batches, "retries": self.retries,
                "forks": self.forks, "epoch_bumped": self.epoch_bumped, "new_epoch": self.new_epoch,
                "feed_restarted": self.feed_restarted, "error": self.error, "audit": self.audit, "wire": self.wire,
                "bytes_up": self.bytes_up, "bytes_down": self.bytes_down, "resumed": self.resumed}


class HubClient:
    """Signed JSON requests with bounded exponential back-off.

    Retries transport errors, 5xx and 429; gives up with :class:`HubUnavailable`.  A
    ``stale_timestamp`` refusal is answered by adopting the hub's clock (shelter laptops lose
    their time after a power cut) and retrying at once.  Other 401/403 raise
    :class:`AuthError` (retrying cannot fix a revoked device).
    """

    def __init__(self, base_url: str, device_id: str, signing_key: Any, *, http: httpx.Client | None = None,
                 timeout: float = 30.0, max_retries: int = 5, backoff: float = 0.5, max_backoff: float = 30.0,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.device_id = device_id
        self.key = signing_key
        self._own_http = http is None
        self.http = http or httpx.Client(timeout=timeout)
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self.sleep = sleep
        self.clock_offset = 0.0
        self.retries = 0

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = canonical_bytes(body) if body is not None else b""
        last_error = ""
        clock_fixed = False
        attempt = 0
        while True:
            hdrs = crypto.sign_request(self.key, self.device_id, method, path, data,
                                       self.clock() + self.clock_offset).as_dict()
            if body is not None:
                hdrs["Content-Type"] = "application/json"
            try:
                resp = self.http.request(method, self.base_url + path, content=data, headers=hdrs)
                status = resp.status_code
                if status < 400:
                    return resp.json()
                try:
                    doc = resp.json()
                except ValueError:
                    doc = {}
                if status in (401, 403):
                    reason = doc.get("error", "unauthorised")
                    if reason == "stale_timestamp" and not clock_fixed and isinstance(doc.get("hub_time"), (int, float)):
                        self.clock_offset = float(doc["hub_time"]) - self.clock()
                        clock_fixed = True
                        continue
                    raise AuthError(reason, doc.get("detail", ""), status)
                if status == 503 and doc.get("error") == "hub_read_only":  # a standby: try another hub
                    raise HubReadOnly(f"hub {self.base_url} is read-only (a standby): {doc.get('detail', '')}")
                if status < 500 and status != 429:
                    raise HubRejected(f"hub refused {method} {path}: {doc.get('detail') or resp.text[:200]}", status)
                last_error = f"HTTP {status}"
            except (httpx.TransportError, ValueError) as exc:  # ValueError: reply cut mid-JSON
                last_error = f"{type(exc).__name__}: {exc}"
            if attempt >= self.max_retries:
                raise HubUnavailable(f"hub {self.base_url} unreachable after {attempt + 1} attempts ({last_error})")
            delay = min(self.max_backoff, self.backoff * (2 ** attempt)) * (0.5 + random.random() / 2)
            attempt += 1
            self.retries += 1
            self.sleep(delay)


# ---- enrolment -------------------------------------------------------------------------------------
@dataclass
class EnrollResult:
    device_id: str
    hub_id: str
    device_name: str
    hub_url: str


def enroll(session_factory: SessionFactory, hub_url: str, code: str, shelter_name: str | None = None, *,
           http: httpx.Client | None = None, timeout: float = 30.0) -> EnrollResult:
    """Join a hub with a one-time code: send our public key, learn and pin the hub's keys."""
    with session_factory() as s:
        dev = outbox.ensure_device(s)
        s.commit()  # the identity must survive a failed attempt (events may already use it)
        if dev.hub_id:
            raise EnrollmentError(f"this laptop is already enrolled at hub {dev.hub_id} ({dev.hub_url})")
        device_id, key_b64 = dev.device_id, dev.signing_key
    key = crypto.signing_key_from_b64(key_b64)
    public_key = crypto.verify_key_b64(key)
    cid = crypto.code_id(code)
    msg = crypto.enrolment_message(cid, device_id, public_key, shelter_name)
    body = {"code_id": cid, "device_id": device_id, "public_key": public_key, "shelter_name": shelter_name,
            "signature": crypto.sign_detached(key, msg), "mac": crypto.mac(crypto.code_key(code), msg)}
    client = http or httpx.Client(timeout=timeout)
    try:
        resp = client.post(hub_url.rstrip("/") + "/v1/enroll", content=canonical_bytes(body),
                           headers={"Content-Type": "application/json"})
    except httpx.TransportError as exc:
        raise HubUnavailable(f"hub {hub_url} unreachable: {exc}") from exc
    finally:
        if http is None:
            client.close()
    try:
        doc = resp.json()
    except ValueError:
        doc = {}
    if resp.status_code != 200:
        raise EnrollmentError(doc.get("detail") or f"hub answered HTTP {resp.status_code}")
    try:
        authentic = crypto.mac_ok(crypto.code_key(code), crypto.enrolment_reply_message(doc, device_id),
                                  doc.get("mac", ""))
    except (KeyError, TypeError):
        authentic = False
    if not authentic:
        raise EnrollmentError("hub reply is not authenticated by the enrolment code (wrong hub or tampering)")
    listed = doc.get("hub_urls")
    if listed is not None and not (isinstance(listed, list) and all(isinstance(u, str) for u in listed)
                                   and crypto.mac_ok(crypto.code_key(code),
                                                     crypto.hub_urls_message(listed, device_id),
                                                     str(doc.get("hub_urls_mac", "")))):
        raise EnrollmentError("hub URL list is not authenticated by the enrolment code (wrong hub or tampering)")
    with session_factory() as s:
        dev = s.get(SyncDevice, 1)
        assert dev is not None
        dev.hub_url = hub_url.rstrip("/")
        dev.hub_urls = json.dumps(failover.urls_of(hub_url, json.dumps(listed))) if listed else None
        dev.hub_id = doc["hub_id"]
        dev.hub_sign_public_key = doc["sign_public_key"]
        dev.hub_box_public_key = doc["box_public_key"]
        dev.shelter_name = shelter_name or dev.shelter_name
        dev.enrolled_at = datetime.now(timezone.utc)
        s.add(dev)
        _keep_card_key(s, key, doc)
        s.commit()
    return EnrollResult(device_id, doc["hub_id"], doc.get("device_name", ""), hub_url.rstrip("/"))


def _keep_card_key(s: Session, key: Any, doc: dict[str, Any]) -> None:
    """Store the municipality's 避難者カード key the hub boxed to this laptop (app/services/card_keys.py
    derives from it; the key id is recomputed, so a reply cannot name another key)."""
    card = doc.get("card_key")
    if not isinstance(card, dict):
        return  # an older hub: cards stay signed with this laptop's own key
    _store_card_key(s, key, doc["box_public_key"], card)


def _store_card_key(s: Session, key: Any, hub_box_public: str, card: dict[str, Any]) -> None:
    import hashlib

    from nacl.exceptions import CryptoError

    from sync.models import CardKey

    try:
        secret = crypto.device_box(key, hub_box_public).decrypt(crypto.b64d(str(card["sealed"])))
    except (CryptoError, KeyError, ValueError, TypeError):
        raise EnrollmentError("hub sent a card key this laptop cannot open; refused") from None
    kid = hashlib.sha256(b"anpi-card-key-id:" + secret).hexdigest()[:8]
    if s.get(CardKey, kid) is None:
        s.add(CardKey(key_id=kid, scope="municipality", secret=crypto.b64e(secret), created_at=datetime.now(timezone.utc)))


def _pull_card_key(session_factory: SessionFactory, client: HubClient) -> None:
    """A laptop enrolled before the hub issued card keys fetches its municipality's now (once).
    A hub that predates the endpoint answers 404: cards stay signed with the laptop's own key."""
    from sync.models import CardKey

    with session_factory() as s:
        if s.exec(select(CardKey).where(CardKey.scope == "municipality")).first() is not None:
            return
        dev = outbox.get_device(s)
        if dev is None or not dev.hub_box_public_key:
            return
        key, box_public = crypto.signing_key_from_b64(dev.signing_key), dev.hub_box_public_key
    try:
        doc = client.request("GET", "/v1/card-key")
    except SyncError:
        return
    with session_factory() as s:
        _store_card_key(s, key, box_public, doc)
        s.commit()


# ---- sync ---------------------------------------------------------------------------------------------------
def _load_identity(session_factory: SessionFactory, hub_url: str | None) -> tuple[str, Any, str, str]:
    with session_factory() as s:
        dev = outbox.get_device(s)
        if dev is None or not dev.hub_id:
            raise NotEnrolled("this laptop is not enrolled at a hub; run `anpi enroll --hub URL --code CODE`")
        url = (hub_url or dev.hub_url or "").rstrip("/")
        if not url:
            raise NotEnrolled("no hub URL configured; pass --hub URL")
        return dev.device_id, crypto.signing_key_from_b64(dev.signing_key), dev.hub_id, url


def _hub_urls(session_factory: SessionFactory, hub_url: str | None) -> list[str]:
    """Every hub URL to try, in order: ``hub_url`` (or the one enrolled at), then the enrolment list."""
    with session_factory() as s:
        dev = outbox.get_device(s)
        return failover.urls_of(hub_url or (dev.hub_url if dev else None), dev.hub_urls if dev else None)


def _acks_from(doc: dict[str, Any]) -> list[tuple[int, int, int]]:
    return [(int(a["epoch"]), int(a["seq"]), int(a.get("max_seq", a["seq"]))) for a in doc.get("acks", [])]


def _record_acks(session_factory: SessionFactory, device_id: str, acks: list[tuple[int, int, int]],
                 caps: dict[int, int]) -> tuple[int, bool]:
    """Commit the hub's watermarks (raised only over what the hub just compared, see
    :func:`sync.outbox.apply_acks`); bump the epoch if the hub holds more of our *current*
    stream than we do (we were restored from a backup without ``start_new_epoch``)."""
    with session_factory() as s:
        newly = outbox.apply_acks(s, device_id, [(e, q) for e, q, _ in acks], authoritative=True, caps=caps)
        dev = outbox.get_device(s)
        bumped = False
        if dev is not None:
            for epoch, _seq, max_seq in acks:
                if epoch == dev.epoch and max_seq > dev.last_seq:
                    outbox.start_new_epoch(s)
                    bumped = True
        s.commit()
    return newly, bumped


def _pending(session_factory: SessionFactory) -> int:
    with session_factory() as s:
        return outbox.pending_count(s)


def _measure_clock(session_factory: SessionFactory, doc: dict[str, Any], sent: float, received: float) -> float | None:
    """Record hub time − this laptop's clock (middle of the request) for the dashboard's warning."""
    hub_time = doc.get("hub_time")
    if not isinstance(hub_time, (int, float)):
        return None
    offset = float(hub_time) - (sent + received) / 2
    with session_factory() as s:
        outbox.set_cursor(s, outbox.CLOCK_OFFSET, int(round(offset)))
        outbox.set_cursor(s, outbox.CLOCK_MEASURED, int(hub_time))
        s.commit()
    return offset


def _hub_epoch(session_factory: SessionFactory, client: HubClient, reason: str) -> int:
    """Ask the hub for a fresh epoch and switch to it (numbering restarts at 1)."""
    with session_factory() as s:
        dev = outbox.get_device(s)
        current = dev.epoch if dev is not None else 0
    doc = client.request("POST", "/v1/epoch", {"current_epoch": current, "reason": reason})
    with session_factory() as s:
        epoch = outbox.adopt_epoch(s, int(doc["epoch"]))
        s.commit()
    return epoch


def _start_of_run(session_factory: SessionFactory, client: HubClient, device_id: str, result: SyncResult) -> bool:
    """Ask the hub what it holds; returns True when the hub answers per event (a hub of this
    version).  Lowers watermarks where the hub lost data, and fetches a hub-granted epoch when
    this laptop was restored or the hub holds more of our current stream than we wrote."""
    sent = client.clock()
    doc = client.request("GET", f"/v1/acks?laptop_time={sent:.3f}")
    _measure_clock(session_factory, doc, sent, client.clock())
    acks = doc.get("acks", [])
    per_event = all("held_seq" in a for a in acks) and "clock_offset" in doc
    result.wire = 2 if per_event and int(doc.get("wire") or 1) >= 2 else 1
    if per_event:
        with session_factory() as s:
            outbox.lower_to_hub(s, device_id, [(int(a["epoch"]), int(a["held_seq"])) for a in acks])
            dev = outbox.get_device(s)
            mine = (dev.epoch, dev.last_seq) if dev is not None else (0, 0)
            needed = bool(outbox.get_cursor(s, outbox.HUB_EPOCH_NEEDED))
            s.commit()
        ahead = any(int(a["epoch"]) == mine[0] and int(a.get("max_seq", 0)) > mine[1] for a in acks)
        if needed or ahead:
            _hub_epoch(session_factory, client, "restore" if needed else "fork")
            result.epoch_bumped = True
        return True
    newly, bumped = _record_acks(session_factory, device_id, _acks_from(doc), {})
    result.acknowledged += newly
    result.epoch_bumped |= bumped
    return False


def _push_per_event(session_factory: SessionFactory, client: HubClient, device_id: str, doc: dict[str, Any],
                    result: SyncResult) -> int:
    """Mark delivered the events the hub says it holds; keep forks pending and, when our current
    stream forked (another laptop runs a copy of this database), take a fresh epoch from the hub."""
    held = [(int(r["epoch"]), int(r["seq"]), str(r["event_id"])) for r in doc.get("results", [])
            if r.get("status") in ("held", "applied")]
    forked = [r for r in doc.get("results", []) if r.get("status") == "fork"]
    with session_factory() as s:
        newly = outbox.ack_events(s, device_id, held)
        dev = outbox.get_device(s)
        current = dev.epoch if dev is not None else 0
        s.commit()
    result.forks.extend({"epoch": r["epoch"], "seq": r["seq"], "event_id": r["event_id"]} for r in forked)
    if any(int(r["epoch"]) == current for r in forked):
        result.new_epoch = _hub_epoch(session_factory, client, "fork")
        result.epoch_bumped = True
    return newly


def fork_message(forked: int, epoch: int | None) -> str:
    """One line for `anpi sync`: what happened and what to do."""
    fresh = f" New events now use epoch {epoch}, granted by the hub." if epoch else ""
    return (f"{forked} events were NOT stored by the hub: it already holds other events under the same numbers, "
            "written by another laptop that runs a copy of this database (restored from the same backup, or "
            "copied). They stay pending here and are kept at the hub for review: ask HQ to check and apply them "
            "(`anpi hub fork list`, then `anpi hub fork apply`), then run `anpi sync` again." + fresh)


def sync_once(session_factory: SessionFactory, hub_url: str | None = None, *, http: httpx.Client | None = None,
              batch_size: int = 500, max_retries: int = 5, backoff: float = 0.5, timeout: float = 30.0,
              pull: bool = True, clock: Callable[[], float] = time.time,
              sleep: Callable[[float], None] = time.sleep,
              on_progress: Callable[[SyncProgress], None] | None = None,
              audit_reporter: AuditReporter | None = None,
              on_pulled: Callable[[list[str]], None] | None = None,
              max_kbps: float | None = None, wire_version: int = 2, link_batch: int | None = None) -> SyncResult:
    """Push every unacknowledged event, then pull other shelters' events, then report.

    When the hub speaks wire v2 (and ``wire_version`` allows it) the push goes through
    :func:`_push_link` (compact batches, urgent first, resumable; ``max_kbps`` caps the average rate;
    ``link_batch``: a fixed batch size instead of the adaptive one; ``batch_size`` is for v1 and pulls).

    ``audit_reporter`` (given by the faces) sends the laptop's audit chain head and new audit
    entries to the hub at every sync, so the hub sees a cut tail (:mod:`sync.hub.audit_head`).
    ``on_pulled`` gets the evacuee ids of each committed page's registrations and edits (the
    shelter matches them against its registry at once; sync itself knows nothing of matching).

    Raises :class:`NotEnrolled` when there is no hub; every network or hub failure is
    reported in ``SyncResult.error`` (with ``pending`` still counted) so callers can decide.
    Events the hub answers as forks stay pending and make the run fail with :func:`fork_message`.
    """
    device_id, key, hub_id, url = _load_identity(session_factory, hub_url)
    result = SyncResult(hub_url=url)
    crash_after = SyncSettings.from_env().sync_crash_after_push
    client = failover.FailoverClient(  # one HubClient per hub URL; the next when one is down or a standby
        _hub_urls(session_factory, url),
        lambda u, retries: HubClient(u, device_id, key, http=http, timeout=timeout, max_retries=retries,
                                     backoff=backoff, clock=clock, sleep=sleep),
        max_retries=max_retries, backoff=backoff, sleep=sleep, remember_as=device_id)
    with _sync_lock:
        try:
            per_event = _start_of_run(session_factory, client, device_id, result)
            result.wire = min(result.wire, wire_version)
            total = _pending(session_factory)
            stalls = 0
            after: tuple[int, int] | None = None
            if result.wire >= 2:
                _push_link(session_factory, client, device_id, result, total, on_progress, max_kbps, crash_after,
                           link_batch, sleep)
            while result.wire < 2:
                with session_factory() as s:
                    batch = [e.to_wire() for e in outbox.pending_events(s, limit=batch_size,
                                                                        after=after if per_event else None)]
                if not batch:
                    break
                doc = client.request("POST", "/v1/push", {"events": batch, "laptop_time": round(client.clock(), 3)})
                result.batches += 1
                result.pushed += len(batch)
                if crash_after and result.batches >= crash_after:
                    os._exit(87)  # test hook: hub committed, laptop dies before recording the ack
                if "results" in doc:
                    newly = _push_per_event(session_factory, client, device_id, doc, result)
                    after = (batch[-1]["epoch"], batch[-1]["seq"])
                else:  # a hub of an older version: stream watermarks, capped by what we just sent
                    caps: dict[int, int] = {}
                    for e in batch:
                        caps[e["epoch"]] = max(caps.get(e["epoch"], 0), e["seq"])
                    newly, bumped = _record_acks(session_factory, device_id, _acks_from(doc), caps)
                    result.epoch_bumped |= bumped
                    result.forks.extend(doc.get("forks", []))
                result.acknowledged += newly
                if on_progress:
                    on_progress(SyncProgress("push", result.acknowledged, total))
                stalls = stalls + 1 if newly == 0 and not per_event else 0
                if stalls >= 3:
                    raise HubRejected("hub stopped acknowledging events (gap it cannot fill?)")
            if audit_reporter is not None:
                result.audit = _report_audit(client, audit_reporter, remember=_audit_rememberer(session_factory))
            if pull:
                _pull(session_factory, client, hub_id, batch_size, result, on_progress, on_pulled)
                _pull_shelters(session_factory, client)
            _pull_card_key(session_factory, client)
        except SyncError as exc:
            result.error = str(exc)
            if isinstance(exc, AuthError) and exc.reason in ("device_revoked", "unknown_device"):
                result.error = f"hub refused this laptop: {exc}"
        finally:
            result.retries += client.retries
            result.hub_url = client.base_url
            client.close()
        forked = len({f.get("event_id") for f in result.forks})
        if forked and result.error is None:
            result.error = fork_message(forked, result.new_epoch)
        with session_factory() as s:
            result.pending = outbox.pending_count(s)
            if not (result.error and not forked):  # a run that reached the hub says what it found
                outbox.set_cursor(s, outbox.FORKED_EVENTS, forked)
            if result.error is None:
                outbox.mark_synced(s)
            s.commit()
    result.finished_at = datetime.now(timezone.utc)
    return result


def _push_link(session_factory: SessionFactory, client: HubClient, device_id: str, result: SyncResult,
               total: int, on_progress: Callable[[SyncProgress], None] | None, max_kbps: float | None,
               crash_after: int, link_batch: int | None, sleep: Callable[[float], None]) -> None:
    """The v2 push (:mod:`sync.link`): acknowledgements go through the same per-event logic as v1."""
    from sync import link

    def progress(done: int) -> None:
        if on_progress:
            on_progress(SyncProgress("push", done, total))

    stats = link.push_v2(session_factory, client, result,
                         lambda doc: _push_per_event(session_factory, client, device_id, doc, result),
                         max_kbps=max_kbps, crash_after=crash_after, on_round=progress, sleep=sleep,
                         batch_size=link_batch)
    result.bytes_up, result.bytes_down, result.resumed = stats.bytes_up, stats.bytes_down, stats.probes_held
    result.retries += stats.failures


def _audit_rememberer(session_factory: SessionFactory) -> Callable[[int, int], None]:
    """Keep the head the hub acknowledged, so a later USB bundle answers for it offline."""
    def remember(seq: int, uploaded: int) -> None:
        with session_factory() as s:
            outbox.remember_audit_head(s, seq, uploaded)
            s.commit()
    return remember


def _report_audit(client: HubClient, reporter: AuditReporter, max_rounds: int = 1000,
                  remember: Callable[[int, int], None] | None = None) -> str | None:
    """Head and new entries, in rounds of at most 1,000 entries; the hub's verdict of the first round.

    A hub older than this answers 404: the laptop then syncs as before (nothing to compare with).
    """
    verdict: str | None = None
    for _ in range(max_rounds):
        try:
            known = client.request("GET", "/v1/audit/head")
        except HubRejected as exc:
            if exc.status == 404:
                return None
            raise
        report = reporter(known.get("seq"), int(known.get("uploaded") or 0))
        if report is None:
            return verdict
        doc = client.request("POST", "/v1/audit/head", report)
        verdict = verdict or str(doc.get("status"))
        if remember is not None and isinstance(doc.get("uploaded"), int):
            remember(int(report["head"]["seq"]), int(doc["uploaded"]))
        if len(report.get("entries") or []) < 1000:
            break
    return verdict
def _pull_shelters(session_factory: SessionFactory, client: HubClient) -> None:
    """The municipality's shelters (``GET /v1/shelters``) into ``remote_shelter``, replacing the last
    list. A hub that predates the endpoint answers 404: the laptop keeps what it had."""
    from sync.models import RemoteShelter

    try:
        doc = client.request("GET", "/v1/shelters")
    except SyncError:
        return
    rows = doc.get("shelters")
    if not isinstance(rows, list):
        return
    now = datetime.now(timezone.utc)
    with session_factory() as s:
        for old in s.exec(select(RemoteShelter)):
            s.delete(old)
        s.flush()
        for r in rows:
            if isinstance(r, dict) and r.get("code") and r.get("name"):
                pop = r.get("population")
                s.add(RemoteShelter(code=str(r["code"])[:100], name=str(r["name"])[:200],
                                    population=pop if isinstance(pop, int) else None, seen_at=now))
        s.commit()


def _pull(session_factory: SessionFactory, client: HubClient, hub_id: str, batch_size: int, result: SyncResult,
          on_progress: Callable[[SyncProgress], None] | None,
          on_pulled: Callable[[list[str]], None] | None = None) -> None:
    """Fetch the hub feed after our cursor; each page and its cursor commit together.

    Items are stored as served: another laptop's registration or edit arrives without its health
    and contact items (the hub redacts them and hashes the redacted payload, see
    ``sync.hub.store.pull_feed``), and the hub's own notices (device ``hub``: cross-town matches,
    HQ records typed at the hub, voids and reissues of our certificates) arrive beside the events;
    the hash check is over exactly what was served.

    The cursor belongs to the hub's feed *generation* (``generation`` in the answer, kept beside the
    cursor): when it changes — the hub's database was restored to an earlier point and numbers its
    feed again from there (:mod:`sync.hub.feed_generation`) — :func:`restart_feed` forgets what was
    pulled and the feed is pulled again from 0.  A hub of an earlier release sends none: the cursor
    is kept as before."""
    cursor_name, generation_name = f"pull/{hub_id}", f"pull-generation/{hub_id}"
    with session_factory() as s:
        cursor, known = outbox.get_cursor(s, cursor_name), outbox.get_cursor(s, generation_name)
    restarts = 0
    while True:
        doc = client.request("GET", f"/v1/pull?after={cursor}&limit={batch_size}")
        generation = doc.get("generation")
        if isinstance(generation, int) and generation > 0 and generation != known:
            with session_factory() as s:
                restart = cursor > 0 or known > 0
                if restart:
                    restart_feed(s, cursor_name)
                outbox.set_cursor(s, generation_name, generation)
                s.commit()
            known, result.feed_restarted = generation, result.feed_restarted or restart
            if restart:  # this page is in the old numbering's terms: ask again from 0
                restarts += 1
                if restarts > 3:  # e.g. two hubs both taking writes on diverged copies of one database
                    raise HubRejected("the hub's feed generation keeps changing; pull stopped")
                cursor = 0
                continue
        nxt = int(doc.get("next", cursor))
        with session_factory() as s:
            rows = store_pulled(s, doc.get("events", []))
            if nxt > cursor:
                outbox.set_cursor(s, cursor_name, nxt)
            s.commit()
        result.pulled += len(rows)
        people = [r["evacuee_id"] for r in rows if r["type"] in ("evacuee.registered", "evacuee.updated") and r["evacuee_id"]]
        if on_pulled and people:
            on_pulled(people)
        if on_progress:
            on_progress(SyncProgress("pull", result.pulled, None))
        if not doc.get("more") or nxt <= cursor:
            break
        cursor = nxt


def restart_feed(session: Session, cursor_name: str) -> None:
    """Forget everything pulled and set the pull cursor to 0 (the caller commits).

    Why everything: after a restore the hub no longer holds what it numbered after the restore
    point (the items are lost, or come back under new numbers when laptops resend them), and a
    wrong import undone by the restore must not linger in this laptop's copy.  Pulling again from 0
    rebuilds ``remote_event`` as exactly the restored hub's feed.  What the laptop derived from pulled
    items is not applied twice: matching skips evacuees it already decided (``remote_match``), and
    every other reader reads ``remote_event`` as it stands.  Until the re-pull has finished (the same
    sync run) the laptop sees only the part pulled so far."""
    session.execute(RemoteEvent.__table__.delete())  # type: ignore[attr-defined]
    outbox.set_cursor(session, cursor_name, 0)


def store_pulled(session: Session, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Store one page of the hub's feed as served (hash-checked) and apply its retractions; the
    caller commits with the cursor."""
    rows = []
    now = datetime.now(timezone.utc)
    for e in events:
        if sha256_hex(e["payload"]) != e["payload_sha256"]:
            raise HubRejected(f"pulled event {e['event_id']} does not match its hash")
        data = json.loads(e["payload"])
        rows.append(dict(hub_seq=int(e["hub_seq"]), event_id=e["event_id"], device_id=e["device_id"],
                         epoch=int(e["epoch"]), seq=int(e["seq"]), type=e["type"], recorded_at=e["recorded_at"],
                         payload=e["payload"], payload_sha256=e["payload_sha256"],
                         shelter_code=data.get("shelter_code"), shelter_name=e.get("shelter_name"),
                         evacuee_id=data.get("evacuee_id"), received_at=now))
    if rows:
        session.execute(sqlite_insert(RemoteEvent.__table__).on_conflict_do_nothing(), rows)
        retract(session, [r["evacuee_id"] for r in rows if r["type"] == "evacuee.retracted" and r["evacuee_id"]])
    return rows


def retract(session: Session, evacuee_ids: Sequence[str]) -> None:
    """The hub withdrew these registrations (``evacuee.retracted``: now 閲覧制限 or in a flagged
    person's household): delete everything pulled about them, so "already registered at …", the
    safety list and every other reader forget where they are. The notice itself stays (an opaque id)."""
    ids = sorted(set(evacuee_ids))
    if ids:
        session.execute(RemoteEvent.__table__.delete().where(  # type: ignore[attr-defined]
            RemoteEvent.__table__.c.evacuee_id.in_(ids),  # type: ignore[attr-defined]
            RemoteEvent.__table__.c.type != "evacuee.retracted"))  # type: ignore[attr-defined]


# ---- registry backup from the hub -------------------------------------------------------------------------------
@dataclass
class PulledRegistry:
    manifest: dict[str, Any]
    data: bytes
    unchanged: bool = False  # the laptop already holds exactly this file (nothing was sent)
    via: str = "file"  # "file" | "diff" (rebuilt from the older file) | "file-after-diff" (rebuild failed)


def fetch_registry(session_factory: SessionFactory, hub_url: str | None = None, *, http: httpx.Client | None = None,
                   timeout: float = 300.0, max_retries: int = 3, have: str | None = None,
                   chunked: bool = True, base: tuple[str, bytes] | None = None,
                   keep: Path | None = None) -> PulledRegistry:
    """The newest registry backup of this laptop's municipality, verified.

    Trust comes from what the laptop pinned at enrolment: the manifest must carry the hub's
    Ed25519 signature and name this hub and this device; the file must open with this
    device's key (it is boxed to it) and match the manifest's SHA-256 and size.  Anything
    else raises :class:`HubRejected` and nothing is returned.

    ``base`` = (SHA-256, bytes) of an older registry file this laptop holds: the hub may then send
    only the difference (:mod:`sync.registry_diff`); the rebuilt file must match the signed SHA-256,
    else the full file is fetched. ``keep``: a folder where fetched (sealed) chunks wait for the next
    run when this one is cut off (:mod:`sync.registry_fetch`).
    """
    device_id, key, hub_id, url = _load_identity(session_factory, hub_url)
    with session_factory() as s:
        dev = outbox.get_device(s)
        assert dev is not None
        sign_pub, box_pub = dev.hub_sign_public_key, dev.hub_box_public_key
    if not sign_pub or not box_pub:
        raise NotEnrolled("this laptop holds no hub keys; enrol again")
    c = HubClient(url, device_id, key, http=http, timeout=timeout, max_retries=max_retries)
    try:
        pulled = _pull_registry(c, key, sign_pub, box_pub, hub_id, device_id, have, chunked,
                                base if chunked else None, keep)
        if pulled.via == "diff" and not _registry_matches(pulled):  # a wrong rebuild: the full file instead
            pulled = _pull_registry(c, key, sign_pub, box_pub, hub_id, device_id, have, chunked, None, keep)
            pulled.via = "file-after-diff"
    finally:
        c.close()
    if not _registry_matches(pulled):
        raise HubRejected("registry file does not match the SHA-256 the hub signed; refused")
    return pulled


def _registry_matches(pulled: PulledRegistry) -> bool:
    import hashlib

    m = pulled.manifest
    return (pulled.unchanged or len(pulled.data) == int(m.get("size", -1))
            and hashlib.sha256(pulled.data).hexdigest() == m.get("sha256"))


def _pull_registry(c: HubClient, key: Any, sign_pub: str, box_pub: str, hub_id: str, device_id: str,
                   have: str | None, chunked: bool, base: tuple[str, bytes] | None,
                   keep: Path | None) -> PulledRegistry:
    """One request for the package, then the file (or the difference, rebuilt from ``base``); unchecked."""
    from nacl.exceptions import CryptoError

    query = "&".join(([f"have={have}"] if have else []) + (["enc=zstd"] if chunked else [])
                     + ([f"base={base[0]}"] if base else []))
    doc = c.request("GET", "/v1/registry/latest" + (f"?{query}" if query else ""))
    manifest = _signed_manifest(doc, sign_pub, hub_id, device_id)
    if doc.get("file") is None and have and manifest.get("sha256") == have:
        return PulledRegistry(manifest, b"", unchanged=True)
    blob = doc.get("blob")
    if isinstance(blob, dict):  # issue 16: compressed, in hashed chunks, each retried alone
        from sync import registry_diff, registry_fetch

        if blob.get("encoding") != "zstd-linediff":
            return PulledRegistry(manifest, registry_fetch.download(c, manifest, blob, key, box_pub, keep=keep))
        if base is None or blob.get("base") != base[0]:
            raise HubRejected("hub sent a difference against a file this laptop did not offer; refused")
        packed = registry_fetch.opened_blob(c, manifest, blob, key, box_pub, keep=keep)
        try:
            return PulledRegistry(manifest, registry_diff.apply(base[1], packed, int(manifest.get("size", 0))),
                                  via="diff")
        except registry_diff.DiffError:
            return PulledRegistry(manifest, b"", via="diff")  # fails the check: the full file is fetched
    try:
        data = bytes(crypto.device_box(key, box_pub).decrypt(crypto.b64d(str(doc.get("file", "")))))
    except (CryptoError, ValueError) as exc:
        raise HubRejected(f"registry file cannot be opened with this laptop's key: {exc}") from None
    return PulledRegistry(manifest, data)


def _signed_manifest(doc: dict[str, Any], sign_pub: str, hub_id: str, device_id: str) -> dict[str, Any]:
    """The manifest, checked against the hub key pinned at enrolment, before any file byte is fetched."""
    manifest = doc.get("manifest")
    if not isinstance(manifest, dict):
        raise HubRejected("hub answered without a registry manifest")
    msg = canonical_bytes({"purpose": "anpi-registry-1", **manifest})
    if not crypto.verify_detached(sign_pub, msg, str(doc.get("signature", ""))):
        raise HubRejected("registry manifest is not signed by the hub this laptop enrolled at; refused")
    if manifest.get("hub_id") != hub_id or manifest.get("device_id") != device_id:
        raise HubRejected("registry manifest is for another hub or another laptop; refused")
    return manifest


def cross_town_notice(session: Session, evacuee_id: str) -> dict[str, Any] | None:
    """What the hub found out about one of our evacuees in another municipality's registry:
    ``{"label": "住民: ○○町", "home_municipality_code", "home_municipality_name", "decision",
    "resident": {"name", "birth_date", "sex", "address"}}`` — or ``None`` (never found, or withdrawn)."""
    from sqlmodel import select

    rows = session.exec(select(RemoteEvent).where(
        RemoteEvent.evacuee_id == evacuee_id,
        RemoteEvent.type.in_(("crossmatch.linked", "crossmatch.unlinked")))  # type: ignore[attr-defined]
        .order_by(RemoteEvent.hub_seq)).all()
    latest = rows[-1] if rows else None
    if latest is None or latest.type != "crossmatch.linked":
        return None
    return json.loads(latest.payload)


# ---- background -----------------------------------------------------------------------------------------------
class BackgroundSyncer(PeriodicThread):
    """A daemon thread that calls :func:`sync_once` every ``interval`` seconds while a hub is set.

    Errors never escape the thread; the last result and error are kept for the status page.
    ``trigger()`` asks for a sync now (e.g. right after a registration when online).
    """

    thread_name = "anpi-sync"

    def __init__(self, session_factory: SessionFactory, interval: float = 60.0, *, hub_url: str | None = None,
                 **sync_kwargs: Any) -> None:
        super().__init__(interval)
        self.session_factory = session_factory
        self.hub_url = hub_url
        self.sync_kwargs = sync_kwargs
        self.last_result: SyncResult | None = None
        self.runs = 0

    def _hub_configured(self) -> bool:
        with self.session_factory() as s:
            dev = outbox.get_device(s)
            return dev is not None and bool(dev.hub_id) and bool(self.hub_url or dev.hub_url)

    def tick(self) -> None:
        if self._hub_configured():
            self.last_result = sync_once(self.session_factory, self.hub_url, **self.sync_kwargs)
            self.last_error = self.last_result.error
            self.runs += 1
