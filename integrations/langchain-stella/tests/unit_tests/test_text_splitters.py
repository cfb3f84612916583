"""StellaTextSplitter, and the warning when StellaEmbeddings would cut texts (issue 13)."""

from __future__ import annotations

import warnings

import pytest
from langchain_core.documents import Document
from langchain_stella import StellaEmbeddings, StellaTextSplitter

from stella_rag import StellaRagWarning

LONG = " ".join(f"Sentence {i} tells how the ferry crosses the river at noon." for i in range(60))


def test_embeddings_warn_once_when_texts_are_cut(tiny_model: str) -> None:
    embeddings = StellaEmbeddings(model_name=tiny_model, device="cpu")
    with pytest.warns(StellaRagWarning) as caught:
        embeddings.embed_documents(["short", LONG])
    [warning] = [w for w in caught if issubclass(w.category, StellaRagWarning)]
    message = str(warning.message)
    assert "1 of 2 text(s) are longer than the 128 tokens" in message
    assert "StellaTextSplitter" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embeddings.embed_documents([LONG])  # once per adapter


def test_texts_that_fit_make_no_warning(tiny_model: str) -> None:
    embeddings = StellaEmbeddings(model_name=tiny_model, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embeddings.embed_documents(["The ferry crosses at noon.", "短文本"])


def test_the_splitter_makes_chunks_the_model_reads_whole(tiny_model: str) -> None:
    embeddings = StellaEmbeddings(model_name=tiny_model, device="cpu")
    splitter = StellaTextSplitter(embeddings, overlap_tokens=8)
    encoder = embeddings.encoder
    assert splitter._chunk_size == encoder.max_seq_length - encoder.count_tokens([""])[0]
    docs = splitter.split_documents([Document(page_content=LONG, metadata={"source": "a"})])
    assert len(docs) > 1
    assert all(d.metadata == {"source": "a"} for d in docs)
    counts = encoder.count_tokens([d.page_content for d in docs])
    assert max(counts) <= encoder.max_seq_length
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embeddings.embed_documents([d.page_content for d in docs])
    small = StellaTextSplitter(tiny_model, chunk_tokens=32, overlap_tokens=4)
    assert max(encoder.count_tokens(small.split_text(LONG), special_tokens=False)) <= 32
    with pytest.raises(ValueError, match="use at most"):
        StellaTextSplitter(embeddings, chunk_tokens=10_000)
