"""LlamaIndex embeddings backed by stella-rag (Stella v3 or any sentence-transformers model)."""

from llama_index.embeddings.stella.base import StellaEmbedding

__all__ = ["StellaEmbedding"]
