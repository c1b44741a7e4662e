#!/usr/bin/env python3
"""Rewrites the cdef embedded in bindings/lua/modelapi.lua from
include/modelapi.h: the header without its comments, # lines and the
extern "C" guard (what tests/lua.rs checks). Run after the C API changes:

    python3 bindings/lua/update-cdef.py
"""
import pathlib
import re

root = pathlib.Path(__file__).resolve().parents[2]
header = (root / "include/modelapi.h").read_text()
header = re.sub(r"/\*.*?\*/", "", header, flags=re.S)
header = re.sub(r"//[^\n]*", "", header)
kept, in_cplusplus = [], False
for line in header.splitlines():
    stripped = line.strip()
    if stripped.startswith("#ifdef __cplusplus") or stripped.startswith("#if defined(__cplusplus)"):
        in_cplusplus = True
    elif in_cplusplus:
        in_cplusplus = not stripped.startswith("#endif")
    elif not stripped.startswith("#") and stripped:
        kept.append(line.rstrip())
cdef = "\n".join(kept) + "\n"
lua_path = root / "bindings/lua/modelapi.lua"
lua = lua_path.read_text()
start = lua.index("local HEADER_CDEF = [[\n") + len("local HEADER_CDEF = [[\n")
end = lua.index("]]", start)
lua_path.write_text(lua[:start] + cdef + lua[end:])
print(f"{lua_path.relative_to(root)}: cdef of {len(kept)} lines")
