"""Issue 13, a new user's first hour: the `stella-rag` command on one's own files, as a user
runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import chromadb
import pytest
from cli_helpers import in_pty, ok_json, read_pty, run

from stella_rag import SentenceEncoder

BRACKETS = "Install the offline model with pip install stella-rag[offline] and read b[i] first."


@pytest.fixture(scope="module")
def work(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose ./.stella-rag holds 'docs', indexed from a folder with one binary file."""
    folder = tmp_path_factory.mktemp("first-hour")
    docs = folder / "my-docs"
    docs.mkdir()
    (docs / "install.md").write_text(BRACKETS + "\n", encoding="utf-8")
    (docs / "museum.txt").write_text(
        "The Calloway Maritime Museum is closed on Mondays and opens at ten on other days. " * 6,
        encoding="utf-8",
    )
    (docs / "page.html").write_text(
        "<html><head><title>t</title><style>p {color: red}</style></head><body>"
        "<h1>Bridges</h1><p>The old bridge over the river was built in 1820.</p>"
        "<script>var hidden = 1;</script></body></html>",
        encoding="utf-8",
    )
    (docs / "guide.rst").write_text("Guide\n=====\n\nBoats leave the pier at noon.\n")
    (docs / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\x00binary")
    (docs / "blank.md").write_text("  \n\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def indexed(work: Path, tiny_model: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    result = run("index", "my-docs", "--model", tiny_model, cwd=work)
    return work, result


def test_a_binary_file_in_a_folder_is_skipped_and_named(
    indexed: tuple[Path, subprocess.CompletedProcess[str]], tiny_model: str
) -> None:
    work, result = indexed
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 2, result.stderr
    assert any("photo.txt" in line and "not UTF-8" in line for line in skipped)
    assert any("blank.md" in line and "no text" in line for line in skipped)
    assert "Indexed 4 file(s)" in result.stdout
    assert "2 file(s) skipped" in result.stdout
    again = ok_json(run("index", "my-docs", "--model", tiny_model, "--json", cwd=work))
    assert again["files"] == 4
    assert sorted(Path(f["path"]).name for f in again["skipped_files"]) == [
        "blank.md",
        "photo.txt",
    ]
    assert again["embedded"] == 0


def test_html_and_rst_are_read(indexed: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    work, _ = indexed
    data = ok_json(run("search", "bridge built 1820", "--json", "-k", "10", cwd=work))
    texts = {Path(h["metadata"]["source"]).name: h["text"] for h in data["hits"]}
    assert texts["page.html"] == "Bridges\n\nThe old bridge over the river was built in 1820."
    assert "Boats leave the pier at noon." in texts["guide.rst"]


def test_square_brackets_survive_every_printout(
    indexed: tuple[Path, subprocess.CompletedProcess[str]], tiny_model: str
) -> None:
    work, _ = indexed
    for args in (["search", "offline model"], ["search", "offline model", "--full"]):
        out = run(*args, "-k", "10", cwd=work, columns=400)
        assert out.returncode == 0, out.stderr
        assert "stella-rag[offline]" in out.stdout and "b[i]" in out.stdout, out.stdout
    chat = run("chat", "-k", "10", cwd=work, stdin="offline model\n", columns=400)
    assert chat.returncode == 0, chat.stderr
    assert "stella-rag[offline]" in chat.stdout and "b[i]" in chat.stdout, chat.stdout
    # info's own install hint, for a model that is not there (the hub is off)
    info = run("info", "--model", "nobody/no-such-model", "--device", "cpu", cwd=work, columns=900)
    assert info.returncode == 0, info.stderr
    assert "[offline]" in info.stdout, info.stdout


def test_search_prints_one_line_per_hit_unless_full(
    indexed: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    work, _ = indexed
    out = run("search", "museum on mondays", "-k", "3", cwd=work, columns=80)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert 3 <= len(lines) <= 6, out.stdout  # a text line and a metadata line per hit
    assert all(len(line) <= 80 for line in lines), out.stdout
    assert lines[0].lstrip().startswith("1 ")
    assert any(line.endswith("…") for line in lines), out.stdout  # long passages are cut
    best = ok_json(run("search", "museum on mondays", "-k", "1", "--json", cwd=work))["hits"][0]
    full = run("search", "museum on mondays", "-k", "1", "--full", cwd=work, columns=2000)
    assert full.returncode == 0, full.stderr
    assert best["text"] in full.stdout


def test_a_rerun_does_not_report_duplicates_again(tiny_model: str, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("The same passage.")
    (tmp_path / "b.txt").write_text("The same passage.")
    first = run("index", "a.txt", "b.txt", "--model", tiny_model, cwd=tmp_path)
    assert "1 duplicate passage(s) were indexed once." in first.stdout, first.stdout
    again = run("index", "a.txt", "b.txt", "--model", tiny_model, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Nothing new to embed" in again.stdout
    assert "duplicate" not in again.stdout


def test_an_empty_file_creates_no_collection(tiny_model: str, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    result = run("index", "empty.txt", "--model", tiny_model, cwd=tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: nothing to index"), result.stderr
    assert "empty.txt" in lines[-1]
    assert not (tmp_path / ".stella-rag").exists()


def test_chat_help_lists_help(indexed: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    work, _ = indexed
    out = run("chat", "--json", cwd=work, stdin="/help\n")
    assert out.returncode == 0, out.stderr
    event = json.loads(out.stdout.splitlines()[0])
    assert event["event"] == "help"
    assert "/help" in event["text"]


def test_a_mistyped_alias_is_named_before_the_hub(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run("similarity", "-s", "a", "--model", "minilm-l6", cwd=tmp_path)
    assert result.returncode == 1
    assert "unknown model alias 'minilm-l6'; did you mean 'minilm'" in result.stderr
    assert time.monotonic() - started < 60


def test_a_foreign_collection_can_be_recorded_from_the_cli(
    tiny_model: str, tiny: SentenceEncoder, tmp_path: Path
) -> None:
    texts = ["The museum opens at ten.", "The bridge was built in 1820."]
    client = chromadb.PersistentClient(path=str(tmp_path / ".stella-rag"))
    foreign = client.create_collection("notes", embedding_function=None)
    foreign.add(ids=["1", "2"], documents=texts, embeddings=tiny.encode_documents(texts))
    del foreign, client
    args = ("search", "museum", "--collection", "notes", "--model", tiny_model)
    before = run(*args, cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    hint = f"stella-rag record-encoder --collection notes --model {tiny.model_id}"
    assert hint in before.stderr, before.stderr
    assert "adopt" not in before.stderr
    recorded = run(*hint.split()[1:], cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stderr
    assert "Recorded" in recorded.stdout
    after = run("search", "museum", "--collection", "notes", cwd=tmp_path)  # model from record
    assert after.returncode == 0, after.stderr
    assert "warning" not in after.stderr
    assert "museum" in after.stdout


@pytest.mark.slow
def test_ctrl_c_during_index_exits_130_cleanly(tiny_model: str, tmp_path: Path) -> None:
    total = 20000
    words = "the river city bridge museum tickets opening hours boat tour rain weather " * 8
    with (tmp_path / "big.jsonl").open("w") as f:
        for i in range(total):
            f.write(json.dumps({"text": f"passage {i} {words} {i * 7}"}) + "\n")
    proc, master = in_pty(
        ["index", "big.jsonl", "--model", tiny_model, "--collection", "big", "--progress"],
        tmp_path,
    )
    progress = re.compile(r"(\d+)/" + str(total))
    try:
        screen = read_pty(
            master,
            proc,
            lambda s: any(0 < int(n) < total for n in progress.findall(s)),
            180,
        )
        assert proc.poll() is None, f"the index ended before it could be interrupted:\n{screen}"
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does
        screen += read_pty(master, proc, lambda s: False, 60)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert proc.returncode == 130, (proc.returncode, screen[-2000:])
    tail = screen[-2000:]
    assert "terminate called" not in tail and "Aborted" not in tail, tail
    assert "Traceback" not in tail, tail
    assert "error: interrupted; the collection holds " in tail, tail
    assert "running the same command again continues" in tail
