"""What a client asks of POST /v1/responses, already shape-checked by the API layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from server.services.network import SecretRequest
from server.services.skills import ContainerSkill
from server.upstream import FunctionTool

SandboxToolKind = Literal["code_interpreter", "shell"]

INCLUDE_CI_OUTPUTS = "code_interpreter_call.outputs"


@dataclass(frozen=True)
class AutoContainer:
    """A container the turn makes (or reuses) itself: `container: {"type": "auto"}`."""

    file_ids: list[str] = field(default_factory=list)
    memory_limit: str | None = None
    network_policy_type: str = "disabled"
    allowed_domains: list[str] = field(default_factory=list)
    domain_secrets: list[SecretRequest] = field(default_factory=list)
    skills: list[ContainerSkill] = field(default_factory=list)


@dataclass(frozen=True)
class SandboxTool:
    """A hosted tool whose calls run in a localbox container."""

    kind: SandboxToolKind
    param: str
    """Where the tool sits in the request, e.g. "tools[0]", for error messages."""
    container_id: str | None = None
    auto: AutoContainer | None = None


@dataclass(frozen=True)
class CreateResponse:
    model: str
    input: str | list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    """The tools as the client sent them, echoed in the response."""
    sandbox_tools: list[SandboxTool] = field(default_factory=list)
    functions: list[FunctionTool] = field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    instructions: str | None = None
    previous_response_id: str | None = None
    max_tool_calls: int | None = None
    parallel_tool_calls: bool = True
    metadata: dict[str, str] = field(default_factory=dict)
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    store: bool = True
    include: list[str] = field(default_factory=list)
    user: str | None = None
