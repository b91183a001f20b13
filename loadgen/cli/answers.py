"""``loadgen search`` and ``loadgen compare``: argument parsing and printing only.

The answers themselves (``loadgen/answers/``) are built on finished runs; this module only turns arguments into
calls and results into output. Exit status: 0 done; 1 a ``--fail-if``
rule held with significance (compare); 2 bad input, or a run that cannot be compared.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

EXIT_FAIL_IF = 1
EXIT_BAD_INPUT = 2
# The compare defaults (loadgen.answers.compare: DEFAULT_METRICS, RESAMPLES, SEED) as the help states them; the
# module itself is imported only when a comparison runs. tests/unit/test_cli_startup.py keeps the two in step.
COMPARE_DEFAULTS_HELP = ("ttft_ms.p50 ttft_ms.p99 tpot_ms.p50 itl_ms.p50 e2e_ms.p99 output_tokens_per_s requests_per_s",
                         2000, 0)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``search`` and ``compare`` (the answers built on runs: ``loadgen/answers/``)."""
    p = sub.add_parser("search", help="the highest rate (or concurrency) at which an SLO holds")
    p.set_defaults(func=cmd_search)
    p.add_argument("profile", type=Path, help="YAML profile: targets, prompts, and one stage giving its length")
    p.add_argument("--slo", required=True, help="ttft_p99_ms=X,tpot_p99_ms=Y[,e2e_p99_ms=Z]")
    p.add_argument("--goodput", type=float, help="also require this share of requests to meet every limit")
    p.add_argument("--over", choices=["rate", "concurrency"], default="rate")
    p.add_argument("--resolution", type=float, default=0.05, help="stop when (hi − lo) / lo ≤ this")
    p.add_argument("--max-steps", type=int, default=12, help="stages per target at most")
    p.add_argument("--start", type=float, help="first load tried (default: the profile's own)")
    p.add_argument("--steady", action="store_true",
                   help="judge each step on its steady-state window (the stage's `steady` block), not the whole stage")
    p.add_argument("--price-per-hour", action="append", default=[], metavar="NAME=USD",
                   help="what target NAME's machine costs per hour: the cost per million tokens at the capacity found")
    p.add_argument("--out", type=Path, help="output folder (default results/search-<timestamp>)")
    p.add_argument("--set", action="append", default=[], metavar="dotted.key=value")
    q = sub.add_parser("compare", help="run B against run A, with bootstrap confidence intervals")
    q.set_defaults(func=cmd_compare)
    q.add_argument("run_a", type=Path)
    q.add_argument("run_b", type=Path)
    q.add_argument("--metric", action="append", default=[], help=f"default: {COMPARE_DEFAULTS_HELP[0]}")
    q.add_argument("--fail-if", action="append", default=[], metavar="RULE",
                   help="exit 1 when it holds with significance, e.g. 'ttft_ms.p99>+10%%'")
    q.add_argument("--allow-invalid", action="store_true", help="compare runs whose validity verdict is false")
    q.add_argument("--steady", action="store_true",
                   help="compare each stage's steady state only (the requests sent inside its `steady` window)")
    q.add_argument("--resamples", type=int, help=f"bootstrap resamples (default {COMPARE_DEFAULTS_HELP[1]})")
    q.add_argument("--seed", type=int, help=f"seed of the bootstrap draws (default {COMPARE_DEFAULTS_HELP[2]})")
    q.add_argument("--out", type=Path, help="write compare.md, compare.html and compare.json here")


def cmd_search(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from rich.console import Console

    from loadgen import api
    from loadgen.answers import search as s
    from loadgen.answers import search_report as search_render
    from loadgen.cli.run import print_error
    from loadgen.config import load_profile, parse_assignment, with_prices
    from loadgen.registry import UnknownPluginError
    from loadgen.render.table import to_rich

    console = Console(stderr=True)
    try:
        slo = s.SLO.parse(args.slo)
        profile = with_prices(load_profile(args.profile, [parse_assignment(text) for text in args.set]),
                              args.price_per_hour)
        out = args.out or Path("results") / time.strftime("search-%Y%m%d-%H%M%S")
        found = s.search(profile, slo, out, over=args.over, goodput=args.goodput, resolution=args.resolution,
                         steady=args.steady,
                         max_steps=args.max_steps, start=args.start, notify=console.print)
    except (ValidationError, ValueError, OSError, api.RunSetupError, UnknownPluginError) as exc:
        print_error(console, exc)
        return EXIT_BAD_INPUT
    search_render.write(found, out)
    Console(width=max(Console().width, 160)).print(to_rich(search_render.steps_table(found)))
    for line in search_render.answer_lines(found):
        print(line)
    console.print(f"search: {out / s.SEARCH_FILE}; report: {out / search_render.SEARCH_HTML}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from loadgen import api
    from loadgen.answers import compare as c
    from loadgen.answers import compare_report as compare_render

    console = Console(stderr=True)
    resamples = c.RESAMPLES if args.resamples is None else args.resamples
    seed = c.SEED if args.seed is None else args.seed
    try:
        metrics = [c.MetricRef.parse(t) for t in (args.metric or c.DEFAULT_METRICS)]
        rules = [c.Rule.parse(t) for t in args.fail_if]
        if resamples < 100:
            raise c.CompareError("--resamples must be at least 100")
        a, b = api.load_run(args.run_a), api.load_run(args.run_b)
        comp = c.compare_runs(a, b, metrics, rules, allow_invalid=args.allow_invalid, resamples=resamples,
                              seed=seed, steady_state=args.steady)
    except (c.CompareError, api.RunFormatError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return EXIT_BAD_INPUT
    print(compare_render.to_markdown_report(comp))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "compare.md").write_text(compare_render.to_markdown_report(comp))
        (args.out / "compare.html").write_text(compare_render.to_html_report(comp))
        (args.out / "compare.json").write_text(comp.model_dump_json(indent=2) + "\n")
    return EXIT_FAIL_IF if comp.failed_rules else 0
