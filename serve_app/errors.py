"""The one JSON error shape, and the exception that carries it."""

from __future__ import annotations

import orjson
from starlette.responses import Response


class ApiError(Exception):
    """An error that becomes ``{"error": {"code", "message", "request_id"}}``."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int,
    code: str,
    message: str,
    request_id: str | None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A JSON error response in the one shape."""
    return Response(
        orjson.dumps({"error": {"code": code, "message": message, "request_id": request_id}}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def retry_later(code: str, message: str, retry_after_s: int) -> ApiError:
    """503 with Retry-After: nothing wrong with the request, ask again shortly."""
    return ApiError(503, code, message, {"Retry-After": str(retry_after_s)})


def overloaded(what: str, retry_after_s: int) -> ApiError:
    """503 with Retry-After, for queues that are full or replicas that are gone."""
    return retry_later(
        "overloaded",
        f"The {what} service is overloaded; retry after {retry_after_s} s.",
        retry_after_s,
    )


def refuse_long(texts: list[str], limit: int, code: str, field: str) -> None:
    """413 ``code`` naming the first of ``texts`` over ``limit`` characters (``field[i]``)."""
    for i, text in enumerate(texts):
        if len(text) > limit:
            raise ApiError(413, code, f"{field}[{i}] has {len(text)} characters; at most {limit}.")
