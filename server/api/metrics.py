"""GET /metrics: Prometheus' text format (behind the API key when keys are set)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from server.metrics import render

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(request: Request) -> Response:
    body, content_type = render(request.app.state.metrics_registry)
    return Response(body, media_type=content_type)
