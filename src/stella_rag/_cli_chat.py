"""The ``stella-rag chat`` loop: read a line, retrieve for the whole chat, print the passages."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._errors import StellaRagError
from ._turns import Turn
from .cli import _hits_json, _hits_table, _one_line, _print_json, _stdout

if TYPE_CHECKING:
    from ._dialogue import DialogueEncoder
    from ._retriever import ConversationalRetriever

__all__ = ["CHAT_HELP", "run_chat"]

CHAT_HELP = (
    "Type a message and press Enter: the passages for the conversation so far are shown.\n"
    "  /assistant TEXT  add the assistant's reply\n"
    "  /show            the dialogue text that is encoded, and the turns dropped to fit\n"
    "  /reset           start a new conversation\n"
    "  /help            this help\n"
    "  /quit            leave (or Ctrl-D)\n"
    "A message that starts with '/' is sent by doubling the slash: //etc."
)


def run_chat(retriever: ConversationalRetriever, *, as_json: bool) -> None:
    """Chat on stdin until ``/quit``, end of input or Ctrl-C; JSON events with ``as_json``."""
    store, encoder = retriever.store, retriever.dialogue_encoder
    out = _stdout()
    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):  # not on every platform
            import readline  # noqa: F401  (line editing and history for input())
        out.print(f"Chatting with {store.name!r} ({store.count()} passages, {encoder!r}).")
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
    explained = encoder.explain(turns)
    if as_json:
        _print_json({"event": "window", **explained.to_dict()})
        return
    from rich.text import Text

    window = explained.window
    out.print(
        f"Dialogue window: {len(window.turns)} turn(s), {window.tokens} of "
        f"{explained.max_tokens} tokens; {window.dropped} earliest turn(s) dropped"
        + ("; the last turn was cut to its end" if window.truncated_last else "")
        + "."
    )
    for i, label in enumerate(explained.dropped_labels, start=1):
        out.print(Text(f"  dropped {i}: {label}", style="dim"))
    out.print(Text(window.text))
    if list(explained.texts) != [window.text]:
        out.print(f"Strategy {explained.strategy!r} encodes {len(explained.texts)} text(s):")
        for text in explained.texts:
            out.print(Text(f"  {text}"))
