"""``CondensePlusContextChatEngine`` without the condense call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.memory.types import BaseMemory
from llama_index.retrievers.stella.base import StellaDialogueRetriever

if TYPE_CHECKING:
    from llama_index.core.chat_engine import CondensePlusContextChatEngine
    from llama_index.core.llms import LLM

__all__ = ["condense_plus_context_chat_engine"]


def condense_plus_context_chat_engine(
    retriever: StellaDialogueRetriever,
    llm: LLM | None = None,
    *,
    memory: BaseMemory | None = None,
    chat_history: list[ChatMessage] | None = None,
    **kwargs: Any,
) -> CondensePlusContextChatEngine:
    """LlamaIndex's ``CondensePlusContextChatEngine``, retrieving with the whole chat.

    The engine's prompts, context window handling and source nodes are LlamaIndex's; its
    condense step, one LLM call per turn to rewrite the chat into a standalone question, is
    skipped (``skip_condense=True``): the retriever, bound to the engine's memory, embeds the
    chat and the new message with the dialogue encoder instead.

    Args:
        retriever: the retriever.
        llm: the LLM that answers (default ``Settings.llm``).
        memory: the engine's memory; default: the retriever's, else a new ``Memory`` sized
            to the LLM.
        chat_history: the chat so far, for a new memory.
        **kwargs: passed to ``CondensePlusContextChatEngine.from_defaults`` (``system_prompt``,
            ``context_prompt``, ``context_refine_prompt``, ``node_postprocessors``...).

    Raises:
        TypeError: ``skip_condense`` or ``condense_prompt`` was given (there is no condense
            step), or ``retriever`` is not a :class:`StellaDialogueRetriever`.
    """
    from llama_index.core.chat_engine import CondensePlusContextChatEngine
    from llama_index.core.memory import Memory
    from llama_index.core.settings import Settings

    if not isinstance(retriever, StellaDialogueRetriever):
        raise TypeError(
            f"retriever must be a StellaDialogueRetriever, got {type(retriever).__name__}"
        )
    for name in ("skip_condense", "condense_prompt"):
        if name in kwargs:
            raise TypeError(
                f"{name}= does not apply: the retriever reads the whole chat, so there is no "
                "condense step"
            )
    llm = llm or Settings.llm
    if memory is None:
        memory = retriever.memory
    if memory is None:
        memory = Memory.from_defaults(
            chat_history=list(chat_history or retriever.chat_history or []),
            token_limit=llm.metadata.context_window - 256,
        )
    elif chat_history is not None:
        raise ValueError("pass memory= or chat_history=, not both")
    return CondensePlusContextChatEngine.from_defaults(
        retriever=retriever.with_memory(memory),
        llm=llm,
        memory=memory,
        skip_condense=True,
        **kwargs,
    )
