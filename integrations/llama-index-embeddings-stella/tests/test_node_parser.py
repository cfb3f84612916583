"""StellaNodeParser, and the warning when StellaEmbedding would cut nodes (issue 13)."""

from __future__ import annotations

import warnings

import pytest
from llama_index.core import Document
from llama_index.embeddings.stella import StellaEmbedding, StellaNodeParser

from stella_rag import StellaRagWarning

LONG = " ".join(f"Sentence {i} tells how the ferry crosses the river at noon." for i in range(60))


def test_embedding_warns_once_when_nodes_are_cut(tiny_model: str) -> None:
    embed = StellaEmbedding(tiny_model, device="cpu")
    with pytest.warns(StellaRagWarning) as caught:
        embed.get_text_embedding_batch(["short", LONG])
    [warning] = [w for w in caught if issubclass(w.category, StellaRagWarning)]
    assert "1 of 2 text(s) are longer than the 128 tokens" in str(warning.message)
    assert "StellaNodeParser" in str(warning.message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embed.get_text_embedding(LONG)


async def test_async_embedding_warns_too(tiny_model: str) -> None:
    embed = StellaEmbedding(tiny_model, device="cpu")
    with pytest.warns(StellaRagWarning, match="StellaNodeParser"):
        await embed.aget_text_embedding_batch([LONG])


def test_node_parser_sizes_nodes_to_the_model(tiny_model: str) -> None:
    embed = StellaEmbedding(tiny_model, device="cpu")
    parser = StellaNodeParser.from_defaults(embed, overlap_tokens=8)
    encoder = embed.encoder
    document = Document(text=LONG, metadata={"source": "ferry.txt"})
    nodes = parser.get_nodes_from_documents([document])
    assert len(nodes) > 1
    # what LlamaIndex embeds is the metadata and the text: that must fit too
    embedded = [n.get_content(metadata_mode="embed") for n in nodes]  # type: ignore[arg-type]
    assert max(encoder.count_tokens(embedded)) <= encoder.max_seq_length
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embed.get_text_embedding_batch(embedded)
    assert parser.chunk_tokens == encoder.max_seq_length - encoder.count_tokens([""])[0]
    assert StellaNodeParser(tiny_model, chunk_tokens=32).chunk_tokens == 32
