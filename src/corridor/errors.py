"""One root exception; subclasses also inherit the matching built-in so callers can catch either."""

from __future__ import annotations

from pathlib import Path


class CorridorError(Exception):
    """Root of every error Corridor raises on purpose. Messages say what to do next."""

    #: HTTP status the API renders this error with
    status_code: int = 400


class NotFoundError(CorridorError):
    """What was asked for by its id or name does not exist."""

    status_code = 404


class ContractError(CorridorError, ValueError):
    """Input that does not follow the data contract as a whole (not a single bad record)."""

    status_code = 422


class UnknownKindError(ContractError):
    """A record kind that does not exist."""

    status_code = 404


class CorridorMapError(ContractError):
    """A corridor map that cannot be loaded."""


class PayloadError(CorridorError, ValueError):
    """A request or file body that cannot be read at all (bad JSON, bad UTF-8, empty, too big)."""

    status_code = 400


class PayloadTooLargeError(PayloadError):
    status_code = 413


class StoreError(CorridorError, RuntimeError):
    """The store cannot be opened, migrated or written."""

    status_code = 503


class StoreReadOnlyError(StoreError):
    """A store configured to take no records (a lake store: they go through its operational
    store and ``corridor lake sync``): a conflict with the store's setup, not an outage."""

    status_code = 409


class SchemaVersionError(StoreError):
    """The store was written by a newer Corridor than this one."""


class StoreLockedError(StoreError):
    """An embedded store file another process holds open (a running ``corridor serve``?)."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        #: the file that is held
        self.path = path


class AuthenticationError(CorridorError):
    """No valid credentials: a missing, wrong, revoked or expired key, password or session."""

    status_code = 401


class PermissionDeniedError(CorridorError):
    """Valid credentials, but the user's role or scope does not cover what was asked."""

    status_code = 403


class AccountError(CorridorError, ValueError):
    """A user or API key that cannot be created, found or changed as asked."""

    status_code = 422
