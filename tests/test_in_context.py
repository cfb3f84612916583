"""The one-pass ``in_context`` strategy: the whole chat read once, the last turn's tokens pooled.

Checked against sentence-transformers' own token embeddings (no stella-rag code in the
reference), on a tiny BERT with a Dense layer after the pooling and on the offline MiniLM.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from stella_rag import DialogueEncoder, SentenceEncoder
from stella_rag.testing import FakeEncoder

CHAT = [
    ("user", "my sister likes the brisa phone but i prefer the quellon arc"),
    ("assistant", "the quellon arc battery lasts about 30 hours"),
    ("user", "and the price"),
]


def reference(encoder: SentenceEncoder, text: str, separator: str = "[SEP]") -> np.ndarray:
    """Mean of the token vectors after the last separator, then the modules after Pooling."""
    from sentence_transformers.sentence_transformer.modules import Pooling

    model = encoder._load().model
    features = model.tokenize([text])
    ids = features["input_ids"][0].tolist()
    sep = model.tokenizer(separator, add_special_tokens=False)["input_ids"]
    starts = [i for i in range(len(ids) - len(sep)) if ids[i : i + len(sep)] == sep]
    starts = [i for i in starts if i + len(sep) <= len(ids) - 1 - 1]  # not the closing [SEP]
    first = starts[-1] + len(sep) if starts else 0
    import torch

    with torch.inference_mode():
        out = dict(features)
        modules = list(model)
        at = next(i for i, m in enumerate(modules) if isinstance(m, Pooling))
        for module in modules[:at]:
            out = module(out)
        tokens = out["token_embeddings"][0, first:]
        out["sentence_embedding"] = tokens.mean(dim=0, keepdim=True)
        for module in modules[at + 1 :]:
            out = module(out)
    vector = out["sentence_embedding"][0].numpy().astype(np.float64)
    return vector / np.linalg.norm(vector)


def test_encode_last_turns_matches_sentence_transformers_token_vectors(
    tiny: SentenceEncoder,
) -> None:
    text = "A: where is the merrow tower[SEP]B: in brackwater[SEP]A: how tall is it"
    got = tiny.encode_last_turns([text])[0]
    np.testing.assert_allclose(got, reference(tiny, text), atol=1e-5)
    # It is not the whole text's vector, nor the last turn's alone.
    assert not np.allclose(got, tiny.encode_queries([text])[0], atol=1e-3)
    assert not np.allclose(got, tiny.encode_queries(["A: how tall is it"])[0], atol=1e-3)


def test_a_text_without_a_separator_is_pooled_whole(tiny: SentenceEncoder) -> None:
    text = "A: how tall is the merrow tower"
    np.testing.assert_allclose(
        tiny.encode_last_turns([text]), tiny.encode_queries([text]), atol=1e-5
    )


def test_the_history_changes_the_vector_of_the_same_last_turn(tiny: SentenceEncoder) -> None:
    a, b = tiny.encode_last_turns(
        [
            "A: the brisa m3 phone[SEP]A: and the price",
            "A: a trip to brackwater[SEP]A: and the price",
        ]
    )
    assert float(a @ b) < 0.9999


def test_pooled_and_plain_requests_in_flight_together_are_kept_apart(
    tiny: SentenceEncoder,
) -> None:
    texts = [f"A: question {i} about towers[SEP]B: answer {i}[SEP]A: and {i}?" for i in range(40)]
    pooled, plain = tiny.encode_last_turns(texts), tiny.encode_queries(texts)
    with ThreadPoolExecutor(8) as pool:
        futures = [
            pool.submit(tiny.encode_last_turns if i % 2 else tiny.encode_queries, texts)
            for i in range(16)
        ]
        results = [f.result() for f in futures]
    for i, result in enumerate(results):
        np.testing.assert_allclose(result, pooled if i % 2 else plain, atol=1e-5)


def test_dialogue_encoder_in_context_is_one_pass_over_the_formatted_chat(
    tiny: SentenceEncoder,
) -> None:
    encoder = DialogueEncoder(general=tiny, strategy="in_context")
    explained = encoder.explain(CHAT)
    assert explained.texts == (encoder.format(CHAT),)
    before = tiny.runner_stats()["forward_passes"]
    vector = encoder.encode(CHAT)
    assert tiny.runner_stats()["forward_passes"] == before + 1
    np.testing.assert_allclose(vector, reference(tiny, encoder.format(CHAT)), atol=1e-5)


def test_the_cache_keeps_vectors_of_the_two_poolings_apart(tiny: SentenceEncoder) -> None:
    encoder = DialogueEncoder(general=tiny, strategy="dialogue")
    whole = encoder.encode(CHAT)
    encoder.strategy = DialogueEncoder(general=tiny, strategy="in_context").strategy
    in_context = encoder.encode(CHAT)  # same text as the "dialogue" strategy's: not reused
    np.testing.assert_allclose(in_context, reference(tiny, encoder.format(CHAT)), atol=1e-5)
    assert not np.allclose(whole, in_context, atol=1e-3)


def test_in_context_needs_an_encoder_that_can_pool_by_turn(
    tiny_model_40d: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match=r"in_context.*SentenceEncoder.*FakeEncoder"):
        DialogueEncoder(general=FakeEncoder(), strategy="in_context")
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("STELLA_RAG_CACHE", str(tmp_path))
    # Not tiny_model: its onnx-int8 copy, once loaded, is shared by the whole session.
    fast = SentenceEncoder(tiny_model_40d, device="cpu", backend="onnx-int8")
    with pytest.raises(ValueError, match="onnx-int8 graph has the pooling built in"):
        DialogueEncoder(general=fast, strategy="in_context").encode(CHAT)


@pytest.mark.parametrize("separator", ["", 3])
def test_a_bad_separator_is_refused(tiny: SentenceEncoder, separator: object) -> None:
    with pytest.raises(ValueError, match="separator"):
        tiny.encode_last_turns(["A: hi"], separator)  # type: ignore[arg-type]


def test_minilm_in_context_resolves_the_ellipsis_where_the_last_turn_alone_cannot(
    minilm: SentenceEncoder,
) -> None:
    chat = [
        ("user", "My sister swears by her Brisa M3, but I'm leaning toward the Quellon Arc 5."),
        ("assistant", "The Quellon Arc 5 battery lasts about 30 hours of mixed use."),
        ("user", "And how much does it cost?"),
    ]
    docs = minilm.encode_documents(
        [
            "The Quellon Arc 5 phone launched at 579 US dollars.",
            "Lemon tart needs a cold butter pastry and a slow oven.",
        ]
    )
    in_context = DialogueEncoder(general=minilm, strategy="in_context").encode(chat)
    last = DialogueEncoder(general=minilm, strategy="last_turn").encode(chat)
    assert float(docs[0] @ in_context) > float(docs[1] @ in_context)
    assert float(docs[0] @ in_context) - float(docs[0] @ last) > 0.05
