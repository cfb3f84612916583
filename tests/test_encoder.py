"""SentenceEncoder on real tiny models and on the offline MiniLM."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from stella_rag import ModelNotAvailableError, SentenceEncoder
from stella_rag._models import load_model

TEXTS = [
    "the phone battery lasts a day",
    "你好 我 去 打 篮 球",
    "price",
    "what is the price of the new phone and how long does the battery last " * 3,
]


def test_dense_head_gives_its_own_dimension(tiny: SentenceEncoder) -> None:
    vectors = tiny.encode_documents(TEXTS)
    assert tiny.dim == 48
    assert vectors.shape == (4, 48)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_matches_plain_sentence_transformers(tiny: SentenceEncoder) -> None:
    """Length-sorted, token-budget batches give the same vectors as a plain encode."""
    model = load_model(tiny.model_id, device="cpu").model
    expected = model.encode(TEXTS, normalize_embeddings=True, batch_size=2)
    np.testing.assert_allclose(tiny.encode_documents(TEXTS), expected, atol=1e-5)


def test_minilm_matches_sentence_transformers(minilm: SentenceEncoder) -> None:
    texts = ["A man is eating food.", "Someone is playing basketball.", "短文本"]
    model = load_model("minilm", device="cpu").model
    expected = model.encode(texts, normalize_embeddings=True)
    got = minilm.encode_documents(texts)
    assert got.shape == (3, 384)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_same_model_loaded_once(tiny_model: str, tiny: SentenceEncoder) -> None:
    other = SentenceEncoder(tiny_model, device="cpu", normalize=False)
    other.encode_documents(["x"])
    tiny.encode_documents(["x"])
    assert other._load() is tiny._load()
    assert load_model(tiny_model, device="cpu") is tiny._load()


def test_empty_input_loads_nothing(tiny_model: str) -> None:
    fresh = SentenceEncoder(tiny_model, device="cpu", precision="bfloat16")
    out = fresh.encode_documents([])
    assert out.shape[0] == 0
    assert not fresh.is_loaded


def test_truncate_dim_and_unnormalized(tiny_model: str) -> None:
    short = SentenceEncoder(tiny_model, device="cpu", truncate_dim=16)
    assert short.dim == 16
    vectors = short.encode_documents(TEXTS)
    assert vectors.shape == (4, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    raw = SentenceEncoder(tiny_model, device="cpu", normalize=False).encode_documents(TEXTS)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    with pytest.raises(ValueError, match="truncate_dim=99 is larger than the 48"):
        SentenceEncoder(tiny_model, device="cpu", truncate_dim=99).load()


def test_max_seq_length_truncates(tiny_model: str, tiny: SentenceEncoder) -> None:
    short = SentenceEncoder(tiny_model, device="cpu", max_seq_length=8)
    long_text = "the phone battery " * 50
    a = short.encode_documents([long_text])
    b = short.encode_documents([long_text + " basketball tennis injury"])
    np.testing.assert_allclose(a, b, atol=1e-6)  # only the first 8 tokens count
    assert not np.allclose(tiny.encode_documents([long_text]), a)


def test_bfloat16_on_cpu(tiny_model: str, tiny: SentenceEncoder) -> None:
    half = SentenceEncoder(tiny_model, device="cpu", precision="bfloat16")
    assert half.precision == "bfloat16"
    got = half.encode_documents(TEXTS)
    assert got.dtype == np.float32
    cos = np.sum(got * tiny.encode_documents(TEXTS), axis=1)
    assert np.all(cos > 0.98)


def test_defaults_on_cpu(tiny_model: str) -> None:
    enc = SentenceEncoder(tiny_model)
    if not torch.cuda.is_available():
        assert enc.device in ("cpu", "mps")
        assert enc.precision == "float32"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_defaults_to_float16(tiny_model: str) -> None:
    enc = SentenceEncoder(tiny_model)
    assert enc.device.startswith("cuda")
    assert enc.precision == "float16"
    assert enc.encode_documents(TEXTS).shape == (4, 48)


async def test_async_matches_sync(tiny: SentenceEncoder) -> None:
    got = await tiny.aencode_queries(TEXTS)
    np.testing.assert_allclose(got, tiny.encode_queries(TEXTS), atol=1e-6)


def test_count_and_keep_last_tokens(tiny: SentenceEncoder) -> None:
    assert tiny.count_tokens(["a b"]) == [4]  # [CLS] a b [SEP]
    assert tiny.count_tokens(["a b"], special_tokens=False) == [2]
    assert tiny.keep_last_tokens("old phone new phone", 2) == "new phone"
    assert tiny.keep_last_tokens("phone", 5) == "phone"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"max_seq_length": -1}, "max_seq_length must be a positive integer"),
        ({"precision": "int4"}, "precision must be 'float32', 'float16' or 'bfloat16'"),
    ],
)
def test_bad_options(tiny_model: str, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SentenceEncoder(tiny_model, **kwargs)  # type: ignore[arg-type]


def test_unreachable_model_fails_fast(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    from stella_rag.testing import free_port

    # A hub address where nothing listens: the same code path as no network, on any machine.
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")
    start = time.monotonic()
    with pytest.raises(ModelNotAvailableError) as info:
        SentenceEncoder("infgrad/stella-base-zh-v3-1792d", cache_folder=str(tmp_path)).load()
    assert time.monotonic() - start < 30  # not minutes of retries
    message = str(info.value)
    assert "infgrad/stella-base-zh-v3-1792d" in message
    assert str(tmp_path) in message
    assert "minilm" in message
    assert info.value.model == "infgrad/stella-base-zh-v3-1792d"


def test_alias_resolves_to_hub_id() -> None:
    assert SentenceEncoder("stella-large-zh").model_id == "infgrad/stella-large-zh-v3-1792d"
    assert SentenceEncoder("stella-dialogue-zh").model_id == (
        "infgrad/stella-dialogue-large-zh-v3-1792d"
    )
    assert SentenceEncoder("minilm").model_id == "sentence-transformers/all-MiniLM-L6-v2"
