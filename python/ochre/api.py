"""Clients and collections with chromadb 1.5.9's signatures, defaults and result shapes.

Every call becomes one request of Chroma's API v2 to the engine in this process
(`ochre._ochre.Engine.request`: the server's router without a socket), so an in-process database
validates and answers exactly as `ochre run` does. The GIL is released while the engine works.
"""
import atexit
import base64
import json
import os
import threading
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import quote
from uuid import UUID

import numpy as np

from . import _ochre, errors
from . import _validate as v
from . import embedding_functions as efs

DEFAULT_TENANT = "default_tenant"
DEFAULT_DATABASE = "default_database"

_DEFAULT_EF = efs.DefaultEmbeddingFunction()


class Settings:
    """The settings chromadb's clients take that an in-process Ochre honours: `allow_reset`
    (and `persist_directory` / `is_persistent`, which the client constructors set). Any other
    keyword is accepted and ignored, so chromadb settings objects and keywords pass through."""

    def __init__(self, **kwargs: Any) -> None:
        self.allow_reset: bool = bool(kwargs.pop("allow_reset", False))
        self.persist_directory: str = str(kwargs.pop("persist_directory", "./chroma"))
        self.is_persistent: bool = bool(kwargs.pop("is_persistent", False))
        self.anonymized_telemetry: bool = bool(kwargs.pop("anonymized_telemetry", False))
        for key, value in kwargs.items():
            setattr(self, key, value)

    @staticmethod
    def of(settings: Any) -> "Settings":
        """Ochre settings from ours, chromadb's `Settings` or None."""
        if isinstance(settings, Settings):
            return settings
        if settings is None:
            return Settings()
        return Settings(
            allow_reset=getattr(settings, "allow_reset", False),
            persist_directory=getattr(settings, "persist_directory", "./chroma"),
            is_persistent=getattr(settings, "is_persistent", False),
        )


class _Engine:
    """An open database, shared by the clients of its path (they hold it; weakly referenced)."""

    def __init__(self, native: Any) -> None:
        self.native = native

    def request(self, method: str, path: str, body: Optional[bytes]) -> Tuple[int, bytes]:
        return self.native.request(method, path, body)  # type: ignore[no-any-return]

    def __del__(self) -> None:
        # Closing writes index checkpoints: done with the GIL released, not in the collector.
        close = getattr(getattr(self, "native", None), "close", None)
        if close is not None:
            close()


# One engine per data directory (and one in-memory one) per process, shared by every client on
# it, as chromadb shares one system per path: a second opening would find the directory locked.
# `_engines` keeps each open for later clients (as chromadb's system cache does); `_live` finds
# one still held by clients after `clear_system_cache`.
_engines: Dict[Optional[str], _Engine] = {}
_live: "weakref.WeakValueDictionary[Optional[str], _Engine]" = weakref.WeakValueDictionary()
_engines_lock = threading.Lock()


def _engine(path: Optional[str]) -> _Engine:
    """The open database of `path` (None: in memory), opened if needed."""
    key = os.path.realpath(path) if path is not None else None
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None and key is not None:
            # A directory still held by clients is that database (a second opening would find it
            # locked); an in-memory one starts afresh, as chromadb's does.
            engine = _live.get(key)
        if engine is None:
            try:
                engine = _Engine(_ochre.Engine(key, True))
            except _ochre.OpenError as e:
                text = str(e)
                if "lock" in text.lower():
                    if f"pid {os.getpid()}" in text:
                        text += (
                            " (this process: a database it opened elsewhere, e.g. through "
                            "ochre._ochre directly, is still open)"
                        )
                    else:
                        text += (
                            " (another process has this directory open; Ochre lets one process "
                            "own a data directory at a time)"
                        )
                raise errors.InternalError(text) from None
            _live[key] = engine
        _engines[key] = engine
        return engine


def _close_all() -> None:
    """At exit: every database this process opened closes cleanly (checkpoints written), even
    those clients still hold; the next open then reads the checkpoints instead of rebuilding."""
    with _engines_lock:
        engines = list(_engines.values()) + list(_live.values())
        _engines.clear()
    for engine in engines:
        engine.native.close()


def clear_system_cache() -> None:
    """Lets go of the databases this process opened (chromadb: `Client.clear_system_cache`): each
    closes (index checkpoints written, directory lock released) once no client holds it; clients
    made afterwards share one still held."""
    with _engines_lock:
        _engines.clear()


atexit.register(_close_all)


def _raise(status: int, payload: bytes) -> None:
    try:
        answer = json.loads(payload) if payload else {}
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    name = str(answer.get("error") or "ChromaError")
    message = str(answer.get("message") or payload.decode("utf-8", "replace") or f"status {status}")
    # A body the router could not decode: chromadb's binding reports the decoder's complaint.
    message = message.removeprefix("Failed to deserialize the JSON body into the target type: ")
    cls = errors.error_types.get(name)
    if message.startswith("Error executing plan: Internal error"):
        cls = errors.InternalError
    elif name == "ChromaError" or cls is None:
        # The classes chromadb's in-process client raises where its server sends a bare
        # ChromaError with a status.
        cls = _BY_STATUS.get(status, errors.ChromaError)
    raise cls(message)


_BY_STATUS = {
    400: errors.InvalidArgumentError,
    403: errors.AuthorizationError,
    404: errors.NotFoundError,
    409: errors.InternalError,
    422: errors.InvalidArgumentError,
    500: errors.InternalError,
}


class _Transport:
    """Chroma's API v2 over the in-process engine."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else _dumps(body)
        status, payload = self.engine.request(method, "/api/v2" + path, data)
        if status >= 300:
            _raise(status, payload)
        return json.loads(payload) if payload else None


class _QueryVectors:
    """Query vectors, written into a request's JSON by the native module (`_dumps`)."""

    def __init__(self, vectors: List[np.ndarray]) -> None:
        self.vectors = vectors

    def to_json(self) -> str:
        dims = {int(np.asarray(x).size) for x in self.vectors}
        if len(dims) != 1:
            # Ragged: the engine names the mismatch.
            return json.dumps([np.asarray(x, dtype=np.float64).tolist() for x in self.vectors])
        (dim,) = dims
        packed = np.ascontiguousarray(np.stack([np.ravel(x) for x in self.vectors]), dtype="<f4")
        if not np.isfinite(packed).all():
            raise ValueError("Expected query embeddings to hold finite numbers (no NaN or infinity)")
        return str(_ochre.f32_rows_json(packed.tobytes(), dim))


def _json(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False, default=_numpy_scalar)
    except ValueError as e:
        raise ValueError(
            f"{e}: metadata values and filter operands must be finite numbers (no NaN or infinity)"
        ) from None


def _numpy_scalar(value: Any) -> Any:
    """numpy scalars in metadata or filters, as the Python numbers they hold."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _dumps(body: Any) -> bytes:
    """A request body as JSON; query vectors (`_QueryVectors`, a top-level value) are written by
    the native module, several times faster than `json.dumps` of their floats."""
    if isinstance(body, dict):
        for key, value in body.items():
            if isinstance(value, _QueryVectors):
                rest = {k: x for k, x in body.items() if k != key}
                head = '{"' + key + '":' + value.to_json()
                tail = _json(rest)
                return (head + ("," + tail[1:] if len(tail) > 2 else "}")).encode()
    return _json(body).encode()


def _seg(name: str) -> str:
    return quote(str(name), safe="")


class _Base:
    """What every client has: the engine, the tenant and database it works in."""

    def __init__(self, path: Optional[str], settings: Any, tenant: str, database: str) -> None:
        self._settings = Settings.of(settings)
        # The engine allows `reset`; each client asks its own settings first (clients of one
        # path share the engine, not their settings).
        self._transport = _Transport(_engine(path))
        self.tenant = tenant
        self.database = database

    def get_settings(self) -> Settings:
        return self._settings

    def heartbeat(self) -> int:
        """Nanoseconds since the epoch (chromadb: the server's clock)."""
        return int(self._transport.call("GET", "/heartbeat")["nanosecond heartbeat"])

    def get_version(self) -> str:
        return str(self._transport.call("GET", "/version"))

    def _db(self, tenant: Optional[str] = None, database: Optional[str] = None) -> str:
        return f"/tenants/{_seg(tenant or self.tenant)}/databases/{_seg(database or self.database)}"


class AdminClient(_Base):
    """Tenants and databases (chromadb's `AdminClient`)."""

    def __init__(self, settings: Any = None, path: Optional[str] = None) -> None:
        s = Settings.of(settings)
        if path is None and s.is_persistent:
            path = s.persist_directory
        super().__init__(path, s, DEFAULT_TENANT, DEFAULT_DATABASE)

    def create_tenant(self, name: str) -> None:
        self._transport.call("POST", "/tenants", {"name": name})

    def get_tenant(self, name: str) -> Dict[str, Any]:
        return dict(self._transport.call("GET", f"/tenants/{_seg(name)}"))

    def create_database(self, name: str, tenant: str = DEFAULT_TENANT) -> None:
        self._transport.call("POST", f"/tenants/{_seg(tenant)}/databases", {"name": name})

    def get_database(self, name: str, tenant: str = DEFAULT_TENANT) -> Dict[str, Any]:
        answer = self._transport.call("GET", f"/tenants/{_seg(tenant)}/databases/{_seg(name)}")
        return _database(answer)

    def delete_database(self, name: str, tenant: str = DEFAULT_TENANT) -> None:
        self._transport.call("DELETE", f"/tenants/{_seg(tenant)}/databases/{_seg(name)}")

    def list_databases(
        self, limit: Optional[int] = None, offset: Optional[int] = None, tenant: str = DEFAULT_TENANT
    ) -> List[Dict[str, Any]]:
        query = _paging(limit, offset)
        answer = self._transport.call("GET", f"/tenants/{_seg(tenant)}/databases{query}")
        return [_database(d) for d in answer]


def _database(answer: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(answer)
    if "id" in out:
        out["id"] = UUID(str(out["id"]))
    return out


def _paging(limit: Optional[int], offset: Optional[int]) -> str:
    parts = []
    if limit is not None:
        parts.append(f"limit={int(limit)}")
    if offset is not None:
        parts.append(f"offset={int(offset)}")
    return ("?" + "&".join(parts)) if parts else ""


class Client(_Base):
    """A database of one tenant (chromadb's `ClientAPI`): collections and their records."""

    def __init__(
        self,
        path: Optional[str] = None,
        settings: Any = None,
        tenant: str = DEFAULT_TENANT,
        database: str = DEFAULT_DATABASE,
    ) -> None:
        super().__init__(path, settings, tenant, database)
        # chromadb checks that the tenant and database exist when a client is made.
        self._transport.call("GET", f"/tenants/{_seg(tenant)}")
        self._transport.call("GET", self._db())

    # -- tenant and database of this client

    def set_tenant(self, tenant: str, database: str = DEFAULT_DATABASE) -> None:
        self._transport.call("GET", f"/tenants/{_seg(tenant)}")
        self._transport.call("GET", self._db(tenant, database))
        self.tenant, self.database = tenant, database

    def set_database(self, database: str) -> None:
        self._transport.call("GET", self._db(self.tenant, database))
        self.database = database

    @staticmethod
    def clear_system_cache() -> None:
        clear_system_cache()

    def get_max_batch_size(self) -> int:
        return int(self._transport.call("GET", "/pre-flight-checks")["max_batch_size"])

    def get_user_identity(self) -> Dict[str, Any]:
        return dict(self._transport.call("GET", "/auth/identity"))

    # -- collections

    def list_collections(
        self, limit: Optional[int] = None, offset: Optional[int] = None
    ) -> List["Collection"]:
        v.check_paging(limit, offset)
        answer = self._transport.call("GET", f"{self._db()}/collections{_paging(limit, offset)}")
        return [Collection(self, model, _DEFAULT_EF, None) for model in answer]

    def count_collections(self) -> int:
        return int(self._transport.call("GET", f"{self._db()}/collections_count"))

    def create_collection(
        self,
        name: str,
        schema: Any = None,
        configuration: Optional[Dict[str, Any]] = None,
        metadata: Optional[Dict[str, Any]] = None,
        embedding_function: Any = _DEFAULT_EF,
        data_loader: Any = None,
        get_or_create: bool = False,
    ) -> "Collection":
        body = _create_body(name, schema, configuration, metadata, embedding_function, get_or_create)
        model = self._transport.call("POST", f"{self._db()}/collections", body)
        for key, ef in _schema_sparse_functions(schema).items():
            # Only a function the collection stores for that key (get_or_create may return a
            # collection made with another one, whose stored function wins, as in chromadb).
            if _stored_sparse_function(model.get("schema"), key) == efs.to_config(ef):
                _SPARSE_FUNCTIONS[(str(model["id"]), key)] = ef
        if get_or_create:
            _check_ef_on_get(embedding_function, model)
        return Collection(self, model, embedding_function, data_loader)

    def get_or_create_collection(
        self,
        name: str,
        schema: Any = None,
        configuration: Optional[Dict[str, Any]] = None,
        metadata: Optional[Dict[str, Any]] = None,
        embedding_function: Any = _DEFAULT_EF,
        data_loader: Any = None,
    ) -> "Collection":
        return self.create_collection(
            name, schema, configuration, metadata, embedding_function, data_loader, True
        )

    def get_collection(
        self, name: str, embedding_function: Any = _DEFAULT_EF, data_loader: Any = None
    ) -> "Collection":
        model = self._transport.call("GET", f"{self._db()}/collections/{_seg(name)}")
        _check_ef_on_get(embedding_function, model)
        return Collection(self, model, embedding_function, data_loader)

    def get_collection_by_id(
        self, id: Any, embedding_function: Any = _DEFAULT_EF, data_loader: Any = None
    ) -> "Collection":
        model = self._transport.call("GET", f"{self._db()}/collections/by-id/{_seg(str(id))}")
        _check_ef_on_get(embedding_function, model)
        return Collection(self, model, embedding_function, data_loader)

    def delete_collection(self, name: str) -> None:
        self._transport.call("DELETE", f"{self._db()}/collections/{_seg(name)}")

    def reset(self) -> bool:
        """Deletes everything (when the client's settings have `allow_reset=True`)."""
        if not self._settings.allow_reset:
            raise errors.AuthorizationError("Reset is disabled by config")
        return bool(self._transport.call("POST", "/reset"))


def _create_body(
    name: str,
    schema: Any,
    configuration: Optional[Dict[str, Any]],
    metadata: Optional[Dict[str, Any]],
    ef: Any,
    get_or_create: bool,
) -> Dict[str, Any]:
    v.check_collection_metadata(metadata)
    configuration = dict(configuration or {})
    configured_ef = configuration.get("embedding_function")
    if configured_ef is not None and ef is not None and not efs.is_default(ef):
        if configured_ef is not ef and getattr(configured_ef, "name", lambda: None)() != ef.name():
            raise ValueError(
                "Multiple embedding functions provided. Please provide only one. Embedding "
                f"function conflict: {ef.name()} vs {configured_ef.name()}"
            )
    if ef is not None:
        efs.check(ef)
    if configured_ef is None:
        configured_ef = ef
    if configured_ef is None and not configuration:
        # Nothing to configure (chromadb then sends no configuration): the collection stores none
        # and, like chromadb's, embeds with the default function when asked to.
        body: Dict[str, Any] = {"name": name, "metadata": metadata, "get_or_create": get_or_create}
        if schema is not None:
            body["schema"] = _schema_json(schema)
        return body
    hnsw = configuration.get("hnsw")
    spann = configuration.get("spann")
    if hnsw is not None and spann is not None:
        raise ValueError("hnsw and spann cannot both be provided")
    wire: Dict[str, Any] = {}
    if configured_ef is None:
        wire = {"hnsw": hnsw, "spann": spann, "embedding_function": {"type": "legacy"}}
    else:
        ef_config = efs.to_config(configured_ef)
        if ef_config["type"] == "known":
            default_space = getattr(configured_ef, "default_space", None)
            no_space = metadata is None or metadata.get("hnsw:space") is None
            if hnsw is None and spann is None and no_space and callable(default_space):
                hnsw = {"space": default_space()}
            if hnsw is not None and hnsw.get("space") is None and callable(default_space):
                hnsw = {**hnsw, "space": default_space()}
            if spann is not None and spann.get("space") is None and callable(default_space):
                spann = {**spann, "space": default_space()}
        wire = {"hnsw": hnsw, "spann": spann, "embedding_function": ef_config}
    for key, value in configuration.items():
        if key not in ("hnsw", "spann", "embedding_function"):
            wire[key] = value
    body = {
        "name": name,
        "configuration": wire,
        "metadata": metadata,
        "get_or_create": get_or_create,
    }
    if schema is not None:
        body["schema"] = _schema_json(schema)
    return body


# The sparse embedding functions given as objects in a `Schema` at creation, by (collection id,
# key): used as given in this process; elsewhere the function is rebuilt from its stored config.
_SPARSE_FUNCTIONS: Dict[Tuple[str, str], Any] = {}


def _schema_sparse_functions(schema: Any) -> Dict[str, Any]:
    """The sparse embedding function objects a chromadb `Schema` holds, by key."""
    out: Dict[str, Any] = {}
    keys = getattr(schema, "keys", None)
    if not isinstance(keys, dict):
        return out
    for key, types in keys.items():
        index = getattr(getattr(types, "sparse_vector", None), "sparse_vector_index", None)
        ef = getattr(getattr(index, "config", None), "embedding_function", None)
        if ef is not None and callable(ef):
            out[key] = ef
    return out


def _sparse_index_config(schema: Any, key: str) -> Dict[str, Any]:
    """The config of `key`'s enabled sparse vector index in a schema's JSON (empty if none)."""
    if not isinstance(schema, dict):
        return {}
    types = (schema.get("keys") or {}).get(key) or {}
    index = (types.get("sparse_vector") or {}).get("sparse_vector_index") or {}
    return (index.get("config") or {}) if index.get("enabled") else {}


def _stored_sparse_function(schema: Any, key: str) -> Any:
    return _sparse_index_config(schema, key).get("embedding_function")


def _run_embedding_function(ef: Any, values: List[Any], is_query: bool) -> Any:
    """`ef` on `values`: its `embed_query` for queries when it has one (chromadb's rule)."""
    if is_query and callable(getattr(ef, "embed_query", None)):
        return ef.embed_query(input=values)
    return ef(input=values)


def _sparse_vector_dict(value: Any) -> Any:
    """A sparse embedding function's output, in the metadata wire form."""
    if isinstance(value, dict):
        return value if "#type" in value else {"#type": "sparse_vector", **value}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise ValueError(f"Sparse embedding function returned {type(value).__name__}, not a SparseVector")


def _schema_json(schema: Any) -> Any:
    return schema.serialize_to_json() if hasattr(schema, "serialize_to_json") else schema


def _check_ef_on_get(ef: Any, model: Dict[str, Any]) -> None:
    stored = (model.get("configuration_json") or {}).get("embedding_function")
    if stored is None or ef is None or efs.is_default(ef):
        return
    stored_name = stored.get("name")
    if stored_name is not None and stored_name != ef.name():
        raise ValueError(
            "An embedding function already exists in the collection configuration, and a new one "
            "is provided. If this is intentional, please embed documents separately. Embedding "
            f"function conflict: new: {ef.name()} vs persisted: {stored_name}"
        )


def _schema_embedding_function(schema: Any) -> Optional[Dict[str, Any]]:
    """The embedding function a schema's `#embedding` vector index (or its default) names."""
    if not isinstance(schema, dict):
        return None
    for part in ((schema.get("keys") or {}).get("#embedding"), schema.get("defaults")):
        try:
            config = part["float_list"]["vector_index"]["config"]["embedding_function"]
        except (KeyError, TypeError):
            continue
        if isinstance(config, dict) and config.get("type") == "known":
            return config
    return None


@dataclass
class IndexingStatus:
    """How much of a collection is indexed (in process, always all of it)."""

    num_indexed_ops: int
    num_unindexed_ops: int
    total_ops: int
    op_indexing_progress: float


class SearchResult(dict):  # type: ignore[type-arg]
    """The Search API's column-wise answer (`ids`, `documents`, `embeddings`, `metadatas`,
    `scores`, `select`: one list per search), with `rows()` as chromadb has it."""

    def rows(self) -> List[List[Dict[str, Any]]]:
        out = []
        for i, ids in enumerate(self.get("ids") or []):
            rows = []
            for j, id_ in enumerate(ids):
                row: Dict[str, Any] = {"id": id_}
                for column, key in (
                    ("documents", "document"),
                    ("embeddings", "embedding"),
                    ("metadatas", "metadata"),
                    ("scores", "score"),
                ):
                    values = self.get(column)
                    if values is not None and values[i] is not None:
                        row[key] = values[i][j]
                rows.append(row)
            out.append(rows)
        return out


def _encode_embeddings(vectors: List[np.ndarray]) -> List[str]:
    """Base64 of little-endian f32, one string per vector (read in place when the vector already
    is C-contiguous little-endian float32)."""
    out = []
    for vec in vectors:
        row = np.ascontiguousarray(vec, dtype="<f4")
        out.append(base64.b64encode(row.data).decode("ascii"))
    return out


def _f32_exact(rows: Any) -> np.ndarray:
    """Vectors the engine sent (f32 written as their shortest decimal) as chromadb returns them:
    a float64 array holding exactly the stored f32 values."""
    return np.array(rows, dtype=np.float32).astype(np.float64) if len(rows) else np.array(rows)


def _wire_metadata(m: Any) -> Any:
    if m is None:
        return None
    out = {}
    for key, value in m.items():
        if hasattr(value, "to_dict") and not isinstance(value, dict):
            value = value.to_dict()
        out[key] = value
    return out


def _from_wire_metadata(m: Any) -> Any:
    if not isinstance(m, dict):
        return m
    for key, value in m.items():
        if isinstance(value, dict) and value.get("#type") == "sparse_vector":
            try:
                from chromadb.base_types import SparseVector

                m[key] = SparseVector.from_dict(value)
            except Exception:
                pass
    return m


class Collection:
    """A collection (chromadb's `Collection`)."""

    def __init__(
        self, client: Client, model: Dict[str, Any], embedding_function: Any, data_loader: Any
    ) -> None:
        if embedding_function is not None:
            efs.check(embedding_function)
        self._client = client
        self._model = model
        self._embedding_function = embedding_function
        self._data_loader = data_loader
        # The schema's sparse targets, resolved once per schema (rebuilding a function from its
        # config can be costly): (the schema dict they were resolved from, the targets).
        self._sparse_cache: Optional[Tuple[Any, List[Tuple[str, str, Any]]]] = None
        self._path = f"{client._db(model.get('tenant'), model.get('database'))}/collections/{model['id']}"

    # -- the model

    @property
    def id(self) -> UUID:
        return UUID(str(self._model["id"]))

    @property
    def name(self) -> str:
        return str(self._model["name"])

    @property
    def metadata(self) -> Optional[Dict[str, Any]]:
        return self._model.get("metadata")

    @property
    def tenant(self) -> str:
        return str(self._model.get("tenant") or self._client.tenant)

    @property
    def database(self) -> str:
        return str(self._model.get("database") or self._client.database)

    @property
    def configuration_json(self) -> Dict[str, Any]:
        return dict(self._model.get("configuration_json") or {})

    @property
    def configuration(self) -> Dict[str, Any]:
        """The configuration with its embedding function built (None when legacy or unknown)."""
        config = self.configuration_json
        return {
            "hnsw": config.get("hnsw"),
            "spann": config.get("spann"),
            "embedding_function": efs.from_config(config.get("embedding_function")),
        }

    @property
    def schema(self) -> Optional[Dict[str, Any]]:
        """The collection's schema in Chroma's JSON form."""
        return self._model.get("schema")

    @property
    def dimension(self) -> Optional[int]:
        return self._model.get("dimension")

    def get_model(self) -> Dict[str, Any]:
        return dict(self._model)

    def __repr__(self) -> str:
        return f"Collection(name={self.name})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Collection):
            return False
        return (
            self.id == other.id
            and self.name == other.name
            and self.configuration_json == other.configuration_json
            and self.schema == other.schema
            and self.metadata == other.metadata
            and self.tenant == other.tenant
            and self.database == other.database
            and self._embedding_function == other._embedding_function
            and self._data_loader == other._data_loader
        )

    def __hash__(self) -> int:
        return hash(self.id)

    def _call(self, method: str, op: str, body: Any = None) -> Any:
        return self._client._transport.call(method, f"{self._path}/{op}" if op else self._path, body)

    # -- embedding

    def _embedding_function_in_use(self) -> Any:
        ef = self._embedding_function
        if ef is not None and not efs.is_default(ef):
            return ef
        stored_config = self.configuration_json.get("embedding_function")
        stored = efs.from_config(stored_config)
        if stored is not None:
            return stored
        in_schema = efs.from_config(_schema_embedding_function(self.schema))
        if in_schema is not None:
            return in_schema
        if ef is None and stored_config is None:
            # chromadb: a collection stored without a function embeds with the default one.
            return _DEFAULT_EF
        if ef is None:
            raise ValueError(
                "You must provide an embedding function to compute embeddings."
                "https://docs.trychroma.com/guides/embeddings"
            )
        return ef

    def _embed(self, values: List[Any], is_query: bool = False) -> List[np.ndarray]:
        out = _run_embedding_function(self._embedding_function_in_use(), values, is_query)
        vectors = v.embeddings(out if isinstance(out, (list, np.ndarray)) else list(out))
        if vectors is None:
            raise ValueError("The embedding function returned nothing")
        return vectors

    def _embed_records(self, records: Dict[str, Any], fields: Sequence[str], is_query: bool = False) -> List[np.ndarray]:
        field = v.check_embeddable(records, fields)
        if field == "uris":
            if self._data_loader is None:
                raise ValueError("You must set a data loader on the collection if loading from URIs.")
            return self._embed(self._data_loader(records["uris"]), is_query)
        return self._embed(records[field], is_query)

    # -- writes

    def _write_body(self, records: Dict[str, Any], vectors: Optional[List[np.ndarray]]) -> Dict[str, Any]:
        body: Dict[str, Any] = {"ids": records["ids"]}
        if vectors is not None:
            body["embeddings"] = _encode_embeddings(vectors)
        if records["metadatas"] is not None:
            body["metadatas"] = [_wire_metadata(m) for m in records["metadatas"]]
        if records["documents"] is not None:
            body["documents"] = records["documents"]
        if records["uris"] is not None:
            body["uris"] = records["uris"]
        return body

    def add(
        self,
        ids: Any,
        embeddings: Any = None,
        metadatas: Any = None,
        documents: Any = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        self._write("add", ids, embeddings, metadatas, documents, images, uris)

    def upsert(
        self,
        ids: Any,
        embeddings: Any = None,
        metadatas: Any = None,
        documents: Any = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        self._write("upsert", ids, embeddings, metadatas, documents, images, uris)

    def update(
        self,
        ids: Any,
        embeddings: Any = None,
        metadatas: Any = None,
        documents: Any = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        self._write("update", ids, embeddings, metadatas, documents, images, uris)

    # What each write embeds when it has no embeddings (chromadb's rules: an add may load them
    # from uris; an update without documents or images keeps the stored vectors).
    _EMBEDDABLE = {
        "add": ("documents", "images", "uris"),
        "upsert": ("documents", "images"),
        "update": ("documents", "images"),
    }

    def _write(self, op: str, *fields: Any) -> None:
        records, vectors = v.in_operation(op)(self._prepare_write)(op, *fields)
        records["metadatas"] = self._apply_sparse_embeddings(
            records["metadatas"], records["documents"], update=op == "update"
        )
        if op == "add":
            v.check_add_metadata_values(records["metadatas"])
        self._call("POST", op, self._write_body(records, vectors))

    # -- sparse embedding functions

    def _sparse_targets(self) -> List[Tuple[str, str, Any]]:
        """(key, source key, function) of each enabled sparse vector index of the schema whose
        embedding function runs in this process: every one but `chroma_bm25`, which the engine
        computes itself (as Chroma's server does)."""
        schema = self.schema
        if self._sparse_cache is None or self._sparse_cache[0] is not schema:
            self._sparse_cache = (schema, self._resolve_sparse_targets(schema))
        return self._sparse_cache[1]

    def _resolve_sparse_targets(self, schema: Any) -> List[Tuple[str, str, Any]]:
        if not isinstance(schema, dict):
            return []
        out = []
        for key in schema.get("keys") or {}:
            config = _sparse_index_config(schema, key)
            stored, source = config.get("embedding_function"), config.get("source_key")
            if not isinstance(stored, dict) or not source or stored.get("name") == "chroma_bm25":
                continue
            ef = _SPARSE_FUNCTIONS.get((str(self.id), key))
            if ef is None:
                try:
                    ef = efs.from_config(stored, efs.known_sparse_embedding_function)
                except Exception as e:
                    # As chromadb: a function that cannot be rebuilt here leaves the key to the
                    # caller (writes go on without it), with a warning.
                    warnings.warn(
                        f"Could not reconstruct sparse embedding function {stored.get('name')!r} "
                        f"for key {key!r}: {e}; its vectors must be given with the writes",
                        stacklevel=5,
                    )
            if ef is not None:
                out.append((key, source, ef))
        return out

    def _sparse_embed(self, ef: Any, texts: List[str], is_query: bool = False) -> List[Any]:
        out = list(_run_embedding_function(ef, texts, is_query))
        if len(out) != len(texts):
            raise ValueError("Sparse embedding function returned unexpected number of embeddings.")
        return [_sparse_vector_dict(x) for x in out]

    def _apply_sparse_embeddings(self, metadatas: Any, documents: Any, update: bool = False) -> Any:
        """chromadb's client-side sparse fill: for each sparse index with a function and a source
        key (`#document` or a metadata key holding a string), records whose metadata lacks the
        index's key get the function's vector of their source there."""
        targets = self._sparse_targets()
        if not targets:
            return metadatas
        if metadatas is None:
            if documents is None:
                return None
            metadatas = [None] * len(documents)
        updated = [dict(m) if m is not None else {} for m in metadatas]
        for key, source, ef in targets:
            positions, texts = [], []
            for i, m in enumerate(updated):
                if key in m:
                    continue
                text = (documents[i] if documents is not None and i < len(documents) else None) \
                    if source == "#document" else m.get(source)
                if isinstance(text, str):
                    positions.append(i)
                    texts.append(text)
            if texts:
                for i, vec in zip(positions, self._sparse_embed(ef, texts)):
                    updated[i][key] = vec
        out = [m if m else None for m in updated]
        for m in out:
            if m is not None:
                v.check_metadata(m, update=update)
        return out

    def _prepare_write(
        self, op: str, ids: Any, embeddings: Any, metadatas: Any, documents: Any, images: Any, uris: Any
    ) -> Tuple[Dict[str, Any], Optional[List[np.ndarray]]]:
        records = v.record_set(ids, embeddings, metadatas, documents, images, uris)
        v.check_insert(records)
        vectors = records["embeddings"]
        keeps_vectors = op == "update" and records["documents"] is None and records["images"] is None
        if vectors is None and not keeps_vectors:
            vectors = self._embed_records(records, self._EMBEDDABLE[op])
        return records, vectors

    def delete(
        self,
        ids: Any = None,
        where: Optional[Dict[str, Any]] = None,
        where_document: Optional[Dict[str, Any]] = None,
        limit: Optional[int] = None,
    ) -> Dict[str, int]:
        body = self._prepare_delete(ids, where, where_document, limit)
        answer = self._call("POST", "delete", body)
        return {"deleted": int((answer or {}).get("deleted", 0))}

    @v.in_operation("delete")
    def _prepare_delete(self, ids: Any, where: Any, where_document: Any, limit: Any) -> Dict[str, Any]:
        if ids is None and where is None and where_document is None:
            raise ValueError("At least one of ids, where, or where_document must be provided")
        if limit is not None:
            if not isinstance(limit, int) or isinstance(limit, bool):
                raise TypeError("limit must be a non-negative integer")
            if limit < 0:
                raise ValueError("limit must be a non-negative integer")
            if where is None and where_document is None:
                raise ValueError(
                    "limit can only be specified when a where or where_document clause is provided"
                )
        id_list = v.one_or_many(ids)
        if id_list is not None:
            v.check_ids(id_list)
        v.check_filters(where, where_document)
        body: Dict[str, Any] = {}
        if id_list is not None:
            body["ids"] = id_list
        if where is not None:
            body["where"] = where
        if where_document is not None:
            body["where_document"] = where_document
        if limit is not None:
            body["limit"] = limit
        return body

    # -- reads

    def count(self, read_level: Any = None) -> int:
        return int(self._call("GET", "count"))

    def get_indexing_status(self) -> IndexingStatus:
        s = self._call("GET", "indexing_status") or {}
        return IndexingStatus(
            int(s.get("num_indexed_ops", 0)),
            int(s.get("num_unindexed_ops", 0)),
            int(s.get("total_ops", 0)),
            float(s.get("op_indexing_progress", 1.0)),
        )

    def get(
        self,
        ids: Any = None,
        where: Optional[Dict[str, Any]] = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
        where_document: Optional[Dict[str, Any]] = None,
        include: List[str] = ["metadatas", "documents"],  # noqa: B006 (chromadb's default)
    ) -> Dict[str, Any]:
        v.check_paging(limit, offset)
        body, include = self._prepare_get(ids, where, where_document, include)
        if limit is not None:
            body["limit"] = limit
        if offset is not None:
            body["offset"] = offset
        return self._get(body, include)

    def _get(self, body: Dict[str, Any], include: List[str]) -> Dict[str, Any]:
        wire = self._call("POST", "get", body)
        result: Dict[str, Any] = {
            "ids": wire.get("ids", []),
            "embeddings": wire.get("embeddings"),
            "documents": wire.get("documents"),
            "uris": wire.get("uris"),
            "data": None,
            "metadatas": wire.get("metadatas"),
            "included": include,
        }
        if result["metadatas"] is not None:
            result["metadatas"] = [_from_wire_metadata(m) for m in result["metadatas"]]
        if "data" in include and self._data_loader is not None and result["uris"] is not None:
            result["data"] = self._data_loader(result["uris"])
        if "embeddings" in include:
            rows = result["embeddings"] or []
            # As chromadb: float64 holding the stored f32 values exactly.
            result["embeddings"] = _f32_exact(rows)
        if "uris" not in include:
            result["uris"] = None
        return result

    @v.in_operation("get")
    def _prepare_get(self, ids: Any, where: Any, where_document: Any, include: Any) -> Tuple[Dict[str, Any], List[str]]:
        id_list = v.one_or_many(ids)
        if id_list is not None:
            v.check_ids(id_list)
        v.check_filters(where, where_document)
        include = v.check_include(include, disallowed=("distances",))
        if "data" in include and self._data_loader is None:
            raise ValueError("You must set a data loader on the collection if loading from URIs.")
        if "data" in include and "uris" not in include:
            include.append("uris")  # the data is loaded from them (chromadb reports it included)
        body: Dict[str, Any] = {"include": [i for i in include if i != "data"]}
        if id_list is not None:
            body["ids"] = id_list
        if where is not None:
            body["where"] = where
        if where_document is not None:
            body["where_document"] = where_document
        return body, include

    def peek(self, limit: int = 10) -> Dict[str, Any]:
        v.check_paging(limit, None)
        include = ["metadatas", "documents", "embeddings"]
        result = self._get({"limit": limit, "include": include}, include)
        return result

    def query(
        self,
        query_embeddings: Any = None,
        query_texts: Any = None,
        query_images: Any = None,
        query_uris: Any = None,
        ids: Any = None,
        n_results: int = 10,
        where: Optional[Dict[str, Any]] = None,
        where_document: Optional[Dict[str, Any]] = None,
        include: List[str] = ["metadatas", "documents", "distances"],  # noqa: B006
    ) -> Dict[str, Any]:
        body, include = self._prepare_query(
            query_embeddings, query_texts, query_images, query_uris, ids, n_results, where,
            where_document, include,
        )
        wire = self._call("POST", "query", body)
        result: Dict[str, Any] = {
            "ids": wire.get("ids", []),
            "embeddings": wire.get("embeddings"),
            "documents": wire.get("documents"),
            "uris": wire.get("uris"),
            "data": None,
            "metadatas": wire.get("metadatas"),
            "distances": wire.get("distances"),
            "included": include,
        }
        if result["metadatas"] is not None:
            result["metadatas"] = [
                [_from_wire_metadata(m) for m in row] if row is not None else None
                for row in result["metadatas"]
            ]
        if result["distances"] is not None:
            # As chromadb: the f32 distances as the Python floats that hold them exactly.
            result["distances"] = [
                np.array(row, dtype=np.float32).astype(np.float64).tolist() if row is not None else None
                for row in result["distances"]
            ]
        if "data" in include and self._data_loader is not None and result["uris"] is not None:
            result["data"] = [self._data_loader(u) for u in result["uris"]]
        if "embeddings" in include and result["embeddings"] is not None:
            result["embeddings"] = [_f32_exact(e) for e in result["embeddings"]]
        if "uris" not in include:
            result["uris"] = None
        return result

    @v.in_operation("query")
    def _prepare_query(
        self, query_embeddings: Any, query_texts: Any, query_images: Any, query_uris: Any,
        ids: Any, n_results: Any, where: Any, where_document: Any, include: Any,
    ) -> Tuple[Dict[str, Any], List[str]]:
        records = v.record_set(
            embeddings_=query_embeddings, documents=query_texts, images=query_images,
            uris=query_uris, with_ids=False,
        )
        v.check_base(records)
        v.check_filters(where, where_document)
        include = v.check_include(include)
        v.check_n_results(n_results)
        vectors = records["embeddings"]
        if vectors is None:
            vectors = self._embed_records(records, ("documents", "images", "uris"), is_query=True)
        if "data" in include and "uris" not in include:
            include.append("uris")
        body: Dict[str, Any] = {
            "query_embeddings": _QueryVectors(vectors),
            "n_results": n_results,
            "include": [i for i in include if i != "data"],
        }
        id_list = v.one_or_many(ids)
        if id_list is not None:
            body["ids"] = id_list
        if where is not None:
            body["where"] = where
        if where_document is not None:
            body["where_document"] = where_document
        return body, include

    def search(self, searches: Any, read_level: Any = None) -> SearchResult:
        """The Search API: one `Search` (chromadb's, or anything with `to_dict()`, or its dict
        form) or a list of them. Text `$knn` queries on `#embedding` are embedded here with the
        collection's embedding function, as chromadb does."""
        items = searches if isinstance(searches, list) else [searches]
        payload = []
        for s in items:
            d = s.to_dict() if hasattr(s, "to_dict") else dict(s)
            payload.append(self._embed_text_knn(d))
        return SearchResult(self._call("POST", "search", {"searches": payload}))

    def _embed_text_knn(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self._embed_text_knn(x) for x in node]
        if not isinstance(node, dict):
            return node
        out = {k: self._embed_text_knn(x) for k, x in node.items()}
        knn = out.get("$knn")
        if isinstance(knn, dict) and isinstance(knn.get("query"), str):
            key = knn.get("key", "#embedding")
            if key == "#embedding":
                knn = dict(knn)
                knn["query"] = np.asarray(self._embed([knn["query"]], is_query=True)[0], dtype=np.float32).tolist()
                out["$knn"] = knn
            else:
                # A sparse key whose function runs here (chroma_bm25 queries the engine embeds).
                ef = next((f for k, _, f in self._sparse_targets() if k == key), None)
                if ef is not None:
                    knn = dict(knn)
                    query = self._sparse_embed(ef, [knn["query"]], is_query=True)[0]
                    knn["query"] = {k: x for k, x in query.items() if k != "#type"}
                    out["$knn"] = knn
        return out

    # -- the collection itself

    def modify(
        self,
        name: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        configuration: Optional[Dict[str, Any]] = None,
    ) -> None:
        if metadata is not None:
            v.check_metadata(metadata)
            if "hnsw:space" in metadata:
                raise ValueError(
                    "Changing the distance function of a collection once it is created is not "
                    "supported currently."
                )
        body: Dict[str, Any] = {}
        if name is not None:
            body["new_name"] = name
        if metadata is not None:
            body["new_metadata"] = metadata
        if configuration is not None:
            config = dict(configuration)
            if config.get("embedding_function") is not None:
                config["embedding_function"] = efs.to_config(config["embedding_function"])
            body["new_configuration"] = config
        self._call("PUT", "", body)
        refreshed = self._client._transport.call(
            "GET", f"{self._client._db(self.tenant, self.database)}/collections/by-id/{self.id}"
        )
        self._model = refreshed
        if configuration is not None and configuration.get("embedding_function") is not None:
            self._embedding_function = configuration["embedding_function"]

    def fork(self, new_name: str) -> "Collection":
        model = self._call("POST", "fork", {"new_name": new_name})
        return Collection(self._client, model, self._embedding_function, self._data_loader)

    def fork_count(self) -> int:
        answer = self._call("GET", "fork_count")
        return int(answer["count"] if isinstance(answer, dict) else answer)
