"""Triton python-backend model: the baseline's generation loop behind TensorRT-LLM's interface.

Why this exists: on machines without a GPU the rig still runs the real ``tritonserver``, so
the loadgen's ``triton-generate`` and ``triton-grpc`` clients meet Triton's real protocol
(decoupled streams, final flags, errors inside the stream, cancellation) exactly as they
would in front of TensorRT-LLM. The model answers with the same code the baseline uses
(``servers.hf.runner`` and ``servers.hf.sequence``), so its greedy text is the baseline's.

Scheduling: like the baseline's naive scheduler, one sequence at a time in arrival order.
``execute`` only queues the requests and returns (decoupled models may answer later, from
another thread); one generation thread streams each answer. A request whose client went
away is noticed between two decode steps (``is_cancelled``) and stops at once; one that
was cancelled while queued is dropped when its turn comes, without a forward pass.

Environment (set by ``engines/triton/launch.py``): ``RIG_MODEL_DIR`` (required),
``RIG_DEVICE`` (cpu), ``RIG_DTYPE`` (float32 on CPU); the repository root on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from servers.hf.runner import ModelRunner
from servers.hf.sequence import SamplingParams, Sequence

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class BadRequest(ValueError):
    pass


@dataclass
class Job:
    sender: Any
    prompt: str
    params: SamplingParams
    stream: bool
    echo: bool


def _scalar(request: Any, name: str, default: Any = None) -> Any:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1:
        raise BadRequest(f"input {name!r} must hold exactly one element, got {values.size}")
    value = values[0]
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value.item()


def _text_response(text: str) -> Any:
    array = np.array([[text.encode("utf-8")]], dtype=np.object_)
    return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("text_output", array)])


def _error_response(message: str) -> Any:
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        if not pb_utils.using_decoupled_model_transaction_policy(config):
            raise pb_utils.TritonModelException("this model streams: set model_transaction_policy.decoupled")
        model_dir = os.environ.get("RIG_MODEL_DIR")
        if not model_dir:
            raise pb_utils.TritonModelException("RIG_MODEL_DIR is not set (the local HF model folder to serve)")
        self.runner = ModelRunner(model_dir, device=os.environ.get("RIG_DEVICE", "cpu"),
                                  dtype=os.environ.get("RIG_DTYPE") or None)
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.worker = threading.Thread(target=self._work, name="generate", daemon=True)
        self.worker.start()

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            sender = request.get_response_sender()
            try:
                self.jobs.put(self._job(request, sender))
            except BadRequest as exc:
                sender.send(_error_response(str(exc)), flags=FINAL)
        return None

    def _job(self, request: Any, sender: Any) -> Job:
        # Triton itself rejects a request only when its NUMBER of inputs is out of range: a request
        # that leaves out a required input but sends optional ones reaches us, so check here.
        prompt, max_tokens = _scalar(request, "text_input"), _scalar(request, "max_tokens")
        for name, value in (("text_input", prompt), ("max_tokens", max_tokens)):
            if value is None:
                raise BadRequest(f"missing required input {name!r}")
        max_tokens = int(max_tokens)
        if max_tokens < 1:
            raise BadRequest(f"max_tokens must be at least 1, got {max_tokens}")
        temperature = float(_scalar(request, "temperature", 1.0))
        top_p = float(_scalar(request, "top_p", 1.0))
        min_tokens = int(_scalar(request, "min_tokens", 0))
        if temperature < 0 or not np.isfinite(temperature):
            raise BadRequest(f"temperature must be a finite number >= 0, got {temperature}")
        if not 0 < top_p <= 1:
            raise BadRequest(f"top_p must be in (0, 1], got {top_p}")
        if not 0 <= min_tokens <= max_tokens:
            raise BadRequest(f"min_tokens must be in [0, max_tokens={max_tokens}], got {min_tokens}")
        seed = _scalar(request, "seed")
        params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                seed=None if seed is None else int(seed), min_tokens=min_tokens)
        return Job(sender=sender, prompt=prompt, params=params, stream=bool(_scalar(request, "stream", False)),
                   echo=not bool(_scalar(request, "exclude_input_in_output", False)))

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                self._generate(job)
            except Exception as exc:  # a model fault fails this request, never the server
                job.sender.send(_error_response(f"{type(exc).__name__}: {exc}"), flags=FINAL)

    def _generate(self, job: Job) -> None:
        if job.sender.is_cancelled():
            job.sender.send(flags=FINAL)
            return
        prompt_ids = self.runner.encode(job.prompt)
        room = self.runner.max_model_len - len(prompt_ids)
        if job.params.max_tokens > room:
            job.sender.send(_error_response(
                f"prompt ({len(prompt_ids)} tokens) + max_tokens ({job.params.max_tokens}) exceeds the model's "
                f"context of {self.runner.max_model_len} tokens"), flags=FINAL)
            return
        seq = Sequence(request_id=uuid.uuid4().hex, prompt_ids=prompt_ids, params=job.params,
                       tokenizer=self.runner.tokenizer, eos_ids=self.runner.eos_ids)
        generator = self.runner.generator(job.params.seed)
        logits, cache = self.runner.prefill(prompt_ids)
        prefix = job.prompt if job.echo else ""
        while True:
            token = self.runner.sample(logits, job.params, generator, seq.suppressed_token_ids())
            event = seq.append(token, time.perf_counter())
            if job.stream:
                job.sender.send(_text_response(prefix + event.text), flags=FINAL if seq.is_finished else 0)
                prefix = ""
            if seq.is_finished:
                if not job.stream:
                    job.sender.send(_text_response(prefix + seq.text), flags=FINAL)
                return
            if job.sender.is_cancelled():
                job.sender.send(flags=FINAL)
                return
            logits = self.runner.decode(token, cache)

    def finalize(self) -> None:
        self.jobs.put(None)
        self.worker.join(timeout=10)
