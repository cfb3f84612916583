"""stella_rag.modules.LastTurnPooling: only the last turn's tokens are pooled, in context."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stella_rag import DialogueEncoder, SentenceEncoder
from stella_rag.modules import LastTurnPooling, last_turn_mask


def test_mask_starts_after_the_last_inner_separator() -> None:
    # [CLS] a b [SEP] c d [SEP] e [SEP](end) [PAD]; the separator id is also the end token's.
    ids = torch.tensor([[101, 5, 6, 102, 7, 8, 102, 9, 102, 0], [101, 5, 6, 102, 0, 0, 0, 0, 0, 0]])
    mask = torch.tensor([[1] * 9 + [0], [1] * 4 + [0] * 6])
    out = last_turn_mask(ids, mask, [102])
    assert out[0].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 1, 0]
    assert out[1].tolist() == mask[1].tolist()  # one turn: the whole text


def test_multi_token_separator() -> None:
    ids = torch.tensor([[0, 5, 31, 32, 33, 6, 7, 2]])  # a separator of three tokens, then "6 7"
    mask = torch.ones_like(ids)
    assert last_turn_mask(ids, mask, [31, 32, 33]).tolist() == [[0, 0, 0, 0, 0, 1, 1, 1]]


def test_pooling_reads_the_last_turn_in_context(tiny_model: str) -> None:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(tiny_model, device="cpu")
    name, pooling = next((n, m) for n, m in st.named_children() if "Pooling" in type(m).__name__)
    st._modules[name] = LastTurnPooling.from_pooling(pooling, st.tokenizer, "[SEP]")
    formatter = DialogueEncoder(general=SentenceEncoder(tiny_model), strategy="dialogue")
    a = formatter.format([("user", "the red kettle"), ("assistant", "yes"), ("user", "price")])
    b = formatter.format([("user", "the blue ferry"), ("assistant", "no"), ("user", "price")])
    va, vb = st.encode([a, b])
    # The same last turn, different histories: different vectors (context is read)...
    assert not np.allclose(va, vb, atol=1e-4)
    # ...but closer to each other than whole-chat means are (only the last turn is pooled).
    plain = SentenceTransformer(tiny_model, device="cpu").encode([a, b])
    cos = lambda x, y: float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))  # noqa: E731
    assert cos(va, vb) > cos(*plain)


def test_saved_and_loaded_with_its_separator(tiny_model: str, tmp_path) -> None:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(tiny_model, device="cpu")
    name, pooling = next((n, m) for n, m in st.named_children() if "Pooling" in type(m).__name__)
    st._modules[name] = LastTurnPooling.from_pooling(pooling, st.tokenizer, "[SEP]")
    st.save(str(tmp_path))
    with pytest.raises(ValueError, match="trust_remote_code"):
        SentenceTransformer(str(tmp_path), device="cpu")
    loaded = SentenceTransformer(str(tmp_path), device="cpu", trust_remote_code=True)
    module = next(m for m in loaded.children() if isinstance(m, LastTurnPooling))
    assert module.separator_ids == [st.tokenizer.sep_token_id]
