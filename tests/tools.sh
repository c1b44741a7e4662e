#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain: every system
# package a test names (compilers, make, cmake, valgrind, libcurl's
# headers, python3 with pip and venv, abigail-tools, pkg-config, LÖVE,
# Mono), and nothing that is already there. tests/run-all.sh (the
# README's test command) runs it
# before the tests; run it alone to set a machine up:
#
#   bash tests/tools.sh            # check, and install what is missing
#   bash tests/tools.sh --check    # only say what is missing (exit 1 if any)
#
# What needs what:
#   cc, c++, make, valgrind     the C and C++ examples (tests/c_examples.rs,
#                               tests/header.rs), under valgrind
#   curl-config                 libcurl's headers (libcurl4-openssl-dev), for
#                               the examples that carry their own bytes
#                               (examples-c/own_transport*, tests/own_transport.rs)
#   abidw, abidiff, nm          the ABI guard (tests/abi.rs): abigail-tools,
#                               binutils
#   pkg-config, cmake           the install tests (tests/install.rs), and
#                               the llama-server build (tests/llamacpp/)
#   python3 -m pip, venv        the LiteLLM proxy (tests/litellm.rs) and the
#                               llama.cpp packages (tests/llamacpp/install.sh)
#   love                        LÖVE 11 (LuaJIT): the Lua binding and its
#                               game (tests/lua.rs)
#   mcs, mono                   Mono: the C# binding (tests/csharp.rs)
#
# Debian packages are installed with apt-get as root, or through sudo when
# it needs no password; otherwise the script prints the one command to run
# and fails. The Python pieces (LiteLLM, llama.cpp's source and a model)
# are installed into ~/.cache/modelapi by the tests themselves, once.
set -euo pipefail

check_only=0
[ "${1:-}" = "--check" ] && check_only=1

# command -> the Debian package that brings it.
tools=(
  "cc gcc"
  "gcc gcc"
  "c++ g++"
  "g++ g++"
  "make make"
  "valgrind valgrind"
  "curl-config libcurl4-openssl-dev"
  "abidw abigail-tools"
  "abidiff abigail-tools"
  "nm binutils"
  "readelf binutils"
  "pkg-config pkg-config"
  "cmake cmake"
  "love love"
  "mcs mono-mcs"
  "mono mono-runtime"
)

missing=()
for pair in "${tools[@]}"; do
  read -r command package <<<"$pair"
  if ! command -v "$command" >/dev/null 2>&1; then
    case " ${missing[*]:-} " in
      *" $package "*) ;;
      *) missing+=("$package") ;;
    esac
  fi
done

# LiteLLM's virtualenv and the llama.cpp packages need python3 with pip
# and venv: Debian splits these off its python3 (python3-pip,
# python3-venv); other Pythons (pyenv) bring them.
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1 ||
   ! python3 -m pip --version >/dev/null 2>&1; then
  missing+=(python3 python3-pip python3-venv)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "tests/tools.sh: every tool the tests need is here" >&2
  exit 0
fi

command="apt-get install -y --no-install-recommends ${missing[*]}"
if [ $check_only -eq 1 ]; then
  echo "tests/tools.sh: missing: ${missing[*]}; install with: sudo $command" >&2
  exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "tests/tools.sh: the tests need ${missing[*]}, and installing them needs root." >&2
  echo "Run this once, then run the tests again:" >&2
  echo "    sudo apt-get update && sudo $command" >&2
  exit 1
fi

echo "tests/tools.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" $command -qq >/dev/null

# Whatever apt-get said, the tools must now be here.
exec bash "$0" --check
