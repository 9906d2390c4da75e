"""Ochre in process: the retrieval database in your Python process, with chromadb's API.

    import ochre as chromadb

    client = chromadb.PersistentClient(path="./data")
    collection = client.get_or_create_collection("notes")
    collection.add(ids=["a"], documents=["hello"])   # embedded by all-MiniLM-L6-v2, in Rust
    collection.query(query_texts=["hi"], n_results=1)

The engine is Ochre's (the same one `ochre run` serves); the calls, defaults, result shapes and
error classes are chromadb 1.5.9's. docs/python.md lists the differences.
"""
from typing import Any, Optional, Union
import os

from . import errors
from ._ochre import __version__
from .api import (
    DEFAULT_DATABASE,
    DEFAULT_TENANT,
    AdminClient,
    Client as _Client,
    Collection,
    IndexingStatus,
    SearchResult,
    Settings,
    clear_system_cache,
)
from .embedding_functions import DefaultEmbeddingFunction, register_embedding_function

ClientAPI = _Client


def PersistentClient(
    path: Union[str, "os.PathLike[str]"] = "./chroma",
    settings: Optional[Any] = None,
    tenant: str = DEFAULT_TENANT,
    database: str = DEFAULT_DATABASE,
) -> _Client:
    """A client of the data directory `path` (created if missing). Clients of one path in one
    process share one open database; another process opening it gets an error at once."""
    s = Settings.of(settings)
    s.persist_directory = os.fspath(path)
    s.is_persistent = True
    return _Client(s.persist_directory, s, tenant, database)


def EphemeralClient(
    settings: Optional[Any] = None,
    tenant: str = DEFAULT_TENANT,
    database: str = DEFAULT_DATABASE,
) -> _Client:
    """A client of an in-memory database, shared by every ephemeral client of this process and
    gone when the process ends."""
    s = Settings.of(settings)
    s.is_persistent = False
    return _Client(None, s, tenant, database)


def Client(
    settings: Optional[Any] = None,
    tenant: str = DEFAULT_TENANT,
    database: str = DEFAULT_DATABASE,
) -> _Client:
    """chromadb's `Client(settings)`: persistent when the settings say so, else in memory."""
    s = Settings.of(settings)
    path = s.persist_directory if s.is_persistent else None
    return _Client(path, s, tenant, database)


__all__ = [
    "AdminClient",
    "Client",
    "ClientAPI",
    "Collection",
    "DEFAULT_DATABASE",
    "DEFAULT_TENANT",
    "DefaultEmbeddingFunction",
    "EphemeralClient",
    "IndexingStatus",
    "PersistentClient",
    "SearchResult",
    "Settings",
    "__version__",
    "clear_system_cache",
    "errors",
    "register_embedding_function",
]
