"""The command line's start-up costs only what the command needs: ``loadgen --help`` (and each command's
``--help``) imports none of the run core, pydantic, rich, numpy or a wire client; and the defaults the help
states by hand are the ones the commands use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loadgen.answers import compare
from loadgen.answers.study_config import DEFAULT_STACK_STATE
from loadgen.cli import answers, study

HEAVY = ("loadgen.api", "loadgen.config", "loadgen.runner", "loadgen.summary", "loadgen.clients", "pydantic", "rich",
         "numpy", "plotly", "httpx", "yaml", "tritonclient", "orjson")
COMMANDS = ["run", "report", "merge", "selftest", "search", "compare", "study"]


def modules_after(argv: list[str]) -> set[str]:
    code = ("import sys, contextlib, io\nfrom loadgen.cli import main\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            f"    main({argv!r})\n"
            "print('\\n'.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("argv", [["--help"], *([c, "--help"] for c in COMMANDS)], ids=" ".join)
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    loaded = modules_after(argv)
    assert "loadgen.cli" in loaded  # the probe ran
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert not heavy, f"`loadgen {' '.join(argv)}` imports {heavy}"


def test_the_defaults_the_help_states_are_the_commands_own() -> None:
    assert (" ".join(compare.DEFAULT_METRICS), compare.RESAMPLES, compare.SEED) == answers.COMPARE_DEFAULTS_HELP
    assert str(DEFAULT_STACK_STATE) == study.STACK_STATE_HELP
