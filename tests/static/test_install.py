"""What ``pip install`` of the rig brings: the load generator alone stays light (no torch, no numpy, no gRPC), the
Triton gRPC client is the ``[triton]`` extra, and every install that needs the triton-grpc kind asks for it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
import venv
from pathlib import Path

import pytest

from loadgen.registry import DISTRIBUTION

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LIGHT_MB = 150  # the whole core install, what `pip install .` adds to a bare venv (MB as `du -sm` counts: MiB)
MB = 2**20


def test_tritonclient_is_the_triton_extra_not_a_core_dependency() -> None:
    assert PROJECT["name"] == DISTRIBUTION  # the name the missing-extra error tells the user to install
    assert not [dep for dep in PROJECT["dependencies"] if dep.startswith("tritonclient")]
    assert PROJECT["optional-dependencies"]["triton"] == ["tritonclient[grpc]>=2.50"]


def test_make_setup_and_the_loadgen_image_install_the_triton_extra() -> None:
    setup = re.search(r"pip install [^\n]*-e '\.\[([^\]]*)\]'", (ROOT / "Makefile").read_text())
    assert setup and "triton" in setup[1].split(","), "make setup must keep the triton-grpc kind for the tests"
    image = (ROOT / "docker" / "loadgen.Dockerfile").read_text()
    assert "x['triton']" in image  # its dependencies, installed in the layer before the code
    assert re.search(r"pip install [^\n]*\.\[[^\]]*triton", image)


def du_bytes(folder: Path) -> int:
    """Disk usage as ``du`` counts it (allocated blocks)."""
    return sum(os.lstat(os.path.join(path, name)).st_blocks * 512 for path, _, names in os.walk(folder)
               for name in names)


def top_entries(site: Path, leave_out: set[str], n: int = 12) -> str:
    """The largest entries of site-packages but those in ``leave_out``, in MB."""
    sizes = sorted((du_bytes(p) if p.is_dir() else p.lstat().st_blocks * 512, p.name) for p in site.iterdir()
                   if p.name not in leave_out)
    return ", ".join(f"{name} {size / MB:.0f}" for size, name in reversed(sizes[-n:]))


def source_copy(dest: Path) -> Path:
    """The files a clone has (tracked, and untracked but not ignored): an install from the working tree itself
    would build in it (build/, *.egg-info) and could pick up a stale build/lib."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.mark.slow  # a minute: a venv and pip install from PyPI (the machine's pip config: its wheel folder, cert)
def test_the_load_generator_alone_installs_light_and_runs(tmp_path: Path) -> None:
    env_dir = tmp_path / "light"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir, py = env_dir / "bin", env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"

    def run(*argv: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """In the light venv, away from the checkout (whose loadgen/ a ``python -c`` would import)."""
        return subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)

    site = Path(run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    bare, bare_names = du_bytes(site), {p.name for p in site.iterdir()}  # pip, setuptools: not the rig's weight
    installing = run(py, "-m", "pip", "install", "--quiet", source_copy(tmp_path / "src"), timeout=600)
    assert installing.returncode == 0, installing.stderr
    added_mb = (du_bytes(site) - bare) / MB

    installed = run(py, "-m", "pip", "list", "--format=freeze").stdout.lower()
    assert not [d for d in ("torch", "numpy", "grpcio", "tritonclient") if f"\n{d}==" in f"\n{installed}"], installed
    helped = run(bin_dir / "loadgen", "--help")
    assert helped.returncode == 0 and "usage: loadgen" in helped.stdout, helped.stderr
    # The triton-grpc kind says what to install, for real this time; the manifest lists no tritonclient.
    refused = run(bin_dir / "loadgen", "run", "--target", "t=triton-grpc@grpc://127.0.0.1:1", "--out", tmp_path / "out")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"pip install '{DISTRIBUTION}[triton]'" in refused.stderr and "Traceback" not in refused.stderr
    versions = run(py, "-c", "from loadgen.manifest import versions; print(sorted(versions()))").stdout
    assert "'pydantic'" in versions and "tritonclient" not in versions, versions

    print(f"light install: {added_mb:.0f} MB over a bare venv; largest (MB): {top_entries(site, bare_names)}")
    assert added_mb < LIGHT_MB, f"{added_mb:.0f} MB; largest (MB): {top_entries(site, bare_names)}"
