"""Ingesting at scale on Ray Data: many processes, GPUs or machines embed one corpus.

:func:`embed_dataset` runs a Ray ``Dataset`` of texts through three stages::

    prepare (tasks)        ids, metadata; passages already stored are left out
      -> embed (actors)    an actor pool, each actor holding one encoder, loaded once
      -> write (tasks)     upserts into a Chroma server or Chroma Cloud, or Parquet files

Ids are :func:`~stella_rag.text_id` of the text, as :meth:`ChromaStore.add` makes them, so a
collection written here is the same as one written serially, and it records its encoder the same
way: :meth:`ChromaStore.open` opens and checks it like any other. A re-run after a crash asks the
store which ids it holds and embeds only the rest.

Needs ``pip install 'stella-rag[ray]'``; Ray is imported on first use, never by
``import stella_rag``. See docs/scaling.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    import ray.data

__all__ = ["ScaleReport", "embed_dataset", "read_files"]

_PLACEHOLDER = ""
"""The id of a row that stands for a batch whose passages were all stored: it carries the
batch's counts through the pipeline and is never embedded or written."""

_RECORD_FILE = "_stella_rag.json"
"""In a Parquet folder: the encoder that wrote it, checked like a collection's record."""

_TASK_CPUS = 0.25
"""CPUs a prepare or write task asks Ray for: they mostly wait on the store or the disk."""

_METADATA_COLUMN = "metadata"

_CLOUD_MAX_BATCH = 300
_CLOUD_WRITERS = 8
"""Chroma Cloud's quotas: at most 300 records per request and 10 concurrent writes (and reads)
per collection (docs.trychroma.com/cloud/quotas-limits)."""


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ImportError("stella_rag.scale needs Ray Data: pip install 'stella-rag[ray]'") from exc
    return ray


@dataclass
class ScaleReport:
    """What :func:`embed_dataset` did.

    Attributes:
        target: the collection's name, or the Parquet folder.
        model: the model that embedded the passages.
        embedded: passages embedded and written in this run.
        skipped: passages left out because the store already held them (or an earlier row of
            the same batch had the same text).
        blank: rows without text (empty or whitespace only), left out.
        count: the collection's size (the Parquet folder's rows) afterwards.
        actors: the most embedding actors the pool could use.
        seconds: the run's wall time.
    """

    target: str
    model: str
    embedded: int = 0
    skipped: int = 0
    blank: int = 0
    count: int | None = None
    actors: int = 0
    seconds: float = 0.0

    @property
    def passages_per_second(self) -> float | None:
        """Passages embedded and written per second of the run."""
        return round(self.embedded / self.seconds, 1) if self.seconds else None

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "target": self.target,
            "model": self.model,
            "embedded": self.embedded,
            "skipped": self.skipped,
            "blank": self.blank,
            "count": self.count,
            "actors": self.actors,
            "seconds": round(self.seconds, 3),
            "passages_per_second": self.passages_per_second,
        }


# ------------------------------------------------------------------------------ encoders
@dataclass(frozen=True)
class _EncoderSpec:
    """How an actor rebuilds the encoder: a :class:`SentenceEncoder`'s arguments, or an object
    (any picklable :class:`~stella_rag.Encoder`) sent as it is."""

    config: dict[str, Any] | None = None
    encoder: Any = None

    def build(self) -> Any:
        if self.config is None:
            return self.encoder
        from ._encoder import SentenceEncoder

        return SentenceEncoder(**self.config).load()

    def for_driver(self, given: Any) -> Any:
        """An encoder for the driver's checks (id, dimension): on CPU, never on a GPU."""
        if self.config is None or getattr(given, "is_loaded", False):
            return given
        from ._encoder import SentenceEncoder

        config = {**self.config, "device": "cpu", "backend": "torch", "precision": None}
        return SentenceEncoder(**config)


def _spec(encoder: Any) -> tuple[_EncoderSpec, Any]:
    from ._encoder import DEFAULT_MODEL, SentenceEncoder, resolve_encoder

    if encoder is None or isinstance(encoder, (str, os.PathLike)):
        encoder = SentenceEncoder(encoder if encoder is not None else DEFAULT_MODEL)
    encoder = resolve_encoder(encoder)
    if isinstance(encoder, SentenceEncoder):
        return _EncoderSpec(config=encoder.get_config()), encoder
    return _EncoderSpec(encoder=encoder), encoder


def _record(encoder: Any) -> dict[str, Any]:
    from ._store import META_DIM, META_MODEL, META_NORMALIZE, META_TRUNCATE

    return {
        META_MODEL: str(encoder.model_id),
        META_DIM: int(encoder.dim),
        META_NORMALIZE: bool(getattr(encoder, "normalize", True)),
        META_TRUNCATE: int(getattr(encoder, "truncate_dim", None) or 0),
    }


# ------------------------------------------------------------------------------- targets
_CLIENTS: dict[str, Any] = {}
"""Chroma clients of this worker process, by connection (Ray reuses worker processes)."""


@dataclass(frozen=True)
class _ChromaTarget:
    """A collection on a Chroma server or Chroma Cloud; the connection's secrets stay out of
    ``repr`` (and so out of Ray's logs)."""

    collection: str
    connection: dict[str, Any] = field(repr=False)
    max_batch: int

    def _collection(self) -> Any:
        from . import _client

        key = hashlib.sha256(
            json.dumps(self.connection, sort_keys=True, default=str).encode()
        ).hexdigest()
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = _client.connect(**self.connection)
        found = _client.call(
            lambda: _client.get_collection(client, self.collection),
            collection=self.collection,
            client=client,
        )
        if found is None:
            from ._errors import CollectionNotFoundError

            raise CollectionNotFoundError(self.collection, [], _client.address_of(client))
        return found

    def stored(self, ids: list[str]) -> set[str]:
        from . import _client

        collection = self._collection()
        out: set[str] = set()
        for start in range(0, len(ids), self.max_batch):
            part = ids[start : start + self.max_batch]
            found = _client.call(
                lambda part=part: collection.get(ids=part, include=[]),  # type: ignore[misc]
                collection=self.collection,
            )
            out.update(found["ids"])
        return out

    def write(
        self, ids: list[str], texts: list[str], metas: list[dict[str, Any] | None], vectors: Any
    ) -> None:
        from . import _client

        collection = self._collection()
        for start in range(0, len(ids), self.max_batch):
            end = start + self.max_batch
            part_metas = metas[start:end]
            _client.call(
                lambda start=start, end=end, part_metas=part_metas: collection.upsert(  # type: ignore[misc]
                    ids=ids[start:end],
                    embeddings=vectors[start:end],
                    documents=texts[start:end],
                    metadatas=part_metas if any(m is not None for m in part_metas) else None,
                ),
                collection=self.collection,
            )


@dataclass(frozen=True)
class _ParquetTarget:
    """A folder of Parquet files (id, text, metadata as JSON, vector), each written atomically."""

    folder: str
    known: frozenset[str] = field(default=frozenset(), repr=False)

    def stored(self, ids: list[str]) -> set[str]:
        return {pid for pid in ids if pid in self.known}

    def write(
        self, ids: list[str], texts: list[str], metas: list[dict[str, Any] | None], vectors: Any
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1]
        table = pa.table(
            {
                "id": pa.array(ids, pa.string()),
                "text": pa.array(texts, pa.string()),
                "metadata": pa.array(
                    [json.dumps(m, ensure_ascii=False) if m else None for m in metas], pa.string()
                ),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
            }
        )
        # Named by its ids: a batch written again replaces its own file, never doubles it.
        name = "part-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:20] + ".parquet"
        tmp = os.path.join(self.folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, os.path.join(self.folder, name))  # readers never see half a file


def _parquet_files(folder: str) -> list[str]:
    return sorted(str(p) for p in Path(folder).glob("part-*.parquet"))


def _parquet_ids(folder: str) -> frozenset[str]:
    import pyarrow.parquet as pq

    ids: set[str] = set()
    for path in _parquet_files(folder):
        ids.update(pq.read_table(path, columns=["id"]).column("id").to_pylist())
    return frozenset(ids)


def _open_parquet(folder: str, record: dict[str, Any]) -> None:
    """Create the folder and its record, or check that the record is this encoder's."""
    from ._errors import EncoderMismatchError
    from ._store import _describe

    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / _RECORD_FILE
    if path.is_file():
        found = json.loads(path.read_text(encoding="utf-8"))
        if found != record:
            raise EncoderMismatchError(
                f"the Parquet folder {folder!r} was written by {_describe(found)} but is "
                f"written now with {_describe(record)}; use the same encoder, or another folder"
            )
        return
    path.write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")


# -------------------------------------------------------------------------------- stages
def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _metadata(row: Mapping[str, Any]) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key == _METADATA_COLUMN and isinstance(value, (str, Mapping)):
            nested = json.loads(value) if isinstance(value, str) else value
            if isinstance(nested, Mapping):
                out.update({str(k): _json_value(v) for k, v in nested.items() if v is not None})
                continue
        if value is not None:
            out[str(key)] = _json_value(value)
    return out or None


def _prepare(batch: dict[str, np.ndarray], *, text_column: str, target: Any) -> dict[str, Any]:
    """Ids and metadata of a batch; rows already stored or without text left out."""
    from ._store import text_id
    from ._validate import check_metadata

    if text_column not in batch:
        raise KeyError(f"the dataset has no column {text_column!r} (columns: {sorted(batch)})")
    texts = batch[text_column].tolist()
    others = {k: v.tolist() for k, v in batch.items() if k != text_column}
    rows: dict[str, tuple[str, dict[str, Any] | None]] = {}
    blank = 0
    for i, text in enumerate(texts):
        if isinstance(text, (bytes, bytearray)):
            raise TypeError(f"the {text_column!r} column holds bytes; decode it to str first")
        if not isinstance(text, str) or not text.strip():
            blank += 1
            continue
        meta = check_metadata(_metadata({k: v[i] for k, v in others.items()}), "a row's metadata")
        rows.setdefault(text_id(text), (text, meta))
    stored = target.stored(list(rows)) if rows else set()
    todo = [pid for pid in rows if pid not in stored]
    skipped = len(texts) - blank - len(todo)
    ids = todo or [_PLACEHOLDER]
    counts = np.zeros(len(ids), dtype=np.int64)
    blanks = np.zeros(len(ids), dtype=np.int64)
    counts[0], blanks[0] = skipped, blank
    return {
        "id": np.array(ids, dtype=object),
        "text": np.array([rows[p][0] if p else "" for p in ids], dtype=object),
        "metadata": np.array(
            [json.dumps(rows[p][1], ensure_ascii=False) if p and rows[p][1] else "" for p in ids],
            dtype=object,
        ),
        "skipped": counts,
        "blank": blanks,
    }


class _Embedder:
    """One actor of the pool: loads the encoder once, then embeds batch after batch."""

    def __init__(self, spec: _EncoderSpec) -> None:
        self.encoder = spec.build()
        self.dim = int(self.encoder.dim)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        ids = batch["id"]
        real = np.array([bool(p) for p in ids], dtype=bool)
        vectors = np.zeros((len(ids), self.dim), dtype=np.float32)
        if real.any():
            vectors[real] = self.encoder.encode_documents(batch["text"][real].tolist())
        return {**batch, "vector": vectors}


def _write(batch: dict[str, np.ndarray], *, target: Any) -> dict[str, np.ndarray]:
    """Write the embedded rows of a batch; one row of counts comes out."""
    first: dict[str, int] = {}
    for i, pid in enumerate(batch["id"].tolist()):
        if pid and pid not in first:  # two prepared batches may meet here with the same text
            first[pid] = i
    rows = list(first.values())
    if rows:
        metas = [json.loads(m) if m else None for m in batch["metadata"][rows].tolist()]
        target.write(
            list(first), batch["text"][rows].tolist(), metas, np.asarray(batch["vector"])[rows]
        )
    return {
        "embedded": np.array([len(rows)], dtype=np.int64),
        "skipped": np.array([int(np.sum(batch["skipped"]))], dtype=np.int64),
        "blank": np.array([int(np.sum(batch["blank"]))], dtype=np.int64),
    }


# ------------------------------------------------------------------------------- public
def embed_dataset(
    dataset: ray.data.Dataset,
    *,
    encoder: Any = None,
    collection: str | None = None,
    chroma: Mapping[str, Any] | None = None,
    parquet: str | os.PathLike[str] | None = None,
    text_column: str = "text",
    actors: int | tuple[int, int] = 1,
    gpus_per_actor: float | None = None,
    cpus_per_actor: float | None = None,
    batch_size: int = 256,
    writers: int | None = None,
    on_progress: Callable[[ScaleReport], None] | None = None,
    actor_options: Mapping[str, Any] | None = None,
) -> ScaleReport:
    """Embed a Ray ``Dataset`` of texts on an actor pool and write it to Chroma or Parquet.

    Every column other than ``text_column`` becomes metadata (lists and objects as JSON); a
    ``metadata`` column of JSON objects is unpacked. Rows without text are left out.

    Args:
        dataset: for example from ``ray.data.read_json(path, lines=True)``, ``read_parquet``,
            ``read_text``, or :func:`read_files` (our file formats, split to the model's
            length).
        encoder: a model name, a :class:`~stella_rag.SentenceEncoder` (rebuilt in each actor
            from its arguments) or any picklable encoder; default ``"stella-large-zh"``.
        collection: the Chroma collection to write, created (recording the encoder) if missing,
            checked against the encoder if present.
        chroma: the arguments of :func:`stella_rag.connect` for a server or Chroma Cloud, for
            example ``{"server": "db:8000", "token": "..."}`` or ``{"cloud": True}``. An
            embedded database cannot be written by many processes at once.
        parquet: instead of ``collection``: a folder of Parquet files (``id``, ``text``,
            ``metadata`` as JSON, ``vector``) for other stores.
        actors: the pool's size, or ``(min, max)`` to let Ray grow it.
        gpus_per_actor: GPUs each actor holds; default 1 when the cluster has GPUs (and the
            encoder was not put on ``device="cpu"``), else 0.
        cpus_per_actor: CPUs each actor holds; default 1, less on a machine with fewer CPUs
            than actors (the prepare and write tasks need a little).
        batch_size: rows per batch for each stage.
        writers: the most prepare and write tasks at once (each talks to the store); default:
            as Ray schedules them, 8 for Chroma Cloud (which allows 10 concurrent writes).
        on_progress: called with the running report each time a batch is written.
        actor_options: more Ray options for the actors (``max_restarts``, ``memory``...).

    Returns:
        A :class:`ScaleReport`; ``embedded + skipped + blank`` is the number of rows.

    Raises:
        EncoderMismatchError: the collection (or folder) was written by another encoder.
        ValueError: neither or both of ``collection`` and ``parquet``; no server in ``chroma``.
    """
    ray = _ray()
    if (collection is None) == (parquet is None):
        raise ValueError("give exactly one of collection= (with chroma=) and parquet=")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    low, high = (actors, actors) if isinstance(actors, int) else tuple(actors)
    if not 1 <= low <= high:
        raise ValueError(f"actors must be at least 1 (or (min, max) with min <= max): {actors!r}")
    spec, given = _spec(encoder)
    driver_encoder = spec.for_driver(given)
    started = time.perf_counter()
    target: Any
    if collection is not None:
        target, name = _chroma_target(collection, chroma, driver_encoder), collection
    else:
        folder = os.fspath(parquet)  # type: ignore[arg-type]
        _open_parquet(folder, _record(driver_encoder))
        target, name = _ParquetTarget(folder, _parquet_ids(folder)), folder
    report = ScaleReport(target=name, model=str(driver_encoder.model_id), actors=high)

    if not ray.is_initialized():
        ray.init()
    resources = ray.cluster_resources()
    if gpus_per_actor is None:
        on_cpu = spec.config is not None and spec.config.get("device") == "cpu"
        gpus_per_actor = 1.0 if resources.get("GPU", 0) >= 1 and not on_cpu else 0.0
    if cpus_per_actor is None:
        spare = float(resources.get("CPU", 1)) - _TASK_CPUS * 2
        cpus_per_actor = max(0.25, min(1.0, spare / high))

    if writers is None and isinstance(target, _ChromaTarget) and target.connection.get("cloud"):
        writers = _CLOUD_WRITERS
    io_options: dict[str, Any] = {"num_cpus": _TASK_CPUS}
    if writers is not None:
        io_options["concurrency"] = writers

    from ray.data import ActorPoolStrategy

    prepared = dataset.map_batches(
        cast(Any, _prepare),
        batch_size=batch_size,
        batch_format="numpy",
        fn_kwargs={"text_column": text_column, "target": target},
        **io_options,
    )
    embedded = prepared.map_batches(
        _Embedder,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(min_size=low, max_size=high),
        fn_constructor_kwargs={"spec": spec},
        num_gpus=gpus_per_actor,
        num_cpus=cpus_per_actor,
        **dict(actor_options or {}),
    )
    written = embedded.map_batches(
        cast(Any, _write),
        batch_size=batch_size,
        batch_format="numpy",
        fn_kwargs={"target": target},
        **io_options,
    )
    for counts in written.iter_batches(batch_size=None, batch_format="numpy"):
        report.embedded += int(np.sum(counts["embedded"]))
        report.skipped += int(np.sum(counts["skipped"]))
        report.blank += int(np.sum(counts["blank"]))
        report.seconds = time.perf_counter() - started
        if on_progress is not None:
            on_progress(report)
    if isinstance(target, _ChromaTarget):
        report.count = _chroma_count(target)
    else:
        report.count = len(_parquet_ids(target.folder))
    report.seconds = time.perf_counter() - started
    return report


def _chroma_target(
    collection: str, chroma: Mapping[str, Any] | None, encoder: Any
) -> _ChromaTarget:
    from ._client import connect
    from ._store import ChromaStore

    connection = dict(chroma or {})
    if connection.get("api_key"):
        connection["cloud"] = True
    if not connection.get("server") and not connection.get("cloud"):
        raise ValueError(
            "embed_dataset writes from many processes, which needs a Chroma server or Chroma "
            "Cloud: pass chroma={'server': 'host:port'} (start one with `chroma run --path DIR`) "
            "or chroma={'cloud': True}, or write parquet= instead"
        )
    client = connect(**connection)
    # Created here, recording the encoder (or checked against it), exactly as ChromaStore does.
    ChromaStore(collection, encoder=encoder, client=client)
    try:
        max_batch = int(client.get_max_batch_size())
    except Exception:  # an older server: Chroma's documented floor
        max_batch = 1000
    if connection.get("cloud"):
        max_batch = min(max_batch, _CLOUD_MAX_BATCH)
    return _ChromaTarget(collection, connection, max(1, min(max_batch, 4096)))


def _chroma_count(target: _ChromaTarget) -> int:
    from . import _client

    collection = target._collection()
    return int(_client.call(collection.count, collection=target.collection))


def _read_split(
    row: dict[str, Any],
    *,
    spec: _EncoderSpec,
    text_field: str,
    chunk_tokens: int,
    overlap_tokens: int,
) -> list[dict[str, Any]]:
    from ._ingest import Splitter, read_file

    encoder = _tokenizer_encoder(spec)
    splitter = Splitter(encoder, chunk_tokens, overlap_tokens)
    passages = read_file(Path(row["path"]), text_field=text_field)
    return [
        {"text": p.text, _METADATA_COLUMN: json.dumps(p.metadata, ensure_ascii=False)}
        for p in splitter.split_passages(passages)
    ]


def _tokenizer_encoder(spec: _EncoderSpec) -> Any:
    """The encoder whose tokenizer splits texts (on CPU: splitting never needs a GPU)."""
    if spec.config is None:
        return spec.encoder
    from ._encoder import SentenceEncoder

    return SentenceEncoder(**{**spec.config, "device": "cpu", "backend": "torch"})


def read_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    encoder: Any = None,
    text_field: str = "text",
    chunk_tokens: int | None = None,
    overlap_tokens: int = 32,
) -> ray.data.Dataset:
    """A Ray ``Dataset`` of the passages of files, read and split on the cluster.

    The same formats, metadata and token-aware splitting as :func:`stella_rag.ingest` (``.txt``,
    ``.md``, ``.jsonl``, ``.csv``, folders of them); each file is read by one task. The files
    must be readable at the same path on every machine of the cluster (a shared filesystem).

    Args:
        paths: files or folders.
        encoder: the encoder whose tokenizer sets the passage size (as for
            :func:`embed_dataset`).
        text_field, chunk_tokens, overlap_tokens: as for :func:`stella_rag.ingest`.

    Returns:
        A dataset with the columns ``text`` and ``metadata`` (a JSON object), for
        :func:`embed_dataset`.
    """
    ray = _ray()
    from ._ingest import expand_paths, passage_room

    files = expand_paths(paths)
    spec, _ = _spec(encoder)
    room = passage_room(_tokenizer_encoder(spec))
    if chunk_tokens is None:
        chunk_tokens = room
    elif chunk_tokens > room:
        raise ValueError(f"chunk_tokens={chunk_tokens} is more than the model reads ({room})")
    items = [{"path": str(f)} for f in files]
    return ray.data.from_items(items, override_num_blocks=max(1, len(items))).flat_map(
        _read_split,
        fn_kwargs={
            "spec": spec,
            "text_field": text_field,
            "chunk_tokens": chunk_tokens,
            "overlap_tokens": overlap_tokens,
        },
        num_cpus=_TASK_CPUS,
    )
