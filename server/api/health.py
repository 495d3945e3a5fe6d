"""GET /health: 200 when the database and Docker answer, 503 naming what is down."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from server.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health(request: Request) -> JSONResponse:
    checks: dict[str, str] = await run_in_threadpool(request.app.state.health_checks)
    ok = all(v == "ok" for v in checks.values())
    result = Health(
        status="ok" if ok else "unavailable",
        checks=checks,
        sandbox_runtime=request.app.state.runtime.sandbox_runtime,
    )
    if ok:
        return JSONResponse(result.model_dump())
    return JSONResponse(result.model_dump(), status_code=503, headers={"retry-after": "1"})
