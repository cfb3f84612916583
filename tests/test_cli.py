"""The `stella-rag` command, run as a user runs it: as a subprocess, with files and stdin."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, in_pty, ok_json, read_pty, run

from stella_rag import SentenceEncoder
from stella_rag.testing import ChromaServer, free_port

MUSEUM = "The Calloway Maritime Museum is closed on Mondays and opens at ten on other days."
LONG_TEXT = "\n\n".join(
    f"Paragraph {i}. The old bridge over the river was built in the year {1800 + i}. "
    "Tickets for the museum cost twelve dollars, and the city opens it every day."
    for i in range(12)
)


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file of each supported kind."""
    folder = tmp_path_factory.mktemp("docs")
    (folder / "long.txt").write_text(LONG_TEXT, encoding="utf-8")
    (folder / "notes.md").write_text("# Notes\n\nWe play basketball by the river.\n")
    rows = [
        {"text": MUSEUM, "id": "m1", "lang": "en", "tags": ["museum", "hours"]},
        {"text": "最近去打篮球了吗？没有，因为受伤了。", "id": "z1", "lang": "zh"},
    ]
    (folder / "rows.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8"
    )
    (folder / "table.csv").write_text(
        "title,text\nPhone,The new phone battery lasts a day and its price is high.\n",
        encoding="utf-8",
    )
    return folder


@pytest.fixture(scope="module")
def first_index(
    docs: Path, tiny_model: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """A working folder whose ./.stella-rag holds collection 'docs' indexed from `docs`."""
    work = tmp_path_factory.mktemp("work")
    result = run(
        "index",
        str(docs),
        "--model",
        tiny_model,
        "--chunk-tokens",
        "64",
        "--overlap-tokens",
        "8",
        "--json",
        cwd=work,
    )
    summary = ok_json(result)
    assert summary["files"] == 4
    assert summary["embedded"] == summary["passages"] == summary["count"]
    assert (work / ".stella-rag").is_dir()
    return work, summary


@pytest.fixture(scope="module")
def indexed(first_index: tuple[Path, dict[str, Any]]) -> Path:
    return first_index[0]


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("index", "search", "chat", "similarity", "eval", "info"):
        assert command in result.stdout


@pytest.mark.slow
def test_index_splits_by_model_tokens_and_keeps_metadata(
    indexed: Path, tiny: SentenceEncoder, docs: Path
) -> None:
    hits = ok_json(run("search", MUSEUM, "-k", "50", "--json", cwd=indexed))["hits"]
    assert hits[0]["text"] == MUSEUM
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    meta = hits[0]["metadata"]
    assert meta["id"] == "m1" and meta["lang"] == "en"
    assert json.loads(meta["tags"]) == ["museum", "hours"]
    assert meta["source"] == str(docs / "rows.jsonl") and meta["line"] == 1
    assert any(h["metadata"].get("title") == "Phone" for h in hits)  # a CSV column
    pieces = sorted(
        (h for h in hits if h["metadata"]["source"].endswith("long.txt")),
        key=lambda h: h["metadata"]["chunk"],
    )
    assert len(pieces) > 3
    assert [h["metadata"]["chunk"] for h in pieces] == list(range(len(pieces)))
    counts = tiny.count_tokens([h["text"] for h in pieces], special_tokens=False)
    assert max(counts) <= 64
    joined = " ".join(h["text"] for h in pieces)
    for i in range(12):  # nothing of the long text was lost
        assert f"built in the year {1800 + i}" in joined


@pytest.mark.slow
def test_index_again_embeds_nothing_and_says_so(
    first_index: tuple[Path, dict[str, Any]], docs: Path
) -> None:
    indexed, summary = first_index
    count = summary["passages"]
    result = run("index", str(docs), "--chunk-tokens", "64", "--overlap-tokens", "8", cwd=indexed)
    assert result.returncode == 0, result.stderr
    assert f"Nothing new to embed: all {count} passages from 4 file(s) are already in 'docs'" in (
        " ".join(result.stdout.split())
    )


@pytest.mark.slow
def test_search_prints_a_table(indexed: Path) -> None:
    result = run("search", MUSEUM, "-k", "2", "--full", cwd=indexed)
    assert result.returncode == 0, result.stderr
    assert "score" in result.stdout and "1.000" in result.stdout
    assert "Calloway Maritime Museum" in result.stdout


@pytest.mark.slow
def test_user_mistakes_are_one_line_errors(
    indexed: Path, tiny_dialogue_model: str, tmp_path: Path
) -> None:
    assert_one_line_error(
        run("search", "museum", "--collection", "nope", cwd=indexed),
        "no collection 'nope'",
        "'docs'",
    )
    assert_one_line_error(
        run("search", "museum", "--path", str(tmp_path / "nothing-here"), cwd=indexed),
        "no stella-rag database",
    )
    assert_one_line_error(
        run("index", str(tmp_path / "missing.txt"), cwd=indexed), "missing.txt", "no such file"
    )
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    assert_one_line_error(run("index", str(tmp_path / "latin1.txt"), cwd=indexed), "not UTF-8")
    (tmp_path / "broken.jsonl").write_text('{"text": "fine"}\n{"text": oops}\n')
    assert_one_line_error(
        run("index", str(tmp_path / "broken.jsonl"), cwd=indexed),
        "broken.jsonl:2",
        "not valid JSON",
    )
    (tmp_path / "doc.pdf").write_bytes(b"%PDF")
    assert_one_line_error(
        run("index", str(tmp_path / "doc.pdf"), cwd=indexed), "doc.pdf", "not a readable PDF"
    )
    assert_one_line_error(
        run("search", "museum", "--server", f"127.0.0.1:{free_port()}", cwd=indexed),
        "cannot reach the Chroma server",
    )
    assert_one_line_error(
        run("search", "museum", "--model", "no-such-org/no-such-model", cwd=indexed),
        "'no-such-org/no-such-model' is not in the local cache",
    )
    assert_one_line_error(
        run("search", "museum", "--model", tiny_dialogue_model, cwd=indexed),
        "collection 'docs' was written by",
    )
    assert_one_line_error(
        run("eval", "--corpus", str(tmp_path / "c.jsonl"), "--dialogues", "d.jsonl", cwd=indexed),
        "cannot read the eval set",
        "c.jsonl",
    )
    assert_one_line_error(
        run("index", str(tmp_path / "broken.jsonl"), "--chunk-tokens", "4000", cwd=indexed),
        "broken.jsonl:2",  # files are checked before anything is embedded
    )


def test_chunk_options_are_checked(docs: Path, tmp_path: Path) -> None:
    assert_one_line_error(
        run("index", str(docs), "--chunk-tokens", "20", "--overlap-tokens", "20", cwd=tmp_path),
        "--overlap-tokens must be at least 0 and less than --chunk-tokens (20), got 20",
    )
    assert_one_line_error(
        run("index", str(docs), "--chunk-tokens", "4", cwd=tmp_path),
        "--chunk-tokens must be at least 8, got 4",
    )
    assert not (tmp_path / ".stella-rag").exists()


@pytest.mark.slow
def test_chunk_size_must_fit_the_model(indexed: Path, docs: Path) -> None:
    assert_one_line_error(
        run("index", str(docs), "--chunk-tokens", "4000", cwd=indexed),
        "chunk_tokens=4000 is more than",  # checked by the core's ingest(), in its words
        "use at most 126",
    )


@pytest.mark.slow
def test_chat_with_piped_stdin(indexed: Path) -> None:
    script = "\n".join(
        [
            "we play basketball by the river",
            "/assistant Nice, which day do you play?",
            MUSEUM,
            "/show",
            "/frobnicate",
            "/assistant",
            "/reset",
            "/show",
            "//slash message about the museum",
            "/quit",
            "this line comes after /quit and is never read",
        ]
    )
    result = run("chat", "-k", "3", "--json", cwd=indexed, stdin=script + "\n")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds == ["hits", "assistant", "hits", "window", "reset", "window", "hits"]
    first, _, third, window, _, empty, after_reset = events
    assert first["turn"] == 1 and len(first["hits"]) == 3
    assert third["turn"] == 3 and third["hits"][0]["text"] == MUSEUM
    assert window["text"] == (
        "A: we play basketball by the river[SEP]B: Nice, which day do you play?[SEP]A: " + MUSEUM
    )
    assert window["dropped"] == 0 and window["turns"] == 3
    assert empty["turns"] == 0
    assert after_reset["turn"] == 1 and after_reset["text"] == "/slash message about the museum"
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2
    assert errors[0].startswith("error: unknown command /frobnicate")
    assert errors[1].startswith("error: /assistant needs")


@pytest.mark.slow
def test_chat_show_names_the_dropped_turns(indexed: Path) -> None:
    lines = [
        "the old bridge over the river was built long ago",
        "/assistant yes it is very old",
        "is the museum open on monday",
        "/show",
    ]
    result = run("chat", "--max-tokens", "16", cwd=indexed, stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"2 earliest turn\(s\) dropped", out), out
    assert "dropped 1: A: the old bridge over the river was built long ago" in out
    assert "dropped 2: B: yes it is very old" in out
    assert "A: is the museum open on monday" in out
    assert "turn 3: top 4 passages" in out


@pytest.mark.slow
def test_chat_in_a_terminal(indexed: Path) -> None:
    proc, fd = in_pty(["chat", "-k", "2"], indexed)
    try:
        banner = read_pty(fd, proc, lambda s: "you> " in s, 120)
        assert "/assistant TEXT" in banner
        os.write(fd, (MUSEUM + "\n").encode())
        answer = read_pty(fd, proc, lambda s: "you> " in s, 60)
        assert "turn 1: top 2 passages" in answer
        assert "Calloway" in answer
        os.write(fd, b"/quit\n")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(fd)


@pytest.mark.slow
def test_index_resumes_after_being_killed(tiny_model: str, tmp_path: Path) -> None:
    total = 2500
    big = tmp_path / "big.jsonl"
    big.write_text(
        "".join(
            json.dumps({"text": f"passage {i} about the river city bridge and museum {i * 7}"})
            + "\n"
            for i in range(total)
        )
    )
    args = ["index", str(big), "--model", tiny_model, "--collection", "big", "--progress"]
    proc, fd = in_pty(args, tmp_path)
    progress = re.compile(r"(\d+)/" + str(total))
    try:
        # The bar moves after every forward pass, before a chunk of 512 is written: past 600,
        # the first chunk is stored.
        def some_written(screen: str) -> bool:
            return any(600 < int(n) < total for n in progress.findall(screen))

        screen = read_pty(fd, proc, some_written, 180)
        assert proc.poll() is None, f"the index finished before it could be killed:\n{screen}"
        assert "passages/s" in screen
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(fd)
    shown = max(int(n) for n in progress.findall(screen))
    assert 600 < shown < total

    summary = ok_json(run(*args[:-1], "--json", cwd=tmp_path))
    # What was written survives: whole chunks, up to what the bar showed.
    assert 512 <= summary["skipped"] <= shown
    assert summary["embedded"] == total - summary["skipped"] > 0
    assert summary["count"] == total


@pytest.mark.slow
def test_similarity_is_the_gte_pipeline(
    tiny_model: str, tiny: SentenceEncoder, tmp_path: Path
) -> None:
    source = "is the museum open on monday"
    compare = ["the museum is closed on monday", "we play basketball"]
    result = run(
        "similarity",
        "--source",
        source,
        "--compare",
        compare[0],
        "--compare",
        compare[1],
        "--model",
        tiny_model,
        cwd=tmp_path,
    )
    data = ok_json(result)
    embeddings = np.asarray(data["text_embedding"])
    assert embeddings.shape == (3, tiny.dim)
    query = tiny.encode_queries([source])[0]
    docs = tiny.encode_documents(compare)
    np.testing.assert_allclose(embeddings, np.vstack([query, docs]), atol=1e-5)
    np.testing.assert_allclose(data["scores"], docs @ query, atol=1e-5)


@pytest.mark.slow
def test_eval_compares_with_the_last_turn_baseline(tiny_model: str, tmp_path: Path) -> None:
    passages = {
        "p1": "the museum is not open on monday",
        "p2": "the ticket price of the museum is new",
        "p3": "we play basketball by the river",
        "p4": "the phone battery has a new price",
        "p5": "最近去打篮球了吗",
        "p6": "the old bridge over the river",
    }
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"id": pid, "text": text, "lang": "zh" if pid == "p5" else "en"}) + "\n"
            for pid, text in passages.items()
        )
    )
    cases = [  # each last turn is its passage word for word: the baseline must rank it first
        ("c1", "ellipsis", "en", "the museum", "p1"),
        ("c2", "ellipsis", "en", "my phone", "p4"),
        ("c3", "topic_shift", "zh", "你好", "p5"),
    ]
    dialogues = tmp_path / "dialogues.jsonl"
    dialogues.write_text(
        "".join(
            json.dumps(
                {
                    "id": cid,
                    "category": category,
                    "lang": lang,
                    "turns": [
                        {"role": "user", "text": first},
                        {"role": "assistant", "text": "yes"},
                        {"role": "user", "text": passages[pid]},
                    ],
                    "relevant": [pid],
                },
                ensure_ascii=False,
            )
            + "\n"
            for cid, category, lang, first, pid in cases
        )
    )
    args = ["eval", "--corpus", str(corpus), "--dialogues", str(dialogues), "--model", tiny_model]
    data = ok_json(run(*args, "--json", cwd=tmp_path))
    assert (data["cases"], data["passages"]) == (3, 6)
    baseline = data["systems"]["last_turn"]
    assert baseline["overall"] == {
        "n": 3,
        "mrr_at_10": 1.0,
        "recall_at_1": 1.0,
        "recall_at_10": 1.0,
        "ndcg_at_10": 1.0,
    }
    conversational = data["systems"]["conversational"]
    assert set(conversational["by_category"]) == {"ellipsis", "topic_shift"}
    assert set(conversational["by_language"]) == {"en", "zh"}
    assert conversational["by_category"]["ellipsis"]["n"] == 2
    for metrics in (conversational["overall"], *conversational["by_category"].values()):
        assert all(0.0 <= metrics[key] <= 1.0 for key in ("mrr_at_10", "ndcg_at_10"))

    result = run(*args, "--strategy", "last_turn", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for header in ("MRR@10", "R@1", "R@10", "nDCG@10", "conv", "last"):
        assert header in out
    overall = next(line for line in out.splitlines() if line.strip().startswith("overall"))
    assert overall.split()[1:] == ["3"] + ["1.000"] * 8
    assert re.search(r"topic_shift\s+1\s", out) and re.search(r"zh\s+1\s", out)


@pytest.mark.slow
def test_info(indexed: Path, tiny_model: str) -> None:
    data = ok_json(
        run(
            "info",
            "--model",
            tiny_model,
            "--dialogue-model",
            "no-such-org/no-such-model",
            "--json",
            cwd=indexed,
        )
    )
    assert data["device"] == "cpu"
    documents, dialogue = data["models"]
    assert (documents["available"], documents["dim"], documents["max_seq_length"]) == (
        True,
        48,
        128,
    )
    assert documents["precision"] == "float32"
    assert dialogue["available"] is False and "not in the local cache" in dialogue["error"]
    [collection] = data["store"]["collections"]
    assert collection["name"] == "docs" and collection["count"] > 5
    assert collection["model"] == str(Path(tiny_model).resolve()) and collection["dim"] == 48


@pytest.mark.slow
@pytest.mark.server
def test_index_and_search_on_a_chroma_server(
    docs: Path, tiny_model: str, chroma_server: ChromaServer, tmp_path: Path
) -> None:
    server = ["--server", chroma_server.address, "--collection", "cli-docs"]
    summary = ok_json(
        run(
            "index",
            str(docs / "rows.jsonl"),
            *server,
            "--model",
            tiny_model,
            "--json",
            cwd=tmp_path,
        )
    )
    assert summary["embedded"] == 2
    hits = ok_json(run("search", MUSEUM, *server, "--json", cwd=tmp_path))["hits"]
    assert hits[0]["text"] == MUSEUM
    assert not (tmp_path / ".stella-rag").exists()
