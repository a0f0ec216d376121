"""Server settings: one dataclass whose fields map 1:1 to ``--flag`` and ``TURBORANK_FLAG`` env vars.

Precedence: command-line flag, then environment variable, then the default written here.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..chunking import LONG_DOCUMENT_MODES
from ..errors import InputError
from ..tokenization import MIN_TOKENS_PER_PAIR
from .logs import LOG_FORMATS, LOG_LEVELS

ENV_PREFIX = "TURBORANK_"
# RFC 6750's b64token alphabet widened to every visible ASCII character: what a Bearer header can carry
# byte for byte, whatever encoding the client assumes.
API_KEY = re.compile(r"[\x21-\x7e]+")


def _setting(default: Any, help: str, blank_is_error: bool = False, **kwargs: Any) -> Any:
    """A dataclass field that carries its CLI help text.

    ``blank_is_error``: an empty env var is refused instead of meaning "unset" (an empty secret must
    never switch a protection off).
    """
    metadata = {"help": help, "blank_is_error": blank_is_error}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata, **kwargs)


def _optional(valid: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """The check for a setting whose None means "the default": None passes, anything else is checked."""
    return lambda value: value is None or valid(value)


# (settings, check, what the check demands): ServerConfig.__post_init__ refuses a value failing its check.
# A NaN (``--request-timeout nan``) fails every numeric check: it compares false with everything.
RULES: tuple[tuple[tuple[str, ...], Callable[[Any], bool], str], ...] = (
    (("log_format",), lambda v: v in LOG_FORMATS, f"must be one of {', '.join(LOG_FORMATS)}"),
    (("log_level",), lambda v: v in LOG_LEVELS, f"must be one of {', '.join(LOG_LEVELS)}"),
    (
        ("long_documents",),
        lambda v: v in LONG_DOCUMENT_MODES,
        f"must be one of {', '.join(LONG_DOCUMENT_MODES)}",
    ),
    (
        (
            "threads",
            "max_batch_tokens",
            "max_batch_size",
            "max_queue_tokens",
            "max_documents",
            "max_body_bytes",
            "max_chunks_per_doc",
            "max_connections",
            "tokenizer_threads",
            "replicas",
            "max_ongoing_requests",
        ),
        _optional(lambda v: v >= 1),
        "must be at least 1",
    ),
    (
        ("request_timeout", "read_timeout", "keep_alive_timeout", "target_ongoing_requests"),
        lambda v: v > 0,
        "must be above 0",
    ),
    (
        ("graceful_timeout", "health_cache_seconds", "num_cpus", "num_gpus"),
        lambda v: v >= 0,
        "must be 0 or more",
    ),
    (("port",), lambda v: 0 <= v <= 65535, "must be a TCP port, 0 to 65535 (0: any free port)"),
    (
        ("max_tokens_per_doc",),
        _optional(lambda v: v >= MIN_TOKENS_PER_PAIR),
        f"must be at least {MIN_TOKENS_PER_PAIR} (tokens per pair, the special tokens included)",
    ),
)


@dataclass
class ServerConfig:
    """Everything ``turborank serve`` can be told. Each field is a flag and an env var."""

    model: list[str] = _setting(
        [],
        "NAME=PATH_OR_ID of a model to serve; repeat for several (env: comma-separated). The first is the "
        "default for requests without 'model'. Without any, the model shipped with turborank is served.",
    )
    model_alias: list[str] = _setting(
        [],
        "ALIAS=NAME: also accept ALIAS as the name of served model NAME, e.g. rerank-english-v3.0=turbo; "
        "repeat for several (env: comma-separated). GET /v1/models lists the aliases.",
    )
    served_model_name: list[str] = _setting(
        [],
        "vLLM-style names of the default (first) model: the first is the name it is served and reported "
        "under, the others (and its --model name) are aliases",
    )
    accept_any_model_name: bool = _setting(
        False, "answer requests naming an unknown model with the default model instead of 400"
    )
    host: str = _setting("127.0.0.1", "interface to bind; 0.0.0.0 exposes the server to the network")
    port: int = _setting(8080, "TCP port")
    api_key: str | None = _setting(
        None, "require 'Authorization: Bearer KEY' on the API routes", blank_is_error=True
    )
    api_keys_file: str | None = _setting(
        None, "file with one accepted API key per line (adds to --api-key)", blank_is_error=True
    )
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
        "auto",
        "truncate (score each pair's first --max-tokens-per-doc tokens), chunk (score windows, keep the "
        "best) or auto: what the model declares (chunk for the default model, else truncate); requests "
        "with Cohere's max_chunks_per_doc are chunked either way",
    )
    max_chunks_per_doc: int = _setting(10, "windows scored per document in chunk mode (Cohere's default)")
    auto_truncate: bool = _setting(
        True, "truncate over-long documents when the request does not say (False: answer 422 instead)"
    )
    request_timeout: float = _setting(60.0, "seconds a request may wait and run before it gets 504")
    graceful_timeout: float = _setting(30.0, "seconds SIGTERM waits for in-flight requests before exiting")
    log_level: str = _setting("info", "debug, info, warning, error or critical")
    auth: bool | None = _setting(
        None,
        "--auth: refuse to start without an API key; --no-auth: serve without one, on any host (logged as a "
        "warning). Unset: keys given means auth is on; none means off, allowed only on a loopback --host",
    )
    read_timeout: float = _setting(
        10.0, "seconds a client may take to send a request's head, and again its body (then 408 / closed)"
    )
    keep_alive_timeout: float = _setting(
        5.0, "seconds an idle keep-alive connection stays open (above a load balancer's idle timeout)"
    )
    max_connections: int = _setting(
        512, "open connections at most; more are answered 503 and closed at once (file descriptors)"
    )
    tokenizer_threads: int = _setting(
        2, "threads that tokenize requests (bounded so a few large requests cannot take every thread)"
    )
    health_cache_seconds: float = _setting(
        2.0, "seconds a readiness result (a one-pair inference per model) is reused by /health/ready"
    )
    log_format: str = _setting("json", "json (one object per line: timestamp, level, logger, ...) or text")
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
        # Settings are checked here, before any model loads: a bad one stops startup with a message
        # naming it, instead of a crash inside uvicorn or a server that answers every request with an error.
        self.log_level = self.log_level.lower()  # uvicorn knows only the lower-case names
        for names, valid, rule in RULES:
            for name in names:
                if not valid(getattr(self, name)):
                    raise _invalid(name, getattr(self, name), rule)
        for name in ("api_key", "api_keys_file"):
            if getattr(self, name) is not None and not getattr(self, name).strip():
                raise InputError(
                    f"--{name.replace('_', '-')} is empty: give a key (or a file of keys), or pass --no-auth "
                    "to serve without one"
                )
        self.model_aliases()  # a bad alias fails at startup, before any model loads

    def check_length_limit(self, name: str, max_positions: int) -> None:
        """Refuse a --max-tokens-per-doc that a served model cannot reach.

        The flag is the most a request may ask for: silently capping it at the model's positions would
        serve shorter pairs than the operator asked for, and /info would contradict the flag.

        Raises:
            InputError: naming the flag, its env var, the model and its limit.
        """
        if self.max_tokens_per_doc is not None and self.max_tokens_per_doc > max_positions:
            raise _invalid(
                "max_tokens_per_doc",
                self.max_tokens_per_doc,
                f"must be at most {max_positions} for model {name!r}, its position limit (leave the flag "
                "out to give each model its own default)",
            )

    def api_keys(self) -> list[str]:
        """The accepted keys from --api-key and --api-keys-file, checked against --auth/--no-auth and --host.

        Returns:
            The keys; empty means auth is off, which happens only with --no-auth or on a loopback host.

        Raises:
            InputError: the keys file cannot be read or holds no key, a key is not printable ASCII, keys
                come with --no-auth, or no key comes with --auth or a non-loopback --host.
        """
        keys = [self.api_key.strip()] if self.api_key else []
        if self.api_keys_file:
            keys += _read_keys_file(self.api_keys_file)
        for key in keys:
            if not API_KEY.fullmatch(key):
                raise InputError(
                    "API keys must be printable ASCII without spaces (HTTP headers carry no other text "
                    "reliably): replace the key that is not"
                )
        if keys and self.auth is False:
            raise InputError("--no-auth contradicts --api-key/--api-keys-file: drop one of them")
        if not keys and self.auth is True:
            raise InputError("--auth needs a key: pass --api-key KEY or --api-keys-file FILE")
        if not keys and self.auth is None and not _is_loopback(self.host):
            raise InputError(
                f"--host {self.host} exposes the server beyond this machine without an API key: pass "
                "--api-key KEY or --api-keys-file FILE, or --no-auth to serve it open on purpose"
            )
        return keys

    def model_specs(self) -> list[tuple[str, str | None]]:
        """(served name, path or hub id) per --model; a bare path is named after its last component,
        and --served-model-name renames the first.

        Raises:
            InputError: a spec is empty or two models share a name.
        """
        specs = self._named_specs()
        if self.served_model_name:
            specs[0] = (self.served_model_name[0], specs[0][1])
        names = [name for name, _ in specs]
        if len(set(names)) != len(names):
            raise InputError(f"two --model entries share a name ({names}); name them with NAME=PATH")
        return specs

    def _named_specs(self) -> list[tuple[str, str | None]]:
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
        return specs

    def model_aliases(self) -> dict[str, str]:
        """{alias: served name} from --model-alias and --served-model-name.

        Raises:
            InputError: an alias is malformed, names a model that is not served, or is taken.
        """
        served = [name for name, _ in self.model_specs()]
        requested: list[tuple[str, str, str]] = []  # (alias, target, the setting it came from)
        if self.served_model_name:
            # vLLM's extra names, plus the --model name, so configs that used it keep working.
            original = self._named_specs()[0][0]
            extra_names = [*self.served_model_name[1:], *([original] if original != served[0] else [])]
            requested += [(alias, served[0], f"--served-model-name {alias}") for alias in extra_names]
        for spec in self.model_alias:
            alias, sep, target = (part.strip() for part in spec.partition("="))
            if not sep or not alias or not target:
                raise InputError(f"--model-alias must be ALIAS=NAME, got {spec!r}")
            requested.append((alias, target, f"--model-alias {spec}"))
        aliases: dict[str, str] = {}
        for alias, target, setting in requested:
            if target not in served:
                raise InputError(f"{setting}: {target!r} is not a served model; served models are {served}")
            if alias in served or aliases.get(alias, target) != target:
                raise InputError(f"{setting}: the name {alias!r} is already taken by another model")
            aliases[alias] = target
        return aliases

    def redacted(self) -> dict[str, Any]:
        """The resolved settings for the startup log, with secrets hidden."""
        out = dataclasses.asdict(self)
        if out["api_key"]:
            out["api_key"] = "***"
        return out


def _read_keys_file(path: str) -> list[str]:
    """Keys, one per line; blank lines and ``#`` comments are skipped; a file of nothing else is refused."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read --api-keys-file {path}: {exc}") from exc
    keys = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not keys:
        raise InputError(
            f"--api-keys-file {path} holds no key (only blank lines or comments): add one key per line, "
            "or pass --no-auth to serve without one"
        )
    return keys


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _invalid(name: str, value: Any, problem: str) -> InputError:
    """A refused setting, named both ways it can be set (flag and env var), with the value it got."""
    return InputError(f"{_flag(name)} (env {ENV_PREFIX}{name.upper()}) {problem}, got {value!r}")


def _base_type(f: dataclasses.Field) -> str:
    """'bool', 'int', 'float', 'str' or 'list' from the annotation string (``from __future__``)."""
    return str(f.type).split("|")[0].split("[")[0].strip()


def _parse(f: dataclasses.Field, raw: str) -> Any:
    kind = _base_type(f)
    if kind == "list":
        return [item.strip() for item in raw.split(",") if item.strip()]
    if raw == "" and f.metadata["blank_is_error"]:
        raise InputError(
            f"{ENV_PREFIX}{f.name.upper()} is set but empty: give it a value, or unset it (for an open "
            f"server pass --no-auth, or {ENV_PREFIX}AUTH=false)"
        )
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
            # extend: both "--flag a --flag b" and vLLM's "--flag a b" work
            parser.add_argument(_flag(f.name), action="extend", nargs="+", default=None, help=help_text)
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
