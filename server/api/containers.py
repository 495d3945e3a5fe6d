"""Routes for /v1/containers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.api.deps import Containers, Limit, OrderParam
from server.api.schemas import (
    Container,
    ContainerCreateBody,
    Deleted,
    InlineSkillParam,
    NetworkPolicyAllowlist,
    Page,
    SkillParam,
    page_of,
)
from server.services.containers import CreateContainer
from server.services.network import SecretRequest
from server.services.skills import ContainerSkill, InlineSkill, SkillReference

router = APIRouter(prefix="/containers", tags=["containers"])


@router.post("", response_model=Container)
def create_container(body: ContainerCreateBody, service: Containers) -> Container:
    created = service.create(
        CreateContainer(
            name=body.name,
            minutes=body.expires_after.minutes if body.expires_after else None,
            memory_limit=body.memory_limit,
            file_ids=body.file_ids or [],
            skills=[_skill(s) for s in body.skills or []],
            **_network_policy(body),
        )
    )
    return Container.of(created)


def _network_policy(body: ContainerCreateBody) -> dict[str, Any]:
    policy = body.network_policy
    if not isinstance(policy, NetworkPolicyAllowlist):
        return {"network_policy_type": "disabled"}
    return {
        "network_policy_type": "allowlist",
        "allowed_domains": policy.allowed_domains,
        "domain_secrets": [
            SecretRequest(domain=s.domain, name=s.name, value=s.value)
            for s in policy.domain_secrets or []
        ],
    }


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


def _skill(param: SkillParam) -> ContainerSkill:
    if isinstance(param, InlineSkillParam):
        return InlineSkill(param.name, param.description, param.source.data)
    return SkillReference(param.skill_id, param.version)
