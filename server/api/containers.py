"""Routes for /v1/containers."""

from __future__ import annotations

from fastapi import APIRouter

from server.api.deps import Containers, Limit, OrderParam
from server.api.schemas import (
    Container,
    ContainerCreateBody,
    Deleted,
    Page,
    container_skill,
    network_policy_fields,
    page_of,
)
from server.services.containers import CreateContainer

router = APIRouter(prefix="/containers", tags=["containers"])


@router.post("", response_model=Container)
def create_container(body: ContainerCreateBody, service: Containers) -> Container:
    created = service.create(
        CreateContainer(
            name=body.name,
            minutes=body.expires_after.minutes if body.expires_after else None,
            memory_limit=body.memory_limit,
            file_ids=body.file_ids or [],
            skills=[container_skill(s) for s in body.skills or []],
            **network_policy_fields(body.network_policy),
        )
    )
    return Container.of(created)


@router.get("", response_model=Page[Container])
def list_containers(
    service: Containers,
    after: str | None = None,
    before: str | None = None,
    limit: Limit = 20,
    order: OrderParam = "desc",
    name: str | None = None,
) -> Page[Container]:
    page = service.list(order=order, limit=limit, after=after, before=before, name=name)
    return Page[Container](**page_of([Container.of(c) for c in page.items], page.has_more))


@router.get("/{container_id}", response_model=Container)
def retrieve_container(container_id: str, service: Containers) -> Container:
    return Container.of(service.retrieve(container_id))


@router.delete("/{container_id}", response_model=Deleted)
def delete_container(container_id: str, service: Containers) -> Deleted:
    service.delete(container_id)
    return Deleted(id=container_id, object="container.deleted")
