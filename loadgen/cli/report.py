"""``loadgen report DIR``: validate a saved run, every file of it, and render its outputs again."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="re-render the summary of a run from its records")
    p.add_argument("dir", type=Path)
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """Validate a saved run (every file, naming the field that is wrong), then render it again."""
    from rich.console import Console
    from rich.markup import escape

    from loadgen import api
    from loadgen.render.table import print_summary

    console = Console(stderr=True)
    try:
        result = api.load_run(args.dir, rebuild=True, notify=lambda line: console.print(f"note: {escape(line)}"))
    except api.RunFormatError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    api.write_outputs(result)
    print_summary(result.summary, Console())
    console.print(f"report: {args.dir / api.REPORT_FILE}")
    return 0
