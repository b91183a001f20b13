"""``python -m servers.mock --port P --ttft-ms X --itl-ms Y [--tokens-per-chunk K] [faults]``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from servers.mock.server import MockConfig, MockProtocol, MockServer
from servers.mock.sockets import listen
from servers.mock.tls import server_context, tls_transport


def parse_args(argv: list[str] | None = None) -> MockConfig:
    p = argparse.ArgumentParser(prog="python -m servers.mock", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--ttft-ms", type=float, default=50.0, help="request received → first token")
    p.add_argument("--itl-ms", type=float, default=10.0, help="time per token after the first")
    p.add_argument("--tokens-per-chunk", type=int, default=1)
    p.add_argument("--output-tokens", type=int, default=16, help="when the request gives no max_tokens")
    p.add_argument("--model", default="mock")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-concurrency", type=int, default=0,
                   help="N>0: serve at most N generation requests at once; later ones wait in a FIFO queue "
                        "(a known capacity: N / service time)")
    p.add_argument("--api-key", help="require `Authorization: Bearer KEY` on POSTs (401 otherwise), as vLLM does")
    p.add_argument("--ssl-certfile", help="serve https with this certificate (PEM; with --ssl-keyfile)")
    p.add_argument("--ssl-keyfile", help="the certificate's private key (PEM)")
    p.add_argument("--events-per-write", type=int, default=1,
                   help="N>1: write N token events per write, every N × ITL (more events/s than one by one; "
                        "the mock's own ITL record is then per write)")
    p.add_argument("--prefix-cache-block", type=int, default=0,
                   help="N>0: simulate a prefix cache of N-word blocks and report usage.prompt_tokens_details")
    for fault, what in (("fail-500", "answer HTTP 500"), ("fail-429", "answer HTTP 429"),
                        ("drop", "close the connection mid-stream"), ("stall", "stop writing mid-stream"),
                        ("malformed", "send a malformed event mid-stream"),
                        ("error-event", "send an error object mid-stream after HTTP 200")):
        p.add_argument(f"--{fault}-rate", type=float, default=0.0, help=f"probability to {what}")
    a = p.parse_args(argv)
    if a.events_per_write < 1:
        p.error("--events-per-write must be at least 1")
    if a.tokens_per_chunk < 1:
        p.error("--tokens-per-chunk must be at least 1")
    if bool(a.ssl_certfile) != bool(a.ssl_keyfile):
        p.error("--ssl-certfile and --ssl-keyfile go together")
    return MockConfig(host=a.host, port=a.port, ttft_ms=a.ttft_ms, itl_ms=a.itl_ms,
                      tokens_per_chunk=a.tokens_per_chunk, output_tokens=a.output_tokens, model=a.model,
                      seed=a.seed, fail_500_rate=a.fail_500_rate, fail_429_rate=a.fail_429_rate,
                      drop_rate=a.drop_rate, stall_rate=a.stall_rate, malformed_rate=a.malformed_rate,
                      error_event_rate=a.error_event_rate, prefix_cache_block=a.prefix_cache_block,
                      max_concurrency=a.max_concurrency, api_key=a.api_key, ssl_certfile=a.ssl_certfile,
                      ssl_keyfile=a.ssl_keyfile, events_per_write=a.events_per_write)


async def serve(config: MockConfig) -> None:
    server = MockServer(config)
    loop = asyncio.get_running_loop()
    tls = server_context(config.ssl_certfile, config.ssl_keyfile) if config.ssl_certfile else None
    listener = listen(loop, config.host, config.port, lambda: MockProtocol(server),
                      **({"transport": tls_transport(tls)} if tls else {}))
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"mock serving on {'https' if tls else 'http'}://{config.host}:{config.port}", flush=True)
    await stop.wait()
    loop.remove_reader(listener.fileno())
    listener.close()


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        import uvloop

        uvloop.run(serve(config))
    except ImportError:
        asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
