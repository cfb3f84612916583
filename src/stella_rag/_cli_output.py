"""The ``stella-rag`` command's output: consoles, tables, progress bars (cli.py parses and calls).

Everything printed from the data is printed as it is: the consoles read no Rich markup, so
``[offline]`` or ``b[i]`` stays on screen.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ._errors import CliError

if TYPE_CHECKING:
    from rich.console import Console

    from ._hits import Hits
    from ._ingest import FileScan, IngestReport
    from ._store import ChromaStore

__all__: list[str] = []  # private helpers of cli.py


def _stdout() -> Console:
    from rich.console import Console

    # No markup: passages and hints hold square brackets ("stella-rag[offline]", "b[i]").
    return Console(highlight=False, soft_wrap=False, markup=False)


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, markup=False)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _fail(message: str, code: int = 1) -> typer.Exit:
    sys.stderr.write(f"error: {_one_line(message)}\n")
    sys.stderr.flush()
    return typer.Exit(code)


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
        # Chroma returns metadata keys in no fixed order: the source first, the rest sorted.
        keys = sorted(hit.metadata, key=lambda k: (k != "source", k))
        meta = ", ".join(f"{k}={hit.metadata[k]}" for k in keys)
        score = "" if hit.score is None else f"{hit.score:.3f}"
        table.add_row(str(rank), score, hit.text, meta)
    return table


def _print_compact(hits: Hits, out: Console) -> None:
    """Two lines at most per hit, each cut to the terminal's width: rank, score, text; metadata."""
    from rich.text import Text

    for rank, hit in enumerate(hits, start=1):
        score = "" if hit.score is None else f"{hit.score:.3f}"
        head = f"{rank:>2}  {score:>6}  "
        out.print(Text(head + _one_line(hit.text)), no_wrap=True, overflow="ellipsis")
        # Chroma returns metadata keys in no fixed order: the source first, the rest sorted.
        keys = sorted(hit.metadata, key=lambda k: (k != "source", k))
        meta = ", ".join(f"{k}={hit.metadata[k]}" for k in keys)
        if meta:
            line = Text(" " * len(head) + _one_line(meta), style="dim")
            out.print(line, no_wrap=True, overflow="ellipsis")


def _index_on_ray(
    store: ChromaStore,
    paths: Sequence[Path],
    server: str,
    address: str | None,
    actors: int,
    show: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """``index --ray``: stella_rag.scale reads, splits and embeds the files on a Ray cluster."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise CliError("--ray needs Ray Data: pip install 'stella-rag[ray]'") from None
    import logging

    from rich.progress import Progress, TextColumn
    from rich.progress import TimeElapsedColumn as Elapsed

    from .scale import ScaleReport, embed_dataset, read_files

    if not ray.is_initialized():  # no address: $RAY_ADDRESS, else a new Ray on this machine
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    ray.data.DataContext.get_current().enable_progress_bars = False
    dataset = read_files(paths, encoder=store.encoder, **options)
    with Progress(
        TextColumn("{task.description}"), TextColumn("{task.completed} passages"),
        TextColumn("{task.fields[rate]} passages/s"), Elapsed(),
        console=_stderr(),
        disable=not show,
    ) as bar:  # fmt: skip
        task = bar.add_task(f"indexing {store.name} on Ray", total=None, rate="…")

        def on_progress(report: ScaleReport) -> None:
            done = report.embedded + report.skipped
            speed = f"{done / report.seconds:,.0f}" if report.seconds else "…"
            bar.update(task, completed=done, rate=speed)

        report = embed_dataset(
            dataset,
            encoder=store.encoder,
            collection=store.name,
            chroma={"server": server},
            actors=actors,
            on_progress=on_progress,
        )
    if as_json:
        _print_json(report.to_dict())
        return
    out = _stdout()
    out.print(
        f"Indexed on Ray ({report.actors} actor(s)) into {store.name!r}: {report.embedded} "
        f"passages embedded, {report.skipped} already stored, in {report.seconds:.1f} s "
        f"({report.passages_per_second} passages/s)."
    )
    out.print(f"The collection holds {report.count} passages.")


def _ingest_with_progress(
    store: ChromaStore, scan: FileScan, show: bool, **options: Any
) -> IngestReport:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from ._ingest import ingest

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} passages/s"),
        TimeElapsedColumn(),
        console=_stderr(),
        disable=not show,
    ) as bar:
        task = bar.add_task(f"indexing {store.name}", total=None, rate="…")
        done = {"n": 0}

        def on_progress(report: IngestReport) -> None:
            done["n"] = report.done
            speed = f"{done['n'] / report.seconds:,.0f}" if report.seconds else "…"
            total = max(report.texts, done["n"])  # splitting can make more passages than texts
            bar.update(task, completed=done["n"], total=total, rate=speed)

        try:
            return ingest(store, scan, on_progress=on_progress, **options)
        except KeyboardInterrupt:
            stored = store.count()
            raise _fail(
                f"interrupted; the collection holds {stored} passages, and running the same "
                "command again continues from there",
                130,
            ) from None


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
            sizes = (str(m["dim"]), str(m["max_seq_length"]))
            table.add_row(m["role"], m["model_id"], *sizes, m["device"], m["precision"])
        else:
            table.add_row(m["role"], m["model_id"], "-", "-", "-", "not available: " + m["error"])
    out.print(table)
    daemon = data.get("daemon") or {}
    if daemon.get("running"):
        models = ", ".join(daemon["models"]) or "none yet"
        out.print(f"daemon: running, pid {daemon['pid']}, models loaded: {models}", markup=False)
    else:
        out.print("daemon: not running (`stella-rag daemon start` makes searches start fast)")
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
