"""Steps 5-7 of the recipe on a trained checkpoint: its default reading, calibrated scores, and the
long-document mode it declares.

    python -m turborank.distill.recipe --stage finish --work DIR --out CHECKPOINT

Only the dev groups are needed, not the teacher, so a finished checkpoint can be finished again (after a
change to these steps) without its training run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from .data import Group

log = logging.getLogger(__name__)

# Dev NDCG@10 that reading a document whole up to a longer pair may cost (step 5) against reading it in
# windows: a 200-token passage then costs one pair instead of two overlapping windows. Long texts keep
# the chosen windows, so an answer still shares its window with no more unrelated text than before.
WHOLE_TOLERANCE = 0.005


def choose_reading(
    checkpoint: Path, dev: list[Group], lengths: tuple[int, ...], work_dir: Path, max_docs: int = 10
) -> tuple[int, str, int | None, list[float]]:
    """Step 5: the pair length, long-document mode and window the model scores best at on the dev set.

    Each length is tried truncating documents and reading them in windows of that length (the best
    window stands for the document, as the MaxP teacher's best 48-word window does). Short windows can
    win even on documents that would fit whole: on v3b's dev set 192-token windows beat truncation at
    256 and 320 (SciFact dev 0.799 vs 0.783 / 0.766). The winner (the shorter, then truncation, on a tie)
    is the reading. When it reads windows, each longer length is then tried reading the documents that
    fit it whole and the rest in the winner's windows: the longest within ``WHOLE_TOLERANCE`` of the
    winner becomes the default length (it reads the most documents in one pair) and the winner's
    length the declared window (``pick_reading``). Windows shorter than the winner's are not preferred
    within the tolerance: 128-token windows lost dev NDCG@10 and hand-written answers in noise against
    192 (the model card's Decisions). The length becomes ``model_max_length`` in tokenizer_config.json,
    the default ``max_length`` of absolute-position models; the sweep is kept in
    ``inference_length.json``.

    Returns:
        (length, mode, window length or None, the reading's logits of each group's first ``max_docs``
        documents, for step 6).
    """
    from ..api import Reranker
    from ..checkpoint import TOKENIZER_CONFIG_FILE
    from ..chunking import READING_MODES, LongDocuments
    from .train import group_ndcg

    reranker = Reranker.from_pretrained(checkpoint, device="cpu")
    pairs = [(g.query, text) for g in dev for text in g.doc_texts[:max_docs]]
    scores, logits = {}, {}

    def measure(length: int, mode: str, window: int | None) -> None:
        # Windows named in full: "chunk" alone would take the window a finished checkpoint declares.
        reading = LongDocuments(window_length=window or length) if mode == "chunk" else mode
        key = (length, mode, window)
        logits[key] = reranker.compute_score(
            pairs, max_length=length, long_documents=reading, normalize=False, show_progress_bar=False
        )
        scores[key] = group_ndcg(dev, logits[key], max_docs)
        log.info("dev NDCG@10 at %s: %.4f", _reading_name(*key), scores[key])

    length, mode, window = pick_reading(lengths, READING_MODES, measure, scores)
    config_path = checkpoint / TOKENIZER_CONFIG_FILE
    tokenizer_config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    config_path.write_text(json.dumps({**tokenizer_config, "model_max_length": length}) + "\n")
    record = {
        "dev_ndcg@10": {_reading_name(*key): v for key, v in scores.items()},
        "chosen": {"max_length": length, "long_documents": mode, "window_length": window},
        "dev_groups": len(dev),
    }
    (work_dir / "inference_length.json").write_text(json.dumps(record, indent=2) + "\n")
    return length, mode, window, logits[(length, mode, window)]


def pick_reading(
    lengths: tuple[int, ...],
    modes: tuple[str, ...],
    measure: Callable[[int, str, int | None], None],
    scores: dict[tuple[int, str, int | None], float],
) -> tuple[int, str, int | None]:
    """Step 5's rule over dev scores that ``measure(length, mode, window)`` adds to ``scores``: see
    ``choose_reading``. Returns (length, mode, window length or None)."""
    for length in lengths:
        for mode in modes:
            measure(length, mode, None)
    best = max(scores, key=lambda key: (round(scores[key], 4), -key[0], key[1] == "truncate"))
    length, mode, window = best
    if mode == "chunk":
        for longer in (n for n in lengths if n > length):
            measure(longer, mode, length)
        whole = [key for key in scores if key[2] == length and scores[key] >= scores[best] - WHOLE_TOLERANCE]
        if whole:
            length, mode, window = max(whole)
    return length, mode, window


def _reading_name(length: int, mode: str, window: int | None) -> str:
    return f"{length},{mode}" + (f",window={window}" if window else "")


def finish_checkpoint(checkpoint: Path, dev: list[Group], lengths: tuple[int, ...], work_dir: Path) -> None:
    """Steps 5-7 on a trained checkpoint: default reading, calibrated scores, long-document mode declared."""
    _, mode, window, dev_logits = choose_reading(checkpoint, dev, lengths, work_dir)
    calibrate(checkpoint, dev, dev_logits, work_dir)
    declare_long_documents(checkpoint, mode, window)


def calibrate(
    checkpoint: Path, dev: list[Group], dev_logits: list[float], work_dir: Path, max_docs: int = 10
) -> tuple[float, float]:
    """Step 6: Platt scaling of the classifier on the dev labels, so a score reads as P(relevant).

    Listwise losses ignore a shift (and the LCE term a scale) shared by a group's logits, so nothing in
    training pins where the sigmoid sits: a trained student may give clear answers 0.05 and users who
    threshold ``relevance_score`` get nonsense. Fitting ``sigmoid(a * logit + b)`` to the dev set's
    binary labels (log loss; Platt 1999) and folding ``a`` and ``b`` into the classifier changes no
    ranking. ``dev_logits`` are the checkpoint's logits of each group's first ``max_docs`` documents, as
    the shipped model reads them (step 5's winner); unlabelled documents are left out of the fit.
    Returns (a, b); the fit is kept in ``calibration.json``.
    """
    from ..checkpoint import load_model, save_checkpoint

    labels = [label for group in dev for label in group.labels[:max_docs]]
    if len(labels) != len(dev_logits):
        raise ValueError(f"{len(dev_logits)} dev logits for {len(labels)} dev documents")
    kept = [i for i, label in enumerate(labels) if label is not None]
    targets = torch.tensor([float(labels[i] > 0) for i in kept])
    a, b = platt(torch.tensor([dev_logits[i] for i in kept]), targets)
    model = load_model(checkpoint)
    with torch.no_grad():
        model.classifier.bias.mul_(a).add_(b)
        model.classifier.weight.mul_(a)
    save_checkpoint(model, checkpoint, checkpoint)
    record = {"a": a, "b": b, "pairs": len(kept), "positives": int(targets.sum())}
    (work_dir / "calibration.json").write_text(json.dumps(record, indent=2) + "\n")
    log.info("calibration on %d dev pairs: sigmoid(%.3f * logit %+.3f)", len(kept), a, b)
    return a, b


def platt(logits: torch.Tensor, labels: torch.Tensor, steps: int = 50) -> tuple[float, float]:
    """(a, b) minimising the log loss of ``sigmoid(a * logits + b)`` against 0/1 labels (Newton steps).

    Raises:
        ValueError: one class is missing or the logits separate the labels (the fit has no finite optimum).
    """
    positives, negatives = logits[labels > 0.5], logits[labels <= 0.5]
    if not len(positives) or not len(negatives) or positives.min() > negatives.max():
        raise ValueError("no Platt fit: both labels are needed, and logits that do not separate them")
    x = torch.stack([logits.double(), torch.ones_like(logits, dtype=torch.float64)], dim=1)  # (N, 2)
    y = labels.double()
    theta = torch.zeros(2, dtype=torch.float64)  # p = 1/2 everywhere: a well-conditioned first step
    for _ in range(steps):
        p = torch.sigmoid(x @ theta)
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + 1e-9 * torch.eye(2, dtype=torch.float64)
        theta = theta - torch.linalg.solve(hessian, x.T @ (p - y))
    return float(theta[0]), float(theta[1])


def declare_long_documents(checkpoint: Path, mode: str, window_length: int | None = None) -> None:
    """Step 7: config.json names the long-document mode and window step 5 chose, which
    ``long_documents="auto"`` follows. With "chunk" the model reads long documents window by window, as
    it was trained to keep an answer's score inside a window of unrelated text; truncating drops any
    answer past the first window.
    """
    from ..checkpoint import CONFIG_FILE
    from ..chunking import READING_MODES

    if mode not in READING_MODES:
        raise ValueError(f"long-document mode must be truncate or chunk, got {mode!r}")
    if window_length is not None and mode != "chunk":
        raise ValueError(f"a window length needs the chunk mode, got {mode!r}")
    block = {"long_documents": mode} | ({"window_length": window_length} if window_length else {})
    path = checkpoint / CONFIG_FILE
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "turborank": block}, indent=2) + "\n")


def keep_reading(source: Path, out: Path) -> None:
    """Give ``out`` the reading ``source`` declares (its long-document mode and window; the tokenizer
    files carry the pair length). For a checkpoint trained toward ``source``'s own scores, or averaged
    with it, whose reading has not been chosen yet: without it, ``long_documents="auto"`` would truncate."""
    from ..checkpoint import CONFIG_FILE, declared_long_documents, declared_window_length, optional_json_field

    if optional_json_field(source / CONFIG_FILE, "turborank") is None:
        return  # nothing declared: out already reads as source does (truncating)
    declare_long_documents(out, declared_long_documents(source), declared_window_length(source))
