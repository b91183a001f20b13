"""Answers built on finished runs, never inside them: capacity search, comparison of two runs, studies, and
the merge of ``--shard K/N`` runs into one; with their files and renderers (``*_report``).

Each module takes finished runs (``RunResult``s, records) or drives ``loadgen.api.run``; none changes how a run
measures. May import the run core (``api``, ``summary``, ``config``, ``verdicts``, ``render``); never ``cli``.
"""
