"""Multi-turn sessions: the turns of one conversation, and a turn with its history.

Why here and not in a source: the history holds the server's own answers, which exist only
once the previous turn has ended, so the runner assembles each turn's request as it goes;
the source only says which specs form a session (``session_id``, ``turn``, ``think_s``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from loadgen.clients.base import RequestSpec


@dataclass(frozen=True)
class Session:
    """One run of a conversation: its id in the records, and its turns in order."""

    id: str
    turns: tuple[RequestSpec, ...]


def group_sessions(specs: Sequence[RequestSpec]) -> list[tuple[RequestSpec, ...]]:
    """The specs' sessions in order of first appearance, each sorted by turn; [] when no spec
    belongs to a session."""
    groups: dict[str, list[RequestSpec]] = {}
    for spec in specs:
        if spec.session_id is not None:
            groups.setdefault(spec.session_id, []).append(spec)
    return [tuple(sorted(turns, key=lambda s: s.turn or 0)) for turns in groups.values()]


def with_history(spec: RequestSpec, history: Sequence[dict[str, str]], session_id: str) -> RequestSpec:
    """The turn as sent: chat APIs get the messages (history, then this user turn); text APIs
    get the same conversation as one text, turns separated by a newline. The prompt's exact
    length is known only for the first turn (the answers' tokens are the server's)."""
    if not history:
        return replace(spec, session_id=session_id)
    messages = (*history, {"role": "user", "content": spec.prompt})
    return replace(spec, prompt="\n".join(m["content"] for m in messages), messages=messages,
                   prompt_tokens=None, session_id=session_id)
