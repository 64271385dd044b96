"""Errors that map onto the uniform error body ``{"error": {code, message, details}}``."""

from __future__ import annotations

from typing import Any


class DemandlyError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message()
        if code:
            self.code = code
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)

    def default_message(self) -> str:
        return self.code.replace("_", " ")

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(DemandlyError):
    status_code = 400
    code = "bad_request"


class Unauthorized(DemandlyError):
    status_code = 401
    code = "unauthorized"

    def default_message(self) -> str:
        return "Authentication required."


class Forbidden(DemandlyError):
    status_code = 403
    code = "forbidden"

    def default_message(self) -> str:
        return "Your role does not allow this."


class NotFound(DemandlyError):
    status_code = 404
    code = "not_found"

    def default_message(self) -> str:
        return "Not found."


class Conflict(DemandlyError):
    status_code = 409
    code = "conflict"


class Gone(DemandlyError):
    status_code = 410
    code = "gone"


class PayloadTooLarge(DemandlyError):
    status_code = 413
    code = "payload_too_large"


class ValidationFailed(DemandlyError):
    """A business-rule validation error that names the field, like Pydantic's 422."""

    status_code = 422
    code = "validation_error"

    def __init__(self, field: str, message: str, **kwargs: Any) -> None:
        super().__init__(message, details=[{"field": field, "message": message}], **kwargs)


class TooManyRequests(DemandlyError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        retry_after = max(1, int(retry_after))
        super().__init__(
            message or f"Too many requests. Try again in {retry_after} s.",
            details={"retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


class UnscopedQuery(RuntimeError):
    """A query touched tenant data without a tenant scope: a programming error, never data."""
