"""``loadgen merge OUT SHARD...``: one run from the shares of a run made on several hosts.

Why: past one host (a Kubernetes Indexed Job, ``--shard K/N``), each host writes its own run
folder. Their records hold ``perf_counter_ns`` of their own host, which has its own origin; each
manifest's ``clock`` pair (perf_counter_ns, unix_ns), read at the same moment, maps them onto
the first shard's clock through the hosts' wall clocks: a record's stamps move by
``(unix_j − perf_j) − (unix_0 − perf_0)``. The merge is then as exact as the hosts' clocks are
synchronised (NTP: typically well under a millisecond on one network); durations within a
request (TTFT, ITL, E2E) never depend on it, only where requests of different hosts sit
relative to each other (throughput over time, the run's span). On one host the offset is the
clock-reading jitter, microseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from loadgen import api
from loadgen.record import RequestRecord
from loadgen.scaling.coordinator import WorkerSamples, process_report, write_reports
from loadgen.scaling.share import Share
from loadgen.sinks.jsonl import LOOP_LAG_FILE, RECORDS_FILE, write_pairs
from loadgen.summary import Manifest, WorkerReport


class MergeError(ValueError):
    """The folders are not shares of one run (or one is not a run); nothing was written."""


def clock_offset(manifest: Manifest, base: Manifest) -> int:
    """ns to add to ``manifest``'s perf_counter stamps to put them on ``base``'s clock."""
    return ((manifest.clock.unix_ns - manifest.clock.perf_counter_ns)
            - (base.clock.unix_ns - base.clock.perf_counter_ns))


def merge(out: Path, shards: Sequence[Path], notify: Callable[[str], None] = print) -> api.RunResult:
    """Read every shard (validated like ``loadgen report``), check they are shares of one profile, and
    write one run into ``out``: records, loop lag, per-shard samples (``workers.json``), summary, report."""
    try:
        runs = [api.load_run(Path(p)) for p in shards]
    except api.RunFormatError as exc:
        raise MergeError(str(exc)) from exc
    shares = _check(runs, shards, notify)
    base = runs[0].manifest
    records: list[RequestRecord] = []
    lags: list[tuple[int, int]] = []
    reports: list[WorkerReport] = []
    samples: list[WorkerSamples] = []
    for number, (run, share) in enumerate(zip(runs, shares, strict=True)):
        offset = clock_offset(run.manifest, base)
        records += [r.shifted(offset) for r in run.records]
        lags += [(t + offset, lag) for t, lag in run.loop_lag]
        for report, sample in _processes(run, share):
            moved = WorkerSamples([(t + offset, lag) for t, lag in sample.loop_lag],
                                  [(t + offset, c) for t, c in sample.cpu])
            samples.append(moved)
            reports.append(report.model_copy(update={"worker": len(reports), "host": run.manifest.host.hostname,
                                                     "shard": number}))
    records.sort(key=lambda r: r.sent_ns)
    lags.sort()
    _write(out, records, lags, base, shards)
    data = base.model_dump(mode="json", exclude_unset=True)
    data.pop("share", None)
    manifest = Manifest.model_validate({**data, "shards": [str(p) for p in shards]})
    (out / api.MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2, exclude_unset=True) + "\n")
    write_reports(reports, samples, out)
    summary = api.summarize_run(records, lags, manifest, cpu=[s.cpu for s in samples], workers=reports)
    result = api.RunResult(records, summary, manifest, lags, out, workers=reports, worker_samples=samples)
    api.write_outputs(result)
    return result


def _processes(run: api.RunResult, share: Share) -> list[tuple[WorkerReport, WorkerSamples]]:
    """A shard's client processes: its workers (``--workers``) as they reported, or the one process."""
    if run.workers:
        return list(zip(run.workers, run.worker_samples, strict=True))
    samples = WorkerSamples(run.loop_lag, run.cpu)
    return [(process_report(samples, worker=0, pid=0, share=f"{share.k}/{share.n}", requests=len(run.records)),
             samples)]


def _check(runs: Sequence[api.RunResult], shards: Sequence[Path], notify: Callable[[str], None]) -> list[Share]:
    """Every folder a share of the same profile and prompts, no share twice; a missing share is said."""
    shares = []
    for run, path in zip(runs, shards, strict=True):
        text = getattr(run.manifest, "share", None)
        if text is None:
            raise MergeError(f"{path} is a whole run, not a share (run it with --shard K/N)")
        shares.append(Share.parse(text))
    first = runs[0].manifest
    for run, path in zip(runs[1:], shards[1:], strict=False):
        for field in ("dataset_hash", "seed"):
            if getattr(run.manifest, field) != getattr(first, field):
                raise MergeError(f"{path}: {field} differs from {shards[0]}'s: not shares of one run")
        if _comparable(run.manifest.profile) != _comparable(first.profile):
            raise MergeError(f"{path}: its profile differs from {shards[0]}'s: not shares of one run")
    if len({s.n for s in shares}) != 1:
        raise MergeError(f"the shares are of different splits: {sorted(f'{s.k}/{s.n}' for s in shares)}")
    seen = [s.k for s in shares]
    if len(set(seen)) != len(seen):
        raise MergeError(f"a share appears twice: {sorted(seen)}")
    missing = sorted(set(range(shares[0].n)) - set(seen))
    if missing:
        notify(f"warning: shares {missing} of {shares[0].n} are missing: the merged run holds "
               f"{len(seen)}/{shares[0].n} of the load")
    return shares


def _comparable(profile: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in profile.items() if k not in ("out", "workers", "metrics")}


def _write(out: Path, records: Sequence[RequestRecord], lags: Sequence[tuple[int, int]], base: Manifest,
           shards: Sequence[Path]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if (out / RECORDS_FILE).exists() and (out / RECORDS_FILE).stat().st_size > 0:
        raise MergeError(f"{out / RECORDS_FILE} exists; choose another output folder")
    if any(Path(p).resolve() == out.resolve() for p in shards):
        raise MergeError("the output folder is one of the shards")
    with (out / RECORDS_FILE).open("w", encoding="utf-8") as f:
        for r in records:
            f.write(r.model_dump_json() + "\n")
    write_pairs(lags, out / LOOP_LAG_FILE)
