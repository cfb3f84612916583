"""examples/quickstart.ipynb runs offline, cell by cell, and its results render as HTML tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from stella_rag import Hit, Hits

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"
KERNEL = "stella-rag-tests"


@pytest.fixture
def kernel_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec for this very interpreter, found through JUPYTER_PATH (any venv works)."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "stella-rag tests",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    return KERNEL


def _cell(nb: Any, tag: str) -> Any:
    return next(c for c in nb.cells if tag in c.get("metadata", {}).get("tags", []))


def _html(cell: Any) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)


def _text(cell: Any) -> str:
    parts = []
    for output in cell.outputs:
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


@pytest.mark.slow
def test_quickstart_notebook_runs(kernel_name: str, tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=600,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    assert "embedded 6, then 0 on the second run (6 skipped)" in _text(_cell(nb, "index"))

    search = _html(_cell(nb, "search"))
    assert search.startswith("<table")
    for header in ("rank", "score", "text", "metadata"):
        assert f"<th>{header}</th>" in search
    assert search.count("<tr><td>") == 3
    assert "Calloway Maritime Museum is closed on Mondays" in search.split("</tr>")[1]
    assert "topic" in search

    chat = _html(_cell(nb, "chat"))
    assert "A ticket for the Calloway Maritime Museum costs 14 dollars" in chat.split("</tr>")[1]
    assert "[SEP]" in _text(_cell(nb, "window"))
    assert "(4, 384)" in _text(_cell(nb, "similarity"))
    assert "649 US dollars" in _text(_cell(nb, "chroma"))


def test_hits_render_as_an_html_table() -> None:
    hits = Hits(
        [
            Hit("a", "<b>bold</b> & more", 0.91234, {"lang": "en", "page": 3}),
            Hit("b", "x" * 1000, None, {}),
        ]
    )
    html = hits._repr_html_()
    assert html.startswith("<table") and html.count("<tr><td>") == 2
    assert "<td>1</td><td>0.9123</td>" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in html  # escaped, not rendered
    assert "&quot;page&quot;: 3" in html
    assert "x" * 400 + "…" in html and "x" * 401 not in html
    assert Hits()._repr_html_() == "<p><em>no hits</em></p>"
    assert hits[0]._repr_html_().count("<tr><td>") == 1
