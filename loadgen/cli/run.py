"""``loadgen run``: the run command's flags, their translation into profile overrides, and the run itself."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from loadgen.cli.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_WRITE_FAILED
from loadgen.headers import parse_header
from loadgen.registry import ARRIVALS, CLIENTS
from loadgen.scaling.share import WHOLE, Share

# -- arguments -------------------------------------------------------------------------------

def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a load profile against one or more targets")
    p.set_defaults(func=cmd_run)
    p.add_argument("profile", nargs="?", type=Path, help="YAML profile (see loadgen/profiles/)")
    p.add_argument("--target", action="append", default=[], metavar="NAME=KIND@URL",
                   help=f"a server to load; KIND is one of {', '.join(CLIENTS.names())} (repeatable)")
    p.add_argument("--model", help="served model name")
    load = p.add_mutually_exclusive_group()
    load.add_argument("--concurrency", type=int, help="closed loop: N requests always in flight")
    load.add_argument("--rate", type=float, help="open loop: R requests per second")
    p.add_argument("--arrival", choices=ARRIVALS.names())
    p.add_argument("--burstiness", type=float, help="gamma shape (1 = Poisson, < 1 burstier)")
    p.add_argument("--requests", type=int, help="requests per stage")
    p.add_argument("--duration", type=float, help="seconds of issuing per stage")
    p.add_argument("--warmup", type=int, help="requests per target before measuring (excluded)")
    p.add_argument("--input-tokens", type=int)
    p.add_argument("--output-tokens", type=int)
    p.add_argument("--tokenizer", type=Path, help="model folder with tokenizer.json (exact prompt lengths)")
    p.add_argument("--dataset", type=Path, help="ShareGPT-format JSON file")
    p.add_argument("--slo", help="ttft_ms=X,tpot_ms=Y,e2e_ms=Z (goodput)")
    p.add_argument("--price-per-hour", action="append", default=[], metavar="NAME=USD",
                   help="what target NAME's machine costs per hour: a `cost` block ($ per million tokens) per stage "
                        "(repeatable; targets[].price_per_hour)")
    p.add_argument("--usd-per-kwh", type=float, metavar="USD", help="price measured energy (GPU runs) too")
    p.add_argument("--max-in-flight", type=int)
    p.add_argument("--out", type=Path, help="output folder (default results/<timestamp>)")
    p.add_argument("--set", action="append", default=[], metavar="dotted.key=value",
                   help="override any profile field, e.g. --set request.temperature=0.7")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--metrics-port", type=int, help="live Prometheus metrics port (default 9400; 0 = any free)")
    p.add_argument("--no-metrics", action="store_true", help="do not serve live Prometheus metrics")
    p.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="an extra header on every request (repeatable); sensitive values are redacted in every file")
    p.add_argument("--api-key-env", metavar="VAR", help="send `Authorization: Bearer $VAR` (the key is never written)")
    p.add_argument("--ca-cert", type=Path, help="PEM file of the CA that signed https:// / grpcs:// targets")
    p.add_argument("--insecure", action="store_true", help="TLS without verifying the certificate (HTTP kinds)")
    p.add_argument("--connect-timeout", type=float, metavar="S",
                   help="seconds one connection (TCP and TLS handshake) may take (default 10; "
                        "request.connect_timeout_s)")
    p.add_argument("--max-failed-ratio", type=float, default=0.0, metavar="R",
                   help=f"exit {EXIT_FAILED} when more than this share of requests failed (default 0: any)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="client processes, each with its own event loop, sharing one schedule (default 1)")
    p.add_argument("--shard", type=_share, metavar="K/N",
                   help="run only share K (0-based) of N of the schedule (one host of several; then `loadgen merge`)")
    p.add_argument("--start-at", type=float, metavar="UNIX_SECONDS",
                   help="with --shard: start the first stage at this wall-clock time, the same on every host")
    p.add_argument("--engine-manifest", action="append", default=[], type=Path, metavar="PATH",
                   help="an engine build's manifest.json (e.g. the TensorRT-LLM precision) to carry into the run's "
                        "manifest; also read from $LOADGEN_ENGINE_MANIFESTS (':'-separated)")


def _share(text: str) -> Share:
    try:
        return Share.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _load_overrides(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """--concurrency/--rate (an explicit load replaces the profile's stages or sweep), --arrival, --burstiness,
    --requests, --duration."""
    o: list[tuple[str, Any]] = []
    if args.concurrency is not None or args.rate is not None:
        o += [("stages", []), ("sweep", None)]
        if args.concurrency is not None:
            o += [("load.type", "concurrency"), ("load.concurrency", args.concurrency)]
        else:
            o += [("load.type", "rate"), ("load.rate", args.rate)]
    for flag, key in (("arrival", "load.arrival"), ("burstiness", "load.burstiness"),
                      ("requests", "load.requests"), ("duration", "load.duration_s")):
        if getattr(args, flag) is not None:
            o.append((key, getattr(args, flag)))
    return o


def overrides_from_args(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """Translate the shorthand flags into dotted-key overrides (applied before --set)."""
    from loadgen.config import DELETE, SLOConfig, TargetConfig, parse_assignment

    o: list[tuple[str, Any]] = []
    if args.target:
        o.append(("targets", [TargetConfig.parse(t).model_dump(exclude_none=True) for t in args.target]))
    if args.model:
        o.append(("model", args.model))
    o += _load_overrides(args)
    simple = {"warmup": "warmup", "input_tokens": "prompts.input_tokens", "output_tokens": "prompts.output_tokens",
              "tokenizer": "prompts.tokenizer", "max_in_flight": "max_in_flight", "out": "out", "workers": "workers"}
    for flag, key in simple.items():
        if getattr(args, flag) is not None:
            value = getattr(args, flag)
            o.append((key, str(value) if isinstance(value, Path) else value))
    if args.dataset is not None:
        # A dataset replaces synthetic prompts: their length no longer applies.
        o += [("prompts.source", "sharegpt"), ("prompts.dataset", str(args.dataset)), ("prompts.input_tokens", DELETE)]
    if args.slo:
        o += [(f"slo.{k}", v) for k, v in SLOConfig.parse(args.slo).items()]
    if getattr(args, "usd_per_kwh", None) is not None:
        o.append(("usd_per_kwh", args.usd_per_kwh))
    if getattr(args, "metrics_port", None) is not None:
        o.append(("metrics.port", args.metrics_port))
    o += _request_overrides(args)
    if getattr(args, "no_metrics", False):
        o.append(("metrics.enabled", False))
    o += [parse_assignment(text) for text in args.set]
    return o


def _request_overrides(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """--header, --api-key-env, --ca-cert, --insecure as ``request.*`` keys."""
    o: list[tuple[str, Any]] = []
    if getattr(args, "header", None):
        o.append(("request.headers", dict(parse_header(text) for text in args.header)))
    if getattr(args, "api_key_env", None):
        o.append(("request.api_key_env", args.api_key_env))
    if getattr(args, "ca_cert", None) is not None:
        o.append(("request.ca_cert", str(args.ca_cert)))
    if getattr(args, "insecure", False):
        o.append(("request.insecure", True))
    if getattr(args, "connect_timeout", None) is not None:
        o.append(("request.connect_timeout_s", args.connect_timeout))
    return o


# -- run -------------------------------------------------------------------------------------

def explain(exc: Exception) -> str:
    """An error for the console. A profile's validation errors are listed by field and message only:
    pydantic's own text repeats the input, which may hold a header's secret value."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'profile'}: {e['msg']}" for e in exc.errors())
    return str(exc)


def print_error(console: Any, exc: Exception) -> None:
    """``error: ...`` on ``console`` (a rich Console) as one line: ``explain``'s text escaped (a
    ``pip install 'llm-serving-rig[triton]'`` in it is not rich markup) and never wrapped."""
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(explain(exc))}", soft_wrap=True)


def cmd_run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from rich.console import Console

    from loadgen import api
    from loadgen.cli.engine_builds import EngineManifestError, describe, load_engine_manifests
    from loadgen.cli.exit_codes import outcome
    from loadgen.cli.progress import ProgressBar
    from loadgen.config import load_profile, with_prices
    from loadgen.registry import UnknownPluginError
    from loadgen.render.table import print_summary

    console = Console(stderr=True)
    try:
        if not 0 <= getattr(args, "max_failed_ratio", 0.0) <= 1:
            raise ValueError("--max-failed-ratio is a share of the requests, between 0 and 1")
        profile = with_prices(load_profile(args.profile, overrides_from_args(args)), args.price_per_hour)
        engine_builds = load_engine_manifests(args.engine_manifest)
    except (ValidationError, ValueError, OSError, EngineManifestError) as exc:
        print_error(console, exc)
        return 2
    for line in describe(engine_builds):
        console.print(f"engine build: {line}")
    hooks = api.Hooks(notify=console.print)
    try:
        with ProgressBar(hooks, console, enabled=not args.no_progress):
            result = api.run(profile, argv=sys.argv, engine_builds=engine_builds, hooks=hooks,
                             share=getattr(args, "shard", None) or WHOLE, start_at=getattr(args, "start_at", None))
    except (api.RunSetupError, UnknownPluginError) as exc:
        print_error(console, exc)
        return 2
    except api.RunWriteError as exc:
        print_error(console, exc)
        return EXIT_WRITE_FAILED
    assert result.out is not None
    print_summary(result.summary, Console())
    console.print(f"report: {result.out / api.REPORT_FILE}")
    console.print(f"records: {result.out / 'records.jsonl'} ({len(result.records)}); summary: "
                  f"{result.out / api.SUMMARY_FILE}")
    if result.interrupted:
        console.print("[red]interrupted: issuing stopped early; the records and summary hold what finished "
                      "(in-flight requests past the grace period are recorded as cancelled)[/red]")
        return EXIT_INTERRUPTED
    verdict = outcome(result.summary, getattr(args, "max_failed_ratio", 0.0))
    if verdict.message:
        console.print(f"[red]{verdict.message}[/red]")
    return verdict.code
