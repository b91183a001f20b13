"""deploy/k8s checked without a cluster: Kubernetes' own schemas (kubernetes-validate, strict) and the rig's rules.

Why in-process rendering: no kubectl or kustomize binary is available here, so ``render`` applies the
few kustomize features the manifests use (resources, components, images, namespace) and refuses any
other key, so a kustomization can never use a feature these tests silently skip. Each rule is a
function that returns the problems it finds; every rule is also run on a deliberately broken copy
and must report it, so no rule can pass by finding nothing to look at.

What is NOT checked here (no cluster): that images pull, that pods schedule on GPU nodes, that the
PVCs bind, that probes pass. docs/kubernetes.md says so.
"""

from __future__ import annotations

import ast
import copy
import itertools
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from engines import registry
from tests.static.build_context import checkout_files, image_files

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.34"  # the stated minimum (docs/kubernetes.md); also checked against the newest shipped
VERSIONS = (KUBERNETES_VERSION, "1.37")
ENTRY_POINTS = ("stack", "loadgen", "loadgen-merge", "loadgen-shell", "locust")  # kubectl apply -k deploy/k8s/<name>
NAMESPACE = "llm-serving-rig"
SECRET = "rig-secrets"  # created by `kubectl create secret generic rig-secrets` (docs), never shipped with values
PER_RUN_CONFIGMAPS = {"loadgen-run": {"RUN", "START_AT"}}  # created per run by kubectl (docs)
OPTIONAL_CONFIGMAPS = {"loadgen-profiles"}  # mounted with optional: true
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict = COMPOSE["services"]
# compose services with a Kubernetes twin: a container of the same name. dcgm-exporter and Grafana are
# not deployed (the GPU Operator runs DCGM; any Grafana can load grafana/dashboards); compose's loadgen shell
# becomes deploy/k8s/loadgen-shell, which the general rules check (it has no profiles bind mount to mirror).
TWINS = ("model", "baseline", "vllm", "trtllm-build", "triton", "prometheus")
GPU_CONTAINERS = {name for name in TWINS if "deploy" in SERVICES[name]}
CACHE_VOLUMES = {"hf-cache"}  # compose keeps the Hugging Face cache in a volume; a pod's emptyDir is enough

KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "resources", "components", "images"}
COMPONENT_KEYS = {"apiVersion", "kind", "images"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                  "CustomResourceDefinition", "PriorityClass", "RuntimeClass"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}
SECRET_NAME = re.compile(r"(^|_)(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|CREDENTIALS?|PRIVATE_KEY)($|_)", re.I)
SECRET_VALUE = re.compile(r"\b(hf_[A-Za-z0-9]{10,}|sk-[A-Za-z0-9_-]{10,}|gh[pousr]_[A-Za-z0-9]{20,})|Bearer\s+\S+")
VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
COMPOSE_VAR = re.compile(r"\$\{([A-Z_]+)(?::?-([^}]*)|:\?[^}]*)?\}")


class RenderError(ValueError):
    """A kustomization this renderer cannot render exactly as kustomize would."""


# ---------------------------------------------------------------- rendering (the kustomize subset)

def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def _retag(image: str, entries: list[dict]) -> str:
    """kustomize's ``images:``: an entry whose name is the image's name (tag aside) sets newName/newTag."""
    name, tag = image.rsplit(":", 1) if ":" in image.rsplit("/", 1)[-1] else (image, "")
    for entry in entries:
        if entry["name"] == name:
            name, tag = entry.get("newName", name), entry.get("newTag", tag)
            break
    return f"{name}:{tag}" if tag else name


def render(folder: Path) -> list[dict]:
    """What ``kubectl kustomize folder`` prints, for the features listed in KUSTOMIZATION_KEYS."""
    kustomization = _load(folder / "kustomization.yaml")
    if unknown := set(kustomization) - KUSTOMIZATION_KEYS:
        raise RenderError(f"{_shown(folder)}: kustomization keys this renderer does not apply: {unknown}")
    objects: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = folder / entry
        if path.is_dir():
            objects += render(path)
        elif path.is_file():
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        else:
            raise RenderError(f"{_shown(folder)}: resource {entry} does not exist")
    images = list(kustomization.get("images", []))
    for entry in kustomization.get("components", []):
        component = _load(folder / entry / "kustomization.yaml")
        if component.get("kind") != "Component" or set(component) - COMPONENT_KEYS:
            raise RenderError(f"{_shown(folder)}: component {entry} is not an images-only Component")
        images += component.get("images", [])
    for obj in objects:
        for container, _ in containers(obj):
            container["image"] = _retag(container["image"], images)
        if "namespace" in kustomization and obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = kustomization["namespace"]
    return objects


def pod_spec(obj: dict) -> dict | None:
    kind = obj["kind"]
    if kind == "Pod":
        return obj["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind in WORKLOADS:
        return obj["spec"]["template"]["spec"]
    return None


def containers(obj: dict) -> Iterator[tuple[dict, bool]]:
    """Every (container, is_init) of a workload."""
    spec = pod_spec(obj) or {}
    for container in spec.get("initContainers", []):
        yield container, True
    for container in spec.get("containers", []):
        yield container, False


def rendered() -> dict[str, list[dict]]:
    return {name: render(K8S / name) for name in ENTRY_POINTS}


RENDERED = rendered()
ALL = [obj for objects in RENDERED.values() for obj in objects]


def find(objects: list[dict], kind: str, name: str) -> dict:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def container_named(objects: list[dict], name: str) -> dict:
    return next(c for o in objects for c, _ in containers(o) if c["name"] == name)


def where(obj: dict, container: dict | None = None) -> str:
    text = f"{obj['kind']}/{obj['metadata']['name']}"
    return text + (f" container {container['name']}" if container else "")


# ---------------------------------------------------------------- the rules (each returns its findings)

def schema_problems(objects: list[dict], version: str) -> list[str]:
    problems = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{where(obj)}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{where(obj)}: {exc.message}")
    return problems


def gpu_problems(objects: list[dict]) -> list[str]:
    """Every GPU engine container (compose reserves it a GPU) asks for one: ``nvidia.com/gpu`` in limits."""
    found = {c["name"]: (o, c) for o in objects for c, _ in containers(o) if c["name"] in GPU_CONTAINERS}
    problems = [f"no container {name} (compose service with a GPU)" for name in sorted(GPU_CONTAINERS - set(found))]
    for obj, container in found.values():
        gpus = container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
        if not gpus or int(gpus) < 1:
            problems.append(f"{where(obj, container)}: no nvidia.com/gpu in resources.limits")
    return problems


def _port_number(container: dict, port: int | str) -> int | None:
    if isinstance(port, int):
        return port
    return next((p["containerPort"] for p in container.get("ports", []) if p.get("name") == port), None)


def readiness_problems(objects: list[dict]) -> list[str]:
    """A long-running container that listens has a readinessProbe, on a port it declares; the engines and
    Prometheus are among them (a container cannot leave the rule by not declaring its port)."""
    problems = []
    listening = set()
    for obj in objects:
        if obj["kind"] not in LONG_RUNNING:
            continue
        for container, init in containers(obj):
            if init or not container.get("ports"):
                continue
            listening.add(container["name"])
            probe = container.get("readinessProbe")
            if not probe:
                problems.append(f"{where(obj, container)}: listens but has no readinessProbe")
            elif "httpGet" in probe and _port_number(container, probe["httpGet"]["port"]) is None:
                problems.append(f"{where(obj, container)}: readinessProbe on an undeclared port")
    servers = {e.compose_service for e in registry.all()} | {"prometheus"}
    return problems + [f"{name}: not a long-running container that declares its port"
                       for name in sorted(servers - listening)]


def image_problems(objects: list[dict]) -> list[str]:
    """Every image names a tag (or digest) that a cluster can pull: not latest, not compose's local build."""
    problems = []
    for obj in objects:
        for container, _ in containers(obj):
            image = container["image"]
            last = image.rsplit("/", 1)[-1]
            tag = last.split("@", 1)[0].rpartition(":")[2] if ":" in last.split("@", 1)[0] else ""
            if "@sha256:" not in image and (not tag or tag in {"latest", "local"}):
                problems.append(f"{where(obj, container)}: image {image!r} is not pinned to a pullable tag")
    return problems


def _env_problems(obj: dict, container: dict) -> list[str]:
    problems = []
    for env in container.get("env", []):
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if "value" in env and (SECRET_NAME.search(env["name"]) or SECRET_VALUE.search(str(env["value"]))):
            problems.append(f"{where(obj, container)}: {env['name']} is a literal; secrets come from {SECRET}")
        elif ref and ref["name"] != SECRET:
            problems.append(f"{where(obj, container)}: {env['name']} reads Secret {ref['name']}, not {SECRET}")
    problems += [f"{where(obj, container)}: envFrom Secret {e['secretRef']['name']}, not {SECRET}"
                 for e in container.get("envFrom", []) if "secretRef" in e and e["secretRef"]["name"] != SECRET]
    for arg in container.get("command", []) + container.get("args", []):
        if SECRET_VALUE.search(arg):
            problems.append(f"{where(obj, container)}: a credential in its command line: {arg!r}")
    return problems


def secret_problems(objects: list[dict]) -> list[str]:
    """Secrets only through secretKeyRef to the one Secret; no Secret with values in the manifests."""
    problems = []
    for obj in objects:
        if obj["kind"] == "Secret" and (obj.get("data") or obj.get("stringData")):
            problems.append(f"{where(obj)}: a Secret with values in the manifests")
        volumes = (pod_spec(obj) or {}).get("volumes", [])
        problems += [f"{where(obj)}: mounts Secret {v['secret']['secretName']}, not {SECRET}" for v in volumes
                     if "secret" in v and v["secret"].get("secretName") != SECRET]
        for container, _ in containers(obj):
            problems += _env_problems(obj, container)
    return problems


def exposure_problems(objects: list[dict]) -> list[str]:
    """Nothing reachable from outside the cluster by default: ClusterIP only, no host network or ports."""
    problems = []
    for obj in objects:
        if obj["kind"] in {"Ingress", "Gateway", "HTTPRoute", "GRPCRoute"}:
            problems.append(f"{where(obj)}: exposes the stack outside the cluster")
        service = obj["spec"] if obj["kind"] == "Service" else {}
        if service and (service.get("type", "ClusterIP") != "ClusterIP" or service.get("externalIPs")):
            problems.append(f"{where(obj)}: type {obj['spec'].get('type')} / externalIPs: not ClusterIP only")
        spec = pod_spec(obj) or {}
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(key):
                problems.append(f"{where(obj)}: {key}")
        for container, _ in containers(obj):
            if any("hostPort" in p or "hostIP" in p for p in container.get("ports", [])):
                problems.append(f"{where(obj, container)}: hostPort")
    return problems


def reference_problems(objects: list[dict]) -> list[str]:
    """$(VAR)s, ConfigMap keys, PVCs and volume mounts all name something that exists."""
    config_maps = {o["metadata"]["name"]: set(o.get("data", {})) for o in objects if o["kind"] == "ConfigMap"}
    config_maps.update(PER_RUN_CONFIGMAPS)
    claims = {o["metadata"]["name"] for o in objects if o["kind"] == "PersistentVolumeClaim"}
    problems = []
    for obj in (o for o in objects if pod_spec(o) is not None):
        spec = pod_spec(obj)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume and volume["persistentVolumeClaim"]["claimName"] not in claims:
                problems.append(f"{where(obj)}: no PVC {volume['persistentVolumeClaim']['claimName']}")
            config_map = volume.get("configMap")
            if config_map and config_map["name"] not in config_maps and not (
                    config_map.get("optional") and config_map["name"] in OPTIONAL_CONFIGMAPS):
                problems.append(f"{where(obj)}: no ConfigMap {config_map['name']}")
        indexed = obj["kind"] == "Job" and obj["spec"].get("completionMode") == "Indexed"
        for container, _ in containers(obj):
            defined = {e["name"] for e in container.get("env", [])} | ({"JOB_COMPLETION_INDEX"} if indexed else set())
            for arg in container.get("command", []) + container.get("args", []):
                problems += [f"{where(obj, container)}: $({v}) is not in its env"
                             for v in VAR_REF.findall(arg) if v not in defined]
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("configMapKeyRef")
                if ref and ref["key"] not in config_maps.get(ref["name"], set()):
                    problems.append(f"{where(obj, container)}: {env['name']}: no key {ref['key']} in {ref['name']}")
            problems += [f"{where(obj, container)}: mounts undeclared volume {m['name']}"
                         for m in container.get("volumeMounts", []) if m["name"] not in volumes]
    return problems


RULES: dict[str, Callable[[list[dict]], list[str]]] = {
    "gpu": gpu_problems, "readiness": readiness_problems, "images": image_problems,
    "secrets": secret_problems, "exposure": exposure_problems, "references": reference_problems,
}


# ---------------------------------------------------------------- schema validation

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_manifest_validates_strictly_against_the_kubernetes_schemas(entry: str, version: str) -> None:
    objects = RENDERED[entry]
    assert objects, f"deploy/k8s/{entry} renders nothing"
    problems = schema_problems(objects, version)
    assert not problems, "\n".join(problems)


def test_the_stated_version_is_one_kubernetes_validate_ships() -> None:
    assert set(VERSIONS) <= {kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()}


def test_schema_validation_rejects_a_misspelt_field_and_a_wrong_type() -> None:
    deployment = copy.deepcopy(find(RENDERED["stack"], "Deployment", "vllm"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}  # strict: unknown field
    assert schema_problems([deployment], KUBERNETES_VERSION)
    job = copy.deepcopy(find(RENDERED["loadgen"], "Job", "loadgen"))
    job["spec"]["completions"] = "four"
    assert schema_problems([job], KUBERNETES_VERSION)


# ---------------------------------------------------------------- kustomize structure

def test_every_manifest_file_is_in_a_kustomization_and_every_entry_point_renders() -> None:
    listed = set()
    for kustomization in K8S.rglob("kustomization.yaml"):
        data = _load(kustomization)
        listed |= {(kustomization.parent / r).resolve() for r in data.get("resources", [])}
        listed |= {(kustomization.parent / c).resolve() for c in data.get("components", [])}
    manifests = {p.resolve() for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert manifests - listed == set(), "manifests no kustomization applies"
    assert {p.parent.name for p in K8S.glob("*/kustomization.yaml")} == set(ENTRY_POINTS) | {"images"}


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [a.yaml]\npatches: [{path: p.yaml}]\n")
    with pytest.raises(RenderError, match="patches"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(RenderError, match="does not exist"):
        render(tmp_path)


def test_everything_lands_in_the_namespace_and_rig_images_come_from_the_images_component() -> None:
    for obj in ALL:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == NAMESPACE, where(obj)
    component = _load(K8S / "images" / "kustomization.yaml")["images"]
    rig_images = {svc["image"].split(":")[0] for svc in SERVICES.values() if "build" in svc}
    assert {entry["name"] for entry in component} == rig_images
    for entry in component:
        assert entry["newTag"] not in {"latest", "local", ""}, entry


# ---------------------------------------------------------------- the rig's rules, each with a broken copy

@pytest.mark.parametrize("rule", RULES)
def test_the_manifests_keep_the_rule(rule: str) -> None:
    problems = RULES[rule](ALL)
    assert not problems, "\n".join(problems)


def _break_gpu(objects: list[dict]) -> None:
    del container_named(objects, "triton")["resources"]["limits"]["nvidia.com/gpu"]


def _break_readiness(objects: list[dict]) -> None:
    del container_named(objects, "prometheus")["readinessProbe"]


def _break_images(objects: list[dict]) -> None:
    container_named(objects, "vllm")["image"] = "vllm/vllm-openai:latest"


def _break_secrets(objects: list[dict]) -> None:
    container_named(objects, "model")["env"].append({"name": "HF_TOKEN", "value": "hf_abcdefghijklmnopqrstu"})


def _break_exposure(objects: list[dict]) -> None:
    find(objects, "Service", "locust-master")["spec"]["type"] = "LoadBalancer"


def _break_references(objects: list[dict]) -> None:
    container_named(objects, "baseline")["args"].append("$(MAX_BATCH_SIZ)")


BREAKERS: dict[str, Callable[[list[dict]], None]] = {
    "gpu": _break_gpu, "readiness": _break_readiness, "images": _break_images,
    "secrets": _break_secrets, "exposure": _break_exposure, "references": _break_references,
}
MORE_BREAKAGE: list[tuple[str, Callable[[list[dict]], Any]]] = [
    ("gpu", lambda o: container_named(o, "trtllm-build")["resources"].pop("limits")),
    ("readiness", lambda o: container_named(o, "vllm").pop("ports")),
    ("readiness", lambda o: container_named(o, "locust-master")["readinessProbe"]["httpGet"].update(port="http")),
    ("images", lambda o: container_named(o, "loadgen").update(image="llm-serving-rig/loadgen:local")),
    ("images", lambda o: container_named(o, "prometheus").update(image="prom/prometheus")),
    ("secrets", lambda o: container_named(o, "loadgen")["env"].append({"name": "API_KEY", "value": "x"})),
    ("secrets", lambda o: container_named(o, "locust-worker").setdefault("envFrom", []).append(
        {"secretRef": {"name": "my-keys"}})),
    ("secrets", lambda o: pod_spec(find(o, "Job", "model"))["volumes"].append(
        {"name": "keys", "secret": {"secretName": "my-keys"}})),
    ("secrets", lambda o: container_named(o, "vllm")["args"].append("Authorization: Bearer abc123")),
    ("secrets", lambda o: o.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET},
                                    "stringData": {"HF_TOKEN": "x"}})),
    ("secrets", lambda o: container_named(o, "model")["env"][1]["valueFrom"]["secretKeyRef"].update(name="other")),
    ("exposure", lambda o: find(o, "Service", "vllm")["spec"].update(type="NodePort")),
    ("exposure", lambda o: pod_spec(find(o, "Deployment", "baseline")).update(hostNetwork=True)),
    ("exposure", lambda o: container_named(o, "triton")["ports"][0].update(hostPort=8000)),
    ("references", lambda o: pod_spec(find(o, "Deployment", "vllm"))["volumes"][0]["persistentVolumeClaim"]
     .update(claimName="modles")),
    ("references", lambda o: container_named(o, "vllm")["env"][1]["valueFrom"]["configMapKeyRef"]
     .update(key="NOPE")),
    ("references", lambda o: container_named(o, "merge")["args"].append("$(JOB_COMPLETION_INDEX)")),
    ("references", lambda o: pod_spec(find(o, "Job", "loadgen"))["volumes"][-1]["configMap"].update(name="profile")),
]


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_fails_on_a_broken_copy(rule: str) -> None:
    broken = copy.deepcopy(ALL)
    BREAKERS[rule](broken)
    assert RULES[rule](broken), f"rule {rule} did not notice"


@pytest.mark.parametrize("case", range(len(MORE_BREAKAGE)))
def test_each_rule_fails_on_more_broken_copies(case: int) -> None:
    rule, breaker = MORE_BREAKAGE[case]
    broken = copy.deepcopy(ALL)
    breaker(broken)
    assert RULES[rule](broken), f"rule {rule} did not notice breakage #{case}"


# ---------------------------------------------------------------- agreement with docker-compose.yml

def _compose_default(text: str) -> str:
    """compose's ``${VAR:-default}`` → its default (what runs when .env does not set it)."""
    return COMPOSE_VAR.sub(lambda m: m[2] or "", text)


def _as_k8s_arg(text: str) -> str:
    """compose's ``${VAR:-default}`` → Kubernetes' ``$(VAR)`` (the value then comes from rig-config)."""
    return COMPOSE_VAR.sub(lambda m: f"$({m[1]})", str(text))


def _health(service: dict) -> tuple[int, str] | None:
    test = " ".join(service.get("healthcheck", {}).get("test", []))
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/[^'\" ]*)", test)
    return (int(match[1]), match[2]) if match else None


def _env_value(objects: list[dict], env: dict) -> str | None:
    if "value" in env:
        return env["value"]
    ref = env.get("valueFrom", {}).get("configMapKeyRef")
    return find(objects, "ConfigMap", ref["name"]).get("data", {}).get(ref["key"]) if ref else None


def compose_problems(objects: list[dict], name: str, shipped: dict[str, str] | None = None) -> list[str]:
    """The container mirrors its compose service: image, entrypoint/command, working dir, env, ports, health,
    volumes. ``shipped``: what the service's image holds ({image path: checkout path}); by default what compose's
    build of it COPYs (tests pass a broken image)."""
    svc, ctr = SERVICES[name], container_named(objects, name)
    problems = []
    if ctr["image"].split(":")[0].split("/")[-1] != _compose_default(svc["image"]).split(":")[0].split("/")[-1]:
        problems.append(f"{name}: image {ctr['image']} is not compose's {svc['image']}")
    if not svc["image"].startswith("llm-serving-rig/") and ctr["image"] != _compose_default(svc["image"]):
        problems.append(f"{name}: image {ctr['image']} is not compose's {_compose_default(svc['image'])}")
    if ctr.get("command") != svc.get("entrypoint"):
        problems.append(f"{name}: command {ctr.get('command')} is not compose's entrypoint {svc.get('entrypoint')}")
    if ctr.get("args") != [_as_k8s_arg(a) for a in svc.get("command", [])]:
        problems.append(f"{name}: args {ctr.get('args')} are not compose's command")
    if ctr.get("workingDir") != svc.get("working_dir"):
        problems.append(f"{name}: workingDir {ctr.get('workingDir')} is not compose's {svc.get('working_dir')}")
    env = {e["name"]: e for e in ctr.get("env", [])}
    for var, value in (svc.get("environment") or {}).items():
        if var not in env:
            problems.append(f"{name}: compose sets {var}, the container does not")
            continue
        ours, theirs = _env_value(objects, env[var]), _compose_default(str(value))
        if not SECRET_NAME.search(var) and ":?" not in str(value) and ours not in (theirs, None):
            problems.append(f"{name}: {var}={ours!r}, compose {theirs!r}")
    for arg in ctr.get("args", []):
        for var in VAR_REF.findall(arg):
            source = next((a for a in svc.get("command", []) if f"${{{var}" in a), None)
            default = COMPOSE_VAR.search(source)[2] if source else None
            if var in env and _env_value(objects, env[var]) != default:
                problems.append(f"{name}: {var}={_env_value(objects, env[var])!r}, compose default {default!r}")
    ports = {int(str(p).rsplit(":", 1)[1]) for p in svc.get("ports", [])}
    if ports != {p["containerPort"] for p in ctr.get("ports", [])}:
        problems.append(f"{name}: ports {ctr.get('ports')} are not compose's {sorted(ports)}")
    if health := _health(svc):
        probe = ctr.get("readinessProbe", {}).get("httpGet", {})
        if (_port_number(ctr, probe.get("port", 0)), probe.get("path")) != health:
            problems.append(f"{name}: readinessProbe {probe} is not compose's health check {health}")
    return problems + _volume_problems(objects, name, shipped)


def _volume_problems(objects: list[dict], name: str, shipped: dict[str, str] | None = None) -> list[str]:
    svc, ctr = SERVICES[name], container_named(objects, name)
    obj = next(o for o in objects if any(c is ctr for c, _ in containers(o)))
    volumes = {v["name"]: v for v in pod_spec(obj).get("volumes", [])}
    mounts = {m["mountPath"]: m for m in ctr.get("volumeMounts", [])}
    problems = []
    for spec in svc.get("volumes", []):
        source, target, *mode = spec.split(":")
        if source.startswith("./"):  # a file or folder of the checkout, which a cluster does not have
            problems += _checkout_problems(name, ctr, volumes, mounts, (source, target), shipped)
            continue
        mount = mounts.get(target)
        claim = volumes.get(mount["name"], {}).get("persistentVolumeClaim", {}) if mount else {}
        if source in CACHE_VOLUMES and mount:
            continue
        if not mount or claim.get("claimName") != source or bool(mount.get("readOnly")) != (mode == ["ro"]):
            problems.append(f"{name}: compose mounts volume {source} at {target} {mode}, the pod {mount} {claim}")
    return problems


def _checkout_problems(name: str, ctr: dict, volumes: dict, mounts: dict, bind: tuple[str, str],
                       shipped: dict[str, str] | None) -> list[str]:
    """What compose bind-mounts from the checkout comes from a ConfigMap mounted at or above its path
    (prometheus.yml), or from the image: compose's build COPYs it to the same path in the same layout, holding
    every file the container's ``python -m`` loads from there, and no volume of the pod hides it."""
    source, target = bind
    if any(PurePosixPath(target).is_relative_to(path) and "configMap" in volumes[m["name"]]
           for path, m in mounts.items()):
        return []
    build = SERVICES[name].get("build")
    if shipped is None and build:
        context = ROOT / build["context"]
        shipped = image_files((context / build["dockerfile"]).read_text(), (context / ".dockerignore").read_text())
    folder = PurePosixPath(source.removeprefix("./"))
    here = {PurePosixPath(image).relative_to(target): checkout for image, checkout in (shipped or {}).items()
            if PurePosixPath(image).is_relative_to(target)}
    if not here:
        return [f"{name}: compose mounts {source} at {target}; neither a ConfigMap nor the image has it there"]
    problems = [f"{name}: the image has {checkout} at {target}/{below}, where compose's mount has {folder / below}"
                for below, checkout in here.items() if PurePosixPath(checkout) != folder / below]
    missing = {path for path in _loaded_by(ctr) if PurePosixPath(path).is_relative_to(folder)} - set(here.values())
    problems += [f"{name}: the image lacks {path} at {target}: the container's python -m needs it"
                 for path in sorted(missing)]
    return problems + [f"{name}: volume {m['name']} at {path} hides the image's {target}" for path, m in mounts.items()
                       if PurePosixPath(path).is_relative_to(target) or PurePosixPath(target).is_relative_to(path)]


def _module_file(module: str) -> str | None:
    """The checkout file of a first-party module (None for the standard library and third-party packages)."""
    base = module.replace(".", "/")
    return next((p for p in (f"{base}.py", f"{base}/__init__.py") if p in checkout_files()), None)


def _loaded_by(ctr: dict) -> set[str]:
    """Checkout files that ``python -m MODULE`` in the container's command line loads: the module, every
    first-party module it imports at any depth (with their packages' ``__init__.py``), and the module's package
    whole: modules read data files beside them (engines/trtllm/repository.py copies models/*.py)."""
    argv = ctr.get("command", []) + ctr.get("args", [])
    if "-m" not in argv:
        return set()
    entry = argv[argv.index("-m") + 1]
    package = entry if _module_file(entry) == f"{entry.replace('.', '/')}/__init__.py" else entry.rpartition(".")[0]
    files = {f for f in checkout_files() if f.startswith(package.replace(".", "/") + "/")}
    todo, seen = [entry, f"{entry}.__main__"], set()
    while todo:
        module = todo.pop()
        if module in seen or not (path := _module_file(module)):
            continue
        seen.add(module)
        files.add(path)
        parts = module.split(".")
        todo += [".".join(parts[:n]) for n in range(1, len(parts))]
        here = parts if path.endswith("/__init__.py") else parts[:-1]
        for node in ast.walk(ast.parse((ROOT / path).read_text())):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join([*here[:len(here) - node.level + 1], node.module or ""] if node.level else
                                [node.module or ""]).strip(".")
                todo += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    return files


def service_problems(objects: list[dict], name: str) -> list[str]:
    """A Service named as the compose service, on the same ports: profiles' URLs work unchanged."""
    ports = {int(str(p).rsplit(":", 1)[1]) for p in SERVICES[name].get("ports", [])}
    service = next((o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == name), None)
    if service is None:
        return [f"no Service {name}"]
    ctr = container_named(objects, name)
    served = {(p["port"], _port_number(ctr, p.get("targetPort", p["port"]))) for p in service["spec"]["ports"]}
    return [f"Service {name}: port {port} does not reach the container's {port}" for port in ports
            if (port, port) not in served]


@pytest.mark.parametrize("name", TWINS)
def test_each_container_mirrors_its_compose_service(name: str) -> None:
    problems = compose_problems(RENDERED["stack"], name)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", [n for n in TWINS if SERVICES[n].get("ports")])
def test_each_compose_port_has_a_service_of_the_same_name(name: str) -> None:
    assert not service_problems(RENDERED["stack"], name)


def test_the_compose_checks_notice_a_different_port_health_path_flag_default_or_mount() -> None:
    breakers = [
        lambda o: container_named(o, "vllm")["ports"][0].update(containerPort=8080),
        lambda o: container_named(o, "triton")["readinessProbe"]["httpGet"].update(path="/v2/health/live"),
        lambda o: container_named(o, "baseline")["args"].remove("--dtype"),
        lambda o: find(o, "ConfigMap", "rig-config")["data"].update(MAX_SEQ_LEN="8192"),
        lambda o: container_named(o, "trtllm-build")["env"].pop(0),
        lambda o: container_named(o, "triton")["volumeMounts"][0].pop("readOnly"),
        lambda o: container_named(o, "model").update(command=["python", "-m", "stack.hub"]),
    ]
    for i, breaker in enumerate(breakers):
        broken = copy.deepcopy(RENDERED["stack"])
        breaker(broken)
        assert any(compose_problems(broken, n) for n in TWINS), f"breakage #{i} went unnoticed"
    broken = copy.deepcopy(RENDERED["stack"])
    find(broken, "Service", "triton")["spec"]["ports"].pop(1)
    assert service_problems(broken, "triton")


def test_the_build_runs_the_code_its_image_carries_where_compose_mounts_the_checkout() -> None:
    """Compose mounts ./engines at /rig/engines; the pod has no checkout and uses the image's copy there."""
    dockerfile, ignore = (ROOT / "docker" / "trtllm.Dockerfile").read_text(), (ROOT / ".dockerignore").read_text()
    assert "./engines:/rig/engines:ro" in SERVICES["trtllm-build"]["volumes"]
    assert not compose_problems(RENDERED["stack"], "trtllm-build", shipped=image_files(dockerfile, ignore))
    loaded = _loaded_by(container_named(RENDERED["stack"], "trtllm-build"))
    assert {"engines/__init__.py", "engines/trtllm/plan.py", "engines/trtllm/models/preprocessing.py"} <= loaded
    assert "engines/spec.py" not in loaded  # engines/__init__.py is import-free: the build needs only engines/trtllm
    assert "engines/spec.py" in _loaded_by({"args": ["python3", "-m", "engines.registry"]})  # imports are followed


def test_the_compose_checks_notice_an_image_without_the_builds_code_or_a_volume_hiding_it() -> None:
    dockerfile, ignore = (ROOT / "docker" / "trtllm.Dockerfile").read_text(), (ROOT / ".dockerignore").read_text()
    copy_package = "COPY engines/trtllm /rig/engines/trtllm\n"
    images = [
        (dockerfile.replace("COPY engines/__init__.py /rig/engines/__init__.py\n", ""), ignore),
        (dockerfile.replace(copy_package, "COPY engines/trtllm /rig/engines/\n"), ignore),  # another layout
        (dockerfile.replace(copy_package, "COPY engines/trtllm/build.py /rig/engines/trtllm/\n"), ignore),
        (dockerfile, ignore + "engines/trtllm/models\n"),  # the python models the build copies into the repository
        (dockerfile.replace("/rig/engines", "/opt/engines"), ignore),
        (dockerfile.replace("COPY", "# COPY"), ignore),  # the old image: nothing of the checkout
    ]
    for i, (text, dockerignore) in enumerate(images):
        assert (text, dockerignore) != (dockerfile, ignore), f"image #{i} changes nothing"
        assert compose_problems(RENDERED["stack"], "trtllm-build", shipped=image_files(text, dockerignore)), \
            f"image #{i} went unnoticed"
    breakers = [
        lambda c: c["volumeMounts"].append({"name": "hf-cache", "mountPath": "/rig/engines"}),
        lambda c: c["volumeMounts"].append({"name": "hf-cache", "mountPath": "/rig"}),
        lambda c: c["volumeMounts"].append({"name": "hf-cache", "mountPath": "/rig/engines/trtllm/models"}),
        lambda c: c.update(workingDir="/workspace"),
    ]
    for i, breaker in enumerate(breakers):
        broken = copy.deepcopy(RENDERED["stack"])
        breaker(container_named(broken, "trtllm-build"))
        assert compose_problems(broken, "trtllm-build"), f"breakage #{i} went unnoticed"


def test_rig_config_holds_the_env_example_defaults() -> None:
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    data = find(RENDERED["stack"], "ConfigMap", "rig-config")["data"]
    assert data["MODEL_ID"] == example["MODEL_ID"]
    for key, value in data.items():
        if example.get(key):  # TOKENIZER_DIR is empty there: compose's default /models/model applies
            assert value == example[key], key


# ---------------------------------------------------------------- Prometheus

def prometheus_config(objects: list[dict]) -> dict:
    return yaml.safe_load(find(objects, "ConfigMap", "prometheus-config")["data"]["prometheus.yml"])


def scrape_problems(config: dict, loadgen_job: dict) -> list[str]:
    """Every engine's job scrapes its Service as compose's prometheus.yml does; loadgen shards by pod label."""
    compose_jobs = {j["job_name"]: j for j in _load(ROOT / "docker/prometheus/prometheus.yml")["scrape_configs"]}
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    problems = []
    for engine in registry.all():
        expected = compose_jobs[engine.scrape_job]["static_configs"][0]["targets"]
        targets = [t for s in jobs.get(engine.scrape_job, {}).get("static_configs", []) for t in s["targets"]]
        if targets != expected:
            problems.append(f"job {engine.scrape_job}: targets {targets}, compose {expected}")
        if jobs.get(engine.scrape_job, {}).get("metrics_path", "/metrics") != engine.metrics_path:
            problems.append(f"job {engine.scrape_job}: metrics path is not {engine.metrics_path}")
    relabel = {tuple(r.get("source_labels", [])): r for r in jobs.get("loadgen", {}).get("relabel_configs", [])}
    pod = loadgen_job["spec"]["template"]
    keep_name = relabel.get(("__meta_kubernetes_pod_label_app_kubernetes_io_name",), {})
    keep_port = relabel.get(("__meta_kubernetes_pod_container_port_name",), {})
    ports = {p.get("name"): p["containerPort"] for p in pod["spec"]["containers"][0].get("ports", [])}
    if not re.fullmatch(keep_name.get("regex", "(?!)"), pod["metadata"]["labels"]["app.kubernetes.io/name"]):
        problems.append("job loadgen does not select the loadgen Job's pods by label")
    if ports.get(keep_port.get("regex")) != 9400:
        problems.append(f"job loadgen keeps port {keep_port.get('regex')!r}; the shards serve metrics on 9400")
    return problems


def test_prometheus_scrapes_every_engine_and_every_loadgen_shard() -> None:
    problems = scrape_problems(prometheus_config(RENDERED["stack"]), find(RENDERED["loadgen"], "Job", "loadgen"))
    assert not problems, "\n".join(problems)


def test_the_scrape_check_notices_a_missing_engine_or_an_unscraped_shard_port() -> None:
    config = prometheus_config(RENDERED["stack"])
    config["scrape_configs"] = [j for j in config["scrape_configs"] if j["job_name"] != "triton"]
    job = find(RENDERED["loadgen"], "Job", "loadgen")
    assert scrape_problems(config, job)
    job = copy.deepcopy(job)
    job["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] = "prom"
    assert scrape_problems(prometheus_config(RENDERED["stack"]), job)


def test_prometheus_mounts_its_config_and_may_list_pods_here_only() -> None:
    stack = RENDERED["stack"]
    mount = next(m for m in container_named(stack, "prometheus")["volumeMounts"] if m["name"] == "config")
    assert mount["mountPath"] == "/etc/prometheus" and "--config.file=/etc/prometheus/prometheus.yml" in \
        container_named(stack, "prometheus")["args"]
    assert not [o for o in ALL if o["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    role = find(stack, "Role", "prometheus-pods")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool comes with `make prometheus` (make test)")
def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    """Debian's promtool (2.42) is built without Kubernetes discovery: the loadgen job's kubernetes_sd_configs
    is swapped for a static target so promtool checks everything else, its relabel rules included."""
    config = prometheus_config(RENDERED["stack"])
    for job in config["scrape_configs"]:
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["static_configs"] = [{"targets": ["loadgen-0:9400"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(["promtool", "check", "config", "--syntax-only", str(path)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    config["scrape_configs"][0]["relabel_configs"][0]["action"] = "kepp"
    path.write_text(yaml.safe_dump(config))
    assert subprocess.run(["promtool", "check", "config", "--syntax-only", str(path)],
                          capture_output=True).returncode != 0


# ---------------------------------------------------------------- the sharded loadgen and its merge

def shard_problems(job: dict, merge: dict) -> list[str]:
    """N in --shard K/N is the Job's completions and parallelism; the merge lists exactly shards 0..N-1."""
    spec, args = job["spec"], job["spec"]["template"]["spec"]["containers"][0]["args"]
    problems = []
    if spec.get("completionMode") != "Indexed":
        problems.append("the loadgen Job is not Indexed")
    flag = dict(itertools.pairwise(args))
    match = re.fullmatch(r"\$\(JOB_COMPLETION_INDEX\)/(\d+)", flag.get("--shard", ""))
    if not match:
        return [*problems, f"--shard is {flag.get('--shard')!r}, not $(JOB_COMPLETION_INDEX)/N"]
    shards = int(match[1])
    if not spec.get("completions") == spec.get("parallelism") == shards:
        problems.append(f"--shard K/{shards}, completions {spec.get('completions')}, parallelism "
                        f"{spec.get('parallelism')}: all shards must run at once on one clock")
    if "--workers" not in flag or "--start-at" not in flag or args[0] != "run":
        problems.append("each shard runs `loadgen run ... --workers W --start-at EPOCH`")
    out = flag.get("--out", "")
    if "$(JOB_COMPLETION_INDEX)" not in out:
        problems.append(f"--out {out!r}: the shards would write one folder")
    expected = [out.replace("$(JOB_COMPLETION_INDEX)", str(k)) for k in range(shards)]
    merge_args = merge["spec"]["template"]["spec"]["containers"][0]["args"]
    if merge_args[0] != "merge" or merge_args[2:] != expected:
        problems.append(f"the merge reads {merge_args[2:]}, the shards write {expected}")
    if spec.get("backoffLimit", 6) != 0:
        problems.append("a retried shard starts after the common clock: backoffLimit must be 0")
    return problems


def test_the_loadgen_is_an_indexed_job_whose_shards_the_merge_reads() -> None:
    job, merge = find(RENDERED["loadgen"], "Job", "loadgen"), find(RENDERED["loadgen-merge"], "Job", "loadgen-merge")
    assert not shard_problems(job, merge), "\n".join(shard_problems(job, merge))
    mounts = {m["mountPath"]: m["name"] for m in job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts["/results"]]["persistentVolumeClaim"]["claimName"] == "results"


def test_the_shard_check_notices_a_mismatched_count_or_merge() -> None:
    job, merge = find(RENDERED["loadgen"], "Job", "loadgen"), find(RENDERED["loadgen-merge"], "Job", "loadgen-merge")
    breakers = [
        lambda j, m: j["spec"].update(completions=3),
        lambda j, m: j["spec"].update(parallelism=1),
        lambda j, m: j["spec"].pop("completionMode"),
        lambda j, m: m["spec"]["template"]["spec"]["containers"][0]["args"].pop(),
        lambda j, m: j["spec"]["template"]["spec"]["containers"][0]["args"].remove("--workers"),
        lambda j, m: j["spec"].update(backoffLimit=3),
    ]
    for i, breaker in enumerate(breakers):
        j, m = copy.deepcopy(job), copy.deepcopy(merge)
        breaker(j, m)
        assert shard_problems(j, m), f"breakage #{i} went unnoticed"


def _in_image(path: str) -> Path:
    """A path in the loadgen image (WORKDIR /app holds the checkout's loadgen/) → the checkout's file."""
    assert path.startswith("/app/"), path
    return ROOT / path.removeprefix("/app/")


def _parse_loadgen(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The real ``loadgen`` CLI's parser on ``argv``, with the commands replaced by a recorder (nothing runs)."""
    from loadgen import cli
    from loadgen.cli import merge, run

    seen: list[Any] = []
    monkeypatch.setattr(run, "cmd_run", lambda args: seen.append(args) or 0)
    monkeypatch.setattr(merge, "cmd_merge", lambda args: seen.append(args) or 0)
    assert cli.main(argv) == 0
    return seen[0]


def test_the_loadgen_cli_accepts_the_jobs_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    from loadgen.config import load_profile
    from loadgen.scaling.share import Share

    job, merge = find(RENDERED["loadgen"], "Job", "loadgen"), find(RENDERED["loadgen-merge"], "Job", "loadgen-merge")
    shards = job["spec"]["completions"]
    for k in (0, shards - 1):
        env = {"JOB_COMPLETION_INDEX": str(k), "RUN": "r", "START_AT": "1767225600"}
        argv = [VAR_REF.sub(lambda m, env=env: env[m[1]], a)
                for a in job["spec"]["template"]["spec"]["containers"][0]["args"]]
        args = _parse_loadgen(argv, monkeypatch)
        assert args.shard == Share(k, shards) and args.workers >= 1 and args.start_at == 1767225600
        assert str(args.out) == f"/results/r/shard-{k}" and args.metrics_port == 9400
        assert load_profile(_in_image(str(args.profile)), []).targets
    argv = [a.replace("$(RUN)", "r") for a in merge["spec"]["template"]["spec"]["containers"][0]["args"]]
    args = _parse_loadgen(argv, monkeypatch)
    assert [str(p) for p in args.shards] == [f"/results/r/shard-{k}" for k in range(shards)]
    with pytest.raises(SystemExit):  # the parser is a real check: a malformed --shard is refused
        _parse_loadgen(["run", "p.yaml", "--shard", "2-4"], monkeypatch)


@pytest.mark.slow  # seconds: left out of make test-fast
def test_locust_accepts_the_master_and_worker_arguments() -> None:
    """Locust's own parser with the rig's plugin options, in a child process (importing Locust patches the
    standard library with gevent, which must not leak into the other tests)."""
    locust = RENDERED["locust"]
    master, worker = container_named(locust, "locust-master"), container_named(locust, "locust-worker")
    program = (
        "import sys, loadgen.locust.locustfile  # what locust -f imports: it registers the --rig-* options\n"
        "from locust.argument_parser import get_parser\n"
        "o = get_parser().parse_args(sys.argv[1:])\n"
        "print(o.master, o.worker, o.rig_profile, o.rig_target, o.master_host)\n")
    seen = []
    for container in (master, worker):
        result = subprocess.run([sys.executable, "-c", program, *container["args"]], capture_output=True,
                                text=True, cwd=ROOT, timeout=120)
        assert result.returncode == 0, result.stderr
        seen.append(result.stdout.splitlines()[-1].split())
        assert (ROOT / container["args"][1]).is_file()  # the locustfile, relative to /app
    assert seen[0][:2] == ["True", "False"] and seen[1][:2] == ["False", "True"]
    profile, target = seen[0][2], seen[0][3]
    from loadgen.config import load_profile

    assert target in [t.name for t in load_profile(_in_image(profile), []).targets]
    broken = subprocess.run([sys.executable, "-c", program, *master["args"], "--rig-proflie", "x"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert broken.returncode != 0


def test_locust_workers_find_the_master_service() -> None:
    locust = RENDERED["locust"]
    master, worker = container_named(locust, "locust-master"), container_named(locust, "locust-worker")
    assert master["command"] == worker["command"] == ["locust"]
    assert master["args"][:2] == worker["args"][:2] == ["-f", "loadgen/locust/locustfile.py"]
    assert "--master" in master["args"] and "--worker" in worker["args"]
    host = worker["args"][worker["args"].index("--master-host") + 1]
    service = find(locust, "Service", host)
    assert {(p["port"], _port_number(master, p["targetPort"])) for p in service["spec"]["ports"]} >= \
        {(5557, 5557), (8089, 8089)}
    assert find(locust, "Deployment", "locust-master")["spec"]["replicas"] == 1
    assert "--rig-profile" in master["args"]  # the master plans the run; workers get the profile from it
    # the master writes results/<run>, each worker results/<run>/workers/...: the same volume at the same path
    for container in (master, worker):
        assert container["workingDir"] == "/app"
        assert any(m["mountPath"] == "/app/results" and m["name"] == "results" for m in container["volumeMounts"])


def test_docs_state_the_validated_version_and_the_commands_the_manifests_expect() -> None:
    doc = (ROOT / "docs" / "kubernetes.md").read_text()
    assert f"Kubernetes {KUBERNETES_VERSION}" in doc
    assert f"create secret generic {SECRET}" in doc
    for name in set(PER_RUN_CONFIGMAPS) | OPTIONAL_CONFIGMAPS:  # the ConfigMaps users create, not the manifests
        assert f"create configmap {name}" in doc
    for entry in ENTRY_POINTS:
        assert f"kubectl apply -k deploy/k8s/{entry}" in doc
