"""Settings: every LOCALBOX_* environment variable, each with a default."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value: object) -> object:
    """Bytes as an integer, or a size such as "512m", "24g", "2GiB" (binary units)."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match is None:
            raise ValueError(f"not a size: {value!r} (use bytes, or a number with k, m, g or t)")
        return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    return value


Size = Annotated[int, BeforeValidator(parse_size)]


def _egress_subnets(value: str) -> str:
    """An IPv4 range that holds at least one /29 (one allowlisted sandbox's network)."""
    network = ipaddress.ip_network(value, strict=True)
    if not isinstance(network, ipaddress.IPv4Network) or network.prefixlen > 29:
        raise ValueError(f"{value!r} must be an IPv4 network of /29 or larger")
    return str(network)


def _cidr_list(value: str) -> str:
    """A comma list of IP networks (CIDRs), each checked."""
    for item in value.split(","):
        if item.strip():
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"{item.strip()!r} is not an IP network (CIDR)") from exc
    return value


class Settings(BaseSettings):
    """Configuration read once at start-up and passed down; nothing reads the environment later."""

    model_config = SettingsConfigDict(env_prefix="LOCALBOX_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path("data")
    api_keys: str = ""
    allowed_hosts: str = ""
    database_url: str = ""
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=20, ge=0)
    database_pool_timeout: float = Field(default=30.0, gt=0)
    lease_seconds: float = Field(default=15.0, ge=1)
    sandbox_image: str = "localbox-sandbox:latest"
    sandbox_cpus: float = Field(default=1.0, gt=0)
    sandbox_pids_limit: int = Field(default=256, ge=16)
    sandbox_tmp_size: str = "256m"
    sandbox_cgroup_parent: str = ""
    cpu_step_aside: bool = True
    sandbox_runtime: str = Field(default="runc", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    egress_image: str = "localbox-egress:latest"
    egress_subnets: Annotated[str, AfterValidator(_egress_subnets)] = "10.213.0.0/16"
    egress_extra_ca: Path | None = None
    egress_allow_private: Annotated[str, AfterValidator(_cidr_list)] = ""
    egress_max_connections: int = Field(default=64, ge=1, le=4096)
    egress_connection_rate: float = Field(default=20.0, gt=0, le=10000)
    max_upload_bytes: Size = Field(default=512 << 20, ge=1)
    max_json_bytes: Size = Field(default=16 << 20, ge=1024)
    max_containers: int = Field(default=100, ge=1)
    min_free_memory: Size = Field(default=1 << 30, ge=0)
    memory_budget: Size = Field(default=0, ge=0)
    max_files_bytes: Size = Field(default=10 << 30, ge=1)
    min_free_disk: Size = Field(default=2 << 30, ge=0)
    header_timeout: float = Field(default=10.0, gt=0)
    body_timeout: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=0, ge=0)
    default_expiry_minutes: int = Field(default=20, ge=1)
    max_expiry_minutes: int = Field(default=10080, ge=1)
    exec_default_timeout: float = Field(default=30.0, gt=0)
    exec_max_timeout: float = Field(default=300.0, gt=0)
    exec_max_output_bytes: int = Field(default=1 << 20, ge=1024)
    exec_max_image_bytes: int = Field(default=16 << 20, ge=1024)
    exec_max_error_bytes: int = Field(default=64 << 10, ge=1024)
    exec_queue_depth: int = Field(default=8, ge=0)
    warm_pool: int = Field(default=2, ge=0, le=64)
    warm_imports: str = "numpy,pandas,matplotlib.pyplot"
    sandbox_disk_bytes: int = Field(default=1 << 30, ge=0)
    skill_max_files: int = Field(default=500, ge=1, le=10000)
    skill_max_bytes: Size = Field(default=50 << 20, ge=1024)
    expiry_sweep_seconds: float = Field(default=5.0, gt=0)
    reconcile_seconds: float = Field(default=60.0, gt=0)
    model_base_url: str = ""
    model_api_key: SecretStr = SecretStr("")
    model_api: Literal["chat", "responses"] = "chat"
    model_timeout: float = Field(default=300.0, gt=0)
    model_max_retries: int = Field(default=2, ge=0, le=10)
    responses_max_tool_rounds: int = Field(default=32, ge=1)
    responses_max_tool_output: int = Field(default=20000, ge=256)
    mcp_max_read_bytes: Size = Field(default=1 << 20, ge=1024)
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"

    @property
    def api_key_list(self) -> list[str]:
        """The accepted bearer keys; empty means any bearer (or none) is accepted."""
        return [key.strip() for key in self.api_keys.split(",") if key.strip()]

    @property
    def allowed_host_list(self) -> list[str]:
        """Host names accepted without keys besides the loopback ones (lower case, no port)."""
        return [h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()]

    @property
    def warm_import_list(self) -> list[str]:
        """Modules the warm pool's spares import ahead of need."""
        return [m.strip() for m in self.warm_imports.split(",") if m.strip()]

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_data_dir / 'localbox.db'}"

    @property
    def egress_allow_private_list(self) -> tuple[str, ...]:
        """Ranges the egress proxy may connect to although they are private (normalised)."""
        return tuple(
            str(ipaddress.ip_network(item.strip(), strict=False))
            for item in self.egress_allow_private.split(",")
            if item.strip()
        )

    @property
    def egress_extra_ca_pem(self) -> str:
        """The extra CA the egress proxy trusts upstream (PEM), or "" when none is set."""
        if self.egress_extra_ca is None:
            return ""
        text = self.egress_extra_ca.expanduser().read_text()
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ValueError(
                f"LOCALBOX_EGRESS_EXTRA_CA: {self.egress_extra_ca} holds no PEM certificate"
            )
        return text
