"""Authorisation matrix over EVERY route of the hub, for the devices and HQ users of two municipalities.

The hub is the one ``anpi hub serve`` runs (``app.hub_app.create_app``: sync's hub plus the desks'
routes from ``app/api/hub``).  Three towns share one hub: 双葉町 (A) and 加須市 (B), each with its shelter laptop, registry backup,
desk, HQ and admin accounts; and 千代田区 (C), whose shelter holds an evacuee from each of A and B (both
A and B share with C, so A and B each have a cross-town review item).  Then every route is called
as anonymous, A's device, B's device, a revoked device, A's desk, hq and admin, B's desk, hq and
admin, and a disabled HQ user, and:

- the table below is the policy; a route added to the hub without a row fails the test (the desks'
  routes, the HQ screen and its static files included);
- public routes never answer 401/403; device routes refuse every HQ token and vice versa; a desk
  account (窓口: 安否照会, certificates, PFIF) is refused HQ's and admin's routes (403);
- nothing of B — its code, name, evacuees, devices, users, 宛名番号, shelter, certificates, sought
  people — appears in any answer to A (and the other way round), through any route, its data
  (JSON, or text: SVG, XML, CSV, HTML), or an error;
- a path id of the other municipality answers exactly like an id that does not exist (404).
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.hub_app import create_app
from app.hub_registry import pull_into_shelter
from app.services.reconcile import reconcile_all
from app.services.roster import register
from sync import client, crypto
from sync.canonical import canonical_bytes
from app import hub_certificates, hub_pfif
from app.formats.pfif import PfifNote, PfifPerson, write_pfif
from sync.hub import crossmatch, registry, store, tenants
from tests.hub.conftest import PgHub
from tests.hub.helpers import (
    A, A_PREFIX, B, B_PREFIX, C, C_NAME, C_PREFIX, Town, add_towns, app_shelter, make_town, resident, store_registry, typed_input,
)
from tests.sync.helpers import no_sleep

#: DESK: the hub's 窓口 routes (perm "desk": desk, hq and admin accounts); HQ: perm "hq" (hq, admin)
PUBLIC, DEVICE, DESK, HQ, ADMIN = "public", "device", "desk", "hq", "admin"
MATRIX: dict[tuple[str, str], str] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/v1/hub"): PUBLIC,
    ("POST", "/v1/enroll"): PUBLIC,
    ("POST", "/v1/push"): DEVICE,
    ("GET", "/v1/acks"): DEVICE,
    ("GET", "/v1/audit/head"): DEVICE,
    ("POST", "/v1/audit/head"): DEVICE,
    ("POST", "/v1/epoch"): DEVICE,
    ("GET", "/v1/pull"): DEVICE,
    ("GET", "/v1/registry/latest"): DEVICE,
    ("GET", "/v1/registry/chunk"): DEVICE,
    ("POST", "/v1/push/probe"): DEVICE,
    ("GET", "/v1/shelters"): DEVICE,
    ("GET", "/v1/card-key"): DEVICE,
    ("GET", "/v1/hq/whoami"): DESK,
    ("GET", "/v1/hq/status"): HQ,
    ("GET", "/v1/hq/anpi-list"): HQ,
    ("GET", "/v1/hq/anpi-list/export"): HQ,
    ("GET", "/v1/hq/anpi-list/{resident_id}/records"): HQ,
    ("POST", "/v1/hq/anpi-list/{resident_id}/records"): HQ,
    ("GET", "/v1/hq/evacuees"): HQ,
    ("GET", "/v1/hq/evacuees/{evacuee_id}"): HQ,
    ("GET", "/v1/hq/found-elsewhere"): HQ,
    ("GET", "/v1/hq/review"): HQ,
    ("POST", "/v1/hq/review/{item_id}"): HQ,
    ("GET", "/v1/hq/forks"): HQ,
    ("POST", "/v1/hq/forks/apply"): HQ,
    ("GET", "/v1/hq/shares"): HQ,
    ("GET", "/v1/hq/registry"): HQ,
    ("GET", "/v1/hq/devices"): ADMIN,
    ("GET", "/v1/hq/audit"): ADMIN,
    ("GET", "/v1/hq/anpi-list/chart.svg"): HQ,
    # 安否照会: the desk answers, the log (real outcomes) is HQ's
    ("POST", "/v1/hq/inquiries"): DESK,
    ("GET", "/v1/hq/inquiries"): HQ,
    # certificates: the whole desk
    ("POST", "/v1/hq/certificates"): DESK,
    ("GET", "/v1/hq/certificates"): DESK,
    ("GET", "/v1/hq/certificates/{number}"): DESK,
    ("GET", "/v1/hq/certificates/{number}/pdf"): DESK,
    ("POST", "/v1/hq/certificates/{number}/reissue"): DESK,
    ("POST", "/v1/hq/certificates/{number}/void"): DESK,
    # PFIF: import and links at the desk, the export (publication) is HQ's
    ("POST", "/v1/hq/pfif/import"): DESK,
    ("GET", "/v1/hq/pfif/sought"): DESK,
    ("POST", "/v1/hq/pfif/sought/{sought_id}/links"): DESK,
    ("GET", "/v1/hq/pfif/export"): HQ,
    # the HQ screen: no personal data in it (the token is pasted in the browser), so public
    ("GET", "/hq"): PUBLIC,
    ("POST", "/hq"): PUBLIC,
    ("GET", "/static/app.css"): PUBLIC,
    ("GET", "/static/hq.css"): PUBLIC,
    ("GET", "/static/hub_hq.css"): PUBLIC,
    ("GET", "/static/hub_hq.js"): PUBLIC,
    ("GET", "/static/hub_token.js"): PUBLIC,  # the token code both screens load
    # the desk screen (窓口: 安否照会, 証明書, PFIF): like /hq, no personal data in it, so public
    ("GET", "/desk"): PUBLIC,
    ("POST", "/desk"): PUBLIC,
    ("GET", "/static/hub_desk.js"): PUBLIC,
    ("GET", "/static/hub_desk.css"): PUBLIC,
    ("GET", "/static/inquiry.css"): PUBLIC,
    ("GET", "/static/certificate.css"): PUBLIC,
    ("GET", "/static/sought.css"): PUBLIC,
}
#: what an authorised caller gets from the request ``concrete`` makes (default: GET 200, POST 200 or
#: 409); the POSTs are chosen to be refused harmlessly or to change nothing that matters
ALLOWED_STATUS: dict[tuple[str, str], tuple[int, ...]] = {
    ("POST", "/v1/hq/forks/apply"): (404,),  # no such fork
    ("POST", "/v1/hq/inquiries"): (200,),  # nobody of that name: "no_information" (logged)
    ("POST", "/v1/hq/certificates"): (422,),  # no cause given
    ("POST", "/v1/audit/head"): (422,),  # a head without seq and hash
    ("GET", "/v1/registry/chunk"): (404,),  # no snapshot named: nothing sent
    ("POST", "/v1/push/probe"): (200,),  # a batch the hub does not hold: {"held": false}
    ("POST", "/v1/hq/certificates/{number}/reissue"): (409,),  # a void certificate
    ("POST", "/v1/hq/certificates/{number}/void"): (409,),  # already void
    ("POST", "/v1/hq/pfif/import"): (422,),  # not a PFIF file: nothing stored
    ("POST", "/v1/hq/pfif/sought/{sought_id}/links"): (409,),  # undo of a link no staff decided
}
GHOST = "01HZZZZZZZZZZZZZZZZZZZZZZZ"  # an id that exists nowhere
#: a stranger's address for the forms (nothing of A or B in it, so the leak check stays exact)
NEUTRAL_ADDRESS = "大阪府大阪市北区中之島1-3-20"


def hub_routes(app: Any) -> set[tuple[str, str]]:
    def walk(routes: list[Any]):  # type: ignore[no-untyped-def]
        for r in routes:
            if hasattr(r, "original_router"):  # an included router (the /v1/hq routes)
                yield from walk(r.original_router.routes)
            else:
                yield r

    out = set()
    for r in walk(app.routes):
        methods = getattr(r, "methods", None) or set()
        for m in methods - {"HEAD", "OPTIONS"}:
            out.add((m, r.path))
    return out


class World:
    """Everything the matrix needs, built through the real paths (laptops, sync, HQ)."""

    def __init__(self, pg: PgHub, tmp: Path) -> None:
        self.key = registry.DataKey.generate()
        self.app = create_app(pg.url, data_key=self.key)
        self.engine = self.app.state.engine
        self.tc = TestClient(self.app, base_url="http://hub")
        self.a, self.b = add_towns(self.engine, tmp, residents=200, evacuees=10)
        self.c = make_town(tmp, C, C_NAME, C_PREFIX, residents=150, evacuees=5, seed="chiyoda")
        tenants.add_municipality(self.engine, C, C_NAME)
        for t in (self.a, self.b, self.c):
            store_registry(self.engine, self.key, t)
        tenants.share(self.engine, A, C)
        tenants.share(self.engine, B, C)
        self.shelters = {}
        self.evacuees: dict[str, list[str]] = {}
        for code, town, name in ((A, self.a, "双葉町立体育館"), (B, self.b, "加須市民会館"), (C, self.c, "千代田区立小学校")):
            sh = app_shelter(tmp, f"laptop-{code}")
            slot = store.create_enrolment(self.engine, name, code)
            client.enroll(sh.session, "http://hub", slot.code, name, http=self.tc)
            pull_into_shelter(sh.engine, sh.session, http=self.tc)
            self.shelters[code] = sh
            with sh.session() as s:
                ids = [register(s, typed_input(resident(town, i)), by="staff", shelter_code=f"S{code}").id
                       for i in range(3)]
                if code == C:  # one resident each of A and B, sex mistyped: review by their home's HQ
                    for home in (self.a, self.b):
                        p = resident(home, 5)
                        ids.append(register(s, typed_input(p, sex="男" if p["性別"] == "2" else "女", address=""),
                                            by="staff", shelter_code=f"S{code}").id)
                s.commit()
            self.evacuees[code] = ids
            reconcile_all(sh.engine)
            assert client.sync_once(sh.session, http=self.tc, sleep=no_sleep).ok
        crossmatch.run_pending(self.engine, self.key)
        self.spare = app_shelter(tmp, "revoked")  # a laptop of A that is revoked
        slot = store.create_enrolment(self.engine, "lost laptop", A)
        client.enroll(self.spare.session, "http://hub", slot.code, "lost", http=self.tc)
        store.revoke_device(self.engine, "lost laptop", A)
        _, self.disabled_token = tenants.add_user(self.engine, A, "gone", "hq")
        tenants.disable_user(self.engine, A, "gone")
        self.desk_token = {m: tenants.add_user(self.engine, m, f"desk-{m}", "desk")[1] for m in (A, B)}
        #: (an issued certificate, a void one) of each municipality
        self.certs = {m: certificates(self.engine, m) for m in (A, B)}
        #: (sought id, PFIF record id, target kind, target id of a link the engine suggested)
        self.sought = {m: sought_person(self.engine, self.key, t) for m, t in ((A, self.a), (B, self.b))}
        self.items = {m: [i["item_id"] for i in crossmatch_items(self, m)] for m in (A, B)}
        assert self.items[A] and self.items[B]

    def device(self, code: str) -> tuple[str, Any]:
        sh = self.spare if code == "revoked" else self.shelters[code]
        dev = sh.device()
        return dev.device_id, crypto.signing_key_from_b64(dev.signing_key)


def certificates(engine: Any, m: str) -> tuple[str, str]:
    """Two 被災証明書 by the manual path (no registry lookup), the second voided."""
    prefix = A_PREFIX if m == A else B_PREFIX
    numbers = [hub_certificates.issue_manual(engine, m, kind="hisai", cause="令和X年地震", name=f"証明 {i}郎",
                                             address=f"{prefix}{i}-1", by="test").number for i in (1, 2)]
    hub_certificates.void(engine, None, m, numbers[1], "テストのため", by="test")
    return numbers[0], numbers[1]


def sought_person(engine: Any, key: registry.DataKey, town: Town) -> tuple[str, str, str, str]:
    """A resident sought on Person Finder, imported at the hub and linked by the engine (suggested)."""
    p = next(p for p in town.residents[20:] if p["氏"] and p["名"] and p["生年月日"] and not p["英字氏名"]
             and not p["閲覧制限"])
    rid = f"pf.example.org/{town.code}-1"
    person = PfifPerson(rid, source_date=datetime(2024, 1, 2, tzinfo=timezone.utc), full_name=f"{p['氏']} {p['名']}",
                        alternate_names=f"{p['氏カナ']} {p['名カナ']}", sex={"1": "male", "2": "female"}[p["性別"]],
                        date_of_birth=p["生年月日"], author_name="家族",
                        notes=[PfifNote(f"{rid}.n1", rid, author_name="家族",
                                        source_date=datetime(2024, 1, 2, tzinfo=timezone.utc),
                                        status="information_sought", text="連絡が取れません。")])
    res = hub_pfif.import_pfif(engine, key, town.code, write_pfif([person]), "seed.xml", by="test")
    sid = res.sought_ids[0]
    row = next(s for s in hub_pfif.sought_list(engine, key, town.code, reveal_restricted=True)
               if s["sought_id"] == sid)
    link = row["links"][0]
    return sid, rid, link["target_kind"], link["target_id"]


def crossmatch_items(w: World, m: str) -> list[dict[str, Any]]:
    from sync.hub import hq

    return [i for i in hq.review_items(w.engine, m) if i["kind"] == "cross_match"]


@pytest.fixture
def world(pg_hub: PgHub, tmp_path: Path):  # noqa: ANN201
    w = World(pg_hub, tmp_path)
    yield w
    w.tc.close()
    w.engine.dispose()


def call(w: World, who: str, method: str, path: str, body: Any = None) -> httpx.Response:
    """``body``: JSON (a dict), or a file's raw bytes."""
    headers: dict[str, str] = {}
    if isinstance(body, bytes):
        data = body
    else:
        data = canonical_bytes(body) if body is not None else b""
        if body is not None:
            headers["Content-Type"] = "application/json"
    if who.startswith("dev"):
        device_id, key = w.device(who[3:])
        headers.update(crypto.sign_request(key, device_id, method, path, data, time.time()).as_dict())
    elif who != "anon":
        token = {"hqA": w.a.hq_token, "adminA": w.a.admin_token, "hqB": w.b.hq_token,
                 "adminB": w.b.admin_token, "deskA": w.desk_token[A], "deskB": w.desk_token[B],
                 "disabled": w.disabled_token}[who]
        headers["Authorization"] = f"Bearer {token}"
    return w.tc.request(method, path, content=data, headers=headers)


PRINCIPALS = ["anon", f"dev{A}", f"dev{B}", "devrevoked", "deskA", "hqA", "adminA", "deskB", "hqB", "adminB",
              "disabled"]


def own(who: str) -> str | None:
    if who in (f"dev{A}", "deskA", "hqA", "adminA", "disabled", "devrevoked"):
        return A
    if who in (f"dev{B}", "deskB", "hqB", "adminB"):
        return B
    return None


def concrete(w: World, who: str, method: str, path: str) -> tuple[str, Any]:
    """The route called with the caller's own ids (and a body that cannot change state)."""
    m = own(who) or A
    body: Any = None
    town = w.a if m == A else w.b
    issued, void = w.certs[m]
    path = (path.replace("{evacuee_id}", w.evacuees[m][0]).replace("{item_id}", w.items[m][0])
            .replace("{resident_id}", town.residents[0]["宛名番号"]).replace("{sought_id}", w.sought[m][0])
            .replace("{number}", void if method == "POST" else issued))
    if path == "/v1/push":
        body = {"events": []}
    elif path == "/v1/audit/head" and method == "POST":
        body = {"head": {}}  # refused before anything is stored
    elif path == "/v1/push/probe":
        body = {"ranges": [[1, 1, 1]], "ids_sha256": "0" * 64}
    elif path == "/v1/hq/forks/apply":
        body = {"fork_ids": ["no-such-fork"]}  # refused (404), changes nothing
    elif path == "/v1/epoch":
        body = {"current_epoch": 0, "reason": "authz-matrix"}  # a fresh epoch: harmless to grant
    elif path == "/v1/enroll":
        body = {"code_id": "x", "device_id": "y", "public_key": "z", "signature": "s", "mac": "m"}
    elif path.startswith("/v1/hq/review/"):
        body = {"decision": "rejected", "resident_id": "not-a-candidate"}  # a business refusal (409)
    elif path.endswith("/records") and method == "POST":
        body = {"status": "withdrawn"}  # nothing to withdraw: a business refusal (409)
    elif path == "/v1/pull":
        path += "?after=0&limit=2000"
    elif path == "/v1/hq/inquiries" and method == "POST":  # nobody of that name anywhere
        body = {"inquirer_name": "照会 花子", "inquirer_address": NEUTRAL_ADDRESS, "id_proof": "運転免許証",
                "relationship": "同居の親族", "sought_name": "存在 しない人", "sought_birth": "1901-01-01"}
    elif path == "/v1/hq/certificates" and method == "POST":
        body = {"kind": "hisai", "manual": True, "name": "証明 太郎", "address": NEUTRAL_ADDRESS}  # no cause: 422
    elif path.startswith("/v1/hq/certificates/") and method == "POST":
        body = {"reason": "テスト"}  # of a void certificate: refused (409)
    elif path == "/v1/hq/pfif/import":
        path, body = path + "?name=empty.xml", b"not a PFIF file"  # refused whole (422)
    elif path.endswith("/links"):
        _, _, kind, target = w.sought[m]
        body = {"target_kind": kind, "target_id": target, "decision": "undo"}  # no staff decision to undo: 409
    return path, body


def expected_ok(policy: str, who: str) -> bool:
    if policy == PUBLIC:
        return True
    if policy == DEVICE:
        return who in (f"dev{A}", f"dev{B}")
    if policy == DESK:
        return who in ("deskA", "hqA", "adminA", "deskB", "hqB", "adminB")
    if policy == HQ:
        return who in ("hqA", "adminA", "hqB", "adminB")
    return who in ("adminA", "adminB")


def strings(doc: Any) -> list[str]:
    out: list[str] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append(str(k))
            out.extend(strings(v))
    elif isinstance(doc, list):
        for v in doc:
            out.extend(strings(v))
    elif doc is not None:
        out.append(str(doc))
    return out


def markers(w: World, m: str) -> tuple[set[str], set[str]]:
    """(exact values, substrings) that belong to municipality ``m`` alone."""
    town = w.a if m == A else w.b
    sh = w.shelters[m]
    exact = {m, f"hq-{m}", f"admin-{m}"} | {p["宛名番号"] for p in town.residents} \
        | {p["世帯番号"] for p in town.residents if p["世帯番号"]}
    subs = {town.name, sh.device().device_id, *w.evacuees[m][:3], *w.items[m],
            "双葉町立体育館" if m == A else "加須市民会館", *w.certs[m], *w.sought[m][:2]}
    if m == A:
        subs |= {"福島県双葉郡"}
    else:
        subs |= {"埼玉県加須市"}
    return exact, subs


def leaks(doc: Any, exact: set[str], subs: set[str]) -> list[str]:
    found = []
    for s in strings(doc):
        if s in exact:
            found.append(s)
        found.extend(x for x in subs if x in s)
    return found


def text_leaks(text: str, subs: set[str]) -> list[str]:
    """For answers that are not JSON (SVG, XML, CSV, HTML, CSS, JS): the substrings only."""
    return [x for x in subs if x in text]


def test_every_route_has_a_row(world: World) -> None:
    routes = hub_routes(world.app)
    assert routes == set(MATRIX), routes ^ set(MATRIX)
    assert set(ALLOWED_STATUS) <= set(MATRIX)


def test_authorisation_matrix(world: World) -> None:
    w = world
    routes = [(m, p) for m, p in sorted(MATRIX)]
    checked = 0
    for method, template in routes:
        policy = MATRIX[(method, template)]
        for who in PRINCIPALS:
            path, body = concrete(w, who, method, template)
            r = call(w, who, method, path, body)
            ctx = f"{who} {method} {path}: {r.status_code} {r.text[:200]}"
            if expected_ok(policy, who):
                if template == "/v1/enroll":  # a made-up code is refused the same way for everyone
                    assert (r.status_code, r.json()["error"]) == (403, "enrollment_refused"), ctx
                else:
                    assert r.status_code not in (401, 403), ctx
                if policy != PUBLIC:
                    default = (200,) if method == "GET" else (200, 409)
                    assert r.status_code in ALLOWED_STATUS.get((method, template), default), ctx
                if template == "/v1/hq/inquiries" and method == "POST":
                    assert r.json()["outcome"] == "no_information", ctx
                if policy == PUBLIC and template != "/v1/enroll":
                    assert r.status_code == 200, ctx
            elif who == "devrevoked" and policy == DEVICE:
                assert (r.status_code, r.json()["error"]) == (403, "device_revoked"), ctx
            elif (policy == ADMIN and who in ("deskA", "hqA", "deskB", "hqB")) or (
                    policy == HQ and who in ("deskA", "deskB")):
                assert (r.status_code, r.json()["error"]) == (403, "forbidden"), ctx
            else:
                assert r.status_code == 401, ctx
            m = own(who)
            if m in (A, B):
                other = B if m == A else A
                exact, subs = markers(w, other)
                ctype = r.headers.get("content-type", "")
                if ctype.startswith("application/json"):
                    found = leaks(r.json(), exact, subs)
                elif ctype.startswith(("text/", "image/svg+xml", "application/xml")):
                    found = text_leaks(r.text, subs)
                else:  # a PDF: compressed, checked through its JSON twin (GET /v1/hq/certificates/{number})
                    found = []
                assert not found, f"{ctx}: leaks {found[:5]}"
            checked += 1
    assert checked == len(MATRIX) * len(PRINCIPALS)


def test_other_municipality_ids_look_like_missing_ids(world: World) -> None:
    w = world
    for who, mine, other in (("hqA", A, B), ("adminB", B, A)):
        for template in ("/v1/hq/evacuees/{id}",):
            theirs = call(w, who, "GET", template.replace("{id}", w.evacuees[other][0]))
            ghost = call(w, who, "GET", template.replace("{id}", GHOST))
            assert (theirs.status_code, theirs.json()) == (ghost.status_code, ghost.json()) == (
                404, {"error": "not_found", "detail": "not found"})
            assert call(w, who, "GET", template.replace("{id}", w.evacuees[mine][0])).status_code == 200
        body = {"decision": "rejected", "resident_id": "x"}
        theirs = call(w, who, "POST", f"/v1/hq/review/{w.items[other][0]}", body)
        ghost = call(w, who, "POST", f"/v1/hq/review/{GHOST}", body)
        assert (theirs.status_code, theirs.json()) == (ghost.status_code, ghost.json()) == (
            404, {"error": "not_found", "detail": "not found"})
    # the item of B is untouched by A's attempt
    assert [i["item_id"] for i in crossmatch_items(w, B)] == w.items[B]


def test_other_municipality_certificates_and_sought_people_look_missing(world: World) -> None:
    """The desks' path ids: a certificate number or sought id of the other municipality answers
    exactly like one that exists nowhere (the number typed is echoed, nothing else), and changes nothing."""
    w = world
    for who, mine, other in (("deskA", A, B), ("hqB", B, A), ("adminA", A, B)):
        theirs_issued, theirs_void = w.certs[other]
        ghost = w.certs[mine][0][:-6] + "999999"  # the caller's own series, a number never issued
        for method, tail, body in (("GET", "", None), ("GET", "/pdf", None),
                                   ("POST", "/reissue", {"reason": "テスト"}), ("POST", "/void", {"reason": "テスト"})):
            for number in (theirs_issued, theirs_void):
                theirs = call(w, who, method, f"/v1/hq/certificates/{number}{tail}", body)
                nobody = call(w, who, method, f"/v1/hq/certificates/{ghost}{tail}", body)
                ctx = f"{who} {method} {number}{tail}: {theirs.status_code} {theirs.text[:200]}"
                assert theirs.status_code == nobody.status_code == 404, ctx
                assert theirs.text.replace(number, "N") == nobody.text.replace(ghost, "N"), ctx
                assert not leaks(json.loads(theirs.text.replace(number, "N")), *markers(w, other)), ctx
        own_ok = call(w, who, "GET", f"/v1/hq/certificates/{w.certs[mine][0]}")
        assert own_ok.status_code == 200 and own_ok.json()["number"] == w.certs[mine][0]
        listed = call(w, who, "GET", f"/v1/hq/certificates?q={theirs_issued}").json()
        assert listed["count"] == 0, listed
        # a sought person of the other municipality, with the very target its link names
        sid, _, kind, target = w.sought[other]
        for decision in ("confirmed", "rejected", "undo"):
            body = {"target_kind": kind, "target_id": target, "decision": decision}
            theirs = call(w, who, "POST", f"/v1/hq/pfif/sought/{sid}/links", body)
            nobody = call(w, who, "POST", f"/v1/hq/pfif/sought/{GHOST}/links", body)
            assert theirs.status_code == nobody.status_code == 404 and theirs.json()["error"] == "not_found", theirs.text
            # the same words for the id typed (echoed), nothing of the other municipality's person
            assert theirs.text.replace(sid, "N") == nobody.text.replace(GHOST, "N"), theirs.text
            assert not leaks(json.loads(theirs.text.replace(sid, "N")), *markers(w, other)), theirs.text
    # nothing of the other side changed: B's certificates as issued/void, B's link still only suggested
    for m in (A, B):
        issued, void = w.certs[m]
        assert hub_certificates.get(w.engine, w.key, m, issued, by=None).status == "issued"
        assert hub_certificates.get(w.engine, w.key, m, void, by=None).status == "void"
        row = next(s for s in hub_pfif.sought_list(w.engine, w.key, m, reveal_restricted=True)
                   if s["sought_id"] == w.sought[m][0])
        assert all(not link.get("by_user") for link in row["links"]), row["links"]


def test_each_device_and_hq_sees_only_its_own(world: World) -> None:
    w = world
    for code, other in ((A, B), (B, A)):
        feed = call(w, f"dev{code}", "GET", "/v1/pull?after=0&limit=2000").json()
        own_devs = {d["device_id"] for d in store.list_devices(w.engine, code)}
        assert all(e["device_id"] in own_devs | {"hub"} for e in feed["events"])
        pkg = call(w, f"dev{code}", "GET", "/v1/registry/latest").json()
        assert pkg["manifest"]["municipality_code"] == code
        st = call(w, "hq" + ("A" if code == A else "B"), "GET", "/v1/hq/status").json()
        assert st["municipality_code"] == code and st["evacuees"] == 3
        rows = call(w, "hq" + ("A" if code == A else "B"), "GET", "/v1/hq/anpi-list?limit=10000").json()
        town = w.a if code == A else w.b
        assert {r["resident_id"] for r in rows["rows"]} == {p["宛名番号"] for p in town.residents}
        assert rows["safe"] == 3 + 0  # its three evacuees at home (the one at C waits for review)
        evs = call(w, "hq" + ("A" if code == A else "B"), "GET", "/v1/hq/evacuees").json()["evacuees"]
        assert sorted(e["evacuee_id"] for e in evs) == sorted(w.evacuees[code])
    # positive control: the markers do find a municipality's own data in its own answers
    assert leaks(call(w, "hqA", "GET", "/v1/hq/anpi-list?limit=10000").json(), *markers(w, A))
    assert leaks(call(w, "hqB", "GET", "/v1/hq/evacuees").json(), *markers(w, B))
    assert text_leaks(call(w, "hqA", "GET", "/v1/hq/anpi-list/export?format=csv").text, markers(w, A)[1])
    assert leaks(call(w, "deskB", "GET", "/v1/hq/certificates").json(), *markers(w, B))
    assert leaks(call(w, "deskA", "GET", "/v1/hq/pfif/sought").json(), *markers(w, A))
    # C's HQ has no account here, but C's evacuees reached A and B only as their own candidates
    items_a = crossmatch_items(w, A)
    assert [i["detail"]["evacuee"]["host"] for i in items_a] == [C]
    assert json.dumps(items_a, ensure_ascii=False).count(w.b.name) == 0
