"""``python -m servers.hf --model DIR --host 127.0.0.1 --port P``: the HF/FastAPI baseline server."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time

from pydantic import ValidationError

from servers.hf.config import ServerConfig
from servers.hf.runner import ModelLoadError


def parse_args(argv: list[str] | None = None) -> ServerConfig:
    parser = argparse.ArgumentParser(prog="python -m servers.hf", description=__doc__)
    fields = ServerConfig.model_fields
    parser.add_argument("--model", required=True, help=fields["model"].description)
    parser.add_argument("--host", default=fields["host"].default)
    parser.add_argument("--port", type=int, default=fields["port"].default)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help=fields["dtype"].description)
    parser.add_argument("--max-queue", type=int, default=fields["max_queue"].default,
                        help=fields["max_queue"].description)
    parser.add_argument("--served-model-name", help=fields["served_model_name"].description)
    parser.add_argument("--scheduler", default="naive", choices=["naive", "continuous"],
                        help="naive: one request at a time (a plain HF server); continuous: iteration-level batching")
    parser.add_argument("--max-num-seqs", type=int, help=fields["max_num_seqs"].description)
    parser.add_argument("--kv-cache-tokens", type=int, help=fields["kv_cache_tokens"].description)
    parser.add_argument("--max-model-len", type=int, help=fields["max_model_len"].description)
    parser.add_argument("--max-num-batched-tokens", type=int, help=fields["max_num_batched_tokens"].description)
    parser.add_argument("--torch-threads", type=int, help=fields["torch_threads"].description)
    parser.add_argument("--linear-kernel", choices=["torch", "onednn"], help=fields["linear_kernel"].description)
    parser.add_argument("--max-request-bytes", type=int, help=fields["max_request_bytes"].description)
    parser.add_argument("--max-prompt-chars", type=int, help=fields["max_prompt_chars"].description)
    parser.add_argument("--request-timeout-s", type=float, help=fields["request_timeout_s"].description)
    parser.add_argument("--socket-send-buffer-bytes", type=int, help=fields["socket_send_buffer_bytes"].description)
    parser.add_argument("--stream-stall-timeout-s", type=float, help=fields["stream_stall_timeout_s"].description)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    try:
        return ServerConfig(**{k: v for k, v in vars(args).items() if v is not None})
    except ValidationError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("servers.hf")

    import uvicorn

    from servers.hf.app import create_app, runner_for
    from servers.hf.model_thread import ModelThread
    from servers.hf.warmup import warm_up

    started = time.perf_counter()
    model_thread = ModelThread()  # every torch call of the process from here on runs there
    try:
        runner = model_thread.call(runner_for, config)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model_thread.call(warm_up, runner)
    log.info("model %s loaded on %s (%s, %d parameters, context %d) in %.1fs", config.model, runner.info.device,
             runner.info.dtype, runner.info.num_parameters, runner.max_model_len, time.perf_counter() - started)
    app = model_thread.call(create_app, config, runner, model_thread.executor)
    server_config = uvicorn.Config(app, host=config.host, port=config.port, log_level=config.log_level,
                                   access_log=False, timeout_graceful_shutdown=5)
    sock = server_config.bind_socket()
    # Accepted connections inherit the listening socket's SO_SNDBUF (and lose autotuning with it).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, config.socket_send_buffer_bytes)
    uvicorn.Server(server_config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
