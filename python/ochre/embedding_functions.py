"""Embedding functions: Ochre's default (all-MiniLM-L6-v2 run in Rust) and the registry that
rebuilds a collection's function from its stored configuration.

An embedding function is any object following chromadb's protocol: called as `ef(input=texts)`
it returns one vector per text; `name()`, `get_config()` and the static `build_from_config()` let
a collection store it and get it back; `embed_query(input=...)`, `default_space()`,
`supported_spaces()` and `is_legacy()` are used when present. chromadb's own classes qualify.
"""
import sys
import threading
import warnings
from typing import Any, Callable, Dict, List, Optional, Type

import numpy as np

from . import _ochre

_known: Dict[str, Any] = {}


def register_embedding_function(cls: Any = None, *, name: Optional[str] = None) -> Any:
    """Registers a class under its `name()` (or `name`), so that collections stored with it get
    it back (built with `build_from_config`). Usable as a decorator."""

    def register(c: Any) -> Any:
        key = name if name is not None else c.name()
        _known[key] = c
        return c

    return register if cls is None else register(cls)


def _registered(name: str, chromadb_registry: str) -> Optional[Any]:
    """`name` in Ochre's registry, else in chromadb's registry `chromadb_registry` (a dict of
    `chromadb.utils.embedding_functions`) when chromadb is installed."""
    if name in _known:
        return _known[name]
    try:
        from chromadb.utils import embedding_functions as chroma_efs
    except Exception:  # chromadb is optional
        return None
    return getattr(chroma_efs, chromadb_registry, {}).get(name)


def known_embedding_function(name: str) -> Optional[Any]:
    """The class registered as `name`: Ochre's, the caller's, or chromadb's when installed."""
    return _registered(name, "known_embedding_functions")


def known_sparse_embedding_function(name: str) -> Optional[Any]:
    """The sparse function class registered as `name`: with `register_embedding_function`, or
    chromadb's (`register_sparse_embedding_function`) when chromadb is installed."""
    return _registered(name, "sparse_known_embedding_functions")


class DefaultEmbeddingFunction:
    """all-MiniLM-L6-v2, Chroma's default model (384-d, mean pooling, L2-normalised), run by
    Ochre's Rust embedder: no ONNX runtime, no download when the model is at hand.

    The model directory is `model_dir`, else `$OCHRE_MODEL_DIR`, else the Hugging Face cache
    (`sentence-transformers/all-MiniLM-L6-v2`), else one download into that cache (unless
    `HF_HUB_OFFLINE` is set). Loaded once per process, at the first call.
    """

    _lock = threading.Lock()
    _models: Dict[Optional[str], Any] = {}

    def __init__(self, model_dir: Optional[str] = None) -> None:
        self._model_dir = model_dir

    def _model(self) -> Any:
        with DefaultEmbeddingFunction._lock:
            model = DefaultEmbeddingFunction._models.get(self._model_dir)
            if model is None:
                model = _ochre.Embedder(self._model_dir)
                DefaultEmbeddingFunction._models[self._model_dir] = model
            return model

    def __call__(self, input: List[str]) -> List[np.ndarray]:
        texts = [input] if isinstance(input, str) else list(input)
        for t in texts:
            if not isinstance(t, str):
                raise ValueError(f"{self.name()} embeds text only, got {type(t).__name__}")
        model = self._model()
        flat = np.frombuffer(model.embed(texts), dtype="<f4")
        return list(flat.reshape(len(texts), model.dimension).astype(np.float32))

    def embed_query(self, input: List[str]) -> List[np.ndarray]:
        return self(input)

    @staticmethod
    def name() -> str:
        return "default"

    def get_config(self) -> Dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: Dict[str, Any]) -> "DefaultEmbeddingFunction":
        return DefaultEmbeddingFunction()

    def default_space(self) -> str:
        return "l2"

    def supported_spaces(self) -> List[str]:
        return ["cosine", "l2", "ip"]

    def is_legacy(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DefaultEmbeddingFunction)

    def __hash__(self) -> int:
        return hash(DefaultEmbeddingFunction)


register_embedding_function(DefaultEmbeddingFunction)
# chromadb's ONNX function runs the same model.
register_embedding_function(DefaultEmbeddingFunction, name="onnx_mini_lm_l6_v2")


def is_default(ef: Any) -> bool:
    """Whether `ef` is a default function (Ochre's without a model directory of its own, or
    chromadb's), which a collection's stored function takes precedence over."""
    if isinstance(ef, DefaultEmbeddingFunction):
        return ef._model_dir is None
    chroma_types = sys.modules.get("chromadb.api.types")  # chromadb's, only if it is in use
    chroma_default = getattr(chroma_types, "DefaultEmbeddingFunction", None)
    return chroma_default is not None and isinstance(ef, chroma_default)


def to_config(ef: Any) -> Dict[str, Any]:
    """The stored form of an embedding function (chromadb's `embedding_function` configuration)."""
    is_legacy: Callable[[], bool] = getattr(ef, "is_legacy", lambda: True)
    has_config = callable(getattr(ef, "name", None)) and callable(getattr(ef, "get_config", None))
    try:
        if not has_config or is_legacy():
            return {"type": "legacy"}
        name = ef.name()
        config = ef.get_config()
        if name not in _known and known_embedding_function(name) is None:
            register_embedding_function(type(ef), name=name)
    except Exception as e:
        # As chromadb: a function that cannot describe itself is stored as legacy.
        warnings.warn(
            f"the embedding function could not be stored ({e}); it is stored as legacy and must "
            "be passed again when the collection is reopened",
            DeprecationWarning,
            stacklevel=3,
        )
        return {"type": "legacy"}
    return {"type": "known", "name": name, "config": config}


def from_config(
    config: Optional[Dict[str, Any]],
    lookup: Callable[[str], Optional[Any]] = known_embedding_function,
) -> Optional[Any]:
    """The function a stored configuration names, built; None for a legacy or missing one.
    `lookup` finds the class (`known_sparse_embedding_function` for a sparse index's).

    Raises chromadb's `ValueError` for a function no registry knows (register it with
    `register_embedding_function`, or pass it to `get_collection`)."""
    if not config or config.get("type") != "known":
        return None
    name = config.get("name")
    if name is None:
        raise ValueError(f"Embedding function name not found in config: {config}")
    cls: Optional[Type[Any]] = lookup(str(name))
    if cls is None:
        raise ValueError(
            f"Embedding function {name} not found. Add @register_embedding_function decorator "
            "to the class definition."
        )
    try:
        return cls.build_from_config(config.get("config") or {})
    except Exception as e:
        raise ValueError(
            f"Could not build embedding function {config.get('name')} from config "
            f"{config.get('config')}: {e}"
        ) from e


def check(ef: Any) -> None:
    """chromadb's signature check: an embedding function is called with `input`."""
    import inspect

    call = getattr(ef, "__call__", None)
    if call is None:
        raise ValueError("An embedding function must be callable")
    try:
        params = inspect.signature(call).parameters
    except (TypeError, ValueError):
        return
    if "input" not in params and not any(
        p.kind in (p.VAR_KEYWORD,) for p in params.values()
    ):
        raise ValueError(
            "Expected EmbeddingFunction.__call__ to have the following signature: "
            "odict_keys(['self', 'input']), got " + str(list(["self", *params.keys()]))
            + "\nPlease see https://docs.trychroma.com/guides/embeddings for details of the "
            "EmbeddingFunction interface.\nPlease note the recent change to the "
            "EmbeddingFunction interface: https://docs.trychroma.com/deployment/migration"
            "#migration-to-0.4.16---november-7,-2023 \n"
        )


__all__ = [
    "DefaultEmbeddingFunction",
    "register_embedding_function",
    "known_embedding_function",
    "known_sparse_embedding_function",
]
