#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, gcc, g++, make,
# valgrind and python3 with pip (a fresh machine's), and nothing that is
# already there. `make test` runs it before `cargo test`; run it alone to
# set a machine up:
#
#   bash tests/tools.sh            # check, and install what is missing
#   bash tests/tools.sh --check    # only say what is missing (exit 1 if any)
#
# What needs what:
#   cc, c++, make, valgrind     the C and C++ examples (tests/c_examples.rs,
#                               tests/header.rs), under valgrind
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
  "c++ g++"
  "make make"
  "valgrind valgrind"
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

python_ok=1
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1 ||
   ! python3 -m pip --version >/dev/null 2>&1; then
  python_ok=0
  # Debian's python3 splits venv and pip off; other Pythons (pyenv) have them.
  if [ "$(command -v python3 || true)" = /usr/bin/python3 ]; then
    missing+=(python3-venv python3-pip)
  fi
fi

if [ ${#missing[@]} -eq 0 ]; then
  if [ $python_ok -eq 0 ]; then
    echo "tests/tools.sh: python3 with pip and venv is needed (the LiteLLM and llama.cpp tests)" >&2
    exit 1
  fi
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
