"""The committed Grafana JSON is exactly what grafana/dashboards.py generates, and is well-formed."""

from __future__ import annotations

import json

import yaml

from grafana.dashboards import DASHBOARDS, OUT, all_queries, render


def test_committed_json_equals_the_code() -> None:
    for spec in DASHBOARDS:
        path = OUT / f"{spec.uid}.json"
        assert path.exists(), f"{path} missing: run python -m grafana.dashboards"
        assert path.read_text() == render(spec), f"{path} is stale: run python -m grafana.dashboards"
    assert {p.stem for p in OUT.glob("*.json")} == {d.uid for d in DASHBOARDS}  # no orphans


def test_every_panel_uses_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load((OUT.parent / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    for spec in DASHBOARDS:
        board = json.loads((OUT / f"{spec.uid}.json").read_text())
        panels = [p for p in board["panels"] if p["type"] != "row"]
        assert panels and all(p["datasource"]["uid"] == uid for p in panels)
        assert all(t["datasource"]["uid"] == uid and t["expr"] for p in panels for t in p["targets"])


def test_requirements_are_declared_for_every_query() -> None:
    needs = {n for *_, n in all_queries()}
    assert needs <= {"cpu", "gpu", "trtllm"} and "cpu" in needs
