"""Index N generated passages into an embedded Chroma database; the fault tests run and kill it.

Usage: python ingest_driver.py MODEL DB_PATH N [CHUNK] [PAUSE_S] [FILE_SIZE_LIMIT]

MODEL is a model folder, or ``fake`` for :class:`stella_rag.testing.FakeEncoder` (48-d; no
torch). Prints ``chunk <embedded> <skipped>`` after each stored chunk and, at the end,
``done <embedded> <skipped> <count>``; on an error, ``error <Type> <message>`` and exit code 3.
FILE_SIZE_LIMIT (bytes) makes every file write beyond it fail, as on a full disk. Re-running the
same command completes a killed or failed ingestion.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS = ("battery", "phone", "price", "museum", "ticket", "weather", "river", "bridge", "book")


def passages(n: int) -> list[str]:
    """The corpus: ``n`` distinct short passages."""
    return [f"passage {i} about the {WORDS[i % len(WORDS)]} {i * 7919 % 1000}" for i in range(n)]


def main() -> int:
    model, db_path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    chunk = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    pause = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    if len(sys.argv) > 6:
        import resource
        import signal

        limit = int(sys.argv[6])
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    import stella_rag
    from stella_rag import _store
    from stella_rag.testing import FakeEncoder

    _store._CHUNK = chunk  # small chunks, so that a kill lands between two of them
    encoder: object = FakeEncoder(48)
    if model != "fake":
        encoder = stella_rag.SentenceEncoder(model, device="cpu")

    def progress(report: stella_rag.AddReport) -> None:
        print(f"chunk {report.embedded} {report.skipped}", flush=True)
        if pause:
            time.sleep(pause)

    try:
        store = stella_rag.ChromaStore("corpus", encoder=encoder, path=db_path)
        report = store.index(passages(n), on_chunk=progress)
        print(f"done {report.embedded} {report.skipped} {store.count()}", flush=True)
    except Exception as exc:
        print(f"error {type(exc).__name__} {exc}", flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
