"""The latest user turn of an agent's messages: what retrieval follows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, convert_to_messages
from langchain_core.prompts import BasePromptTemplate, PromptTemplate, format_document

__all__ = ["UserTurn", "format_documents", "latest_user_turn"]

_USER_ROLES = frozenset({"user", "human"})

DEFAULT_DOCUMENT_PROMPT = PromptTemplate.from_template("{page_content}")


class UserTurn:
    """The chat up to and including its latest user message, and that message's id."""

    __slots__ = ("dialogue", "message_id")

    def __init__(self, dialogue: list[BaseMessage], message_id: str | None) -> None:
        self.dialogue = dialogue
        self.message_id = message_id


def _is_user(message: BaseMessage) -> bool:
    if message.type == "human":
        return True
    role = getattr(message, "role", None)  # a ChatMessage with a free role
    return message.type == "chat" and isinstance(role, str) and role.lower() in _USER_ROLES


def latest_user_turn(messages: Sequence[Any]) -> UserTurn | None:
    """The chat up to the latest user message, or ``None`` when there is no user message.

    Tool results and the assistant's tool calls that follow the latest user message are left
    out: retrieval is for what the user asked, not for what a tool returned.
    """
    converted = convert_to_messages(messages)
    for index in range(len(converted) - 1, -1, -1):
        if _is_user(converted[index]):
            return UserTurn(converted[: index + 1], converted[index].id)
    return None


def format_documents(
    documents: Sequence[Document],
    document_prompt: BasePromptTemplate[str] | None = None,
    document_separator: str = "\n\n",
) -> str:
    """The documents as one text, each through ``document_prompt``, as LangChain's tools do."""
    prompt = document_prompt or DEFAULT_DOCUMENT_PROMPT
    return document_separator.join(format_document(doc, prompt) for doc in documents)
