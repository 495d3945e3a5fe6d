"""Wire models mirroring the OpenAI SDK types."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, model_serializer

from server import domain

T = TypeVar("T")


class ExpiresAfterCreate(BaseModel):
    anchor: Literal["last_active_at"]
    minutes: Annotated[int, Field(strict=True)]


class NetworkPolicyDisabled(BaseModel):
    type: Literal["disabled"]


class DomainSecret(BaseModel):
    domain: str
    name: str
    value: str


class NetworkPolicyAllowlist(BaseModel):
    type: Literal["allowlist"]
    allowed_domains: Annotated[list[str], Field(min_length=1)]
    domain_secrets: list[DomainSecret] | None = None


NetworkPolicyCreate = Annotated[
    NetworkPolicyDisabled | NetworkPolicyAllowlist, Field(discriminator="type")
]


class ContainerCreateBody(BaseModel):
    """POST /v1/containers. Unknown fields (custom_llm_provider, ...) are ignored."""

    name: Annotated[str, Field(min_length=1, max_length=512)]
    expires_after: ExpiresAfterCreate | None = None
    file_ids: list[str] | None = None
    memory_limit: Literal["1g", "4g", "16g", "64g"] | None = None
    network_policy: NetworkPolicyCreate | None = None
    skills: list[dict[str, Any]] | None = None


class ExpiresAfter(BaseModel):
    anchor: Literal["last_active_at"] = "last_active_at"
    minutes: int


class NetworkPolicy(BaseModel):
    type: str
    allowed_domains: list[str] | None = None

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}


class Container(BaseModel):
    id: str
    object: Literal["container"] = "container"
    name: str
    created_at: int
    status: str
    expires_after: ExpiresAfter
    last_active_at: int
    memory_limit: str
    network_policy: NetworkPolicy

    @classmethod
    def of(cls, c: domain.Container) -> Container:
        return cls(
            id=c.id,
            name=c.name,
            created_at=c.created_at,
            status=c.status,
            expires_after=ExpiresAfter(minutes=c.expires_after_minutes),
            last_active_at=c.last_active_at,
            memory_limit=c.memory_limit,
            network_policy=NetworkPolicy(
                type=c.network_policy_type,
                allowed_domains=c.allowed_domains or None,
            ),
        )


class Page(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool


class Deleted(BaseModel):
    id: str
    object: str
    deleted: bool = True


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]
