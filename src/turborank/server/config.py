"""Server settings: one dataclass whose fields map 1:1 to ``--flag`` and ``TURBORANK_FLAG`` env vars.

Precedence: command-line flag, then environment variable, then the default written here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..chunking import LONG_DOCUMENT_MODES
from ..errors import InputError

ENV_PREFIX = "TURBORANK_"


def _setting(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field that carries its CLI help text."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass
class ServerConfig:
    """Everything ``turborank serve`` can be told. Each field is a flag and an env var."""

    model: list[str] = _setting(
        [],
        "NAME=PATH_OR_ID of a model to serve; repeat for several (env: comma-separated). The first is the "
        "default for requests without 'model'. Without any, the model shipped with turborank is served.",
    )
    host: str = _setting("127.0.0.1", "interface to bind; 0.0.0.0 exposes the server to the network")
    port: int = _setting(8080, "TCP port")
    api_key: str | None = _setting(None, "require 'Authorization: Bearer KEY' on the API routes")
    api_keys_file: str | None = _setting(None, "file with one accepted API key per line (adds to --api-key)")
    public_health: bool = _setting(True, "serve /health without an API key (load balancers have none)")
    public_metrics: bool = _setting(True, "serve /metrics without an API key (Prometheus scrapers have none)")
    device: str = _setting("auto", "cpu, cuda, cuda:N or auto")
    dtype: str | None = _setting(None, "float32 (default), bfloat16, float16 or auto (bf16/fp16 on CUDA)")
    threads: int | None = _setting(None, "CPU threads for inference (default: torch's choice)")
    backend: str = _setting(
        "auto",
        "auto (torch; on CUDA, ALiBi batches past 3,072 tokens unpadded), torch, onnx or onnx-int8 (ONNX "
        "Runtime on the CPU), or unpadded (variable-length, CUDA)",
    )
    max_batch_tokens: int | None = _setting(
        None, "padded tokens per forward pass (default: 2,048 on CPU, 16,384 on CUDA; memory vs. latency)"
    )
    max_batch_size: int = _setting(256, "pairs per forward pass, whatever their length")
    # Pending tokens per model: 262k tokens is ~16 full batches, i.e. seconds of work on a CPU. Beyond it
    # new requests get 429 at once instead of waiting in an unbounded queue.
    max_queue_tokens: int = _setting(262144, "pending tokens per model before new requests get 429")
    max_documents: int = _setting(10000, "documents per request; more gets 413")
    max_body_bytes: int = _setting(16 * 1024 * 1024, "request body size in bytes; more gets 413")
    max_tokens_per_doc: int | None = _setting(
        None,
        "tokens per (query, document) pair, specials included: the default and the most a request may "
        "ask for (default: the model's default length; requests may ask up to its position limit)",
    )
    long_documents: str = _setting(
        "truncate",
        "truncate (score each pair's first --max-tokens-per-doc tokens) or chunk (score windows, keep the "
        "best); requests with Cohere's max_chunks_per_doc are chunked either way",
    )
    max_chunks_per_doc: int = _setting(10, "windows scored per document in chunk mode (Cohere's default)")
    auto_truncate: bool = _setting(
        True, "truncate over-long documents when the request does not say (False: answer 422 instead)"
    )
    request_timeout: float = _setting(60.0, "seconds a request may wait and run before it gets 504")
    graceful_timeout: float = _setting(30.0, "seconds SIGTERM waits for in-flight requests before exiting")
    log_level: str = _setting("info", "debug, info, warning or error")
    # serve --ray: the same app on Ray Serve, as replicas behind Ray's HTTP proxy.
    ray: bool = _setting(False, "serve with Ray Serve: replicas of this server behind one endpoint")
    ray_address: str | None = _setting(None, "Ray cluster to join with --ray (default: start a local Ray)")
    replicas: int = _setting(1, "replicas with --ray (a fixed number; see --min-replicas for autoscaling)")
    min_replicas: int | None = _setting(None, "with --ray and --max-replicas: autoscale between these")
    max_replicas: int | None = _setting(None, "with --ray: autoscale up to this many replicas")
    target_ongoing_requests: float = _setting(8.0, "with --ray autoscaling: requests in flight per replica")
    # Ray's default of 5 leaves the token-budget scheduler too few requests to pack batches from.
    max_ongoing_requests: int = _setting(16, "with --ray: requests a replica takes at once; more wait in Ray")
    num_cpus: float = _setting(1.0, "with --ray: CPUs per replica (torch threads default to this)")
    num_gpus: float = _setting(0.0, "with --ray: GPUs per replica")

    def __post_init__(self) -> None:
        if self.long_documents not in LONG_DOCUMENT_MODES:
            raise InputError(
                f"--long-documents must be one of {LONG_DOCUMENT_MODES}, got {self.long_documents!r}"
            )
        for name in (
            "max_batch_tokens",
            "max_batch_size",
            "max_queue_tokens",
            "max_documents",
            "max_body_bytes",
            "replicas",
            "max_ongoing_requests",
        ):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")

    def api_keys(self) -> list[str]:
        """The accepted keys from --api-key and --api-keys-file; empty means auth is off.

        Raises:
            InputError: the keys file cannot be read.
        """
        keys = [self.api_key] if self.api_key else []
        if self.api_keys_file:
            try:
                lines = Path(self.api_keys_file).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"cannot read --api-keys-file {self.api_keys_file}: {exc}") from exc
            keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        return keys

    def model_specs(self) -> list[tuple[str, str | None]]:
        """(served name, path or hub id) per --model; a bare path is named after its last component.

        Raises:
            InputError: a spec is empty or two models share a name.
        """
        if not self.model:
            return [("default", None)]
        specs = []
        for spec in self.model:
            name, sep, source = spec.partition("=")
            if not sep:
                name, source = Path(spec.rstrip("/")).name, spec
            if not name or not source:
                raise InputError(f"--model must be NAME=PATH_OR_ID or PATH_OR_ID, got {spec!r}")
            specs.append((name, source))
        names = [name for name, _ in specs]
        if len(set(names)) != len(names):
            raise InputError(f"two --model entries share a name ({names}); name them with NAME=PATH")
        return specs

    def redacted(self) -> dict[str, Any]:
        """The resolved settings for the startup log, with secrets hidden."""
        out = dataclasses.asdict(self)
        if out["api_key"]:
            out["api_key"] = "***"
        return out


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(f: dataclasses.Field) -> str:
    """'bool', 'int', 'float', 'str' or 'list' from the annotation string (``from __future__``)."""
    return str(f.type).split("|")[0].split("[")[0].strip()


def _parse(f: dataclasses.Field, raw: str) -> Any:
    kind = _base_type(f)
    if kind == "list":
        return [item.strip() for item in raw.split(",") if item.strip()]
    if raw == "" and "None" in str(f.type):
        return None
    if kind == "bool":
        if raw.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise InputError(f"{ENV_PREFIX}{f.name.upper()} must be true or false, got {raw!r}")
        return raw.lower() in ("1", "true", "yes", "on")
    try:
        return {"int": int, "float": float, "str": str}[kind](raw)
    except ValueError as exc:
        raise InputError(f"{ENV_PREFIX}{f.name.upper()} must be a {kind}, got {raw!r}") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per ServerConfig field; unset flags stay None so env vars and defaults can apply."""
    for f in dataclasses.fields(ServerConfig):
        kind = _base_type(f)
        help_text = f"{f.metadata['help']} (env {ENV_PREFIX}{f.name.upper()})"
        if kind == "bool":
            parser.add_argument(
                _flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif kind == "list":
            parser.add_argument(_flag(f.name), action="append", default=None, help=help_text)
        else:
            converter = {"int": int, "float": float, "str": str}[kind]
            parser.add_argument(_flag(f.name), type=converter, default=None, help=help_text)


def from_sources(
    args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """Resolve each field from its flag, else its env var, else its default.

    Args:
        args: parsed flags from a parser built with ``add_arguments`` (None: no flags).
        environ: environment (default ``os.environ``).

    Returns:
        The resolved ServerConfig.

    Raises:
        InputError: an env var does not parse as its field's type.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in dataclasses.fields(ServerConfig):
        flag_value = getattr(args, f.name, None) if args is not None else None
        env_value = environ.get(ENV_PREFIX + f.name.upper())
        if flag_value is not None:
            values[f.name] = flag_value
        elif env_value is not None:
            values[f.name] = _parse(f, env_value)
    return ServerConfig(**values)
