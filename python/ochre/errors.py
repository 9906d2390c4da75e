"""Exception classes with chromadb's names, codes and messages.

`import ochre as chromadb` code catches these where it caught `chromadb.errors.*`. The engine's
errors arrive as Chroma's error names (the ones `ochre run` sends over HTTP) and are raised as the
class of that name (`error_types`); a name Ochre does not know is raised as `ChromaError`.
"""
from typing import Dict, Optional, Type


class ChromaError(Exception):
    """Base of every error the database raises."""

    trace_id: Optional[str] = None

    def code(self) -> int:
        """The HTTP status this error is sent with by a server."""
        return 400

    def message(self) -> str:
        return ", ".join(str(a) for a in self.args)

    @classmethod
    def name(cls) -> str:
        return "ChromaError"


class InvalidDimensionException(ChromaError):
    """An embedding whose dimension is not the collection's."""

    def code(self) -> int:
        return 400

    @classmethod
    def name(cls) -> str:
        return "InvalidDimension"


class IDAlreadyExistsError(ChromaError):
    """The id exists already."""

    def code(self) -> int:
        return 409

    @classmethod
    def name(cls) -> str:
        return "IDAlreadyExists"


class DuplicateIDError(ChromaError):
    """One request names the same id twice."""

    def code(self) -> int:
        return 400

    @classmethod
    def name(cls) -> str:
        return "DuplicateID"


class InvalidArgumentError(ChromaError):
    """A request the database refuses as invalid."""

    def code(self) -> int:
        return 400

    @classmethod
    def name(cls) -> str:
        return "InvalidArgument"


class InvalidUUIDError(ChromaError):
    """A malformed UUID."""

    def code(self) -> int:
        return 400

    @classmethod
    def name(cls) -> str:
        return "InvalidUUID"


class InvalidHTTPVersion(ChromaError):
    """Kept for chromadb's name; never raised in process."""

    def code(self) -> int:
        return 400

    @classmethod
    def name(cls) -> str:
        return "InvalidHTTPVersion"


class AuthorizationError(ChromaError):
    """Not authorised."""

    def code(self) -> int:
        return 401

    @classmethod
    def name(cls) -> str:
        return "AuthorizationError"


class NotFoundError(ChromaError):
    """No such tenant, database, collection or record."""

    def code(self) -> int:
        return 404

    @classmethod
    def name(cls) -> str:
        return "NotFoundError"


class UniqueConstraintError(ChromaError):
    """The name is taken."""

    def code(self) -> int:
        return 409

    @classmethod
    def name(cls) -> str:
        return "UniqueConstraintError"


class BatchSizeExceededError(ChromaError):
    """A batch larger than max_batch_size."""

    def code(self) -> int:
        return 413

    @classmethod
    def name(cls) -> str:
        return "BatchSizeExceededError"


class VersionMismatchError(ChromaError):
    """Kept for chromadb's name; never raised in process."""

    def code(self) -> int:
        return 500

    @classmethod
    def name(cls) -> str:
        return "VersionMismatchError"


class InternalError(ChromaError):
    """The database failed (the message says how)."""

    def code(self) -> int:
        return 500

    @classmethod
    def name(cls) -> str:
        return "InternalError"


class RateLimitError(ChromaError):
    """Too many requests at once."""

    def code(self) -> int:
        return 429

    @classmethod
    def name(cls) -> str:
        return "RateLimitError"


class QuotaError(ChromaError):
    """A quota was exceeded."""

    def code(self) -> int:
        return 400

    @classmethod
    def name(cls) -> str:
        return "QuotaError"


class ChromaAuthError(ChromaError):
    """Authentication failed."""

    def code(self) -> int:
        return 403

    def message(self) -> str:
        return "Forbidden"

    @classmethod
    def name(cls) -> str:
        return "AuthError"


error_types: Dict[str, Type[ChromaError]] = {
    "InvalidDimension": InvalidDimensionException,
    "IDAlreadyExists": IDAlreadyExistsError,
    "DuplicateID": DuplicateIDError,
    "InvalidArgumentError": InvalidArgumentError,
    "InvalidUUID": InvalidUUIDError,
    "InvalidHTTPVersion": InvalidHTTPVersion,
    "AuthorizationError": AuthorizationError,
    "NotFoundError": NotFoundError,
    "UniqueConstraintError": UniqueConstraintError,
    "BatchSizeExceededError": BatchSizeExceededError,
    "VersionMismatchError": VersionMismatchError,
    "InternalError": InternalError,
    "RateLimitError": RateLimitError,
    "QuotaError": QuotaError,
    "AuthError": ChromaAuthError,
    "ChromaError": ChromaError,
}
