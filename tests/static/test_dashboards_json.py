"""The committed Grafana JSON is exactly what grafana/dashboards.py generates, and is well-formed."""

from __future__ import annotations

import json
import re
from pathlib import Path

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


UPSTREAM = json.loads((Path(__file__).parent / "fixtures" / "upstream_metrics.json").read_text())


def label_filters(expr: str) -> list[tuple[str, str, list[str]]]:
    """(metric, label, values) for every ``metric{label="v"}`` / ``label=~"a|b"`` in a PromQL expression."""
    found = []
    for metric, body in re.findall(r"([A-Za-z_:][\w:]*)\{([^}]*)\}", expr):
        for label, value in re.findall(r'(\w+)=~?"([^"]*)"', body):
            found.append((metric, label, value.split("|")))
    return found


def test_tensorrt_llm_panels_use_label_values_the_backend_exports() -> None:
    """The in-flight batching panel once filtered on num_context_requests|num_gen_requests: always empty."""
    checked = 0
    for _, title, query, _ in all_queries():
        for metric, label, values in label_filters(query.expr):
            known = UPSTREAM["trtllm"].get(metric)
            if known is None or label not in known:
                continue
            unknown = set(values) - set(known[label])
            assert not unknown, f"{title}: {metric}{{{label}}} has no values {sorted(unknown)}"
            checked += 1
    assert checked >= 3


def test_the_label_rule_sees_a_wrong_value() -> None:
    wrong = 'sum(nv_trt_llm_inflight_batcher_metrics{inflight_batcher_specific_metric=~"num_gen_requests"})'
    metric, label, values = label_filters(wrong)[0]
    assert set(values) - set(UPSTREAM["trtllm"][metric][label]) == {"num_gen_requests"}


def test_dcgm_mib_metrics_are_shown_in_the_right_unit() -> None:
    """DCGM_FI_DEV_FB_USED is MiB: a panel shows it as mbytes (MiB), or scales it to bytes."""
    for spec in DASHBOARDS:
        for _, panels in spec.rows:
            for panel in panels:
                for query in panel.queries:
                    mib = [m for m, unit in UPSTREAM["dcgm_units"].items() if unit == "MiB" and m in query.expr]
                    if mib:
                        scaled = "* 1048576" in query.expr
                        assert (panel.unit, scaled) in {("mbytes", False), ("bytes", True)}, panel.title
