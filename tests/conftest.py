"""Shared fixtures: the real small model and real server processes (never mocks); the test tiers.

Tiers: every test is marked by what it needs (``TIERS``, described in pyproject.toml), from its folder
and the fixtures it uses. ``make test-fast`` (``RIG_TEST_TIER=fast``, deselecting every tier) runs what a fresh
clone can run after ``make setup`` alone, in under a minute; ``make test`` runs everything. A prerequisite a
test cannot find fails it under ``make test`` (a missing install in CI must be noticed) and skips it, with
its reason, under ``make test-fast`` (``tests.prerequisites.unavailable``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.prerequisites import unavailable

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = Path(os.environ.get("RIG_MODEL_DIR", ROOT / "models" / "smollm2-135m-instruct"))


TIERS = ("model", "engines", "docker", "binary", "slow")  # registered, with their meaning, in pyproject.toml
# Folders whose every test needs the same thing; fixtures whose users do.
FOLDER_TIERS = {"engines": ("engines", "model"), "compose": ("docker",),
                "integration": ("slow",)}  # real servers (the baseline, the mock) under real load: seconds each
FIXTURE_TIERS = {"model_dir": "model", "tokenizer": "model", "tiny_model_dir": "model"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.relative_to(ROOT / "tests").parts[0]
        needs = set(FOLDER_TIERS.get(folder, ()))
        needs |= {tier for fixture, tier in FIXTURE_TIERS.items() if fixture in item.fixturenames}
        for tier in sorted(needs):
            item.add_marker(tier)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    if not (MODEL_DIR / "config.json").exists():
        unavailable(f"the real model ({MODEL_DIR})", "run `make model` (make test does it)")
    return MODEL_DIR


@pytest.fixture(scope="session")
def tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("logs")
