"""Domain errors. Each carries its HTTP status and a stable machine-readable code.

The service turns any `FacesvcError` into the one error body
`{"error": code, "detail": message}`; the command line prints `code: message`.
"""

from __future__ import annotations

from typing import ClassVar


class FacesvcError(Exception):
    # Subclasses name the case; the base itself is a client error in general terms.
    status_code: ClassVar[int] = 422
    code: ClassVar[str] = "validation_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidImage(FacesvcError):
    status_code = 422
    code = "invalid_image"


class ImageTooLarge(FacesvcError):
    status_code = 413
    code = "image_too_large"


class NoFaceFound(FacesvcError):
    status_code = 422
    code = "no_face"


class MultipleFaces(FacesvcError):
    status_code = 422
    code = "multiple_faces"


class ModelUnavailable(FacesvcError):
    """A configured model cannot be loaded (weights file missing, unknown name)."""

    status_code = 503
    code = "model_unavailable"


class ModelMismatch(FacesvcError):
    status_code = 409
    code = "model_mismatch"


class NotFound(FacesvcError):
    status_code = 404
    code = "not_found"


class Conflict(FacesvcError):
    status_code = 409
    code = "conflict"


class Unauthorized(FacesvcError):
    status_code = 401
    code = "unauthorized"


class Forbidden(FacesvcError):
    status_code = 403
    code = "forbidden"


class ValidationFailed(FacesvcError):
    status_code = 422
    code = "validation_error"


class UnsupportedMediaType(FacesvcError):
    status_code = 415
    code = "unsupported_media_type"


class RetryLater(FacesvcError):
    """A passing condition: the response carries `Retry-After: retry_after` (seconds)."""

    status_code = 503
    code = "unavailable"

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Overloaded(RetryLater):
    """The inference queue is full."""

    code = "overloaded"


class InferenceFailed(RetryLater):
    """The worker running this request crashed; it has been replaced."""

    code = "inference_failed"


class DeadlineExceeded(RetryLater):
    """The request's deadline passed before its inference ran: the service is behind.
    A 503 with Retry-After (not a 504: there is no upstream gateway) so that clients
    back off the same way as for `overloaded`."""

    code = "timeout"


class DatabaseNotReady(FacesvcError):
    """The database has no tables yet, or is behind this version's migrations."""

    status_code = 503
    code = "database_not_ready"
