"""Ray Data ingestion (stella_rag.scale) into a real Chroma server, against the serial path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
import ray.data

from stella_rag import ChromaStore, EncoderMismatchError, SentenceEncoder, connect, scale, text_id
from stella_rag.testing import ChromaServer, FakeEncoder

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.server]

N_PASSAGES = 2000
_TOPICS = ["the museum", "the battery", "table tennis", "the river bridge", "the weather"]


def _corpus(n: int = N_PASSAGES) -> list[str]:
    return [
        f"{_TOPICS[i % 5]} note {i}: " + " ".join(["open monday price hour"] * (1 + i % 4))
        for i in range(n)
    ]


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    """Ray started once, locally, on 2 CPUs; shut down at the end of the session."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
    )
    # The test module's helper classes go to the actors by value (pytest's importlib mode
    # leaves the module unimportable there).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def _dataset(texts: list[str]) -> Any:
    return ray.data.from_items([{"text": t, "n": i} for i, t in enumerate(texts)])


def _rows(client: Any, name: str) -> dict[str, tuple[str, dict[str, Any], np.ndarray]]:
    got = client.get_collection(name).get(include=["documents", "metadatas", "embeddings"])
    return {
        pid: (doc, dict(meta or {}), np.asarray(vec, dtype=np.float32))
        for pid, doc, meta, vec in zip(
            got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True
        )
    }


class _SlowEncoder(FakeEncoder):
    """A fake encoder that takes a while per batch and says which process it runs in."""

    def __init__(self, pid_file: str, seconds: float = 0.05) -> None:
        super().__init__(16, model_id="stella-rag/slow-fake")
        self.pid_file = pid_file
        self.seconds = seconds

    def encode_documents(self, texts: Any) -> np.ndarray:
        Path(self.pid_file).write_text(str(os.getpid()))
        time.sleep(self.seconds)
        return super().encode_documents(texts)


def test_same_ids_and_vectors_as_serial(
    ray_session: Any, chroma_server: ChromaServer, tiny_model: str
) -> None:
    texts = _corpus()
    client = connect(server=chroma_server.address)
    serial = ChromaStore(
        "scale-serial", encoder=SentenceEncoder(tiny_model, device="cpu"), client=client
    )
    serial.add(texts, metadatas=[{"n": i} for i in range(len(texts))])

    report = scale.embed_dataset(
        _dataset(texts),
        encoder=SentenceEncoder(tiny_model, device="cpu"),
        collection="scale-ray",
        chroma={"server": chroma_server.address},
        actors=2,
        batch_size=200,
    )
    assert (report.embedded, report.skipped, report.blank) == (N_PASSAGES, 0, 0)
    assert report.count == N_PASSAGES

    want, got = _rows(client, "scale-serial"), _rows(client, "scale-ray")
    assert sorted(got) == sorted(want) == sorted(text_id(t) for t in texts)  # no duplicates
    for pid, (text, meta, vector) in got.items():
        assert (text, meta) == want[pid][:2]
        assert float(vector @ want[pid][2]) >= 0.999  # unit vectors: the dot is the cosine

    # Recorded as ChromaStore records it: opens with the same encoder, refuses another.
    opened = ChromaStore.open("scale-ray", client=client, device="cpu")
    assert opened.encoder.model_id == serial.encoder.model_id
    assert opened.search(texts[7], k=1)[0].text == texts[7]
    with pytest.raises(EncoderMismatchError):
        ChromaStore("scale-ray", encoder=FakeEncoder(48), client=client)

    again = scale.embed_dataset(
        _dataset(texts), encoder=tiny_model, collection="scale-ray",
        chroma={"server": chroma_server.address}, actors=1, batch_size=500,
    )  # fmt: skip
    assert (again.embedded, again.skipped, again.count) == (0, N_PASSAGES, N_PASSAGES)


def _kill_when_stored(client: Any, name: str, pid_file: Path, at_least: int) -> int:
    """SIGKILL the embedding actor once the collection holds ``at_least`` passages."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            count = client.get_collection(name).count()
        except Exception:  # not created yet
            count = 0
        if count >= at_least and pid_file.is_file():
            pid = int(pid_file.read_text() or 0)
            try:
                os.kill(pid, signal.SIGKILL)
                return pid
            except (ProcessLookupError, ValueError):  # that actor is gone: wait for a live one
                pass
        time.sleep(0.02)
    raise AssertionError("the run never stored anything")


def _settled_count(client: Any, name: str) -> int:
    """The collection's size once it has not changed for 2 s."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < 2:
        count = client.get_collection(name).count()
        if count != last:
            last, since = count, time.monotonic()
        time.sleep(0.1)
    return last


# Ray 2.60 deprecates map_batches(max_restarts=...), yet documents it to turn restarts off.
@pytest.mark.filterwarnings("ignore:`ray_remote_args` is deprecated")
def test_killed_actor_then_rerun_leaves_exactly_the_corpus(
    ray_session: Any, chroma_server: ChromaServer, tmp_path: Path
) -> None:
    texts = _corpus()
    client = connect(server=chroma_server.address)
    pid_file = tmp_path / "actor.pid"
    encoder = _SlowEncoder(str(pid_file))
    common: dict[str, Any] = {
        "encoder": encoder,
        "collection": "scale-killed",
        "chroma": {"server": chroma_server.address},
        "batch_size": 50,
    }

    # 1. No restarts: killing the only actor stops the run part way.
    failed: list[BaseException] = []

    def run_without_restarts() -> None:
        try:
            scale.embed_dataset(
                _dataset(texts),
                actors=1,
                actor_options={"max_restarts": 0, "max_task_retries": 0},
                **common,
            )
        except BaseException as exc:
            failed.append(exc)

    worker = threading.Thread(target=run_without_restarts)
    worker.start()
    _kill_when_stored(client, "scale-killed", pid_file, at_least=200)
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert failed, "the run went on without its only actor"
    stored = _settled_count(client, "scale-killed")  # write tasks in flight may still land
    assert 200 <= stored < N_PASSAGES

    # 2. Re-run (Ray may restart actors now), killing an actor again on the way: it finishes,
    # and embeds only what the first run did not store.
    pid_file.unlink()
    killed: list[int] = []
    killer = threading.Thread(
        target=lambda: killed.append(
            _kill_when_stored(client, "scale-killed", pid_file, stored + 50)
        )
    )
    killer.start()
    common["encoder"] = _SlowEncoder(str(pid_file), seconds=0.1)  # time to kill one
    report = scale.embed_dataset(_dataset(texts), actors=2, **common)
    killer.join(timeout=120)
    assert killed, "no actor was killed during the re-run"
    assert report.skipped == stored
    assert report.embedded == N_PASSAGES - stored
    rows = _rows(client, "scale-killed")
    assert sorted(rows) == sorted(text_id(t) for t in texts)
    assert report.count == N_PASSAGES
    for pid, (text, _, vector) in rows.items():
        assert text_id(text) == pid
        np.testing.assert_allclose(vector, FakeEncoder(16)._vector(text), atol=1e-6)


def test_parquet_is_idempotent_and_checked(ray_session: Any, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    texts = [*_corpus(300), "", "   "]
    folder = tmp_path / "vectors"
    fake = FakeEncoder(16)
    first = scale.embed_dataset(
        _dataset(texts[:200]), encoder=fake, parquet=folder, actors=1, batch_size=64
    )
    assert (first.embedded, first.skipped, first.count) == (200, 0, 200)
    second = scale.embed_dataset(_dataset(texts), encoder=fake, parquet=folder, batch_size=64)
    assert (second.embedded, second.skipped, second.blank) == (100, 200, 2)
    table = pq.read_table([str(p) for p in folder.glob("part-*.parquet")])
    assert sorted(table.column("id").to_pylist()) == sorted(text_id(t) for t in texts[:300])
    row = table.slice(0, 1).to_pylist()[0]
    assert json.loads(row["metadata"])["n"] == texts.index(row["text"])
    np.testing.assert_allclose(row["vector"], fake._vector(row["text"]), atol=1e-6)
    with pytest.raises(EncoderMismatchError, match="Parquet folder"):
        scale.embed_dataset(_dataset(texts), encoder=FakeEncoder(8), parquet=folder)


def test_read_files_matches_ingest(
    ray_session: Any, chroma_server: ChromaServer, tiny: SentenceEncoder, tmp_path: Path
) -> None:
    from stella_rag import ingest

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("the museum opens on monday. " * 60, encoding="utf-8")
    (docs / "b.jsonl").write_text(
        "\n".join(json.dumps({"text": f"{t} price {i}", "tag": [i]}) for i, t in enumerate(_TOPICS))
        + "\n",
        encoding="utf-8",
    )
    client = connect(server=chroma_server.address)
    serial = ChromaStore("files-serial", encoder=tiny, client=client)
    ingest(serial, [docs], chunk_tokens=40, overlap_tokens=8)

    ds = scale.read_files([docs], encoder=tiny, chunk_tokens=40, overlap_tokens=8)
    report = scale.embed_dataset(
        ds, encoder=tiny, collection="files-ray", chroma={"server": chroma_server.address}
    )
    want, got = _rows(client, "files-serial"), _rows(client, "files-ray")
    assert report.embedded == len(got) == len(want) > 6
    assert {p: r[:2] for p, r in got.items()} == {p: r[:2] for p, r in want.items()}


def test_arguments_are_checked(ray_session: Any, tmp_path: Path) -> None:
    ds = _dataset(["a b"])
    with pytest.raises(ValueError, match="exactly one"):
        scale.embed_dataset(ds, encoder=FakeEncoder(), parquet=tmp_path, collection="x")
    with pytest.raises(ValueError, match="Chroma server"):
        scale.embed_dataset(ds, encoder=FakeEncoder(), collection="x", chroma={"path": "db"})
    with pytest.raises(ValueError, match="actors"):
        scale.embed_dataset(ds, encoder=FakeEncoder(), parquet=tmp_path, actors=0)


def test_ray_loads_only_when_used() -> None:
    code = (
        "import sys, stella_rag, stella_rag.scale; "
        "print(','.join(m for m in ('ray', 'torch', 'chromadb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    assert sorted(scale.__all__) == ["ScaleReport", "embed_dataset", "read_files"]


def test_encoder_config_round_trip(tiny_model: str) -> None:
    encoder = SentenceEncoder(tiny_model, device="cpu", max_seq_length=64, truncate_dim=16)
    again = SentenceEncoder(**encoder.get_config())
    assert again.get_config() == encoder.get_config()
    assert (again.model_id, again.dim, again.max_seq_length) == (encoder.model_id, 16, 64)


def test_connection_secrets_stay_out_of_repr() -> None:
    target = scale._ChromaTarget("docs", {"server": "db:8000", "token": "tok-9f8e7d6c"}, 300)
    assert "tok-9f8e7d6c" not in repr(target) and "docs" in repr(target)


def test_cli_index_on_ray_matches_plain_index(
    ray_session: Any, chroma_server: ChromaServer, tiny_model: str, tmp_path: Path
) -> None:
    docs = tmp_path / "cli-docs"
    docs.mkdir()
    (docs / "a.md").write_text(
        " ".join(f"The museum opens at {i} on monday." for i in range(40)), encoding="utf-8"
    )
    (docs / "b.jsonl").write_text(
        "\n".join(json.dumps({"text": f"{t} price", "n": i}) for i, t in enumerate(_TOPICS)),
        encoding="utf-8",
    )
    # The command joins this session's Ray instead of starting its own.
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    common = [str(docs), "--server", chroma_server.address, "--model", tiny_model]
    common += ["--device", "cpu", "--chunk-tokens", "40", "--json"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stella_rag.cli", "index", *args],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip

    plain = cli(*common, "-c", "cli-plain")
    assert plain.returncode == 0, plain.stderr
    on_ray = cli(*common, "-c", "cli-ray", "--ray", "--actors", "2")
    assert on_ray.returncode == 0, on_ray.stderr
    report = json.loads(on_ray.stdout)
    client = connect(server=chroma_server.address)
    want, got = _rows(client, "cli-plain"), _rows(client, "cli-ray")
    assert report["embedded"] == report["count"] == len(got) == len(want) > 5
    assert {p: r[:2] for p, r in got.items()} == {p: r[:2] for p, r in want.items()}

    no_server = cli(str(docs), "-c", "x", "--model", tiny_model, "--ray", "--path", str(tmp_path))
    assert no_server.returncode == 1 and "needs a Chroma server" in no_server.stderr
