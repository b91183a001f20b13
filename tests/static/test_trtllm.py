"""The TensorRT-LLM build and its Triton model repository, checked without a GPU.

The build's precision choice and exact commands through ``--dry-run`` for each GPU
generation; skip-when-built and the manifest; every rendered ``config.pbtxt`` parsed into
Triton's ``ModelConfig`` protobuf (tritonclient's ``model_config_pb2``) with the values the
TensorRT-LLM backend needs, and every ensemble edge connecting tensors of the same type.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from engines.trtllm import repository
from loadgen.cli.engine_builds import describe, load_engine_manifests

ROOT = Path(__file__).resolve().parents[2]


def dry_run(capability: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    settings = ("PRECISION", "MAX_BATCH_SIZE", "MAX_SEQ_LEN", "TOKENIZER_DIR", "KV_CACHE_FREE_GPU_MEM_FRACTION")
    environ = {k: v for k, v in os.environ.items() if k not in settings}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "engines.trtllm.build", "--dry-run", "--compute-capability",
                           capability, "--engines-dir", "/engines", *args],
                          capture_output=True, text=True, cwd=ROOT, env=environ, timeout=60)


def field(out: str, name: str) -> str:
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith(name + ": "))


def commands(out: str) -> list[list[str]]:
    lines = out.splitlines()
    start = lines.index("would run:") + 1
    return [line.split() for line in lines[start:] if line.startswith("  ")]


def flag(cmd: list[str], name: str) -> str | None:
    return cmd[cmd.index(name) + 1] if name in cmd else None


@pytest.mark.parametrize(("capability", "gpu", "expected"), [
    ("8.0", "A100", "bf16"), ("8.6", "A10 / RTX 30xx", "bf16"), ("8.9", "L4 / L40S / RTX 40xx", "fp8"),
    ("9.0", "H100 / H200", "fp8"),
])
def test_precision_by_gpu_generation(capability: str, gpu: str, expected: str) -> None:
    result = dry_run(capability)
    assert result.returncode == 0, result.stderr
    assert field(result.stdout, "precision") == f"{expected} (requested: auto)", gpu
    quantize, build = commands(result.stdout)
    # the wheel's API through the rig's module: the NGC image has no /app/examples (issue 13)
    assert quantize[:3] == ["python3", "-m", "engines.trtllm.quantize"]
    assert build[0] == "trtllm-build"
    if expected == "fp8":
        assert flag(quantize, "--qformat") == "fp8" and flag(quantize, "--kv_cache_dtype") == "fp8"
        assert flag(quantize, "--calib_dataset") == "abisee/cnn_dailymail"  # huggingface_hub wants a namespace
        assert flag(build, "--use_fp8_context_fmha") == "enable"
    else:
        assert flag(quantize, "--qformat") == "full_prec" and flag(quantize, "--dtype") == "bfloat16"
        assert "--kv_cache_dtype" not in quantize and "--calib_dataset" not in quantize
        assert flag(build, "--use_fp8_context_fmha") == "disable"


def test_the_engine_has_what_inflight_batching_needs() -> None:
    _, build = commands(dry_run("9.0").stdout)
    assert flag(build, "--gpt_attention_plugin") == "auto"
    assert flag(build, "--remove_input_padding") == "enable"
    assert flag(build, "--kv_cache_type") == "paged"
    assert flag(build, "--use_paged_context_fmha") == "enable"  # chunked context, KV-cache reuse
    assert flag(build, "--max_beam_width") == "1"
    # every limit explicit (TensorRT-LLM's own defaults differ from vLLM's)
    assert [flag(build, f) for f in ("--max_batch_size", "--max_input_len", "--max_seq_len", "--max_num_tokens")] \
        == ["256", "2048", "4096", "8192"]


def test_limits_and_precision_come_from_the_environment_flags_win() -> None:
    result = dry_run("9.0", "--max-num-tokens", "4096",
                     env={"MAX_BATCH_SIZE": "64", "MAX_SEQ_LEN": "8192", "PRECISION": "bf16"})
    assert result.returncode == 0, result.stderr
    assert field(result.stdout, "precision") == "bf16 (requested: bf16)"
    _, build = commands(result.stdout)
    assert (flag(build, "--max_batch_size"), flag(build, "--max_seq_len"), flag(build, "--max_num_tokens")) \
        == ("64", "8192", "4096")


def test_repository_settings_come_from_the_environment() -> None:
    result = dry_run("9.0", env={"MAX_BATCH_SIZE": "64", "TOKENIZER_DIR": "/models/tok",
                                 "KV_CACHE_FREE_GPU_MEM_FRACTION": "0.8"})
    line = next(line for line in result.stdout.splitlines() if line.startswith("would render"))
    assert "tokenizer /models/tok, max_batch_size 64, kv_cache_free_gpu_mem_fraction 0.8" in line


def test_fp8_on_an_a100_falls_back_to_bf16_and_says_so() -> None:
    result = dry_run("8.0", "--precision", "fp8")
    assert result.returncode == 0, result.stderr
    assert field(result.stdout, "precision") == "bf16 (requested: fp8)"
    assert "no FP8" in field(result.stdout, "why") and "NOTE: fp8 was asked for but bf16 is built" in result.stdout
    assert "fp8" not in " ".join(" ".join(c) for c in commands(result.stdout)).replace("fp8_context_fmha", "")


def test_int8_weight_only_when_asked_and_fp16_below_ampere() -> None:
    int8 = dry_run("8.0", "--precision", "int8_wo")
    assert field(int8.stdout, "precision") == "int8_wo (requested: int8_wo)"
    assert flag(commands(int8.stdout)[0], "--qformat") == "int8_wo"
    turing = dry_run("7.5")
    assert field(turing.stdout, "precision") == "fp16 (requested: auto)"
    assert flag(commands(turing.stdout)[0], "--dtype") == "float16"


@pytest.mark.parametrize(("args", "message"), [
    (["--max-input-len", "4096"], "max_input_len (4096) must be below max_seq_len"),
    (["--max-num-tokens", "8", "--max-batch-size", "16"], "must be at least max_batch_size"),
])
def test_bad_limits_are_refused_with_the_reason(args: list[str], message: str) -> None:
    result = dry_run("9.0", *args)
    assert result.returncode == 2 and message in result.stderr


def test_bad_capability_and_dry_run_without_one_are_refused() -> None:
    assert "not a compute capability" in dry_run("nine").stderr
    result = subprocess.run([sys.executable, "-m", "engines.trtllm.build", "--dry-run"], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2 and "--compute-capability" in result.stderr


def _engine_root(out: str) -> Path:
    line = next(line for line in out.splitlines() if line.startswith("would write: "))
    return Path(line.removeprefix("would write: ").split(" and ")[0]).parent


def test_an_existing_engine_is_reused_and_its_manifest_reaches_the_loadgen(tmp_path: Path) -> None:
    model = tmp_path / "models" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"architectures": ["Qwen2ForCausalLM"]}')
    engines = tmp_path / "engines"
    base = [sys.executable, "-m", "engines.trtllm.build", "--compute-capability", "9.0", "--gpu-name", "H100",
            "--model-dir", str(model), "--engines-dir", str(engines)]
    planned = subprocess.run([*base, "--dry-run"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    root = _engine_root(planned.stdout)
    # What a finished build leaves: the engine and its manifest under the key of this model/precision/limits.
    (root / "engine").mkdir(parents=True)
    (root / "engine" / "config.json").write_text("{}")
    (root / "engine" / "rank0.engine").write_bytes(b"\0")
    manifest = {"engine": "tensorrt-llm", "precision": "fp8", "requested_precision": "auto", "key": root.name[-16:],
                "gpu": {"name": "H100", "compute_capability": "9.0"}, "built_at": "earlier"}
    (root / "manifest.json").write_text(json.dumps(manifest))

    reused = subprocess.run(base, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert reused.returncode == 0, reused.stderr
    assert "skipping the build" in reused.stdout
    assert json.loads((engines / "manifest.json").read_text())["precision"] == "fp8"
    config = text_format.Parse((engines / "repository" / "tensorrt_llm" / "config.pbtxt").read_text(),
                               model_config_pb2.ModelConfig())
    assert config.parameters["gpt_model_path"].string_value == str(root / "engine")
    builds = load_engine_manifests([engines / "manifest.json"])
    assert describe(builds) == ["tensorrt-llm: fp8 on H100 (9.0)"]

    # Other limits are another engine: the build is attempted (and fails here: no TensorRT-LLM).
    rebuilt = subprocess.run([*base, "--max-batch-size", "32"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert rebuilt.returncode == 1 and "step 1 failed" in rebuilt.stderr
    assert "skipping" not in rebuilt.stdout


# -- the model repository -------------------------------------------------------------------------

SETTINGS = repository.RepositorySettings(engine_dir=Path("/engines/m/engine"), tokenizer_dir=Path("/models/model"),
                                         max_batch_size=128, kv_cache_free_gpu_mem_fraction=0.85)


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, model_config_pb2.ModelConfig]:
    out = tmp_path_factory.mktemp("repo") / "repository"
    repository.render(out, SETTINGS)
    assert sorted(p.name for p in out.iterdir()) == sorted(repository.MODELS)
    parsed = {}
    for name in repository.MODELS:
        assert (out / name / "1").is_dir(), f"{name} has no version folder"
        parsed[name] = text_format.Parse((out / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        assert parsed[name].name == name
        assert parsed[name].max_batch_size == 128
    for name in ("preprocessing", "postprocessing", "tensorrt_llm_bls"):
        assert (out / name / "1" / "model.py").is_file()
    return parsed


def test_tensorrt_llm_model_config(configs: dict[str, model_config_pb2.ModelConfig]) -> None:
    trt = configs["tensorrt_llm"]
    params = {k: v.string_value for k, v in trt.parameters.items()}
    assert trt.backend == "tensorrtllm"
    assert trt.model_transaction_policy.decoupled is True
    assert trt.dynamic_batching.max_queue_delay_microseconds == 0
    assert params["gpt_model_type"] == "inflight_fused_batching"
    assert params["gpt_model_path"] == "/engines/m/engine"
    assert params["exclude_input_in_output"] == "true"
    assert params["kv_cache_free_gpu_mem_fraction"] == "0.85"
    # read by the backend without a default: a missing key fails the model load
    assert {"tokenizer_dir", "guided_decoding_backend", "xgrammar_tokenizer_info_path"} <= params.keys()
    assert not any("${" in v for v in params.values())
    inputs = {t.name: t for t in trt.input}
    assert [n for n, t in inputs.items() if not t.optional] == ["input_lengths", "request_output_len"]
    assert inputs["seed"].data_type == model_config_pb2.TYPE_UINT64 and "random_seed" not in inputs
    assert inputs["min_tokens"].data_type == model_config_pb2.TYPE_INT32 and "min_length" not in inputs
    assert list(inputs["request_output_len"].reshape.shape) == []
    outputs = {t.name: list(t.dims) for t in trt.output}
    assert outputs == {"output_ids": [-1, -1], "sequence_length": [-1]}


def test_tokenizer_models_read_the_model_folder(configs: dict[str, model_config_pb2.ModelConfig]) -> None:
    for name in ("preprocessing", "postprocessing", "tensorrt_llm_bls"):
        assert configs[name].backend == "python"
        assert configs[name].parameters["tokenizer_dir"].string_value == "/models/model"
    assert configs["tensorrt_llm_bls"].model_transaction_policy.decoupled is True


def test_ensemble_wiring_connects_tensors_of_the_same_type(configs: dict[str, model_config_pb2.ModelConfig]) -> None:
    ens = configs["ensemble"]
    assert ens.platform == "ensemble"
    steps = ens.ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["preprocessing", "tensorrt_llm", "postprocessing"]
    available = {t.name: t.data_type for t in ens.input}
    used = set()
    for step in steps:
        model = configs[step.model_name]
        model_inputs = {t.name: t for t in model.input}
        model_outputs = {t.name: t.data_type for t in model.output}
        for key, value in step.input_map.items():
            assert key in model_inputs, f"{step.model_name} has no input {key}"
            assert value in available, f"{step.model_name}.{key} ← {value}: nothing produces {value}"
            assert available[value] == model_inputs[key].data_type, f"{step.model_name}.{key} ← {value}: type"
            used.add(value)
        required = {n for n, t in model_inputs.items() if not t.optional}
        assert required <= set(step.input_map), f"{step.model_name}: required inputs unmapped"
        for key, value in step.output_map.items():
            assert key in model_outputs, f"{step.model_name} has no output {key}"
            available[value] = model_outputs[key]
    assert {t.name for t in ens.input} <= used, "an ensemble input goes nowhere"
    assert {t.name: t.data_type for t in ens.output} == {"text_output": model_config_pb2.TYPE_STRING}
    assert all(available[t.name] == t.data_type for t in ens.output)


def test_bls_and_ensemble_offer_clients_one_interface(configs: dict[str, model_config_pb2.ModelConfig]) -> None:
    def interface(cfg: model_config_pb2.ModelConfig) -> set[tuple]:
        return ({(t.name, t.data_type, tuple(t.dims), t.optional) for t in cfg.input}
                | {(t.name, t.data_type, tuple(t.dims), None) for t in cfg.output})

    assert interface(configs["ensemble"]) == interface(configs["tensorrt_llm_bls"])


def test_the_cpu_stand_in_speaks_the_same_interface(configs: dict[str, model_config_pb2.ModelConfig]) -> None:
    """The loadgen's Triton targets are tested against the CPU model: it must not accept what TensorRT-LLM refuses."""
    cpu = text_format.Parse((ROOT / "engines/triton/model_repository/ensemble/config.pbtxt").read_text(),
                            model_config_pb2.ModelConfig())
    gpu = {t.name: (t.data_type, list(t.dims)) for t in [*configs["ensemble"].input, *configs["ensemble"].output]}
    for tensor in [*cpu.input, *cpu.output]:
        assert tensor.name in gpu, f"the CPU model takes {tensor.name!r}, the TensorRT-LLM ensemble does not"
        assert gpu[tensor.name] == (tensor.data_type, list(tensor.dims)), tensor.name


# -- engines/trtllm/quantize.py: the checks before ModelOpt runs ----------------------------------

def test_quantize_names_every_missing_module_and_the_fix() -> None:
    from engines.trtllm import quantize

    def missing_setuptools(name: str) -> object:
        if name in ("setuptools", "datasets"):
            raise ImportError(f"No module named '{name}'")
        return object()

    with pytest.raises(quantize.QuantizeError, match=r"setuptools .*datasets .*docker compose build trtllm-build"):
        quantize.check_imports("fp8", missing_setuptools)
    quantize.check_imports("full_prec", lambda name: (_ for _ in ()).throw(ImportError()) if name == "datasets"
                           else object())  # BF16 needs no calibration data


def test_quantize_passes_only_the_arguments_the_installed_function_takes() -> None:
    from engines.trtllm import quantize

    def v110(*, model_dir, output_dir, qformat, tp_size, pp_size, seed, auto_quantize_bits=None):
        return None

    wanted = {"model_dir": "m", "output_dir": "o", "qformat": "fp8", "tp_size": 1, "pp_size": 1, "seed": 1,
              "cp_size": 1, "device": "cuda"}
    assert set(quantize.call_kwargs(v110, wanted)) == {"model_dir", "output_dir", "qformat", "tp_size", "pp_size",
                                                       "seed"}
    with pytest.raises(quantize.QuantizeError, match="requires \\['medusa'\\]"):
        quantize.call_kwargs(lambda *, model_dir, medusa: None, {"model_dir": "m"})


def test_the_side_by_side_token_bound_reaches_the_repository() -> None:
    result = dry_run("9.0", env={"TRTLLM_MAX_KV_TOKENS": "65536"})
    assert "max_tokens_in_paged_kv_cache 65536" in result.stdout
    settings = repository.RepositorySettings(engine_dir=Path("/e"), tokenizer_dir=Path("/t"),
                                             max_tokens_in_paged_kv_cache=65536)
    assert 'key: "max_tokens_in_paged_kv_cache"' in repository.render_configs(settings)["tensorrt_llm"]
