"""The ``stella-rag`` command: index files, search, chat, score sentences, evaluate, inspect.

Every command that touches a collection works on an embedded Chroma database in ``--path``
(default ``./.stella-rag``) or on a Chroma server given by ``--server HOST:PORT``. A collection
remembers the model that embedded it, so ``search``, ``chat`` and a second ``index`` use that
model unless ``--model`` names another (which is refused if it does not match).

Mistakes (a missing collection, no readable file to index, an unreachable server, a model that
is not available offline, an encoder that does not match a collection) end with one ``error:``
line on stderr and exit code 1; ``--help`` usage mistakes exit with 2; an interrupt exits with
130. ``index`` skips a file it cannot read (or that holds no text), names it on stderr in a
``skipped:`` line and still exits with 0 when other files were indexed.

Everything printed from the data (passages, metadata, paths, model names) is printed as it is:
the consoles read no Rich markup, so ``[offline]`` or ``b[i]`` stays on screen.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

from ._cli_output import (
    _fail,
    _hits_json,
    _hits_table,
    _index_on_ray,
    _ingest_with_progress,
    _one_line,
    _print_compact,
    _print_eval,
    _print_info,
    _print_json,
    _stdout,
)
from ._cli_train import train_dialogue
from ._errors import CliError, CollectionNotFoundError, StellaRagError
from ._strategies import DEFAULT_STRATEGY, STRATEGIES

if TYPE_CHECKING:
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
        help="A dedicated dialogue model: stella-dialogue-zh, or a folder made by "
        "`stella-rag train-dialogue`. Default: none, the document encoder embeds the chat "
        "through --strategy.",
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
            from ._client import classify

            fault = classify(exc)
            if fault is not None and fault.kind == "chroma":
                raise _fail(f"Chroma: {exc}") from None
            raise

    return wrapper  # type: ignore[return-value]


def _show_warning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    sys.stderr.write(f"warning: {_one_line(str(message))}\n")


# ------------------------------------------------------------------- stores
def _client(path: Path, server: str | None, *, create: bool) -> Any:
    from ._client import connect

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


def _open_store(
    collection: str,
    model: str | None,
    path: Path,
    server: str | None,
    device: str | None,
    precision: str | None,
    *,
    create: bool,
    daemon: bool = False,
) -> ChromaStore:
    from ._store import ChromaStore

    client = _client(path, server, create=create)
    factory = None
    if daemon:
        from .daemon import DaemonEncoder

        factory = DaemonEncoder if DaemonEncoder.available() else None
    try:
        store = ChromaStore.open(
            collection,
            client=client,
            encoder=model,
            create=create,
            show_progress=False,
            encoder_factory=factory,
            device=device,
            precision=precision,
        )
    except CollectionNotFoundError as exc:
        names = ", ".join(repr(n) for n in exc.available) or "none"
        raise CliError(
            f"no collection {collection!r} in {_where(path, server)} (collections: {names}); "
            f"create it with `stella-rag index FILES --collection {collection}`"
        ) from None
    place = f" --server {server}" if server else ("" if path == DEFAULT_PATH else f" --path {path}")
    store.record_hint = (
        f"run `stella-rag record-encoder --collection {collection} --model "
        f"{store.encoder.model_id}{place}` once to record it"
    )
    return store


def _precision(value: str | None) -> Precision | None:
    return cast("Precision | None", value)  # SentenceEncoder checks it


# ------------------------------------------------------------------ commands
@app.command()
@_user_errors
def index(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Files (.txt, .md, .rst, .html, .jsonl, .csv; .pdf and .docx with the "
            "documents extra) or folders of them.",
            metavar="PATH",
        ),
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
    use_ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Read, split and embed on Ray Data (pip install 'stella-rag[ray]'); needs "
            "--server. Joins the cluster at --ray-address or $RAY_ADDRESS, else starts Ray here.",
        ),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            metavar="ADDRESS",
            help="The Ray cluster for --ray (auto, ray://head:10001, HOST:PORT); implies --ray.",
        ),
    ] = None,
    actors: Annotated[
        int, typer.Option("--actors", min=1, help="Embedding actors with --ray: one per GPU.")
    ] = 1,
) -> None:
    """Embed files into a collection; re-running skips what is stored, so it also resumes.

    A file that cannot be read, or holds no text, is skipped and named on stderr; the exit code
    is 0 when other files were indexed, 1 (and nothing is created) when none could be.
    """
    from ._ingest import scan_files

    if chunk_tokens is not None:  # checked before any file is read or model loaded
        _check_chunking(chunk_tokens, overlap_tokens)
    on_ray = use_ray or ray_address is not None
    if on_ray and server is None:
        raise CliError(
            "--ray writes from many processes, which needs a Chroma server: add --server "
            "HOST:PORT (start one with `chroma run --path DIR`)"
        )
    # Every file is read and checked before a database or collection is made.
    scan = scan_files(paths, text_field=text_field)
    for skipped in scan.skipped:
        sys.stderr.write(f"skipped: {_one_line(skipped.reason)}\n")
    sys.stderr.flush()
    store = _open_store(collection, model, path, server, device, precision, create=True)
    show = (not as_json and sys.stderr.isatty()) if progress is None else progress
    if on_ray:
        _index_on_ray(
            store,
            scan.files,
            cast(str, server),
            ray_address,
            actors,
            show,
            as_json,
            text_field=text_field,
            chunk_tokens=chunk_tokens,
            overlap_tokens=overlap_tokens,
        )
        return
    report = _ingest_with_progress(
        store,
        scan,
        show,
        text_field=text_field,
        chunk_tokens=chunk_tokens,
        overlap_tokens=overlap_tokens,
    )
    if as_json:
        _print_json(report.to_dict())
        return
    out, n, files = _stdout(), report.passages, len(report.files)
    updated = f"{report.updated} metadata updated" if report.updated else ""
    if report.embedded == 0:
        out.print(
            f"Nothing new to embed: all {n} passages from {files} file(s) are already in "
            f"{collection!r}" + (f" ({updated})." if updated else ".")
        )
    else:
        out.print(
            f"Indexed {files} file(s) into {collection!r}: {n} passages, {report.embedded} "
            f"embedded, {report.skipped} already stored"
            + (f", {updated}" if updated else "")
            + f", in {report.seconds:.1f} s ({report.passages_per_second} passages/s)."
        )
    if report.duplicates and report.embedded:  # a re-run that embedded nothing has no news
        out.print(f"{report.duplicates} duplicate passage(s) were indexed once.")
    if report.skipped_files:
        out.print(f"{len(report.skipped_files)} file(s) skipped (see the skipped: lines above).")
    out.print(f"The collection holds {report.count} passages.")


def _check_chunking(chunk_tokens: int, overlap_tokens: int) -> None:
    if chunk_tokens < 8:
        raise CliError(f"--chunk-tokens must be at least 8, got {chunk_tokens}")
    if not 0 <= overlap_tokens < chunk_tokens:
        raise CliError(
            f"--overlap-tokens must be at least 0 and less than --chunk-tokens ({chunk_tokens}), "
            f"got {overlap_tokens}"
        )


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
    full: Annotated[
        bool, typer.Option("--full", help="Whole passages in a table, not one line each.")
    ] = False,
    use_daemon: Annotated[
        bool,
        typer.Option(
            "--daemon/--no-daemon",
            help="Embed the query in the running `stella-rag daemon` when there is one.",
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """The passages nearest to a query: one line each (--full: whole passages).

    Most of a search's time is loading torch and the model; `stella-rag daemon start` keeps
    them loaded for every later search.
    """
    filters = _parse_where(where)
    store = _open_store(
        collection, model, path, server, device, precision, create=False, daemon=use_daemon
    )
    hits = store.search(query, k=k, where=filters)
    if as_json:
        _print_json({"query": query, "collection": collection, "hits": _hits_json(hits)})
        return
    out = _stdout()
    if not hits:
        out.print("No passages found.")
    elif full:
        out.print(_hits_table(hits))
    else:
        _print_compact(hits, out)


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
    from ._cli_chat import run_chat
    from ._dialogue import DialogueEncoder
    from ._retriever import ConversationalRetriever

    store = _open_store(collection, model, path, server, device, precision, create=False)
    encoder = DialogueEncoder(
        dialogue_model,
        general=store.encoder,
        strategy=strategy,
        max_tokens=max_tokens,
        device=getattr(store.encoder, "device", None),
    )
    run_chat(ConversationalRetriever(store, encoder, k=k), as_json=as_json)


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
    from . import _eval
    from ._dialogue import DialogueEncoder
    from ._encoder import DEFAULT_MODEL

    try:
        data = _eval.load_eval(corpus, dialogues)
    except OSError as exc:
        raise CliError(f"cannot read the eval set: {exc}") from None
    conversational = DialogueEncoder(
        dialogue_model,
        general=model or DEFAULT_MODEL,
        strategy=strategy,
        max_tokens=max_tokens,
        device=device,
        precision=_precision(precision),
    )
    results = {
        **_eval.compare(data, conversational, max_tokens=max_tokens),
        "corpus": str(corpus),
        "dialogues": str(dialogues),
    }
    if as_json:
        _print_json(results)
        return
    _print_eval(results, _stdout())


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
    from ._encoder import DEFAULT_MODEL, describe_model
    from ._models import resolve_device

    resolved = resolve_device(device)
    models = [
        {"role": role, **describe_model(name, device=device, precision=_precision(precision))}
        for role, name in (("documents", model or DEFAULT_MODEL), ("dialogue", dialogue_model))
        if name is not None
    ]
    store: dict[str, Any] = {"server": server} if server else {"path": str(path)}
    collections: list[dict[str, Any]] = []
    if server or path.is_dir():
        from ._store import list_collections

        client = _client(path, server, create=False)
        collections = [asdict(c) for c in list_collections(client)]
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
        "daemon": _daemon_info(),
    }
    if as_json:
        _print_json(data)
        return
    _print_info(data, _stdout())


def _daemon_info() -> dict[str, Any]:
    from .daemon import DaemonError, daemon_status

    try:
        status = daemon_status()
    except (DaemonError, OSError) as exc:
        return {"running": False, "error": str(exc)}
    return {"running": False} if status is None else {"running": True, **asdict(status)}


@app.command(name="record-encoder")
@_user_errors
def record_encoder(
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", envvar="STELLA_RAG_MODEL", help="The model that wrote the vectors."
        ),
    ],
    collection: CollectionOpt = DEFAULT_COLLECTION,
    path: PathOpt = DEFAULT_PATH,
    server: ServerOpt = None,
) -> None:
    """Record which model wrote a collection made outside stella-rag (LangChain, LlamaIndex...).

    From then on every command checks that model against the collection, and the warning about
    an unrecorded collection stops. Recording the wrong model makes searches meaningless.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unrecorded-collection warning is what we fix
        store = _open_store(collection, model, path, server, "cpu", None, create=False)
    already = not store.needs_record
    store.record_encoder()
    out = _stdout()
    if already:
        out.print(f"Collection {collection!r} already records {store.encoder.model_id!r}.")
    else:
        out.print(f"Recorded {store.encoder.model_id!r} as the encoder of {collection!r}.")


# ------------------------------------------------------------------ training
app.command(name="train-dialogue")(train_dialogue)


# -------------------------------------------------------------------- daemon
daemon_app = typer.Typer(
    help="A warm encoder process: `search` then skips loading torch and the model.",
    no_args_is_help=True,
)
app.add_typer(daemon_app, name="daemon")


def _print_daemon(status: Any, as_json: bool, verb: str) -> None:
    data = asdict(status)
    if as_json:
        _print_json({"running": True, **data})
        return
    models = ", ".join(status.models) or "none yet"
    _stdout().print(
        f"stella-rag daemon {verb}: pid {status.pid}, models loaded: {models}, "
        f"{status.requests} request(s), exits after {status.idle_timeout_s:.0f} s idle "
        f"(socket {status.socket}).",
        markup=False,
    )


@daemon_app.command("start")
@_user_errors
def daemon_start(
    idle_timeout: Annotated[
        float, typer.Option("--idle-timeout", min=1, help="Exit after this many idle seconds.")
    ] = 1800.0,
    preload: Annotated[
        list[str] | None,
        typer.Option("--preload", help="Load this model now (repeatable), e.g. minilm."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start the daemon in the background (nothing to do if one runs)."""
    from .daemon import start_daemon

    _print_daemon(
        start_daemon(idle_timeout=idle_timeout, preload=preload or ()), as_json, "running"
    )


@daemon_app.command("status")
@_user_errors
def daemon_status_cmd(as_json: JsonOpt = False) -> None:
    """Whether the daemon runs, and what it holds."""
    from .daemon import daemon_status

    status = daemon_status()
    if status is not None:
        _print_daemon(status, as_json, "running")
    elif as_json:
        _print_json({"running": False})
    else:
        _stdout().print("No stella-rag daemon is running.")


@daemon_app.command("stop")
@_user_errors
def daemon_stop(as_json: JsonOpt = False) -> None:
    """Stop the daemon."""
    from .daemon import stop_daemon

    stopped = stop_daemon()
    if as_json:
        _print_json({"stopped": stopped})
    else:
        _stdout().print("Stopped the stella-rag daemon." if stopped else "No daemon was running.")


# ---------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``stella-rag`` console script."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.showwarning = _show_warning
    try:
        app(args=list(argv) if argv is not None else None, prog_name="stella-rag")
    except SystemExit as exc:
        if exc.code != 130:
            raise
        # Interrupted: what was written is committed. A normal exit would now run the native
        # libraries' exit handlers while the model's worker thread is still inside a forward
        # pass, and libtorch aborts ("terminate called without an active exception", 134).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


if __name__ == "__main__":  # python -m stella_rag.cli
    main()
