"""The smallest CPU-stack study: ``loadgen study seed-a`` (the shipped file, its targets found through the
stack's state file) on the REAL engines, cut to the naive baseline and vLLM, one prompt against a batch
of 4, 8 output tokens, one repetition — a minute on 2 cores.

Expected, as in seed (a): a naive server's throughput does not grow with the batch (it serves one request
at a time), vLLM's does, so vLLM's speedup over it is larger at batch 4 than for a single prompt."""

from __future__ import annotations

from pathlib import Path

from loadgen.answers.study import StudyResult
from loadgen.cli import main
from stack.local import StackState


def test_seed_a_in_small_runs_on_the_stack_and_shows_the_batching_gain(stack: StackState, model_dir: Path,
                                                                        tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(stack.model_dump_json())
    out = tmp_path / "study"
    code = main(["study", "seed-a", "--stack", str(state), "--out", str(out), "--no-png",
                 "--set", "study.repetitions=1", "--set", "study.axes.concurrency=[1, 4]",
                 "--set", "study.axes.targets=[hf, vllm]", "--set", "prompts.output_tokens=8",
                 "--set", f"prompts.tokenizer={model_dir}"])
    assert code == 0
    result = StudyResult.model_validate_json((out / "study.json").read_text())
    assert {(c.key, c.target) for c in result.cells} == {(k, t) for k in ("c1-n1", "c4-n4") for t in ("hf", "vllm")}
    for cell in result.cells:  # one repetition; a batch of N is N requests sent at once
        (rep,) = cell.reps
        assert (rep.ok, rep.failed) == (cell.values["concurrency"], 0)
    speedup = {s.values["concurrency"]: s.speedup for s in result.speedups}
    print(f"vLLM over the naive baseline, output tokens/s: {speedup}")
    assert speedup[4.0] is not None and speedup[1.0] is not None
    assert speedup[4.0] > 1.5 * speedup[1.0], speedup
    rows = {(r["target"], r["batch"]): r for r in result.table_a}
    assert set(rows) == {("hf", 1.0), ("hf", 4.0), ("vllm", 1.0), ("vllm", 4.0)}
    assert all(r["tokens_per_s"] and r["mean_latency_ms"] for r in rows.values())
    assert (out / "study.html").exists() and (out / "study.csv").exists()

