"""Every failure of an HTTP route in the one JSON error shape (API.md); imports no Ray."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from serve_app.errors import ApiError, error_response
from serve_app.logs import get_logger

log = get_logger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "unavailable",
}

_BODY_PARSE_ERROR = "There was an error parsing the body"  # FastAPI's own detail

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": name.replace("_", " ")}
    for code, name in _STATUS_CODES.items()
    if code != 405
}


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _validation_message(exc: RequestValidationError) -> tuple[int, str, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "invalid_json", "The request body is not valid JSON."
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        parts.append(f"{loc or 'body'}: {e.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return 422, "validation_error", "; ".join(parts) + more


def install_error_handlers(app: FastAPI) -> None:
    """Every failure leaves in the one JSON error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, _request_id(request), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        status, code, message = _validation_message(exc)
        return error_response(status, code, message, _request_id(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 400 and message == _BODY_PARSE_ERROR:
            # FastAPI's answer when the JSON parser itself fails (nesting beyond its depth)
            code = "invalid_json"
            message = (
                "The request body could not be parsed as JSON (invalid, or nested too deeply)."
            )
        if exc.status_code == 404 and message == "Not Found":
            message = f"No route {request.method} {request.url.path}."
        return error_response(exc.status_code, code, message, _request_id(request), exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(500, "internal_error", "Internal server error.", _request_id(request))
