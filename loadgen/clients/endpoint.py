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
from urllib.parse import urlsplit, urlunsplit

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


def shown(url: str) -> str:
    """``url`` as an error may quote it: without a user name or password, and without the query's values."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2] if "@" in parts.netloc else parts.netloc
    query = "&".join(f"{q.partition('=')[0]}=***" for q in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def refuse_credentials(url: str, what: str = "a target URL") -> None:
    """ValueError when ``url`` carries a user name or password (``http://user:pass@host``): they would be written
    to manifest.json, summary.json and the report, and HTTP clients send them as Basic auth to some requests and
    not others. Credentials go in a header, which every file redacts."""
    if "@" in urlsplit(url).netloc:
        raise ValueError(f"{shown(url)}: {what} carries a user name or password (USER:PASS@HOST), which would be "
                         "written to every file of the run; give the key with --api-key-env VAR or a header with "
                         "--header 'Authorization: ...' (both are redacted)")


def parse_url(url: str, schemes: dict[str, int]) -> Endpoint:
    """``url`` as an ``Endpoint``; ValueError naming what is wrong (no scheme, an unknown one, no host, a bad port,
    credentials in it)."""
    known = ", ".join(f"{s}://" for s in schemes)
    refuse_credentials(url)
    url_shown = shown(url)
    if "://" not in url:
        raise ValueError(f"{url!r} has no scheme: write it as {next(iter(schemes))}://HOST:PORT (one of {known})")
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise ValueError(f"{url_shown!r}: scheme {parts.scheme}:// is not supported by this kind; use one of {known}")
    if not parts.hostname:
        raise ValueError(f"{url_shown!r} has no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url_shown!r}: bad port ({exc})") from exc
    if parts.query or parts.fragment:
        raise ValueError(f"{url_shown!r}: a target URL takes no query or fragment (an API key goes in "
                         "--api-key-env VAR, never in the URL)")
    return Endpoint(parts.scheme, parts.hostname, port or schemes[parts.scheme], parts.path.rstrip("/"))
