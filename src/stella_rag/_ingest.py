"""Reading files into passages for ``stella-rag index``: formats, metadata, token-aware splits.

Supported files:

- ``.txt`` and ``.md``: the whole file is one text (metadata: ``source``);
- ``.jsonl``: one JSON object per line with a text field (default ``"text"``); its other fields
  become metadata (lists and objects as JSON strings), plus ``source`` and ``line``;
- ``.csv``: a header row, a text column (default ``"text"``); the other columns become
  metadata, plus ``source`` and ``row``.

A folder stands for the supported files under it. Texts longer than the passage size are split
into passages of at most that many of the model's tokens, at paragraph, sentence or word
boundaries where possible, with the given overlap; their metadata gains ``chunk``.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ._errors import StellaRagError
from ._validate import json_objects

__all__ = [
    "SUPPORTED_SUFFIXES",
    "InputFileError",
    "Passage",
    "Splitter",
    "expand_paths",
    "read_file",
]

SUPPORTED_SUFFIXES = (".txt", ".md", ".jsonl", ".csv")


class InputFileError(StellaRagError):
    """A file to index cannot be read or does not have the expected shape."""


@dataclass
class Passage:
    """One text to index and its metadata."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


class _Tokenizing(Protocol):
    tokenizer: Any

    def count_tokens(self, texts: Sequence[str], *, special_tokens: bool = True) -> list[int]: ...


# ---------------------------------------------------------------------- reading
def expand_paths(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The files to read: files as given, folders walked for supported files (sorted)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
            )
            if not found:
                raise InputFileError(
                    f"folder {str(path)!r} holds no {'/'.join(SUPPORTED_SUFFIXES)} files"
                )
            out.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise InputFileError(
                    f"cannot index {str(path)!r}: unsupported file type {path.suffix or '(none)'!r}"
                    f"; supported: {', '.join(SUPPORTED_SUFFIXES)}"
                )
            out.append(path)
        elif path.exists():
            raise InputFileError(f"cannot index {str(path)!r}: not a regular file or folder")
        else:
            raise InputFileError(f"cannot read {str(path)!r}: no such file or folder")
    return list(dict.fromkeys(out))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"cannot read {str(path)!r}: not UTF-8 text (byte {exc.start}); convert it to UTF-8"
        ) from None
    except OSError as exc:
        raise InputFileError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None


def _metadata_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, ensure_ascii=False)


def read_file(path: Path, *, text_field: str = "text") -> list[Passage]:
    """The texts of one file, with their metadata (not split yet)."""
    content = _read_text(path)
    source = str(path)
    suffix = path.suffix.lower()
    if suffix in (".txt", ".md"):
        return [Passage(content, {"source": source})] if content.strip() else []
    if suffix == ".jsonl":
        return list(_read_jsonl(content, source, text_field))
    if suffix == ".csv":
        return list(_read_csv(content, source, text_field))
    raise InputFileError(f"cannot index {source!r}: unsupported file type {suffix!r}")


def _read_jsonl(content: str, source: str, text_field: str) -> Iterator[Passage]:
    for number, record in json_objects(content.splitlines(), source, InputFileError):
        text = record.get(text_field)
        if not isinstance(text, str):
            raise InputFileError(
                f"{source}:{number}: no string field {text_field!r} (fields: {sorted(record)}); "
                "use --text-field to name the field that holds the text"
            )
        if not text.strip():
            continue
        meta = {
            str(k): _metadata_value(v)
            for k, v in record.items()
            if k != text_field and v is not None
        }
        meta.update(source=source, line=number)
        yield Passage(text, meta)


def _read_csv(content: str, source: str, text_field: str) -> Iterator[Passage]:
    reader = csv.DictReader(content.splitlines())
    fields = reader.fieldnames or []
    if text_field not in fields:
        raise InputFileError(
            f"{source}: no column {text_field!r} in the header {fields}; "
            "use --text-field to name the column that holds the text"
        )
    try:
        for row in reader:
            text = row.get(text_field) or ""
            if not text.strip():
                continue
            meta: dict[str, Any] = {
                str(k): v for k, v in row.items() if k and k != text_field and v not in (None, "")
            }
            meta.update(source=source, row=reader.line_num)
            yield Passage(text, meta)
    except csv.Error as exc:
        raise InputFileError(f"{source}:{reader.line_num}: bad CSV ({exc})") from None


# -------------------------------------------------------------------- splitting
_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"[.!?;:。！？；：…]['\"”’)\]]*\s*$")
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")


class Splitter:
    """Splits texts into passages of at most ``size`` tokens of the encoder's tokenizer.

    Args:
        encoder: gives the tokenizer (``count_tokens`` and ``tokenizer``).
        size: the most tokens per passage, special tokens not counted.
        overlap: tokens a passage repeats from the end of the one before it.
    """

    def __init__(self, encoder: _Tokenizing, size: int, overlap: int = 0) -> None:
        if size < 8:
            raise ValueError(f"the passage size must be at least 8 tokens, got {size}")
        if overlap < 0 or overlap >= size:
            raise ValueError(
                f"the overlap must be at least 0 and less than the passage size ({size}), "
                f"got {overlap}"
            )
        self.encoder = encoder
        self.size = size
        self.overlap = overlap

    def split(self, text: str) -> list[str]:
        """The passages of one text, in order (the text itself when it fits)."""
        if self._tokens(text) <= self.size:
            return [text.strip()] if text.strip() else []
        enc = self.encoder.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        offsets: list[tuple[int, int]] = [tuple(o) for o in enc["offset_mapping"]]
        n = len(offsets)
        out: list[str] = []
        start = 0
        while start < n:
            end = min(start + self.size, n)
            if end < n:
                end = self._break_before(text, offsets, start, end)
            piece = text[offsets[start][0] : offsets[end - 1][1]].strip()
            # Re-tokenizing a piece can differ from its slice of the whole at the seams.
            while end > start + 1 and self._tokens(piece) > self.size:
                end -= 1
                piece = text[offsets[start][0] : offsets[end - 1][1]].strip()
            if piece:
                out.append(piece)
            if end >= n:
                break
            start = self._next_start(text, offsets, start, end)
        return out

    def split_passages(self, passages: Sequence[Passage]) -> Iterator[Passage]:
        """Each passage, split where it is too long (pieces get a ``chunk`` number)."""
        for passage in passages:
            pieces = self.split(passage.text)
            if len(pieces) == 1:
                yield Passage(pieces[0], dict(passage.metadata))
                continue
            for i, piece in enumerate(pieces):
                yield Passage(piece, {**passage.metadata, "chunk": i})

    # A window ends at the best boundary in its last quarter: paragraph, then sentence, then
    # word; tokens inside a word (WordPiece "##") are never cut apart when avoidable.
    def _break_before(self, text: str, offsets: list[tuple[int, int]], start: int, end: int) -> int:
        low = max(start + 1, end - max(self.size // 4, 1), start + self.overlap + 1)
        best: dict[int, int] = {}
        for j in range(end, low - 1, -1):  # cut between token j-1 and token j
            gap = text[offsets[j - 1][1] : offsets[j][0]]
            before = text[offsets[max(j - 1, 0)][0] : offsets[j - 1][1]]
            if _PARAGRAPH.search(gap) or "\n\n" in gap:
                rank = 3
            elif _SENTENCE_END.search(before) and (gap or _CJK.search(before)):
                rank = 2
            elif gap or _CJK.match(text, offsets[j][0]) or _CJK.search(before):
                rank = 1
            else:
                continue
            best.setdefault(rank, j)
            if rank == 3:
                break
        for rank in (3, 2, 1):
            if rank in best:
                return best[rank]
        return end

    def _next_start(self, text: str, offsets: list[tuple[int, int]], start: int, end: int) -> int:
        if self.overlap == 0:
            return end
        nxt = max(end - self.overlap, start + 1)
        # Open the next passage at the start of a word: forward first (less overlap), else back.
        for j in (*range(nxt, end), *range(nxt - 1, start, -1)):
            gap = text[offsets[j - 1][1] : offsets[j][0]]
            if (
                gap
                or _CJK.match(text, offsets[j][0])
                or _CJK.search(text, offsets[j - 1][0], offsets[j - 1][1])
            ):
                return j
        return nxt

    def _tokens(self, text: str) -> int:
        return self.encoder.count_tokens([text], special_tokens=False)[0]
