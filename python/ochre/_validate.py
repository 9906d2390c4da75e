"""Client-side normalisation and validation, with chromadb 1.5.9's rules and messages.

chromadb checks a request's shape in Python before it reaches its engine (raising `ValueError`,
`TypeError` or `DuplicateIDError`), and names the operation at the end of the message
("... in add."). Ochre does the same here, so code that catches those errors keeps working; what
only the engine can judge (dimensions, filters' grammar, names, existing ids) is the engine's, with
the messages `ochre run` gives over HTTP.
"""
import functools
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, TypeVar

import numpy as np

from . import errors

T = TypeVar("T")

INCLUDE_ITEMS = ("documents", "embeddings", "metadatas", "distances", "uris", "data")
_EMBEDDING_DTYPES = (np.float16, np.float32, np.float64, np.int32, np.int64)


def in_operation(name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Appends " in <name>." to the message of any error the wrapped validation raises."""

    def wrap(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> T:
            try:
                return func(*args, **kwargs)
            except Exception as e:
                if e.args:
                    e.args = (f"{e.args[0]} in {name}.",) + e.args[1:]
                raise

        return run

    return wrap


def one_or_many(value: Any) -> Optional[List[Any]]:
    if value is None:
        return None
    if isinstance(value, list):
        return value
    return [value]


def embeddings(target: Any) -> Optional[List[np.ndarray]]:
    """A single vector, a list of vectors, a 2-d array or a list of arrays, as a list of arrays."""
    if target is None:
        return None
    if len(target) == 0:
        raise ValueError(f"Expected Embeddings to be non-empty list or numpy array, got {target}")
    if isinstance(target, np.ndarray):
        if target.ndim == 1:
            return [target]
        if target.ndim == 2:
            return list(target)
    elif isinstance(target, list):
        first = target[0]
        if isinstance(first, (int, float)) and not isinstance(first, bool):
            return [np.array(target, dtype=np.float32)]
        if isinstance(first, np.ndarray):
            return target
        if isinstance(first, list) and first and isinstance(first[0], (int, float)) and not isinstance(
            first[0], bool
        ):
            return [np.array(row, dtype=np.float32) for row in target]
    raise ValueError(
        "Expected embeddings to be a list of floats or ints, a list of lists, a numpy array, or a "
        f"list of numpy arrays, got {target}"
    )


def record_set(
    ids: Any = None,
    embeddings_: Any = None,
    metadatas: Any = None,
    documents: Any = None,
    images: Any = None,
    uris: Any = None,
    with_ids: bool = True,
) -> Dict[str, Any]:
    # chromadb's field order (its messages list the fields in it).
    records: Dict[str, Any] = {}
    if with_ids:
        records["ids"] = one_or_many(ids)
        records["metadatas"] = one_or_many(metadatas)
    records["embeddings"] = embeddings(embeddings_)
    records["documents"] = one_or_many(documents)
    records["images"] = one_or_many(images)
    records["uris"] = one_or_many(uris)
    return records


def lengths_agree(records: Dict[str, Any]) -> None:
    lengths = [len(v) for v in records.values() if v is not None]
    if not lengths:
        raise ValueError(f"At least one of one of {', '.join(records.keys())} must be provided")
    empty = [k for k, v in records.items() if v is not None and len(v) == 0]
    if empty:
        raise ValueError(f"Non-empty lists are required for {empty}")
    if len(set(lengths)) > 1:
        shown = ", ".join(f"{k}: {len(v)}" for k, v in records.items() if v is not None)
        raise ValueError(f"Unequal lengths for fields: {shown}")


def check_ids(ids: Any) -> List[str]:
    if not isinstance(ids, list):
        raise ValueError(f"Expected IDs to be a list, got {type(ids).__name__} as IDs")
    if len(ids) == 0:
        raise ValueError(f"Expected IDs to be a non-empty list, got {len(ids)} IDs")
    seen: Set[str] = set()
    duplicates: List[str] = []
    for id_ in ids:
        if not isinstance(id_, str):
            raise ValueError(f"Expected ID to be a str, got {id_}")
        if id_ in seen:
            if id_ not in duplicates:
                duplicates.append(id_)
        else:
            seen.add(id_)
    if duplicates:
        if len(duplicates) < 10:
            text = f"Expected IDs to be unique, found duplicates of: {', '.join(duplicates)}"
        else:
            shown = duplicates[:11]
            text = (
                f"Expected IDs to be unique, found {len(duplicates)} duplicated IDs: "
                f"{', '.join(shown[:5])}, ..., {', '.join(shown[-5:])}"
            )
        raise errors.DuplicateIDError(text)
    return ids


def _check_list_value(key: str, value: list) -> None:
    if len(value) == 0:
        raise ValueError(f"Expected metadata list value for key '{key}' to be non-empty")
    first = bool if isinstance(value[0], bool) else type(value[0])
    for item in value:
        kind = bool if isinstance(item, bool) else type(item)
        if kind is not first or kind not in (str, int, float, bool):
            raise ValueError(
                f"Expected metadata list value for key '{key}' to contain only str, int, float, "
                f"or bool and all elements must be the same type, got {value}"
            )


def _is_sparse(value: Any) -> bool:
    return (isinstance(value, dict) and value.get("#type") == "sparse_vector") or (
        hasattr(value, "indices") and hasattr(value, "values") and hasattr(value, "to_dict")
    )


def check_metadata(metadata: Any, update: bool = False) -> Any:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        shown = type(metadata) if update else f"{type(metadata).__name__} as metadata"
        raise ValueError(f"Expected metadata to be a dict or None, got {shown}")
    if len(metadata) == 0:
        shown = metadata if update else f"{len(metadata)} metadata attributes"
        raise ValueError(f"Expected metadata to be a non-empty dict, got {shown}")
    for key, value in metadata.items():
        if key == "chroma:document" and not update:
            raise ValueError("Expected metadata to not contain the reserved key chroma:document")
        if not isinstance(key, str):
            if update:
                raise ValueError(f"Expected metadata key to be a str, got {key}")
            raise TypeError(
                f"Expected metadata key to be a str, got {key} which is a {type(key).__name__}"
            )
        if _is_sparse(value):
            continue
        if isinstance(value, list):
            _check_list_value(key, value)
        elif not isinstance(value, (str, int, float, bool, type(None))):
            suffix = "" if update else f" which is a {type(value).__name__}"
            raise ValueError(
                "Expected metadata value to be a str, int, float, bool, SparseVector, list, or "
                f"None, got {value}{suffix}"
            )
    return metadata


def check_embeddings(vectors: List[np.ndarray]) -> None:
    if not all(isinstance(e, np.ndarray) for e in vectors):
        kinds = sorted({type(e).__name__ for e in vectors})
        raise ValueError(
            f"Expected each embedding in the embeddings to be a numpy array, got {kinds}"
        )
    for i, e in enumerate(vectors):
        if e.ndim == 0:
            raise ValueError(f"Expected a 1-dimensional array, got a 0-dimensional array {e}")
        if e.ndim > 1:
            raise TypeError(
                "argument 'embeddings': only 0-dimensional arrays can be converted to Python scalars"
            )
        if e.size == 0:
            raise ValueError(
                "Expected each embedding in the embeddings to be a 1-dimensional numpy array "
                "with at least 1 int/float value. Got a 1-dimensional numpy array with no values "
                f"at pos {i}"
            )
        if e.dtype not in _EMBEDDING_DTYPES:
            raise ValueError(
                "Expected each value in the embedding to be a int or float, got an embedding "
                f"with {e.dtype} - {e}"
            )


def check_documents(documents: Any, nullable: bool) -> None:
    if not isinstance(documents, list):
        raise ValueError(f"Expected documents to be a list, got {type(documents).__name__}")
    for d in documents:
        if d is None and nullable:
            continue
        if not isinstance(d, str):
            raise ValueError(f"Expected document to be a str, got {d}")


def check_base(records: Dict[str, Any]) -> None:
    lengths_agree(records)
    if records["embeddings"] is not None:
        check_embeddings(records["embeddings"])
    if records["documents"] is not None:
        check_documents(records["documents"], nullable=records["embeddings"] is not None)
    if records.get("images") is not None:
        for image in records["images"]:
            if not (isinstance(image, np.ndarray) and image.ndim >= 2):
                raise ValueError(f"Expected image to be a numpy array, got {image}")


def check_insert(records: Dict[str, Any]) -> None:
    check_base(records)
    check_ids(records["ids"])
    if records["metadatas"] is not None:
        for m in records["metadatas"]:
            check_metadata(m)


def check_embeddable(records: Dict[str, Any], fields: Sequence[str] = ("documents", "images", "uris")) -> str:
    """The one field to embed (chromadb: exactly one of them must be given)."""
    if records["embeddings"] is not None:
        raise ValueError("Attempting to embed a record that already has embeddings.")
    given = [f for f in fields if records.get(f) is not None]
    if len(given) != 1:
        raise ValueError(f"Exactly one of {', '.join(fields)} must be provided")
    return given[0]


def check_include(include: Any, disallowed: Sequence[str] = ()) -> List[str]:
    if not isinstance(include, list):
        raise ValueError(f"Expected include to be a list, got {include}")
    for item in include:
        if not isinstance(item, str):
            raise ValueError(f"Expected include item to be a str, got {item}")
        if item not in INCLUDE_ITEMS:
            raise ValueError(
                f"Expected include item to be one of {', '.join(INCLUDE_ITEMS)}, got {item}"
            )
        if item in disallowed:
            raise ValueError(f"Include item cannot be one of {', '.join(disallowed)}, got {item}")
    return list(include)


def check_n_results(n_results: Any) -> int:
    if not isinstance(n_results, int):
        raise ValueError(f"Expected requested number of results to be a int, got {n_results}")
    if n_results <= 0:
        raise TypeError(f"Number of requested results {n_results}, cannot be negative, or zero.")
    return n_results


_COMPARISONS = ("$gt", "$gte", "$lt", "$lte")
_WHERE_OPERATORS = ("$gt", "$gte", "$lt", "$lte", "$ne", "$eq", "$in", "$nin", "$contains", "$not_contains")
_DOCUMENT_OPERATORS = ("$contains", "$not_contains", "$regex", "$not_regex", "$and", "$or")


def _check_operator(key: str, operator: str, operand: Any) -> None:
    if operator in _COMPARISONS and not isinstance(operand, (int, float)):
        raise ValueError(
            f"Expected operand value to be an int or a float for operator {operator}, got {operand}"
        )
    if operator in ("$in", "$nin") and not isinstance(operand, list):
        raise ValueError(
            f"Expected operand value to be an list for operator {operator}, got {operand}"
        )
    if operator in ("$contains", "$not_contains"):
        if key == "#document" and not isinstance(operand, str):
            raise ValueError(
                f"Expected operand value to be a str for operator {operator} on #document, got {operand}"
            )
        if not isinstance(operand, (str, int, float, bool)):
            raise ValueError(
                f"Expected operand value to be a str, int, float, or bool for operator {operator}, "
                f"got {operand}"
            )
    if operator not in _WHERE_OPERATORS:
        raise ValueError(
            "Expected where operator to be one of $gt, $gte, $lt, $lte, $ne, $eq, $in, $nin, "
            f"$contains, $not_contains, got {operator}"
        )
    if not isinstance(operand, (str, int, float, bool, list)):
        raise ValueError(
            "Expected where operand value to be a str, int, float, bool, or list of those type, "
            f"got {operand}"
        )
    if isinstance(operand, list) and (
        not operand or not all(isinstance(x, type(operand[0])) for x in operand)
    ):
        raise ValueError(
            "Expected where operand value to be a non-empty list, and all values to be of the same "
            f"type got {operand}"
        )


def check_where(where: Any) -> None:
    """chromadb's shape rules for `where` (the engine checks the rest, as a server does)."""
    if not isinstance(where, dict):
        raise ValueError(f"Expected where to be a dict, got {where}")
    if len(where) != 1:
        raise ValueError(f"Expected where to have exactly one operator, got {where}")
    ((key, value),) = where.items()
    if not isinstance(key, str):
        raise ValueError(f"Expected where key to be a str, got {key}")
    if key in ("$contains", "$not_contains"):
        raise ValueError(
            "Expected where key to be a metadata field name or a logical operator ($and, $or), "
            f"got {key}"
        )
    logical = key in ("$and", "$or")
    if not logical and key not in ("$in", "$nin") and not isinstance(value, (str, int, float, dict)):
        raise ValueError(
            f"Expected where value to be a str, int, float, or operator expression, got {value}"
        )
    if logical:
        if not isinstance(value, list):
            raise ValueError(
                f"Expected where value for $and or $or to be a list of where expressions, got {value}"
            )
        if len(value) <= 1:
            raise ValueError(
                "Expected where value for $and or $or to be a list with at least two where "
                f"expressions, got {value}"
            )
        for clause in value:
            check_where(clause)
    if isinstance(value, dict):
        if len(value) != 1:
            raise ValueError(
                f"Expected operator expression to have exactly one operator, got {value}"
            )
        ((operator, operand),) = value.items()
        _check_operator(key, operator, operand)


def check_where_document(where_document: Any) -> None:
    """chromadb's shape rules for `where_document`."""
    if not isinstance(where_document, dict):
        raise ValueError(f"Expected where document to be a dictionary, got {where_document}")
    if len(where_document) != 1:
        raise ValueError(
            f"Expected where document to have exactly one operator, got {where_document}"
        )
    ((operator, operand),) = where_document.items()
    if operator not in _DOCUMENT_OPERATORS:
        raise ValueError(
            "Expected where document operator to be one of $contains, $not_contains, $regex, "
            f"$not_regex, $and, $or, got {operator}"
        )
    if operator in ("$and", "$or"):
        if not isinstance(operand, list):
            raise ValueError(
                "Expected document value for $and or $or to be a list of where document "
                f"expressions, got {operand}"
            )
        if len(operand) <= 1:
            raise ValueError(
                "Expected document value for $and or $or to be a list with at least two where "
                f"document expressions, got {operand}"
            )
        for clause in operand:
            check_where_document(clause)
    elif not isinstance(operand, str):
        raise ValueError(
            f"Expected where document operand value for operator {operator} to be a str, got {operand}"
        )
    elif not operand:
        raise ValueError(
            f"Expected where document operand value for operator {operator} to be a non-empty str"
        )


def check_filters(where: Any, where_document: Any) -> None:
    if where is not None:
        check_where(where)
    if where_document is not None:
        check_where_document(where_document)


def check_collection_metadata(metadata: Any) -> None:
    """The types chromadb's engine binding accepts for a collection's metadata (it raises
    `TypeError` for others before anything is written)."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise TypeError(
            f"argument 'metadata': '{type(metadata).__name__}' object cannot be converted to 'PyDict'"
        )
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(
                f"argument 'metadata': '{type(key).__name__}' object cannot be converted to 'PyString'"
            )
        if value is None or isinstance(value, dict):
            raise TypeError("argument 'metadata': Cannot convert Python object to MetadataValue")


def check_paging(limit: Any, offset: Any) -> None:
    """chromadb's binding converts limit and offset to unsigned integers."""
    for value in (limit, offset):
        if isinstance(value, int) and value < 0:
            raise OverflowError("out of range integral type conversion attempted")


def check_add_metadata_values(metadatas: Any) -> None:
    """An add cannot delete keys: chromadb's binding refuses a None value."""
    for m in metadatas or ():
        if isinstance(m, dict) and any(value is None for value in m.values()):
            raise TypeError("argument 'metadatas': Cannot convert Python object to MetadataValue")
