"""The rig inside one Locust worker process: its prompts, its share of each stage, its records.

Why one object per process and not per user: the stage, the requests granted, the record file and
the outbox to the master are the process's; users only ask it for their next request (a
``Ticket``) and hand back the record. Everything travels as Locust custom messages:

- ``rig_stage`` (master → worker): the run (profile as JSON, target, output folder, run id) and
  the step now running; the first one sets the worker up;
- ``rig_more`` / ``rig_grant``: a step with a request total hands its requests out on demand
  (``StepState``);
- ``rig_hello`` (worker → master): this process's clock, so that the master can put every
  worker's ``perf_counter_ns`` stamps on its own clock;
- ``rig_issued`` (worker → master, one per request, before its bytes are written): what is in
  flight, so that a worker that dies is reported with the requests it took with it;
- ``rig_records`` (worker → master, batched every ``FLUSH_S`` and at test stop): finished records,
  and the gevent hub's lag samples (``_watch_hub``);
- ``rig_idle`` (worker → master): this worker's part of the step is done and nothing is in flight;
- ``rig_broken`` (worker → master): this worker cannot run the profile (a file missing on its host).

Each record is also appended to this worker's own ``records.jsonl`` under
``<out>/workers/<worker index>/`` (stamps on the worker's clock, which ``clock.json`` beside it gives).
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import gevent

from loadgen.api import RunSetupError, build_prompts
from loadgen.clients import client_class
from loadgen.clients.base import HTTPStreamClient, RequestSpec
from loadgen.config import Profile, TargetConfig
from loadgen.locust.plan import Step, user_offsets
from loadgen.record import RequestRecord
from loadgen.registry import SHAPES
from loadgen.sinks.jsonl import RECORDS_FILE, JsonlSink
from loadgen.targets import client_options
from loadgen.tokens import TokenCounter

log = logging.getLogger("loadgen.locust")
FLUSH_S = 0.2
HUB_INTERVAL_S = 0.01
IDLE_POLL_S = 0.02
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def clock() -> dict[str, Any]:
    """This process's time bases. Processes with one boot id share ``perf_counter_ns`` (CLOCK_MONOTONIC)."""
    boot = BOOT_ID.read_text().strip() if BOOT_ID.exists() else ""
    return {"perf_counter_ns": perf_counter_ns(), "unix_ns": time.time_ns(), "boot_id": boot,
            "host": socket.gethostname(), "pid": os.getpid()}


@dataclass(frozen=True)
class Run:
    """What every worker of one run shares (sent in each ``rig_stage``)."""

    profile: Profile
    target: TargetConfig
    out: Path
    run_id: str
    url: str

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Run:
        profile = Profile.model_validate(data["profile"])
        target = next(t for t in profile.targets if t.name == data["target"])
        return cls(profile, target, Path(data["out"]), data["run_id"], data["url"])


@dataclass
class Ticket:
    """One request a user may send now."""

    step: Step
    index: int
    spec: RequestSpec
    intended_ns: int


class StepState:
    """This worker's part of one step: requests granted and not yet sent, deadline, pacing.

    A step with a request total is shared by pull: the worker asks the master for more requests
    (``rig_more``) before its grant runs out, in chunks of twice its users, and the master grants
    what is left (``rig_grant``; 0 once the total is given out). So a worker without users takes
    none, a fast worker takes more, and the total is exact."""

    def __init__(self, step: Step, ask: Callable[[int], None], users: Callable[[], int]) -> None:
        self.step = step
        self.left: int | None = 0 if step.requests is not None else None
        self.ask_master = ask
        self.users = users
        self.asked = False
        self.exhausted = False  # the master has nothing more to grant
        self.origin_ns = perf_counter_ns()
        self.deadline_ns = self.origin_ns + int(step.duration_s * 1e9) if step.duration_s else None
        self.closed = False  # the master ended the step
        self.shape = SHAPES.get(step.open_loop["type"]).model_validate(step.open_loop) if step.open_loop else None

    def take(self, now_ns: int) -> bool:
        if self.closed or (self.deadline_ns is not None and now_ns >= self.deadline_ns):
            return False
        if self.left is None:
            return True
        if self.left < max(1, self.users()) and not self.asked and not self.exhausted:
            self.asked = True
            self.ask_master(2 * max(1, self.users()))
        if self.left == 0:
            return False
        self.left -= 1
        return True

    def granted(self, n: int) -> None:
        self.asked = False
        if self.left is not None:
            self.left += n
        if n == 0:
            self.exhausted = True

    def done(self, now_ns: int) -> bool:
        if self.closed or (self.deadline_ns is not None and now_ns >= self.deadline_ns):
            return True
        return self.left == 0 and self.exhausted


class RigWorker:
    """The worker side; ``send`` is the runner's ``send_message`` (to the master, or local)."""

    def __init__(self, send: Callable[[str, Any], None], worker_index: Callable[[], int],
                 users: Callable[[], int]) -> None:
        self.send = send
        self.worker_index = worker_index
        self.users = users
        self.run: Run | None = None
        self.client: HTTPStreamClient | None = None
        self.specs: list[RequestSpec] = []
        self.counter: TokenCounter | None = None
        self.state: StepState | None = None
        self.issued = 0
        self.in_flight = 0
        self._outbox: list[str] = []
        self._idle_sent: set[int] = set()
        self._sink: JsonlSink | None = None
        self._flusher: gevent.Greenlet | None = None
        self._monitor: gevent.Greenlet | None = None
        self._lags: list[list[int]] = []
        self._salt_base = 0

    # -- messages from the master ------------------------------------------------------------
    def on_stage(self, data: dict[str, Any]) -> None:
        if self.run is None or self.run.run_id != data["run"]["run_id"]:
            try:
                self._set_up(Run.from_message(data["run"]))
            except (RunSetupError, OSError, ValueError) as exc:  # this host lacks a dataset, a tokenizer, ...
                self.run = None
                log.error("loadgen.locust: this worker cannot run the profile: %s", exc)
                self.send("rig_broken", {"error": str(exc)[:500]})
                return
        step = Step(**data["step"])
        if self.state is None or self.state.step.index != step.index:
            self.state = StepState(step, self._ask, self.users)
        self._maybe_idle()

    def on_grant(self, data: dict[str, Any]) -> None:
        if self.state is not None and self.state.step.index == data["stage"]:
            self.state.granted(data["n"])
            if data["n"]:
                self._idle_sent.discard(data["stage"])
            self._maybe_idle()

    def _ask(self, n: int) -> None:
        assert self.state is not None
        self.send("rig_more", {"stage": self.state.step.index, "n": n})

    def _set_up(self, run: Run) -> None:
        self.close()
        self.run = run
        self.client = client_class(run.target.kind)(run.url, client_options(run.profile, run.target))  # type: ignore[assignment]
        self.specs, self.counter, _ = build_prompts(run.profile)
        self.issued = self.in_flight = 0
        self._idle_sent.clear()
        self._salt_base = int(run.run_id, 16) if run.run_id else 0
        folder = run.out / "workers" / str(max(self.worker_index(), 0))
        self._sink = JsonlSink(folder / RECORDS_FILE)
        (folder / "clock.json").write_text(json.dumps(clock()) + "\n")
        self.send("rig_hello", {**clock(), "index": max(self.worker_index(), 0)})
        self._flusher = gevent.spawn(self._flush_forever)
        self._monitor = gevent.spawn(self._watch_hub)

    def close(self) -> None:
        self.flush()
        for greenlet in (self._flusher, self._monitor):
            if greenlet is not None:
                greenlet.kill(block=False)
        self._flusher = self._monitor = None
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    # -- users ---------------------------------------------------------------------------------
    def next_ticket(self) -> Ticket | None:
        """The next request of a closed-loop user (now), or None when the step has none left for it."""
        state = self.state
        if state is None or self.run is None:
            return None
        now = perf_counter_ns()
        if not state.take(now):
            self._maybe_idle()
            return None
        return self._ticket(state, now)

    def paced_ticket(self, pacing: Iterator[float], state: StepState) -> Ticket | None:
        """An open-loop user's next request, at its due time (sleeping until then); None when the
        step's duration or requests are spent."""
        offset = next(pacing)
        due = state.origin_ns + int(offset * 1e9)
        if state.deadline_ns is not None and due >= state.deadline_ns:
            return None
        wait_ns = due - perf_counter_ns()
        if wait_ns > 0:
            gevent.sleep(wait_ns / 1e9)
        if state is not self.state or not state.take(min(due, perf_counter_ns())):
            return None
        return self._ticket(state, due)

    def pacing_for(self, state: StepState) -> Iterator[float] | None:
        """A new user's due times for an open-loop step (None for a closed loop)."""
        if state.shape is None:
            return None
        return user_offsets(state.shape, state.step.users, random.Random())  # type: ignore[arg-type]

    def _ticket(self, state: StepState, intended_ns: int) -> Ticket:
        n = self.issued
        self.issued += 1
        me = max(self.worker_index(), 0)
        index = (n << 8) | (me & 0xFF)  # unique across up to 256 workers; renumbered by the master
        spec = self.specs[(n + me * 7919) % len(self.specs)]
        if spec.salt_words:
            spec = spec.salted(self._salt_base + index)
        self.in_flight += 1
        step = state.step
        self.send("rig_issued", {"index": index, "stage": step.index, "stage_name": step.name, "warmup": step.warmup,
                                 "intended_ns": intended_ns, "prompt_id": spec.prompt_id,
                                 "max_tokens": spec.max_tokens})
        return Ticket(step, index, spec, intended_ns)

    def finished(self, record: RequestRecord) -> None:
        self.in_flight -= 1
        line = record.model_dump_json()
        if self._sink is not None:
            self._sink(record)
        self._outbox.append(line)
        self._maybe_idle()

    def wait_for_work(self) -> None:
        gevent.sleep(IDLE_POLL_S)

    # -- to the master -------------------------------------------------------------------------
    def _maybe_idle(self) -> None:
        state = self.state
        if state is None or self.in_flight or state.step.index in self._idle_sent:
            return
        if state.done(perf_counter_ns()):
            self.flush()
            self._idle_sent.add(state.step.index)
            self.send("rig_idle", {"stage": state.step.index})

    def flush(self) -> None:
        if self._outbox or self._lags:
            batch, self._outbox = self._outbox, []
            lags, self._lags = self._lags, []
            self.send("rig_records", {"records": batch, "lags": lags})

    def _watch_hub(self) -> None:
        """The gevent hub's lag, the asyncio loop lag's counterpart (``loop_lag_ms``): every
        ``HUB_INTERVAL_S``, how long a greenlet that yields waits before it runs again."""
        while True:
            gevent.sleep(HUB_INTERVAL_S)
            scheduled = perf_counter_ns()
            gevent.sleep(0)
            self._lags.append([scheduled, perf_counter_ns() - scheduled])

    def _flush_forever(self) -> None:
        while True:
            gevent.sleep(FLUSH_S)
            self.flush()
            self._maybe_idle()  # a duration-limited step ends by the clock, not by a request
