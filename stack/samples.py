"""The small workload sample files under ``loadgen/datasets/``, made by the project itself.

Why generated and committed: runs must never download anything, and the trace formats are
other projects' (Mooncake, the Azure LLM inference trace, BurstGPT), whose data we do not
copy. These files follow each format's columns with traffic drawn from a fixed seed —
Poisson arrivals, shared system-prompt blocks in the Mooncake file, one over-long and one
empty row to show the context rule — and the conversations are written here. A unit test
checks that the committed files are exactly what this module writes.

Usage::

    python -m stack.samples [--out loadgen/datasets]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "loadgen" / "datasets"
SEED = 14


def arrivals(rng: random.Random, n: int, rate: float) -> list[float]:
    """Poisson arrival times (s), first at 0."""
    t, times = 0.0, []
    for _ in range(n):
        times.append(t)
        t += rng.expovariate(rate)
    return times


def mooncake() -> str:
    """48 requests over ~24 s; 3 'system prompts' of 2 blocks each shared by most requests, then
    blocks of their own (hash ids count up, as in the published trace)."""
    rng = random.Random(SEED)
    next_id = 6  # 0-5: the shared prefixes' blocks
    lines = []
    for t in arrivals(rng, 48, 2.0):
        blocks = rng.randint(2, 3)
        shared = [2 * rng.randrange(3), 0] if rng.random() < 0.75 else []
        if shared:
            shared[1] = shared[0] + 1
        own = list(range(next_id, next_id + blocks - len(shared)))
        next_id += len(own)
        length = (blocks - 1) * 512 + rng.randint(64, 512)
        lines.append(json.dumps({"timestamp": int(t * 1000), "input_length": length,
                                 "output_length": rng.randint(16, 64), "hash_ids": shared + own}))
    return "\n".join(lines) + "\n"


def azure() -> str:
    """40 requests over ~20 s in the Azure trace's columns; one longer than a 2048-token context."""
    rng = random.Random(SEED + 1)
    start = datetime(2026, 11, 16, 18, 15, 46)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["TIMESTAMP", "ContextTokens", "GeneratedTokens"])
    for i, t in enumerate(arrivals(rng, 40, 2.0)):
        moment = start + timedelta(seconds=t)
        stamp = moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond:06d}0"
        context = 3000 if i == 7 else rng.randint(40, 1200)
        writer.writerow([stamp, context, rng.randint(8, 128)])
    return out.getvalue()


def burstgpt() -> str:
    """40 requests over ~20 s in BurstGPT's columns; one failed (0 response tokens) as in the trace."""
    rng = random.Random(SEED + 2)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type"])
    for i, t in enumerate(arrivals(rng, 40, 2.0)):
        request, response = rng.randint(20, 900), 0 if i == 11 else rng.randint(8, 200)
        writer.writerow([round(t, 3), rng.choice(["ChatGPT", "GPT-4"]), request, response, request + response,
                         rng.choice(["Conversation log", "API log"])])
    return out.getvalue()


TOPICS = ("the sea", "bread", "volcanoes", "the moon", "bees", "rivers", "glass", "trains", "clouds", "coffee",
          "maps", "chess")
FOLLOW_UPS = ("Why does that happen?", "Can you give me an example?", "How would you explain it to a child?",
              "What is a common mistake people make about it?", "Summarize that in one sentence.")


def conversations() -> str:
    """12 ShareGPT-format conversations of 2-4 user turns (the answers are placeholders: a run
    carries the server's own answers instead)."""
    rng = random.Random(SEED + 3)
    items = []
    for i, topic in enumerate(TOPICS):
        turns = [{"from": "human", "value": f"Tell me something interesting about {topic}."}]
        for question in rng.sample(FOLLOW_UPS, rng.randint(1, 3)):
            turns += [{"from": "gpt", "value": "(answer)"}, {"from": "human", "value": question}]
        items.append({"id": f"sample-{i}", "conversations": turns})
    return json.dumps(items, indent=1) + "\n"


SAMPLES = {"mooncake-sample.jsonl": mooncake, "azure-sample.csv": azure, "burstgpt-sample.csv": burstgpt,
           "conversations-sample.json": conversations}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.samples", description=__doc__)
    parser.add_argument("--out", type=Path, default=DATASETS)
    args = parser.parse_args(argv)
    for name, make in SAMPLES.items():
        (args.out / name).write_text(make())
        print(args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
