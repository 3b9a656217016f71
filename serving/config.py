"""Serving settings, read once from `TEXTCLF_*` environment variables (defaults suit a 2-core box)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.store import DEFAULT_URL

ENV_PREFIX = "TEXTCLF_"


class ServingConfig(BaseSettings):
    # An empty variable means the default, as an unset one does.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="forbid")

    bundle: Path = Field(Path("artifacts/releases"), description=(
        "a release channel to follow (a folder with champion.json, which the package stage and pipelines.rollback "
        "publish), or one fixed bundle folder (model.onnx, tokenizer.json, meta.json)"))
    reload_interval_s: float = Field(5.0, ge=0, description=(
        "how often each worker checks the release channel for a new champion; 0 serves the channel's current "
        "release without following it"))
    bento_model: str | None = Field(
        None, description="a BentoML model-store tag (e.g. textclf:latest) to serve instead of `bundle`")
    max_texts: int = Field(32, ge=1, description="most texts in one request")
    max_chars: int = Field(2000, ge=1, description="most characters in one text")
    max_body_bytes: int = Field(1_000_000, ge=64, description="largest request body")
    # Adaptive batching: max_batch_size counts texts. max_latency_ms is BentoML's deadline after which a
    # queued request is answered 503, not a gathering window, so it is generous.
    max_batch_size: int = Field(64, ge=1)
    max_latency_ms: int = Field(10_000, ge=10)
    # 2 measured best on a 2-core box (bench/RESULTS.md): one worker's Python overhead leaves a core idle.
    workers: int = Field(2, ge=1, description="worker processes, each with its own model copy")
    onnx_threads: int = Field(1, ge=1, description="onnxruntime intra-op threads per worker")
    timeout_s: float = Field(30.0, gt=0, description="per-request timeout")
    api_token: str | None = Field(
        None, description="when set, /classify and /feedback need 'Authorization: Bearer <token>'")
    # The production loop (monitoring/): every prediction logged, feedback stored, both in one store.
    log_predictions: bool = Field(True, description="log every prediction (id, time, text, label, scores, model)")
    log_texts: bool = Field(True, description="false: log a SHA-256 of each text instead of the text")
    feedback_url: str = Field(
        DEFAULT_URL, description="the prediction log and feedback store: sqlite:///PATH or postgresql://...")
    log_flush_interval_s: float = Field(0.2, gt=0, le=10, description="how often logged predictions are written")


def load_config() -> ServingConfig:
    """The config from the `TEXTCLF_<FIELD>` environment variables (no .env file or secrets folder is set, so
    pydantic-settings reads nothing else); a bad value is a one-line error naming the variable."""
    try:
        return ServingConfig()
    except ValidationError as exc:
        var = ENV_PREFIX + str(exc.errors()[0]["loc"][0]).upper()
        raise ValueError(f"{var}={os.environ.get(var)!r} is invalid: {exc.errors()[0]['msg']}") from None
