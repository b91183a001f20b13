"""What the load generator itself costs in CPU, side by side with vLLM's benchmark client, in one run.

Why: the load generator shares a machine (here: one of two cores) with what it measures, so its own CPU
per token event decides how many streams one core can follow honestly, and its start-up and report
decide whether it is pleasant to use. Five figures, one after another, never two clients at once:

1. start-up: ``python -m loadgen.cli --help`` 5 times, median wall and CPU seconds (goal: wall < 0.3 s);
2. a 1-request run against the synthetic server (16 tokens): median CPU of 3 (goal: < 1.0 s);
3. cold streams against the synthetic server (``servers.mock``, TTFT 50 ms, ITL 20 ms): ``loadgen run``
   vs ``vllm bench serve`` (its module ``vllm.benchmarks.serve`` from ``.venv-vllm``; the ``vllm`` console
   script does not run here), 500 streams, 1,500 requests, 100 output tokens each: whole-process CPU
   seconds per token event and each client's mean TTFT against the mock's own (goal: loadgen/vLLM <= 0.25);
4. ``loadgen report`` of item 3's run folder: median CPU of 3 (goal < 1 s) and report.html's size (< 2 MB);
5. ``--profile``: item 3's loadgen run once more under cProfile, CPU per event by category, top functions.

Definitions and choices:
- CPU = user + sys of the child process and every descendant it waited for (``os.wait4``), start-up
  (imports, the tokenizer, the dataset) and the output files included: the whole process, as a user pays it.
  For reading the ratio, each client's 1-request run (16 tokens: item 2 for the loadgen, the same for vLLM,
  whose imports alone take seconds) is printed beside it with the marginal cost, (CPU − 1-request CPU) ÷
  (events − 16); the goal is judged on the whole process. With ``--quick`` the marginal figure is noise.
- token events = the token chunks the mock wrote during the client's run (its ``mock_ttft_seconds`` +
  ``mock_itl_seconds`` counts, one chunk per token here), checked against requests × tokens and
  ``mock_tokens_total``: the same number for both clients. Both are sent every chunk; each reads what it
  asked for (the loadgen asks for ``continuous_usage_stats``, so its chunks also carry the usage).
- cold: each client gets a fresh mock (one request from this script warms the mock, outside the truth
  window) and does no warm-up of its own: ``--warmup 0``; vLLM ``--num-warmups 0`` and
  ``--ready-check-timeout-sec 0`` (which skips its single-prompt test run), so every connection is
  opened inside the measured run and the first wave counts.
- TTFT bias = the client's mean TTFT − the mock's mean (its first token chunk handed to the socket − the
  kernel's arrival time of the request, ``/metrics`` scraped just before and after the client).
- pinning: each client on the first CPU this process may use, the mock (and this script) on the others.
- vLLM: ``--backend openai --endpoint /v1/completions --dataset-name random --random-input-len 32
  --random-output-len N --random-range-ratio 0 --ignore-eos --disable-tqdm`` (the loadgen runs with
  ``--no-progress --no-metrics``); its prompts are 32 random tokens, the loadgen's 32-word ShareGPT-format
  prompts (the mock counts words, not tokens). Its ``/tokenize`` alignment probe gets a 404 from the mock
  and is skipped.
- ``--profile`` uses a CPU clock (``time.thread_time``: the main thread's CPU, not wall time, so waiting in
  epoll is not counted) in a wrapper equivalent to ``python -m cProfile -o FILE -m loadgen.cli run ...``;
  the observer thread is not in it. Builtins are charged to their callers' category, so the figures are
  approximate, and cProfile inflates them: the share of each category is the figure to read.

The machine's load is printed before and after: CPU seconds are steadier than wall time on shared cores,
but compare only figures from one run. Human lines go to stderr, one JSON object to stdout.

    .venv/bin/python benchmarks/client_cost.py --quick            # 50 streams, 100 requests, 20 tokens
    .venv/bin/python benchmarks/client_cost.py [--order vllm,loadgen] [--profile] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from loadgen.selftest import running_mock

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
TOKENIZER = ROOT / "models" / "smollm2-135m-instruct"
VLLM_MAIN = ("import sys, argparse; from vllm.benchmarks.serve import add_cli_args, main; "
             "p = argparse.ArgumentParser(); add_cli_args(p); main(p.parse_args(sys.argv[1:]))")
PROFILE_MAIN = ("import cProfile, runpy, sys, time; out = sys.argv[1]; sys.argv = ['loadgen', *sys.argv[2:]]; "
                "p = cProfile.Profile(time.thread_time); p.enable()\n"
                "try:\n    runpy.run_module('loadgen.cli', run_name='__main__', alter_sys=True)\n"
                "except SystemExit:\n    pass\n"
                "finally:\n    p.disable(); p.dump_stats(out)")
MOCK_ARGS = ["--ttft-ms", "50", "--itl-ms", "20"]
GOALS = {"startup_wall_s": 0.3, "one_request_cpu_s": 1.0, "ratio": 0.25, "report_cpu_s": 1.0, "report_mb": 2.0}
CHILD_TIMEOUT_S = 600.0
ONE_REQUEST_TOKENS = 16

LIVE: set[int] = set()  # process groups of running clients, killed on the way out whatever happens


# -- child processes --------------------------------------------------------------------------

@dataclass
class Child:
    rc: int
    wall_s: float
    cpu_s: float  # user + sys of the process and the descendants it reaped (os.wait4)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def run_child(argv: list[str], log: Path, cpus: set[int] | None, env: dict[str, str] | None = None,
              timeout_s: float = CHILD_TIMEOUT_S) -> Child:
    """Run one command in its own session, pinned to ``cpus`` from before exec; wall and CPU of its tree."""
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
                                env={**os.environ, **(env or {})},
                                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    LIVE.add(proc.pid)
    timer = threading.Timer(timeout_s, _kill_group, (proc.pid,))
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        _kill_group(proc.pid)
        proc.wait()
        raise
    finally:
        timer.cancel()
        LIVE.discard(proc.pid)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    _kill_group(proc.pid)  # anything it left behind in its group
    return Child(rc=proc.returncode, wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime)


def checked(child: Child, what: str, log: Path) -> Child:
    if child.rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise SystemExit(f"{what} exited with {child.rc}; log {log}:\n{tail}")
    return child


def loadgen_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "loadgen.cli", *args]


def loadgen_run_args(url: str, dataset: Path, out: Path, streams: int, requests: int, tokens: int) -> list[str]:
    return ["run", "--target", f"m=openai-completions@{url}", "--model", "mock", "--concurrency", str(streams),
            "--requests", str(requests), "--output-tokens", str(tokens), "--warmup", "0", "--no-progress",
            "--no-metrics", "--dataset", str(dataset), "--out", str(out)]


def vllm_cmd(url: str, out: Path, streams: int, requests: int, tokens: int) -> list[str]:
    return [str(VLLM_PYTHON), "-c", VLLM_MAIN, "--backend", "openai", "--base-url", url, "--endpoint",
            "/v1/completions", "--model", "mock", "--tokenizer", str(TOKENIZER), "--dataset-name", "random",
            "--random-input-len", "32", "--random-output-len", str(tokens), "--random-range-ratio", "0",
            "--num-prompts", str(requests), "--max-concurrency", str(streams), "--request-rate", "inf",
            "--ignore-eos", "--num-warmups", "0", "--ready-check-timeout-sec", "0", "--disable-tqdm",
            "--save-result", "--result-dir", str(out), "--result-filename", "vllm.json"]


# -- the mock's books -------------------------------------------------------------------------

@dataclass
class Books:
    """What the mock did between two /metrics scrapes."""

    events: int  # token chunks written (first + later ones)
    tokens: int
    ok: int
    ttft_ms: float

    @staticmethod
    def parse(text: str) -> dict[str, float]:
        found: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith(("mock_ttft_seconds_", "mock_itl_seconds_", "mock_tokens_total",
                                'mock_requests_total{outcome="ok"}')) and "_bucket" not in line:
                name, value = line.rsplit(" ", 1)
                found[name] = float(value)
        return found

    @classmethod
    def between(cls, before: str, after: str) -> Books:
        a, b = cls.parse(before), cls.parse(after)
        d = {k: b.get(k, 0.0) - a.get(k, 0.0) for k in b}
        first = int(d.get("mock_ttft_seconds_count", 0))
        return cls(events=first + int(d.get("mock_itl_seconds_count", 0)), tokens=int(d.get("mock_tokens_total", 0)),
                   ok=int(d.get('mock_requests_total{outcome="ok"}', 0)),
                   ttft_ms=d.get("mock_ttft_seconds_sum", 0.0) / first * 1000 if first else float("nan"))


@contextlib.contextmanager
def warm_mock(folder: Path, cpus: set[int] | None) -> Iterator[str]:
    """A fresh mock, warmed by one streamed request of this script's own (before any truth window)."""
    with running_mock(MOCK_ARGS, folder, cpus) as url:
        httpx.post(f"{url}/v1/completions", json={"model": "mock", "prompt": "warm up", "max_tokens": 2,
                                                  "stream": True}, timeout=30).raise_for_status()
        yield url


def scrape(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=30).text


# -- the measurements -------------------------------------------------------------------------

def startup(folder: Path, cpus: set[int] | None, runs: int = 5) -> dict[str, float]:
    log = folder / "help.log"
    children = [checked(run_child(loadgen_cmd("--help"), log, cpus), "loadgen --help", log) for _ in range(runs)]
    return {"wall_s": round(statistics.median(c.wall_s for c in children), 3),
            "cpu_s": round(statistics.median(c.cpu_s for c in children), 3), "runs": runs}


def one_request(folder: Path, dataset: Path, cpus: set[int] | None, mock_cpus: set[int] | None,
                runs: int = 3) -> dict[str, float]:
    log = folder / "one-request.log"
    children = []
    with warm_mock(folder, mock_cpus) as url:
        for i in range(runs):
            argv = loadgen_cmd(*loadgen_run_args(url, dataset, folder / f"one-request-{i}", 1, 1, ONE_REQUEST_TOKENS))
            children.append(checked(run_child(argv, log, cpus), "loadgen run (1 request)", log))
    return {"cpu_s": round(statistics.median(c.cpu_s for c in children), 3),
            "wall_s": round(statistics.median(c.wall_s for c in children), 3), "runs": runs}


def loadgen_ttft(out: Path) -> tuple[float, int, int]:
    """(mean TTFT ms, ok, failed) from the run's summary.json."""
    target = next(iter(json.loads((out / "summary.json").read_text())["targets"].values()))
    return target["ttft_ms"]["mean"], target["requests"]["ok"], target["requests"]["failed"]


def vllm_ttft(out: Path) -> tuple[float, int, int]:
    result = json.loads((out / "vllm.json").read_text())
    failed = result.get("failed", result["num_prompts"] - result["completed"])
    return result["mean_ttft_ms"], result["completed"], failed


def streams_run(client: str, folder: Path, dataset: Path, cpus: set[int] | None, mock_cpus: set[int] | None,
                shape: tuple[int, int, int]) -> dict[str, Any]:
    """One client's cold run against a fresh mock: CPU, the mock's books, the client's TTFT against them."""
    streams, requests, tokens = shape
    out = folder / f"streams-{client}"
    log = folder / f"streams-{client}.log"
    with warm_mock(folder, mock_cpus) as url:
        if client == "loadgen":
            argv = loadgen_cmd(*loadgen_run_args(url, dataset, out, streams, requests, tokens))
        else:
            argv = vllm_cmd(url, out, streams, requests, tokens)
        before, started = scrape(url), time.strftime("%H:%M:%S")
        child = checked(run_child(argv, log, cpus, env={"HF_HUB_OFFLINE": "1"}), client, log)
        books = Books.between(before, scrape(url))
    ttft, ok, failed = (loadgen_ttft if client == "loadgen" else vllm_ttft)(out)
    expected = requests * tokens
    if books.events != expected or books.tokens != expected or ok != requests:
        print(f"warning: {client}: {books.events} token events and {books.tokens} tokens (expected {expected}), "
              f"{ok} ok of {requests}", file=sys.stderr)
    return {"started": started, "cpu_s": round(child.cpu_s, 3), "wall_s": round(child.wall_s, 2),
            "token_events": books.events, "cpu_us_per_event": round(child.cpu_s / books.events * 1e6, 2),
            "ok": ok, "failed": failed, "mock_ok": books.ok, "ttft_mean_ms": round(ttft, 3),
            "mock_ttft_mean_ms": round(books.ttft_ms, 3), "ttft_bias_ms": round(ttft - books.ttft_ms, 3),
            "out": str(out)}


def vllm_one_request(folder: Path, cpus: set[int] | None, mock_cpus: set[int] | None) -> float:
    """CPU seconds of vLLM's client for 1 request of 16 tokens: its fixed cost (imports torch, transformers)."""
    log = folder / "vllm-one-request.log"
    with warm_mock(folder, mock_cpus) as url:
        argv = vllm_cmd(url, folder / "vllm-one-request", 1, 1, ONE_REQUEST_TOKENS)
        return round(checked(run_child(argv, log, cpus, env={"HF_HUB_OFFLINE": "1"}), "vllm (1 request)", log).cpu_s, 3)


def report_cost(run_dir: Path, folder: Path, cpus: set[int] | None, runs: int = 3) -> dict[str, float]:
    log = folder / "report.log"
    children = [checked(run_child(loadgen_cmd("report", str(run_dir)), log, cpus), "loadgen report", log)
                for _ in range(runs)]
    return {"cpu_s": round(statistics.median(c.cpu_s for c in children), 3),
            "wall_s": round(statistics.median(c.wall_s for c in children), 3), "runs": runs,
            "report_html_mb": round((run_dir / "report.html").stat().st_size / 1e6, 2),
            "records": sum(1 for _ in (run_dir / "records.jsonl").open())}


# -- the profile ------------------------------------------------------------------------------

# (category, substrings of a Python function's file path); the first match wins. Code in no category (the
# standard library, rich, httpx, unnamed builtins) is charged to the category of its nearest categorized caller.
FILE_CATEGORIES = (
    ("HTTP parsing (clients/http.py, tls.py)", ("loadgen/clients/http.py", "loadgen/clients/tls.py")),
    ("SSE splitting (clients/sse.py)", ("loadgen/clients/sse.py",)),
    ("chunk handling (clients/openai.py, base.py)", ("loadgen/clients/",)),
    ("JSON decoding", ("/json/", "orjson")),
    ("record bookkeeping (record.py)", ("loadgen/record.py",)),
    ("records file (sinks/)", ("loadgen/sinks/",)),
    ("runner (runner.py, api.py, shapes, sources)", ("loadgen/runner.py", "loadgen/api.py", "loadgen/shapes/",
                                                     "loadgen/arrivals/", "loadgen/sources/", "loadgen/sessions.py",
                                                     "loadgen/tokens.py")),
    ("observer (observe/)", ("loadgen/observe/",)),
    ("summary statistics (metrics.py, summary.py, verdicts)", ("loadgen/metrics.py", "loadgen/summary.py",
                                                               "loadgen/verdicts/")),
    ("report writing (render/, plotly)", ("loadgen/render/", "/plotly/", "/_plotly_utils/")),
    ("config, manifest (pydantic)", ("pydantic", "loadgen/config.py", "loadgen/manifest.py", "/yaml/")),
    ("command line (cli/)", ("loadgen/cli/",)),
    ("imports, start-up", ("<frozen importlib", "<frozen zipimport", "/importlib/")),
    ("event loop (asyncio, uvloop)", ("/asyncio/", "uvloop", "selectors.py")),
    ("loadgen, other modules", ("loadgen/",)),
)
# Builtins (pstats file "~") known by their name; any other builtin is charged to its callers.
BUILTIN_CATEGORIES = (
    ("JSON decoding", ("orjson", "_json")),
    ("timestamps", ("perf_counter", "time_ns", "monotonic", "time.time", "unpack_from")),
    ("socket syscalls (recvmsg, send)", ("_socket.socket",)),
    ("event loop (asyncio, uvloop)", ("uvloop", "epoll", "select.")),
)
OTHER = "other (no categorized caller)"

Key = tuple[str, int, str]


def categorize(key: Key) -> str | None:
    """A function's own category; None for code charged to its callers."""
    file, _, name = key
    if file == "~":
        return next((cat for cat, parts in BUILTIN_CATEGORIES if any(p in name for p in parts)), None)
    if name == "<module>":
        return "imports, start-up"
    return next((cat for cat, parts in FILE_CATEGORIES if any(p in file for p in parts)), None)


def callers_first(stats: dict[Key, Any]) -> list[Key]:
    """Every function after its callers, recursion apart (a depth-first walk up the call edges)."""
    order: list[Key] = []
    seen: set[Key] = set()
    for start in stats:
        if start in seen:
            continue
        seen.add(start)
        stack = [(start, iter(stats[start][4]))]
        while stack:
            key, callers = stack[-1]
            caller = next((c for c in callers if c in stats and c not in seen), None)
            if caller is None:
                order.append(key)
                stack.pop()
            else:
                seen.add(caller)
                stack.append((caller, iter(stats[caller][4])))
    return order


def profile_categories(stats: dict[Key, Any], rounds: int = 50) -> dict[str, float]:
    """Seconds of own (exclusive) time per category. Uncategorized code is charged up its call edges, split
    by the time each edge carried (cProfile records a function's own time per caller), to the nearest
    categorized callers; beyond one edge the split is proportional, so the figures are estimates. Recursion
    is solved by repeating the pass until it settles; what never reaches a category stays ``other``."""
    order = callers_first(stats)
    fixed = {key: categorize(key) for key in stats}
    edges: dict[Key, list[tuple[Key, float]]] = {}
    for key in order:
        if fixed[key] is None:
            timed = [(c, e[2]) for c, e in stats[key][4].items() if c != key and c in stats and e[2] > 0]
            total = sum(w for _, w in timed)
            edges[key] = [(c, w / total) for c, w in timed]
            if not timed:
                fixed[key] = OTHER
    shares: dict[Key, dict[str, float]] = {key: {cat: 1.0} for key, cat in fixed.items() if cat is not None}
    for _ in range(rounds):
        change = 0.0
        for key, weights in edges.items():
            found: dict[str, float] = defaultdict(float)
            for caller, w in weights:
                for cat, part in shares.get(caller, {}).items():
                    found[cat] += part * w
            old = shares.get(key, {})
            change = max(change, max((abs(v - old.get(c, 0.0)) for c, v in found.items()), default=0.0))
            shares[key] = found
        if change < 1e-9:
            break
    seconds: dict[str, float] = defaultdict(float)
    for key, entry in stats.items():
        parts = shares.get(key, {})
        for cat, part in parts.items():
            seconds[cat] += part * entry[2]
        seconds[OTHER] += (1.0 - sum(parts.values())) * entry[2]
    return seconds


def short(key: Key) -> str:
    file, line, name = key
    if file == "~":
        return name
    path = Path(file)
    with contextlib.suppress(ValueError):
        return f"{path.relative_to(ROOT)}:{line}({name})"
    return f"{'/'.join(path.parts[-2:])}:{line}({name})"


def profiled(folder: Path, dataset: Path, cpus: set[int] | None, mock_cpus: set[int] | None,
             shape: tuple[int, int, int], unprofiled_us: float) -> dict[str, Any]:
    streams, requests, tokens = shape
    out, log, prof = folder / "streams-profiled", folder / "streams-profiled.log", folder / "loadgen.prof"
    with warm_mock(folder, mock_cpus) as url:
        argv = [sys.executable, "-c", PROFILE_MAIN, str(prof),
                *loadgen_run_args(url, dataset, out, streams, requests, tokens)]
        before = scrape(url)
        child = checked(run_child(argv, log, cpus), "loadgen run under cProfile", log)
        events = Books.between(before, scrape(url)).events
    stats: dict[Key, Any] = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values())
    categories = sorted(profile_categories(stats).items(), key=lambda kv: -kv[1])
    top = sorted(stats.items(), key=lambda kv: -kv[1][2])[:20]
    return {
        "profiled_cpu_s": round(child.cpu_s, 3), "profiled_main_thread_s": round(total, 3), "token_events": events,
        "profile_file": str(prof),
        "categories": {name: {"us_per_event_profiled": round(s / events * 1e6, 2), "share": round(s / total, 4),
                              "us_per_event_scaled": round(s / total * unprofiled_us, 2)}
                       for name, s in categories},
        "top_tottime": [{"function": short(key), "calls": entry[1], "tottime_s": round(entry[2], 4),
                         "us_per_event_profiled": round(entry[2] / events * 1e6, 3)} for key, entry in top],
    }


# -- the machine, the table -------------------------------------------------------------------

def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_model() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def cpu_flags() -> str:
    flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), [])
    wanted = ("avx2", "avx512f")
    return " ".join(f for f in wanted if f in flags) or "none of " + ",".join(wanted)


def verdict(value: float | None, goal: float, inclusive: bool = False) -> str:
    if value is None:
        return "not measured"
    met = value <= goal if inclusive else value < goal
    return "goal met" if met else "goal NOT met"


def print_tables(r: dict[str, Any]) -> None:
    err = sys.stderr
    s, one, rep = r["startup"], r["one_request"], r.get("report")
    rows = [("1. start-up (loadgen --help)", f"{s['wall_s']} s wall, {s['cpu_s']} s CPU", "< 0.3 s",
             verdict(s["wall_s"], GOALS["startup_wall_s"]) + " (on wall)"),
            ("2. 1-request run", f"{one['cpu_s']} s CPU, {one['wall_s']} s wall", "< 1.0 s",
             verdict(one["cpu_s"], GOALS["one_request_cpu_s"]))]
    if rep:
        rows += [(f"4. loadgen report ({rep['records']} records)", f"{rep['cpu_s']} s CPU, {rep['wall_s']} s wall",
                  "< 1 s", verdict(rep["cpu_s"], GOALS["report_cpu_s"])),
                 ("   its report.html", f"{rep['report_html_mb']} MB", "< 2 MB",
                  verdict(rep["report_html_mb"], GOALS["report_mb"]))]
    print(f"\n{'item':<34} {'measured':<28} {'goal':<8} verdict", file=err)
    for item, measured, goal, judged in rows:
        print(f"{item:<34} {measured:<28} {goal:<8} {judged}", file=err)
    streams = r["streams"]
    shape = r["shape"]
    print(f"\n3. {shape['streams']} cold streams, {shape['requests']} requests x {shape['output_tokens']} tokens "
          f"(client on CPU {r['client_cpu']}, mock on {r['mock_cpus']}):", file=err)
    head = ("client", "started", "CPU s", "wall s", "events", "us/event", "1-req CPU s", "marginal us/ev",
            "ok", "TTFT ms", "mock TTFT", "bias ms")
    print("  ".join(f"{h:>14}" if i else f"{h:<8}" for i, h in enumerate(head)), file=err)
    for name, f in streams.items():
        row = (name, f["started"], f["cpu_s"], f["wall_s"], f["token_events"], f["cpu_us_per_event"],
               f["one_request_cpu_s"], f["marginal_us_per_event"], f"{f['ok']}/{f['ok'] + f['failed']}",
               f["ttft_mean_ms"], f["mock_ttft_mean_ms"], f["ttft_bias_ms"])
        print("  ".join(f"{v:>14}" if i else f"{v:<8}" for i, v in enumerate(row)), file=err)
    ratio = r.get("ratio_loadgen_over_vllm")
    print(f"loadgen/vLLM CPU per event: {ratio} (goal <= 0.25: {verdict(ratio, GOALS['ratio'], True)}); "
          f"marginal (net of the 1-request run): {r.get('ratio_marginal')}", file=err)
    if "profile" in r:
        print_profile(r["profile"])


def print_profile(p: dict[str, Any]) -> None:
    err = sys.stderr
    print(f"\n5. profile (loadgen under cProfile, CPU clock, main thread): {p['profiled_cpu_s']} s CPU "
          f"({p['profiled_main_thread_s']} s in the profile), {p['token_events']} events", file=err)
    print(f"{'category':<54} {'us/event':>9} {'share':>7} {'scaled us/event':>16}", file=err)
    for name, c in p["categories"].items():
        print(f"{name:<54} {c['us_per_event_profiled']:>9} {c['share']:>7.1%} {c['us_per_event_scaled']:>16}",
              file=err)
    print(f"\n{'top 20 by tottime':<80} {'calls':>9} {'tottime s':>10} {'us/event':>9}", file=err)
    for t in p["top_tottime"]:
        print(f"{t['function'][:80]:<80} {t['calls']:>9} {t['tottime_s']:>10} {t['us_per_event_profiled']:>9}",
              file=err)


# -- main -------------------------------------------------------------------------------------

def write_dataset(folder: Path) -> Path:
    """64 ShareGPT-format prompts of 32 words (the mock counts words; vLLM's random prompts are 32 tokens)."""
    words = "the quick brown fox jumps over the lazy dog while the keeper watches the sea".split()
    dataset = folder / "prompts.json"
    dataset.write_text(json.dumps([{"id": str(i), "conversations": [
        {"from": "human", "value": " ".join([f"prompt {i}", *(words[j % len(words)] for j in range(30))])}]}
        for i in range(64)]))
    return dataset


def measure(args: argparse.Namespace, folder: Path, client: set[int] | None, mock: set[int] | None) -> dict:
    shape = (50, 100, 20) if args.quick else (500, 1500, 100)
    dataset = write_dataset(folder)
    results: dict[str, Any] = {"shape": dict(zip(("streams", "requests", "output_tokens"), shape, strict=True))}
    results["startup"] = startup(folder, client)
    results["one_request"] = one_request(folder, dataset, client, mock)
    clients = [c for c in args.order.split(",") if c != "vllm" or VLLM_PYTHON.exists()]
    if "vllm" in args.order and not VLLM_PYTHON.exists():
        print(f"note: {VLLM_PYTHON} missing: vLLM's client skipped", file=sys.stderr)
    streams: dict[str, dict[str, Any]] = {}
    for rep in range(args.repeat):  # interleaved; each client's run with the least CPU is kept (others listed)
        for name in clients:
            print(f"{time.strftime('%H:%M:%S')} {name}: {shape[0]} cold streams ({rep + 1}/{args.repeat}) ...",
                  file=sys.stderr)
            (folder / f"rep{rep}").mkdir(exist_ok=True)
            run = streams_run(name, folder / f"rep{rep}", dataset, client, mock, shape)
            tried = [*streams.get(name, {}).get("cpu_s_all_runs", []), run["cpu_s"]]
            if name not in streams or run["cpu_s"] < streams[name]["cpu_s"]:
                streams[name] = run
            streams[name]["cpu_s_all_runs"] = tried
    fixed = {"loadgen": results["one_request"]["cpu_s"]}
    if "vllm" in streams:
        fixed["vllm"] = vllm_one_request(folder, client, mock)
    for name, f in streams.items():
        f["one_request_cpu_s"] = fixed[name]
        f["marginal_us_per_event"] = round((f["cpu_s"] - fixed[name]) / (f["token_events"] - ONE_REQUEST_TOKENS)
                                           * 1e6, 2)
    results["streams"] = streams
    if {"loadgen", "vllm"} <= streams.keys():
        lg, vl = streams["loadgen"], streams["vllm"]
        results["ratio_loadgen_over_vllm"] = round(lg["cpu_us_per_event"] / vl["cpu_us_per_event"], 3)
        if vl["marginal_us_per_event"] > 0:
            results["ratio_marginal"] = round(lg["marginal_us_per_event"] / vl["marginal_us_per_event"], 3)
    if "loadgen" in streams:
        results["report"] = report_cost(Path(streams["loadgen"]["out"]), folder, client)
        if args.profile:
            results["profile"] = profiled(folder, dataset, client, mock, shape, streams["loadgen"]["cpu_us_per_event"])
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 streams, 100 requests, 20 tokens (seconds)")
    parser.add_argument("--order", default="loadgen,vllm", choices=["loadgen,vllm", "vllm,loadgen", "loadgen"],
                        help="which client runs first (item 3); 'loadgen' skips vLLM's")
    parser.add_argument("--profile", action="store_true", help="also run item 3's loadgen side under cProfile")
    parser.add_argument("--repeat", type=int, default=1, help="item 3 this many times, interleaved; the least CPU "
                        "of each client is reported (the cores of these machines are shared: noise is one-sided)")
    parser.add_argument("--out", type=Path, help="keep logs, run folders and the profile here (default: temporary)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: every child is stopped on the way out
    cpus = sorted(os.sched_getaffinity(0))
    client, mock = ({cpus[0]}, set(cpus[1:])) if len(cpus) > 1 else (None, None)
    if mock:
        os.sched_setaffinity(0, mock)  # this script stays off the client's core
    before = load()
    print(f"{time.strftime('%Y-%m-%d %H:%M')} {cpu_model()}; {len(cpus)} CPUs ({cpu_flags()}); "
          f"load average before: {before}", file=sys.stderr)
    if float(before.split()[0]) > 1.5:
        print("warning: load average above 1.5: the cores are busy with other work", file=sys.stderr)
    folder = args.out or Path(tempfile.mkdtemp(prefix="client-cost-"))
    folder.mkdir(parents=True, exist_ok=True)
    # Every client runs from compiled bytecode, as an installed package does (pip compiles at install): the
    # repository's own modules are compiled once into a cache outside the tree, not at every start.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    try:
        results = measure(args, folder, client, mock)
    finally:
        for pgid in list(LIVE):
            _kill_group(pgid)
        if args.out is None:
            shutil.rmtree(folder, ignore_errors=True)
    if args.out is None:  # the files are gone: no paths to them
        for figures in results["streams"].values():
            figures.pop("out", None)
        results.get("profile", {}).pop("profile_file", None)
    results = {"cpu_model": cpu_model(), "cpu_flags": cpu_flags(), "client_cpu": sorted(client or []),
               "mock_cpus": sorted(mock or []), "load_before": before, "load_after": load(), **results,
               "goals": GOALS}
    print(f"load average after: {results['load_after']}", file=sys.stderr)
    print_tables(results)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
