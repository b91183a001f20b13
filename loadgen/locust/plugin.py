"""Wiring into Locust: the ``--rig-*`` options, the master and worker objects, messages, the shape.

Importing this module (``import loadgen.locust`` does) registers the listeners; a locustfile then
needs only a user class (``RigUser``, or one of the per-kind classes) and ``ProfileShape``.

Roles: a ``--master`` gets a ``RigMaster``, a ``--worker`` a ``RigWorker``, a single process
(no --master/--worker) both, talking through Locust's local message emulation, so every mode runs
the same code.
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import locust  # noqa: F401  (first: it monkey-patches the standard library for gevent)
from locust import LoadTestShape, events
from locust.env import Environment
from locust.runners import STATE_MISSING, LocalRunner, MasterRunner, WorkerRunner

from loadgen.api import (
    Hooks,
    RunSetupError,
    start_exporter,  # the one policy for ports
)
from loadgen.config import load_profile
from loadgen.exporter import LiveMetrics
from loadgen.locust.master import RigMaster, Settings, check
from loadgen.locust.plan import PlanError
from loadgen.locust.users import RequestFailed
from loadgen.locust.worker import RigWorker, clock

log = logging.getLogger("loadgen.locust")


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any) -> None:
    parser.add_argument("--rig-profile", type=str, env_var="LOCUST_RIG_PROFILE", default="",
                        help="the loadgen profile (YAML) whose prompts, stages and request settings the run uses")
    parser.add_argument("--rig-target", type=str, env_var="LOCUST_RIG_TARGET", default="",
                        help="the profile's target to load (default: its first)")
    parser.add_argument("--rig-out", type=str, env_var="LOCUST_RIG_OUT", default="",
                        help="the run's output folder, strftime fields expanded (default: the profile's out, "
                             "else results/locust-<time>)")
    parser.add_argument("--rig-users", type=int, env_var="LOCUST_RIG_USERS", default=0,
                        help="users that pace an open-loop (rate, ramp) stage (default: max_in_flight, else 32)")


class SetupError(ValueError):
    """The run cannot start as asked (no or a bad profile, an unknown target, a stage Locust cannot run)."""


def settings_from(environment: Environment, runs: int) -> Settings:
    """The run's settings from the parsed options (the command line, or the web UI's form)."""
    options = environment.parsed_options
    if not options or not options.rig_profile:
        raise SetupError("give the loadgen profile with --rig-profile PATH (or LOCUST_RIG_PROFILE)")
    try:
        profile = load_profile(Path(options.rig_profile), [])
    except (OSError, ValueError) as exc:  # a missing file, bad YAML, a profile that does not validate
        raise SetupError(f"--rig-profile {options.rig_profile}: {exc}") from exc
    names = [t.name for t in profile.targets]
    if options.rig_target and options.rig_target not in names:
        raise SetupError(f"--rig-target {options.rig_target!r} is not one of the profile's targets {names}")
    target = next(t for t in profile.targets if t.name == (options.rig_target or names[0]))
    # strftime fields in --rig-out (``/results/locust-%Y%m%d-%H%M%S``) give every run its own folder
    out = Path(time.strftime(options.rig_out)) if options.rig_out else None
    out = out or profile.out or Path("results") / time.strftime("locust-%Y%m%d-%H%M%S")
    if runs:  # the web UI can start several runs in one master: each gets its own folder
        out = out.with_name(f"{out.name}-{runs + 1}")
    url = environment.host or target.url
    return Settings(profile, target, out, secrets.token_hex(8), url, options.rig_users or None, tuple(sys.argv))


class _Rig:
    """Per-process state of the plugin: the master (per run), the worker, the exporter."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.master: RigMaster | None = None
        self.runs = 0
        self.live: LiveMetrics | None = None

    def start_master(self) -> RigMaster:
        """The run's master, made on the first tick of a test (the options are final by then)."""
        if self.master is None or self.master.written:
            runner = self.environment.runner
            settings = settings_from(self.environment, self.runs)
            self.runs += 1
            self.live = self.live or _exporter(settings)
            self.master = RigMaster(settings, runner.send_message, lambda: _workers(runner),
                                    lambda worker: _missing(runner, worker), self._fail, self.live)
            self.master.boot_id = clock()["boot_id"]
        return self.master

    def _fail(self, name: str, detail: str) -> None:
        self.environment.events.request.fire(request_type="E2E", name=name, response_time=0, response_length=0,
                                             exception=RequestFailed(detail), context={})


def _workers(runner: Any) -> list[str]:
    return [c.id for c in runner.clients.all] if isinstance(runner, MasterRunner) else ["local"]


def _missing(runner: Any, worker: str) -> bool:
    if not isinstance(runner, MasterRunner):
        return False
    node = runner.clients.get(worker)
    return node is not None and node.state == STATE_MISSING


def _exporter(settings: Settings) -> LiveMetrics | None:
    """The live exporter on the master (``loadgen_*`` series), served as ``loadgen run`` serves it: the
    profile's ``metrics`` host and port, a free port when the default one is taken."""
    if not settings.profile.metrics.enabled:
        return None
    return start_exporter(settings.profile, Hooks(notify=log.info))


@events.init.add_listener
def on_init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if runner is None:
        return
    rig = _Rig(environment)
    environment.rig = rig  # type: ignore[attr-defined]
    if isinstance(runner, MasterRunner | LocalRunner):
        _check_early(environment)

        def handler(method: str) -> Any:
            return lambda environment, msg, **_: getattr(rig.master, method)(msg.node_id, msg.data)

        for kind, method in (("rig_hello", "on_hello"), ("rig_issued", "on_issued"), ("rig_records", "on_records"),
                             ("rig_more", "on_more"), ("rig_idle", "on_idle"), ("rig_broken", "on_broken")):
            runner.register_message(kind, handler(method))

        @environment.events.test_stop.add_listener
        def on_test_stop(**_: Any) -> None:
            if rig.master is not None and not rig.master.written:
                if isinstance(runner, LocalRunner):
                    environment.rig_worker.flush()  # type: ignore[attr-defined]
                rig.master.finished = True
                rig.master.finish()
    if isinstance(runner, WorkerRunner | LocalRunner):
        index = (lambda: runner.worker_index) if isinstance(runner, WorkerRunner) else (lambda: 0)
        worker = RigWorker(runner.send_message, index, lambda: runner.user_count)
        environment.rig_worker = worker  # type: ignore[attr-defined]
        runner.register_message("rig_stage", lambda environment, msg, **_: worker.on_stage(msg.data))
        runner.register_message("rig_grant", lambda environment, msg, **_: worker.on_grant(msg.data))
        if isinstance(runner, WorkerRunner):
            environment.events.test_stop.add_listener(lambda **_: worker.flush())


def _check_early(environment: Environment) -> None:
    """Before Locust starts: the profile, target and stages given on the command line must make a run
    (the web UI may still give them later); else one line on stderr and exit code 2."""
    options = environment.parsed_options
    if options is None or (not options.rig_profile and not options.headless):
        return
    try:
        settings = settings_from(environment, 0)
        check(settings)
    except (SetupError, PlanError) as exc:
        sys.stderr.write(f"loadgen.locust: {exc}\n")
        raise SystemExit(2) from exc


class ProfileShape(LoadTestShape):
    """The profile's stages (``loadgen.locust.plan``) as Locust's load shape, run on the master. A run that
    cannot start (a bad profile given in the web UI, prompts that cannot be built) ends with one error line
    and exit code 2, as ``loadgen run`` does."""

    abstract = True

    def tick(self) -> tuple[int, float] | None:
        environment = self.runner.environment  # type: ignore[union-attr]
        try:
            return environment.rig.start_master().tick()  # type: ignore[no-any-return]
        except (SetupError, PlanError, RunSetupError, httpx.HTTPError) as exc:  # httpx: a /tokenize count
            log.error("loadgen.locust: the run cannot start: %s", exc)
            environment.process_exit_code = 2
            return None
