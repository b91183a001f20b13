"""The Locust front end: the rig's requests, records, metrics and reports, driven by Locust.

Optional (``pip install '.[locust]'``); nothing else in ``loadgen`` imports Locust or gevent.
Run it with the bundled locustfile::

    python -m loadgen.locust --rig-profile PROFILE.yaml [locust options]

or write a locustfile that imports what it needs from here (which registers the ``--rig-*``
options and the master/worker wiring, ``loadgen.locust.plugin``)::

    from loadgen.locust import OpenAIChatUser, ProfileShape
    class Chat(OpenAIChatUser): ...
    class Shape(ProfileShape): ...

The names are imported on first use, not with the package: ``import locust`` monkey-patches the
standard library for gevent, which must not happen to a process that only plans a run or starts
one (``loadgen.locust.plan``, ``loadgen.locust.launch``). docs/locust.md says what maps to what
and how close the figures are to the asyncio loadgen's.

May import the run core (``api``, ``runner``, ``clients``, ``summary``, ...) as a front end does; never
``answers`` or ``cli``, and nothing imports it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LLMUser", "OpenAIChatUser", "OpenAICompletionsUser", "ProfileShape", "TritonGenerateUser"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'loadgen.locust' has no attribute {name!r}")
    plugin = importlib.import_module("loadgen.locust.plugin")  # registers the listeners; imports locust first
    users = importlib.import_module("loadgen.locust.users")
    return getattr(plugin, name, None) or getattr(users, name)
