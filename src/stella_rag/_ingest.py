"""Indexing files: formats, metadata, token-aware splits, and :func:`ingest`, which does it all.

Supported files:

- ``.txt``, ``.md`` and ``.rst``: the whole file is one text (metadata: ``source``);
- ``.html`` and ``.htm``: the page's visible text, one text (metadata: ``source``);
- ``.pdf``: one text per page (metadata: ``source``, ``page``), with ``pypdf``; and ``.docx``:
  the document's paragraphs and tables as one text, with ``python-docx``. Both come with the
  ``documents`` extra; without it these files are skipped with the install command;
- ``.jsonl``: one JSON object per line with a text field (default ``"text"``); its other fields
  become metadata (lists and objects as JSON strings), plus ``source`` and ``line``;
- ``.csv``: a header row, a text column (default ``"text"``); the other columns become
  metadata, plus ``source`` and ``row``.

A folder stands for the supported files under it. A file that cannot be read (not UTF-8, no
permission, a broken PDF, a JSON Lines file without the text field...) or holds no text is
skipped and named in :attr:`IngestReport.skipped_files` with the reason; only when no file is
left is it an error, raised before anything (a collection included) is made.

Texts longer than the passage size are split into passages of at most that many of the
model's tokens, at paragraph, sentence or word boundaries where possible, with the given
overlap; their metadata gains ``chunk``.

:func:`ingest` reads the files one at a time and streams their passages into a
:class:`~stella_rag.ChromaStore` (which embeds and writes them chunk by chunk), so the corpus is
never held in memory; ``stella-rag index`` is a thin shell around it.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ._errors import InputFileError
from ._validate import json_objects

if TYPE_CHECKING:
    from ._store import AddReport, ChromaStore

__all__ = [
    "SUPPORTED_SUFFIXES",
    "FileReport",
    "FileScan",
    "IngestReport",
    "InputFileError",
    "Passage",
    "SkippedFile",
    "Splitter",
    "expand_paths",
    "ingest",
    "read_file",
    "scan_files",
]

SUPPORTED_SUFFIXES = (
    ".txt",
    ".md",
    ".rst",
    ".html",
    ".htm",
    ".jsonl",
    ".csv",
    ".pdf",
    ".docx",
)
_PLAIN_SUFFIXES = (".txt", ".md", ".rst")


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
    """The texts of one file, with their metadata (not split yet).

    Raises:
        InputFileError: the file cannot be read or does not have the expected shape.
    """
    source = str(path)
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return _read_pdf(path)
    if suffix == ".docx":
        return _read_docx(path)
    content = _read_text(path)
    if suffix in _PLAIN_SUFFIXES:
        return [Passage(content, {"source": source})] if content.strip() else []
    if suffix in (".html", ".htm"):
        text = _html_text(content)
        return [Passage(text, {"source": source})] if text.strip() else []
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


class _HtmlText(HTMLParser):
    """The visible text of a page: no scripts or styles; blocks become paragraphs."""

    _HIDDEN = frozenset({"script", "style", "head", "template", "noscript", "svg"})
    _BLOCKS = frozenset(
        {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table",
         "section", "article", "blockquote", "dd", "dt", "hr", "header", "footer", "ul", "ol"}
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def _html_text(content: str) -> str:
    parser = _HtmlText()
    parser.feed(content)
    parser.close()
    paragraphs = (" ".join(p.split()) for p in _PARAGRAPH.split("".join(parser.parts)))
    return "\n\n".join(p for p in paragraphs if p)


def _converter(module: str, package: str, suffix: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        from ._install import install_command

        raise InputFileError(
            f"reading {suffix} files needs {package}: {install_command('documents')}"
        ) from None


def _read_pdf(path: Path) -> list[Passage]:
    pypdf = _converter("pypdf", "pypdf", ".pdf")
    source = str(path)
    try:
        with _quiet_logger("pypdf"):  # its warnings about a file go to stderr, not our report
            reader = pypdf.PdfReader(str(path))
            pages = [page.extract_text() or "" for page in reader.pages]
    except OSError as exc:
        raise InputFileError(f"cannot read {source!r}: {exc.strerror or exc}") from None
    except Exception as exc:  # pypdf's errors for broken or encrypted files
        raise InputFileError(f"cannot read {source!r}: not a readable PDF ({exc})") from None
    return [
        Passage(text, {"source": source, "page": number})
        for number, text in enumerate(pages, start=1)
        if text.strip()
    ]


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _read_docx(path: Path) -> list[Passage]:
    docx = _converter("docx", "python-docx", ".docx")
    source = str(path)
    try:
        document = docx.Document(str(path))
        parts = [p.text for p in document.paragraphs]
        for table in document.tables:
            for row in table.rows:
                parts.append(" | ".join(cell.text for cell in row.cells))
    except OSError as exc:
        raise InputFileError(f"cannot read {source!r}: {exc.strerror or exc}") from None
    except Exception as exc:  # python-docx's errors for files that are not Word documents
        raise InputFileError(f"cannot read {source!r}: not a readable DOCX ({exc})") from None
    text = "\n\n".join(p.strip() for p in parts if p.strip())
    return [Passage(text, {"source": source})] if text else []


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

    @classmethod
    def for_encoder(
        cls, encoder: Any, chunk_tokens: int | None = None, overlap_tokens: int | None = None
    ) -> Splitter:
        """A splitter whose passages ``encoder`` reads whole: at most ``chunk_tokens`` tokens
        (default: all the model reads, less its special tokens), repeating ``overlap_tokens``
        (default: 32, or a quarter of a smaller passage).

        Raises:
            ValueError: ``chunk_tokens`` is more than the model reads, or the overlap is out of
                range.
        """
        room = passage_room(encoder)
        if chunk_tokens is None:
            chunk_tokens = room
        elif chunk_tokens > room:
            raise ValueError(
                f"chunk_tokens={chunk_tokens} is more than {encoder.model_id!r} reads "
                f"({encoder.max_seq_length} tokens, {room} without special tokens); "
                f"use at most {room}"
            )
        if overlap_tokens is None:
            overlap_tokens = min(32, chunk_tokens // 4)
        return cls(_tokenizing(encoder), chunk_tokens, overlap_tokens)

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


# ---------------------------------------------------------------------- scanning
@dataclass(frozen=True)
class SkippedFile:
    """A file :func:`ingest` left out, and why (one line, naming the file)."""

    path: Path
    reason: str


@dataclass
class FileScan:
    """The files to index, read once and checked: see :func:`scan_files`.

    Attributes:
        files: the files that hold text, in order.
        skipped: the files left out, with the reason.
        texts: the texts the kept files hold, before splitting.
    """

    files: list[Path] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    texts: int = 0


def scan_files(paths: Sequence[str | os.PathLike[str]], *, text_field: str = "text") -> FileScan:
    """Read every file once: which hold text, and which are skipped and why.

    Raises:
        InputFileError: a path does not exist, a file named on its own has an unsupported
            type, or no file holds text (the message names the skipped files).
    """
    scan = FileScan()
    files = expand_paths(paths)
    for file in files:
        try:
            found = len(read_file(file, text_field=text_field))
        except InputFileError as exc:
            scan.skipped.append(SkippedFile(file, str(exc)))
            continue
        if found == 0:
            scan.skipped.append(SkippedFile(file, f"{str(file)!r} holds no text"))
            continue
        scan.files.append(file)
        scan.texts += found
    if not scan.files:
        reasons = "; ".join(s.reason for s in scan.skipped[:5])
        more = f"; and {len(scan.skipped) - 5} more" if len(scan.skipped) > 5 else ""
        raise InputFileError(
            f"nothing to index: none of the {len(files)} file(s) holds readable text ({reasons}"
            f"{more})"
        )
    return scan


# ---------------------------------------------------------------------- ingesting
@dataclass
class FileReport:
    """What :func:`ingest` made of one file.

    Attributes:
        path: the file.
        passages: its passages after splitting, duplicates included.
        duplicates: passages whose text an earlier passage (of this file or another) already had.
    """

    path: Path
    passages: int = 0
    duplicates: int = 0


@dataclass
class IngestReport:
    """What :func:`ingest` did.

    Attributes:
        collection, model: the collection and the model that embedded it.
        files: one :class:`FileReport` per file, in the order read.
        texts: the texts the files hold, before splitting (known before anything is embedded).
        passages: distinct passages (by id) sent to the store.
        duplicates: passages left out because an earlier one had the same text.
        embedded, skipped, updated: as in :class:`~stella_rag.AddReport`: newly embedded,
            already stored, metadata updated.
        count: the collection's size afterwards.
        skipped_files: the files left out (unreadable, or holding no text), with the reason.
        done: passages handled so far, counting those embedded but not yet written (moves after
            every forward pass, for a progress display).
        seconds: the time spent writing (reading, splitting, embedding and storing).
        chunk_tokens: the passage size used, in the model's tokens.
    """

    collection: str
    model: str
    files: list[FileReport] = field(default_factory=list)
    texts: int = 0
    passages: int = 0
    duplicates: int = 0
    embedded: int = 0
    skipped: int = 0
    updated: int = 0
    count: int = 0
    seconds: float = 0.0
    chunk_tokens: int = 0
    skipped_files: list[SkippedFile] = field(default_factory=list)
    done: int = 0

    @property
    def passages_per_second(self) -> float | None:
        return round(self.passages / self.seconds, 1) if self.seconds else None

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (the output of ``stella-rag index --json``)."""
        return {
            "collection": self.collection,
            "model": self.model,
            "files": len(self.files),
            "passages": self.passages,
            "duplicates": self.duplicates,
            "embedded": self.embedded,
            "skipped": self.skipped,
            "updated": self.updated,
            "count": self.count,
            "seconds": round(self.seconds, 3),
            "passages_per_second": self.passages_per_second,
            "per_file": [
                {"path": str(f.path), "passages": f.passages, "duplicates": f.duplicates}
                for f in self.files
            ],
            "skipped_files": [
                {"path": str(f.path), "reason": f.reason} for f in self.skipped_files
            ],
        }


def passage_room(encoder: Any) -> int:
    """The most tokens a passage can have for ``encoder`` (its sequence length less the
    special tokens it adds)."""
    return int(encoder.max_seq_length) - int(encoder.count_tokens([""])[0])


def ingest(
    store: ChromaStore,
    paths: Sequence[str | os.PathLike[str]] | FileScan,
    *,
    text_field: str = "text",
    chunk_tokens: int | None = None,
    overlap_tokens: int = 32,
    on_progress: Callable[[IngestReport], None] | None = None,
) -> IngestReport:
    """Read files, split their texts to the store encoder's budget, and add them to ``store``.

    Every file is read and checked before anything is embedded (a file that cannot be read, or
    holds no text, is skipped and listed in ``skipped_files``); then the files are read again,
    one at a time, and their passages streamed into :meth:`ChromaStore.index`. A passage whose
    text came earlier (in any file) is added once. Re-running skips what is stored, so an
    interrupted run resumes.

    Args:
        store: where the passages go; its encoder's tokenizer sets the passage size.
        paths: files (see the module's list of formats) or folders of them; or the
            :class:`FileScan` of :func:`scan_files`, so that the files are not checked twice.
        text_field: the text's field (``.jsonl``) or column (``.csv``).
        chunk_tokens: the most tokens per passage, special tokens not counted (default: all
            the model reads).
        overlap_tokens: tokens a passage repeats from the one before it.
        on_progress: called with the running report after each forward pass and each chunk
            written (``texts`` is set from the start; ``done``, ``embedded``, ``skipped``,
            ``updated`` and ``passages`` grow). It may be called from the model's thread.

    Raises:
        InputFileError: a path does not exist, or no file holds readable text.
        ValueError: ``chunk_tokens`` or ``overlap_tokens`` out of range for the model.
    """
    from ._store import text_id

    scan = paths if isinstance(paths, FileScan) else scan_files(paths, text_field=text_field)
    files, texts = scan.files, scan.texts
    encoder: Any = store.encoder
    splitter = Splitter.for_encoder(encoder, chunk_tokens, overlap_tokens)
    report = IngestReport(
        store.name,
        str(encoder.model_id),
        texts=texts,
        chunk_tokens=splitter.size,
        skipped_files=list(scan.skipped),
    )
    seen: set[str] = set()

    def passages() -> Iterator[Passage]:
        for file in files:
            entry = FileReport(file)
            report.files.append(entry)
            for passage in splitter.split_passages(read_file(file, text_field=text_field)):
                entry.passages += 1
                pid = text_id(passage.text)
                if pid in seen:
                    entry.duplicates += 1
                    continue
                seen.add(pid)
                yield passage

    # The store reads a text, then its metadata, in step: tee holds one passage at a time.
    for_texts, for_metadata = itertools.tee(passages())
    started = time.perf_counter()

    def update(added: AddReport) -> None:
        report.embedded, report.skipped, report.updated = (
            added.embedded,
            added.skipped,
            added.updated,
        )
        report.passages = len(added.ids)
        report.duplicates = sum(f.duplicates for f in report.files)
        report.seconds = time.perf_counter() - started
        report.done = max(report.done, added.embedded + added.skipped + added.updated)
        if on_progress is not None:
            on_progress(report)

    def moved(done: int) -> None:
        report.done = done
        report.seconds = time.perf_counter() - started
        if on_progress is not None:
            on_progress(report)

    update(
        store.index(
            (p.text for p in for_texts),
            (p.metadata or None for p in for_metadata),
            on_chunk=update,
            on_passages=moved,
        )
    )
    report.count = store.count()
    return report


def _tokenizing(encoder: Any) -> _Tokenizing:
    if not callable(getattr(encoder, "count_tokens", None)):
        raise TypeError(
            "ingest splits texts with the encoder's tokenizer, but "
            f"{type(encoder).__name__} has no count_tokens()"
        )
    return encoder
