"""Shared fixtures: real tiny models built locally, the offline MiniLM, a real Chroma server."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The tests' own daemon folder: never a daemon the developer has running.
os.environ["STELLA_RAG_DAEMON_DIR"] = tempfile.mkdtemp(prefix="stella-rag-test-daemon-")

from stella_rag import SentenceEncoder
from stella_rag.testing import ChromaServer, build_bert_model

TINY_DIM = 48


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_model(models_dir: Path) -> str:
    """A 2-layer BERT, mean pooling, Dense 32 -> 48, max 128 tokens."""
    return build_bert_model(str(models_dir / "tiny-general"), out_dim=TINY_DIM, seed=0)


@pytest.fixture(scope="session")
def tiny_dialogue_model(models_dir: Path) -> str:
    """Another 48-d tiny model, standing in for a dedicated dialogue model."""
    return build_bert_model(str(models_dir / "tiny-dialogue"), out_dim=TINY_DIM, seed=1)


@pytest.fixture(scope="session")
def tiny_model_40d(models_dir: Path) -> str:
    """A tiny model whose vectors have another dimension (40)."""
    return build_bert_model(str(models_dir / "tiny-40d"), out_dim=40, seed=2)


@pytest.fixture(scope="session")
def tiny(tiny_model: str) -> SentenceEncoder:
    return SentenceEncoder(tiny_model, device="cpu")


@pytest.fixture(scope="session")
def minilm() -> SentenceEncoder:
    return SentenceEncoder("minilm", device="cpu")


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """A real `chroma run` on 127.0.0.1, stopped at the end of the session."""
    with ChromaServer(str(tmp_path_factory.mktemp("chroma-server"))) as server:
        yield server


@pytest.fixture(scope="session")
def tiny_trained_dialogue_model(models_dir: Path, tiny_model: str) -> str:
    """A dialogue model trained by stella-rag (a few steps) for ``tiny_model``'s documents."""
    from stella_rag.train import TrainConfig, parse_record, train_dialogue_encoder

    pairs = [
        parse_record(
            {
                "turns": [
                    {"role": "user", "text": f"tell me about the {topic}"},
                    {"role": "assistant", "text": f"the {topic} is popular"},
                    {"role": "user", "text": "and the price?"},
                ],
                "rewrite": f"price of the {topic}",
                "positive": f"the {topic} costs ten",
            }
        )
        for topic in ("trail", "museum", "ferry", "kettle")
    ]
    out = models_dir / "tiny-trained-dialogue"
    config = TrainConfig(max_steps=2, batch_size=4, augment=False, save_steps=100)
    train_dialogue_encoder(SentenceEncoder(tiny_model), out, pairs, config=config, progress=False)
    return str(out)
