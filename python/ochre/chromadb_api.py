"""chromadb's own client objects on Ochre's engine, in this process (a chromadb plug-in).

For code that must hold chromadb's classes (``chromadb.api.models.Collection.Collection``,
chromadb's result types and exceptions) rather than Ochre's look-alikes::

    from ochre.chromadb_api import PersistentClient   # chromadb's Client class, Ochre beneath
    client = PersistentClient("./data")

or, with chromadb's settings (this module must have been imported first: it registers the
implementation's name with chromadb, whose system cache accepts only names it knows)::

    import chromadb, ochre.chromadb_api
    from chromadb.config import Settings

    client = chromadb.Client(Settings(
        chroma_api_impl="ochre.chromadb_api.OchreAPI",
        is_persistent=True,
        persist_directory="./data",
    ))

Every call goes through chromadb 1.5.x's HTTP client code (``chromadb.api.fastapi.FastAPI``),
but the requests never leave the process: they are answered by the same open database
``ochre.PersistentClient`` uses (``is_persistent=False``: the in-memory one). So behaviour is
that of ``ochre run`` behind ``chromadb.HttpClient``, with no server, socket or port. Needs
chromadb 1.5.x installed (it is not a dependency of ``ochre``).
"""
import os
from typing import Any, Optional

import httpx

try:
    import chromadb
    from chromadb.api.client import Client as _ChromaClient
    from chromadb.api.fastapi import FastAPI
    from chromadb.api.shared_system_client import SharedSystemClient
    from chromadb.config import DEFAULT_DATABASE, DEFAULT_TENANT, Settings, System
    from chromadb.telemetry.opentelemetry import OpenTelemetryClient
    from chromadb.telemetry.product import ProductTelemetryClient
except ImportError as e:  # pragma: no cover - exercised only without chromadb
    raise ImportError(
        "ochre.chromadb_api plugs Ochre into chromadb, which is not installed: "
        "pip install 'chromadb>=1.5,<1.6'"
    ) from e

from .api import _engine

if not chromadb.__version__.startswith("1.5."):  # pragma: no cover
    raise ImportError(
        f"ochre.chromadb_api is made for chromadb 1.5.x; this is chromadb {chromadb.__version__}"
    )

# Requests name this host; nothing resolves it, nothing is sent.
_BASE = "http://ochre.in-process"


class _EngineTransport(httpx.BaseTransport):
    """httpx requests answered by an open Ochre database, in this process."""

    def __init__(self, path: Optional[str]) -> None:
        self._engine = _engine(path)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        target = url.raw_path.decode("ascii")
        body = request.read()
        status, payload = self._engine.request(request.method, target, body or None)
        return httpx.Response(
            status,
            headers={"content-type": "application/json"},
            content=bytes(payload),
            request=request,
        )

    def close(self) -> None:
        # The database stays open for the other clients of its path (closed at exit, or once
        # none holds it after `clear_system_cache`).
        self._engine = None  # type: ignore[assignment]


class OchreAPI(FastAPI):
    """chromadb's ``ServerAPI`` served by Ochre in process: chromadb's HTTP client with a
    transport that hands each request to the engine instead of a socket. Select it with
    ``Settings(chroma_api_impl="ochre.chromadb_api.OchreAPI", ...)``; ``is_persistent`` and
    ``persist_directory`` choose the database, as for chromadb's own local client."""

    def __init__(self, system: System) -> None:
        # FastAPI's constructor insists on a server host and port; this one needs neither, so
        # it sets up what FastAPI's methods use itself.
        super(FastAPI, self).__init__(system)
        settings = system.settings
        self._opentelemetry_client = self.require(OpenTelemetryClient)
        self._product_telemetry_client = self.require(ProductTelemetryClient)
        self._settings = settings
        path = str(settings.persist_directory) if settings.is_persistent else None
        self._api_url = _BASE + "/api/v2"
        self._session = httpx.Client(transport=_EngineTransport(path), timeout=None)
        self._header = dict(settings.chroma_server_headers or {})
        self._header["Content-Type"] = "application/json"
        self._header["User-Agent"] = f"Chroma Python Client v{chromadb.__version__} (Ochre in process)"
        self._session.headers.update(self._header)

    def __repr__(self) -> str:
        return f"OchreAPI({self._settings.persist_directory if self._settings.is_persistent else 'in memory'!r})"


IMPL = "ochre.chromadb_api.OchreAPI"


def _register() -> None:
    """Teaches chromadb's system cache this implementation's name: one system per data
    directory (and one in memory), as for chromadb's own local client. Other names are left to
    chromadb."""
    original = SharedSystemClient._get_identifier_from_settings
    if getattr(original, "_ochre", False):
        return

    def identifier(settings: Settings) -> str:
        if settings.chroma_api_impl != IMPL:
            return original(settings)  # type: ignore[no-any-return]
        if settings.is_persistent:
            return "ochre:" + os.path.realpath(str(settings.persist_directory))
        return "ochre:ephemeral"

    identifier._ochre = True  # type: ignore[attr-defined]
    SharedSystemClient._get_identifier_from_settings = staticmethod(identifier)  # type: ignore[method-assign]


_register()


def _settings(settings: Optional[Settings], **fields: Any) -> Settings:
    s = Settings() if settings is None else settings.copy()
    s.chroma_api_impl = IMPL
    for k, v in fields.items():
        setattr(s, k, v)
    return s


def PersistentClient(
    path: "str | os.PathLike[str]" = "./chroma",
    settings: Optional[Settings] = None,
    tenant: str = DEFAULT_TENANT,
    database: str = DEFAULT_DATABASE,
) -> _ChromaClient:
    """chromadb's ``PersistentClient`` with Ochre beneath: a ``chromadb.api.client.Client`` of the
    data directory ``path``."""
    s = _settings(settings, is_persistent=True, persist_directory=os.fspath(path))
    return _ChromaClient(tenant=tenant, database=database, settings=s)


def EphemeralClient(
    settings: Optional[Settings] = None,
    tenant: str = DEFAULT_TENANT,
    database: str = DEFAULT_DATABASE,
) -> _ChromaClient:
    """chromadb's ``EphemeralClient`` with Ochre beneath (the process's in-memory database)."""
    s = _settings(settings, is_persistent=False)
    return _ChromaClient(tenant=tenant, database=database, settings=s)


__all__ = ["EphemeralClient", "OchreAPI", "PersistentClient"]
