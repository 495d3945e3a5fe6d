"""Wire models mirroring the OpenAI SDK types."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from server import domain
from server.services.execution import ExecResult
from server.services.network import SecretRequest
from server.services.skills import ContainerSkill, InlineSkill, SkillReference

T = TypeVar("T")


class OmitsUnset(BaseModel):
    """A wire model with fields the spec makes optional but not nullable: such a field is
    left out of the answer when it has no value, never sent as null."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    # No return annotation on purpose: pydantic would publish it (a bare dict) as the model's
    # JSON schema in /openapi.json instead of the model's fields.
    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None or k not in self.OPTIONAL}


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


def network_policy_fields(policy: NetworkPolicyCreate | None) -> dict[str, Any]:
    """A network_policy as the container services' CreateContainer fields."""
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


class SkillReferenceParam(BaseModel):
    type: Literal["skill_reference"]
    skill_id: Annotated[str, Field(min_length=1, max_length=64)]
    version: str | None = None


class InlineSkillSource(BaseModel):
    type: Literal["base64"]
    media_type: Literal["application/zip"]
    data: Annotated[str, Field(min_length=1)]


class InlineSkillParam(BaseModel):
    type: Literal["inline"]
    name: str
    description: str
    source: InlineSkillSource


SkillParam = Annotated[SkillReferenceParam | InlineSkillParam, Field(discriminator="type")]


def container_skill(param: SkillParam) -> ContainerSkill:
    """A skill given at container creation, in the skills service's terms."""
    if isinstance(param, InlineSkillParam):
        return InlineSkill(param.name, param.description, param.source.data)
    return SkillReference(param.skill_id, param.version)


class ContainerCreateBody(BaseModel):
    """POST /v1/containers. Unknown fields (custom_llm_provider, ...) are ignored."""

    name: Annotated[str, Field(min_length=1, max_length=512)]
    expires_after: ExpiresAfterCreate | None = None
    file_ids: list[str] | None = None
    memory_limit: Literal["1g", "4g", "16g", "64g"] | None = None
    network_policy: NetworkPolicyCreate | None = None
    skills: list[SkillParam] | None = None

    @field_validator("network_policy", mode="before")
    @classmethod
    def _network_policy_not_null(cls, value: object) -> object:
        # Absent means the default; the spec has no null (only run for a value that was sent).
        if value is None:
            raise ValueError('must be an object such as {"type": "disabled"}, not null')
        return value


class ExpiresAfter(BaseModel):
    anchor: Literal["last_active_at"] = "last_active_at"
    minutes: int


class NetworkPolicy(OmitsUnset):
    OPTIONAL = frozenset({"allowed_domains"})

    type: Literal["allowlist", "disabled"]
    allowed_domains: list[str] | None = None


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


class ContainerFile(BaseModel):
    id: str
    object: Literal["container.file"] = "container.file"
    container_id: str
    created_at: int
    bytes: int
    path: str
    source: str

    @classmethod
    def of(cls, f: domain.ContainerFile) -> ContainerFile:
        return cls(
            id=f.id,
            container_id=f.container_id,
            created_at=f.created_at,
            bytes=f.bytes,
            path=f"/mnt/data/{f.path}",
            source=f.source,
        )


class FileObject(OmitsUnset):
    OPTIONAL = frozenset({"expires_at"})

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str
    expires_at: int | None = None

    @classmethod
    def of(cls, f: domain.File) -> FileObject:
        return cls(
            id=f.id,
            bytes=f.bytes,
            created_at=f.created_at,
            filename=f.filename,
            purpose=f.purpose,
            status=f.status,
            expires_at=f.expires_at,
        )


class FileIdBody(BaseModel):
    file_id: str


class Page(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool


def page_of(items: list[T], has_more: bool) -> dict[str, Any]:
    """The fields of a list page around already-converted items."""
    ids = [getattr(item, "id") for item in items]  # noqa: B009
    return {
        "data": items,
        "first_id": ids[0] if ids else None,
        "last_id": ids[-1] if ids else None,
        "has_more": has_more,
    }


class Deleted(BaseModel):
    id: str
    object: str
    deleted: bool = True


class SkillObject(BaseModel):
    id: str
    object: Literal["skill"] = "skill"
    name: str
    description: str
    created_at: int
    default_version: str
    latest_version: str

    @classmethod
    def of(cls, s: domain.Skill) -> SkillObject:
        return cls(
            id=s.id,
            name=s.name,
            description=s.description,
            created_at=s.created_at,
            default_version=str(s.default_version),
            latest_version=str(s.latest_version),
        )


class SkillVersionObject(BaseModel):
    object: Literal["skill.version"] = "skill.version"
    id: str
    skill_id: str
    version: str
    created_at: int
    name: str
    description: str

    @classmethod
    def of(cls, v: domain.SkillVersion) -> SkillVersionObject:
        return cls(
            id=v.id,
            skill_id=v.skill_id,
            version=str(v.version),
            created_at=v.created_at,
            name=v.name,
            description=v.description,
        )


class SkillVersionDeleted(BaseModel):
    id: str
    object: Literal["skill.version.deleted"] = "skill.version.deleted"
    deleted: bool = True
    version: str


class SetDefaultSkillVersionBody(BaseModel):
    default_version: Annotated[str, Field(min_length=1)]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]
    sandbox_runtime: str
    """LOCALBOX_SANDBOX_RUNTIME: the engine runtime sandboxes run under (runc, runsc)."""


class ExecBody(BaseModel):
    """POST /v1/containers/{id}/exec (a localbox extension)."""

    code: str
    language: Literal["python", "bash"] = "python"
    timeout: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    stream: bool = False


class ExecErrorOut(BaseModel):
    name: str
    value: str
    traceback: str


class LogsOutput(BaseModel):
    type: Literal["logs"] = "logs"
    logs: str


class ImageOutputOut(BaseModel):
    type: Literal["image"] = "image"
    media_type: str
    data: str


class Exec(BaseModel):
    id: str
    object: Literal["container.exec"] = "container.exec"
    container_id: str
    language: str
    status: str
    stdout: str
    stderr: str
    error: ExecErrorOut | None
    outputs: list[LogsOutput | ImageOutputOut]
    files: list[ContainerFile]
    state_preserved: bool
    exit_code: int | None
    duration_ms: int

    @classmethod
    def of(cls, r: ExecResult) -> Exec:
        outputs: list[LogsOutput | ImageOutputOut] = []
        if r.logs:
            outputs.append(LogsOutput(logs=r.logs))
        outputs += [ImageOutputOut(media_type=i.media_type, data=i.data) for i in r.images]
        return cls(
            id=r.id,
            container_id=r.container_id,
            language=r.language,
            status=r.status,
            stdout=r.stdout,
            stderr=r.stderr,
            error=ExecErrorOut(name=r.error.name, value=r.error.value, traceback=r.error.traceback)
            if r.error
            else None,
            outputs=outputs,
            files=[ContainerFile.of(f) for f in r.files],
            state_preserved=r.state_preserved,
            exit_code=r.exit_code,
            duration_ms=r.duration_ms,
        )
