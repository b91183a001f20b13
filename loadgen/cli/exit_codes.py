"""The exit status of ``loadgen run``: whether a script or CI can trust that the run measured something.

Why: a run where every request failed (wrong port, dead server, every request a 401) used to exit 0,
so a pipeline could not tell a dead target from a good run. Now:

- ``EXIT_FAILED`` (3): more than ``max_failed_ratio`` of the measured requests failed (over all
  targets; warm-up excluded), or nothing was measured at all. The default ratio is 0: any failed
  request is worth a look, and a run that expects some (fault injection, an overload sweep) says
  how many it accepts with ``--max-failed-ratio``;
- ``EXIT_INVALID`` (4): the requests were fine but the measurement is not (the validity verdict,
  ``loadgen.verdicts.validity``, found the client late, lagging or saturated on some target);
- ``EXIT_WRITE_FAILED`` (5): the run could not write its records (a full disk, ENOSPC): it stopped at the first
  failed write, the complete records kept;
- 0 otherwise. (Bad input is 2 and SIGINT 130, as before.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the run's summary; ``loadgen --help`` reads the codes without importing it
    from loadgen.summary import Summary

EXIT_FAILED = 3
EXIT_INVALID = 4
EXIT_WRITE_FAILED = 5  # the run could not write its records (a full disk): stopped, complete records kept
EXIT_INTERRUPTED = 130  # SIGINT/SIGTERM: what finished is kept


@dataclass(frozen=True)
class Outcome:
    code: int
    message: str | None  # why the code is not 0


def failed_ratio(summary: Summary) -> tuple[int, int]:
    """(failed, total) measured requests over every target of the summary."""
    failed = sum(t.requests.failed for t in summary.targets.values())
    total = failed + sum(t.requests.ok for t in summary.targets.values())
    return failed, total


def invalid_targets(summary: Summary) -> dict[str, list[str]]:
    """Targets whose validity verdict says the measurement is not trustworthy, with its reasons
    (none in summaries from before the verdict)."""
    found = {}
    for name, target in summary.targets.items():
        verdict = getattr(target, "validity", None)
        if verdict is not None and not verdict.valid:
            found[name] = list(verdict.reasons)
    return found


def outcome(summary: Summary, max_failed_ratio: float = 0.0) -> Outcome:
    failed, total = failed_ratio(summary)
    if total == 0:
        return Outcome(EXIT_FAILED, "no request was measured")
    if failed / total > max_failed_ratio:
        return Outcome(EXIT_FAILED, f"{failed} of {total} requests failed ({failed / total:.1%} > "
                                    f"--max-failed-ratio {max_failed_ratio:g})")
    invalid = invalid_targets(summary)
    if invalid:
        why = "; ".join(f"{name}: {', '.join(reasons)}" for name, reasons in invalid.items())
        return Outcome(EXIT_INVALID, f"the measurement is not valid ({why})")
    return Outcome(0, None)
