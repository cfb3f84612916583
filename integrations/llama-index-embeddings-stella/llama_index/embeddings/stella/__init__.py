"""LlamaIndex embeddings backed by stella-rag (Stella v3 or any sentence-transformers model),
and a node parser sized to what the model reads."""

from llama_index.embeddings.stella.base import StellaEmbedding
from llama_index.embeddings.stella.node_parser import StellaNodeParser

__all__ = ["StellaEmbedding", "StellaNodeParser"]
