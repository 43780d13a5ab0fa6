"""Small exception hierarchy for the sync package.

Faces (CLI, HTTP server) turn these into one-line messages or JSON answers; nothing in
``sync`` raises framework exceptions, so the same functions serve the CLI, the background
thread, the hub and the tests.
"""
from __future__ import annotations


class SyncError(Exception):
    """Base class: every failure the sync package reports on purpose."""


class InvalidEvent(SyncError):
    """An event payload does not have the shape its type promises."""


class NotEnrolled(SyncError):
    """The laptop has no hub configured (no ``anpi enroll`` yet) and none was given."""


class EnrollmentError(SyncError):
    """The hub refused an enrolment (bad, used or expired code; device already enrolled)."""


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


class HubUnavailable(SyncError):
    """The hub could not be reached (or kept failing) after the bounded number of retries."""


class HubReadOnly(HubUnavailable):
    """The hub answered that its database is a standby (read-only): another hub URL may take it."""


class HubRejected(SyncError):
    """The hub answered, but refused the request for a reason retrying will not fix."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class IngestError(SyncError):
    """A batch sent to the hub is malformed (bad hash, wrong device, bad numbering)."""


class BundleError(SyncError):
    """A USB bundle or receipt cannot be used; the message is one line for staff."""


class BundleTruncated(BundleError):
    """The file is shorter than its header promises (copy interrupted, stick pulled)."""


class BundleCorrupt(BundleError):
    """Bytes changed, decryption or a signature failed."""


class BundleForeign(BundleError):
    """Addressed to another hub, or from/for a device this side does not know."""


class BundleAlreadyImported(BundleError):
    """The same bundle was imported before; nothing changed.  Carries the old receipt."""

    def __init__(self, message: str, receipt: bytes | None = None) -> None:
        super().__init__(message)
        self.receipt = receipt


class TenantError(SyncError):
    """A municipality (tenant) is unknown, ambiguous or not allowed for this action."""


class HubNotFound(SyncError):
    """Nothing with that id exists *for the caller's municipality* (another municipality's id
    gets exactly the same answer: existence is never confirmed across tenants)."""


class HubConflict(SyncError):
    """The request cannot be applied in the current state (e.g. a review item already resolved)."""


class RegistryError(SyncError):
    """A registry backup at the hub cannot be stored, found, opened or verified."""


class DataKeyError(RegistryError):
    """The hub data key (encryption at rest) is missing, malformed or not the one a snapshot was sealed with."""
