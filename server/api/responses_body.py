"""The body of POST /v1/responses, and its tools made into the service's terms."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.api.schemas import (
    NetworkPolicyCreate,
    SkillParam,
    container_skill,
    network_policy_fields,
)
from server.errors import InvalidRequest
from server.services.responses import AutoContainer, CreateResponse, SandboxTool
from server.services.responses.history import PYTHON_TOOL, SHELL_TOOL
from server.upstream import FunctionTool

MemoryLimit = Literal["1g", "4g", "16g", "64g"]
# Hosted tools whose work OpenAI does itself and localbox does not.
NOT_RUN = (
    "web_search, web_search_preview, file_search, image_generation, computer_use_preview, "
    "computer, mcp, local_shell, apply_patch, custom"
)


# Names pydantic puts in an error's location for a union's alternatives, not fields.
BRANCHES = frozenset(
    {
        "str",
        "AutoParam",
        "ContainerAutoParam",
        "ContainerReferenceParam",
        "LocalEnvironmentParam",
        "NetworkPolicyDisabled",
        "NetworkPolicyAllowlist",
        "container_auto",
        "container_reference",
        "local",
        "disabled",
        "allowlist",
        "skill_reference",
        "inline",
    }
)


class ResponseCreateBody(BaseModel):
    """POST /v1/responses. Fields localbox has no use for (text, reasoning, truncation,
    prompt_cache_key, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1)]
    input: str | list[dict[str, Any]] = []
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    stream: bool | None = None
    background: bool | None = None
    conversation: Any = None
    include: list[str] | None = None
    max_tool_calls: Annotated[int, Field(ge=0)] | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None


class AutoParam(BaseModel):
    type: Literal["auto"]
    file_ids: Annotated[list[str], Field(max_length=50)] | None = None
    memory_limit: MemoryLimit | None = None
    network_policy: NetworkPolicyCreate | None = None


class CodeInterpreterParam(BaseModel):
    type: Literal["code_interpreter"]
    container: str | AutoParam


class ContainerAutoParam(BaseModel):
    type: Literal["container_auto"]
    file_ids: Annotated[list[str], Field(max_length=50)] | None = None
    memory_limit: MemoryLimit | None = None
    network_policy: NetworkPolicyCreate | None = None
    skills: Annotated[list[SkillParam], Field(max_length=200)] | None = None


class ContainerReferenceParam(BaseModel):
    type: Literal["container_reference"]
    container_id: Annotated[str, Field(min_length=1)]


class LocalEnvironmentParam(BaseModel):
    type: Literal["local"]


class ShellParam(BaseModel):
    type: Literal["shell"]
    environment: (
        Annotated[
            ContainerAutoParam | ContainerReferenceParam | LocalEnvironmentParam,
            Field(discriminator="type"),
        ]
        | None
    ) = None


class FunctionParam(BaseModel):
    type: Literal["function"]
    name: Annotated[str, Field(min_length=1, max_length=128)]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


def _parse(model: type[BaseModel], tool: dict[str, Any], param: str) -> Any:
    try:
        return model.model_validate(tool)
    except ValidationError as exc:
        # Of a union's alternatives, the one that got furthest says what is wrong.
        err = max(exc.errors(), key=lambda e: len(e["loc"]))
        where = ".".join(str(p) for p in err["loc"] if str(p) not in BRANCHES)
        raise InvalidRequest(
            f"Invalid value for '{param}.{where}': {err['msg']}.", f"{param}.{where}"
        ) from None


def _tool(
    tool: dict[str, Any], param: str, sandbox: list[SandboxTool], functions: list[FunctionTool]
) -> None:
    kind = tool.get("type")
    if kind == "code_interpreter":
        ci = _parse(CodeInterpreterParam, tool, param)
        if isinstance(ci.container, str):
            sandbox.append(SandboxTool("code_interpreter", param, container_id=ci.container))
            return
        auto = ci.container
        sandbox.append(
            SandboxTool(
                "code_interpreter",
                param,
                auto=AutoContainer(
                    file_ids=auto.file_ids or [],
                    memory_limit=auto.memory_limit,
                    **network_policy_fields(auto.network_policy),
                ),
            )
        )
    elif kind == "shell":
        env = _parse(ShellParam, tool, param).environment or ContainerAutoParam(
            type="container_auto"
        )
        if isinstance(env, LocalEnvironmentParam):
            raise InvalidRequest(
                "A shell tool with a local environment runs on the client; localbox runs "
                "shell in its containers: use container_auto or container_reference.",
                f"{param}.environment.type",
            )
        if isinstance(env, ContainerReferenceParam):
            sandbox.append(SandboxTool("shell", param, container_id=env.container_id))
            return
        auto_shell = AutoContainer(
            file_ids=env.file_ids or [],
            memory_limit=env.memory_limit,
            skills=[container_skill(s) for s in env.skills or []],
            **network_policy_fields(env.network_policy),
        )
        sandbox.append(SandboxTool("shell", param, auto=auto_shell))
    elif kind == "function":
        fn = _parse(FunctionParam, tool, param)
        if fn.name in (PYTHON_TOOL, SHELL_TOOL):
            raise InvalidRequest(
                f"The function name '{fn.name}' is the one localbox gives its own "
                f"{'code_interpreter' if fn.name == PYTHON_TOOL else 'shell'} tool; rename it.",
                f"{param}.name",
            )
        functions.append(
            FunctionTool(
                fn.name,
                fn.description,
                fn.parameters or {"type": "object", "properties": {}},
                fn.strict,
            )
        )
    elif isinstance(kind, str):
        raise InvalidRequest(
            f"The tool '{kind}' is not supported by localbox: it runs code_interpreter, shell "
            f"and function tools (not {NOT_RUN}).",
            f"{param}.type",
        )
    else:
        raise InvalidRequest("Each tool needs a type.", f"{param}.type")


def _check_choice(choice: str | dict[str, Any], req_tools: set[str], functions: set[str]) -> None:
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise InvalidRequest(
                "tool_choice must be 'auto', 'none', 'required' or an object.", "tool_choice"
            )
        return
    kind = choice.get("type")
    if kind in ("code_interpreter", "shell"):
        if kind not in req_tools:
            raise InvalidRequest(
                f"tool_choice names {kind}, which is not in tools.", "tool_choice.type"
            )
    elif kind == "function":
        if choice.get("name") not in functions:
            raise InvalidRequest(
                f"tool_choice names the function '{choice.get('name')}', which is not in tools.",
                "tool_choice.name",
            )
    elif kind != "allowed_tools":
        raise InvalidRequest(
            f"tool_choice of type '{kind}' is not supported by localbox.", "tool_choice.type"
        )


def to_request(body: ResponseCreateBody) -> CreateResponse:
    if body.background:
        raise InvalidRequest(
            "Background responses are not supported by localbox; leave background unset.",
            "background",
        )
    if body.conversation is not None:
        raise InvalidRequest(
            "Conversations are not supported by localbox; use previous_response_id.",
            "conversation",
        )
    sandbox: list[SandboxTool] = []
    functions: list[FunctionTool] = []
    for i, tool in enumerate(body.tools or []):
        _tool(tool, f"tools[{i}]", sandbox, functions)
    kinds = [t.kind for t in sandbox]
    for kind in set(kinds):
        if kinds.count(kind) > 1:
            raise InvalidRequest(f"Only one {kind} tool may be given.", "tools")
    choice = body.tool_choice if body.tool_choice is not None else "auto"
    _check_choice(choice, set(kinds), {f.name for f in functions})
    return CreateResponse(
        model=body.model,
        input=body.input,
        tools=body.tools or [],
        sandbox_tools=sandbox,
        functions=functions,
        tool_choice=choice,
        instructions=body.instructions,
        previous_response_id=body.previous_response_id,
        max_tool_calls=body.max_tool_calls,
        parallel_tool_calls=True if body.parallel_tool_calls is None else body.parallel_tool_calls,
        metadata=body.metadata or {},
        temperature=body.temperature,
        top_p=body.top_p,
        max_output_tokens=body.max_output_tokens,
        store=True if body.store is None else body.store,
        include=body.include or [],
        user=body.user,
    )
