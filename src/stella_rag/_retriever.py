"""ConversationalRetriever: the whole chat in, the passages its last turn needs out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._dialogue import DialogueEncoder
from ._errors import EncoderMismatchError
from ._hits import Hits
from ._store import ChromaStore
from ._turns import TurnLike
from ._validate import check_k

__all__ = ["ConversationalRetriever"]


class ConversationalRetriever:
    """Searches a :class:`ChromaStore` with a :class:`DialogueEncoder`'s vector of the chat.

    Documents were embedded by the general encoder; the chat is embedded by the dialogue
    encoder into the same space.

    Raises:
        EncoderMismatchError: the dialogue encoder's vectors cannot be compared with the
            collection's (other dimension, or another general model).
    """

    def __init__(
        self, store: ChromaStore, dialogue_encoder: DialogueEncoder, *, k: int = 4
    ) -> None:
        if not isinstance(store, ChromaStore):
            raise TypeError(f"store must be a ChromaStore, got {type(store).__name__}")
        if not isinstance(dialogue_encoder, DialogueEncoder):
            raise TypeError(
                f"dialogue_encoder must be a DialogueEncoder, got {type(dialogue_encoder).__name__}"
            )
        self.store = store
        self.dialogue_encoder = dialogue_encoder
        self.k = check_k(k)
        general = dialogue_encoder.general
        if general.model_id != store.encoder.model_id:
            raise EncoderMismatchError(
                f"the dialogue encoder belongs with the general model {general.model_id!r}, but "
                f"collection {store.name!r} was embedded by {store.encoder.model_id!r}"
            )
        if dialogue_encoder.dim != store.dim:
            raise EncoderMismatchError(
                f"the dialogue encoder {dialogue_encoder.model_id!r} makes "
                f"{dialogue_encoder.dim}-d vectors but collection {store.name!r} holds "
                f"{store.dim}-d vectors"
            )

    def __repr__(self) -> str:
        return f"ConversationalRetriever({self.store!r}, {self.dialogue_encoder!r}, k={self.k})"

    def retrieve(
        self,
        turns: str | Iterable[TurnLike],
        k: int | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> Hits:
        """The passages for the last turn of a conversation (a bare string is one user turn)."""
        vector = self.dialogue_encoder.encode(turns)
        return self.store.search(vector, k=self.k if k is None else check_k(k), where=where)

    def retrieve_many(
        self,
        dialogues: Sequence[str | Iterable[TurnLike]],
        k: int | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[Hits]:
        """:meth:`retrieve` for many conversations, encoded in one batch."""
        vectors = self.dialogue_encoder.encode_many(dialogues)
        if len(vectors) == 0:
            return []
        return self.store.search_many(vectors, k=self.k if k is None else check_k(k), where=where)

    async def aretrieve(
        self,
        turns: str | Iterable[TurnLike],
        k: int | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> Hits:
        """Like :meth:`retrieve`, without blocking the event loop."""
        import asyncio

        return await asyncio.to_thread(self.retrieve, turns, k, where)
