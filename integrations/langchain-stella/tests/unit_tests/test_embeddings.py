"""StellaEmbeddings on a real tiny model, with sockets disabled."""

from __future__ import annotations

import math

import numpy as np
import pytest
from langchain_stella import StellaEmbeddings
from pydantic import ValidationError

from stella_rag import MODEL_ALIASES, SentenceEncoder


def test_construction_is_lazy_and_maps_aliases() -> None:
    emb = StellaEmbeddings(model_name="stella-dialogue-zh", device="cpu", batch_size=8)
    assert emb.model_name == "stella-dialogue-zh"
    assert emb.encoder.model_id == MODEL_ALIASES["stella-dialogue-zh"]
    assert emb.encoder.batch_size == 8
    assert not emb.encoder.is_loaded


def test_default_model_is_stella_large() -> None:
    assert StellaEmbeddings().encoder.model_id == "infgrad/stella-large-zh-v3-1792d"


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(ValidationError, match="model"):
        StellaEmbeddings(model="minilm")  # type: ignore[call-arg]


def test_bad_option_quotes_the_value() -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        StellaEmbeddings(batch_size=0)


def test_options_cannot_drift_from_the_encoder() -> None:
    emb = StellaEmbeddings(device="cpu")
    with pytest.raises(ValidationError):
        emb.device = "cuda"


def test_returns_python_floats(tiny_model: str) -> None:
    emb = StellaEmbeddings(model_name=tiny_model, device="cpu")
    vectors = emb.embed_documents(["the phone battery", "basketball"])
    query = emb.embed_query("basketball")
    assert len(vectors) == 2 and len(query) == 48
    assert all(type(x) is float for row in [*vectors, query] for x in row)
    assert math.isclose(float(np.linalg.norm(query)), 1.0, rel_tol=1e-5)
    assert emb.embed_documents([]) == []


def test_matches_the_core_encoder(tiny: SentenceEncoder, tiny_model: str) -> None:
    emb = StellaEmbeddings(model_name=tiny_model, device="cpu")
    texts = ["the phone battery", "why not", "最近去打篮球了吗"]
    np.testing.assert_allclose(emb.embed_documents(texts), tiny.encode_documents(texts), atol=1e-6)
    np.testing.assert_allclose(
        emb.embed_query(texts[1]), tiny.encode_queries(texts[1:2])[0], atol=1e-6
    )


def test_normalize_and_truncate_dim(tiny_model: str) -> None:
    raw = StellaEmbeddings(model_name=tiny_model, device="cpu", normalize=False)
    assert not math.isclose(float(np.linalg.norm(raw.embed_query("basketball"))), 1.0, rel_tol=1e-3)
    short = StellaEmbeddings(model_name=tiny_model, device="cpu", truncate_dim=8)
    vector = short.embed_query("basketball")
    assert len(vector) == 8
    assert math.isclose(float(np.linalg.norm(vector)), 1.0, rel_tol=1e-5)


def test_show_progress_gives_the_same_vectors(
    tiny_model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = [f"passage number {i} about the river" for i in range(7)]
    plain = StellaEmbeddings(model_name=tiny_model, device="cpu", batch_size=3)
    shown = StellaEmbeddings(model_name=tiny_model, device="cpu", batch_size=3, show_progress=True)
    np.testing.assert_allclose(
        shown.embed_documents(texts), plain.embed_documents(texts), atol=1e-6
    )
    assert "3/3" in capsys.readouterr().err  # 7 texts in chunks of 3


def test_bad_text_names_its_position(tiny_model: str) -> None:
    emb = StellaEmbeddings(model_name=tiny_model, device="cpu")
    with pytest.raises(TypeError, match="text at position 1 is None"):
        emb.embed_documents(["fine", None])  # type: ignore[list-item]


def test_shares_the_loaded_model_with_other_stella_users(tiny_model: str) -> None:
    first = StellaEmbeddings(model_name=tiny_model, device="cpu")
    second = StellaEmbeddings(model_name=tiny_model, device="cpu", batch_size=5)
    core = SentenceEncoder(tiny_model, device="cpu")
    first.embed_query("warm up")
    before = core.runner_stats()["forward_passes"]
    second.embed_documents(["a", "b"])
    assert core.runner_stats()["forward_passes"] > before
