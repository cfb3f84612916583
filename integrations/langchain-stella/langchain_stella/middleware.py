"""StellaContextMiddleware: history-aware retrieval for LangChain v1's ``create_agent``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from langchain_core.documents import Document
from langchain_core.messages import SystemMessage
from langchain_core.prompts import BasePromptTemplate

from langchain_stella._turns import UserTurn, format_documents, latest_user_turn
from langchain_stella.retrievers import StellaDialogueRetriever
from stella_rag import EmptyDialogueError

try:
    from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest
    from langchain.agents.middleware.types import (
        ModelCallResult,
        ModelResponse,
        OmitFromInput,
        PrivateStateAttr,
    )
except ImportError as exc:  # the agents extra is optional
    raise ImportError(
        "StellaContextMiddleware needs langchain>=1.0 (create_agent); "
        'pip install "langchain-stella[agents]"'
    ) from exc
from typing_extensions import NotRequired

__all__ = ["DEFAULT_TEMPLATE", "StellaContextMiddleware", "StellaContextState"]

DEFAULT_TEMPLATE = "Use the following context in your response:\n\n{context}"
"""The words of LangChain's RAG guide; ``{context}`` is replaced by the passages."""


class StellaContextState(AgentState[Any]):
    """The agent state with the documents retrieved for the latest user turn.

    Attributes:
        context: the documents given to the model for the latest user turn (for citations).
        stella_context_turn: the id of the user message ``context`` was retrieved for
            (private; ``None`` when nothing was retrieved).
    """

    context: NotRequired[Annotated[list[Document], OmitFromInput]]
    stella_context_turn: NotRequired[Annotated[str | None, PrivateStateAttr]]


class StellaContextMiddleware(AgentMiddleware[StellaContextState, Any]):
    """Puts passages retrieved with the whole chat into the agent's system message.

    LangChain's RAG guide retrieves with the last message only
    (``request.state["messages"][-1]``), which misses what an elliptical follow-up such as
    "And how much is it?" refers to. This middleware hands the agent's messages to a
    :class:`~langchain_stella.StellaDialogueRetriever`, which embeds the whole chat, with no
    LLM call to rewrite it.

    Retrieval follows the latest user message: it runs once per user turn, before the first
    model call of that turn. The model calls that follow tool calls in the same turn get the
    same passages; a tool result is never used as a query. The documents are in the agent's
    state under ``"context"`` (``agent.invoke(...)["context"]``), for citations.

    The system message: the ``template`` with ``{context}`` replaced by the passages, added
    after the agent's own system prompt (or on its own when there is none).

    Edge cases:

    - no user message in the state (an empty message list, or only system / AI / tool
      messages): nothing is retrieved, ``context`` is ``[]`` and the model call is left as it
      is;
    - a user message with no text (for example only an image block): the same;
    - content blocks: the text blocks of each message are read, other blocks are left out.

    Args:
        retriever: the retriever; its ``k`` and ``filter`` apply unless given here.
        template: the text added to the system message; must contain ``{context}``.
        document_prompt: how each document is written (default ``"{page_content}"``).
        document_separator: what goes between two documents.
        k: how many documents to retrieve (default: the retriever's).
        filter: a Chroma ``where`` filter (default: the retriever's).

    Example:
        .. code-block:: python

            from langchain.agents import create_agent
            from langchain_stella import StellaContextMiddleware, StellaDialogueRetriever

            retriever = StellaDialogueRetriever(vectorstore=vectorstore, k=2)
            agent = create_agent(model, tools=[], middleware=[StellaContextMiddleware(retriever)])
            result = agent.invoke({"messages": chat})
            result["context"]  # the documents the model was given
    """

    state_schema = StellaContextState

    def __init__(
        self,
        retriever: StellaDialogueRetriever,
        *,
        template: str = DEFAULT_TEMPLATE,
        document_prompt: BasePromptTemplate[str] | None = None,
        document_separator: str = "\n\n",
        k: int | None = None,
        filter: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(retriever, StellaDialogueRetriever):
            raise TypeError(
                f"retriever must be a StellaDialogueRetriever, got {type(retriever).__name__}"
            )
        if not isinstance(template, str) or "{context}" not in template:
            raise ValueError(
                f"template must be a string with a '{{context}}' placeholder, got {template!r}"
            )
        self.retriever = retriever
        self.template = template
        self.document_prompt = document_prompt
        self.document_separator = document_separator
        self.k = k
        self.filter = filter
        self.tools = []

    # ------------------------------------------------------------- retrieval
    def before_model(self, state: StellaContextState, runtime: Any) -> dict[str, Any] | None:
        """Retrieve for a new user turn; keep the documents of the current one."""
        turn = latest_user_turn(state["messages"])
        if turn is None:
            return {"context": [], "stella_context_turn": None}
        if _is_current(state, turn):
            return None
        try:
            docs = self.retriever.invoke(turn.dialogue, **self._options())
        except EmptyDialogueError:
            return {"context": [], "stella_context_turn": None}
        return {"context": docs, "stella_context_turn": turn.message_id or ""}

    async def abefore_model(self, state: StellaContextState, runtime: Any) -> dict[str, Any] | None:
        """Like :meth:`before_model`; the encoding and the search run in a worker thread."""
        turn = latest_user_turn(state["messages"])
        if turn is None:
            return {"context": [], "stella_context_turn": None}
        if _is_current(state, turn):
            return None
        try:
            docs = await self.retriever.ainvoke(turn.dialogue, **self._options())
        except EmptyDialogueError:
            return {"context": [], "stella_context_turn": None}
        return {"context": docs, "stella_context_turn": turn.message_id or ""}

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.k is not None:
            options["k"] = self.k
        if self.filter is not None:
            options["filter"] = self.filter
        return options

    # ------------------------------------------------------------ model call
    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelCallResult[Any]:
        """Call the model with the passages in the system message."""
        return handler(self._with_context(request))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelCallResult[Any]:
        """Like :meth:`wrap_model_call`."""
        return await handler(self._with_context(request))

    def _with_context(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        state: dict[str, Any] = dict(request.state)
        if state.get("stella_context_turn") is None:  # nothing was retrieved for this turn
            return request
        docs: list[Document] = state.get("context") or []
        passages = format_documents(docs, self.document_prompt, self.document_separator)
        text = self.template.replace("{context}", passages)
        return request.override(system_message=_append(request.system_message, text))


def _is_current(state: StellaContextState, turn: UserTurn) -> bool:
    """Whether ``context`` was retrieved for this user message (ids are stable in the state)."""
    return turn.message_id is not None and state.get("stella_context_turn") == turn.message_id


def _append(system: SystemMessage | None, text: str) -> SystemMessage:
    """The agent's system message followed by ``text``."""
    if system is None:
        return SystemMessage(text)
    if isinstance(system.content, str):
        content: Any = f"{system.content}\n\n{text}" if system.content else text
    else:
        content = [*system.content, {"type": "text", "text": text}]
    return system.model_copy(update={"content": content})
