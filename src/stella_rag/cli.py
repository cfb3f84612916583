"""The ``stella-rag`` command: index files, search, chat, score sentences, evaluate, inspect.

Every command that touches a collection works on an embedded Chroma database in ``--path``
(default ``./.stella-rag``) or on a Chroma server given by ``--server HOST:PORT``. A collection
remembers the model that embedded it, so ``search``, ``chat`` and a second ``index`` use that
model unless ``--model`` names another (which is refused if it does not match).

Mistakes (a missing collection, an unreadable file, an unreachable server, a model that is not
available offline, an encoder that does not match a collection) end with one ``error:`` line on
stderr and exit code 1; ``--help`` usage mistakes exit with 2; an interrupt exits with 130.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

from ._errors import StellaRagError
from ._strategies import DEFAULT_STRATEGY, STRATEGIES

if TYPE_CHECKING:
    from rich.console import Console

    from ._dialogue import DialogueEncoder
    from ._hits import Hits
    from ._models import Precision
    from ._store import ChromaStore

__all__ = ["app", "main"]

DEFAULT_PATH = Path(".stella-rag")
DEFAULT_COLLECTION = "docs"

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="stella-rag",
    help="Embeddings and conversational retrieval with sentence-transformers and Chroma.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class CliError(StellaRagError):
    """A mistake in how the command was used (reported as one line, exit code 1)."""


# ------------------------------------------------------------------ options
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        envvar="STELLA_RAG_MODEL",
        help="Document encoder: alias (minilm, stella-large-zh, ...), hub id or folder. "
        "Default: the model that embedded the collection, else stella-large-zh.",
    ),
]
DialogueModelOpt = Annotated[
    str | None,
    typer.Option(
        "--dialogue-model",
        help="A dedicated dialogue model (e.g. stella-dialogue-zh). Default: none, the "
        "document encoder embeds the chat through --strategy.",
    ),
]
StrategyOpt = Annotated[
    str | None,
    typer.Option(
        "--strategy",
        help=f"How a general encoder turns the chat into one query: {', '.join(STRATEGIES)}. "
        f"Default: dialogue with --dialogue-model, else {DEFAULT_STRATEGY}.",
    ),
]
MaxTokensOpt = Annotated[
    int | None,
    typer.Option("--max-tokens", help="Token budget of the encoded dialogue (default: model's)."),
]
PathOpt = Annotated[
    Path,
    typer.Option(
        "--path",
        envvar="STELLA_RAG_PATH",
        help="Folder of the embedded Chroma database.",
        file_okay=False,
    ),
]
ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="STELLA_RAG_SERVER",
        help="A Chroma server as HOST:PORT (instead of --path).",
        metavar="HOST:PORT",
    ),
]
CollectionOpt = Annotated[
    str,
    typer.Option("--collection", "-c", envvar="STELLA_RAG_COLLECTION", help="Collection name."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda, mps... Default: the best one found.")
]
PrecisionOpt = Annotated[
    str | None,
    typer.Option("--precision", help="float32, float16 or bfloat16. Default: float16 on CUDA."),
]
KOpt = Annotated[int, typer.Option("-k", "--top-k", min=1, help="How many passages to show.")]


# ------------------------------------------------------------------- output
def _stdout() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _fail(message: str, code: int = 1) -> typer.Exit:
    sys.stderr.write(f"error: {_one_line(message)}\n")
    sys.stderr.flush()
    return typer.Exit(code)


def _user_errors(fn: F) -> F:
    """Turn the errors a user can cause into one ``error:`` line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (StellaRagError, ValueError) as exc:  # the core's checks of user input
            raise _fail(str(exc)) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        except Exception as exc:
            if type(exc).__module__.split(".")[0] == "chromadb":
                raise _fail(f"Chroma: {exc}") from None
            raise

    return wrapper  # type: ignore[return-value]


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    sys.stderr.write(f"warning: {_one_line(str(message))}\n")


# ------------------------------------------------------------------- stores
def _client(path: Path, server: str | None, *, create: bool) -> Any:
    from ._store import connect

    if server is not None:
        return connect(server=server)
    if not create and not path.is_dir():
        raise CliError(
            f"no stella-rag database at {str(path)!r}; index files first with "
            "`stella-rag index FILES --collection NAME`, or pass --path or --server"
        )
    return connect(path)


def _where(path: Path, server: str | None) -> str:
    return f"the Chroma server at {server}" if server else f"{str(path)!r}"


def _collections(client: Any) -> dict[str, Any]:
    return {c.name: c for c in client.list_collections()}


def _recorded(collection: Any) -> dict[str, Any]:
    """The encoder settings a collection recorded: by ChromaStore, or by our Chroma function."""
    from ._store import META_MODEL, META_NORMALIZE, META_TRUNCATE

    meta = dict(collection.metadata or {})
    if META_MODEL in meta:
        return {
            "model": meta[META_MODEL],
            "truncate_dim": meta.get(META_TRUNCATE) or None,
            "normalize": bool(meta.get(META_NORMALIZE, True)),
        }
    try:
        ef = (collection.configuration_json or {}).get("embedding_function") or {}
    except Exception:  # an older server, or a configuration we cannot read: nothing recorded
        return {}
    if ef.get("name") == "stella_rag" and isinstance(ef.get("config"), dict):
        config = ef["config"]
        return {
            "model": config.get("model"),
            "truncate_dim": config.get("truncate_dim"),
            "normalize": bool(config.get("normalize", True)),
        }
    return {}


def _open_store(
    collection: str,
    *,
    model: str | None,
    path: Path,
    server: str | None,
    device: str | None,
    precision: str | None,
    create: bool,
) -> ChromaStore:
    from ._encoder import DEFAULT_MODEL, SentenceEncoder
    from ._store import ChromaStore

    client = _client(path, server, create=create)
    existing = _collections(client)
    found = existing.get(collection)
    if found is None and not create:
        names = ", ".join(repr(n) for n in sorted(existing)) or "none"
        raise CliError(
            f"no collection {collection!r} in {_where(path, server)} (collections: {names}); "
            f"create it with `stella-rag index FILES --collection {collection}`"
        )
    recorded = _recorded(found) if found is not None else {}
    kwargs: dict[str, Any] = {}
    if model is None and recorded.get("model"):
        model = recorded["model"]
        kwargs = {"truncate_dim": recorded["truncate_dim"], "normalize": recorded["normalize"]}
    encoder = SentenceEncoder(
        model or DEFAULT_MODEL,
        device=device,
        precision=_precision(precision),
        **kwargs,
    )
    return ChromaStore(collection, encoder=encoder, client=client, show_progress=False)


def _dialogue_encoder(
    store: ChromaStore, dialogue_model: str | None, strategy: str | None, max_tokens: int | None
) -> DialogueEncoder:
    from ._dialogue import DialogueEncoder

    return DialogueEncoder(
        dialogue_model,
        general=store.encoder,
        strategy=strategy,
        max_tokens=max_tokens,
        device=store.encoder.device,
    )


def _hits_json(hits: Hits) -> list[dict[str, Any]]:
    return [
        {"rank": i, "id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata}
        for i, h in enumerate(hits, start=1)
    ]


def _hits_table(hits: Hits, title: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_lines=False, expand=False)
    table.add_column("#", justify="right", style="bold")
    table.add_column("score", justify="right")
    table.add_column("text", overflow="fold", ratio=4)
    table.add_column("metadata", overflow="fold", ratio=1, style="dim")
    for rank, hit in enumerate(hits, start=1):
        meta = ", ".join(f"{k}={v}" for k, v in hit.metadata.items())
        score = "" if hit.score is None else f"{hit.score:.3f}"
        table.add_row(str(rank), score, hit.text, meta)
    return table


def _precision(value: str | None) -> Precision | None:
    if value is not None and value not in ("float32", "float16", "bfloat16"):
        raise CliError(f"--precision must be float32, float16 or bfloat16, got {value!r}")
    return cast("Precision | None", value)


def _check_strategy(strategy: str | None) -> None:
    if strategy is not None and strategy not in STRATEGIES:
        raise CliError(f"unknown --strategy {strategy!r}; valid names are {sorted(STRATEGIES)}")


# ------------------------------------------------------------------ commands
@app.command()
@_user_errors
def index(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Files (.txt, .md, .jsonl, .csv) or folders of them.", metavar="PATH"),
    ],
    collection: CollectionOpt = DEFAULT_COLLECTION,
    model: ModelOpt = None,
    path: PathOpt = DEFAULT_PATH,
    server: ServerOpt = None,
    chunk_tokens: Annotated[
        int | None,
        typer.Option(
            "--chunk-tokens",
            help="Most tokens of the model per passage; longer texts are split. "
            "Default: all the model takes.",
        ),
    ] = None,
    overlap_tokens: Annotated[
        int, typer.Option("--overlap-tokens", help="Tokens a passage repeats from the one before.")
    ] = 32,
    text_field: Annotated[
        str, typer.Option("--text-field", help="The text's field (.jsonl) or column (.csv).")
    ] = "text",
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar. Default: on a terminal."),
    ] = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Embed files into a collection; re-running skips what is stored, so it also resumes."""
    from ._ingest import Passage, Splitter, expand_paths, read_file
    from ._store import text_id

    if chunk_tokens is not None:  # checked before any file is read or model loaded
        _check_chunking(chunk_tokens, overlap_tokens)
    files = expand_paths(paths)
    texts: list[Passage] = []
    for file in files:
        texts.extend(read_file(file, text_field=text_field))
    store = _open_store(
        collection,
        model=model,
        path=path,
        server=server,
        device=device,
        precision=precision,
        create=True,
    )
    encoder = store.encoder
    room = encoder.max_seq_length - encoder.count_tokens([""])[0]
    if chunk_tokens is None:
        chunk_tokens = room
    elif chunk_tokens > room:
        raise CliError(
            f"--chunk-tokens {chunk_tokens} is more than {encoder.model_id!r} reads "
            f"({encoder.max_seq_length} tokens, {room} without special tokens); "
            f"use at most {room}"
        )
    _check_chunking(chunk_tokens, overlap_tokens)
    splitter = Splitter(encoder, chunk_tokens, overlap_tokens)
    passages: dict[str, Passage] = {}
    total = 0
    for passage in splitter.split_passages(texts):
        total += 1
        passages.setdefault(text_id(passage.text), passage)
    if not passages:
        raise CliError(f"nothing to index: the {len(files)} file(s) hold no text")
    items = list(passages.values())
    show = (not as_json and sys.stderr.isatty()) if progress is None else progress
    report = _index_with_progress(store, items, show)
    summary = {
        "collection": collection,
        "model": encoder.model_id,
        "files": len(files),
        "passages": len(items),
        "duplicates": total - len(items),
        "embedded": report.embedded,
        "skipped": report.skipped,
        "updated": report.updated,
        "count": store.count(),
        "seconds": round(report.seconds, 3),
        "passages_per_second": round(len(items) / report.seconds, 1) if report.seconds else None,
    }
    if as_json:
        _print_json(summary)
        return
    out = _stdout()
    if report.embedded == 0:
        out.print(
            f"Nothing new to embed: all {len(items)} passages from {len(files)} file(s) are "
            f"already in {collection!r}"
            + (f" ({report.updated} metadata updated)." if report.updated else ".")
        )
    else:
        out.print(
            f"Indexed {len(files)} file(s) into {collection!r}: {len(items)} passages, "
            f"{report.embedded} embedded, {report.skipped} already stored"
            + (f", {report.updated} metadata updated" if report.updated else "")
            + f", in {report.seconds:.1f} s ({summary['passages_per_second']} passages/s)."
        )
    if summary["duplicates"]:
        out.print(f"{summary['duplicates']} duplicate passage(s) were indexed once.")
    out.print(f"The collection holds {summary['count']} passages.")


def _check_chunking(chunk_tokens: int, overlap_tokens: int) -> None:
    if chunk_tokens < 8:
        raise CliError(f"--chunk-tokens must be at least 8, got {chunk_tokens}")
    if not 0 <= overlap_tokens < chunk_tokens:
        raise CliError(
            f"--overlap-tokens must be at least 0 and less than --chunk-tokens ({chunk_tokens}), "
            f"got {overlap_tokens}"
        )


def _index_with_progress(store: ChromaStore, items: Sequence[Any], show: bool) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text("… passages/s" if not speed else f"{speed:,.0f} passages/s")

    texts = [p.text for p in items]
    metas = [p.metadata or None for p in items]
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        console=_stderr(),
        disable=not show,
    ) as bar:
        task = bar.add_task(f"indexing {store.name}", total=len(texts))
        done = {"n": 0}

        def on_chunk(report: Any) -> None:
            done["n"] = report.embedded + report.skipped + report.updated
            bar.update(task, completed=done["n"])

        try:
            return store.index(texts, metas, on_chunk=on_chunk)
        except KeyboardInterrupt:
            raise _fail(
                f"interrupted after {done['n']} of {len(texts)} passages; those are stored, and "
                "running the same command again continues from there",
                130,
            ) from None


@app.command()
@_user_errors
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: CollectionOpt = DEFAULT_COLLECTION,
    k: KOpt = 5,
    where: Annotated[
        str | None,
        typer.Option("--where", help='Metadata filter as JSON, e.g. \'{"lang": "en"}\'.'),
    ] = None,
    model: ModelOpt = None,
    path: PathOpt = DEFAULT_PATH,
    server: ServerOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The passages nearest to a query."""
    filters = _parse_where(where)
    store = _open_store(
        collection,
        model=model,
        path=path,
        server=server,
        device=device,
        precision=precision,
        create=False,
    )
    hits = store.search(query, k=k, where=filters)
    if as_json:
        _print_json({"query": query, "collection": collection, "hits": _hits_json(hits)})
        return
    if not hits:
        _stdout().print("No passages found.")
        return
    _stdout().print(_hits_table(hits))


def _parse_where(where: str | None) -> dict[str, Any] | None:
    if where is None:
        return None
    try:
        filters = json.loads(where)
    except json.JSONDecodeError as exc:
        raise CliError(f"--where must be a JSON object, got {where!r} ({exc.msg})") from None
    if not isinstance(filters, dict):
        raise CliError(f"--where must be a JSON object, got {where!r}")
    return filters


CHAT_HELP = (
    "Type a message and press Enter: the passages for the conversation so far are shown.\n"
    "  /assistant TEXT  add the assistant's reply\n"
    "  /show            the dialogue text that is encoded, and the turns dropped to fit\n"
    "  /reset           start a new conversation\n"
    "  /quit            leave (or Ctrl-D)\n"
    "A message that starts with '/' is sent by doubling the slash: //etc."
)


@app.command()
@_user_errors
def chat(
    collection: CollectionOpt = DEFAULT_COLLECTION,
    k: KOpt = 4,
    model: ModelOpt = None,
    dialogue_model: DialogueModelOpt = None,
    strategy: StrategyOpt = None,
    max_tokens: MaxTokensOpt = None,
    path: PathOpt = DEFAULT_PATH,
    server: ServerOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A conversation: after each message, the passages for the whole chat so far."""
    from ._retriever import ConversationalRetriever
    from ._turns import Turn

    _check_strategy(strategy)
    store = _open_store(
        collection,
        model=model,
        path=path,
        server=server,
        device=device,
        precision=precision,
        create=False,
    )
    encoder = _dialogue_encoder(store, dialogue_model, strategy, max_tokens)
    retriever = ConversationalRetriever(store, encoder, k=k)
    out = _stdout()
    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):  # not on every platform
            import readline  # noqa: F401  (line editing and history for input())
        out.print(f"Chatting with {collection!r} ({store.count()} passages, {encoder!r}).")
        out.print(CHAT_HELP)
    turns: list[Turn] = []

    def say(event: dict[str, Any], text: str) -> None:
        if as_json:
            _print_json(event)
        else:
            out.print(text)

    while True:
        try:
            line = input("you> " if interactive else "")
        except EOFError:
            break
        except KeyboardInterrupt:
            if interactive:
                out.print()
            break
        line = line.strip()
        if not line:
            continue
        if line.startswith("/") and not line.startswith("//"):
            command, _, arg = line[1:].partition(" ")
            command, arg = command.lower(), arg.strip()
            if command in ("quit", "exit", "q"):
                break
            if command == "help":
                say({"event": "help", "text": CHAT_HELP}, CHAT_HELP)
            elif command == "reset":
                turns.clear()
                say({"event": "reset"}, "Conversation reset.")
            elif command == "assistant":
                if not arg:
                    _chat_error("/assistant needs the reply's text: /assistant TEXT")
                    continue
                turns.append(Turn("assistant", arg))
                say(
                    {"event": "assistant", "turns": len(turns)},
                    f"Added the assistant's reply (turn {len(turns)}).",
                )
            elif command == "show":
                _show_window(encoder, turns, as_json, out)
            else:
                _chat_error(
                    f"unknown command /{command}; commands: /assistant TEXT, /show, /reset, "
                    "/quit, /help"
                )
            continue
        if line.startswith("//"):
            line = line[1:]
        turns.append(Turn("user", line))
        try:
            hits = retriever.retrieve(turns)
        except (StellaRagError, ValueError) as exc:
            turns.pop()
            _chat_error(str(exc))
            continue
        if as_json:
            _print_json(
                {"event": "hits", "turn": len(turns), "text": line, "hits": _hits_json(hits)}
            )
        else:
            out.print(_hits_table(hits, title=f"turn {len(turns)}: top {len(hits)} passages"))


def _chat_error(message: str) -> None:
    sys.stderr.write(f"error: {_one_line(message)}\n")
    sys.stderr.flush()


def _show_window(encoder: DialogueEncoder, turns: Sequence[Any], as_json: bool, out: Any) -> None:
    if not turns:
        if as_json:
            _print_json({"event": "window", "text": "", "turns": 0, "dropped": 0})
        else:
            out.print("The conversation is empty.")
        return
    window = encoder.window(turns)
    dropped = list(turns[: window.dropped])
    kept = encoder.turns(turns)
    planned = encoder.strategy.plan(encoder.view(kept))
    if as_json:
        _print_json(
            {
                "event": "window",
                "text": window.text,
                "tokens": window.tokens,
                "turns": len(window.turns),
                "dropped": window.dropped,
                "dropped_turns": [{"role": t.role, "text": t.text} for t in dropped],
                "truncated_last": window.truncated_last,
                "strategy": encoder.strategy.name,
                "encoded": planned,
            }
        )
        return
    from rich.text import Text

    out.print(
        f"Dialogue window: {len(window.turns)} turn(s), {window.tokens} of "
        f"{encoder.max_tokens} tokens; {window.dropped} earliest turn(s) dropped"
        + ("; the last turn was cut to its end" if window.truncated_last else "")
        + "."
    )
    for i, turn in enumerate(dropped, start=1):
        out.print(Text(f"  dropped {i}: {encoder.label(turn)}", style="dim"))
    out.print(Text(window.text))
    if planned != [window.text]:
        out.print(f"Strategy {encoder.strategy.name!r} encodes {len(planned)} text(s):")
        for text in planned:
            out.print(Text(f"  {text}"))


@app.command()
@_user_errors
def similarity(
    source: Annotated[
        list[str], typer.Option("--source", "-s", help="Source sentence (repeat for several).")
    ],
    compare: Annotated[
        list[str] | None,
        typer.Option("--compare", "-c", help="A sentence to score against the first source."),
    ] = None,
    model: ModelOpt = None,
    no_embeddings: Annotated[
        bool, typer.Option("--no-embeddings", help="Leave the vectors out of the output.")
    ] = False,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
) -> None:
    """The GTE card's pipeline: JSON with text_embedding and scores (cosine to the 1st source)."""
    from ._encoder import DEFAULT_MODEL, SentenceEncoder
    from ._similarity import similarity as run_similarity

    encoder = SentenceEncoder(
        model or DEFAULT_MODEL, device=device, precision=_precision(precision)
    )
    result = run_similarity(source, compare or None, encoder=encoder)
    data: dict[str, Any] = {"scores": result["scores"]}
    if not no_embeddings:
        data["text_embedding"] = result["text_embedding"].tolist()
    data["model"] = encoder.model_id
    _print_json(data)


@app.command(name="eval")
@_user_errors
def evaluate(
    corpus: Annotated[Path, typer.Option("--corpus", help="corpus.jsonl (id, text, lang).")],
    dialogues: Annotated[
        Path, typer.Option("--dialogues", help="dialogues.jsonl (turns, relevant, category).")
    ],
    model: ModelOpt = None,
    dialogue_model: DialogueModelOpt = None,
    strategy: StrategyOpt = None,
    max_tokens: MaxTokensOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """MRR@10, Recall@1, Recall@10, nDCG@10 of conversational retrieval vs the last turn alone."""
    _check_strategy(strategy)
    results = _run_eval(
        corpus,
        dialogues,
        model=model,
        dialogue_model=dialogue_model,
        strategy=strategy,
        max_tokens=max_tokens,
        device=device,
        precision=precision,
    )
    if as_json:
        _print_json(results)
        return
    _print_eval(results, _stdout())


def _run_eval(
    corpus: Path,
    dialogues: Path,
    *,
    model: str | None,
    dialogue_model: str | None,
    strategy: str | None,
    max_tokens: int | None,
    device: str | None,
    precision: str | None,
) -> dict[str, Any]:
    import uuid

    from . import _eval
    from ._dialogue import DialogueEncoder
    from ._encoder import DEFAULT_MODEL, SentenceEncoder
    from ._retriever import ConversationalRetriever
    from ._store import ChromaStore

    try:
        data = _eval.load_eval(corpus, dialogues)
    except OSError as exc:
        raise CliError(f"cannot read the eval set: {exc}") from None
    encoder = SentenceEncoder(
        model or DEFAULT_MODEL, device=device, precision=_precision(precision)
    )
    store = ChromaStore(f"stella-rag-eval-{uuid.uuid4().hex[:12]}", encoder=encoder)
    try:
        started = time.perf_counter()
        store.add(
            [p.text for p in data.corpus],
            ids=[p.id for p in data.corpus],
            metadatas=[{"lang": p.lang} for p in data.corpus],
        )
        conversational = DialogueEncoder(
            dialogue_model,
            general=encoder,
            strategy=strategy,
            max_tokens=max_tokens,
            device=device,
        )
        baseline = DialogueEncoder(general=encoder, strategy="last_turn", max_tokens=max_tokens)
        systems: dict[str, Any] = {}
        for name, dialogue_encoder in (("conversational", conversational), ("last_turn", baseline)):
            retriever = ConversationalRetriever(store, dialogue_encoder, k=_eval.K)
            ranked = retriever.retrieve_many([case.turns for case in data.cases])
            report = _eval.evaluate([[h.id for h in hits] for hits in ranked], data.cases)
            systems[name] = report.to_dict()
        seconds = time.perf_counter() - started
    finally:
        with contextlib.suppress(Exception):  # in memory: it goes with the process anyway
            store.client.delete_collection(store.name)
    return {
        "model": encoder.model_id,
        "dialogue_model": conversational.dialogue_model.model_id
        if conversational.dialogue_model is not None
        else None,
        "strategy": conversational.strategy.name,
        "corpus": str(corpus),
        "dialogues": str(dialogues),
        "passages": len(data.corpus),
        "cases": len(data.cases),
        "seconds": round(seconds, 2),
        "systems": systems,
    }


_METRICS = (
    ("mrr_at_10", "MRR@10"),
    ("recall_at_1", "R@1"),
    ("recall_at_10", "R@10"),
    ("ndcg_at_10", "nDCG@10"),
)


def _print_eval(results: dict[str, Any], out: Any) -> None:
    from rich import box
    from rich.table import Table

    conv, base = results["systems"]["conversational"], results["systems"]["last_turn"]
    label = results["dialogue_model"] or f"strategy {results['strategy']}"
    out.print(
        f"{results['cases']} dialogues, {results['passages']} passages, model "
        f"{results['model']}; conversational = {label}, baseline = last turn only "
        f"({results['seconds']:.1f} s)"
    )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("")
    table.add_column("n", justify="right")
    for _, name in _METRICS:
        table.add_column(f"{name}\nconv   last", justify="right", no_wrap=True)

    def row(title: str, a: dict[str, Any], b: dict[str, Any]) -> None:
        cells = [f"{a[key]:.3f}  {b[key]:.3f}" for key, _ in _METRICS]
        table.add_row(title, str(a["n"]), *cells)

    row("overall", conv["overall"], base["overall"])
    for section in ("by_category", "by_language"):
        table.add_section()
        for name in conv[section]:
            row(name, conv[section][name], base[section][name])
    out.print(table)


@app.command()
@_user_errors
def info(
    model: ModelOpt = None,
    dialogue_model: DialogueModelOpt = None,
    path: PathOpt = DEFAULT_PATH,
    server: ServerOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Device, precision, models and their dimensions, collections and their sizes."""
    import torch

    from . import __version__
    from ._encoder import DEFAULT_MODEL, SentenceEncoder
    from ._models import resolve_device

    resolved = resolve_device(device)
    models: list[dict[str, Any]] = []
    for role, name in (("documents", model or DEFAULT_MODEL), ("dialogue", dialogue_model)):
        if name is None:
            continue
        encoder = SentenceEncoder(name, device=device, precision=_precision(precision))
        entry: dict[str, Any] = {"role": role, "name": name, "model_id": encoder.model_id}
        try:
            encoder.load()
            entry.update(
                available=True,
                dim=encoder.dim,
                max_seq_length=encoder.max_seq_length,
                device=encoder.device,
                precision=encoder.precision,
            )
        except StellaRagError as exc:
            entry.update(available=False, error=_one_line(str(exc)))
        models.append(entry)
    store: dict[str, Any] = {"server": server} if server else {"path": str(path)}
    collections: list[dict[str, Any]] = []
    if server or path.is_dir():
        client = _client(path, server, create=False)
        for name, found in sorted(_collections(client).items()):
            recorded = _recorded(found)
            meta = dict(found.metadata or {})
            collections.append(
                {
                    "name": name,
                    "count": int(found.count()),
                    "model": recorded.get("model"),
                    "dim": meta.get("stella_rag:dim"),
                }
            )
        store["exists"] = True
    else:
        store["exists"] = False
    store["collections"] = collections
    data = {
        "version": __version__,
        "torch": torch.__version__,
        "device": resolved,
        "cuda": bool(torch.cuda.is_available()),
        "models": models,
        "store": store,
    }
    if as_json:
        _print_json(data)
        return
    _print_info(data, _stdout())


def _print_info(data: dict[str, Any], out: Any) -> None:
    from rich.table import Table

    out.print(
        f"stella-rag {data['version']} · torch {data['torch']} · device {data['device']}"
        + (" (CUDA available)" if data["cuda"] else "")
    )
    table = Table(title="models", title_justify="left")
    for column in ("role", "model", "dim", "max tokens", "device", "precision"):
        table.add_column(column)
    for m in data["models"]:
        if m["available"]:
            table.add_row(
                m["role"],
                m["model_id"],
                str(m["dim"]),
                str(m["max_seq_length"]),
                m["device"],
                m["precision"],
            )
        else:
            table.add_row(m["role"], m["model_id"], "-", "-", "-", "not available: " + m["error"])
    out.print(table)
    store = data["store"]
    where = f"server {store['server']}" if "server" in store else f"path {store['path']}"
    if not store["exists"]:
        out.print(f"store: {where} (no database there yet)")
        return
    table = Table(title=f"collections ({where})", title_justify="left")
    for column in ("collection", "passages", "model", "dim"):
        table.add_column(column)
    for c in store["collections"]:
        table.add_row(c["name"], str(c["count"]), str(c["model"] or "-"), str(c["dim"] or "-"))
    if not store["collections"]:
        out.print(f"store: {where} (no collections)")
    else:
        out.print(table)


# ---------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``stella-rag`` console script."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.showwarning = _show_warning
    app(args=list(argv) if argv is not None else None, prog_name="stella-rag")


if __name__ == "__main__":  # python -m stella_rag.cli
    main()
