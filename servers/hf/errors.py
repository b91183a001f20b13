"""Every error the server returns, in OpenAI's shape ``{"error": {message, type, param, code}}``.

Why one module: clients (our loadgen among them) classify failures by status and body; a
stray HTML 500 or FastAPI's default 422 would be misread. Bad input is always a 4xx that
names the offending field; only a fault of the server itself is a 5xx.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from servers.hf.protocol import ErrorBody, ErrorResponse, UnsupportedField


class APIError(Exception):
    """An error answered to the client as-is."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(message=message, type=type, param=param, code=code)

    def response(self) -> JSONResponse:
        return error_response(self.status, self.body)


def bad_request(message: str, param: str | None = None, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def model_not_found(model: str, served: str) -> APIError:
    return APIError(404, f"The model `{model}` does not exist; this server serves `{served}`.",
                    type="NotFoundError", param="model", code="model_not_found")


def queue_full(limit: int) -> APIError:
    return APIError(429, f"The request queue is full ({limit} waiting); retry later.",
                    type="server_overloaded", code="queue_full")


def deadline_exceeded(timeout_s: float) -> APIError:
    return APIError(504, deadline_message(timeout_s), type="timeout", code="request_timeout")


def deadline_message(timeout_s: float) -> str:
    return (f"The request did not finish within the server's deadline of {timeout_s:g} s from its arrival "
            "(queue time included; --request-timeout-s).")


def error_response(status: int, body: ErrorBody) -> JSONResponse:
    return JSONResponse(ErrorResponse(error=body).model_dump(), status_code=status)


def _describe_validation_error(errors: list[dict[str, Any]]) -> tuple[str, str | None, str]:
    """Turn pydantic's error list into one message a user can act on, plus the param path."""
    first = errors[0]
    ctx_error = (first.get("ctx") or {}).get("error")
    if isinstance(ctx_error, UnsupportedField):
        return ctx_error.message, ctx_error.param, ctx_error.code
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    kind = first.get("type", "")
    if kind in ("json_invalid", "json_type"):
        return f"Request body is not valid JSON: {first.get('msg', '')}", None, "invalid_json"
    if kind == "missing":
        return f"Missing required field `{param}`.", param, "missing_field"
    message = first.get("msg", "invalid value")
    if param:
        message = f"Invalid value for `{param}`: {message}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return message, param, "invalid_value"


def install_handlers(app: FastAPI, on_client_error: Callable[[int], None] = lambda status: None) -> None:
    """Answer every error in OpenAI's shape; ``on_client_error`` counts the 4xx answers to requests."""

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        if 400 <= exc.status < 500:
            on_client_error(exc.status)
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        on_client_error(400)
        message, param, code = _describe_validation_error(list(exc.errors()))
        return error_response(400, ErrorBody(message=message, type="invalid_request_error",
                                             param=param, code=code))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "NotFoundError", 405: "invalid_request_error"}
        return error_response(exc.status_code, ErrorBody(
            message=str(exc.detail), type=kinds.get(exc.status_code, "invalid_request_error"),
            code=str(exc.status_code)))

    @app.exception_handler(Exception)
    async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
        return error_response(500, ErrorBody(message=f"internal server error: {type(exc).__name__}: {exc}",
                                             type="internal_server_error", code="internal_error"))
