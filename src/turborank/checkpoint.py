"""Find, read, validate and write checkpoints in the published Hugging Face layout.

A checkpoint directory holds config.json, weights (model.safetensors or pytorch_model.bin, any of
bf16/fp16/fp32) and tokenizer.json. Hub ids resolve through huggingface_hub, from the local cache
first. Pickled weights are read with ``weights_only=True``: arbitrary code is never unpickled.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, ModelNotFoundError
from .model import MODEL_TYPES, JinaBertConfig, JinaBertForSequenceClassification

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
ST_CONFIG_FILE = "config_sentence_transformers.json"  # sentence-transformers' own settings
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_EXTRAS = (
    TOKENIZER_CONFIG_FILE,
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
)

# Buffers some exporters write next to the parameters; they carry no learned values.
IGNORED_KEY_SUFFIXES = ("embeddings.position_ids", "encoder.alibi")
ENCODER_PREFIXES = ("embeddings.", "embeddings_project.", "encoder.", "pooler.")
# transformers names the encoder after the family; the model here calls every family's encoder ``bert``.
FAMILY_PREFIXES = ("roberta.", "electra.", "deberta.")
# DeBERTa's names for the attention projections that BERT calls query / key / value.
RENAMED_PARTS = {".query_proj.": ".query.", ".key_proj.": ".key.", ".value_proj.": ".value."}
# What the DeBERTa-v2 code path implements: the v3 layout (mxbai-rerank-v1, deberta-v3-*); the conv layer,
# separate position projections and absolute positions of some v2 checkpoints are refused.
DEBERTA_REQUIREMENTS = {
    "relative_attention": True,
    "share_att_key": True,
    "position_biased_input": False,
    "norm_rel_ebd": "layer_norm",
    "conv_kernel_size": None,
}
# Where the number of labels can be read: BERT's linear classifier, RoBERTa's and ELECTRA's two-layer head.
CLASSIFIER_OUTPUT_KEYS = ("classifier.weight", "classifier.out_proj.weight")


def resolve_model_dir(name_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """Return a local directory holding the checkpoint: the path itself, or the hub snapshot.

    Raises:
        ModelNotFoundError: the path does not exist and the hub id is neither cached nor reachable.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ModelNotFoundError(f"{path} is a file; pass the checkpoint directory that contains it")
    text = str(name_or_path)
    if text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise ModelNotFoundError(
            f"no checkpoint directory at {text!r}: check the path, "
            "or pass a hub id such as 'jinaai/jina-reranker-v1-turbo-en'"
        )
    return _download_from_hub(text, revision)


# Seconds one probe of the hub may take before an uncached model is reported unreachable.
HUB_PROBE_TIMEOUT = 10.0


def _unreachable(repo_id: str, filename: str, failure: Exception) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"{repo_id}/{filename} is not in the local cache and the hub cannot be reached ({failure}): "
        "pass a local checkpoint directory, or download it on a connected machine "
        f"(huggingface-cli download {repo_id}) and copy the cache"
    )


def _probe_hub(repo_id: str, revision: str | None) -> None:
    """One request, no retries: hf_hub_download retries a network error for about 25 seconds before it
    gives up, which offline is only a wait for the same message."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    try:
        get_hf_file_metadata(hf_hub_url(repo_id, CONFIG_FILE, revision=revision), timeout=HUB_PROBE_TIMEOUT)
    except HfHubHTTPError:
        return  # the hub answered (a missing or gated repo): the download says what is wrong
    except Exception as exc:  # no network, offline mode, a timeout: whatever the HTTP library raises
        raise _unreachable(repo_id, CONFIG_FILE, exc) from exc


def _download_from_hub(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    probed = False

    def fetch(filename: str) -> Path:
        nonlocal probed
        try:
            return Path(hf_hub_download(repo_id, filename, revision=revision, local_files_only=True))
        except Exception:  # not cached: go online below
            pass
        if not probed:
            _probe_hub(repo_id, revision)
            probed = True
        try:
            return Path(hf_hub_download(repo_id, filename, revision=revision))
        except EntryNotFoundError as exc:
            if not isinstance(exc, LocalEntryNotFoundError):
                raise  # the repo exists but lacks this file
            failure: Exception = exc
        except Exception as exc:
            failure = exc
        raise _unreachable(repo_id, filename, failure) from failure

    directory = fetch(CONFIG_FILE).parent
    fetch(TOKENIZER_FILE)
    for extra in TOKENIZER_EXTRAS:
        try:
            fetch(extra)
        except (EntryNotFoundError, ModelNotFoundError):
            continue
    for weights in WEIGHT_FILES:
        try:
            fetch(weights)
            return directory
        except EntryNotFoundError:
            continue
    raise ModelNotFoundError(f"{repo_id} has none of {WEIGHT_FILES}: it is not a supported checkpoint")


def load_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{directory} has no {CONFIG_FILE}: is this a Hugging Face checkpoint directory?"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}): re-download the checkpoint") from exc


def optional_json_field(path: Path, field: str) -> Any:
    """One top-level field of an optional JSON side file; None when the file, or the field, is absent
    or unreadable (side files only refine defaults, so they never stop a load)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get(field)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None


def declared_max_length(directory: Path) -> int | None:
    """``model_max_length`` from tokenizer_config.json: the pair length a model was trained and tuned
    for, as sentence-transformers' CrossEncoder and fastembed read it. None when absent or a sentinel
    (transformers writes 1e30 for "no limit")."""
    value = optional_json_field(directory / TOKENIZER_CONFIG_FILE, "model_max_length")
    return value if isinstance(value, int) and 8 <= value <= 1_000_000 else None


def declared_long_documents(directory: Path) -> str:
    """How the checkpoint wants documents longer than its default length read: ``"chunk"`` (score
    windows, keep the best) when config.json's ``turborank`` block says so, else ``"truncate"`` (what
    the reference does). turborank's default model declares ``chunk``: it reads 384 tokens, and a long
    RAG chunk's answer may sit anywhere in it."""
    block = optional_json_field(directory / CONFIG_FILE, "turborank")
    mode = block.get("long_documents") if isinstance(block, dict) else None
    return "chunk" if mode == "chunk" else "truncate"


def declared_window_length(directory: Path) -> int | None:
    """Pair tokens per window in which the checkpoint wants documents too long for its default length
    read (config.json's ``turborank`` block, ``window_length``); None: windows of the default length."""
    block = optional_json_field(directory / CONFIG_FILE, "turborank")
    length = block.get("window_length") if isinstance(block, dict) else None
    return length if isinstance(length, int) and not isinstance(length, bool) and length > 0 else None


def declared_activation(directory: Path) -> str | None:
    """The activation sentence-transformers' CrossEncoder applies in ``predict``, as a dotted path
    (``torch.nn.modules.linear.Identity``), looked up where each of its versions saves it:
    config_sentence_transformers.json (v5 on), config.json's ``sentence_transformers`` block (v4) or
    its ``sbert_ce_default_activation_function`` (before v4). None when the checkpoint names none."""
    saved = optional_json_field(directory / ST_CONFIG_FILE, "activation_fn")
    if saved is None:
        block = optional_json_field(directory / CONFIG_FILE, "sentence_transformers")
        saved = block.get("activation_fn") if isinstance(block, dict) else None
    if saved is None:
        saved = optional_json_field(directory / CONFIG_FILE, "sbert_ce_default_activation_function")
    return saved if isinstance(saved, str) else None


def weights_path(directory: Path) -> Path:
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    raise CheckpointError(f"{directory} has no weights: expected one of {', '.join(WEIGHT_FILES)}")


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict without executing code, whatever the file format."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read weights from {path} ({type(exc).__name__}: {exc}). The file may be truncated "
            "or corrupt (re-download it), or a pickle that needs code execution, which turborank refuses "
            "to run (convert it to model.safetensors)"
        ) from exc


def normalize_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the layouts seen in the wild onto this model's names.

    Un-prefixed encoder keys (``encoder.layer.0...`` from a bare BertModel save) get the ``bert.``
    prefix, and so do RoBERTa's and ELECTRA's (``roberta.encoder...``); non-persistent buffers that
    some files carry are dropped.
    """
    normalized = {}
    for key, tensor in state.items():
        if key.endswith(IGNORED_KEY_SUFFIXES):
            continue
        for prefix in FAMILY_PREFIXES:
            key = key.removeprefix(prefix)
        for old, new in RENAMED_PARTS.items():
            key = key.replace(old, new)
        if key.startswith(ENCODER_PREFIXES):
            key = "bert." + key
        normalized[key] = tensor
    return normalized


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Require equal key sets and shapes; the error lists every difference."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs config {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state))
        if state[k].shape != expected[k].shape
    ]
    if not (missing or unexpected or mismatched):
        return
    lines = [f"weights in {source} do not match its config.json:"]
    if missing:
        lines.append(f"  missing keys ({len(missing)}): {', '.join(missing[:12])}")
    if unexpected:
        lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:12])}")
    if mismatched:
        lines.append(f"  shape mismatches ({len(mismatched)}): {'; '.join(mismatched[:12])}")
    lines.append(
        "Check that config.json belongs to these weights (model_type, architectures, hidden_size, "
        "num_hidden_layers, intermediate_size, feed_forward_type, position_embedding_type, vocab_size)."
    )
    raise CheckpointError("\n".join(lines))


def read_model_config(directory: Path) -> JinaBertConfig:
    """config.json as a JinaBertConfig, refusing families and position schemes this model does not run."""
    raw = load_config(directory)
    config = JinaBertConfig.from_dict(raw)
    if config.model_type == "deberta-v2":
        unsupported = {k: raw.get(k) for k, v in DEBERTA_REQUIREMENTS.items() if raw.get(k) != v}
        if raw.get("embedding_size") not in (None, config.hidden_size):
            unsupported["embedding_size"] = raw["embedding_size"]
        if not set(config.pos_att_type) <= {"c2p", "p2c"}:
            unsupported["pos_att_type"] = list(config.pos_att_type)
        if unsupported:
            raise CheckpointError(
                f"{directory / CONFIG_FILE} is a DeBERTa-v2 variant turborank does not run ({unsupported}); "
                f"it runs the DeBERTa-v3 layout ({DEBERTA_REQUIREMENTS}): use sentence-transformers' "
                "CrossEncoder for this one"
            )
    if config.model_type not in MODEL_TYPES:
        raise CheckpointError(
            f"{directory / CONFIG_FILE} has model_type {config.model_type!r}, a family turborank does not "
            f"run: it loads {', '.join(MODEL_TYPES)} cross-encoders (use sentence-transformers' CrossEncoder "
            "for this one)"
        )
    if config.position_embedding_type not in ("alibi", "absolute", "disentangled"):
        raise CheckpointError(
            f"{directory / CONFIG_FILE} asks for position_embedding_type "
            f"{config.position_embedding_type!r}; turborank runs 'absolute' and 'alibi' positions only "
            "(and DeBERTa's relative attention)"
        )
    return config


def load_model(directory: Path) -> JinaBertForSequenceClassification:
    """Build the model from config.json and load its weights in float32 (bf16/fp16 upcast exactly)."""
    config = read_model_config(directory)
    source = weights_path(directory)
    state = normalize_keys(read_weights(source))
    classifier = next((state[key] for key in CLASSIFIER_OUTPUT_KEYS if key in state), None)
    if classifier is None:
        raise CheckpointError(
            f"{source} has no classifier ({' or '.join(CLASSIFIER_OUTPUT_KEYS)}): this is an encoder "
            "without a ranking head (a bi-encoder or base model), not a cross-encoder. Pass a reranker "
            "checkpoint."
        )
    config.num_labels = classifier.shape[0]  # config.json of the published models omits or misstates it
    if not config.has_pooler:  # some exports keep the base model's pooler, which the head never reads
        state = {key: tensor for key, tensor in state.items() if not key.startswith("bert.pooler.")}
    model = JinaBertForSequenceClassification(config)
    check_state_dict(model, state, source)
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    return model.eval()


def reference_config(config: JinaBertConfig) -> dict[str, Any]:
    """config.json with the published checkpoints' fields, so the reference code loads our files too."""
    return {
        "architectures": ["JinaBertForSequenceClassification"],
        "attention_probs_dropout_prob": config.attention_probs_dropout_prob,
        "attn_implementation": None,
        "auto_map": {
            "AutoConfig": "configuration_bert.JinaBertConfig",
            "AutoModel": "modeling_bert.JinaBertModel",
            "AutoModelForSequenceClassification": "modeling_bert.JinaBertForSequenceClassification",
        },
        "classifier_dropout": config.classifier_dropout,
        "emb_pooler": "mean",
        "feed_forward_type": config.feed_forward_type,
        "gradient_checkpointing": False,
        "hidden_act": config.hidden_act,
        "hidden_dropout_prob": config.hidden_dropout_prob,
        "hidden_size": config.hidden_size,
        "id2label": {str(i): f"LABEL_{i}" for i in range(config.num_labels)},
        "label2id": {f"LABEL_{i}": i for i in range(config.num_labels)},
        "initializer_range": config.initializer_range,
        "intermediate_size": config.intermediate_size,
        "layer_norm_eps": config.layer_norm_eps,
        "max_position_embeddings": config.max_position_embeddings,
        "model_type": "bert",
        "num_attention_heads": config.num_attention_heads,
        "num_hidden_layers": config.num_hidden_layers,
        "pad_token_id": config.pad_token_id,
        "position_embedding_type": config.position_embedding_type,
        "torch_dtype": "bfloat16",
        "type_vocab_size": config.type_vocab_size,
        "use_cache": True,
        "vocab_size": config.vocab_size,
    }


def save_checkpoint(
    model: JinaBertForSequenceClassification,
    tokenizer_dir: Path,
    out_dir: Path,
    dtype: torch.dtype = torch.bfloat16,
) -> Path:
    """Write config.json, model.safetensors (reference tensor names) and the tokenizer files."""
    from safetensors.torch import save

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CONFIG_FILE).write_text(json.dumps(reference_config(model.config), indent=2) + "\n")
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    # Bytes written by Python, not safetensors' save_file: that creates the file 0600 whatever the umask,
    # so a server running as another user could not read a checkpoint that its config.json said was there.
    (out_dir / "model.safetensors").write_bytes(save(state, metadata={"format": "pt"}))
    for name in (TOKENIZER_FILE, *TOKENIZER_EXTRAS):
        source = Path(tokenizer_dir) / name
        if source.is_file() and source.resolve() != (out_dir / name).resolve():
            (out_dir / name).write_bytes(source.read_bytes())
    return out_dir
