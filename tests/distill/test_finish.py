"""Recipe steps 5-7: the default reading chosen on the dev set, Platt calibration, the declared mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from turborank.distill.data import Group
from turborank.distill.finish import WHOLE_TOLERANCE, choose_reading, declare_long_documents, keep_reading
from turborank.errors import InputError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "small"
WORDS = ["cat", "dog", "bird", "fish", "tree", "house", "car", "road", "river", "city"]


def test_the_reading_is_chosen_on_the_dev_set_and_written_as_the_default(tmp_path) -> None:
    import shutil

    checkpoint = tmp_path / "model"
    shutil.copytree(FIXTURE, checkpoint)
    texts = [[" ".join(WORDS[i : i + n] * 20) for n in (1, 3, 5)] for i in range(6)]
    dev = [Group(f"q{i}", WORDS[i], ["a", "b", "c"], texts[i], [1, 0, 0]) for i in range(6)]
    length, mode, window, logits = choose_reading(checkpoint, dev, (16, 24, 64), tmp_path)
    assert len(logits) == 18  # the reading's logits of every dev document, for calibration
    record = json.loads((tmp_path / "inference_length.json").read_text())
    scores = {tuple(key.split(",")): v for key, v in record["dev_ndcg@10"].items()}
    plain = {(int(n), m): v for (n, m, *window_part), v in scores.items() if not window_part}
    assert sorted(plain) == [(n, m) for n in (16, 24, 64) for m in ("chunk", "truncate")]
    ties = [key for key, v in plain.items() if round(v, 4) == round(max(plain.values()), 4)]
    best = min(ties, key=lambda key: (key[0], key[1] != "truncate"))  # ties: shorter, then truncate
    windowed = {int(n): v for (n, m, *w), v in scores.items() if w == [f"window={best[0]}"]}
    if best[1] == "chunk":  # longer pairs read fitting documents whole, the rest in the best windows
        assert sorted(windowed) == [n for n in (16, 24, 64) if n > best[0]]
        near = [n for n, v in windowed.items() if v >= plain[best] - WHOLE_TOLERANCE]
        assert (length, window) == ((max(near), best[0]) if near else (best[0], None))
    else:
        assert not windowed and (length, window) == (best[0], None)
    assert mode == best[1]
    assert record["chosen"] == {"max_length": length, "long_documents": mode, "window_length": window}
    tokenizer_config = json.loads((checkpoint / "tokenizer_config.json").read_text())
    assert tokenizer_config["model_max_length"] == length
    assert tokenizer_config["do_lower_case"] is True  # the rest of the file is kept


def _picked(table: dict[tuple[int, str, int | None], float]) -> tuple[tuple[int, str, int | None], list]:
    from turborank.distill.finish import pick_reading

    scores, asked = {}, []

    def measure(length: int, mode: str, window: int | None) -> None:
        asked.append((length, mode, window))
        scores[(length, mode, window)] = table[(length, mode, window)]

    return pick_reading((128, 192, 256, 384), ("truncate", "chunk"), measure, scores), asked


def test_the_reading_reads_whole_the_longest_pair_near_the_best_windows() -> None:
    # Round 2b's dev table (runs' inference_length.json): 192-token windows win by 0.0003 over 128 and
    # stay the windows; 256 reads whole what fits at 0.0006 less, 384 at 0.0062 less is past the tolerance.
    table = {
        (128, "truncate", None): 0.7903, (128, "chunk", None): 0.8246,
        (192, "truncate", None): 0.8138, (192, "chunk", None): 0.8249,
        (256, "truncate", None): 0.8195, (256, "chunk", None): 0.8206,
        (384, "truncate", None): 0.8169, (384, "chunk", None): 0.8126,
        (256, "chunk", 192): 0.8244, (384, "chunk", 192): 0.8187,
    }  # fmt: skip
    chosen, asked = _picked(table)
    assert chosen == (256, "chunk", 192)
    assert asked[-2:] == [(256, "chunk", 192), (384, "chunk", 192)]
    table[(256, "chunk", 192)] = 0.8249 - WHOLE_TOLERANCE - 1e-4  # past the tolerance: windows for all
    assert _picked(table)[0] == (192, "chunk", None)
    truncating = {key: v for key, v in table.items() if key[2] is None} | {(384, "truncate", None): 0.9}
    chosen, asked = _picked(truncating)
    assert chosen == (384, "truncate", None) and len(asked) == 8  # no window to keep


def test_the_reading_of_a_finished_checkpoint_ignores_its_declared_window(tmp_path) -> None:
    import shutil

    from turborank.distill.finish import declare_long_documents

    texts = [[" ".join(WORDS[i : i + n] * 20) for n in (1, 3, 5)] for i in range(6)]
    dev = [Group(f"q{i}", WORDS[i], ["a", "b", "c"], texts[i], [1, 0, 0]) for i in range(6)]
    records = []
    for name, window in (("plain", None), ("finished", 16)):
        shutil.copytree(FIXTURE, tmp_path / name)
        if window:
            declare_long_documents(tmp_path / name, "chunk", window)
        (tmp_path / f"{name}-work").mkdir()
        choose_reading(tmp_path / name, dev, (16, 24, 64), tmp_path / f"{name}-work")
        records.append(json.loads((tmp_path / f"{name}-work" / "inference_length.json").read_text()))
    assert records[0] == records[1]  # "64,chunk" means 64-token windows, whatever the checkpoint declares


def test_windows_and_truncation_differ_on_documents_longer_than_the_pair(tmp_path) -> None:
    from turborank import Reranker
    from turborank.distill.train import group_ndcg

    # The answer word sits past the first window, so only the windowed reading can see it.
    filler = " ".join(["filler"] * 60)
    dev = [
        Group(f"q{i}", WORDS[i], ["a", "b"], [f"{filler} {WORDS[i]} {WORDS[i]}", f"{filler} filler"], [1, 0])
        for i in range(4)
    ]
    reranker = Reranker.from_pretrained(FIXTURE, device="cpu")
    pairs = [(g.query, t) for g in dev for t in g.doc_texts]
    truncated = reranker.compute_score(pairs, max_length=24, long_documents="truncate", normalize=False)
    windows = reranker.compute_score(pairs, max_length=24, long_documents="chunk", normalize=False)
    assert truncated[0::2] == pytest.approx(truncated[1::2])  # both read the same filler
    assert group_ndcg(dev, windows, 10) != group_ndcg(dev, truncated, 10)
    with pytest.raises(InputError, match="3 scores for 8 dev documents"):
        group_ndcg(dev, windows[:3], 10)


def test_the_declared_mode_is_what_auto_reads(tmp_path) -> None:
    import shutil

    from conftest import FIXTURES

    from turborank.checkpoint import declared_long_documents, declared_window_length
    from turborank.distill.finish import declare_long_documents

    shutil.copytree(FIXTURES / "small", tmp_path / "m")
    before = json.loads((tmp_path / "m" / "config.json").read_text())
    declare_long_documents(tmp_path / "m", "chunk")
    after = json.loads((tmp_path / "m" / "config.json").read_text())
    assert after == {**before, "turborank": {"long_documents": "chunk"}}
    assert declared_long_documents(tmp_path / "m") == "chunk"
    declare_long_documents(tmp_path / "m", "chunk", 192)
    assert declared_window_length(tmp_path / "m") == 192
    declare_long_documents(tmp_path / "m", "truncate")
    assert declared_long_documents(tmp_path / "m") == "truncate"
    assert declared_window_length(tmp_path / "m") is None
    with pytest.raises(ValueError, match="needs the chunk mode"):
        declare_long_documents(tmp_path / "m", "truncate", 192)
    with pytest.raises(ValueError, match="truncate or chunk"):
        declare_long_documents(tmp_path / "m", "auto")


def test_platt_recovers_the_scaling_that_generated_the_labels() -> None:
    from turborank.distill.finish import platt

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(20_000, generator=generator) * 3
    labels = (torch.rand(20_000, generator=generator) < torch.sigmoid(0.5 * logits - 1.0)).float()
    a, b = platt(logits, labels)
    assert a == pytest.approx(0.5, abs=0.03) and b == pytest.approx(-1.0, abs=0.05)


def test_calibrate_folds_the_fit_into_the_classifier_and_keeps_the_ranking(tmp_path) -> None:
    import shutil

    from turborank import Reranker
    from turborank.distill.finish import calibrate

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(FIXTURE, checkpoint)
    texts = [
        [" ".join(WORDS[(i + k) % 10 : (i + k) % 10 + n]) for k, n in ((0, 1), (3, 3), (6, 2))]
        for i in range(8)
    ]
    dev = [Group(f"q{i}", WORDS[i], ["a", "b", "c"], texts[i], [1, 0, None]) for i in range(8)]
    pairs = [(g.query, t) for g in dev for t in g.doc_texts]
    before = Reranker.from_pretrained(checkpoint, device="cpu").compute_score(pairs, normalize=False)
    a, b = calibrate(checkpoint, dev, before, tmp_path)
    after = Reranker.from_pretrained(checkpoint, device="cpu").compute_score(pairs, normalize=False)
    # bf16 weights: the folded head is rounded, so the affine map holds to bf16 precision
    assert after == pytest.approx([a * x + b for x in before], abs=0.05 * max(1.0, abs(a)))
    record = json.loads((tmp_path / "calibration.json").read_text())
    assert record == {"a": a, "b": b, "pairs": 16, "positives": 8}  # unlabelled documents left out


def test_platt_refuses_perfectly_separated_labels() -> None:
    from turborank.distill.finish import platt

    with pytest.raises(ValueError, match="do not separate them"):
        platt(torch.tensor([-2.0, -1.0, 1.0, 2.0]), torch.tensor([0.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="both labels"):
        platt(torch.tensor([-2.0, 1.0]), torch.tensor([1.0, 1.0]))


def test_keep_reading_copies_the_declared_reading_and_nothing_else(tmp_path: Path) -> None:
    import shutil

    source, out = tmp_path / "source", tmp_path / "out"
    shutil.copytree(FIXTURE, source)
    shutil.copytree(FIXTURE, out)
    keep_reading(source, out)  # nothing declared: nothing added
    assert "turborank" not in json.loads((out / "config.json").read_text())
    declare_long_documents(source, "chunk", 192)
    keep_reading(source, out)
    config = json.loads((out / "config.json").read_text())
    assert config["turborank"] == {"long_documents": "chunk", "window_length": 192}
    assert {k: v for k, v in config.items() if k != "turborank"} == json.loads(
        (FIXTURE / "config.json").read_text()
    )
