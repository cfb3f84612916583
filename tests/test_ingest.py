"""stella_rag.ingest: files streamed into a store, split to the encoder's budget, per file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stella_rag import ChromaStore, IngestReport, InputFileError, SentenceEncoder, ingest


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("the museum opens on monday")
    (folder / "b.jsonl").write_text(
        "\n".join(
            json.dumps({"text": t, "topic": "x"})
            for t in ["the battery lasts two days", "the museum opens on monday", "the old bridge"]
        )
    )
    long = " ".join(f"river city bridge museum {i}." for i in range(60))
    (folder / "c.md").write_text(long)
    return folder


def test_ingest_streams_dedups_and_reports_per_file(
    tiny: SentenceEncoder, files: Path, tmp_path: Path
) -> None:
    store = ChromaStore("ingested", encoder=tiny, path=tmp_path / "db")
    seen: list[int] = []
    report = ingest(
        store,
        [files],
        chunk_tokens=32,
        overlap_tokens=4,
        on_progress=lambda r: seen.append(r.passages),
    )
    assert isinstance(report, IngestReport)
    assert [f.path.name for f in report.files] == ["a.txt", "b.jsonl", "c.md"]
    a, b, c = report.files
    assert (a.passages, a.duplicates) == (1, 0)
    assert (b.passages, b.duplicates) == (3, 1)  # the museum line repeats a.txt
    assert c.passages > 2 and c.duplicates == 0  # split to 32 tokens
    assert report.texts == 5
    assert report.passages == report.embedded == store.count() == 1 + 2 + c.passages
    assert report.duplicates == 1 and seen and seen[-1] == report.passages
    data = report.to_dict()
    assert data["files"] == 3 and data["per_file"][1] == {
        "path": str(files / "b.jsonl"),
        "passages": 3,
        "duplicates": 1,
    }
    hit = store.search("the battery lasts two days", k=1)[0]
    assert hit.metadata["topic"] == "x" and hit.metadata["line"] == 1
    again = ingest(store, [files], chunk_tokens=32, overlap_tokens=4)
    assert (again.embedded, again.skipped) == (0, report.passages)


def test_ingest_checks_every_file_before_embedding(
    tiny: SentenceEncoder, files: Path, tmp_path: Path
) -> None:
    (files / "d.jsonl").write_text('{"text": "fine"}\n{"text": oops}\n')
    store = ChromaStore("checked", encoder=tiny, path=tmp_path / "db")
    # A malformed file is skipped and named (issue 13); the others are indexed.
    report = ingest(store, [files])
    [skipped] = report.skipped_files
    assert skipped.path == files / "d.jsonl" and "d.jsonl:2" in skipped.reason
    assert "d.jsonl" not in {f.path.name for f in report.files}
    assert store.count() == report.count > 0
    (files / "d.jsonl").unlink()
    store = ChromaStore("checked-2", encoder=tiny, path=tmp_path / "db")
    with pytest.raises(ValueError, match=r"chunk_tokens=4000 is more than .* use at most 126"):
        ingest(store, [files / "a.txt"], chunk_tokens=4000)
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(InputFileError, match="nothing to index"):
        ingest(store, [tmp_path / "empty.txt"])
