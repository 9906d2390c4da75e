"""chromadb's `chromadb.utils.embedding_functions` path: Ochre's default function, and the
registry of functions collections are rebuilt with."""
from ..embedding_functions import (
    DefaultEmbeddingFunction,
    known_embedding_function,
    register_embedding_function,
)

__all__ = ["DefaultEmbeddingFunction", "known_embedding_function", "register_embedding_function"]
