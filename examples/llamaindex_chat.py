"""A LlamaIndex chat engine whose retrieval reads the whole chat, with no LLM condense call.

Nodes go into a ``VectorStoreIndex`` over a ``ChromaVectorStore``, embedded by
``StellaEmbedding``; ``StellaDialogueRetriever.as_chat_engine`` gives a ``ContextChatEngine``
whose retriever embeds the engine's memory plus the new message with the dialogue encoder.
"How much is it?" on its own could be about any product; after a chat about the Pixel 8,
the context given to the LLM holds the Pixel 8's price.

Runs offline: ``minilm`` (all-MiniLM-L6-v2, bundled) embeds, LlamaIndex's ``MockLLM`` answers.
With the Stella models, use ``StellaEmbedding("stella-large-zh")`` and
``dialogue_encoder="stella-dialogue-zh"``.

    pip install -e integrations/llama-index-embeddings-stella \
        -e integrations/llama-index-retrievers-stella
    python examples/llamaindex_chat.py
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import chromadb
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import (
    LLMChatStartEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.llms import MockLLM
from llama_index.core.schema import TextNode
from llama_index.embeddings.stella import StellaEmbedding
from llama_index.retrievers.stella import StellaDialogueRetriever
from llama_index.vector_stores.chroma import ChromaVectorStore

PASSAGES = {
    "pixel-price": ("phones", "The Pixel 8 costs $699 in the Google Store."),
    "iphone-price": ("phones", "The iPhone 15 costs $799 at Apple."),
    "galaxy-price": ("phones", "The Galaxy S24 costs $799 from Samsung."),
    "pixel-battery": ("phones", "The Pixel 8 battery lasts about 24 hours on a charge."),
    "iphone-battery": ("phones", "The iPhone 15 battery lasts about 20 hours of video playback."),
    "museum-hours": ("city", "The city museum opens at 9 am and closes at 5 pm, closed Mondays."),
    "museum-ticket": ("city", "A museum ticket costs $15 for adults and is free for children."),
    "bridge": ("city", "The old stone bridge crosses the river near the city center."),
    "bus-ticket": ("city", "A single bus ticket costs $2.50 and is valid for 90 minutes."),
    "headphones-price": ("audio", "The Sony WH-1000XM5 headphones cost $399."),
}

CHAT = [
    "I'm thinking about buying a Pixel 8 phone.",
    "Is its battery any good?",
    "How much is it?",
]

SEPARATOR = "--------------------"  # how ContextChatEngine's default template fences the context


class PromptRecorder(BaseEventHandler):
    """Keeps every prompt sent to an LLM (LlamaIndex instrumentation)."""

    prompts: list[str] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "PromptRecorder"

    def handle(self, event: Any, **kwargs: Any) -> None:
        if isinstance(event, LLMCompletionStartEvent):
            self.prompts.append(event.prompt)
        elif isinstance(event, LLMChatStartEvent):
            self.prompts.append("\n".join(str(m) for m in event.messages))


def context_of(prompt: str) -> str:
    """The retrieved context inside a ContextChatEngine prompt."""
    parts = prompt.split(SEPARATOR)
    return parts[1].strip() if len(parts) >= 3 else prompt


def main() -> None:
    embed_model = StellaEmbedding("minilm", device="cpu")
    collection = chromadb.EphemeralClient().get_or_create_collection("llamaindex-chat-demo")
    storage = StorageContext.from_defaults(
        vector_store=ChromaVectorStore(chroma_collection=collection)
    )
    nodes = [
        TextNode(id_=node_id, text=text, metadata={"topic": topic})
        for node_id, (topic, text) in PASSAGES.items()
    ]
    index = VectorStoreIndex(nodes, storage_context=storage, embed_model=embed_model)

    retriever = StellaDialogueRetriever.from_index(index, similarity_top_k=2)
    engine = retriever.as_chat_engine(llm=MockLLM(max_tokens=8))

    recorder = PromptRecorder()
    get_dispatcher().add_event_handler(recorder)

    for message in CHAT:
        response = engine.chat(message)
        ids = [n.node.node_id for n in response.source_nodes]
        print(f"user: {message}\n  retrieved: {ids}")

    alone = [n.node.node_id for n in retriever.retrieve(CHAT[-1])]
    print(f"\nthe last turn alone would retrieve: {alone}")
    print("\ncontext given to the LLM on the last turn:")
    print(context_of(recorder.prompts[-1]))


if __name__ == "__main__":
    main()
