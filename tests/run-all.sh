#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every
# test, none of them optional.
#
#   bash tests/run-all.sh          (`make test` runs the same)
#
#   1. tests/tools.sh: the system packages the tests name (compilers, make,
#      cmake, valgrind, libcurl's headers, python3's pip and venv,
#      abigail-tools, pkg-config, LÖVE, Mono), when missing;
#   2. tests/llamacpp/install.sh: llama-server and a small model, into
#      ~/.cache/modelapi (once);
#   3. cargo test --no-fail-fast with the LiteLLM, llama.cpp and bindings
#      tests mandatory (they fail, rather than skip, when their server or
#      tool is missing); one failing test file does not hide the others;
#   4. the build without network code (--no-default-features, in its own
#      target folder, target/no-net): the tests of what it keeps.
# Needs only bash and the Rust toolchain itself: not even make.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/tools.sh
bash tests/llamacpp/install.sh >/dev/null
status=0
MODELAPI_LITELLM=1 MODELAPI_LLAMACPP=1 MODELAPI_BINDINGS=1 cargo test --no-fail-fast || status=$?
echo "== the build without network code (cargo test --no-default-features)"
cargo test --no-fail-fast --no-default-features --target-dir target/no-net \
  --test no_net --test detached || status=$?
exit "$status"
