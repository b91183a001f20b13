"""How accurate the client stays over https: TTFT and TPOT bias against the synthetic server's truth,
plain http and https side by side (client pinned to one core, the mock to the other).

Why a script: decryption costs the client CPU per chunk, so TLS could make timestamps late where plain
HTTP is exact; the kernel receive timestamps (kept over TLS, ``loadgen.clients.tls``) should keep the
bias where it was. Prints one JSON object; docs/selftest.md quotes it. Needs ``cryptography`` (test extra).

    .venv/bin/python benchmarks/tls_accuracy.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from loadgen.selftest import bias
from stack.certs import make_certificates
from stack.process import ManagedProcess, free_port


@contextlib.contextmanager
def mock(folder: Path, tls: tuple[Path, Path] | None, cpus: set[int] | None, *args: str) -> Iterator[str]:
    port = free_port()
    scheme = "https" if tls else "http"
    extra = ["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])] if tls else []
    proc = ManagedProcess(name="mock", argv=[sys.executable, "-m", "servers.mock", "--port", str(port), *args, *extra],
                          log_path=folder / f"mock-{port}.log", ready_url=f"{scheme}://127.0.0.1:{port}/health",
                          ready_timeout_s=30)
    with proc:
        if cpus and proc.pid:
            os.sched_setaffinity(proc.pid, cpus)
        yield f"{scheme}://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    client, server = ({cpus[0]}, set(cpus[1:])) if len(cpus) > 1 else (None, None)
    if client:
        os.sched_setaffinity(0, client)
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ca, cert, key = make_certificates(folder)
        os.environ["SSL_CERT_FILE"] = str(ca)  # trusted by the readiness poll, the /metrics scrapes and the client
        for name, tls in (("http", None), ("https", (cert, key))):
            with mock(folder, tls, server, "--ttft-ms", "50", "--itl-ms", "10") as url:
                figures[f"{name}_c8"] = bias(url, 8, 32 if args.quick else 200, 64, folder)
            streams = 50 if args.quick else 200
            with mock(folder, tls, server, "--ttft-ms", "50", "--itl-ms", "20") as url:
                figures[f"{name}_c{streams}"] = bias(url, streams, streams * 2, 100, folder)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
