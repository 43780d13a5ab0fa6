"""Small exception hierarchy for the sync package.

Faces (CLI, HTTP server) turn these into one-line messages or JSON answers; nothing in
``sync`` raises framework exceptions, so the same functions serve the CLI, the background
thread, the hub and the tests.

Each class says once how an HTTP face answers it: ``status`` (400 malformed, 401/403 refused,
404 not found, 409 conflict, 413 too large, 422 invalid content, 503 unavailable) and ``code``
(the ``"error"`` token of the JSON answer). :mod:`sync.http_errors` builds the one JSON shape from
them — for these and for the shelter's ``app.services.errors`` alike.
"""
from __future__ import annotations


class SyncError(Exception):
    """Base class: every failure the sync package reports on purpose."""

    status = 400
    code = "bad_request"


class BadRequest(SyncError):
    """A request body that cannot be read: not JSON, or outside its schema (``sync.hub.bodies``).

    ``field`` names the key at fault ("body": the body as a whole) and ``message_ja`` is the line a
    staff screen shows, so a desk page never has to show the English detail."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str = "", message_ja: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.message_ja = message_ja


class InvalidEvent(SyncError):
    """An event payload does not have the shape its type promises."""

    status = 422
    code = "invalid"


class NotEnrolled(SyncError):
    """The laptop has no hub configured (no ``anpi enroll`` yet) and none was given."""


class EnrollmentError(SyncError):
    """The hub refused an enrolment (bad, used or expired code; device already enrolled)."""

    status = 403
    code = "enrollment_refused"


class AuthError(SyncError):
    """A signed request was refused (unknown/revoked device, stale clock, replay, bad signature).

    ``status`` is the HTTP status the hub answers with (401 or 403) and ``reason`` a short
    machine-readable token such as ``"replayed_nonce"``.
    """

    def __init__(self, reason: str, detail: str = "", status: int = 401) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.status = status
        self.code = reason
        self.public_detail = detail


class HubUnavailable(SyncError):
    """The hub could not be reached (or kept failing) after the bounded number of retries."""

    status = 503
    code = "unavailable"


class HubReadOnly(HubUnavailable):
    """The hub answered that its database is a standby (read-only): another hub URL may take it."""


class HubRejected(SyncError):
    """The hub answered, but refused the request for a reason retrying will not fix."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # type: ignore[assignment]  # the hub's answer (None: no status)


class IngestError(SyncError):
    """A batch sent to the hub is malformed (bad hash, wrong device, bad numbering)."""

    status = 422
    code = "bad_batch"


class BundleError(SyncError):
    """A USB bundle or receipt cannot be used; the message is one line for staff."""

    status = 422
    code = "bad_bundle"


class BundleTruncated(BundleError):
    """The file is shorter than its header promises (copy interrupted, stick pulled)."""


class BundleCorrupt(BundleError):
    """Bytes changed, decryption or a signature failed."""


class BundleForeign(BundleError):
    """Addressed to another hub, or from/for a device this side does not know."""


class BundleAlreadyImported(BundleError):
    """The same bundle was imported before; nothing changed.  Carries the old receipt."""

    status = 409
    code = "already_imported"

    def __init__(self, message: str, receipt: bytes | None = None) -> None:
        super().__init__(message)
        self.receipt = receipt


class TenantError(SyncError):
    """A municipality (tenant) is unknown, ambiguous or not allowed for this action."""

    status = 400
    code = "bad_request"


class HubNotFound(SyncError):
    """Nothing with that id exists *for the caller's municipality* (another municipality's id
    gets exactly the same answer: existence is never confirmed across tenants)."""

    status = 404
    code = "not_found"
    #: the only detail ever sent: the same for another municipality's id and a missing one
    public_detail = "not found"


class HubConflict(SyncError):
    """The request cannot be applied in the current state (e.g. a review item already resolved)."""

    status = 409
    code = "conflict"


class RegistryError(SyncError):
    """A registry backup at the hub cannot be stored, found, opened or verified."""

    status = 409
    code = "no_registry"


class DataKeyError(RegistryError):
    """The hub data key (encryption at rest) is missing, malformed or not the one a snapshot was sealed with."""

    status = 503
    code = "no_data_key"


class NoRegistry(RegistryError):
    """The hub holds no registry backup to send (``GET /v1/registry/latest``: the laptop keeps its own)."""

    status = 404


class AuditReportError(IngestError):
    """A laptop's audit-head report the hub cannot use (``POST /v1/audit/head``)."""

    code = "bad_report"
