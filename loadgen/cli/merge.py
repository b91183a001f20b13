"""``loadgen merge OUT SHARD...``: the command over ``loadgen.answers.merge`` (one run from its shards)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="merge the run folders of --shard K/N runs into one run")
    p.add_argument("out", type=Path, help="output folder of the merged run")
    p.add_argument("shards", type=Path, nargs="+", help="the shards' run folders")
    p.set_defaults(func=cmd_merge)


def cmd_merge(args: argparse.Namespace) -> int:
    """Merge the run folders of ``--shard K/N`` runs into one run (``loadgen.answers.merge``)."""
    from rich.console import Console

    from loadgen import api
    from loadgen.answers.merge import MergeError, merge
    from loadgen.render.table import print_summary

    console = Console(stderr=True)
    try:
        result = merge(args.out, args.shards, notify=console.print)
    except MergeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    print_summary(result.summary, Console())
    console.print(f"merged {len(args.shards)} shards, {len(result.records)} records: {args.out / api.REPORT_FILE}")
    return 0
