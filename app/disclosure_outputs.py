"""Every route and command of the shelter and the hub, by what it may show about a person.

Why a table: "every output asks the one 閲覧制限 rule" is only true while nobody adds an output
that skips it. `tests/disclosure/test_every_output.py` walks both FastAPI apps and the whole CLI
and fails when a route or command is missing here, and when a RULED entry names a function that
does not ask the rule (``matching.disclosure`` through ``app.services.disclosure`` at the shelter,
``sync.hub.restricted`` at the hub). Add a new output here, in the right group, with its reason.

- ``RULED``: shows people (registry residents, evacuees, their households) to someone the rule
  must be asked about: key → (the function that asks the rule, what it decides there).
- ``INTERNAL``: only roles that hold the "restricted" permission (HQ's internal view, the hub's
  hq/admin tokens, the operator at the laptop's or the hub's own CLI): the rule's
  ``Caller(sees_restricted=True)`` — everything, marked.
- ``OWN_RECORDS``: what this shelter typed about the people standing in it, shown to its own
  staff (no registry data, nothing from other shelters).
- ``NO_PERSON``: no person data (sessions, accounts, counts, static files, sync plumbing).

Keys: ``"METHOD /path"`` for the shelter app, ``"hub METHOD /path"`` for the hub, ``"cli: anpi …"``.
"""

from __future__ import annotations

RULED: dict[str, tuple[str, str]] = {
    # --- shelter: search, match, review, intake candidates
    "GET /api/search": ("app.services.search.match_one", "address-blind engine and masked whereabouts for protected candidates"),
    "GET /api/review": ("app.services.evacuees.review_item", "protected candidates: masked, no address evidence"),
    "GET /review": ("app.services.evacuees.review_item", "protected candidates: masked, no address evidence"),
    "GET /api/evacuees/{evacuee_id}": ("app.services.evacuees.resident_display", "the linked registry record, masked"),
    "GET /roster/{evacuee_id}": ("app.services.evacuees.resident_display", "the linked registry record, masked"),
    "GET /api/evacuees/duplicates": ("app.services.evacuees.registered_elsewhere",
                                     "other shelters' registrations: withheld/retracted by the hub's rule"),
    "GET /api/evacuees/export.csv": ("app.services.evacuees.exportable", "the roster file never holds a protected person"),
    # --- shelter: 安否照会
    "POST /api/inquiries": ("app.services.inquiry.restricted_evacuees", "protected people (household too): no information"),
    "POST /desk/inquiry": ("app.services.inquiry.restricted_evacuees", "protected people (household too): no information"),
    "GET /desk/inquiry/{inquiry_id}": ("app.services.inquiry.restricted_evacuees", "the recorded answer the rule decided"),
    # --- shelter: HQ list and its files
    "GET /api/hq/list": ("app.services.anpi_list.build_rows", "protected rows (household too) only for the restricted permission"),
    "GET /api/hq/counts": ("app.services.anpi_list.build_rows", "counts without protected rows unless permitted"),
    "GET /hq": ("app.services.anpi_list.build_rows", "HQ screen: protected rows marked for the restricted permission"),
    "GET /hq/export": ("app.services.anpi_list.build_rows", "csv/xlsx/pdf never hold a protected row; pfif below"),
    # --- shelter: certificates
    "GET /desk/certificates": ("app.services.disclosure.certificate_for", "masked household, never found by address"),
    "GET /desk/certificates/new": ("app.web.certificates._household_view", "household view masked; candidates via match_one"),
    "POST /desk/certificates": ("app.services.certificates.issue", "issue refused for a protected household without permission"),
    "GET /desk/certificates/{number}": ("app.services.disclosure.certificate_for", "masked household"),
    "GET /desk/certificates/{number}/pdf": ("app.services.disclosure.may_print_certificate", "403 for a protected household"),
    "GET /desk/certificates/{number}/print": ("app.services.disclosure.may_print_certificate", "403 for a protected household"),
    "POST /desk/certificates/{number}/reissue": ("app.services.disclosure.certificate_for", "answers with the masked detail"),
    "POST /desk/certificates/{number}/void": ("app.services.disclosure.certificate_for", "answers with the masked detail"),
    # --- shelter: sought (PFIF)
    "GET /desk/sought": ("app.services.pfif.sought_overview", "links to protected people left out unless permitted"),
    "POST /desk/sought/import": ("app.services.pfif.import_pfif", "counts only links the caller may see"),
    "POST /desk/sought/relink": ("app.services.pfif.sought_overview", "links to protected people left out unless permitted"),
    "POST /desk/sought/{sought_id}/decide": ("app.services.pfif.decide_link", "a protected target answers not found"),
    # --- hub
    "hub GET /v1/pull": ("sync.hub.apply.mark_withheld", "withheld (household-wide) never served; served ones retracted"),
    "hub GET /v1/hq/anpi-list": ("app.services.anpi_list.build_rows", "protected rows only for HQ's own view"),
    "hub GET /v1/hq/anpi-list/export": ("app.services.anpi_list.build_rows", "files never hold a protected row"),
    "hub GET /v1/hq/anpi-list/chart.svg": ("app.services.anpi_list.build_rows", "counts per 町字"),
    "hub POST /v1/hq/inquiries": ("app.hub_inquiry.find_person", "protected_whole: household-wide, no information"),
    "hub GET /v1/hq/certificates": ("app.hub_certificates.restricted_numbers", "masked household, never found by address"),
    "hub POST /v1/hq/certificates": ("app.hub_certificates.issue", "refused for a protected household without permission"),
    "hub GET /v1/hq/certificates/{number}": ("app.hub_certificates.restricted_numbers", "masked household"),
    "hub GET /v1/hq/certificates/{number}/pdf": ("app.services.certificate_rules.refuse_unusable", "403 for a protected household"),
    "hub POST /v1/hq/certificates/{number}/reissue": ("app.services.certificate_rules.refuse_unusable", "refused when protected"),
    "hub POST /v1/hq/certificates/{number}/void": ("app.hub_certificates.restricted_numbers", "answers masked"),
    "hub POST /v1/hq/pfif/import": ("app.hub_pfif._guard", "counts only links the caller may see"),
    "hub GET /v1/hq/pfif/sought": ("app.hub_pfif._guard", "links to protected people left out unless permitted"),
    "hub POST /v1/hq/pfif/sought/{sought_id}/links": ("app.hub_pfif._guard", "a protected target answers not found"),
    "hub GET /v1/hq/pfif/export": ("app.hub_pfif._guard", "never publishes a protected person or household"),
    # --- shelter: 避難者カード and 掲示用名簿
    "POST /cards/print": ("app.services.cards.card_faces", "a protected person's card is blind: no shelter, no sealed items"),
    "POST /desk/scan": ("app.services.card_scan._from_feed", "prefill only from the card or what the hub's rule left (retracted: never)"),
    "POST /desk/scan/confirm": ("app.services.card_scan._from_feed", "re-check-in here, or register here from the card"),
    "cli: anpi card print": ("app.services.cards.card_faces", "a protected person's card is blind: no shelter, no sealed items"),
    "GET /noticeboard": ("app.services.noticeboard.build", "only ⑭ consent; never a protected person or household; 町字 only"),
    "cli: anpi export noticeboard": ("app.services.noticeboard.build", "only ⑭ consent; never a protected person or household; 町字 only"),
    # --- CLI
    "cli: anpi match": ("app.services.search.match_one", "like /api/search for a caller without the permission"),
    "cli: anpi export anpi-list": ("app.services.anpi_list.build_rows", "files never hold a protected row"),
    "cli: anpi pfif export": ("app.services.pfif.protected_evacuees", "never publishes a protected person or household"),
    "cli: anpi pfif import": ("app.services.pfif.import_pfif", "counts only links the caller may see"),
    "cli: anpi pfif links": ("app.services.pfif.sought_overview", "--include-restricted to see protected links"),
    "cli: anpi hub export anpi-list": ("app.services.anpi_list.build_rows", "files never hold a protected row"),
    "cli: anpi hub inquiry ask": ("app.hub_inquiry.find_person", "protected_whole: household-wide, no information"),
    "cli: anpi hub pfif import": ("app.hub_pfif._guard", "counts only links the caller may see"),
    "cli: anpi hub pfif sought": ("app.hub_pfif._guard", "--include-restricted to see protected links"),
    "cli: anpi hub pfif export": ("app.hub_pfif._guard", "never publishes a protected person or household"),
}

INTERNAL: dict[str, str] = {
    "GET /api/inquiries": "安否照会 log with the real reasons: hq/admin",
    "GET /desk/inquiry/log": "安否照会 log with the real reasons: hq/admin",
    "POST /api/hq/confirmations": "HQ record for one resident: hq/admin",
    "POST /hq/confirm": "HQ record for one resident: hq/admin",
    "GET /api/audit": "audit log: admin",
    "GET /api/audit/export.jsonl": "audit log: admin",
    "GET /admin/audit": "audit log: admin",
    "GET /admin/audit/anomalies": "audit anomaly flags (entry ids, at most a 宛名番号): admin",
    "hub GET /v1/hq/forks": "hub HQ token: events two laptops wrote under one device id, for review",
    "hub POST /v1/hq/forks/apply": "hub HQ token: apply reviewed forked events",
    "hub GET /v1/hq/evacuees": "hub HQ token: every registration, withheld marked",
    "hub GET /v1/hq/evacuees/{evacuee_id}": "hub HQ token: one registration, withheld marked",
    "hub GET /v1/hq/found-elsewhere": "hub HQ token: cross-town matches",
    "hub GET /v1/hq/review": "hub HQ token: review queue",
    "hub POST /v1/hq/review/{item_id}": "hub HQ token: review decision",
    "hub GET /v1/hq/audit": "hub admin token: audit log",
    "hub GET /v1/hq/inquiries": "安否照会 log with the real reasons: hub hq/admin",
    "hub POST /v1/hq/anpi-list/{resident_id}/records": "HQ record for one resident: hub hq/admin",
    "hub GET /v1/hq/anpi-list/{resident_id}/records": "HQ records of one resident: hub hq/admin",
    "hub GET /v1/registry/latest": "the sealed registry backup for the municipality's own enrolled laptops",
    "hub GET /v1/registry/chunk": ("a piece of that sealed backup (or of its difference from an older snapshot the laptop "
                                  "holds), boxed to the asking laptop (its own municipality's newest)"),
    "cli: anpi reconcile": "operator holds the database: engine decisions with reasons",
    "cli: anpi audit export": "operator: audit log",
    "cli: anpi backup": "operator: the database itself",
    "cli: anpi hq confirm": "operator: HQ record",
    "cli: anpi certificate issue": "operator: certificates (holds the database)",
    "cli: anpi certificate list": "operator: certificates (holds the database)",
    "cli: anpi certificate reissue": "operator: certificates (holds the database)",
    "cli: anpi certificate void": "operator: certificates (holds the database)",
    "cli: anpi pfif decide": "operator: sought links",
    "cli: anpi hub hq confirm": "hub operator: HQ record",
    "cli: anpi hub hq history": "hub operator: HQ records",
    "cli: anpi hub inquiry list": "hub operator: 安否照会 log",
    "cli: anpi hub certificate issue": "hub operator: certificates",
    "cli: anpi hub certificate list": "hub operator: certificates",
    "cli: anpi hub certificate reissue": "hub operator: certificates",
    "cli: anpi hub certificate void": "hub operator: certificates",
    "cli: anpi hub certificate pdf": "hub operator: certificates",
    "cli: anpi hub pfif decide": "hub operator: sought links",
    "cli: anpi audit anomalies": "operator: audit anomaly flags (entry ids, at most a 宛名番号)",
    "cli: anpi hub audit anomalies": "hub operator: audit anomaly flags across laptops",
    "cli: anpi hub audit verify": "hub operator: a laptop's audit chain reports",
    "cli: anpi hub fork list": "hub operator: forked events for review",
    "cli: anpi hub fork apply": "hub operator: apply reviewed forked events",
}

OWN_RECORDS: dict[str, str] = {
    "GET /intake": "the form; duplicates within this shelter (registry candidates come from /api/search)",
    "POST /intake": "the form back; duplicates within this shelter",
    "POST /api/evacuees/household": "the registrations just made; duplicates within this shelter",
    "GET /api/evacuees": "this shelter's roster",
    "PATCH /api/evacuees/{evacuee_id}": "edit of this shelter's registration",
    "POST /api/evacuees/{evacuee_id}/checkout": "this shelter's registration",
    "POST /api/evacuees/{evacuee_id}/transfer": "this shelter's registration",
    "POST /api/evacuees/{evacuee_id}/checkin": "this shelter's registration",
    "POST /api/evacuees/{evacuee_id}/decision": "staff decision on this shelter's registration",
    "POST /api/roster/import": "rejected rows of the file just uploaded",
    "GET /api/session/drafts/{form}": "the user's own unsent intake form",
    "PUT /api/session/drafts/{form}": "the user's own unsent intake form",
    "DELETE /api/session/drafts/{form}": "the user's own unsent intake form",
    "GET /dashboard": "this shelter's counts and recent registrations",
    "GET /desk/scan": "the scan field; the name of the person just re-checked-in or received here",
    "POST /review/{evacuee_id}": "staff decision, redirects",
    "GET /roster": "this shelter's roster",
    "GET /roster/print": "this shelter's roster on paper",
    "GET /roster/import": "upload form",
    "POST /roster/import": "rejected rows of the file just uploaded",
    "POST /roster/{evacuee_id}/checkout": "this shelter's registration",
    "POST /roster/{evacuee_id}/transfer": "this shelter's registration",
    "POST /roster/{evacuee_id}/checkin": "this shelter's registration",
    "GET /roster/{evacuee_id}/edit": "this shelter's registration",
    "POST /roster/{evacuee_id}/edit": "this shelter's registration",
    "POST /desk/certificates/manual": "a certificate typed by the desk from what the applicant declared",
    "cli: anpi roster import": "rejected rows of the file just imported",
    "POST /review/{evacuee_id}/merge": "staff merge of two of this shelter's registrations (統合)",
    "POST /roster/flags/{flag_id}/resolve": "staff checked an unreadable cell of this shelter's registration",
    # 本人記入 (self-registration): the kiosk shows only the form its own user typed, never anyone else
    "GET /self": "the empty kiosk form, or the draft its own kiosk session typed; nothing about anyone else",
    "POST /self": "the kiosk user's own form back (no search, no candidates, no other person)",
    "GET /intake/self-queue": "forms evacuees typed at this shelter's kiosk: staff (register), audited",
    "GET /intake/self-queue/{entry_id}": "one kiosk form prefilled into intake: staff (register), audited",
    "POST /intake/self-queue/{entry_id}/discard": "staff discards a kiosk form, redirects",
}

NO_PERSON: dict[str, str] = {
    "GET /openapi.json": "schema", "GET /healthz": "health", "GET /api/session": "session",
    "POST /api/session": "login", "POST /api/session/lock": "lock", "GET /api/session/ping": "ping",
    "GET /api/status": "counts", "GET /api/users": "staff accounts", "POST /api/users": "staff accounts",
    "POST /api/users/{user_id}/disable": "staff accounts", "GET /api/registry/snapshots": "snapshot list",
    "POST /api/registry/import": "import job", "GET /api/registry/jobs/{job_id}": "import progress",
    "GET /api/audit/verify": "chain check", "GET /": "redirect", "GET /switch": "staff tiles",
    "POST /switch": "login", "POST /switch/pin": "PIN", "POST /lock": "lock", "GET /admin/users": "staff accounts",
    "POST /admin/users": "staff accounts", "POST /admin/users/{user_id}/disable": "staff accounts",
    "GET /admin/registry": "snapshot list", "POST /admin/registry": "import job", "POST /admin/backup": "backup file",
    "GET /desk/inquiry": "empty form", "GET /desk/certificates/manual": "empty form",
    "hub GET /openapi.json": "schema", "hub GET /v1/hq/whoami": "token", "hub GET /v1/hq/status": "counts",
    "hub GET /v1/hq/shares": "sharing", "hub GET /v1/hq/registry": "snapshot list", "hub GET /v1/hq/devices": "devices",
    "hub GET /healthz": "health", "hub GET /v1/hub": "hub id", "hub POST /v1/enroll": "enrolment",
    "hub POST /v1/push": "acks", "hub POST /v1/push/probe": "acks (held or not)", "hub GET /v1/acks": "acks", "hub GET /hq": "page shell (data via the API)",
    "hub POST /hq": "page shell", "hub GET /desk": "page shell (data via the API)", "hub POST /desk": "page shell",
    "cli: anpi enroll": "enrolment", "cli: anpi sync": "counts", "cli: anpi restore": "operator restore",
    "cli: anpi status": "counts", "cli: anpi serve": "server", "cli: anpi demo": "demo",
    "cli: anpi registry pull": "counts", "cli: anpi registry import": "counts", "cli: anpi registry list": "snapshots",
    "cli: anpi audit verify": "chain check", "cli: anpi bundle export": "sealed bundle", "cli: anpi bundle import": "receipt",
    "cli: anpi user add": "staff accounts", "cli: anpi user list": "staff accounts", "cli: anpi user disable": "staff accounts",
    "cli: anpi hub serve": "server", "cli: anpi hub enroll": "enrolment code", "cli: anpi hub status": "counts",
    "cli: anpi hub devices": "devices", "cli: anpi hub revoke": "devices", "cli: anpi hub share": "sharing",
    "cli: anpi hub unshare": "sharing", "cli: anpi hub bundle import": "receipt",
    "cli: anpi hub municipality add": "tenants", "cli: anpi hub municipality list": "tenants",
    "cli: anpi hub user add": "accounts", "cli: anpi hub user list": "accounts", "cli: anpi hub user disable": "accounts",
    "cli: anpi hub registry import": "counts", "cli: anpi hub registry list": "snapshots",
    "cli: anpi hub data-key create": "key file", "cli: anpi hub db upgrade": "schema revision",
    "cli: anpi hub db current": "schema revision", "cli: anpi hub crossmatch run": "counts",
    "cli: anpi hub backup": "a base backup of the hub database (operator, files only)",
    "cli: anpi hub restore": "a restore directory prepared (operator, files only)",
    "cli: anpi shelter add": "shelter records", "cli: anpi shelter list": "shelter records",
    "cli: anpi user setup-code": "staff accounts",
    "cli: anpi card verify": "the evacuee id a genuine card carries (never its sealed items)",
    "GET /admin/shelters": "shelter records", "POST /admin/shelters": "shelter records",
    "GET /pair": "device pairing form", "POST /pair": "device pairing (a device token cookie)",
    "GET /admin/devices": "paired devices, certificate fingerprint, one-time pairing code",
    "POST /admin/devices/code": "one-time pairing code", "POST /admin/devices/{device_id}/revoke": "paired devices",
    "GET /api/check-birth": "a date check of what the user typed", "GET /switch/setup": "setup-code form",
    "POST /admin/users/{user_id}/setup-code": "staff accounts", "POST /api/users/{user_id}/setup-code": "staff accounts",
    "hub GET /v1/audit/head": "audit chain head (sync plumbing)", "hub POST /v1/audit/head": "audit chain head verdict",
    "hub GET /v1/shelters": "shelter names and counts", "hub POST /v1/epoch": "a fresh epoch (sync plumbing)",
    "GET /self/sent": "a ticket number", "POST /self/reset": "ends the kiosk session",
    "hub GET /v1/card-key": "the municipality's card key, boxed to the asking laptop",
}

#: what a RULED function's source must mention: it asks the one rule (or the hub's facts for it)
RULE_MARKERS = ("disclosure", "restricted.", "protected_whole", "protected_evacuees", "restricted_numbers",
                "resident_display", "reveal_restricted", "include_restricted", "allow_restricted", "_guard",
                "withheld", "decide(who", "restricted_evacuees", "_protected(")
