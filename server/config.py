"""Settings: every LOCALBOX_* environment variable, each with a default."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration read once at start-up and passed down; nothing reads the environment later."""

    model_config = SettingsConfigDict(env_prefix="LOCALBOX_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path("data")
    api_keys: str = ""
    database_url: str = ""
    sandbox_image: str = "localbox-sandbox:latest"
    sandbox_cpus: float = Field(default=1.0, gt=0)
    sandbox_pids_limit: int = Field(default=256, ge=16)
    sandbox_tmp_size: str = "256m"
    max_upload_bytes: int = Field(default=512 << 20, ge=1)
    default_expiry_minutes: int = Field(default=20, ge=1)
    max_expiry_minutes: int = Field(default=10080, ge=1)
    exec_default_timeout: float = Field(default=30.0, gt=0)
    exec_max_timeout: float = Field(default=300.0, gt=0)
    exec_max_output_bytes: int = Field(default=1 << 20, ge=1024)
    exec_max_image_bytes: int = Field(default=16 << 20, ge=1024)
    exec_max_error_bytes: int = Field(default=64 << 10, ge=1024)
    exec_queue_depth: int = Field(default=8, ge=0)
    sandbox_disk_bytes: int = Field(default=1 << 30, ge=0)
    expiry_sweep_seconds: float = Field(default=5.0, gt=0)
    reconcile_seconds: float = Field(default=60.0, gt=0)
    log_level: str = "info"

    @property
    def api_key_list(self) -> list[str]:
        """The accepted bearer keys; empty means any bearer (or none) is accepted."""
        return [key.strip() for key in self.api_keys.split(",") if key.strip()]

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_data_dir / 'localbox.db'}"

    @property
    def instance_id(self) -> str:
        """Identifies this server's data dir on every Docker object it creates."""
        return hashlib.sha256(str(self.resolved_data_dir).encode()).hexdigest()[:16]
