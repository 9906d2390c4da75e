"""Parity of `ochre` with chromadb 1.5.9's local API, call by call.

Every scenario is a function `scenario(client)` that makes calls on a fresh client and returns
its observations: `(label, result)` pairs, the result normalised (`normalise`) or, for a call that
raised, `("error", class name, message)`. Each scenario runs once on `chromadb.PersistentClient`
and once on `ochre.PersistentClient`, each on its own fresh directory, and the two lists must be
equal. Exception class names must always match; where the messages differ slightly and the
difference is accepted, it is listed in MESSAGE_DIFFERENCES (with both exact texts, so either one
changing is noticed) instead of being ignored silently. CHROMADB_QUIRKS lists chromadb behaviour
judged not worth copying (both sides' answers pinned, not compared); DECIDE lists scenarios of
differences left to a decision (xfail, strict). Messages that chromadb builds from sets (order
varies by process) are canonicalised first (`canonical_message`).

OCHRE_PARITY_AGAINST=chromadb compares chromadb with itself (a check that the scenarios are
deterministic). Run: scripts/python-test.sh -k parity (or pytest in a venv with ochre and chromadb 1.5.9)
"""
import gc
import importlib
import inspect
import math
import os
import re
import uuid
import warnings
from typing import Any, Callable, Dict, List, Tuple

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import needs_model  # noqa: E402

chromadb = pytest.importorskip("chromadb")

AGAINST = os.environ.get("OCHRE_PARITY_AGAINST", "ochre")


def _other_module() -> Any:
    if AGAINST == "chromadb":
        return chromadb
    try:
        return importlib.import_module("ochre")
    except ImportError as e:  # pragma: no cover - the package is not built yet
        pytest.skip(f"ochre is not importable ({e}); OCHRE_PARITY_AGAINST=chromadb checks the harness")


# ---------------------------------------------------------------------------------------------
# normalisation and observation


def _round(x: float, places: int) -> float:
    if math.isnan(x) or math.isinf(x):
        return x
    r = round(float(x), places)
    return 0.0 if r == 0 else r  # no -0.0


def normalise(value: Any, places: int = 5) -> Any:
    """Comparable form of a result: numpy arrays tagged ("ndarray", nested lists rounded to
    `places`), floats rounded (distances to 4 places), UUIDs as str, collections as their name,
    metadata and configuration (not their id, which differs by construction)."""
    if isinstance(value, np.ndarray):
        return ("ndarray", normalise(value.tolist(), places))
    if isinstance(value, (np.floating, float)):
        return _round(float(value), places)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {
            k: normalise(v, 4 if k == "distances" else places) for k, v in value.items()
        }
    if isinstance(value, tuple):
        return tuple(normalise(v, places) for v in value)
    if isinstance(value, list):
        return [normalise(v, places) for v in value]
    if _is_collection(value):
        return collection_view(value)
    return value


def _is_collection(value: Any) -> bool:
    return type(value).__name__ == "Collection" and hasattr(value, "configuration_json")


def collection_view(col: Any) -> Dict[str, Any]:
    """What a Collection shows that both sides must agree on."""
    config = col.configuration_json or {}
    hnsw = config.get("hnsw") or {}
    return {
        "collection": col.name,
        "repr": repr(col),
        "metadata": normalise(col.metadata),
        "hnsw.space": hnsw.get("space"),
        # configuration_json["embedding_function"] is compared in ef_none_without_configuration
    }


_SET_ORDERED = [
    # chromadb builds these lists from sets, in an order that varies by process (str hashing):
    # the items are sorted, or (the 10 examples of a long list of duplicates) elided.
    (re.compile(r"(found duplicates of: )(.+?)( in \w+\.)?$"), lambda m: m[1] + ", ".join(sorted(m[2].split(", "))) + (m[3] or "")),
    (re.compile(r"(found \d+ duplicated IDs: )(.+?)( in \w+\.)?$"), lambda m: m[1] + "<10 of them>" + (m[3] or "")),
    (re.compile(r"(Exactly one of )(.+?)( must be provided)"), lambda m: m[1] + ", ".join(sorted(m[2].split(", "))) + m[3]),
]


def canonical_message(text: str) -> str:
    for pattern, fix in _SET_ORDERED:
        text = pattern.sub(fix, text)
    return text


class Obs(list):  # type: ignore[type-arg]
    """The observations of one scenario."""

    def call(self, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Calls fn, records its normalised result or its error, returns the raw result."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = fn(*args, **kwargs)
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as e:  # noqa: BLE001 - the error is the observation (chromadb's
            # Rust panics are pyo3_runtime.PanicException, a BaseException)
            self.append((label, ("error", type(e).__name__, canonical_message(str(e)))))
            return None
        self.append((label, normalise(value)))
        return value

    def note(self, label: str, value: Any) -> None:
        self.append((label, normalise(value)))


SCENARIOS: Dict[str, Callable[[Any], List[Tuple[str, Any]]]] = {}


def scenario(fn: Callable[[Any], Obs]) -> Callable[[Any], Obs]:
    SCENARIOS[fn.__name__] = fn
    return fn


# Accepted message differences: (scenario, label) -> (chromadb's message, ochre's message).
# The class names must still be equal; both texts are checked exactly.
MESSAGE_DIFFERENCES: Dict[Tuple[str, str], Tuple[str, str]] = {
    ("modify", "rename to taken"): (
        # chromadb leaks its SQLite error; Ochre says what create_collection says
        "Database error: error returned from database: (code: 2067) UNIQUE constraint failed: "
        "collections.name, collections.database_id",
        "Collection [taken] already exists",
    ),
    ("configuration_spaces", "bad space"): (
        # chromadb's binding parses the configuration from a string of its own and says where
        "unknown variant `manhattan`, expected one of `l2`, `cosine`, `ip` at line 1 column 30",
        "unknown variant `manhattan`, expected one of `l2`, `cosine`, `ip`",
    ),
}

_NETWORK = (
    "with embedding_function=None and no configuration, chromadb 1.5.9 stores no embedding "
    "function and embeds with its default (ONNX, downloaded: ConnectError offline); not "
    "compared (depends on the network)"
)


# chromadb behaviour not worth copying: (scenario, label) -> (chromadb's observation, the other
# side's observation, reason). Each observation is checked exactly unless it is None (not
# checked); the two are not compared with each other. With OCHRE_PARITY_AGAINST=chromadb the
# other side is chromadb, so its pinned observation is not checked.
CHROMADB_QUIRKS: Dict[Tuple[str, str], Tuple[Any, Any, str]] = {
    ("collection_metadata", "list value"): (
        ("error", "PanicException", "internal error: entered unreachable code: Array metadata "
         "values are written to embedding_metadata_array"),
        {"l": [1, 2]},
        "chromadb's local bindings panic on a list value in collection metadata (and create "
        "nothing); a panic is no API to copy, and Ochre stores the list",
    ),
    ("collection_metadata", "list after"): (
        ["m-none", "m-scalars"],
        ["m-list", "m-none", "m-scalars"],
        "follows from the panic above (chromadb created no m-list)",
    ),
    ("add_errors", "empty embeddings list"): (
        ("error", "IndexError", "list index out of range in add."),
        ("error", "ValueError", "Expected embeddings to be a list of floats or ints, a list of "
         "lists, a numpy array, or a list of numpy arrays, got [[]] in add."),
        "chromadb crashes (IndexError) on an empty vector; Ochre's ValueError is its normal "
        "embeddings message",
    ),
    ("query", "include data without loader: metadatas"): (
        [[{"color": "red", "n": 1, "nums": [1, 2], "ok": True, "score": 0.5, "tags": ["x", "y"]},
          {"color": "blue", "n": 2, "ok": False, "score": 1.5, "tags": ["y"]}]],
        None,
        "chromadb's bindings return metadatas that were not asked for when include has 'data'",
    ),
    **{
        ("data_loader", f"{label}: metadatas returned"): (
            True, False,
            "chromadb's bindings return metadatas, not asked for, whenever include has 'data'",
        )
        for label in ("get include data", "get include data, uris", "query include data",
                      "query include data, distances")
    },
    ("data_loader", "get appends 'uris' to the caller's include list"): (
        ["data", "uris"], ["data"],
        "chromadb appends 'uris' to the caller's include list (a side effect on an argument)",
    ),
    ("add_errors", "no embeddings, no ef"): (None, None, _NETWORK),
    ("update", "document without embedding, no ef"): (None, None, _NETWORK),
    ("upsert", "no embeddings, no ef"): (None, None, _NETWORK),
    ("query_errors", "texts without ef"): (None, None, _NETWORK),
}

# Differences for the user of this file to decide on: scenarios expected to fail, strictly (so
# a fix, or a decision to accept the difference, has to update this table).
DECIDE: Dict[str, str] = {
    # Decided: each of these is copied (see docs/python.md); the scenarios now compare equal.
}


# ---------------------------------------------------------------------------------------------
# data

DIM = 4
IDS = ["a", "b", "c", "d", "e", "f"]
EMBEDDINGS = [
    [1.0, 0.0, 0.0, 0.0],
    [0.9, 0.3, 0.0, 0.1],
    [0.0, 1.0, 0.0, 0.0],
    [0.1, 0.2, 2.0, 0.0],
    [0.0, 0.0, 0.5, 3.0],
    [-1.0, 0.5, 0.25, 0.0],
]
DOCUMENTS = [
    "apple pie with cream",
    "banana split",
    "cherry tart",
    "apple crumble",
    "Blueberry muffin",
    "date loaf 2024",
]
METADATAS: List[Any] = [
    {"color": "red", "n": 1, "score": 0.5, "ok": True, "tags": ["x", "y"], "nums": [1, 2]},
    {"color": "blue", "n": 2, "score": 1.5, "ok": False, "tags": ["y"]},
    {"color": "green", "n": 3, "score": 2.5, "ok": True, "nums": [3]},
    {"color": "red", "n": 4, "score": 3.5, "ok": False, "tags": ["z"]},
    None,
    {"color": "blue", "n": 6, "flags": [True, False]},
]
URIS = ["s3://a", None, "s3://c", None, None, "s3://f"]


def items(client: Any, name: str = "items", **kwargs: Any) -> Any:
    """A collection without embedding function holding the six records above."""
    col = client.create_collection(name, embedding_function=None, **kwargs)
    col.add(ids=IDS, embeddings=EMBEDDINGS, documents=DOCUMENTS, metadatas=METADATAS, uris=URIS)
    return col


# ---------------------------------------------------------------------------------------------
# collections


@scenario
def collections_lifecycle(client: Any) -> Obs:
    o = Obs()
    o.call("count_collections empty", client.count_collections)
    o.call("list_collections empty", client.list_collections)
    o.call("create", client.create_collection, "alpha", embedding_function=None)
    o.call("create with metadata", client.create_collection, "beta", metadata={"k": "v", "n": 2, "f": 1.5, "b": True}, embedding_function=None)
    o.call("create duplicate", client.create_collection, "alpha", embedding_function=None)
    o.call("create duplicate with metadata", client.create_collection, "beta", metadata={"k": "other"}, embedding_function=None)
    o.call("get", client.get_collection, "beta", embedding_function=None)
    o.call("get missing", client.get_collection, "gamma", embedding_function=None)
    o.call("get_or_create existing", client.get_or_create_collection, "beta", embedding_function=None)
    o.call("get_or_create existing, other metadata", client.get_or_create_collection, "beta", metadata={"k": "new"}, embedding_function=None)
    o.call("get after get_or_create with metadata", client.get_collection, "beta", embedding_function=None)
    o.call("get_or_create new", client.get_or_create_collection, "gamma", metadata={"g": 1}, embedding_function=None)
    o.call("count_collections", client.count_collections)
    o.call("list_collections", lambda: sorted(c.name for c in client.list_collections()))
    # chromadb lists collections in the order of their ids (random UUIDs), so only the pages'
    # sizes and that they partition the whole are comparable.
    o.call("list_collections limit 2", lambda: len(client.list_collections(limit=2)))
    o.call("list_collections offset 1", lambda: len(client.list_collections(offset=1)))
    o.call("list_collections limit 1 offset 1", lambda: len(client.list_collections(limit=1, offset=1)))
    o.call("list_collections pages partition", lambda: sorted(
        [c.name for c in client.list_collections(limit=1)]
        + [c.name for c in client.list_collections(limit=1, offset=1)]
        + [c.name for c in client.list_collections(limit=5, offset=2)]
    ))
    o.call("list_collections offset past end", lambda: [c.name for c in client.list_collections(offset=10)])
    o.call("list_collections limit 0", lambda: [c.name for c in client.list_collections(limit=0)])
    o.call("list_collections types", lambda: sorted(type(c).__name__ for c in client.list_collections()))
    o.call("delete", client.delete_collection, "alpha")
    o.call("delete missing", client.delete_collection, "alpha")
    o.call("get deleted", client.get_collection, "alpha", embedding_function=None)
    o.call("count_collections after delete", client.count_collections)
    o.call("recreate deleted", client.create_collection, "alpha", embedding_function=None)
    o.call("recreated is empty", lambda: client.get_collection("alpha", embedding_function=None).count())
    return o


@scenario
def collection_names(client: Any) -> Obs:
    o = Obs()
    for name in [
        "abc", "a-b_c.d", "ABC123", "x" * 512,  # valid
        "ab", "", "a b", "-abc", "abc-", "_abc", "abc_", ".abc", "abc.",
        "a..b", "192.168.1.1", "x" * 513, "abc/def", "abc?", "naïve", "A" * 3,
    ]:
        o.call(f"create {name[:20]!r} ({len(name)})", lambda n=name: client.create_collection(n, embedding_function=None).name)
    o.call("get invalid name", client.get_collection, "a b", embedding_function=None)
    o.call("delete invalid name", client.delete_collection, "a b")
    o.call("get_or_create invalid name", client.get_or_create_collection, "ab", embedding_function=None)
    o.call("names are case-sensitive", lambda: client.get_collection("abc", embedding_function=None).name)
    o.call("get 'AAA' (created as 'A' * 3)", lambda: client.get_collection("AAA", embedding_function=None).name)
    o.call("list", lambda: sorted(c.name for c in client.list_collections()))
    return o


@scenario
def collection_metadata(client: Any) -> Obs:
    o = Obs()
    o.call("none", lambda: client.create_collection("m-none", embedding_function=None).metadata)
    o.call("scalars", lambda: client.create_collection("m-scalars", metadata={"s": "x", "i": 3, "f": 0.25, "b": False}, embedding_function=None).metadata)
    o.call("empty dict", lambda: client.create_collection("m-empty", metadata={}, embedding_function=None).metadata)
    o.call("nested dict value", lambda: client.create_collection("m-nested", metadata={"d": {"x": 1}}, embedding_function=None).metadata)
    o.call("list value", lambda: client.create_collection("m-list", metadata={"l": [1, 2]}, embedding_function=None).metadata)
    o.call("none value", lambda: client.create_collection("m-nonevalue", metadata={"k": None}, embedding_function=None).metadata)
    o.call("non-str key", lambda: client.create_collection("m-intkey", metadata={1: "x"}, embedding_function=None).metadata)
    o.call("not a dict", lambda: client.create_collection("m-notdict", metadata=["x"], embedding_function=None).metadata)
    o.call("reread scalars", lambda: client.get_collection("m-scalars", embedding_function=None).metadata)
    o.call("list after", lambda: sorted(c.name for c in client.list_collections()))
    return o


@scenario
def configuration_spaces(client: Any) -> Obs:
    o = Obs()
    q = [[1.0, 0.2, 0.1, 0.0]]
    for space in ["l2", "cosine", "ip"]:
        col = o.call(f"create {space}", items, client, f"space-{space}", configuration={"hnsw": {"space": space}})
        if col is None:
            continue
        o.call(f"{space} configuration hnsw", lambda c=col: {k: c.configuration_json["hnsw"].get(k) for k in ("space", "ef_construction", "ef_search", "max_neighbors")})
        o.call(f"{space} configuration keys", lambda c=col: sorted(c.configuration_json))
        o.call(f"{space} query", col.query, query_embeddings=q, n_results=6)
        o.call(f"{space} reread", lambda s=space: client.get_collection(f"space-{s}", embedding_function=None).configuration_json["hnsw"]["space"])
    for space in ["l2", "cosine", "ip"]:
        col = o.call(f"legacy metadata {space}", items, client, f"meta-{space}", metadata={"hnsw:space": space})
        if col is not None:
            o.call(f"legacy metadata {space} query", col.query, query_embeddings=q, n_results=3, include=["distances"])
    o.call("default space", lambda: items(client, "space-default").configuration_json["hnsw"]["space"])
    o.call("bad space", client.create_collection, "space-bad", configuration={"hnsw": {"space": "manhattan"}}, embedding_function=None)
    o.call("bad legacy space", client.create_collection, "meta-bad", metadata={"hnsw:space": "manhattan"}, embedding_function=None)
    o.call("configured ef_search", lambda: client.create_collection("space-ef", configuration={"hnsw": {"ef_search": 50}}, embedding_function=None).configuration_json["hnsw"]["ef_search"])
    return o


# ---------------------------------------------------------------------------------------------
# add and get


@scenario
def add_and_get(client: Any) -> Obs:
    o = Obs()
    col = items(client)
    o.call("count", col.count)
    o.call("get default", col.get)
    o.call("get keys", lambda: sorted(col.get()))
    o.call("get ids", col.get, ids=["c", "a"])
    o.call("get one id as str", col.get, ids="b")
    o.call("get missing id", col.get, ids=["zz"])
    o.call("get some missing ids", col.get, ids=["a", "zz"])
    o.call("get limit", col.get, limit=2)
    o.call("get offset", col.get, offset=4)
    o.call("get limit offset", col.get, limit=2, offset=1)
    o.call("get offset past end", col.get, offset=10)
    o.call("get limit 0", col.get, limit=0)
    o.call("get ids limit", col.get, ids=["a", "b", "c"], limit=2)
    o.call("get include embeddings", col.get, include=["embeddings"])
    o.call("get include documents", col.get, include=["documents"])
    o.call("get include metadatas", col.get, include=["metadatas"])
    o.call("get include uris", col.get, include=["uris"])
    o.call("get include all", col.get, include=["embeddings", "documents", "metadatas", "uris"])
    o.call("get include empty", col.get, include=[])
    o.call("get include distances", col.get, include=["distances"])
    o.call("get include data without loader", col.get, include=["data"])
    o.call("get include bogus", col.get, include=["bogus"])
    o.call("get include not a list", col.get, include="documents")
    o.call("get embeddings of missing id", col.get, ids=["zz"], include=["embeddings"])
    o.call("get empty ids", col.get, ids=[])
    o.call("get duplicate ids", col.get, ids=["a", "a"])
    o.call("get non-str id", col.get, ids=[1])
    o.call("embeddings type", lambda: type(col.get(include=["embeddings"])["embeddings"]).__name__)
    o.call("embeddings shape", lambda: list(col.get(include=["embeddings"])["embeddings"].shape))
    return o


@scenario
def add_inputs(client: Any) -> Obs:
    o = Obs()
    col = client.create_collection("inputs", embedding_function=None)
    o.call("add single id, flat embedding", col.add, ids="s1", embeddings=[1.0, 2.0, 3.0, 4.0])
    o.call("add numpy 2-d", col.add, ids=["n1", "n2"], embeddings=np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32))
    o.call("add list of numpy", col.add, ids=["n3"], embeddings=[np.array([0.5, 0.5, 0, 0])])
    o.call("add int embeddings", col.add, ids=["i1"], embeddings=[[1, 2, 3, 4]])
    o.call("add float64", col.add, ids=["f64"], embeddings=np.array([[0.1, 0.2, 0.3, 0.4]], dtype=np.float64))
    o.call("add only embeddings", col.add, ids=["e1"], embeddings=[[0, 0, 1, 0]])
    o.call("add None documents entry", col.add, ids=["d1", "d2"], embeddings=[[0, 0, 0, 1], [0, 0, 0, 2]], documents=["doc", None])
    o.call("add None metadata entry", col.add, ids=["m1", "m2"], embeddings=[[1, 1, 0, 0], [1, 1, 1, 0]], metadatas=[{"a": 1}, None])
    o.call("get", col.get, include=["embeddings", "documents", "metadatas", "uris"])
    o.call("count", col.count)
    return o


@scenario
def add_errors(client: Any) -> Obs:
    o = Obs()
    col = items(client)
    e = [[0.1, 0.2, 0.3, 0.4]]
    o.call("duplicate ids in one add", col.add, ids=["x", "x"], embeddings=e * 2)
    o.call("two duplicated ids", col.add, ids=["y", "x", "y", "x"], embeddings=e * 4)
    o.call("many duplicate ids", col.add, ids=[f"d{i:02}" for i in range(12)] * 2, embeddings=e * 24)
    o.call("wrong dimension", col.add, ids=["x"], embeddings=[[1.0, 2.0, 3.0]])
    o.call("mixed dimensions", col.add, ids=["x", "y"], embeddings=[[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]])
    o.call("empty ids", col.add, ids=[], embeddings=[])
    o.call("empty ids with embeddings", col.add, ids=[], embeddings=e)
    o.call("unequal lengths", col.add, ids=["x", "y"], embeddings=e)
    o.call("unequal documents", col.add, ids=["x"], embeddings=e, documents=["a", "b"])
    o.call("unequal metadatas", col.add, ids=["x"], embeddings=e, metadatas=[{"a": 1}, {"a": 2}])
    o.call("no embeddings, no ef", col.add, ids=["x"], documents=["hello"])
    legacy = items(client, "legacy", configuration={"hnsw": {"space": "l2"}})
    o.call("no embeddings, no ef (configured collection)", legacy.add, ids=["x"], documents=["hello"])
    o.call("no embeddings, no ef, metadatas only (configured collection)", legacy.add, ids=["x"], metadatas=[{"a": 1}])
    o.call("nothing but ids", col.add, ids=["x"])
    o.call("non-str id", col.add, ids=[1], embeddings=e)
    o.call("None id", col.add, ids=[None], embeddings=e)
    o.call("empty-string id", col.add, ids=[""], embeddings=e)
    o.call("nested metadata value", col.add, ids=["x"], embeddings=e, metadatas=[{"a": {"b": 1}}])
    o.call("empty metadata", col.add, ids=["x"], embeddings=e, metadatas=[{}])
    o.call("mixed-type list metadata", col.add, ids=["x"], embeddings=e, metadatas=[{"a": [1, "b"]}])
    o.call("empty list metadata", col.add, ids=["x"], embeddings=e, metadatas=[{"a": []}])
    o.call("reserved metadata key", col.add, ids=["x"], embeddings=e, metadatas=[{"chroma:document": "x"}])
    o.call("non-str document", col.add, ids=["x"], embeddings=e, documents=[3])
    o.call("empty embeddings list", col.add, ids=["x"], embeddings=[[]])
    o.call("string embedding", col.add, ids=["x"], embeddings=[["a", "b", "c", "d"]])
    o.call("count after errors", col.count)
    o.call("existing id is ignored", col.add, ids=["a"], embeddings=[[9.0, 9.0, 9.0, 9.0]], documents=["replaced?"], metadatas=[{"color": "black"}])
    o.call("existing id unchanged", col.get, ids=["a"], include=["embeddings", "documents", "metadatas"])
    o.call("existing and new ids", col.add, ids=["a", "g"], embeddings=[[9.0, 9.0, 9.0, 9.0], [0.0, 0.0, 0.0, 9.0]], documents=["x", "new g"])
    o.call("after existing and new", col.get, ids=["a", "g"], include=["documents"])
    o.call("count", col.count)
    return o


# ---------------------------------------------------------------------------------------------
# filters


WHERE_CASES: List[Tuple[str, Any]] = [
    ("implicit eq", {"color": "red"}),
    ("$eq str", {"color": {"$eq": "red"}}),
    ("$eq int", {"n": {"$eq": 2}}),
    ("$eq float", {"score": {"$eq": 2.5}}),
    ("$eq bool", {"ok": True}),
    ("$eq float matches int field?", {"n": {"$eq": 2.0}}),
    ("$eq int matches float field?", {"score": {"$eq": 0}}),
    ("$ne", {"color": {"$ne": "red"}}),
    ("$ne bool", {"ok": {"$ne": True}}),
    ("$gt", {"n": {"$gt": 2}}),
    ("$gte", {"n": {"$gte": 2}}),
    ("$lt", {"score": {"$lt": 2.5}}),
    ("$lte", {"score": {"$lte": 2.5}}),
    ("$gt float vs int field", {"n": {"$gt": 2.5}}),
    ("$in", {"color": {"$in": ["red", "green"]}}),
    ("$in int", {"n": {"$in": [1, 3, 6]}}),
    ("$nin", {"color": {"$nin": ["red", "green"]}}),
    ("$and", {"$and": [{"color": "red"}, {"n": {"$gt": 1}}]}),
    ("$or", {"$or": [{"color": "green"}, {"n": {"$gte": 4}}]}),
    ("nested $and/$or", {"$and": [{"$or": [{"color": "red"}, {"color": "blue"}]}, {"n": {"$lt": 5}}]}),
    ("array $contains str", {"tags": {"$contains": "y"}}),
    ("array $contains int", {"nums": {"$contains": 2}}),
    ("array $contains bool", {"flags": {"$contains": True}}),
    ("array $not_contains", {"tags": {"$not_contains": "y"}}),
    ("missing key", {"nope": "x"}),
    ("missing key $ne", {"nope": {"$ne": "x"}}),
    ("missing key $nin", {"nope": {"$nin": ["x"]}}),
]

WHERE_ERRORS: List[Tuple[str, Any]] = [
    ("unknown operator", {"n": {"$foo": 1}}),
    ("two keys at top level", {"color": "red", "n": 1}),
    ("two operators in one", {"n": {"$gt": 1, "$lt": 5}}),
    ("$and with one clause", {"$and": [{"color": "red"}]}),
    ("$and not a list", {"$and": {"color": "red"}}),
    ("$or empty", {"$or": []}),
    ("$gt on str", {"n": {"$gt": "a"}}),
    ("$in not a list", {"color": {"$in": "red"}}),
    ("$in empty", {"color": {"$in": []}}),
    ("$in mixed types", {"n": {"$in": [1, "a"]}}),
    ("list value", {"color": ["red"]}),
    ("dict value none", {"color": None}),
    ("empty where", {}),
    ("where not a dict", "color"),
    ("int key", {1: "x"}),
]

WHERE_DOCUMENT_CASES: List[Tuple[str, Any]] = [
    ("$contains", {"$contains": "apple"}),
    ("$contains is case-sensitive", {"$contains": "blueberry"}),
    ("$not_contains", {"$not_contains": "apple"}),
    ("$regex", {"$regex": "^b"}),
    ("$regex case-insensitive flag", {"$regex": "(?i)^b"}),
    ("$regex digits", {"$regex": "[0-9]+"}),
    ("$not_regex", {"$not_regex": "a"}),
    ("$and", {"$and": [{"$contains": "apple"}, {"$not_contains": "cream"}]}),
    ("$or", {"$or": [{"$contains": "cherry"}, {"$regex": "split$"}]}),
]

WHERE_DOCUMENT_ERRORS: List[Tuple[str, Any]] = [
    ("unknown operator", {"$foo": "x"}),
    ("two operators", {"$contains": "a", "$not_contains": "b"}),
    ("not a dict", "apple"),
    ("empty", {}),
    ("$contains non-str", {"$contains": 3}),
    ("$contains empty string", {"$contains": ""}),
    ("$and one clause", {"$and": [{"$contains": "a"}]}),
    ("bad regex", {"$regex": "("}),
]


@scenario
def where_filters(client: Any) -> Obs:
    o = Obs()
    col = items(client)
    for label, where in WHERE_CASES:
        o.call(f"get where {label}", lambda w=where: sorted(col.get(where=w)["ids"]))
    o.call("get where + ids", col.get, ids=["a", "b", "c", "d"], where={"color": "red"})
    o.call("get where + limit", col.get, where={"n": {"$gte": 1}}, limit=2, offset=1)
    return o


@scenario
def where_errors(client: Any) -> Obs:
    o = Obs()
    col = items(client)
    for label, where in WHERE_ERRORS:
        o.call(f"get where {label}", col.get, where=where)
    return o


@scenario
def where_document_filters(client: Any) -> Obs:
    o = Obs()
    col = items(client)
    for label, wd in WHERE_DOCUMENT_CASES:
        o.call(f"get where_document {label}", lambda w=wd: sorted(col.get(where_document=w)["ids"]))
    o.call("where + where_document", lambda: sorted(col.get(where={"color": "red"}, where_document={"$contains": "pie"})["ids"]))
    return o


@scenario
def where_document_errors(client: Any) -> Obs:
    o = Obs()
    col = items(client)
    for label, wd in WHERE_DOCUMENT_ERRORS:
        o.call(f"get where_document {label}", col.get, where_document=wd)
    return o


# ---------------------------------------------------------------------------------------------
# query


@scenario
def query(client: Any) -> Obs:
    o = Obs()
    col = items(client)
    q = [1.0, 0.1, 0.0, 0.0]
    o.call("default", col.query, query_embeddings=[q])
    o.call("keys", lambda: sorted(col.query(query_embeddings=[q])))
    o.call("flat single embedding", col.query, query_embeddings=q, n_results=2)
    o.call("numpy 2-d", col.query, query_embeddings=np.array([q, [0, 0, 1, 0]], dtype=np.float32), n_results=2)
    o.call("two queries", col.query, query_embeddings=[q, [0.0, 0.0, 0.0, 1.0]], n_results=3)
    o.call("n_results 1", col.query, query_embeddings=[q], n_results=1)
    o.call("n_results > count", col.query, query_embeddings=[q], n_results=100)
    o.call("include distances only", col.query, query_embeddings=[q], n_results=3, include=["distances"])
    o.call("include embeddings", col.query, query_embeddings=[q], n_results=2, include=["embeddings"])
    o.call("include uris", col.query, query_embeddings=[q], n_results=3, include=["uris"])
    o.call("include all", col.query, query_embeddings=[q], n_results=2, include=["embeddings", "documents", "metadatas", "uris", "distances"])
    o.call("include empty", col.query, query_embeddings=[q], n_results=2, include=[])
    data = o.call("include data without loader", lambda: sorted(col.query(query_embeddings=[q], n_results=2, include=["data"])))
    data = col.query(query_embeddings=[q], n_results=2, include=["data"])
    if data is not None:
        for key in ("included", "uris", "data", "metadatas"):
            o.note(f"include data without loader: {key}", data[key])
    o.call("embeddings type", lambda: [type(e).__name__ for e in col.query(query_embeddings=[q], n_results=2, include=["embeddings"])["embeddings"]])
    o.call("where", col.query, query_embeddings=[q], n_results=3, where={"color": "red"})
    o.call("where no match", col.query, query_embeddings=[q], n_results=3, where={"color": "purple"})
    o.call("where fewer than n", col.query, query_embeddings=[q], n_results=5, where={"n": {"$gte": 3}})
    o.call("where_document", col.query, query_embeddings=[q], n_results=3, where_document={"$contains": "apple"})
    o.call("where + where_document", col.query, query_embeddings=[q], n_results=3, where={"n": {"$gt": 1}}, where_document={"$contains": "apple"})
    o.call("ids", col.query, query_embeddings=[q], n_results=3, ids=["c", "d", "e"])
    o.call("ids single str", col.query, query_embeddings=[q], n_results=3, ids="e")
    return o


@scenario
def query_errors(client: Any) -> Obs:
    o = Obs()
    col = items(client)
    q = [1.0, 0.1, 0.0, 0.0]
    o.call("n_results 0", col.query, query_embeddings=[q], n_results=0)
    o.call("n_results negative", col.query, query_embeddings=[q], n_results=-1)
    o.call("n_results float", col.query, query_embeddings=[q], n_results=2.0)
    o.call("n_results str", col.query, query_embeddings=[q], n_results="2")
    o.call("wrong dimension", col.query, query_embeddings=[[1.0, 2.0]], n_results=1)
    o.call("no query", col.query, n_results=1)
    o.call("texts without ef", col.query, query_texts=["apple"], n_results=1)
    legacy = items(client, "legacy", configuration={"hnsw": {"space": "l2"}})
    o.call("texts without ef (configured collection)", legacy.query, query_texts=["apple"], n_results=1)
    o.call("texts and embeddings", col.query, query_embeddings=[q], query_texts=["apple"], n_results=1)
    o.call("empty query list", col.query, query_embeddings=[], n_results=1)
    o.call("include bogus", col.query, query_embeddings=[q], include=["bogus"])
    o.call("bad where", col.query, query_embeddings=[q], where={"n": {"$foo": 1}})
    o.call("bad where_document", col.query, query_embeddings=[q], where_document={"$foo": "x"})
    o.call("query empty collection", client.create_collection("empty", embedding_function=None).query, query_embeddings=[q], n_results=2)
    return o


# ---------------------------------------------------------------------------------------------
# update, upsert, delete


@scenario
def update(client: Any) -> Obs:
    o = Obs()
    col = items(client)
    inc = ["embeddings", "documents", "metadatas", "uris"]
    o.call("metadata only", col.update, ids=["a"], metadatas=[{"color": "black", "extra": 1}])
    o.call("after metadata only (merged?)", col.get, ids=["a"], include=inc)
    o.call("metadata None value deletes key?", col.update, ids=["a"], metadatas=[{"extra": None}])
    o.call("after None value", col.get, ids=["a"], include=["metadatas"])
    o.call("metadata of record without metadata", col.update, ids=["e"], metadatas=[{"new": True}])
    o.call("after e", col.get, ids=["e"], include=["metadatas"])
    o.call("embedding only", col.update, ids=["b"], embeddings=[[0.0, 0.0, 0.0, 5.0]])
    o.call("after embedding", col.get, ids=["b"], include=inc)
    o.call("query finds new embedding", col.query, query_embeddings=[[0.0, 0.0, 0.0, 5.0]], n_results=1, include=["distances"])
    o.call("document with embedding", col.update, ids=["c"], embeddings=[[0.0, 1.0, 0.1, 0.0]], documents=["cherry pie"])
    o.call("after document", col.get, ids=["c"], include=inc)
    o.call("document without embedding, no ef", col.update, ids=["c"], documents=["cherry jam"])
    legacy = items(client, "legacy", configuration={"hnsw": {"space": "l2"}})
    o.call("document without embedding, no ef (configured collection)", legacy.update, ids=["c"], documents=["cherry jam"])
    o.call("after failed document update", col.get, ids=["c"], include=["documents"])
    o.call("uris", col.update, ids=["d"], uris=["s3://new-d"])
    o.call("after uris", col.get, ids=["d"], include=["uris", "documents"])
    o.call("missing id", col.update, ids=["zz"], metadatas=[{"x": 1}])
    o.call("missing id with embedding", col.update, ids=["zz"], embeddings=[[1.0, 1.0, 1.0, 1.0]])
    o.call("count after missing", col.count)
    o.call("wrong dimension", col.update, ids=["a"], embeddings=[[1.0, 2.0]])
    o.call("duplicate ids", col.update, ids=["a", "a"], metadatas=[{"x": 1}, {"x": 2}])
    o.call("empty ids", col.update, ids=[], metadatas=[])
    o.call("unequal lengths", col.update, ids=["a", "b"], metadatas=[{"x": 1}])
    o.call("nothing to update", col.update, ids=["a"])
    o.call("empty metadata", col.update, ids=["a"], metadatas=[{}])
    o.call("final", col.get, include=inc)
    return o


@scenario
def upsert(client: Any) -> Obs:
    o = Obs()
    col = items(client)
    inc = ["embeddings", "documents", "metadatas", "uris"]
    o.call("new and existing", col.upsert, ids=["a", "g"], embeddings=[[0.0, 0.0, 0.0, 7.0], [7.0, 0.0, 0.0, 0.0]], documents=["apple again", "grape"], metadatas=[{"color": "pink"}, {"color": "violet", "n": 7}])
    o.call("after", col.get, ids=["a", "g"], include=inc)
    o.call("count", col.count)
    o.call("embedding only on existing", col.upsert, ids=["b"], embeddings=[[0.5, 0.5, 0.5, 0.5]])
    o.call("after embedding only", col.get, ids=["b"], include=inc)
    o.call("metadata None entry on existing", col.upsert, ids=["c"], embeddings=[[0.0, 1.0, 0.0, 0.0]], metadatas=[None])
    o.call("after None metadata", col.get, ids=["c"], include=["metadatas", "documents"])
    o.call("no embeddings, no ef", col.upsert, ids=["h"], documents=["honeydew"])
    legacy = items(client, "legacy", configuration={"hnsw": {"space": "l2"}})
    o.call("no embeddings, no ef (configured collection)", legacy.upsert, ids=["h"], documents=["honeydew"])
    o.call("metadata only, no embeddings", col.upsert, ids=["a"], metadatas=[{"only": "meta"}])
    o.call("duplicate ids", col.upsert, ids=["x", "x"], embeddings=[[1.0, 0, 0, 0]] * 2)
    o.call("wrong dimension", col.upsert, ids=["x"], embeddings=[[1.0]])
    o.call("query sees upsert", col.query, query_embeddings=[[7.0, 0.0, 0.0, 0.0]], n_results=2)
    o.call("final", col.get, include=inc)
    return o


@scenario
def delete(client: Any) -> Obs:
    o = Obs()
    col = items(client)
    o.call("by ids", col.delete, ids=["a"])
    o.call("after ids", lambda: col.get()["ids"])
    o.call("missing id", col.delete, ids=["zz"])
    o.call("one id as str", col.delete, ids="b")
    o.call("by where", col.delete, where={"color": "red"})
    o.call("after where", lambda: col.get()["ids"])
    o.call("by where_document", col.delete, where_document={"$contains": "muffin"})
    o.call("after where_document", lambda: col.get()["ids"])
    o.call("count", col.count)
    col2 = items(client, "items2")
    o.call("limit with where", col2.delete, where={"n": {"$gte": 1}}, limit=2)
    o.call("count after limit", col2.count)
    o.call("limit without where", col2.delete, ids=["f"], limit=1)
    o.call("limit negative", col2.delete, where={"n": {"$gte": 1}}, limit=-1)
    o.call("limit 0", col2.delete, where={"n": {"$gte": 1}}, limit=0)
    o.call("count after limit 0", col2.count)
    o.call("nothing", col2.delete)
    o.call("empty ids", col2.delete, ids=[])
    o.call("bad where", col2.delete, where={"n": {"$foo": 1}})
    o.call("ids and where", col2.delete, ids=["e", "f"], where={"color": "blue"})
    o.call("after ids and where", lambda: col2.get()["ids"])
    o.call("re-add deleted", col.add, ids=["a"], embeddings=[[1.0, 0.0, 0.0, 0.0]], documents=["back"])
    o.call("after re-add", col.get, ids=["a"], include=["documents", "metadatas"])
    return o


@scenario
def count_and_peek(client: Any) -> Obs:
    o = Obs()
    col = client.create_collection("peeks", embedding_function=None)
    o.call("count empty", col.count)
    o.call("peek empty", col.peek)
    o.call("get empty with embeddings", col.get, include=["embeddings"])
    col = items(client)
    o.call("count", col.count)
    o.call("peek", col.peek)
    o.call("peek 2", col.peek, limit=2)
    o.call("peek keys", lambda: sorted(col.peek()))
    return o


@scenario
def modify(client: Any) -> Obs:
    o = Obs()
    col = items(client, metadata={"v": 1, "keep": "yes"})
    client.create_collection("taken", embedding_function=None)
    o.call("metadata", col.modify, metadata={"v": 2})
    o.call("metadata after (replaced or merged?)", lambda: col.metadata)
    o.call("metadata reread", lambda: client.get_collection("items", embedding_function=None).metadata)
    o.call("name", col.modify, name="renamed")
    o.call("name after", lambda: col.name)
    o.call("get new name", lambda: client.get_collection("renamed", embedding_function=None).count())
    o.call("get old name", client.get_collection, "items", embedding_function=None)
    o.call("rename to taken", col.modify, name="taken")
    o.call("rename invalid", col.modify, name="a b")
    o.call("rename to same", col.modify, name="renamed")
    o.call("both", col.modify, name="both-changed", metadata={"v": 3})
    o.call("both after", lambda: (col.name, col.metadata))
    o.call("change space", col.modify, metadata={"hnsw:space": "cosine"})
    o.call("empty metadata", col.modify, metadata={})
    o.call("nested metadata", col.modify, metadata={"d": {"x": 1}})
    o.call("list", lambda: sorted(c.name for c in client.list_collections()))
    o.call("records survive", col.get, include=["documents"])
    return o


def _loader(uris: List[Any]) -> List[Any]:
    return [None if u is None else f"loaded {u}" for u in uris]


@scenario
def data_loader(client: Any) -> Obs:
    o = Obs()
    items(client)
    col = client.get_collection("items", embedding_function=None, data_loader=_loader)
    q = [[1.0, 0.0, 0.0, 0.0]]
    for label, call in [
        ("get include data", lambda: col.get(ids=["a", "b"], include=["data"])),
        ("get include data, uris", lambda: col.get(ids=["a", "b"], include=["data", "uris"])),
        ("query include data", lambda: col.query(query_embeddings=q, n_results=2, include=["data"])),
        ("query include data, distances", lambda: col.query(query_embeddings=q, n_results=2, include=["data", "distances"])),
    ]:
        result = o.call(label, lambda c=call: {k: v for k, v in c().items() if k != "metadatas"})
        o.call(f"{label}: metadatas returned", lambda c=call: c()["metadatas"] is not None)
    include = ["data"]
    col.get(ids=["a"], include=include)
    o.note("get appends 'uris' to the caller's include list", include)
    return o


# ---------------------------------------------------------------------------------------------
# differences to decide on (DECIDE: expected to fail against ochre)


@scenario
def ef_none_without_configuration(client: Any) -> Obs:
    o = Obs()
    ef = lambda c: c.configuration_json.get("embedding_function")  # noqa: E731
    o.call("ef None, no configuration", lambda: ef(client.create_collection("plain", embedding_function=None)))
    o.call("ef None, no configuration, reread", lambda: ef(client.get_collection("plain", embedding_function=None)))
    o.call("ef None, hnsw configuration", lambda: ef(client.create_collection("configured", configuration={"hnsw": {"space": "ip"}}, embedding_function=None)))
    o.call("ef None, metadata only", lambda: ef(client.create_collection("legacy-meta", metadata={"hnsw:space": "ip"}, embedding_function=None)))
    o.call("ef None, get_or_create", lambda: ef(client.get_or_create_collection("goc", embedding_function=None)))
    return o


@scenario
def negative_paging(client: Any) -> Obs:
    o = Obs()
    col = items(client)
    o.call("get negative limit", col.get, limit=-1)
    o.call("get negative offset", col.get, offset=-1)
    o.call("peek negative", col.peek, limit=-1)
    o.call("list_collections negative offset", client.list_collections, offset=-1)
    o.call("list_collections negative limit", client.list_collections, limit=-1)
    return o


@scenario
def add_none_metadata_value(client: Any) -> Obs:
    o = Obs()
    col = items(client)
    o.call("add", col.add, ids=["m3"], embeddings=[[1, 1, 1, 1]], metadatas=[{"a": None, "b": 2}])
    o.call("upsert new", col.upsert, ids=["m4"], embeddings=[[1, 1, 1, 1]], metadatas=[{"a": None, "b": 2}])
    o.call("upsert existing", col.upsert, ids=["a"], embeddings=[[1, 0, 0, 0]], metadatas=[{"color": None}])
    o.call("get", col.get, ids=["m3", "m4", "a"], include=["metadatas"])
    return o


@scenario
def query_missing_id_class(client: Any) -> Obs:
    o = Obs()
    col = items(client)
    o.call("ids missing", col.query, query_embeddings=[[1.0, 0.0, 0.0, 0.0]], n_results=3, ids=["zz"])
    o.call("ids partly missing", col.query, query_embeddings=[[1.0, 0.0, 0.0, 0.0]], n_results=3, ids=["a", "zz"])
    return o


# ---------------------------------------------------------------------------------------------
# the harness


def _compare(name: str, chroma: List[Tuple[str, Any]], other: List[Tuple[str, Any]]) -> List[str]:
    problems = []
    if [label for label, _ in chroma] != [label for label, _ in other]:
        problems.append(f"labels differ: {[l for l, _ in chroma]} vs {[l for l, _ in other]}")
    for (label, a), (_, b) in zip(chroma, other):
        quirk = CHROMADB_QUIRKS.get((name, label))
        if quirk is not None:
            if quirk[0] is not None and a != quirk[0]:
                problems.append(f"{label}: chromadb's recorded quirk changed: now {a!r}")
            if quirk[1] is not None and AGAINST != "chromadb" and b != quirk[1]:
                problems.append(f"{label}: {AGAINST}'s pinned answer to a chromadb quirk changed: now {b!r}")
            continue
        accepted = MESSAGE_DIFFERENCES.get((name, label))
        if (
            accepted is not None
            and a != b
            and isinstance(a, tuple) and isinstance(b, tuple)
            and a[:2] == b[:2] and a[0] == "error"
        ):
            if (a[2], b[2]) != accepted:
                problems.append(f"{label}: accepted message difference changed: chromadb {a[2]!r}, other {b[2]!r}")
            continue
        if a != b:
            problems.append(f"{label}:\n    chromadb: {a!r}\n    {AGAINST}: {b!r}")
    return problems


def _run(module: Any, fn: Callable[[Any], Obs], path: str) -> Obs:
    client = module.PersistentClient(path=path)
    try:
        return fn(client)
    finally:
        client.clear_system_cache()


@pytest.fixture(scope="module")
def other() -> Any:
    return _other_module()


def _params() -> List[Any]:
    out = []
    for name in SCENARIOS:
        marks = []
        if name in DECIDE and AGAINST != "chromadb":
            marks.append(pytest.mark.xfail(strict=True, reason=DECIDE[name]))
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.mark.parametrize("name", _params())
def test_scenario(name: str, other: Any, tmp_path: Any) -> None:
    fn = SCENARIOS[name]
    chroma = _run(chromadb, fn, str(tmp_path / "chromadb"))
    mine = _run(other, fn, str(tmp_path / "other"))
    problems = _compare(name, chroma, mine)
    assert not problems, f"{len(problems)} difference(s) in {name}:\n" + "\n".join(problems)


def _persistence(module: Any, path: str, keep_old_client: bool) -> Obs:
    o = Obs()
    client = module.PersistentClient(path=path)
    col = items(client, metadata={"m": 1})
    col.delete(ids=["f"])
    client.clear_system_cache()
    if not keep_old_client:
        del client, col
        gc.collect()
    box: Dict[str, Any] = {}
    o.call("reopen", lambda: box.setdefault("client", module.PersistentClient(path=path)) and "opened")
    o.call("collection", lambda: box.setdefault("col", box["client"].get_collection("items", embedding_function=None)))
    o.call("records", lambda: box["col"].get(include=["embeddings", "documents", "metadatas", "uris"]))
    o.call("query", lambda: box["col"].query(query_embeddings=[[1.0, 0.0, 0.0, 0.0]], n_results=2))
    if keep_old_client:
        o.call("old collection still answers", col.count)
    module.PersistentClient(path=path + "-other").clear_system_cache()
    return o


def test_persistence_across_clients(other: Any, tmp_path: Any) -> None:
    """Data written by one client is read back by a client made after the cache is cleared and
    the first client is gone."""
    problems = _compare("persistence", _persistence(chromadb, str(tmp_path / "c"), False), _persistence(other, str(tmp_path / "o"), False))
    assert not problems, "\n".join(problems)


def test_reopen_while_an_old_client_is_alive(other: Any, tmp_path: Any) -> None:
    """chromadb: after clear_system_cache a new client on the same path works even though an
    older client (and its collection) are still referenced, and the old one keeps working."""
    problems = _compare("reopen", _persistence(chromadb, str(tmp_path / "c"), True), _persistence(other, str(tmp_path / "o"), True))
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# the module's surface


def test_error_classes_have_chromadb_names(other: Any) -> None:
    import chromadb.errors as chroma_errors

    expected = {
        n: c for n, c in vars(chroma_errors).items()
        if inspect.isclass(c) and issubclass(c, Exception) and c.__module__ == chroma_errors.__name__
    }
    assert {"NotFoundError", "InvalidArgumentError", "DuplicateIDError", "UniqueConstraintError",
            "IDAlreadyExistsError", "InvalidDimensionException", "InternalError", "ChromaError"} <= set(expected)
    theirs = other.errors
    missing = sorted(n for n in expected if not hasattr(theirs, n))
    assert not missing, f"missing in {theirs.__name__}: {missing}"
    for n, c in expected.items():
        mine = getattr(theirs, n)
        assert issubclass(mine, theirs.ChromaError), n
        if n != "ChromaError":  # chromadb's is abstract (returns None); Ochre's says "ChromaError"
            assert mine.name() == c.name(), n
        if n != "ChromaError":
            assert mine().code() == c().code(), n


def test_result_key_sets(other: Any, tmp_path: Any) -> None:
    keys = {}
    for label, module in (("chromadb", chromadb), (AGAINST, other)):
        col = items(module.PersistentClient(path=str(tmp_path / f"side{len(keys)}")))
        keys[label] = (
            set(col.get()),
            set(col.query(query_embeddings=[[1.0, 0.0, 0.0, 0.0]], n_results=1)),
            set(col.peek()),
        )
    get_keys = {"ids", "embeddings", "documents", "uris", "data", "metadatas", "included"}
    assert keys["chromadb"] == (get_keys, get_keys | {"distances"}, get_keys)
    assert keys[AGAINST] == keys["chromadb"]


# ---------------------------------------------------------------------------------------------
# the default embedding function (ochre only: chromadb's downloads its model)


@needs_model
def test_default_embedding_function(other: Any, tmp_path: Any, monkeypatch: Any) -> None:
    if AGAINST == "chromadb":
        pytest.skip("chromadb's default embedding function downloads its model")
    monkeypatch.setenv("OCHRE_MODEL_DIR", os.environ["OCHRE_TEST_MODEL_DIR"])
    client = other.PersistentClient(path=str(tmp_path / "ef"))
    col = client.create_collection("docs")
    assert col.configuration_json["embedding_function"]["name"] == "default"
    docs = [
        "The cat sat on the mat.",
        "Stock markets fell sharply today.",
        "A recipe for tomato soup.",
    ]
    col.add(ids=["cat", "stocks", "soup"], documents=docs, metadatas=[{"k": 1}, {"k": 2}, {"k": 3}])
    got = col.get(ids=["cat"], include=["embeddings", "documents"])
    assert got["embeddings"].shape == (1, 384)
    assert abs(float(np.linalg.norm(got["embeddings"][0])) - 1.0) < 1e-4
    assert got["documents"] == ["The cat sat on the mat."]
    r = col.query(query_texts=["kitten on a rug"], n_results=3)
    assert r["ids"][0][0] == "cat"
    assert r["distances"][0] == sorted(r["distances"][0])
    r = col.query(query_texts=["soup cooking", "shares dropped on Wall Street"], n_results=1)
    assert r["ids"] == [["soup"], ["stocks"]]
    r = col.query(query_texts="kitten", n_results=1, where={"k": {"$gt": 1}})
    assert r["ids"][0][0] in ("stocks", "soup")
    col.update(ids=["soup"], documents=["A kitten naps in the sun."])
    assert col.query(query_texts=["cat sleeping"], n_results=1, where={"k": 3})["ids"] == [["soup"]]
    col.upsert(ids=["new"], documents=["Bond yields rose on inflation fears."])
    assert col.query(query_texts=["interest rates and bonds"], n_results=1)["ids"] == [["new"]]
    again = client.get_collection("docs")
    assert again.query(query_texts=["tomato"], n_results=1)["ids"][0][0] in ("soup", "cat", "stocks", "new")
    assert again.count() == 4
