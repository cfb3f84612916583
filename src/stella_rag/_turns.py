"""Turning the many shapes of a chat history into one list of :class:`Turn`.

Recognised without importing any framework:

- ``(role, text)`` tuples (or 2-item lists);
- ``{"role": ..., "content": ...}`` dicts (the chat-API shape; ``"text"`` works for
  ``"content"``, and content given as a list of ``{"type": "text", "text": ...}`` parts is joined);
- LangChain messages (``.type`` is ``"human"``, ``"ai"``, ``"system"``, ``"tool"``, ... and
  ``.content`` is the text; ``ChatMessage`` has ``.role``);
- LlamaIndex ``ChatMessage`` (``.role`` is a ``MessageRole`` whose ``.value`` is ``"user"``,
  ``"assistant"``, ...; ``.content`` is the text);
- :class:`Turn` itself.

A message whose content is ``None`` (an assistant message that only calls tools, in the chat API,
LangChain or LlamaIndex) is an empty turn: it is skipped, unless it is the last turn, which is an
:class:`~stella_rag.EmptyDialogueError`. In a ``(role, text)`` tuple, ``None`` is a ``TypeError``.

Role names are canonicalised: ``human`` -> ``user``; ``ai``, ``chatbot``, ``model`` ->
``assistant``; ``developer`` -> ``system``; ``function`` -> ``tool``. Other role names are kept,
lower-cased, and it is the :class:`~stella_rag.DialogueEncoder` that decides what to do with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Turn", "TurnLike", "normalize_turns"]

_ROLE_ALIASES = {
    "human": "user",
    "user": "user",
    "ai": "assistant",
    "assistant": "assistant",
    "chatbot": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}

TurnLike = Any
"""One turn in any of the recognised shapes (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One utterance of a dialogue: a canonical role name and its text."""

    role: str
    text: str


def _canonical_role(role: Any, where: str) -> str:
    value = getattr(role, "value", role)  # enums (LlamaIndex MessageRole)
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{where}: the role must be a non-empty string, got {role!r}")
    lowered = value.strip().lower()
    return _ROLE_ALIASES.get(lowered, lowered)


def _content_text(content: Any, where: str, *, none_is_empty: bool = False) -> str:
    if isinstance(content, str):
        return content
    if content is None and none_is_empty:
        return ""
    if isinstance(content, list):  # multimodal parts: keep the text ones
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    if content is None:
        raise TypeError(f"{where}: the text is None")
    raise TypeError(
        f"{where}: the text must be a string, got {type(content).__name__} {content!r:.60}"
    )


def _one(item: Any, index: int) -> Turn:
    where = f"turn {index}"
    if isinstance(item, Turn):
        return item
    if isinstance(item, (str, bytes)):
        raise TypeError(
            f"{where}: a bare string {item!r:.60} inside a dialogue has no role; pass "
            "(role, text) tuples or {'role': ..., 'content': ...} dicts, or a single string "
            "(not in a list) for a one-turn conversation"
        )
    if isinstance(item, Mapping):
        if "role" not in item:
            raise TypeError(f"{where}: the dict {dict(item)!r:.80} has no 'role' key")
        content = item["content"] if "content" in item else item.get("text")
        return Turn(
            _canonical_role(item["role"], where),
            _content_text(content, where, none_is_empty=True),
        )
    if isinstance(item, (tuple, list)):
        if len(item) != 2:
            raise TypeError(f"{where}: a tuple turn must be (role, text), got {len(item)} items")
        return Turn(_canonical_role(item[0], where), _content_text(item[1], where))
    content = getattr(item, "content", None)
    role = getattr(item, "role", None)
    if role is None:
        role = getattr(item, "type", None)  # LangChain BaseMessage
    if role is not None and hasattr(item, "content"):
        return Turn(_canonical_role(role, where), _content_text(content, where, none_is_empty=True))
    raise TypeError(
        f"{where}: cannot read a turn from {type(item).__name__}; expected a (role, text) tuple, "
        "a {'role', 'content'} dict, or a LangChain / LlamaIndex chat message"
    )


def normalize_turns(turns: str | Iterable[TurnLike]) -> list[Turn]:
    """Return the turns as :class:`Turn` objects, oldest first.

    A bare string is a one-turn conversation by the user.
    """
    if isinstance(turns, str):
        return [Turn("user", turns)]
    if isinstance(turns, bytes):
        raise TypeError("a dialogue must be text, got bytes; decode it first")
    if turns is None:
        raise TypeError("a dialogue must be a string or a list of turns, got None")
    if isinstance(turns, Mapping):
        raise TypeError("a dialogue must be a list of turns; got a single dict (wrap it in a list)")
    try:
        items = list(turns)
    except TypeError:
        raise TypeError(
            f"a dialogue must be a string or a list of turns, got {type(turns).__name__}"
        ) from None
    return [_one(item, i) for i, item in enumerate(items)]
