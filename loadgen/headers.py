"""Extra request headers, API keys, and keeping secrets out of everything a run writes.

Why here and not in each client: a header or key is given once (``request.headers``, a target's
``headers``, ``--header``, ``--api-key-env``) and reaches every wire API the same way (HTTP
header lines; gRPC metadata), and the same list decides what must never be written down.

A key is named, not given: ``api_key_env: OPENAI_API_KEY`` keeps the secret in the environment,
so the profile (copied into manifest.json) holds only the variable's name. A secret given as a
literal header (``--header 'Authorization: Bearer sk-...'``) is in the profile and on the
command line; ``redact`` replaces the value of every sensitive header, and every secret
string wherever it appears (argv, error details), with ``REDACTED`` before anything is written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "<redacted>"
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name
# Headers the client writes itself: a second copy would break the request's framing or routing.
RESERVED = frozenset({"host", "content-length", "content-type", "transfer-encoding", "connection", "accept"})
_SENSITIVE = re.compile(r"auth|key|token|secret|passw|cookie|session|credential", re.IGNORECASE)
MIN_SECRET_CHARS = 4  # shorter strings are not scrubbed from text (they would match everywhere)


def check_header(name: str, value: str) -> tuple[str, str]:
    """A header the client may send; ValueError naming the header (never its value) otherwise."""
    if not _TOKEN.match(name):
        raise ValueError(f"header name {name!r} is not a valid HTTP field name")
    if name.lower() in RESERVED:
        raise ValueError(f"header {name!r} is set by the client itself and cannot be given")
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"header {name!r}: the value contains a line break or NUL")
    return name, value.strip()


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` (the CLI's ``--header``)."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError("--header expects 'Name: value', e.g. --header 'X-Tenant: team-a'")
    return check_header(name.strip(), value)


def is_sensitive(name: str) -> bool:
    """Authorization, cookies, and any header whose name says key, token, secret or password."""
    return bool(_SENSITIVE.search(name))


def api_key_header(variable: str, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``Authorization: Bearer <value of variable>``; ValueError when the variable is unset or empty."""
    value = (os.environ if environ is None else environ).get(variable, "")
    if not value.strip():
        raise ValueError(f"api_key_env {variable!r}: the environment variable is not set (or empty)")
    return check_header("Authorization", f"Bearer {value.strip()}")


def merged(*layers: Mapping[str, str] | None) -> dict[str, str]:
    """Later layers win, header names compared case-insensitively (the last spelling is kept)."""
    out: dict[str, str] = {}
    for layer in layers:
        for name, value in (layer or {}).items():
            for old in [k for k in out if k.lower() == name.lower()]:
                del out[old]
            out[name] = value
    return out


def secrets_of(headers: Iterable[tuple[str, str]]) -> set[str]:
    """The strings to scrub: each sensitive header's value, and its credential after a scheme word
    (``Bearer sk-1`` → ``sk-1`` too)."""
    found: set[str] = set()
    for name, value in headers:
        if is_sensitive(name):
            found.add(value)
            found.add(value.split(" ", 1)[-1])
    return {s for s in found if len(s) >= MIN_SECRET_CHARS}


def redact(data: Any, secrets: Iterable[str]) -> Any:
    """``data`` (JSON-like) with the values of sensitive headers (in any ``headers`` mapping) replaced,
    and every secret string scrubbed wherever it appears."""
    ordered = sorted(set(secrets), key=len, reverse=True)
    return _redact(data, ordered)


def _redact(data: Any, secrets: list[str]) -> Any:
    if isinstance(data, dict):
        return {k: _redact_headers(v, secrets) if k == "headers" else _redact(v, secrets) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_redact(v, secrets) for v in data]
    if isinstance(data, str):
        return scrub(data, secrets)
    return data


def _redact_headers(headers: Any, secrets: list[str]) -> Any:
    """A ``headers`` mapping (the profile's or a target's): sensitive values replaced whole."""
    if not isinstance(headers, dict):
        return _redact(headers, secrets)
    return {k: REDACTED if is_sensitive(str(k)) else _redact(v, secrets) for k, v in headers.items()}


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text
