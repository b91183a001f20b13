"""Locust users that send the rig's requests: one class per streaming wire API, and ``RigUser``.

A user asks its process's ``RigWorker`` for a ticket (the stage's next request, at its due time),
sends it with the rig's client for the target's kind (request body, SSE events, token accounting
and error classes are that client's code, ``loadgen.clients``), freezes the rig's record
(``loadgen.runner.freeze``) and fires Locust request events so that Locust's UI, charts and CSVs
show the rig's metrics, each from its one definition in ``loadgen.metrics``:

- request_type ``TTFT``, ``TPOT``, ``E2E``: one event per successful request, in ms;
- request_type ``ITL``: one event per gap between token-carrying chunks (as ``itl_ms``);
- a failed request: one ``E2E`` event with the error class and detail as its exception.

The event ``name`` is the target's name; ``response_length`` is the request's output tokens on
``E2E`` (0 elsewhere).
"""

from __future__ import annotations

from time import perf_counter_ns
from typing import Any, ClassVar

from gevent import GreenletExit
from locust import User, constant, task
from locust.env import Environment

from loadgen import metrics as m
from loadgen.clients.base import FAILURES, fail_with
from loadgen.clients.endpoint import parse_url
from loadgen.clients.http import post_request
from loadgen.clients.tls import tls_context
from loadgen.locust.transport import Connection
from loadgen.locust.worker import RigWorker, StepState, Ticket
from loadgen.record import Attempt, RequestRecord
from loadgen.runner import freeze

EVENT_METRICS = tuple(d for d in m.DISTRIBUTIONS if d.name in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"))


class RequestFailed(Exception):
    """A failed request as Locust's failures table shows it: ``<error class>: <detail>``."""


def fire_events(environment: Environment, record: RequestRecord) -> None:
    fire = environment.events.request.fire
    if not record.ok:
        fire(request_type="E2E", name=record.target, response_time=m.e2e_ms(record), response_length=0,
             exception=RequestFailed(f"{record.error}: {record.error_detail}"), context={})
        return
    for d in EVENT_METRICS:
        assert d.samples is not None
        length = record.output_tokens or 0 if d.name == "e2e_ms" else 0
        for value in d.samples(record):
            fire(request_type=d.title, name=record.target, response_time=value, response_length=length,
                 exception=None, context={})


def rig_worker(environment: Environment) -> RigWorker:
    worker = getattr(environment, "rig_worker", None)
    if worker is None:
        raise RuntimeError("the rig's Locust plugin is not set up: import loadgen.locust in the locustfile")
    return worker  # type: ignore[no-any-return]


class LLMUser(User):
    """Sends the run's requests to its target, one at a time. ``kind``: the wire API this class speaks
    (None: whatever the profile's target says)."""

    abstract = True
    kind: ClassVar[str | None] = None
    wait_time = constant(0)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.rig = rig_worker(environment)
        self.connection: Connection | None = None
        self._rig_state: StepState | None = None
        self._pacing: Any = None

    def _connect(self) -> Connection:
        run = self.rig.run
        assert run is not None
        if self.kind is not None and self.kind != run.target.kind:
            raise ValueError(f"{type(self).__name__} speaks {self.kind}, but target {run.target.name} is "
                             f"{run.target.kind}: use RigUser, or the user class of that kind")
        endpoint = parse_url(run.url, {"http": 80, "https": 443})
        options = self.rig.client.options  # type: ignore[union-attr]
        tls = tls_context(options.ca_cert, options.insecure) if endpoint.tls else None
        headers = "".join(f"{name}: {value}\r\n" for name, value in options.headers)
        return Connection(endpoint, headers, tls, options.timeout_s)

    @task
    def generate(self) -> None:
        ticket = self._next()
        if ticket is None:
            self.rig.wait_for_work()
            return
        self.send(ticket)

    def _next(self) -> Ticket | None:
        state = self.rig.state
        if state is None or self.rig.run is None:
            return None
        if state is not self._rig_state:  # a new step: a new pacing for an open loop
            self._rig_state, self._pacing = state, self.rig.pacing_for(state)
            if self.connection is None and state.shape is None:  # a closed loop's connection, opened ahead
                self.connection = self._connect()
                self.connection.preconnect()
        if self._pacing is None:
            return self.rig.next_ticket()
        return self.rig.paced_ticket(self._pacing, state)

    def send(self, ticket: Ticket) -> None:
        """One request through the rig's client; its record goes to the worker and to Locust's stats."""
        rig, client, run = self.rig, self.rig.client, self.rig.run
        assert client is not None and run is not None
        if self.connection is None:
            self.connection = self._connect()
        attempt = Attempt(intended_ns=ticket.intended_ns)
        keep_text = run.profile.agreement is not None
        if rig.counter is not None or keep_text:
            attempt.text_parts = []
        reader = client.responder(attempt)
        endpoint = self.connection.endpoint
        request = post_request(endpoint.authority, f"{endpoint.prefix}{client.url_path}",
                               client.request_body(ticket.spec), self.connection.headers)
        try:
            self.connection.exchange(request, reader, attempt, client.options.timeout_s,
                                     client.options.stall_timeout_s)
            client.conclude(attempt, reader)
        except FAILURES as exc:
            fail_with(attempt, exc)
        except GreenletExit:
            attempt.fail("cancelled", "the run stopped before the response ended")
            raise
        finally:
            if not attempt.end_ns or attempt.error is not None:
                attempt.end_ns = perf_counter_ns()
            step = ticket.step
            record = freeze(attempt, ticket.spec, target=run.target.name, kind=run.target.kind, index=ticket.index,
                            stage=step.index, stage_name=step.name, warmup=step.warmup, counter=rig.counter,
                            keep_text=keep_text)
            rig.finished(record)
            fire_events(self.environment, record)

    def on_stop(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class OpenAIChatUser(LLMUser):
    """``openai-chat``: ``/v1/chat/completions``, streamed."""

    abstract = True
    kind = "openai-chat"


class OpenAICompletionsUser(LLMUser):
    """``openai-completions``: ``/v1/completions``, streamed."""

    abstract = True
    kind = "openai-completions"


class TritonGenerateUser(LLMUser):
    """``triton-generate``: Triton's ``/v2/models/M/generate_stream``."""

    abstract = True
    kind = "triton-generate"
