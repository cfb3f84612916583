"""Search results: :class:`Hit` and a list of them that renders as a table in Jupyter."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Hit", "Hits"]

_HTML_TEXT_CHARS = 400


@dataclass(frozen=True)
class Hit:
    """One retrieved passage.

    Attributes:
        id: the passage id in the collection.
        text: the passage.
        score: cosine similarity to the query, higher is better (``None`` from ``get``).
        metadata: the passage's metadata.
    """

    id: str
    text: str
    score: float | None
    metadata: dict[str, Any] = field(default_factory=dict)

    def _repr_html_(self) -> str:
        return Hits([self])._repr_html_()


class Hits(list[Hit]):
    """A list of :class:`Hit`, best first, shown as a table in notebooks."""

    def _repr_html_(self) -> str:
        rows = []
        for rank, hit in enumerate(self, start=1):
            text = (
                hit.text if len(hit.text) <= _HTML_TEXT_CHARS else hit.text[:_HTML_TEXT_CHARS] + "…"
            )
            score = "" if hit.score is None else f"{hit.score:.4f}"
            meta = json.dumps(hit.metadata, ensure_ascii=False, default=str) if hit.metadata else ""
            rows.append(
                f"<tr><td>{rank}</td><td>{score}</td><td>{html.escape(hit.id)}</td>"
                f"<td style='text-align:left'>{html.escape(text)}</td>"
                f"<td style='text-align:left'><code>{html.escape(meta)}</code></td></tr>"
            )
        if not rows:
            return "<p><em>no hits</em></p>"
        return (
            "<table><thead><tr><th>rank</th><th>score</th><th>id</th><th>text</th>"
            "<th>metadata</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        )
