"""Settings for a running Corridor (server and CLI). Built once, passed in; never a global."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field


class Settings(BaseModel):
    """What a Corridor process needs to know. Environment variables prefixed ``CORRIDOR_``."""

    store_url: str | None = Field(
        default=None,
        description="store URL: duckdb:///path/file.duckdb or postgresql://user@host/db; "
        "default ./corridor-data/corridor.duckdb",
    )
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, description="largest accepted request body, in bytes"
    )
    max_batch_records: int = Field(
        default=200_000, description="most records accepted in one request"
    )
    max_errors_reported: int = Field(
        default=1000, description="most rejection details listed in one ingest reply"
    )
    host: str = "127.0.0.1"
    port: int = 8765

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env: dict[str, object] = {}
        for name in cls.model_fields:
            value = os.environ.get(f"CORRIDOR_{name.upper()}")
            if value is not None:
                env[name] = value
        if "store_url" not in env and os.environ.get("CORRIDOR_STORE"):
            env["store_url"] = os.environ["CORRIDOR_STORE"]
        env.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(env)
