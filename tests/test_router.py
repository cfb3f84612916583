"""Query and document sides take sentence-transformers' own paths: prompts and Router routes."""

from __future__ import annotations

import numpy as np
import pytest

from stella_rag import SentenceEncoder

TEXTS = ["is the museum open on monday", "the battery lasts two days", "we play basketball"]


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def router_model(
    tiny_model: str, tiny_dialogue_model: str, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A tiny Router model: queries through one BERT, documents through another, and a
    ``passage`` prompt (no ``document`` one) that the document side must fall back to."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Router

    query_side = SentenceTransformer(tiny_model, device="cpu")
    document_side = SentenceTransformer(tiny_dialogue_model, device="cpu")
    router = Router.for_query_document(
        query_modules=list(query_side), document_modules=list(document_side)
    )
    model = SentenceTransformer(
        modules=[router], device="cpu", prompts={"query": "", "passage": "passage: "}
    )
    path = tmp_path_factory.mktemp("models") / "tiny-router"
    model.save(str(path), create_model_card=False)
    return str(path)


def test_each_side_takes_its_route(router_model: str, tiny_model: str) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(router_model, device="cpu")
    encoder = SentenceEncoder(router_model, device="cpu")
    queries = encoder.encode_queries(TEXTS)
    documents = encoder.encode_documents(TEXTS)
    np.testing.assert_allclose(queries, _unit(reference.encode_query(TEXTS)), atol=1e-5)
    np.testing.assert_allclose(documents, _unit(reference.encode_document(TEXTS)), atol=1e-5)
    # the routes really differ: the query side is the first BERT, on the texts as they are
    assert float(np.abs(queries - documents).max()) > 0.1
    plain = SentenceTransformer(tiny_model, device="cpu").encode(TEXTS)
    np.testing.assert_allclose(queries, _unit(plain), atol=1e-5)


@pytest.mark.parametrize(
    ("prompts", "query", "document"),
    [
        ({"query": "q: ", "passage": "p: ", "corpus": "c: "}, "q: ", "p: "),
        ({"corpus": "c: "}, "", "c: "),
        ({"document": "d: ", "passage": "p: "}, "", "d: "),
        ({"query": "", "document": ""}, "", ""),
    ],
)
def test_prompts_fall_back_as_in_sentence_transformers(
    router_model: str, prompts: dict[str, str], query: str, document: str
) -> None:
    """``query`` for queries; ``document``, else ``passage``, else ``corpus`` for documents."""
    encoder = SentenceEncoder(router_model, device="cpu")
    model = encoder.load()._load().model
    saved = dict(model.prompts)
    model.prompts = dict(prompts)
    try:
        assert (encoder._prompt("query"), encoder._prompt("document")) == (query, document)
        np.testing.assert_allclose(
            encoder.encode_documents(TEXTS), _unit(model.encode_document(TEXTS)), atol=1e-5
        )
        np.testing.assert_allclose(
            encoder.encode_queries(TEXTS), _unit(model.encode_query(TEXTS)), atol=1e-5
        )
    finally:
        model.prompts = saved


async def test_async_sides_take_their_routes(router_model: str) -> None:
    encoder = SentenceEncoder(router_model, device="cpu")
    np.testing.assert_allclose(
        await encoder.aencode_queries(TEXTS), encoder.encode_queries(TEXTS), atol=1e-6
    )
    np.testing.assert_allclose(
        await encoder.aencode_documents(TEXTS), encoder.encode_documents(TEXTS), atol=1e-6
    )


def test_tokenizer_of_a_router_model(router_model: str) -> None:
    encoder = SentenceEncoder(router_model, device="cpu")
    assert encoder.count_tokens(["a b"]) == [4]  # [CLS] a b [SEP], the query route's tokenizer
