"""``loadgen selftest``: the command over ``loadgen.selftest`` (the client measured against the synthetic server)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("selftest", help="measure this client against the synthetic server")
    p.add_argument("--quick", action="store_true", help="smaller figures, for tests")
    p.set_defaults(func=cmd_selftest)


def cmd_selftest(args: argparse.Namespace) -> int:
    from loadgen.selftest import main  # starts servers.mock: imported only when asked

    return main(quick=args.quick)
