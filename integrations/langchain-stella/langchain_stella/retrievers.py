"""StellaDialogueRetriever: LangChain's ``BaseRetriever`` over a conversational retriever."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.messages import (
    BaseMessage,
    HumanMessage,
    MessageLikeRepresentation,
    convert_to_messages,
)
from langchain_core.prompt_values import PromptValue
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import ConfigDict, PrivateAttr

from langchain_stella.embeddings import StellaEmbeddings
from stella_rag import (
    ChromaStore,
    ConversationalRetriever,
    DialogueEncoder,
    Hit,
    QueryStrategy,
    SentenceEncoder,
)

__all__ = ["ChatInput", "StellaDialogueRetriever"]

ChatInput = str | Sequence[MessageLikeRepresentation] | Mapping[str, Any] | PromptValue
"""A chat: one user turn, a list of messages, or ``{"input": str, "chat_history": [...]}``."""


class StellaDialogueRetriever(BaseRetriever):
    """Retrieves for the last turn of a chat, encoding the whole chat with no LLM rewrite.

    The chat is embedded by the Stella dialogue encoder into the space of the general encoder
    that embedded the Chroma collection's documents.

    Setup:
        ``pip install -U langchain-stella``

    Key init args:
        vectorstore: a ``langchain_chroma.Chroma`` or a :class:`stella_rag.ChromaStore`.
        collection_name: instead of ``vectorstore``, a Chroma collection by name, in
            ``persist_directory`` or on ``client`` (default: in memory).
        dialogue_model: a dedicated dialogue model (``"stella-dialogue-zh"``, a hub id, a
            folder or a ``SentenceEncoder``). Default ``None``, as in
            :class:`stella_rag.DialogueEncoder`: the general model embeds the chat through
            ``strategy``, so nothing beyond the documents' model is downloaded.
        general_model: the encoder of the documents (a name, a ``SentenceEncoder`` or a
            ``StellaEmbeddings``). Default: the one of ``vectorstore``, else the general model
            the dialogue model was trained against, else ``stella_rag.DEFAULT_MODEL``.
        device: the device of the models given by name.
        strategy: how the general model embeds the chat when there is no dialogue model (a
            name in ``stella_rag.STRATEGIES`` or a ``QueryStrategy``; default: the core's).
        max_tokens: the token budget of the chat; the earliest turns are dropped to fit.
        k: how many documents to return (also ``invoke(..., k=...)``).
        filter: a Chroma ``where`` filter on metadata (also ``invoke(..., filter=...)``).

    Input: a string (one user turn), a list of messages, or
    ``{"input": str, "chat_history": [messages]}`` (the input of
    ``create_history_aware_retriever``).

    Invoke:
        .. code-block:: python

            from langchain_core.messages import AIMessage, HumanMessage
            from langchain_stella import StellaDialogueRetriever

            retriever = StellaDialogueRetriever(
                vectorstore=vectorstore, dialogue_model="stella-dialogue-zh", k=2
            )
            retriever.invoke(
                [HumanMessage("最近去打篮球了吗"), AIMessage("没有"), HumanMessage("为什么")]
            )

    Each ``Document`` has the collection's ``id``, its metadata, and the cosine similarity in
    ``metadata["score"]``.
    """

    vectorstore: Any = None
    collection_name: str | None = None
    persist_directory: str | None = None
    client: Any = None
    dialogue_model: str | os.PathLike[str] | SentenceEncoder | None = None
    general_model: str | os.PathLike[str] | SentenceEncoder | StellaEmbeddings | None = None
    device: str | None = None
    strategy: str | QueryStrategy | None = None
    max_tokens: int | None = None
    k: int = 4
    filter: dict[str, Any] | None = None

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    _retriever: ConversationalRetriever = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._check_collection()  # before any model loads
        general = self.general_model
        if isinstance(general, StellaEmbeddings):
            general = general.encoder
        chroma_embeddings = getattr(self.vectorstore, "embeddings", None)
        if general is None and isinstance(self.vectorstore, ChromaStore):
            general = self.vectorstore.encoder
        elif general is None and isinstance(chroma_embeddings, StellaEmbeddings):
            general = chroma_embeddings.encoder
        encoder_kwargs: dict[str, Any] = {} if self.device is None else {"device": self.device}
        dialogue = DialogueEncoder(
            self.dialogue_model,
            general=general,
            max_tokens=self.max_tokens,
            strategy=self.strategy,
            **encoder_kwargs,
        )
        self._retriever = ConversationalRetriever(
            self._store(dialogue.general, chroma_embeddings), dialogue, k=self.k
        )

    def _check_collection(self) -> None:
        vs = self.vectorstore
        if vs is not None and self.collection_name is not None:
            raise ValueError("pass either vectorstore= or collection_name=, not both")
        if vs is None and self.collection_name is None:
            raise ValueError(
                "no collection: pass vectorstore= (a langchain_chroma.Chroma or a "
                "stella_rag.ChromaStore) or collection_name= (with persist_directory= or client=)"
            )
        if not (vs is None or isinstance(vs, ChromaStore) or _is_langchain_chroma(vs)):
            raise TypeError(
                "vectorstore must be a langchain_chroma.Chroma or a stella_rag.ChromaStore, "
                f"got {type(vs).__name__}"
            )

    def _store(self, general: Any, chroma_embeddings: Any) -> ChromaStore:
        vs = self.vectorstore
        if isinstance(vs, ChromaStore):
            return vs
        if vs is None:
            assert self.collection_name is not None
            return ChromaStore.open(
                self.collection_name,
                encoder=general,
                path=self.persist_directory,
                client=self.client,
                create=True,
            )
        # langchain_chroma.Chroma has no public accessor for its collection: the one private read.
        store = ChromaStore.from_collection(vs._collection, encoder=general)
        if isinstance(chroma_embeddings, StellaEmbeddings) and _same_space(
            chroma_embeddings, general
        ):
            store.record_encoder()  # its vectors were written by this very encoder
        return store

    @property
    def conversational_retriever(self) -> ConversationalRetriever:
        """The :class:`stella_rag.ConversationalRetriever` doing the work."""
        return self._retriever

    def as_history_aware_retriever(self) -> Runnable[Any, list[Document]]:
        """This retriever, for ``create_retrieval_chain`` in place of
        ``create_history_aware_retriever(llm, retriever, prompt)``.

        ``create_retrieval_chain`` hands a ``BaseRetriever`` only ``x["input"]``; this wrapper
        (a plain runnable, named like LangChain's) receives the whole ``{"input",
        "chat_history"}`` dict.
        """
        return self.with_config(run_name="chat_retriever_chain")

    # BaseRetriever types its input as str but hands it on untouched; these say what we take.
    def invoke(
        self, input: ChatInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        """Retrieve for a chat (see :data:`ChatInput`); ``k=`` and ``filter=`` override."""
        return super().invoke(input, config, **kwargs)  # type: ignore[arg-type]

    async def ainvoke(
        self, input: ChatInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        """Like :meth:`invoke`, without blocking the event loop."""
        return await super().ainvoke(input, config, **kwargs)  # type: ignore[arg-type]

    def _get_relevant_documents(
        self,
        query: Any,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: dict[str, Any] | None = None,
    ) -> list[Document]:
        hits = self._retriever.retrieve(
            _dialogue(query), k=self.k if k is None else k, where=self._where(filter)
        )
        return [_document(hit) for hit in hits]

    async def _aget_relevant_documents(
        self,
        query: Any,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: dict[str, Any] | None = None,
    ) -> list[Document]:
        hits = await self._retriever.aretrieve(
            _dialogue(query), k=self.k if k is None else k, where=self._where(filter)
        )
        return [_document(hit) for hit in hits]

    def _where(self, filter: dict[str, Any] | None) -> dict[str, Any] | None:
        return self.filter if filter is None else filter


def _dialogue(query: Any) -> str | list[BaseMessage]:
    """The chat as the core reads it, from any input LangChain users pass a retriever."""
    if isinstance(query, str):
        return query
    if isinstance(query, Mapping):
        if "input" not in query:
            raise TypeError(
                "a dict input needs an 'input' key (and optionally 'chat_history'), got keys "
                f"{sorted(map(str, query))}"
            )
        if not isinstance(query["input"], str):
            raise TypeError(f"'input' must be a string, got {type(query['input']).__name__}")
        history = convert_to_messages(query.get("chat_history") or [])
        return [*history, HumanMessage(query["input"])]
    if isinstance(query, BaseMessage):
        return [query]
    if hasattr(query, "to_messages"):  # a ChatPromptValue
        return list(query.to_messages())
    if isinstance(query, (list, tuple)):
        return convert_to_messages(query)
    raise TypeError(
        "the input must be a string, a list of messages or {'input': ..., 'chat_history': [...]}, "
        f"got {type(query).__name__}"
    )


def _is_langchain_chroma(vectorstore: Any) -> bool:
    try:
        from langchain_chroma import Chroma
    except ImportError:  # then it cannot be one
        return False
    return isinstance(vectorstore, Chroma)


def _same_space(embeddings: StellaEmbeddings, encoder: Any) -> bool:
    return bool(
        embeddings.encoder.model_id == encoder.model_id
        and embeddings.encoder.dim == encoder.dim
        and embeddings.normalize == getattr(encoder, "normalize", True)
    )


def _document(hit: Hit) -> Document:
    return Document(page_content=hit.text, metadata={**hit.metadata, "score": hit.score}, id=hit.id)
