"""The one error hierarchy: services raise these, the HTTP layer maps them once."""

from __future__ import annotations


class DomainError(Exception):
    """A request the bank refuses; `code` is stable and machine-readable."""

    status = 400
    code = "invalid_request"

    def __init__(self, detail: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        if code is not None:
            self.code = code

    @property
    def headers(self) -> dict[str, str] | None:
        """Response headers the refusal comes with."""
        return None


class Invalid(DomainError):
    status = 400
    code = "invalid_request"


class Unauthenticated(DomainError):
    status = 401
    code = "unauthenticated"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"


class TooManyRequests(DomainError):
    """Refused for now: the client may try again after `retry_after` seconds."""

    status = 429
    code = "too_many_requests"

    def __init__(self, detail: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Unavailable(DomainError):
    """A dependency (database, another service) cannot answer now; the client may retry, after
    `retry_after` seconds where the service can tell."""

    status = 503
    code = "unavailable"

    def __init__(self, detail: str, *, code: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
