"""The ApiError family and the handlers that render every error as OpenAI's {"error": {...}}."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("localbox")


class ApiError(Exception):
    """An error the API answers with; subclasses fix status, type and code."""

    status: ClassVar[int] = 400
    type: ClassVar[str] = "invalid_request_error"
    code: ClassVar[str | None] = None

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(ApiError):
    pass


class NotSupported(InvalidRequest):
    def __init__(self, what: str, param: str) -> None:
        super().__init__(f"{what} is not supported yet by localbox.", param)


class NotFound(ApiError):
    status = 404


class ContainerNotFound(NotFound):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"No container found with id '{container_id}'.", "container_id")


class FileNotFound(NotFound):
    def __init__(self, file_id: str, param: str | None = None) -> None:
        super().__init__(f"No file found with id '{file_id}'.", param)


class SkillNotFound(NotFound):
    def __init__(self, skill_id: str, param: str | None = "skill_id") -> None:
        super().__init__(f"No skill found with id '{skill_id}'.", param)


class SkillVersionNotFound(NotFound):
    def __init__(self, skill_id: str, version: str, param: str | None = "version") -> None:
        super().__init__(f"Skill '{skill_id}' has no version '{version}'.", param)


class InvalidSkill(InvalidRequest):
    """A skill bundle (upload, zip or inline) that is not a valid Agent Skills folder."""

    code = "invalid_skill"


class SkillTooLarge(InvalidSkill):
    code = "skill_too_large"


class DefaultSkillVersion(InvalidRequest):
    code = "default_version"

    def __init__(self, skill_id: str, version: str) -> None:
        super().__init__(
            f"Version '{version}' is the default version of skill '{skill_id}'; make another "
            "version the default first (POST /v1/skills/{skill_id} with default_version), or "
            "delete the whole skill.",
            "version",
        )


class ContainerFileGone(NotFound):
    def __init__(self, file_id: str, path: str, why: str) -> None:
        super().__init__(
            f"The file '{file_id}' at {path} is no longer a regular file inside /mnt/data "
            f"({why}); it was removed from the container's file list.",
        )


class UploadConflict(ApiError):
    """Code in the container changed the upload's file (or a directory on its way) while it
    was written: nothing was placed, and trying again may succeed."""

    status = 409
    code = "upload_conflict"

    def __init__(self, path: str, why: str) -> None:
        super().__init__(
            f"The upload to {path} was not placed: code in the container changed its file or "
            f"a directory on its way while it was written ({why}). Nothing was changed; try "
            "again.",
            "file",
        )


class ContainerExpired(InvalidRequest):
    def __init__(self) -> None:
        super().__init__("Container is expired.", "container_id")


class PayloadTooLarge(ApiError):
    status = 413
    code = "file_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The upload is larger than the limit of {limit} bytes (LOCALBOX_MAX_UPLOAD_BYTES).",
            "file",
        )
        self.limit = limit


class FileTooLargeToRead(InvalidRequest):
    """A file larger than an MCP read returns inline (LOCALBOX_MCP_MAX_READ_BYTES)."""

    code = "file_too_large_to_read"

    def __init__(self, container_id: str, file_id: str, path: str, size: int, limit: int) -> None:
        super().__init__(
            f"{path} holds {size} bytes, more than the {limit} bytes a read returns inline "
            f"(LOCALBOX_MCP_MAX_READ_BYTES). Download it with GET /v1/containers/{container_id}"
            f"/files/{file_id}/content, or read a part of it with run_shell (head, tail, grep).",
            "path",
        )


class RequestTooLarge(ApiError):
    status = 413
    code = "request_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The request body is larger than the limit of {limit} bytes for JSON bodies "
            "(LOCALBOX_MAX_JSON_BYTES).",
        )


class Forbidden(ApiError):
    status = 403


class HostNotAllowed(Forbidden):
    code = "host_not_allowed"

    def __init__(self, host: str) -> None:
        super().__init__(
            f"Host '{host[:100]}' is not allowed. Without API keys localbox answers only "
            "requests addressed to this machine (localhost, 127.0.0.1, [::1]) or to a name "
            "in LOCALBOX_ALLOWED_HOSTS; set LOCALBOX_API_KEYS to serve other names."
        )


class OriginNotAllowed(Forbidden):
    code = "origin_not_allowed"

    def __init__(self, origin: str) -> None:
        super().__init__(
            f"Requests from web pages of other sites (Origin '{origin[:100]}') are refused "
            "while localbox runs without API keys; set LOCALBOX_API_KEYS to allow them."
        )


class NeverFits(InvalidRequest):
    """Larger than a configured limit on its own: it can never succeed on this server."""


class MemoryLimitOverBudget(NeverFits):
    code = "memory_limit_over_budget"


class MemoryLimitOverHost(NeverFits):
    code = "memory_limit_over_host"


class FileOverStorageLimit(NeverFits):
    code = "file_over_storage_limit"


class CapacityExhausted(ApiError):
    """Fits the limits, but not next to what exists now: it may succeed later (the SDKs retry)."""

    status = 429
    type = "capacity_error"

    def headers(self) -> dict[str, str]:
        return {"retry-after": "1"}


class ContainerBusy(CapacityExhausted):
    """Too many calls queue on one container, or one waited its whole timeout for its turn."""

    type = "rate_limit_error"
    code = "container_busy"

    def __init__(self, message: str) -> None:
        super().__init__(message, "container_id")


class DiskLimitExceeded(ApiError):
    status = 413
    code = "disk_limit_exceeded"

    def __init__(self, usage: int, size: int, limit: int) -> None:
        super().__init__(
            f"The container's /mnt/data holds {usage} bytes; {size} more would pass its disk "
            f"limit of {limit} bytes (LOCALBOX_SANDBOX_DISK_BYTES). Delete files first.",
            "file",
        )


class TooManyContainers(CapacityExhausted):
    code = "too_many_containers"


class MemoryBudgetExhausted(CapacityExhausted):
    code = "memory_budget_exhausted"


class MemoryLow(CapacityExhausted):
    code = "insufficient_memory"


class FilesStorageFull(CapacityExhausted):
    code = "files_storage_full"


class DiskFull(CapacityExhausted):
    code = "disk_full"


class InvalidApiKey(ApiError):
    status = 401
    code = "invalid_api_key"

    def headers(self) -> dict[str, str]:
        return {"www-authenticate": "Bearer"}


class MethodNotAllowed(ApiError):
    status = 405


class ServiceUnavailable(ApiError):
    status = 503
    type = "server_error"
    code = "service_unavailable"

    def headers(self) -> dict[str, str]:
        return {"retry-after": "1"}


class SandboxFailure(ApiError):
    status = 500
    type = "server_error"
    code = "sandbox_error"


class ResponseNotFound(NotFound):
    def __init__(self, response_id: str, param: str = "response_id") -> None:
        super().__init__(f"Response with id '{response_id}' not found.", param)


class ModelNotConfigured(InvalidRequest):
    code = "model_not_configured"

    def __init__(self) -> None:
        super().__init__(
            "No model upstream is configured: set LOCALBOX_MODEL_BASE_URL to an "
            "OpenAI-compatible server (for example http://127.0.0.1:11434/v1 for Ollama).",
            "model",
        )


class UpstreamRejected(ApiError):
    """The model upstream refused the request (4xx): passed back with its status."""

    code = "upstream_error"

    def __init__(self, message: str, status: int, code: str | None) -> None:
        super().__init__(message, None)
        self.upstream_status = status
        self.upstream_code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, None, self.upstream_code or self.code)


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def internal_error_body() -> dict[str, Any]:
    return error_body(
        "The server had an error while processing your request.", "server_error", None, None
    )


def _param_from_loc(loc: tuple[int | str, ...]) -> str | None:
    parts = [str(p) for p in loc[1:]] if loc and loc[0] in ("body", "query", "path") else []
    if not parts and len(loc) > 1:
        parts = [str(p) for p in loc[1:]]
    return ".".join(parts) or None


def _first_required_body_field(request: Request) -> str | None:
    """The first required field of the route's JSON body model, to name when no body came."""
    route = request.scope.get("route")
    body_field = getattr(route, "body_field", None)
    model = getattr(getattr(body_field, "field_info", None), "annotation", None)
    fields = getattr(model, "model_fields", None)
    if not isinstance(fields, dict):
        return None
    return next((name for name, info in fields.items() if info.is_required()), None)


def _validation_message(err: dict[str, Any], param: str | None) -> str:
    if err.get("type") == "json_invalid":
        return "The request body is not valid JSON. Send a JSON object."
    if err.get("type") == "missing":
        return f"Missing required parameter: '{param}'."
    detail = str(err.get("msg", "invalid value"))
    if param is None:
        return f"Invalid request body: {detail}."
    return f"Invalid value for '{param}': {detail}."


Translator = Callable[[Exception, Mapping[str, str]], ApiError]
"""Makes the ApiError to answer an exception with, given the route's path parameters; it may
block (it runs on a worker thread)."""


def install_error_handlers(
    app: FastAPI, translated: Mapping[type[Exception], Translator] | None = None
) -> None:
    """Render ApiErrors, validation failures and routing errors in OpenAI's shape. Exceptions
    of the types in translated (an ApiError subclass, or an error of a lower layer that may
    come from anywhere, such as a full disk) are answered as their translator says."""

    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        status = exc.upstream_status if isinstance(exc, UpstreamRejected) else exc.status
        return JSONResponse(exc.body(), status_code=status, headers=exc.headers())

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        first: dict[str, Any] = dict(errors[0]) if errors else {}
        loc = tuple(first.get("loc", ()))
        if first.get("type") == "json_invalid":
            param = None  # the parser's offset is no parameter
        elif first.get("type") == "missing" and loc == ("body",):
            param = _first_required_body_field(request)  # no body at all
        else:
            param = _param_from_loc(loc)
        message = _validation_message(first, param)
        return JSONResponse(error_body(message, "invalid_request_error", param), status_code=400)

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            message = "Unknown request URL. Please check the URL and method."
        else:
            message = str(exc.detail)
        return JSONResponse(
            error_body(message, "invalid_request_error"),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    def translator(to_api: Translator) -> Callable[..., Any]:
        async def on_translated(request: Request, exc: Exception) -> JSONResponse:
            params = {k: str(v) for k, v in request.path_params.items()}
            return await on_api_error(request, await run_in_threadpool(to_api, exc, params))

        return on_translated

    app.add_exception_handler(ApiError, on_api_error)
    for exc_type, to_api in (translated or {}).items():
        app.add_exception_handler(exc_type, translator(to_api))
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
