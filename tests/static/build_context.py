"""The build context as Docker sees it, read without Docker: .dockerignore's rules (moby/patternmatcher), what each
Dockerfile COPYs from the context, and which checkout files end up where in an image. Used by the compose and the
Kubernetes static tests."""

from __future__ import annotations

import functools
import json
import posixpath
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
# What must never reach the daemon: a file inside each, as the context names it (gigabytes, secrets, bytecode).
KEPT_OUT = (".venv/bin/python", ".venv-vllm/bin/python", ".venv-triton/bin/python", ".venv-next/bin/python",
            "models/model/model.safetensors", "results/run/records.jsonl", ".git/HEAD", ".env",
            "loadgen/__pycache__/cli.cpython-311.pyc", "engines/trtllm/__pycache__/build.cpython-312.pyc")


def ignore_patterns(text: str) -> list[tuple[re.Pattern[str], bool]]:
    """.dockerignore lines as Docker reads them (moby/patternmatcher): '#' starts a comment line, spaces around
    are trimmed, '!' lets back in, the path is cleaned and a leading '/' dropped; '*' and '?' stop at '/',
    '**' spans any number of folders. Returns (regex, lets_back_in) per line, in order."""
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        back_in = line.startswith("!")
        line = posixpath.normpath(line.removeprefix("!").strip()).lstrip("/")
        regex, i = "", 0
        while i < len(line):
            if line.startswith("**", i):
                i += 3 if line.startswith("**/", i) else 2
                regex += ".*" if i >= len(line) else "(.*/)?"
                continue
            char = line[i]
            if char == "\\" and i + 1 < len(line):
                i += 1
                regex += re.escape(line[i])
            else:
                regex += {"*": "[^/]*", "?": "[^/]", "[": "[", "]": "]"}.get(char, re.escape(char))
            i += 1
        patterns.append((re.compile(regex), back_in))
    return patterns


def ignored(patterns: list[tuple[re.Pattern[str], bool]], path: str) -> bool:
    """Docker's rule: the last line that matches the path or one of its folders decides (a folder left out takes
    its contents with it, unless a later '!' line lets them back in)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    out = False
    for regex, back_in in patterns:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            out = not back_in
    return out


@functools.cache
def checkout_files() -> tuple[str, ...]:
    """The checkout's own files (tracked, or new and not ignored by git; deleted ones left out): what a COPY of a
    folder is meant to carry. Bytecode, venvs and caches are not among them."""
    if not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout to tell the project's files from local ones")
    listing = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    return tuple(sorted(p for p in set(listing.split("\0")) if p and (ROOT / p).is_file()))


def dockerfile_copies(text: str) -> list[tuple[list[str], str, bool]]:
    """Each COPY/ADD from the build context as (sources, absolute destination, destination is a folder); relative
    destinations resolve against WORKDIR. COPY --from=... reads another stage or image, not the context."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    copies, workdir = [], "/"
    for line in "\n".join(lines).replace("\\\n", " ").splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            workdir = "/"
        elif instruction.upper() == "WORKDIR":
            workdir = posixpath.join(workdir, rest.strip())
        elif instruction.upper() in {"COPY", "ADD"}:
            flags = []
            while rest.lstrip().startswith("--"):
                flag, _, rest = rest.lstrip().partition(" ")
                flags.append(flag)
            if any(flag.startswith("--from") for flag in flags):
                continue
            *sources, dest = json.loads(rest) if rest.lstrip().startswith("[") else rest.split()
            folder = dest.endswith("/") or posixpath.basename(dest) in {".", ".."} or len(sources) > 1
            copies.append((sources, posixpath.normpath(posixpath.join(workdir, dest)), folder))
    return copies


def copied_from(source: str, files: tuple[str, ...]) -> list[tuple[str, str]]:
    """The checkout files one COPY source takes, each as (checkout path, path below the destination): a folder's
    contents keep their layout below it; a file (or a wildcard's match) lands under its own name."""
    source = posixpath.normpath(source).lstrip("/")
    if source == ".":
        return [(f, f) for f in files]
    if any(char in source for char in "*?["):
        pattern = ignore_patterns(source)[0][0]
        return [(f, posixpath.basename(f)) for f in files if pattern.fullmatch(f)]
    if source in files:
        return [(source, posixpath.basename(source))]
    return [(f, f.removeprefix(source + "/")) for f in files if f.startswith(source + "/")]


def image_files(dockerfile: str, dockerignore: str) -> dict[str, str]:
    """{path in the image: path in the checkout} for each checkout file the Dockerfile COPYs from the context
    that the .dockerignore keeps."""
    patterns, shipped = ignore_patterns(dockerignore), {}
    for sources, dest, folder in dockerfile_copies(dockerfile):
        for source in sources:
            for path, below in copied_from(source, checkout_files()):
                if ignored(patterns, path):
                    continue
                is_file = posixpath.normpath(source).lstrip("/") == path
                image = dest if is_file and not folder else posixpath.join(dest, below)
                shipped[image] = path
    return shipped


def context_problems(dockerignore: str, dockerfiles: dict[str, str]) -> list[str]:
    """Every file each COPY source names in the checkout is in the context; the heavy or secret paths are not."""
    patterns, problems = ignore_patterns(dockerignore), []
    for name, text in dockerfiles.items():
        for sources, _, _ in dockerfile_copies(text):
            for source in sources:
                taken = [path for path, _ in copied_from(source, checkout_files())]
                left_out = [path for path in taken if ignored(patterns, path)]
                if not taken:
                    problems.append(f"{name}: COPY {source}: no such file or folder in the checkout")
                elif left_out:
                    problems.append(f"{name}: COPY {source}, but .dockerignore leaves out {left_out[:3]} "
                                    f"({len(left_out)} files)")
    return problems + [f".dockerignore lets {path} into the build context" for path in KEPT_OUT
                       if not ignored(patterns, path)]
