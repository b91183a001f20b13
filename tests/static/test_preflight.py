"""``python -m engines.preflight`` against stand-in ``docker`` and ``nvidia-smi`` executables on PATH.

The stand-ins print what the real tools print for the same arguments (``docker version --format``,
``docker compose version --short``, ``nvidia-smi -L``, ``nvidia-smi --query-gpu=... --format=csv,noheader,nounits``);
``STANDIN_FAIL`` makes one of them answer as a broken host would. One failing case per check.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engines.trtllm.plan import BuildSettings, make_plan
from engines.trtllm.precision import choose

ROOT = Path(__file__).resolve().parents[2]
FLAGS = sorted({a for p in ("fp8", "bf16") for a in make_plan(
    BuildSettings(model_dir=Path("/m"), engines_dir=Path("/e")), choose(p, "9.0"), "k").commands[1]
    if a.startswith("--")})

DOCKER = '''
import json, os, sys
fail = os.environ.get("STANDIN_FAIL", "")
args = sys.argv[1:]
if args[:1] == ["version"]:
    if fail == "docker":
        print("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
              file=sys.stderr); sys.exit(1)
    print("28.5.1")
elif args[:2] == ["compose", "version"]:
    print("2.20.2" if fail == "compose" else "2.40.3")
elif args[:1] == ["info"]:
    print(os.environ["STANDIN_ROOT"])
elif args[:1] == ["run"] and "nvidia-smi" in args:
    if fail == "toolkit":
        print('docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].',
              file=sys.stderr); sys.exit(125)
    print("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-3f1e2a4b-0000-1111-2222-333344445555)")
elif args[:1] == ["run"]:
    found = {m: "ok" for m in ["tensorrt_llm.quantization.quantize_by_modelopt", "modelopt", "setuptools",
                               "datasets"]}
    flags = FLAGS
    if fail == "image":
        found["setuptools"] = "missing: No module named 'setuptools'"
        flags = [f for f in flags if f != "--use_paged_context_fmha"]
    found["trtllm-build --help"] = "usage: trtllm-build [-h] " + " ".join(f"[{f} X]" for f in flags)
    print(json.dumps(found))
else:
    sys.exit(2)
'''

NVIDIA_SMI = '''
import os, sys
gpu = {"ok": "NVIDIA H100 80GB HBM3, 580.95.05, 9.0, 81559", "driver": "NVIDIA GeForce RTX 4090, 570.86.10, 8.9, 24564",
       "memory": "NVIDIA L4, 580.95.05, 8.9, 23034"}
fail = os.environ.get("STANDIN_FAIL", "")
if fail == "gpu":
    print("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", file=sys.stderr)
    sys.exit(9)
print(gpu.get(fail, gpu["ok"]))
'''


@pytest.fixture
def host(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("docker", f"FLAGS = {FLAGS!r}\n" + DOCKER), ("nvidia-smi", NVIDIA_SMI)):
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
        path.chmod(0o755)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"num_hidden_layers": 32, "num_attention_heads": 32,
                                                   "num_key_value_heads": 8, "hidden_size": 4096}))
    with open(model / "model.safetensors", "wb") as f:  # a sparse file of an 8B model's size
        f.truncate(16_060_522_496)
    env_file = tmp_path / ".env"
    env_file.write_text("# kept\nMODEL_ID=Qwen/Qwen2.5-7B-Instruct\nGRAFANA_ADMIN_PASSWORD=s3cret\nHF_TOKEN=\n"
                        "VLLM_GPU_MEMORY_UTILIZATION=0.90\n")
    compose = tmp_path / "compose.yml"
    compose.write_text('ports: ["127.0.0.1:0:1"]\n')
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "MODEL_ID", "GRAFANA_ADMIN_PASSWORD",
                                                            "PRECISION", "MAX_SEQ_LEN")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", STANDIN_ROOT=str(tmp_path), HF_HUB_OFFLINE="1")
    return {"env": env, "env_file": env_file, "model": model, "compose": compose, "tmp": tmp_path}


def preflight(host: dict, *args: str, fail: str = "", **env: str) -> tuple[int, dict[str, str], str]:
    result = subprocess.run([sys.executable, "-m", "engines.preflight", "--env-file", str(host["env_file"]),
                             "--compose", str(host["compose"]), "--model-dir", str(host["model"]),
                             "--min-free-gib", "0", *args],
                            capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={**host["env"], "STANDIN_FAIL": fail, **env})
    lines = {}
    for line in result.stdout.splitlines():
        if line.startswith("["):
            mark, rest = line[1:5].strip(), line[7:]
            lines[rest.split(":", 1)[0]] = mark
    return result.returncode, lines, result.stdout


def test_a_ready_h100_host_passes_and_gets_the_budgets_in_env(host: dict) -> None:
    code, marks, out = preflight(host, "--write-env")
    assert code == 0, out
    assert set(marks.values()) == {"ok"} and len(marks) == 12, out
    assert "fp8" in out and "NVIDIA H100 80GB HBM3" in out
    written = host["env_file"].read_text()
    assert written.startswith("# kept\nMODEL_ID=Qwen/Qwen2.5-7B-Instruct\n")
    assert "COMPOSE_PROFILES=baseline,vllm,triton" in written and "VLLM_GPU_MEMORY_UTILIZATION=0.31" in written
    assert written.count("VLLM_GPU_MEMORY_UTILIZATION=") == 1


@pytest.mark.parametrize(("fail", "check", "fix"), [
    ("docker", "docker engine", "start it"),
    ("compose", "docker compose v2", "upgrade to Compose >= 2.26.0"),
    ("toolkit", "NVIDIA container toolkit", "nvidia-ctk runtime configure"),
    ("gpu", "GPU", "install the NVIDIA driver"),
    ("driver", "driver for CUDA 13 images", "upgrade the driver to R580"),
    ("memory", "GPU memory budget", "docker compose --profile vllm up"),
    ("image", "TensorRT-LLM image", "docker compose build trtllm-build"),
])
def test_each_broken_tool_fails_its_check_with_the_fix(host: dict, fail: str, check: str, fix: str) -> None:
    code, marks, out = preflight(host, fail=fail)
    assert code == 1 and marks[check] == "FAIL", out
    assert fix in out.split(f"] {check}:", 1)[1].split("\n[", 1)[0]


def test_the_image_check_names_the_missing_module_and_flag(host: dict) -> None:
    _, _, out = preflight(host, fail="image")
    assert "setuptools: missing" in out and "--use_paged_context_fmha" in out


@pytest.mark.slow  # seconds: left out of make test-fast
def test_precision_disk_token_password_and_ports(host: dict) -> None:
    assert preflight(host, PRECISION="fp4")[1]["TensorRT-LLM precision"] == "FAIL"
    assert preflight(host, "--min-free-gib", "1e12")[1]["free disk for images and engines"] == "FAIL"
    host["env_file"].write_text("MODEL_ID=Qwen/Qwen2.5-7B-Instruct\nGRAFANA_ADMIN_PASSWORD=\n")
    assert preflight(host)[1]["GRAFANA_ADMIN_PASSWORD"] == "FAIL"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        host["compose"].write_text(f'ports: ["127.0.0.1:{busy.getsockname()[1]}:80"]\n')
        assert preflight(host)[1]["free ports"] == "FAIL"


def test_a_gated_model_without_a_token_is_a_blocker(host: dict) -> None:
    host["env_file"].write_text("MODEL_ID=meta-llama/Llama-3.1-8B-Instruct\nGRAFANA_ADMIN_PASSWORD=x\n")
    result = subprocess.run([sys.executable, "-m", "engines.preflight", "--env-file", str(host["env_file"]),
                             "--compose", str(host["compose"]), "--min-free-gib", "0"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120, env=host["env"])
    assert result.returncode == 1
    assert "[FAIL] HF_TOKEN: meta-llama/Llama-3.1-8B-Instruct is gated (known gated organisation)" in result.stdout
    assert "set HF_TOKEN in .env" in result.stdout
