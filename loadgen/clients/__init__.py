"""One client module per wire API, each registered under its kind in ``loadgen.registry.CLIENTS``.

``make_client(kind, url, options)`` builds one; a new API is one new module here.

May import: ``record``, ``registry``, ``headers`` and each other; never ``api``, ``runner`` or anything above.
"""

from __future__ import annotations

from loadgen.clients.base import Client, ClientOptions, RequestSpec
from loadgen.registry import CLIENTS

__all__ = ["Client", "ClientOptions", "RequestSpec", "client_class", "make_client"]


def client_class(kind: str) -> type[Client]:
    return CLIENTS.get(kind)  # type: ignore[no-any-return]


def make_client(kind: str, url: str, options: ClientOptions) -> Client:
    return client_class(kind)(url, options)
