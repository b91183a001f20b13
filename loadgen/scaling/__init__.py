"""Past one core: the share of a schedule a process or host runs (``share``) and the coordinator of
``--workers N`` (``coordinator``), which starts each worker process (``python -m loadgen.cli.worker``) and
gathers its records.

Part of the run core: ``api`` and ``runner`` use it; it imports records, config, summary models and sinks, never
``api``, ``answers``, ``render`` or ``cli``. Merging ``--shard K/N`` runs is built on finished runs:
``loadgen.answers.merge``.
"""
