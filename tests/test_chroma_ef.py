"""StellaEmbeddingFunction against real chromadb: embedded and a real server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings
from chromadb.utils.embedding_functions import known_embedding_functions

from stella_rag import SentenceEncoder
from stella_rag.chroma import StellaEmbeddingFunction
from stella_rag.testing import ChromaServer

DOCS = {
    "museum": "the museum is closed on monday",
    "phone": "the phone battery has a new price",
    "ball": "we play basketball by the river",
}


def _model(ef: Any) -> Any:
    """The loaded sentence-transformers object behind an embedding function."""
    return ef.encoder._load().model


@pytest.fixture(scope="module")
def ef(tiny_model: str) -> StellaEmbeddingFunction:
    return StellaEmbeddingFunction(tiny_model, device="cpu")


@pytest.fixture(scope="module")
def prompted_model(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny model with a query prompt, so the two sides give different vectors."""
    path = tmp_path_factory.mktemp("prompted") / "model"
    shutil.copytree(tiny_model, path)
    config_file = path / "config_sentence_transformers.json"
    config = json.loads(config_file.read_text())
    config["prompts"] = {"query": "question: ", "document": ""}
    config_file.write_text(json.dumps(config))
    return str(path)


def _client(path: Path) -> Any:
    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


def test_name_is_our_own_and_registered() -> None:
    assert StellaEmbeddingFunction.name() == "stella_rag"
    assert known_embedding_functions["stella_rag"] is StellaEmbeddingFunction
    builtins = {
        name
        for name, cls in known_embedding_functions.items()
        if cls.__module__.startswith("chromadb.")
    }
    assert "stella_rag" not in builtins
    assert len(builtins) > 10  # the check above looked at Chroma's real list


def test_protocol_methods(ef: StellaEmbeddingFunction, tiny_model: str) -> None:
    assert ef.default_space() == "cosine"
    assert not ef.is_legacy()
    config = ef.get_config()
    assert config["model"] == str(Path(tiny_model).resolve())
    assert config["device"] == "cpu"
    assert config["normalize"] is True
    assert config["truncate_dim"] is None
    assert json.loads(json.dumps(config)) == config
    StellaEmbeddingFunction.validate_config(config)
    rebuilt = StellaEmbeddingFunction.build_from_config(config)
    assert isinstance(rebuilt, StellaEmbeddingFunction)
    assert rebuilt.get_config() == config


def test_documents_and_queries_use_the_two_sides(prompted_model: str) -> None:
    encoder = SentenceEncoder(prompted_model, device="cpu")
    ef = StellaEmbeddingFunction(encoder)
    texts = list(DOCS.values())
    docs = np.asarray(ef(texts))
    queries = np.asarray(ef.embed_query(texts))
    np.testing.assert_allclose(docs, encoder.encode_documents(texts), atol=1e-6)
    np.testing.assert_allclose(queries, encoder.encode_queries(texts), atol=1e-6)
    assert not np.allclose(docs, queries, atol=1e-3)  # the query prompt changes the vectors
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in ef(texts))


def test_wrapping_an_encoder_keeps_its_settings(tiny_model: str) -> None:
    encoder = SentenceEncoder(tiny_model, device="cpu", truncate_dim=16, batch_size=8)
    ef = StellaEmbeddingFunction(encoder)
    assert ef.encoder is encoder
    config = ef.get_config()
    assert (config["truncate_dim"], config["batch_size"]) == (16, 8)
    vectors = ef(["the museum"])
    assert len(vectors[0]) == 16
    assert np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-5)
    rebuilt = StellaEmbeddingFunction.build_from_config(config)
    np.testing.assert_allclose(rebuilt(["the museum"])[0], vectors[0], atol=1e-6)


def test_building_from_config_does_not_load_the_weights_again(ef: StellaEmbeddingFunction) -> None:
    first = _model(ef)
    again = StellaEmbeddingFunction.build_from_config(ef.get_config())
    assert _model(again) is first


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown stella_rag config key"),
        ({"model": ""}, "needs a 'model'"),
        ({"normalize": "yes"}, "config['normalize'] must be bool"),
        ({"truncate_dim": True}, "config['truncate_dim'] must be int or None"),
        ({"device": 3}, "config['device'] must be str or None"),
    ],
)
def test_validate_config_names_the_bad_value(
    ef: StellaEmbeddingFunction, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        StellaEmbeddingFunction.validate_config({**ef.get_config(), **change})


def test_validate_config_update(ef: StellaEmbeddingFunction) -> None:
    old = ef.get_config()
    ef.validate_config_update(old, {**old, "device": "cuda", "batch_size": 4})
    for key, value in (("model", "minilm"), ("truncate_dim", 8), ("normalize", False)):
        with pytest.raises(ValueError, match=f"The {key} cannot be changed"):
            ef.validate_config_update(old, {**old, key: value})


def test_bad_constructor_arguments(tiny_model: str) -> None:
    with pytest.raises(ValueError, match="precision must be"):
        StellaEmbeddingFunction(tiny_model, precision="float8")
    with pytest.raises(ValueError, match="backend must be"):
        StellaEmbeddingFunction(tiny_model, backend="tensorflow")


def _roundtrip(writer: Any, reader: Any, ef: StellaEmbeddingFunction, name: str) -> None:
    collection = writer.create_collection(name, embedding_function=ef)
    collection.add(ids=list(DOCS), documents=list(DOCS.values()))
    assert collection.configuration_json["hnsw"]["space"] == "cosine"

    reopened = reader.get_collection(name)  # no embedding_function: rebuilt from the config
    stored = reopened.configuration_json["embedding_function"]
    assert stored["type"] == "known"
    assert stored["name"] == "stella_rag"
    assert stored["config"] == ef.get_config()
    rebuilt = reopened.configuration["embedding_function"]
    assert isinstance(rebuilt, StellaEmbeddingFunction)
    assert rebuilt is not ef
    assert not rebuilt.is_legacy()
    assert _model(rebuilt) is _model(ef)

    by_text = reopened.query(query_texts=[DOCS["museum"]], n_results=3)
    assert by_text["ids"][0][0] == "museum"
    query_vector = ef.embed_query([DOCS["museum"]])
    by_vector = reopened.query(query_embeddings=query_vector, n_results=3)
    assert by_text["ids"] == by_vector["ids"]
    np.testing.assert_allclose(by_text["distances"][0], by_vector["distances"][0], atol=1e-5)

    reopened.add(ids=["new"], documents=["a new book about the city bridge"])
    got = reopened.get(ids=["new"], include=["embeddings"])
    np.testing.assert_allclose(
        got["embeddings"][0], ef(["a new book about the city bridge"])[0], atol=1e-5
    )


def test_embedded_chroma_rebuilds_the_function(ef: StellaEmbeddingFunction, tmp_path: Path) -> None:
    _roundtrip(_client(tmp_path), _client(tmp_path), ef, "docs")


def test_embedded_chroma_refuses_another_model(
    ef: StellaEmbeddingFunction, tiny_dialogue_model: str, tmp_path: Path
) -> None:
    client = _client(tmp_path)
    collection = client.create_collection("docs", embedding_function=ef)
    other = StellaEmbeddingFunction(tiny_dialogue_model, device="cpu")
    with pytest.raises(ValueError, match="The model cannot be changed"):
        collection.modify(configuration={"embedding_function": other})


@pytest.mark.server
def test_chroma_server_rebuilds_the_function(
    ef: StellaEmbeddingFunction, chroma_server: ChromaServer
) -> None:
    _roundtrip(chroma_server.client(), chroma_server.client(), ef, "stella-ef-docs")
