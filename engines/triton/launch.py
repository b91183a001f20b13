"""Start the real ``tritonserver`` (bundled in PyPI ``nvidia-pytriton``) on the rig's model repository.

Why the fixes below (../shared/FACTS.md): the python backend's stub must load the
``libpython3.11`` of the interpreter that owns ``.venv-triton`` (the system's older 3.11
fails with ``'_thread.RLock' object has no attribute '_recursion_count'``), so that
interpreter's LIBDIR goes first on ``LD_LIBRARY_PATH`` with pytriton's bundled libraries;
the venv's ``bin`` goes first on ``PATH`` so the stub imports the venv's packages (torch,
transformers); the repository root goes on ``PYTHONPATH`` so the model reuses the
baseline's generation code. The backend directory is assembled once from pytriton's files
(``libtriton_python.so``, ``triton_python_backend_utils.py`` and the stub for this Python).
Every address is 127.0.0.1 with an explicit port (Triton rejects port 0).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from engines.serve import exec_engine, serve_parser
from engines.spec import Launch, PortSource
from stack.process import ManagedProcess

TRITON_VENV = Path(__file__).resolve().parents[2] / ".venv-triton"
MODEL_REPOSITORY = Path(__file__).parent / "model_repository"
MODEL_NAME = "ensemble"
READY_TIMEOUT_S = 180.0  # ~20 s here: the python stub imports torch and loads the model


@dataclass(frozen=True)
class TritonPorts:
    http: int
    grpc: int
    metrics: int


@dataclass(frozen=True)
class TritonInstall:
    venv: Path
    package: Path  # .../site-packages/pytriton/tritonserver
    libs: Path  # .../site-packages/nvidia_pytriton.libs
    python_version: str
    python_libdir: str

    @classmethod
    def find(cls, venv: Path = TRITON_VENV) -> TritonInstall:
        python = venv / "bin" / "python"
        if not python.exists():
            raise FileNotFoundError(f"{python} is missing: run `make triton` to install Triton's CPU stack")
        probe = subprocess.run(
            [str(python), "-c", "import sys, sysconfig, pytriton, os; "
             "print(f'{sys.version_info[0]}.{sys.version_info[1]}'); print(sysconfig.get_config_var('LIBDIR')); "
             "print(os.path.dirname(pytriton.__file__))"],
            capture_output=True, text=True, check=True)
        version, libdir, package = probe.stdout.split()
        site = Path(package).parent
        return cls(venv=venv, package=Path(package) / "tritonserver", libs=site / "nvidia_pytriton.libs",
                   python_version=version, python_libdir=libdir)

    @property
    def binary(self) -> Path:
        return self.package / "bin" / "tritonserver"

    def backend_dir(self) -> Path:
        """``<venv>/rig-backends`` holding ``python/`` with the backend library, its utils and our stub."""
        root = self.venv / "rig-backends"
        target = root / "python"
        sources = [self.package / "backends" / "python" / "libtriton_python.so",
                   self.package / "backends" / "python" / "triton_python_backend_utils.py",
                   self.package / "python_backend_stubs" / self.python_version / "triton_python_backend_stub"]
        target.mkdir(parents=True, exist_ok=True)
        for source in sources:
            dest = target / source.name
            if not dest.exists() or dest.stat().st_size != source.stat().st_size:
                shutil.copy2(source, dest)
        return root

    def env(self, model_dir: Path, repo_root: Path) -> dict[str, str]:
        import os

        library_path = [self.python_libdir, str(self.libs.resolve())]
        if os.environ.get("LD_LIBRARY_PATH"):
            library_path.append(os.environ["LD_LIBRARY_PATH"])
        return {"LD_LIBRARY_PATH": ":".join(library_path),
                "PATH": f"{(self.venv / 'bin').resolve()}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                "PYTHONPATH": str(repo_root.resolve()),
                "RIG_MODEL_DIR": str(model_dir.resolve()),
                "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def triton_argv(install: TritonInstall, ports: TritonPorts, repository: Path = MODEL_REPOSITORY,
                host: str = "127.0.0.1") -> list[str]:
    return [str(install.binary), "--model-repository", str(repository.resolve()),
            "--backend-directory", str(install.backend_dir().resolve()),
            "--http-address", host, "--http-port", str(ports.http),
            "--grpc-address", host, "--grpc-port", str(ports.grpc),
            "--metrics-address", host, "--metrics-port", str(ports.metrics),
            "--allow-metrics", "true", "--allow-gpu-metrics", "false", "--allow-cpu-metrics", "true",
            "--metrics-config", "summary_latencies=true", "--log-verbose", "0",
            "--exit-timeout-secs", "10"]


def triton_process(model_dir: str | Path, ports: TritonPorts, log_dir: Path,
                   venv: Path = TRITON_VENV) -> ManagedProcess:
    install = TritonInstall.find(venv)
    repo_root = Path(__file__).resolve().parents[2]
    return ManagedProcess(name="Triton (CPU, python backend)", argv=triton_argv(install, ports),
                          log_path=log_dir / f"triton-{ports.http}.log",
                          ready_url=f"http://127.0.0.1:{ports.http}/v2/health/ready",
                          env=install.env(Path(model_dir), repo_root), ready_timeout_s=READY_TIMEOUT_S)


def start(model_dir: Path, log_dir: Path, free_port: PortSource) -> Launch:
    """The local stack's Triton: HTTP (generate), gRPC and metrics, each on a port of its own."""
    ports = TritonPorts(http=free_port(), grpc=free_port(), metrics=free_port())
    return Launch(process=triton_process(model_dir, ports, log_dir),
                  urls={"triton-generate": f"http://127.0.0.1:{ports.http}",
                        "triton-grpc": f"grpc://127.0.0.1:{ports.grpc}"},
                  metrics_url=f"http://127.0.0.1:{ports.metrics}/metrics")


def main(argv: list[str] | None = None) -> None:
    """The compose CPU flavour's ``triton`` service: this interpreter's venv holds pytriton's ``tritonserver``.

    ``--port`` is HTTP; gRPC and metrics take the next two ports (8000, 8001, 8002 as in the GPU service).
    ``--served-model-name`` does not apply: the repository names its model (``ensemble``)."""
    parser = serve_parser("triton")
    parser.add_argument("--model-repository", type=Path, default=MODEL_REPOSITORY)
    args, extra = parser.parse_known_args(argv)
    install = TritonInstall.find(Path(sys.prefix))
    ports = TritonPorts(http=args.port, grpc=args.port + 1, metrics=args.port + 2)
    repo_root = Path(__file__).resolve().parents[2]
    exec_engine([*triton_argv(install, ports, args.model_repository, host=args.host), *extra],
                install.env(args.model, repo_root))


if __name__ == "__main__":
    main()
