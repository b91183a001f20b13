"""``loadgen study FILE``: argument parsing and printing only (the study: ``loadgen/answers/study.py``).

Exit status: 0 done; 2 bad input (the file, a target, a cell that cannot start); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
STUDIES = Path(__file__).resolve().parents[1] / "studies"
# loadgen.answers.study_config.DEFAULT_STACK_STATE, stated here so that --help need not import the study
# (tests/unit/test_cli_startup.py keeps the two in step).
STACK_STATE_HELP = "results/engines/state.json"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="a grid of runs: each metric against each axis, speedups, the seed tables")
    p.set_defaults(func=cmd_study)
    p.add_argument("profile", help="study file (a profile with a `study:` section), or the name of one in "
                                   f"loadgen/studies/ ({', '.join(sorted(f.stem for f in STUDIES.glob('*.yaml')))})")
    p.add_argument("--out", type=Path, help="output folder (default results/study-<name>-<timestamp>)")
    p.add_argument("--set", action="append", default=[], metavar="dotted.key=value",
                   help="override a field, e.g. --set study.repetitions=1 --set load.requests=8")
    p.add_argument("--stack", type=Path,
                   help="state file of `python -m stack.local up`, for targets that name an `engine` "
                        f"(default {STACK_STATE_HELP})")
    p.add_argument("--no-png", action="store_true", help="skip the PNG figures (HTML and CSV only)")


def study_path(text: str) -> Path:
    """A path, or a name in loadgen/studies/ (``seed-a`` → loadgen/studies/seed-a.yaml)."""
    path = Path(text)
    if path.exists() or path.suffix:
        return path
    return STUDIES / f"{text}.yaml"


def cmd_study(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from rich.console import Console

    from loadgen import api
    from loadgen.answers import study as s
    from loadgen.answers import study_report as study_render
    from loadgen.answers.study_config import DEFAULT_STACK_STATE, StudyError, load_study
    from loadgen.cli.run import print_error
    from loadgen.config import parse_assignment
    from loadgen.registry import UnknownPluginError

    console = Console(stderr=True)
    try:
        spec = load_study(study_path(args.profile), [parse_assignment(t) for t in args.set],
                          args.stack or DEFAULT_STACK_STATE)
        out = args.out or Path("results") / time.strftime(f"study-{spec.profile.name}-%Y%m%d-%H%M%S")
        result = s.study(spec, out, notify=console.print, argv=sys.argv)
    except (StudyError, ValidationError, ValueError, OSError, api.RunSetupError, UnknownPluginError) as exc:
        print_error(console, exc)
        return EXIT_BAD_INPUT
    for notice in study_render.write(result, out, png=not args.no_png):
        console.print(f"[yellow]{notice}[/yellow]")
    print(study_render.to_markdown_report(result))
    console.print(f"study: {out / s.STUDY_FILE}; report: {out / study_render.STUDY_HTML}; "
                  f"table: {out / study_render.STUDY_CSV}")
    return EXIT_INTERRUPTED if result.interrupted else 0
