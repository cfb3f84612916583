"""Issue 13, a new user's first hour: the library side (install hints, file formats, progress,
model names, quiet loading, errors of one dialogue)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stella_rag import (
    ChromaStore,
    ConversationalRetriever,
    DialogueEncoder,
    EmptyDialogueError,
    IngestReport,
    InputFileError,
    ModelNotAvailableError,
    SentenceEncoder,
    ingest,
)
from stella_rag._ingest import read_file, scan_files
from stella_rag._install import install_command
from stella_rag._models import offline_hint, resolve_model

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ install hints
def test_install_hints_work_from_this_clone() -> None:
    # This checkout is installed editable (scripts/dev.sh): stella-rag is not on the index yet.
    assert install_command("offline") == f"pip install -e '{ROOT}[offline]'"
    assert install_command() == f"pip install -e '{ROOT}'"
    assert install_command("offline") in offline_hint()


def test_install_hint_without_a_clone(monkeypatch: pytest.MonkeyPatch) -> None:
    from stella_rag import _install

    monkeypatch.setattr(_install, "_source_folder", lambda: None)
    assert install_command("documents") == "pip install 'stella-rag[documents]'"


# ------------------------------------------------------------------ model names
def test_a_mistyped_alias_gets_did_you_mean() -> None:
    with pytest.raises(ModelNotAvailableError, match=r"did you mean 'minilm'\?"):
        resolve_model("minilm-l6")
    with pytest.raises(ModelNotAvailableError, match="stella-large-zh"):
        resolve_model("stella-large")
    # hub ids without an owner are still hub ids
    assert resolve_model("all-MiniLM-L6-v2").location == "all-MiniLM-L6-v2"


def test_loading_a_model_draws_no_progress_bar(tiny_model: str) -> None:
    code = (
        "from stella_rag import SentenceEncoder; "
        f"SentenceEncoder({tiny_model!r}, device='cpu').load()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=180
    )
    assert "Loading weights" not in out.stderr, out.stderr
    import transformers.utils.logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()  # a global setting is left as it was


def test_one_dialogue_has_no_dialogue_number_in_its_errors(tiny: SentenceEncoder) -> None:
    store = ChromaStore("one-dialogue", encoder=tiny)
    retriever = ConversationalRetriever(store, DialogueEncoder(general=tiny))
    with pytest.raises(EmptyDialogueError) as caught:
        retriever.retrieve([])
    assert not str(caught.value).startswith("dialogue 0")
    with pytest.raises(EmptyDialogueError, match=r"^dialogue 1: "):
        retriever.retrieve_many(["hello", []])


# ------------------------------------------------------------------ progress
def test_ingest_reports_progress_within_a_chunk(tiny: SentenceEncoder, tmp_path: Path) -> None:
    (tmp_path / "many.txt").write_text("")
    rows = "\n".join(f'{{"text": "passage number {i} about boats"}}' for i in range(600))
    (tmp_path / "many.jsonl").write_text(rows)
    seen: list[int] = []

    def on_progress(report: IngestReport) -> None:
        seen.append(report.done)

    store = ChromaStore("progress", encoder=tiny)
    report = ingest(store, [tmp_path / "many.jsonl"], on_progress=on_progress)
    assert report.embedded == 600
    # The first chunk holds 512 passages; the bar moves after each forward pass inside it.
    assert any(0 < n < 512 for n in seen), seen
    assert seen == sorted(seen) and seen[-1] == 600


# ------------------------------------------------------------------ file formats
def _pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` in Helvetica, with a correct cross-reference table."""
    stream = f"BT /F1 18 Tf 20 80 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer << /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


_PDF = _pdf("The ferry leaves at noon.")


def test_html_and_rst_need_no_extra(tmp_path: Path) -> None:
    html = tmp_path / "page.htm"
    html.write_text(
        "<html><head><title>x</title><script>var a = '<p>no</p>';</script></head><body>"
        "<div>Opening <b>hours</b>:</div><ul><li>Mon &ndash; closed</li><li>Tue 10&ndash;5</li>"
        "</ul></body></html>"
    )
    assert [p.text for p in read_file(html)] == ["Opening hours:\n\nMon – closed\n\nTue 10–5"]
    rst = tmp_path / "guide.rst"
    rst.write_text("Guide\n=====\n\n.. note:: Boats leave at noon.\n")
    [passage] = read_file(rst)
    assert "Boats leave at noon." in passage.text
    assert passage.metadata == {"source": str(rst)}


def test_pdf_and_docx_with_the_documents_extra(tmp_path: Path) -> None:
    pytest.importorskip("pypdf", reason="the documents extra")
    docx = pytest.importorskip("docx", reason="the documents extra")
    pdf = tmp_path / "ferry.pdf"
    pdf.write_bytes(_PDF)
    [page] = read_file(pdf)
    assert "ferry leaves at noon" in page.text
    assert page.metadata == {"source": str(pdf), "page": 1}
    document = docx.Document()
    document.add_paragraph("The museum opens at ten.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Monday"
    table.rows[0].cells[1].text = "closed"
    document.save(str(tmp_path / "hours.docx"))
    [passage] = read_file(tmp_path / "hours.docx")
    assert passage.text == "The museum opens at ten.\n\nMonday | closed"


def test_a_missing_converter_skips_the_file_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.import_module

    def no_pypdf(name: str, package: str | None = None) -> Any:
        if name == "pypdf":
            raise ImportError("No module named 'pypdf'")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_pypdf)
    (tmp_path / "a.pdf").write_bytes(_PDF)
    (tmp_path / "b.md").write_text("Boats leave at noon.")
    scan = scan_files([tmp_path])
    assert scan.files == [tmp_path / "b.md"]
    [skipped] = scan.skipped
    assert skipped.path == tmp_path / "a.pdf"
    assert "needs pypdf" in skipped.reason
    assert install_command("documents") in skipped.reason


def test_unreadable_and_empty_files_are_skipped_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("Boats leave at noon.")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00\x01")
    (tmp_path / "empty.md").write_text("")
    (tmp_path / "rows.jsonl").write_text('{"body": "no text field"}\n')
    scan = scan_files([tmp_path])
    assert scan.files == [tmp_path / "good.txt"]
    reasons = {s.path.name: s.reason for s in scan.skipped}
    assert "not UTF-8" in reasons["binary.txt"]
    assert "no text" in reasons["empty.md"]
    assert "--text-field" in reasons["rows.jsonl"]
    with pytest.raises(InputFileError, match="nothing to index: none of the 2 file"):
        scan_files([tmp_path / "empty.md", tmp_path / "binary.txt"])


# ------------------------------------------------------------------ benchmarks
def test_the_bench_task_installs_what_the_benchmarks_import() -> None:
    """`bash scripts/dev.sh bench` installs benchmarks/requirements.txt: every third-party module
    the harnesses import is either there or comes with stella-rag and its extras."""
    script = (ROOT / "scripts" / "dev.sh").read_text()
    assert "bench)" in script or "demo|test|bench" in script
    assert "-r benchmarks/requirements.txt" in script
    assert "benchmarks/run.py" in script
    wanted = {
        line.split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for line in (ROOT / "benchmarks" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    peers = {
        "langchain_huggingface": "langchain-huggingface",
        "llama_index.embeddings.huggingface": "llama-index-embeddings-huggingface",
        "psutil": "psutil",
    }
    imported: set[str] = set()
    for path in (ROOT / "benchmarks").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module)
    for module, distribution in peers.items():
        if module in imported:
            assert distribution in wanted, (module, wanted)
