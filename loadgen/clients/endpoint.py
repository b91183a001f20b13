"""A target's URL, parsed once and checked before anything is created.

Why a scheme is required: ``urlsplit("notaurl")`` has no host, and the first HTTP client
quietly sent such a target to 127.0.0.1:80; a URL the client cannot honour (``https://``
before TLS existed) used to fail only after manifest.json and an empty records.jsonl had
been written. Every client kind names the schemes it speaks (``url_schemes``, scheme →
default port); the profile's validation calls ``parse_url`` with them, so a wrong URL
fails with the profile's other errors, naming the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

HTTP_SCHEMES = {"http": 80, "https": 443}
TLS_SCHEMES = frozenset({"https", "grpcs"})


@dataclass(frozen=True)
class Endpoint:
    """Where to connect: host, port, whether over TLS, and the URL's path prefix (no trailing /)."""

    scheme: str
    host: str
    port: int
    prefix: str

    @property
    def tls(self) -> bool:
        return self.scheme in TLS_SCHEMES

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_url(url: str, schemes: dict[str, int]) -> Endpoint:
    """``url`` as an ``Endpoint``; ValueError naming what is wrong (no scheme, an unknown one, no host, a bad port)."""
    known = ", ".join(f"{s}://" for s in schemes)
    if "://" not in url:
        raise ValueError(f"{url!r} has no scheme: write it as {next(iter(schemes))}://HOST:PORT (one of {known})")
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise ValueError(f"{url!r}: scheme {parts.scheme}:// is not supported by this kind; use one of {known}")
    if not parts.hostname:
        raise ValueError(f"{url!r} has no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url!r}: bad port ({exc})") from exc
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: a target URL takes no query or fragment")
    return Endpoint(parts.scheme, parts.hostname, port or schemes[parts.scheme], parts.path.rstrip("/"))
