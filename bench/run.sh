#!/usr/bin/env bash
# modelapi's side-by-side benchmark: the one command.
#
#   bench/run.sh            full run (8-12 min with the builds cached), writes BENCHMARKS.md
#   bench/run.sh --quick    smoke run (~1 min), writes bench/results/BENCHMARKS-quick.md
#   bench/run.sh --help     every option (of bench/run.py)
#
# Installs what is missing (Debian: libcurl4-openssl-dev libcjson-dev
# valgrind strace gcc python3-venv; PyPI: openai httpx into bench/.venv), builds
# the library, the server and the clients, runs every scenario, and stops
# every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in libcurl4-openssl-dev libcjson-dev valgrind strace gcc; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "bench: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi

venv=bench/.venv
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" >&2; then
    rm -rf "$venv"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
    python3 -m venv "$venv" >&2
  fi
fi
if ! "$venv/bin/python" -c 'import openai, httpx' 2>/dev/null; then
  echo "bench: installing openai httpx into $venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check openai httpx >&2
fi

exec "$venv/bin/python" bench/run.py "$@"
