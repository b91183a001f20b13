"""The server's side of a run: engine resources, engine metrics per stage, where TTFT goes.

- ``prom``: the Prometheus text an engine serves on ``/metrics``, read for the few series we use.
- ``server_metrics``: one set of names across the baseline (``hf:``), vLLM (``vllm:``) and
  Triton/TensorRT-LLM (``nv_``), the samples file ``server_metrics.jsonl`` and the ``server`` block.
- ``resources``: one sampler per source (process tree, NVML, the engine's own gauges, DCGM), the
  samples file ``resources.jsonl`` and the ``resources`` block.
- ``sampler``: the background thread that samples the active target every second and at every
  stage's start and end, off the measuring event loop.
- ``ttft_breakdown``: client stamps and server means combined per stage.

Nothing here runs on the event loop that sends requests: the only call the loop makes is the
stage-boundary mark, between stages, when nothing is in flight.

May import: ``metrics`` and ``record``; ``summary``, ``render`` and ``api`` read it, never the other way.
"""
