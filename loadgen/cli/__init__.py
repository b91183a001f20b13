"""The command line of the load generator: ``loadgen run | report | merge | selftest | search | compare | study``.

The process entry points: one module per command, each adding its parser with ``set_defaults(func=...)``
(``run``, ``report``, ``merge``, ``selftest``, ``answers``: search and compare, ``study``), and the worker process
of ``--workers N`` (``python -m loadgen.cli.worker``); plus what only the command line needs: the progress bar
(``progress``), exit codes (``exit_codes``) and engine-build manifests (``engine_builds``). The only place that
prints for a person. The top layer: may import every other part of ``loadgen``; nothing imports it
(tests/static/test_imports.py).
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    from loadgen.cli import answers, merge, report, run, selftest, study

    parser = argparse.ArgumentParser(prog="loadgen", description="Load generator for LLM inference servers.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (run, report, merge, selftest, answers, study):
        command.add_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)
