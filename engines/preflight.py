"""``python -m engines.preflight`` (``make preflight``): is this host ready for ``docker compose up``?

Why: nothing in the GPU stack can be tried without a GPU host, and a failure there costs an image
pull and a model download before it shows. Each check asks the real tool (``docker``,
``nvidia-smi``) and prints what it found and, when it fails, the fix; the exit status is 1 when
any blocker failed. ``--write-env`` writes the side-by-side GPU memory budgets
(``engines/budget.py``) into ``.env`` (or the single-engine defaults when the model does not fit
three times). The tests run it with stand-in ``docker``/``nvidia-smi`` scripts on ``PATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engines import budget
from engines.trtllm.plan import BuildSettings, make_plan
from engines.trtllm.precision import CapabilityError, choose

ROOT = Path(__file__).resolve().parents[1]
MIN_COMPOSE = (2, 26, 0)  # depends_on `required: false` with a profile-disabled service (compose-go PR 609)
MIN_DRIVER = 580  # the pinned Triton 25.12 and vLLM images are built on CUDA 13.0
TRTLLM_IMAGE = "llm-serving-rig/trtllm:local"  # docker/trtllm.Dockerfile (docker compose build trtllm-build)
CUDA_PROBE_IMAGE = "nvidia/cuda:12.8.1-runtime-ubuntu24.04"  # the baseline's base image: pulled once either way
DATA_CENTER = re.compile(r"\b(A100|A800|A30|A10|A40|H100|H200|H800|H20|L4|L40S?|B200|GB200|T4|V100)\b")
GATED_ORGS = ("meta-llama/", "google/gemma", "mistralai/")  # when the Hub cannot be asked
IMAGES_GIB = 60  # the trtllm, vllm, baseline, grafana, prometheus and dcgm images together, roughly
PROBE = """
import importlib, json, subprocess
out = {}
for mod, attr in [("tensorrt_llm.quantization.quantize_by_modelopt", "quantize_and_export"), ("modelopt", None),
                  ("setuptools", None), ("datasets", None)]:
    try:
        m = importlib.import_module(mod)
        out[mod] = "ok" if attr is None or hasattr(m, attr) else "no " + attr
    except Exception as exc:
        out[mod] = "missing: " + str(exc)[:200]
r = subprocess.run(["trtllm-build", "--help"], capture_output=True, text=True)
out["trtllm-build --help"] = r.stdout
print(json.dumps(out))
"""


@dataclass
class Check:
    name: str
    ok: bool
    found: str
    fix: str = ""
    blocker: bool = True

    def line(self) -> str:
        mark = "ok  " if self.ok else ("FAIL" if self.blocker else "warn")
        text = f"[{mark}] {self.name}: {self.found}"
        return text + (f"\n       fix: {self.fix}" if not self.ok and self.fix else "")


@dataclass
class Host:
    """What the checks learned, for the checks after them."""

    env: dict[str, str]
    gpu: dict[str, str] = field(default_factory=dict)
    budget_env: dict[str, str] = field(default_factory=dict)


def run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return subprocess.CompletedProcess(cmd, 127, "", str(exc))


def version(text: str) -> tuple[int, ...]:
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g or 0) for g in match.groups()) if match else ()


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def check_docker(host: Host) -> Check:
    r = run(["docker", "version", "--format", "{{.Server.Version}}"])
    if r.returncode != 0 or not r.stdout.strip():
        return Check("docker engine", False, (r.stderr or r.stdout).strip()[:200] or "no answer",
                     "install Docker Engine and start it (systemctl start docker); add yourself to the docker group")
    return Check("docker engine", True, f"server {r.stdout.strip()}")


def check_compose(host: Host) -> Check:
    r = run(["docker", "compose", "version", "--short"])
    found = version(r.stdout)
    if r.returncode != 0 or not found:
        return Check("docker compose v2", False, (r.stderr or r.stdout).strip()[:200] or "not installed",
                     "install the docker-compose-plugin package (Compose v2)")
    ok = found >= MIN_COMPOSE
    return Check("docker compose v2", ok, r.stdout.strip(),
                 f"upgrade to Compose >= {'.'.join(map(str, MIN_COMPOSE))} (depends_on required: false)")


def check_toolkit(host: Host) -> Check:
    r = run(["docker", "run", "--rm", "--gpus", "all", CUDA_PROBE_IMAGE, "nvidia-smi", "-L"], timeout=600)
    if r.returncode != 0 or "GPU 0" not in r.stdout:
        return Check("NVIDIA container toolkit", False, (r.stderr or r.stdout).strip()[:300] or "no GPU listed",
                     "install nvidia-container-toolkit, then: sudo nvidia-ctk runtime configure --runtime=docker && "
                     "sudo systemctl restart docker")
    return Check("NVIDIA container toolkit", True, r.stdout.strip().splitlines()[0])


def check_gpu(host: Host) -> Check:
    r = run(["nvidia-smi", "--query-gpu=name,driver_version,compute_cap,memory.total",
             "--format=csv,noheader,nounits"])
    line = r.stdout.strip().splitlines()[0] if r.returncode == 0 and r.stdout.strip() else ""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 4:
        return Check("GPU", False, (r.stderr or r.stdout).strip()[:200] or "nvidia-smi gave nothing",
                     "install the NVIDIA driver (R580 or newer) so that nvidia-smi works on the host")
    host.gpu = dict(zip(("name", "driver", "capability", "memory_mib"), parts, strict=True))
    return Check("GPU", True, f"{parts[0]}, compute capability {parts[2]}, {parts[3]} MiB, driver {parts[1]}")


def check_driver(host: Host) -> Check:
    if not host.gpu:
        return Check("driver for CUDA 13 images", False, "no GPU found", "see the GPU check")
    major = version(host.gpu["driver"])[:1]
    if major and major[0] >= MIN_DRIVER:
        return Check("driver for CUDA 13 images", True, f"{host.gpu['driver']} >= R{MIN_DRIVER}")
    if DATA_CENTER.search(host.gpu["name"]):
        return Check("driver for CUDA 13 images", False,
                     f"{host.gpu['driver']} < R{MIN_DRIVER}; {host.gpu['name']} is a data-center GPU: CUDA forward "
                     "compatibility in the images' NVIDIA entrypoint should cover Triton",
                     f"set VLLM_IMAGE_TAG=v0.32.0-cu129 in .env for vLLM, or upgrade the driver to R{MIN_DRIVER}",
                     blocker=False)
    return Check("driver for CUDA 13 images", False, f"{host.gpu['driver']} < R{MIN_DRIVER} on {host.gpu['name']}",
                 f"upgrade the driver to R{MIN_DRIVER} or newer (no forward compatibility on this GPU)")


def check_precision(host: Host) -> Check:
    requested = host.env.get("PRECISION") or "auto"
    try:
        choice = choose(requested, host.gpu.get("capability", ""))
    except CapabilityError as exc:
        return Check("TensorRT-LLM precision", False, str(exc), "set PRECISION in .env to auto, fp8, bf16, fp16 "
                     "or int8_wo")
    return Check("TensorRT-LLM precision", True, f"{choice.precision} ({choice.reason})")


def model_shape(host: Host, model_dir: Path | None) -> budget.ModelShape:
    if model_dir is not None:
        return budget.ModelShape.from_dir(model_dir)
    model_id = host.env.get("MODEL_ID", "")
    from huggingface_hub import HfApi, hf_hub_download  # only on the GPU host, with network

    config = json.loads(Path(hf_hub_download(model_id, "config.json", token=host.env.get("HF_TOKEN") or None))
                        .read_text())
    info = HfApi().model_info(model_id, files_metadata=True, token=host.env.get("HF_TOKEN") or None)
    size = sum(s.size or 0 for s in info.siblings or [] if s.rfilename.endswith(".safetensors"))
    return budget.ModelShape.from_config(config, weight_bytes=size, name=model_id)


def check_memory(host: Host, model_dir: Path | None) -> Check:
    if not host.gpu:
        return Check("GPU memory budget", False, "no GPU found", "see the GPU check")
    try:
        shape = model_shape(host, model_dir)
    except Exception as exc:
        return Check("GPU memory budget", False, f"cannot size the model: {exc}",
                     "pass --model-dir with a downloaded checkpoint (config.json + *.safetensors)")
    max_seq = int(host.env.get("MAX_SEQ_LEN") or 4096)
    try:
        plan = budget.side_by_side(int(float(host.gpu["memory_mib"])), shape, max_seq)
    except budget.DoesNotFit as exc:
        host.budget_env = {"COMPOSE_PROFILES": "", "VLLM_GPU_MEMORY_UTILIZATION": "0.90",
                           "KV_CACHE_FREE_GPU_MEM_FRACTION": "0.90", "TRTLLM_MAX_KV_TOKENS": ""}
        return Check("GPU memory budget", False, str(exc), "one engine at a time: docker compose --profile vllm up")
    host.budget_env = plan.env()
    return Check("GPU memory budget", True, plan.describe())


def check_disk(host: Host, min_free_gib: float | None) -> Check:
    r = run(["docker", "info", "--format", "{{.DockerRootDir}}"])
    root = Path(r.stdout.strip() or "/var/lib/docker")
    probe = root if root.exists() else Path("/")
    free = shutil.disk_usage(probe).free / 2**30
    need = min_free_gib if min_free_gib is not None else IMAGES_GIB + 40
    return Check("free disk for images and engines", free >= need, f"{free:.0f} GiB free under {probe}",
                 f"free at least {need:.0f} GiB there (images ~{IMAGES_GIB} GiB, model, checkpoint and engine)")


def check_hf_token(host: Host, model_dir: Path | None) -> Check:
    model_id = host.env.get("MODEL_ID", "")
    if model_dir is not None or not model_id:
        return Check("HF_TOKEN", bool(model_id or model_dir), model_id or "MODEL_ID is not set",
                     "set MODEL_ID in .env (e.g. Qwen/Qwen2.5-1.5B-Instruct)")
    gated: bool | None = None
    if host.env.get("HF_HUB_OFFLINE") != "1":
        try:
            from huggingface_hub import HfApi

            gated = bool(HfApi().model_info(model_id).gated)
        except Exception:
            gated = None
    source = "the Hub says" if gated is not None else "known gated organisation"
    if gated is None:
        gated = model_id.startswith(GATED_ORGS)
    if gated and not host.env.get("HF_TOKEN"):
        return Check("HF_TOKEN", False, f"{model_id} is gated ({source}) and HF_TOKEN is empty",
                     "accept the model's licence on huggingface.co and set HF_TOKEN in .env")
    return Check("HF_TOKEN", True, f"{model_id}: {'gated, token set' if gated else 'not gated'}")


def check_grafana(host: Host) -> Check:
    ok = bool(host.env.get("GRAFANA_ADMIN_PASSWORD"))
    return Check("GRAFANA_ADMIN_PASSWORD", ok, "set" if ok else "empty (compose refuses to start Grafana)",
                 "set GRAFANA_ADMIN_PASSWORD in .env (there is no default password)")


def compose_ports(compose: Path) -> list[int]:
    text = compose.read_text()
    return sorted({int(p) for p in re.findall(r'"127\.0\.0\.1:(\d+):\d+"', text)})


def check_ports(host: Host, compose: Path) -> Check:
    busy = []
    for port in compose_ports(compose):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return Check("free ports", not busy, f"in use: {busy}" if busy else "all published ports are free",
                 "stop what listens there (ss -ltnp) or a running stack (docker compose down)")


def check_image(host: Host) -> Check:
    r = run(["docker", "run", "--rm", "--gpus", "all", TRTLLM_IMAGE, "python3", "-c", PROBE], timeout=600)
    try:
        found = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return Check("TensorRT-LLM image", False, (r.stderr or r.stdout).strip()[-300:] or "no answer",
                     "docker compose build trtllm-build")
    problems = [f"{mod}: {state}" for mod, state in found.items() if mod != "trtllm-build --help" and state != "ok"]
    settings = BuildSettings(model_dir=Path("/models/model"), engines_dir=Path("/engines"))
    flags = set()
    for precision in ("fp8", "bf16"):
        choice = choose(precision, "9.0")
        flags |= {a for a in make_plan(settings, choice, "k").commands[1] if a.startswith("--")}
    help_text = found.get("trtllm-build --help", "")
    absent = sorted(f for f in flags if f not in help_text)
    if absent:
        problems.append(f"trtllm-build does not offer {absent}")
    return Check("TensorRT-LLM image", not problems, "; ".join(problems) or
                 "quantize_and_export, modelopt, setuptools, datasets and every trtllm-build flag the plan uses",
                 "docker compose build trtllm-build (docker/trtllm.Dockerfile); the pinned image must be 25.12")


def checks(host: Host, args: argparse.Namespace) -> list[Callable[[], Check]]:
    return [lambda: check_docker(host), lambda: check_compose(host), lambda: check_toolkit(host),
            lambda: check_gpu(host), lambda: check_driver(host), lambda: check_precision(host),
            lambda: check_memory(host, args.model_dir), lambda: check_disk(host, args.min_free_gib),
            lambda: check_hf_token(host, args.model_dir), lambda: check_grafana(host),
            lambda: check_ports(host, args.compose), lambda: check_image(host)]


def write_env(path: Path, values: dict[str, str]) -> None:
    """Set ``values`` in the .env file, keeping every other line (and its comments) as it was."""
    lines = path.read_text().splitlines() if path.is_file() else []
    seen = set()
    for i, line in enumerate(lines):
        key = line.split("=", 1)[0].strip()
        if key in values and not line.lstrip().startswith("#"):
            lines[i] = f"{key}={values[key]}"
            seen.add(key)
    lines += [f"{k}={v}" for k, v in values.items() if k not in seen]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.preflight", description=__doc__.split("\n")[0])
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    parser.add_argument("--compose", type=Path, default=ROOT / "docker-compose.yml")
    parser.add_argument("--model-dir", type=Path, help="a downloaded checkpoint to size (default: MODEL_ID on the Hub)")
    parser.add_argument("--min-free-gib", type=float, help=f"disk needed (default {IMAGES_GIB + 40})")
    parser.add_argument("--write-env", action="store_true", help="write the GPU memory budgets into --env-file")
    args = parser.parse_args(argv)
    host = Host(env={**read_env_file(args.env_file), **{k: v for k, v in os.environ.items() if v}})
    results = []
    for check in checks(host, args):
        result = check()
        print(result.line(), flush=True)
        results.append(result)
    if args.write_env and host.budget_env:
        write_env(args.env_file, host.budget_env)
        print(f"wrote {', '.join(host.budget_env)} to {args.env_file}")
    blockers = [r.name for r in results if not r.ok and r.blocker]
    print(f"{len(blockers)} blocker(s){': ' + ', '.join(blockers) if blockers else ''}")
    return 1 if blockers else 0


if __name__ == "__main__":
    sys.exit(main())
