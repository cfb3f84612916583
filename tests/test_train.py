"""Training a dialogue encoder: readers, augmentation, a real (tiny) training run, pairing."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from stella_rag import (
    ChromaStore,
    ConversationalRetriever,
    DialogueEncoder,
    EncoderMismatchError,
    SentenceEncoder,
    TrainingDataError,
)
from stella_rag._pairing import METADATA_FILE, read_info
from stella_rag.train import RewritePair, augment, parse_record, read_pairs

pytest.importorskip("datasets")

GOOD = {
    "id": "t1",
    "lang": "en",
    "category": "ellipsis",
    "turns": [
        {"role": "user", "text": "Is the Pelican Trail open in winter?"},
        {"role": "assistant", "text": "Yes, from December to March with chains required."},
        {"role": "user", "text": "How long is it?"},
    ],
    "rewrite": "How long is the Pelican Trail?",
    "positive": "The Pelican Trail is a 14 km loop with 600 m of climbing.",
    "negatives": ["The Pelican Trail is open all year; chains are required in winter."],
}


def _write(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return path


# ----------------------------------------------------------------------------------- readers
def test_reads_the_three_record_shapes(tmp_path: Path) -> None:
    card = {
        "dialogue": ["A: 最近去打网球了吗", "B: 没有", "A: 为什么"],
        "last_utterance_rewrite": "为什么最近没去打网球？",
    }
    canard = {
        "History": ["Who wrote the novel?", "Ada Prell wrote it in 1931."],
        "Question": "Was it her first?",
        "Rewrite": "Was the novel Ada Prell's first book?",
    }
    path = _write(
        tmp_path / "mixed.jsonl",
        [json.dumps(GOOD), json.dumps(card, ensure_ascii=False), json.dumps(canard)],
    )
    report = read_pairs(path)
    ours, stella, qrecc = report.pairs
    assert [t.role for t in ours.turns] == ["user", "assistant", "user"]
    assert ours.positive and ours.negatives and ours.source.endswith(":1")
    # The card's speaker of the last utterance is the user; the other speaker the assistant.
    assert [(t.role, t.text) for t in stella.turns] == [
        ("user", "最近去打网球了吗"),
        ("assistant", "没有"),
        ("user", "为什么"),
    ]
    assert stella.rewrite == "为什么最近没去打网球？"
    # The card's own example ends with B (the assistant); its rewrite keeps the speaker.
    own = parse_record(
        {
            "dialogue": ["A: 最近去打篮球了吗", "B: 没有"],
            "last_utterance_rewrite": "B: 我最近没有去打篮球",
        }
    )
    assert [t.role for t in own.turns] == ["user", "assistant"]
    assert [t.role for t in qrecc.turns] == ["user", "assistant", "user"]
    assert qrecc.turns[-1].text == "Was it her first?"
    assert report.summary()["pairs"] == 3


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"turns": [], "rewrite": "x"}, "'turns' must be a non-empty list"),
        ({"turns": GOOD["turns"]}, "missing the rewrite"),
        ({"turns": [{"role": "user", "text": 5}], "rewrite": "x"}, "turn 0 text must be a string"),
        ({"turns": GOOD["turns"], "rewrite": "  "}, "the rewrite is empty"),
        ({"turns": [{"role": "robot", "text": "hi"}], "rewrite": "x"}, "role must be 'user'"),
        (
            {"dialogue": "A: hi", "last_utterance_rewrite": "x"},
            "'dialogue' must be a non-empty list",
        ),
        ({"text": "hello"}, "unknown record shape"),
        ({"turns": GOOD["turns"][:2], "rewrite": "x"}, "last turn must be the user's"),
    ],
)
def test_each_bad_record_names_file_and_line(tmp_path: Path, record: dict, message: str) -> None:
    path = _write(tmp_path / "data.jsonl", [json.dumps(GOOD), json.dumps(record)])
    with pytest.raises(TrainingDataError, match=rf"data\.jsonl:2: .*{message}"):
        read_pairs(path)


def test_not_utf8_and_not_json_name_the_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "latin1.jsonl", [json.dumps(GOOD), '{"rewrite": "caf\xe9"}'.encode("latin-1")]
    )
    with pytest.raises(TrainingDataError, match=r"latin1\.jsonl:2: not UTF-8"):
        read_pairs(path)
    path = _write(tmp_path / "broken.jsonl", ["{not json"])
    with pytest.raises(TrainingDataError, match=r"broken\.jsonl:1: not valid JSON"):
        read_pairs(path)


def test_skip_bad_counts_and_keeps_the_rest(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "d.jsonl",
        [json.dumps(GOOD), "[1, 2]", json.dumps({"turns": []}), json.dumps(GOOD)],
    )
    report = read_pairs(path, skip_bad=True)
    assert len(report.pairs) == 2
    assert len(report.skipped) == 2 and report.skipped[0].startswith(f"{path}:2:")
    assert report.summary()["skipped"] == 2


def test_eval_folder_with_rewrites(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text(
        json.dumps({"id": "p1", "text": GOOD["positive"]}) + "\n"
    )
    case = {
        "id": "c1",
        "lang": "en",
        "category": "ellipsis",
        "turns": GOOD["turns"],
        "relevant": ["p1"],
    }
    (tmp_path / "dialogues.jsonl").write_text(json.dumps(case) + "\n")
    (tmp_path / "rewrites.jsonl").write_text(
        json.dumps({"id": "c1", "rewrite": GOOD["rewrite"]}) + "\n"
    )
    (pair,) = read_pairs(tmp_path).pairs
    assert pair.rewrite == GOOD["rewrite"] and pair.positive == GOOD["positive"]


def test_missing_sources_and_hub_offline_fail_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(TrainingDataError, match="no such file or folder"):
        read_pairs(tmp_path / "nope.jsonl")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TrainingDataError, match=r"no \.jsonl files"):
        read_pairs(empty)
    monkeypatch.setattr("stella_rag._models._hub_reachable", lambda: False)
    with pytest.raises(TrainingDataError, match="Hugging Face Hub cannot be reached"):
        read_pairs("someone/conversational-rewrites")


def test_shipped_data_reads_cleanly() -> None:
    report = read_pairs()
    summary = report.summary()
    assert summary["languages"].get("en", 0) >= 900 and summary["languages"].get("zh", 0) >= 270
    assert set(summary["categories"]) == {
        "ellipsis",
        "coreference",
        "topic_shift",
        "long_history",
        "distractor",
    }
    assert summary["with_passages"] == summary["pairs"]


# ------------------------------------------------------------------------------------ augment
def test_augment_variants() -> None:
    pairs = [parse_record({**GOOD, "id": f"e{i}", "rewrite": f"Question {i}?"}) for i in range(4)]
    pairs.append(parse_record({**GOOD, "id": "z", "lang": "zh", "rewrite": "问题？"}))
    out = augment(pairs, splices=2, shifts=2, seed=1)
    assert out[: len(pairs)] == pairs
    assert out == augment(pairs, splices=2, shifts=2, seed=1)  # deterministic
    shifts = [p for p in out if p.source.startswith("shift:")]
    assert shifts and all(p.turns[-1].text == p.rewrite for p in shifts)
    assert all(p.category == "topic_shift" for p in shifts)
    splices = [p for p in out if p.source.startswith("splice:")]
    assert all(
        (len(p.turns) > 3 and p.turns[-3:] == pairs[0].turns) or p.turns[-1].role == "user"
        for p in splices
    )
    # The lone Chinese pair has no same-language donor: no splice or shift mixes languages.
    assert not [p for p in splices + shifts if p.lang == "zh"]
    for p in out:
        roles = [t.role for t in p.turns]
        assert roles[-1] == "user" and all(a != b for a, b in itertools.pairwise(roles))


# ----------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def pairs() -> list[RewritePair]:
    topics = ["trail", "museum", "ferry", "bakery", "library", "stadium", "camera", "kettle"]
    out = []
    for i, topic in enumerate(topics):
        out.append(
            parse_record(
                {
                    "id": f"p{i}",
                    "lang": "en",
                    "turns": [
                        {"role": "user", "text": f"tell me about the {topic} near the river"},
                        {"role": "assistant", "text": f"the {topic} is old and popular"},
                        {"role": "user", "text": "and the price?"},
                    ],
                    "rewrite": f"price of the {topic}",
                    "positive": f"the {topic} costs ten",
                    "negatives": [f"the {topic} opens at nine"],
                }
            )
        )
    return out


@pytest.fixture(scope="module")
def trained(tiny_model: str, pairs: list[RewritePair], tmp_path_factory: pytest.TempPathFactory):
    from stella_rag.train import TrainConfig, train_dialogue_encoder

    out = tmp_path_factory.mktemp("trained")
    report = train_dialogue_encoder(
        SentenceEncoder(tiny_model, device="cpu"),
        out,
        pairs,
        # A light in-batch term: the test below checks the distillation, which a heavy term
        # on 4-example batches of a random tiny model would outweigh.
        config=TrainConfig(
            epochs=8,
            batch_size=4,
            learning_rate=3e-3,
            augment=False,
            save_steps=4,
            freeze_layers=0,
            contrastive_weight=0.1,
        ),
        progress=False,
    )
    return out, report


def _mean_cos(model_dir: str, general: str, pairs: list[RewritePair]) -> float:
    from sentence_transformers import SentenceTransformer

    teacher = SentenceEncoder(general, device="cpu")
    formatter = DialogueEncoder(general=teacher, strategy="dialogue", cache_size=0)
    texts = [formatter.format(list(p.turns)) for p in pairs]
    student = SentenceTransformer(model_dir, device="cpu", trust_remote_code=True).encode(
        texts, normalize_embeddings=True
    )
    target = teacher.encode_queries([p.rewrite for p in pairs])
    return float(np.mean(np.sum(student * target, axis=1)))


@pytest.mark.slow
def test_tiny_model_trains_and_moves_toward_the_rewrites(trained, tiny_model: str, pairs) -> None:
    out, report = trained
    assert report.steps == 16 and not report.interrupted
    assert report.losses[-1][1] < report.losses[0][1]
    # The student's distance to the rewrites' vectors shrinks well below the untrained model's.
    before = 1 - _mean_cos(tiny_model, tiny_model, pairs)
    after = 1 - _mean_cos(str(out), tiny_model, pairs)
    assert after < 0.7 * before
    # No training hook is saved: plain sentence-transformers modules, and last-turn pooling.
    modules = json.loads((out / "modules.json").read_text())
    types = [m["type"] for m in modules]
    assert "stella_rag.modules.LastTurnPooling" in types
    assert all(t.startswith("sentence_transformers.") for t in types if "Pooling" not in t)
    assert not (out / "checkpoints").exists()


@pytest.mark.slow
def test_metadata_round_trip_and_pairing(
    trained, tiny_model: str, tiny_dialogue_model: str, tmp_path: Path
) -> None:
    out, _ = trained
    info = read_info(out)
    assert info is not None
    assert info.general_model == SentenceEncoder(tiny_model).model_id
    assert info.separator == "[SEP]" and info.roles == {"user": "A", "assistant": "B"}
    assert info.max_tokens == 128 and len(info.general_fingerprint) == 64
    assert info.training["pairs_used"] == 8
    encoder = DialogueEncoder(str(out))
    assert encoder.general.model_id == info.general_model  # paired from the metadata
    assert encoder.strategy.name == "dialogue" and encoder.max_tokens == 128
    # A copy of the general model elsewhere has the same weights: it pairs by fingerprint.
    import shutil

    copy = shutil.copytree(tiny_model, tmp_path / "copy")
    DialogueEncoder(str(out), general=str(copy))
    with pytest.raises(EncoderMismatchError, match="was trained against the general model"):
        DialogueEncoder(str(out), general=tiny_dialogue_model)


@pytest.mark.slow
def test_trained_model_refuses_a_store_of_another_encoder(
    trained, tiny_model: str, tiny_dialogue_model: str, tmp_path: Path
) -> None:
    out, _ = trained
    other = ChromaStore(
        "docs", encoder=SentenceEncoder(tiny_dialogue_model), path=str(tmp_path / "db")
    )
    other.add(["the trail costs ten"])
    with pytest.raises(EncoderMismatchError):
        ConversationalRetriever(other, DialogueEncoder(str(out)))
    same = ChromaStore("docs2", encoder=SentenceEncoder(tiny_model), path=str(tmp_path / "db"))
    same.add(["the trail costs ten", "the kettle opens at nine"])
    hits = ConversationalRetriever(same, DialogueEncoder(str(out)), k=1).retrieve(
        [
            ("user", "tell me about the trail"),
            ("assistant", "it is old"),
            ("user", "and the price?"),
        ]
    )
    assert len(hits) == 1


@pytest.mark.slow
def test_interrupt_leaves_a_checkpoint_that_a_rerun_resumes(
    tiny_model: str, pairs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stella_rag.train import TrainConfig, _trainer, train_dialogue_encoder

    real = _trainer._interrupt_callback

    def interrupt_after_three_steps():
        callback = real()
        on_step_end = callback.on_step_end

        def step_end(args, state, control, **kwargs):
            if state.global_step == 3:
                callback.interrupted = True  # what Ctrl-C sets
            return on_step_end(args, state, control, **kwargs)

        callback.on_step_end = step_end
        return callback

    config = TrainConfig(epochs=2, batch_size=4, augment=False, save_steps=100)
    monkeypatch.setattr(_trainer, "_interrupt_callback", interrupt_after_three_steps)
    first = train_dialogue_encoder(tiny_model, tmp_path, pairs, config=config, progress=False)
    assert first.interrupted and first.steps == 3
    assert (tmp_path / "checkpoints" / "checkpoint-3").is_dir()
    assert read_info(tmp_path) is None  # no half-trained model is published
    monkeypatch.setattr(_trainer, "_interrupt_callback", real)
    second = train_dialogue_encoder(tiny_model, tmp_path, pairs, config=config, progress=False)
    assert second.resumed_from and second.resumed_from.endswith("checkpoint-3")
    assert second.steps == 4 and not second.interrupted
    assert (tmp_path / METADATA_FILE).is_file()


@pytest.mark.slow
def test_cli_train_dialogue(tiny_model: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from stella_rag.cli import app

    data = _write(tmp_path / "pairs.jsonl", [json.dumps({**GOOD, "id": f"g{i}"}) for i in range(6)])
    out = tmp_path / "model"
    result = CliRunner().invoke(
        app,
        [
            "train-dialogue",
            "--general",
            tiny_model,
            "--out",
            str(out),
            "--data",
            str(data),
            "--batch-size",
            "4",
            "--max-steps",
            "2",
            "--no-progress",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["steps"] == 2 and report["pairs"] == 6
    assert read_info(out) is not None
    bad = _write(tmp_path / "bad.jsonl", [json.dumps({"turns": []})])
    result = CliRunner().invoke(
        app, ["train-dialogue", "--general", tiny_model, "--out", str(out), "--data", str(bad)]
    )
    assert result.exit_code == 1
    assert "bad.jsonl:1:" in result.stderr and "--skip-bad" in result.stderr


@pytest.mark.slow
def test_cli_eval_with_a_trained_model(
    tiny_model: str, tiny_trained_dialogue_model: str, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from stella_rag.cli import app

    corpus = [
        {"id": f"p{i}", "text": f"the {t} costs ten"} for i, t in enumerate(["trail", "ferry"])
    ]
    case = {"id": "c1", "turns": GOOD["turns"], "relevant": ["p0"], "category": "ellipsis"}
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(c) + "\n" for c in corpus))
    (tmp_path / "dialogues.jsonl").write_text(json.dumps(case) + "\n")
    result = CliRunner().invoke(
        app,
        ["eval", "--corpus", str(tmp_path / "corpus.jsonl"), "--dialogues",
         str(tmp_path / "dialogues.jsonl"), "--model", tiny_model,
         "--dialogue-model", tiny_trained_dialogue_model, "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dialogue_model"] == str(Path(tiny_trained_dialogue_model).resolve())


@pytest.mark.slow
def test_trained_model_runs_on_the_onnx_int8_fast_path(
    tiny_trained_dialogue_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("STELLA_RAG_CACHE", str(tmp_path))
    chats = [
        [("user", "tell me about the ferry"), ("assistant", "it is old"), ("user", "price?")],
        [("user", "and the trail, the long one near the river with the old bridge?")],
    ]
    torch_vectors = DialogueEncoder(tiny_trained_dialogue_model).encode_many(chats)
    fast = DialogueEncoder(tiny_trained_dialogue_model, backend="onnx-int8", device="cpu")
    fast_vectors = fast.encode_many(chats)  # two lengths: the exported graph is not fixed-size
    assert np.all(np.sum(torch_vectors * fast_vectors, axis=1) > 0.95)


@pytest.mark.slow
def test_router_export_routes_queries_to_the_dialogue_model(
    tiny_model: str, tiny_trained_dialogue_model: str, tmp_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    from stella_rag.train import save_router

    path = save_router(tiny_trained_dialogue_model, tiny_model, tmp_path / "router")
    router = SentenceTransformer(str(path), device="cpu", trust_remote_code=True)
    chat = DialogueEncoder(tiny_trained_dialogue_model).format(GOOD["turns"])
    dialogue = SentenceEncoder(tiny_trained_dialogue_model, trust_remote_code=True)
    general = SentenceEncoder(tiny_model)
    query = router.encode_query([chat], normalize_embeddings=True)
    document = router.encode_document([GOOD["positive"]], normalize_embeddings=True)
    assert np.allclose(query, dialogue.encode_queries([chat]), atol=1e-5)
    assert np.allclose(document, general.encode_documents([GOOD["positive"]]), atol=1e-5)


def test_no_pairs_is_a_clear_error(tiny_model: str, tmp_path: Path) -> None:
    from stella_rag.train import train_dialogue_encoder

    with pytest.raises(TrainingDataError, match="no training pairs"):
        train_dialogue_encoder(tiny_model, tmp_path, [], progress=False)


def test_the_command_line_defaults_are_the_recipes_defaults() -> None:
    """`stella-rag train-dialogue` with no options trains exactly `TrainConfig()`."""
    import dataclasses
    import inspect

    from stella_rag._cli_train import train_dialogue
    from stella_rag.train import TrainConfig

    options = inspect.signature(train_dialogue).parameters
    config = TrainConfig()
    shared = [f.name for f in dataclasses.fields(TrainConfig) if f.name in options]
    assert len(shared) >= 10
    for name in shared:
        assert options[name].default == getattr(config, name), name
