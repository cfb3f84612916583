"""StellaDialogueRetriever: LlamaIndex's ``BaseRetriever`` over the whole chat, no LLM rewrite."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.callbacks import CallbackManager
from llama_index.core.memory.types import BaseMemory
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.core.vector_stores.utils import metadata_dict_to_node

from stella_rag import ChromaStore, ConversationalRetriever, DialogueEncoder, Hit, SentenceEncoder

if TYPE_CHECKING:
    from llama_index.core.chat_engine import ContextChatEngine
    from llama_index.core.indices.vector_store.base import VectorStoreIndex
    from llama_index.core.llms import LLM
    from llama_index.core.vector_stores.types import BasePydanticVectorStore

__all__ = ["StellaDialogueRetriever"]

DialogueEncoderLike = DialogueEncoder | SentenceEncoder | str | os.PathLike[str] | None


class StellaDialogueRetriever(BaseRetriever):
    """Retrieves for the last turn of a chat by embedding the whole chat, with no LLM call.

    The dialogue encoder (Stella's dialogue model, or the general model with a history-aware
    strategy) embeds the chat history plus the query into the space of the documents, which the
    general encoder embedded into Chroma. The query (a ``str`` or a ``QueryBundle``) is the last
    user turn; the history comes from ``memory`` (read at every call) or ``chat_history``.

    Args:
        store: the documents, a :class:`stella_rag.ChromaStore`. For a ``VectorStoreIndex``
            over a ``ChromaVectorStore`` use :meth:`from_index`.
        dialogue_encoder: a :class:`stella_rag.DialogueEncoder`, or the dedicated dialogue
            model (a name or :class:`stella_rag.SentenceEncoder`) to pair with the store's
            encoder; ``None`` embeds the chat with the store's own encoder and its default
            strategy.
        memory: a LlamaIndex memory (``Memory``, ``ChatMemoryBuffer``...) holding the chat
            before the query.
        chat_history: the chat before the query as ``ChatMessage``s (instead of ``memory``).
        similarity_top_k: how many nodes to return.
        where: a Chroma ``where`` filter on the metadata.

    Raises:
        stella_rag.EncoderMismatchError: the dialogue encoder does not embed into the store's
            space.
    """

    def __init__(
        self,
        store: ChromaStore,
        dialogue_encoder: DialogueEncoderLike = None,
        *,
        memory: BaseMemory | None = None,
        chat_history: Sequence[ChatMessage] | None = None,
        similarity_top_k: int = 4,
        where: Mapping[str, Any] | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not isinstance(store, ChromaStore):
            raise TypeError(
                f"store must be a stella_rag.ChromaStore, got {type(store).__name__}; for a "
                "VectorStoreIndex use StellaDialogueRetriever.from_index(index)"
            )
        if memory is not None and chat_history is not None:
            raise ValueError("pass memory= or chat_history=, not both")
        if memory is not None and not isinstance(memory, BaseMemory):
            raise TypeError(f"memory must be a LlamaIndex BaseMemory, got {type(memory).__name__}")
        if not isinstance(dialogue_encoder, DialogueEncoder):
            dialogue_encoder = DialogueEncoder(dialogue_encoder, general=store.encoder)
        self._core = ConversationalRetriever(store, dialogue_encoder, k=similarity_top_k)
        self.memory = memory
        self.chat_history: Sequence[ChatMessage] | None = chat_history
        self.where = dict(where) if where else None
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @classmethod
    def class_name(cls) -> str:
        return "StellaDialogueRetriever"

    # -------------------------------------------------------------- building
    @classmethod
    def from_index(
        cls,
        index: VectorStoreIndex,
        dialogue_encoder: DialogueEncoderLike = None,
        **kwargs: Any,
    ) -> StellaDialogueRetriever:
        """A retriever over a ``VectorStoreIndex`` backed by a ``ChromaVectorStore``.

        Args:
            index: the index; its ``embed_model`` should be a ``StellaEmbedding``, whose encoder
                is then recorded in the Chroma collection (``ChromaStore.record_encoder``), so
                that later opens check it.
            dialogue_encoder: as in the constructor; a :class:`stella_rag.DialogueEncoder`
                is required when the index embeds with something else.
            **kwargs: passed to the constructor.
        """
        return cls.from_vector_store(
            index.vector_store, getattr(index, "_embed_model", None), dialogue_encoder, **kwargs
        )

    @classmethod
    def from_vector_store(
        cls,
        vector_store: BasePydanticVectorStore,
        embed_model: Any = None,
        dialogue_encoder: DialogueEncoderLike = None,
        **kwargs: Any,
    ) -> StellaDialogueRetriever:
        """A retriever over a ``ChromaVectorStore`` whose nodes ``embed_model`` embedded."""
        from llama_index.embeddings.stella import StellaEmbedding
        from llama_index.vector_stores.chroma import ChromaVectorStore

        if not isinstance(vector_store, ChromaVectorStore):
            raise TypeError(
                "StellaDialogueRetriever searches Chroma; the vector store must be a "
                f"ChromaVectorStore, got {type(vector_store).__name__}"
            )
        if isinstance(embed_model, StellaEmbedding):
            general: Any = embed_model.encoder
        elif isinstance(dialogue_encoder, DialogueEncoder):
            general = dialogue_encoder.general
        else:
            raise TypeError(
                "cannot tell which encoder embedded the nodes: the embed model is "
                f"{type(embed_model).__name__}, not StellaEmbedding; index with StellaEmbedding "
                "or pass dialogue_encoder=DialogueEncoder(..., general=<the document model>)"
            )
        store = ChromaStore.from_collection(vector_store.client, encoder=general)
        if isinstance(embed_model, StellaEmbedding):
            store.record_encoder()  # that model wrote the nodes
        return cls(store, dialogue_encoder, **kwargs)

    def with_memory(self, memory: BaseMemory) -> StellaDialogueRetriever:
        """A copy of this retriever that reads its history from ``memory``."""
        if not isinstance(memory, BaseMemory):
            raise TypeError(f"memory must be a LlamaIndex BaseMemory, got {type(memory).__name__}")
        bound = copy.copy(self)
        bound.memory = memory
        bound.chat_history = None
        return bound

    def as_chat_engine(
        self,
        llm: LLM | None = None,
        *,
        memory: BaseMemory | None = None,
        chat_history: list[ChatMessage] | None = None,
        **kwargs: Any,
    ) -> ContextChatEngine:
        """A ``ContextChatEngine`` whose retrieval sees the whole chat, with no condense call.

        The engine retrieves before it stores the new user message, so this retriever, bound
        to the engine's memory, reads the history there and adds the message as the last turn.

        Args:
            llm: the LLM that answers (default ``Settings.llm``).
            memory: the engine's memory; default: this retriever's, else a new ``Memory``
                sized to the LLM, as ``ContextChatEngine.from_defaults`` makes it.
            chat_history: the chat so far, for a new memory.
            **kwargs: passed to ``ContextChatEngine.from_defaults`` (``system_prompt``,
                ``node_postprocessors``, ``context_template``...).
        """
        from llama_index.core.chat_engine import ContextChatEngine
        from llama_index.core.memory import Memory
        from llama_index.core.settings import Settings

        llm = llm or Settings.llm
        if memory is None:
            memory = self.memory
        if memory is None:
            memory = Memory.from_defaults(
                chat_history=list(chat_history or self.chat_history or []),
                token_limit=llm.metadata.context_window - 256,
            )
        elif chat_history is not None:
            raise ValueError("pass memory= or chat_history=, not both")
        return ContextChatEngine.from_defaults(
            retriever=self.with_memory(memory), llm=llm, memory=memory, **kwargs
        )

    # ------------------------------------------------------------ properties
    @property
    def store(self) -> ChromaStore:
        return self._core.store

    @property
    def dialogue_encoder(self) -> DialogueEncoder:
        return self._core.dialogue_encoder

    @property
    def similarity_top_k(self) -> int:
        return self._core.k

    # ------------------------------------------------------------ retrieving
    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        history = self.memory.get_all() if self.memory is not None else self.chat_history
        hits = self._core.retrieve(_turns(history, query_bundle.query_str), where=self.where)
        return [_node(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        history = await self.memory.aget_all() if self.memory is not None else self.chat_history
        hits = await self._core.aretrieve(_turns(history, query_bundle.query_str), where=self.where)
        return [_node(hit) for hit in hits]


def _turns(history: Sequence[ChatMessage] | None, query: str) -> list[tuple[str, str]]:
    """The chat as (role, text) turns ending with the query as the user's turn."""
    turns = [(m.role.value, m.content or "") for m in history or ()]
    # Some engines store the user message before retrieving; do not count it twice.
    last = history[-1] if history else None
    if not (last is not None and last.role == MessageRole.USER and last.content == query):
        turns.append((MessageRole.USER.value, query))
    return turns


def _node(hit: Hit) -> NodeWithScore:
    if "_node_content" in hit.metadata:  # written by ChromaVectorStore: the node is stored whole
        node = metadata_dict_to_node(hit.metadata, text=hit.text)
    else:
        node = TextNode(id_=hit.id, text=hit.text, metadata=dict(hit.metadata))
    return NodeWithScore(node=node, score=hit.score)
