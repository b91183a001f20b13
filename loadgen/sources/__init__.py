"""Prompt sources: one module per source, registered in ``loadgen.registry.SOURCES``.

A profile's ``prompts`` section is one source's pydantic model, told apart by ``source``
(a discriminated union in ``loadgen.config``); ``synthetic`` when not given.

May import: ``registry``, ``basemodel``, ``tokens``, ``clients.base`` and each other; nothing above.
"""
