#!/usr/bin/env python3
"""modelapi's side-by-side benchmark (run it through bench/run.sh).

Builds the library, the local server and every client, runs the scenarios
with the clients interleaved, checks what each client received, and writes
BENCHMARKS.md. Only the standard library is used here.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
BUILD = os.path.join(BENCH, "build")
RESULTS = os.path.join(BENCH, "results")
SERVER = os.path.join(BENCH, "target", "release", "bench-server")
RUST_CLIENT = os.path.join(BENCH, "target", "release", "bench-rust-client")
NOTLS_DIR = os.path.join(BENCH, "target-notls")
PY = sys.executable

# Every client: name -> argv prefix (the scenario and its arguments follow).
CLIENTS = {
    "raw-c": [os.path.join(BUILD, "raw-c")],
    "curl-cjson": [os.path.join(BUILD, "curl-cjson")],
    "modelapi-c": [os.path.join(BUILD, "modelapi-c")],
    "modelapi-c-cb": [os.path.join(BUILD, "modelapi-c"), "--callback"],
    "modelapi-c-event": [os.path.join(BUILD, "modelapi-c"), "--events"],
    "modelapi-rs": [RUST_CLIENT],
    "modelapi-rs-iter": [RUST_CLIENT, "--iter"],
    "modelapi-rs-event": [RUST_CLIENT, "--events"],
    "py-httpx": [PY, os.path.join(BENCH, "clients", "py_client.py"), "httpx"],
    "py-openai": [PY, os.path.join(BENCH, "clients", "py_client.py"), "openai"],
}
DESCRIBE = {
    "raw-c": "C, hand-written HTTP/1.1 on one socket, byte scan for `\"content\":\"` (the floor)",
    "curl-cjson": "C, libcurl (one reused easy handle) + cJSON_Parse of every event",
    "modelapi-c": "C API, `modelapi_stream_open` + `modelapi_stream_next`; `modelapi_complete`;"
                  " (f): `modelapi_stream_next_event`, then `modelapi_stream_completion_json`",
    "modelapi-c-cb": "C API, callback `modelapi_stream` (streams only)",
    "modelapi-c-event": "C API, `modelapi_stream_next_event`, content events counted"
                        " ((b) and (b2) only)",
    "modelapi-rs": "Rust API, `ChatStream::next_chunk` (borrowed chunks); `complete`;"
                   " (f): `ChatStream::next_event`, then `ChatStream::completion`",
    "modelapi-rs-iter": "Rust API, `ChatStream` as an `Iterator` (a `String` per chunk)",
    "modelapi-rs-event": "Rust API, `ChatStream::next_event` (borrowed events), content events"
                         " counted ((b) and (b2) only)",
    "py-httpx": "Python, one keep-alive `httpx.Client`, `iter_lines` + `json.loads` per event",
    "py-openai": "Python, the `openai` package's sync client (`max_retries=0`)",
}
# Clients that are the same code as another one for non-stream requests.
STREAM_ONLY = {"modelapi-c-cb", "modelapi-rs-iter", "modelapi-c-event", "modelapi-rs-event"}
# The content streams read through next_event: in (b) and (b2) only, beside
# the next_chunk clients they are compared with.
EVENTS = {"modelapi-c-event": "modelapi-c", "modelapi-rs-event": "modelapi-rs"}
PYTHON = {"py-httpx", "py-openai"}
MODELAPI = ["modelapi-c", "modelapi-c-cb", "modelapi-c-event", "modelapi-rs", "modelapi-rs-iter",
            "modelapi-rs-event"]
# (f): one tool call's arguments in pieces, read and assembled into the answer.
TOOL_CLIENTS = ["modelapi-rs", "modelapi-c", "curl-cjson"]

_children = []  # processes to stop on the way out
_current = [None]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(cmd, cwd=ROOT, env=None, capture=False):
    log("+", " ".join(cmd))
    e = dict(os.environ)
    e.pop("CARGO_TARGET_DIR", None)
    if env:
        e.update(env)
    if capture:
        return subprocess.run(cmd, cwd=cwd, env=e, check=True, text=True,
                              stdout=subprocess.PIPE).stdout
    subprocess.run(cmd, cwd=cwd, env=e, check=True)
    return None


def out(cmd, **kw):
    try:
        return subprocess.run(cmd, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, **kw).stdout.strip()
    except OSError:
        return ""


# ---------------------------------------------------------------- building

def build(args):
    os.makedirs(BUILD, exist_ok=True)
    nice = ["nice", "-n", "10"]
    # The library for the C clients (target/release: libmodelapi.a and .so).
    sh(nice + ["cargo", "build", "--release", "--lib"])
    # The server and the Rust client, in bench/target.
    sh(nice + ["cargo", "build", "--release"], cwd=BENCH)
    if not args.quick or not os.path.exists(os.path.join(NOTLS_DIR, "min-size", "libmodelapi.so")):
        if args.quick:
            log("bench: --quick: skipping the --no-default-features build")
        else:
            # The plain-HTTP build, in the crate's size profile.
            sh(nice + ["cargo", "build", "--profile", "min-size", "--no-default-features",
                       "--lib", "--target-dir", NOTLS_DIR])
    cflags = ["-O2", "-Wall", "-Wextra", "-Werror"]
    src = os.path.join(BENCH, "clients")
    sh(["cc"] + cflags + ["-o", os.path.join(BUILD, "raw-c"), os.path.join(src, "raw.c")])
    sh(["cc"] + cflags + ["-o", os.path.join(BUILD, "curl-cjson"),
                          os.path.join(src, "curl_cjson.c"), "-lcurl", "-lcjson"])
    sh(["cc"] + cflags + ["-I", os.path.join(ROOT, "include"), "-o",
                          os.path.join(BUILD, "modelapi-c"), os.path.join(src, "modelapi_c.c"),
                          os.path.join(ROOT, "target", "release", "libmodelapi.a"),
                          "-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"])


# ---------------------------------------------------------------- processes

def stop_all():
    for p in [_current[0]] + _children:
        if p is not None and p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=5)
            except Exception:
                pass


def start_server(pin, vary=False, tools=False):
    cmd = (pin + [SERVER, "--exit-on-stdin-eof"] + (["--vary"] if vary else [])
           + (["--tools"] if tools else []))
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    _children.append(p)
    line = p.stdout.readline()
    m = re.match(r"PORT (\d+)", line)
    if not m:
        raise RuntimeError(f"the server did not start: {line!r}")
    return p, f"http://127.0.0.1:{m.group(1)}"


def run_client(pin, client, scenario_args, timeout):
    """Runs one client process; returns (result dict, wall seconds, maxrss KiB)."""
    cmd = pin + CLIENTS[client] + scenario_args
    t0 = time.perf_counter()
    fout, ferr = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    p = subprocess.Popen(cmd, stdout=fout, stderr=ferr)
    _current[0] = p
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    try:
        _, status, rusage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    finally:
        timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    fout.seek(0)
    ferr.seek(0)
    stdout, stderr = fout.read().decode(), ferr.read().decode()
    fout.close()
    ferr.close()
    _current[0] = None
    if p.returncode != 0:
        raise RuntimeError(f"{client} {' '.join(scenario_args)} failed (exit {p.returncode}):\n"
                           f"{stderr[-3000:]}{stdout[-1000:]}")
    lines = [l for l in stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"{client} printed no result:\n{stdout}\n{stderr}")
    res = json.loads(lines[-1])
    res["wait4_maxrss_kib"] = rusage.ru_maxrss
    return res, wall, res["peak_rss_kib"]


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def tool_arguments(desc, pieces):
    """(f): the arguments text of a call of `pieces` pieces, as the server
    makes it (its fixed head and tail, the body pieces in turn between)."""
    head, body, tail = desc["tool_head"], desc["tool_body"], desc["tool_tail"]
    k = max(0, pieces - len(head) - len(tail))
    cycles, rest = divmod(k, len(body))
    return "".join(head) + "".join(body) * cycles + "".join(body[:rest]) + "".join(tail)


def tool_expected(desc, pieces):
    """(f): dict(arguments, arguments_bytes, events) for `pieces`; checked
    against the server's own numbers for its default count."""
    if not hasattr(tool_expected, "checked"):
        args = tool_arguments(desc, desc["tool_pieces"]).encode()
        if (len(args) != desc["tool_arguments_bytes"]
                or f"{fnv1a64(args):016x}" != desc["tool_arguments_fnv1a64"]):
            raise RuntimeError("the runner's tool-call arguments differ from the server's")
        tool_expected.checked = True
    args = tool_arguments(desc, pieces)
    fixed = len(desc["tool_head"]) + len(desc["tool_tail"])
    # Every piece is an event, and so is the first (the id and name).
    return dict(arguments=args, arguments_bytes=len(args.encode()),
                events=max(pieces, fixed) + 1)


def check_answer(client, path, desc, want):
    """(f): the answer a client assembled (its chat.completion JSON)."""
    try:
        with open(path, encoding="utf-8") as f:
            answer = json.load(f)
    except (OSError, ValueError) as e:
        raise RuntimeError(f"MISMATCH: {client} tools: no readable answer in {path}: {e}")
    problems = []
    choice = (answer.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    calls = message.get("tool_calls") or []
    if answer.get("object") != "chat.completion":
        problems.append(f"object {answer.get('object')!r}")
    if choice.get("finish_reason") != "tool_calls":
        problems.append(f"finish_reason {choice.get('finish_reason')!r}")
    if message.get("content") is not None:
        problems.append(f"content {message.get('content')!r}")
    if len(calls) != 1:
        problems.append(f"{len(calls)} tool calls")
    else:
        call = calls[0]
        function = call.get("function") or {}
        if call.get("id") != desc["tool_id"]:
            problems.append(f"id {call.get('id')!r}")
        if call.get("type") != "function":
            problems.append(f"type {call.get('type')!r}")
        if function.get("name") != desc["tool_name"]:
            problems.append(f"name {function.get('name')!r}")
        got = function.get("arguments")
        if got != want["arguments"]:
            at = next((i for i, (x, y) in enumerate(zip(got or "", want["arguments"])) if x != y),
                      min(len(got or ""), len(want["arguments"])))
            problems.append(f"arguments differ at character {at} (length {len(got or '')},"
                            f" expected {len(want['arguments'])})")
    if problems:
        raise RuntimeError(f"MISMATCH: {client} tools: the answer in {path}: "
                           + "; ".join(problems))


def check(client, res, scenario, n, chunks, desc):
    if scenario == "tools":
        want = tool_expected(desc, chunks)
        expected = {"content_bytes": want["arguments_bytes"], "chunks": want["events"],
                    "requests": 1}
        for k, v in expected.items():
            if res.get(k) != v:
                raise RuntimeError(f"MISMATCH: {client} tools: {k} = {res.get(k)}, expected {v}"
                                   f" (result {res})")
        return
    if scenario in ("stream", "streams"):
        want = {"content_bytes": n * chunks * desc["piece_bytes"], "chunks": n * chunks,
                "requests": n}
    else:
        want = {"content_bytes": n * desc["answer_bytes"], "requests": n}
    for k, v in want.items():
        if res.get(k) != v:
            raise RuntimeError(f"MISMATCH: {client} {scenario}: {k} = {res.get(k)}, expected {v}"
                               f" (result {res})")


# ---------------------------------------------------------------- scenarios

def plan(args):
    if args.quick:
        return dict(reps=3, complete=200, stream=20000, py_stream=5000, streams=100,
                    per_stream=50, lengths=[20000, 100000], callgrind_chunks=2000,
                    callgrind_calls=50, tool_pieces=20000)
    return dict(reps=args.reps, complete=2000, stream=200000, py_stream=args.py_stream_chunks,
                streams=1000, per_stream=50, lengths=[20000, 200000, 1000000],
                callgrind_chunks=20000, callgrind_calls=200, tool_pieces=args.tool_pieces)


def scenario_runs(p):
    """(scenario key, clients, args builder(client) -> (argv, n, chunks))."""
    every = list(CLIENTS)
    nonstream = [c for c in every if c not in STREAM_ONLY]
    # (c) keeps its clients: the event readers are compared on (b) and (b2).
    no_events = [c for c in every if c not in EVENTS]

    def complete(c):
        return ["complete", p["complete"]], p["complete"], 0

    def stream(c):
        k = p["py_stream"] if c in PYTHON else p["stream"]
        return ["stream", k], 1, k

    def streams(c):
        return ["streams", p["streams"], p["per_stream"]], p["streams"], p["per_stream"]

    def once(c):
        return ["once"], 1, 0

    def tools(c):
        # The answer's JSON, written by the client after its measured part.
        return ["tools", p["tool_pieces"], answer_path(c)], 1, p["tool_pieces"]

    # (b2): (b) against the `--vary` server, without the Python clients
    # (their per-chunk cost is in (b); they would double the run's time).
    native = [c for c in every if c not in PYTHON]
    runs = [("a", nonstream, complete), ("b", every, stream), ("b2", native, stream),
            ("c", no_events, streams), ("e", nonstream, once)]
    if p.get("tool_pieces"):
        runs.append(("f", TOOL_CLIENTS, tools))
    return runs


def answer_path(client):
    return os.path.join(RESULTS, f"answer.tools.{client}.json")


def run_all(args, p, bases, pin, desc):
    """bases: scenario key -> server URL (the `--vary` server for b2, the
    `--tools` server for f)."""
    runs = []  # every run: dict(rep, scenario, client, seconds, wall, maxrss_kib, ...)
    for rep in range(p["reps"]):
        for key, clients, argf in scenario_runs(p):
            if args.only and key not in args.only:
                continue
            # Interleaved (ABCABC...), and the order rotates each repetition.
            shift = rep % len(clients)
            order = clients[shift:] + clients[:shift]
            for c in order:
                argv, n, chunks = argf(c)
                argv = [str(argv[0]), bases.get(key, bases["b"])] + [str(x) for x in argv[1:]]
                if key == "f" and os.path.exists(answer_path(c)):
                    os.remove(answer_path(c))
                res, wall, rss = run_client(pin, c, argv, args.timeout)
                check(c, res, argv[0], n, chunks, desc)
                if key == "f":
                    want = tool_expected(desc, chunks)
                    check_answer(c, answer_path(c), desc, want)
                    chunks = want["events"]  # (f) counts events per second
                runs.append(dict(rep=rep, scenario=key, client=c, n=n, chunks=chunks,
                                 seconds=res["seconds"], cpu_seconds=res["cpu_seconds"],
                                 setup_seconds=res["with_setup_seconds"],
                                 wall=wall, maxrss_kib=rss))
                log(f"rep {rep + 1}/{p['reps']} {key} {c:17s} {res['seconds']:.4f} s"
                    f"  wall {wall:.3f} s  rss {rss / 1024:.1f} MiB")
    return runs


def rss_vs_length(args, p, base, pin, desc):
    rows = []
    for length in p["lengths"]:
        for c in ["modelapi-c", "modelapi-c-cb", "curl-cjson", "raw-c"]:
            rss = []
            for _ in range(2):
                res, _, kib = run_client(pin, c, ["stream", base, str(length)], args.timeout)
                check(c, res, "stream", 1, length, desc)
                rss.append(kib)
            rows.append(dict(client=c, chunks=length, maxrss_kib=max(rss),
                             seconds=res["seconds"]))
            log(f"rss {c} {length}: {max(rss)} KiB")
    return rows


# ---------------------------------------------------------------- sizes

def hand_notes():
    """bench/NOTES.md, written by hand, closes the report."""
    path = os.path.join(BENCH, "NOTES.md")
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        return "\n" + f.read()


def sizes(notls_rebuilt=True):
    def stripped(path, name):
        if not os.path.exists(path):
            return None
        dst = os.path.join(BUILD, name)
        shutil.copyfile(path, dst)
        subprocess.run(["strip", dst], check=True)
        return dict(path=os.path.relpath(path, ROOT), unstripped=os.path.getsize(path),
                    stripped=os.path.getsize(dst))

    res = {
        "so_tls": stripped(os.path.join(ROOT, "target", "release", "libmodelapi.so"),
                           "libmodelapi.tls.stripped.so"),
        "so_notls": stripped(os.path.join(NOTLS_DIR, "min-size", "libmodelapi.so"),
                             "libmodelapi.notls.stripped.so"),
        "notls_rebuilt": notls_rebuilt,
        "c_static_exe": stripped(os.path.join(BUILD, "modelapi-c"), "modelapi-c.stripped"),
    }
    return res


# ---------------------------------------------------------------- callgrind

def callgrind_once(name, argv, binary):
    path = os.path.join(RESULTS, f"callgrind.{name}.out")
    exe = binary[:-len(".lines")] if binary.endswith(".lines") else binary
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={path}", exe] + argv
    log("+", " ".join(cmd))
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"callgrind failed:\n{r.stderr[-3000:]}")
    if binary.endswith(".lines"):
        return None
    prof = {}
    for kind in ("self", "inclusive"):
        text = subprocess.run(["callgrind_annotate", "--auto=no", f"--inclusive={'yes' if kind == 'inclusive' else 'no'}",
                               "--threshold=100", path], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, check=True).stdout
        prof[kind] = parse_annotate(text)
        prof["total"] = parse_total(text)
    return prof


def callgrind(p, base, vary_base):
    """Marginal instruction counts: a profile of N units and one of 2N, and
    their difference, so that process start and client creation cancel out."""
    if not shutil.which("valgrind"):
        return None
    os.makedirs(RESULTS, exist_ok=True)
    # The tables come from a copy without debug info: callgrind then counts
    # by symbol, not split per source file of inlined code. The line-level
    # profiles (callgrind.*.lines.out, for callgrind_annotate --auto=yes)
    # come from the binary itself.
    def nodebug(path):
        copy = os.path.join(BUILD, os.path.basename(path) + ".nodebug")
        shutil.copyfile(path, copy)
        os.chmod(copy, 0o755)
        subprocess.run(["strip", "--strip-debug", copy], check=True)
        return copy

    rust, c = nodebug(RUST_CLIENT), nodebug(os.path.join(BUILD, "modelapi-c"))
    result = {}
    for name, binary, lines, scen, n in [
            ("stream", rust, RUST_CLIENT, "stream", p["callgrind_chunks"]),
            ("stream-vary", rust, RUST_CLIENT, "stream", p["callgrind_chunks"]),
            ("complete", rust, RUST_CLIENT, "complete", p["callgrind_calls"]),
            ("complete-c", c, None, "complete", p["callgrind_calls"])]:
        url = vary_base if name == "stream-vary" else base
        small = callgrind_once(f"{name}.{n}", [scen, url, str(n)], binary)
        big = callgrind_once(f"{name}.{2 * n}", [scen, url, str(2 * n)], binary)
        if lines:
            callgrind_once(f"{name}.{2 * n}.lines", [scen, url, str(2 * n)], lines + ".lines")
        d = {}
        for kind in ("self", "inclusive"):
            diff = {fn: ir - small[kind].get(fn, 0) for fn, ir in big[kind].items()}
            d[kind] = sorted(((ir, fn) for fn, ir in diff.items() if ir > 0), reverse=True)
            if kind == "inclusive":
                d[kind] = d[kind][:80]
        d["marginal_total"] = big["total"] - small["total"]
        d["n"] = n
        d["small_total"] = small["total"]
        result[name] = d
    return result


def parse_total(text):
    m = re.search(r"^\s*([\d,]+)\s+(?:\(100\.0%\)\s+)?PROGRAM TOTALS", text, re.M)
    return int(m.group(1).replace(",", "")) if m else None


def parse_annotate(text):
    """function -> Ir, summed over the source files callgrind splits it into."""
    rows = {}
    body = text.split("file:function", 1)[-1]
    for line in body.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.+?)\s*$", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        where = m.group(3)
        where = re.sub(r"\s*\[[^\]]*\]$", "", where)  # the object file
        fn = where.split(":", 1)[1] if ":" in where else where
        fn = re.sub(r"\s*\([\d,]+x\)$", "", fn.strip())  # call counts
        fn = re.sub(r"::h[0-9a-f]{16}$", "", fn)
        rows[fn] = rows.get(fn, 0) + int(m.group(1).replace(",", ""))
    return rows


# ---------------------------------------------------------------- report

def med(xs):
    return statistics.median(xs) if xs else float("nan")


def per_unit(run, key="seconds"):
    """Seconds per unit: per call (a), per chunk (b), per stream (c), per process (e).
    key="cpu_seconds": the client's CPU time instead of wall time."""
    if run["scenario"] == "a":
        return run[key] / run["n"]
    if run["scenario"] in ("b", "b2", "f"):
        return run[key] / (run["n"] * run["chunks"])
    if run["scenario"] == "c":
        return run[key] / run["n"]
    return run["wall"] if key == "seconds" else run[key]


def summarize(runs, scenario):
    """client -> dict(unit=median seconds per unit, vs_curl, vs_raw (time ratios), ...)."""
    by = {}
    for r in runs:
        if r["scenario"] == scenario:
            by.setdefault(r["client"], {})[r["rep"]] = r
    summary = {}
    for c, reps in by.items():
        ratios_curl, ratios_raw, cpu_curl = [], [], []
        for rep, r in reps.items():
            if rep in by.get("curl-cjson", {}):
                ratios_curl.append(per_unit(r) / per_unit(by["curl-cjson"][rep]))
                cpu_curl.append(per_unit(r, "cpu_seconds")
                                / per_unit(by["curl-cjson"][rep], "cpu_seconds"))
            if rep in by.get("raw-c", {}):
                ratios_raw.append(per_unit(r) / per_unit(by["raw-c"][rep]))
        summary[c] = dict(
            unit=med([per_unit(r) for r in reps.values()]),
            vs_curl=med(ratios_curl), vs_raw=med(ratios_raw), cpu_vs_curl=med(cpu_curl),
            cpu_unit=med([per_unit(r, "cpu_seconds") for r in reps.values()]),
            vs_curl_range=(min(ratios_curl), max(ratios_curl)) if ratios_curl else None,
            setup=med([r["setup_seconds"] for r in reps.values()]),
            rss=med([r["maxrss_kib"] for r in reps.values()]),
            chunks=next(iter(reps.values()))["chunks"], n=next(iter(reps.values()))["n"],
            reps=len(reps))
    return summary


def event_vs_chunk(runs, scenario):
    """next_event against next_chunk on one content stream: chunk client ->
    dict(speed = median over the repetitions of (next_event's chunks/s /
    next_chunk's), its range, the same by CPU time, and both medians)."""
    by = {}
    for r in runs:
        if r["scenario"] == scenario:
            by.setdefault(r["client"], {})[r["rep"]] = r
    result = {}
    for event_client, chunk_client in EVENTS.items():
        ev, ch = by.get(event_client, {}), by.get(chunk_client, {})
        reps = sorted(set(ev) & set(ch))
        if not reps:
            continue
        speed = [per_unit(ch[i]) / per_unit(ev[i]) for i in reps]
        cpu = [per_unit(ch[i], "cpu_seconds") / per_unit(ev[i], "cpu_seconds") for i in reps]
        result[chunk_client] = dict(
            event_client=event_client, speed=med(speed), range=(min(speed), max(speed)),
            cpu_speed=med(cpu), chunk_rate=1 / med([per_unit(ch[i]) for i in reps]),
            event_rate=1 / med([per_unit(ev[i]) for i in reps]), reps=len(reps))
    return result


# Frames above the benchmark's loop, left out of the inclusive tables.
WRAPPER = re.compile(r"^(main|\(below main\)|__libc_start|0x[0-9a-f]+$|std::rt::|"
                     r"std::sys::backtrace|core::ops::function::|bench_rust_client::main)")


def short_fn(fn):
    fn = fn.replace("|", "\\|").replace("`", "'")
    return fn if len(fn) <= 150 else fn[:147] + "..."


def fmt_mib(kib):
    return f"{kib / 1024:.2f}"


def fmt_bytes(b):
    return f"{b / (1024 * 1024):.2f} MiB ({b:,} bytes)"


def machine_info():
    lscpu = out(["lscpu"])
    model = re.search(r"Model name:\s*(.+)", lscpu)
    return dict(
        cpu=model.group(1).strip() if model else platform.processor(),
        cpus=os.cpu_count(),
        kernel=platform.release(),
        os=out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        rustc=out(["rustc", "-V"]),
        cc=out(["cc", "--version"]).splitlines()[0] if out(["cc", "--version"]) else "",
        curl=out(["curl-config", "--version"]),
        cjson=cjson_version(),
        python=platform.python_version(),
        openai=out([PY, "-c", "import openai; print(openai.__version__)"]),
        httpx=out([PY, "-c", "import httpx; print(httpx.__version__)"]),
        valgrind=out(["valgrind", "--version"]),
        commit=out(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT),
        dirty=bool(out(["git", "status", "--porcelain", "--", "src", "Cargo.toml",
                        "Cargo.lock"], cwd=ROOT)),
    )


def cjson_version():
    try:
        h = open("/usr/include/cjson/cJSON.h").read()
        v = [re.search(rf"#define CJSON_VERSION_{k} (\d+)", h).group(1)
             for k in ("MAJOR", "MINOR", "PATCH")]
        return ".".join(v)
    except Exception:
        return "?"


def verdict(ok, lo=None, hi=None, target=None):
    """Met or not by the median; flagged when the per-repetition range straddles the target."""
    text = "**met**" if ok else "**not met**"
    if lo is not None and lo < target < hi:
        text += f" (per-repetition range {lo:.2f}–{hi:.2f} straddles {target}: not robust)"
    return text


def component(fn):
    """The part of the program a function belongs to, for the callgrind summary."""
    for label, pattern in COMPONENTS:
        if re.search(pattern, fn):
            return label
    return "other"


COMPONENTS = [
    ("JSON (serde_json, serde)", r"serde"),
    ("modelapi's own code", r"modelapi::"),
    ("HTTP (ureq, ureq_proto, http, httparse)", r"ureq|\bhttp::|httparse"),
    ("allocator (malloc, free)", r"^(_int_|malloc|free|cfree|realloc|calloc|__libc_malloc|"
                                 r"__libc_free|tcache|unlink_chunk|__rust_alloc|__rust_dealloc|"
                                 r"__rdl_|alloc::alloc::)"),
    ("libc memcpy, memset, memchr, ...", r"^__(mem|str)\w*_(avx|sse|evex|erms)|^(mem|str)\w+$"),
    ("Rust core/alloc/std (UTF-8 checks, searching, formatting, ...)", r"core::|alloc::|std::"),
]


def report(d):
    quick, cpu, command, p = d["quick"], d["cpu"], d["command"], d["plan"]
    info, desc, runs, rss_rows = d["machine"], d["server"], d["runs"], d["rss"]
    size_info, cg, elapsed = d["sizes"], d["callgrind"], d["elapsed"]
    load_before, load_after = d["load_before"], d["load_after"]
    A, B, C, E = (summarize(runs, s) for s in "abce")
    B2 = summarize(runs, "b2")
    F = summarize(runs, "f")
    EV = {key: event_vs_chunk(runs, key) for key in ("b", "b2")}
    L = []
    w = L.append
    w("# Benchmarks\n")
    w("A side-by-side benchmark of `modelapi` (its C and Rust APIs) against libcurl + cJSON,")
    w("a raw-socket floor, and the Python `openai` and `httpx` clients, all talking to the same")
    w("local OpenAI-shaped server over loopback. Written by `bench/run.py`; do not edit by hand.\n")
    if quick:
        w("> **`--quick` run**: fewer repetitions and chunks; a smoke test, not a measurement.\n")
    w("## Summary\n")
    for c in ["modelapi-c", "modelapi-rs"]:
        if c in B and c in A and c in C:
            w(f"- `{c}`: one stream (b) at {1 / B[c]['unit']:,.0f} chunks/s ="
              f" **{1 / B[c]['vs_curl']:.2f}× libcurl+cJSON**, {1 / B[c]['vs_raw']:.2f}× the raw"
              f" floor; `complete` (a) in {A[c]['unit'] * 1e6:.1f} µs ="
              f" **{A[c]['vs_curl']:.2f}× libcurl's time**; 50-chunk streams (c)"
              f" {C[c]['vs_curl']:.2f}× libcurl's time.")
    ev = EV["b"]
    if "modelapi-rs" in ev and "modelapi-c" in ev:
        w(f"- The same stream (b) read as events (`next_event`, `modelapi_stream_next_event`):"
          f" **{ev['modelapi-rs']['speed']:.2f}× the chunks/s of `next_chunk`** from Rust,"
          f" **{ev['modelapi-c']['speed']:.2f}× those of `modelapi_stream_next`** from C.")
    if F:
        parts = [f"`{c}` {1 / F[c]['unit']:,.0f} events/s"
                 + (f" ({1 / F[c]['vs_curl']:.2f}× libcurl+cJSON)" if c != "curl-cjson" else "")
                 + f", {fmt_mib(F[c]['rss'])} MiB" for c in TOOL_CLIENTS if c in F]
        w(f"- One tool call in {p['tool_pieces']:,} argument pieces (f), read and assembled"
          f" into the answer: " + "; ".join(parts) + " (peak RSS).")
    if "modelapi-c" in B2 and "modelapi-rs" in B2:
        w(f"- Chunks that differ beyond their content (b2, OpenAI's `obfuscation` field):"
          f" {1 / B2['modelapi-c']['vs_curl']:.2f}× libcurl+cJSON from C,"
          f" {1 / B2['modelapi-rs']['vs_curl']:.2f}× from Rust"
          f" ({1 / B2['modelapi-rs']['vs_raw']:.2f}× the raw floor).")
    rows_c = {r["chunks"]: r["maxrss_kib"] for r in rss_rows if r["client"] == "modelapi-c"}
    if rows_c:
        w("- C peak RSS while streaming: "
          + ", ".join(f"{fmt_mib(v)} MiB at {k:,} chunks" for k, v in sorted(rows_c.items()))
          + f" (libcurl+cJSON: {fmt_mib(B['curl-cjson']['rss'])} MiB)." if 'curl-cjson' in B
          else ".")
    so, so2 = size_info.get("so_tls"), size_info.get("so_notls")
    if so:
        w(f"- Stripped `libmodelapi.so`: {so['stripped'] / 2**20:.2f} MiB with TLS"
          + (f", {so2['stripped'] / 2**20:.2f} MiB without." if so2 else "."))
    w(f"- For scale: the Python `openai` client streams {1 / B['py-openai']['unit']:,.0f}"
      f" chunks/s and takes {A['py-openai']['unit'] * 1e6:,.0f} µs per `complete`; `httpx`"
      f" {1 / B['py-httpx']['unit']:,.0f} chunks/s and {A['py-httpx']['unit'] * 1e6:,.0f} µs."
      if "py-openai" in B and "py-httpx" in B and "py-openai" in A and "py-httpx" in A else "")
    w("- The issue's targets, met or not: [below](#targets-of-the-issue). Where the"
      " instructions go: [below](#where-the-time-goes).\n")

    w("## Reproduce\n")
    w("```sh\n" + command + "\n```\n")
    w("One command: it installs what is missing (Debian: `libcurl4-openssl-dev`, `libcjson-dev`,")
    w("`valgrind`; PyPI: `openai`, `httpx` into `bench/.venv`), builds the library")
    w("(`cargo build --release --lib`, plus a `--no-default-features` build in")
    w("`bench/target-notls`), the server and the Rust client (`bench/target`) and the C clients")
    w("(`bench/build`), runs everything, stops the server, and rewrites this file.")
    w("`bench/run.sh --quick` is a ~1 minute smoke run that writes")
    w("`bench/results/BENCHMARKS-quick.md` instead. Raw per-run data: `bench/results/runs.json`"
      " (`bench/run.sh --report-only` rewrites this file from it).\n")

    w("## Machine\n")
    w(f"- CPU: {info['cpu']}, {info['cpus']} vCPUs (KVM guest)")
    w(f"- Kernel: {info['kernel']} ({info['os']})")
    w(f"- Load average before / after the run: {load_before} / {load_after} (other builds and"
      " tests of the project were running on this shared machine)")
    w(f"- {info['rustc']}; {info['cc']}; libcurl {info['curl'].replace('libcurl ', '')};"
      f" cJSON {info['cjson']}; Python {info['python']}, openai {info['openai']},"
      f" httpx {info['httpx']}; {info['valgrind']}")
    w(f"- modelapi at commit `{info['commit']}`"
      + (" plus uncommitted changes in `src/` (work in progress of other engineers)"
         if info["dirty"] else "") + f"; run took {elapsed / 60:.1f} min\n")

    w("## Method\n")
    w(f"- Server (`bench/server`, Rust, no dependencies): HTTP/1.1 keep-alive on 127.0.0.1,"
      f" every response precomputed. A completion is a {desc['completion_response_bytes']}-byte"
      f" response (OpenAI's `chat.completion` shape, content {desc['answer_bytes']} bytes)."
      f" A stream is chunked SSE: a role chunk, N content events of"
      f" {desc['event_bytes']} bytes each (OpenAI's `chat.completion.chunk` with `id`, `object`,"
      f" `created`, `model`, `system_fingerprint`, `choices[{{index, delta:{{content:\"tok \"}},"
      f" logprobs, finish_reason}}]`), a finish chunk and `data: [DONE]`;"
      f" {desc['events_per_write']} events per `write()` (32 KiB HTTP chunks). N comes from"
      " `max_tokens` (or the `X-Bench-Chunks` header, used by the C API client whose"
      " message-array calls have no `max_tokens`).")
    w("- Clients, one process per run, each printing one JSON result line:\n")
    for c in CLIENTS:
        w(f"  - `{c}`: {DESCRIBE[c]}")
    w("")
    w("- Every run's received content bytes, chunk count and request count are checked against"
      " the expected values; a mismatch stops the benchmark.")
    w(f"- Client and server are both pinned to CPU {cpu} (`taskset -c {cpu}`): on 2"
      " noisy vCPUs a cross-CPU wake-up costs tens of microseconds, which would swamp the"
      " per-request numbers. Streaming throughput is therefore client + server CPU time on one"
      " core (the server's share is small: it copies precomputed 32 KiB blocks).")
    w(f"- {p['reps']} repetitions; within each repetition every scenario runs every client once,"
      " interleaved (ABCABC..., the order rotated each repetition), never AAABBB. Reported:"
      " medians, and ratios computed **within each repetition** (against that repetition's"
      " libcurl and raw runs) and then the median of those ratios.")
    w("- Times are measured inside each client around the request loop (the client object is"
      " created before, the first connection is inside); (e) is process start to exit as seen"
      " by the runner. Each client also reports its own CPU time (user + system,"
      " `CLOCK_PROCESS_CPUTIME_ID` / `time.process_time`) over the same loop: it leaves out"
      " the server's work and, above all, the time other processes of this shared machine"
      " took on the CPU, so its ratios are steadier than the wall-clock ones; the targets"
      " are judged on wall-clock time, as the issue states them.")
    w("- Peak RSS is the client's own `VmHWM` (from `/proc/self/status` at its"
      " end): `ru_maxrss` from `wait4` is not used, as Linux carries the pre-`exec` peak"
      " into it (the forked ~15 MiB Python runner).")
    if p["py_stream"] == p["stream"] and "py-openai" in summarize(runs, "b"):
        per_rep = summarize(runs, "b")["py-openai"]["unit"] * p["stream"]
        w(f"- The Python clients stream the same {p['stream']:,} chunks in (b): one `openai`"
          f" repetition takes {per_rep:.0f} s, under the ~60 s past which their count would be"
          " scaled down (`--py-stream-chunks`).")
    if p["py_stream"] != p["stream"]:
        w(f"- The Python clients stream {p['py_stream']:,} chunks in (b) instead of"
          f" {p['stream']:,} (one repetition would take too long); (b) compares per-chunk rates.")
    w("")

    def ratio(x):
        return "n/a" if x != x else f"{x:.2f}×"

    def spread(s, speed=False):
        """The median ratio vs libcurl and the range over the repetitions."""
        r = s["vs_curl_range"]
        if not r:
            return "n/a"
        lo, hi = (1 / r[1], 1 / r[0]) if speed else r
        return f"{ratio(1 / s['vs_curl'] if speed else s['vs_curl'])} ({lo:.2f}–{hi:.2f})"

    if B:
        w(f"## (b) One stream of {p['stream']:,} chunks: throughput\n")
        w("Speed ratios: >1× is faster than the reference (median of per-repetition ratios of"
          " chunks/s; in brackets the lowest and highest of those ratios).\n")
        w("| client | chunks | chunks/s (median) | ns/chunk | speed × libcurl+cJSON | speed × raw floor"
          " | client CPU ns/chunk | CPU speed × libcurl | peak RSS MiB |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c, s in sorted(B.items(), key=lambda kv: kv[1]["unit"]):
            w(f"| `{c}` | {s['chunks']:,} | {1 / s['unit']:,.0f} | {s['unit'] * 1e9:,.0f} |"
              f" {spread(s, speed=True)} | {ratio(1 / s['vs_raw'])} | {s['cpu_unit'] * 1e9:,.0f} |"
              f" {ratio(1 / s['cpu_vs_curl'])} | {fmt_mib(s['rss'])} |")
        w("")

    if B2:
        w(f"## (b2) The same stream, chunks that differ beyond their content\n")
        w("The server started with `--vary`: each content chunk also carries an"
          " `obfuscation` field whose value (1 to 13 characters) changes from chunk to chunk, as"
          " OpenAI's chunks do, so no two chunks have the same bytes around their content."
          " modelapi's stream reader still recognises each as a repeat of the last one (the"
          " changed value is one it skips, checked as a valid string), but by the slower of its"
          " two checks. The Python clients are left out (their per-chunk cost is in (b)).\n")
        w("| client | chunks | chunks/s (median) | ns/chunk | speed × libcurl+cJSON | speed × raw floor"
          " | client CPU ns/chunk | CPU speed × libcurl | peak RSS MiB |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c, s in sorted(B2.items(), key=lambda kv: kv[1]["unit"]):
            w(f"| `{c}` | {s['chunks']:,} | {1 / s['unit']:,.0f} | {s['unit'] * 1e9:,.0f} |"
              f" {spread(s, speed=True)} | {ratio(1 / s['vs_raw'])} | {s['cpu_unit'] * 1e9:,.0f} |"
              f" {ratio(1 / s['cpu_vs_curl'])} | {fmt_mib(s['rss'])} |")
        w("")

    if EV["b"] or EV["b2"]:
        w("## Events: `next_event` against `next_chunk` on the content streams\n")
        w("The content-only streams of (b) and (b2), read in the same repetitions by"
          " `modelapi-rs-event` (`ChatStream::next_event`, a `StreamEvent::Content` counted per"
          " non-empty text) and `modelapi-c-event` (`modelapi_stream_next_event`,"
          " `MODELAPI_EVENT_CONTENT`), beside `modelapi-rs` (`next_chunk`) and `modelapi-c`"
          " (`modelapi_stream_next`). The ratio is next_event's chunks/s over next_chunk's,"
          " computed within each repetition, then the median (in brackets the lowest and"
          " highest).\n")
        w("| API | stream | next_chunk chunks/s (median) | next_event chunks/s (median)"
          " | next_event speed × next_chunk | CPU speed × next_chunk |")
        w("|---|---|---:|---:|---:|---:|")
        for key in ("b", "b2"):
            for c, label in (("modelapi-rs", "Rust"), ("modelapi-c", "C")):
                e = EV[key].get(c)
                if e:
                    w(f"| {label} (`{c}` / `{e['event_client']}`) | ({key}) |"
                      f" {e['chunk_rate']:,.0f} | {e['event_rate']:,.0f} |"
                      f" {e['speed']:.3f}× ({e['range'][0]:.2f}–{e['range'][1]:.2f}) |"
                      f" {e['cpu_speed']:.3f}× |")
        w("")

    if F:
        n = p["tool_pieces"]
        want = tool_expected(desc, n)
        w(f"## (f) One tool call in {n:,} argument pieces: events and the assembled answer\n")
        w(f"The server started with `--tools`: one stream of a `{desc['tool_name']}` tool call,"
          " shaped as OpenAI streams them: a first chunk with `role`, `content: null` and the"
          " call's `index`, `id`, `type` and `function.name` (arguments `\"\"`), then one chunk"
          " per piece of `function.arguments`"
          f" (`{{\"tool_calls\":[{{\"index\":0,\"function\":{{\"arguments\":\"...\"}}}}]}}`,"
          f" {desc['tool_event_bytes']:.0f} bytes an event on average), a `finish_reason:"
          " \"tool_calls\"` chunk and `data: [DONE]`;"
          f" {desc['tool_events_per_write']} events per `write()`. The pieces are"
          f" {desc['tool_piece_bytes']:.1f} bytes on average, a few bytes of JSON text each:"
          " the arguments are a JSON object whose `content` string is a Markdown file, so"
          " pieces carry escapes on the wire (`\\\"`, `\\n`, `\\\\n`, `\\\\\\\"`, `\\\\\\\\`, `\\\\t`),"
          " newlines between the arguments' own tokens and multi-byte UTF-8 (é, “”, —, 日本語, ✓, 🚀);"
          f" {want['arguments_bytes']:,} bytes of arguments in all,"
          f" {want['events']:,} events (the first, with the id and name, included).\n")
        w("Each client reads every event and then builds the whole answer, both inside the"
          " measured time: `modelapi-rs` calls `ChatStream::next_event` to the end, then"
          " `ChatStream::completion()` (a `ChatCompletion`); `modelapi-c` calls"
          " `modelapi_stream_next_event` to the end, then `modelapi_stream_completion_json` (the"
          " answer as `chat.completion` JSON); `curl-cjson` parses every event with `cJSON_Parse`,"
          " appends each `tool_calls[]` piece to a growing buffer per tool index (the id and name"
          " kept from the first piece that has them) and at the end builds the"
          " `chat.completion` object with cJSON (the arguments buffer referenced, not copied)"
          " and prints it with `cJSON_PrintUnformatted`. Peak RSS is `VmHWM` once the answer is"
          " built; afterwards each client writes its answer to a file, and the runner checks"
          " that it is a `chat.completion` with one tool call whose id, name and arguments"
          " (byte for byte) are those sent, `content` null and `finish_reason`"
          " `tool_calls`, as well as the event count and the argument bytes the events"
          " carried.\n")
        w("| client | events | events/s (median) | ns/event | speed × libcurl+cJSON"
          " | client CPU ns/event | CPU speed × libcurl | peak RSS MiB |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        for c, s in sorted(F.items(), key=lambda kv: kv[1]["unit"]):
            w(f"| `{c}` | {s['chunks']:,} | {1 / s['unit']:,.0f} | {s['unit'] * 1e9:,.0f} |"
              f" {spread(s, speed=True)} | {s['cpu_unit'] * 1e9:,.0f} |"
              f" {ratio(1 / s['cpu_vs_curl'])} | {fmt_mib(s['rss'])} |")
        w("")

    if A:
        w(f"## (a) {p['complete']:,} sequential `complete` calls on one client\n")
        w("Time ratios: <1× is faster than the reference (in brackets the lowest and highest"
          " per-repetition ratio).\n")
        w("| client | µs per call (median) | time × libcurl+cJSON | time × raw floor"
          " | client CPU µs per call | CPU time × libcurl |")
        w("|---|---:|---:|---:|---:|---:|")
        for c, s in sorted(A.items(), key=lambda kv: kv[1]["unit"]):
            w(f"| `{c}` | {s['unit'] * 1e6:,.1f} | {spread(s)} | {ratio(s['vs_raw'])} |"
              f" {s['cpu_unit'] * 1e6:,.1f} | {ratio(s['cpu_vs_curl'])} |")
        w("")

    if C:
        w(f"## (c) {p['streams']:,} sequential streams of {p['per_stream']} chunks\n")
        w("| client | µs per stream (median) | time × libcurl+cJSON | time × raw floor"
          " | client CPU µs per stream | CPU time × libcurl |")
        w("|---|---:|---:|---:|---:|---:|")
        for c, s in sorted(C.items(), key=lambda kv: kv[1]["unit"]):
            w(f"| `{c}` | {s['unit'] * 1e6:,.1f} | {spread(s)} | {ratio(s['vs_raw'])} |"
              f" {s['cpu_unit'] * 1e6:,.1f} | {ratio(s['cpu_vs_curl'])} |")
        w("")

    if E:
        w("## (e) Create a client and finish one request\n")
        w("Process start to exit (as the runner sees it: exec, dynamic loading, interpreter start"
          " and imports included), and inside the process from the first line of `main` (or of the"
          " script, before its imports) to the end.\n")
        w("| client | process wall ms (median) | × libcurl+cJSON | in-process ms (median) |")
        w("|---|---:|---:|---:|")
        for c, s in sorted(E.items(), key=lambda kv: kv[1]["unit"]):
            w(f"| `{c}` | {s['unit'] * 1e3:,.2f} | {ratio(s['vs_curl'])} | {s['setup'] * 1e3:,.2f} |")
        w("")

    if rss_rows:
        w("## (d) Peak RSS against stream length\n")
        w("Peak RSS (`VmHWM`) of one process streaming N chunks (the larger of 2 runs).\n")
        lengths = p["lengths"]
        w("| client | " + " | ".join(f"{n:,} chunks" for n in lengths) + " |")
        w("|---|" + "---:|" * len(lengths))
        for c in ["modelapi-c", "modelapi-c-cb", "curl-cjson", "raw-c"]:
            cells = []
            for n in lengths:
                row = next((r for r in rss_rows if r["client"] == c and r["chunks"] == n), None)
                cells.append(f"{fmt_mib(row['maxrss_kib'])} MiB" if row else "")
            w(f"| `{c}` | " + " | ".join(cells) + " |")
        w("")
        w("(b)'s peak RSS for every client is in its table above.\n")

    w("## Sizes\n")
    w("| artefact | stripped | unstripped |")
    w("|---|---:|---:|")
    labels = {"so_tls": "`libmodelapi.so`, default features (TLS: rustls + webpki roots)",
              "so_notls": "`libmodelapi.so`, `--no-default-features --profile min-size` (no TLS)",
              "c_static_exe": "the `modelapi-c` client, statically linked with `libmodelapi.a`"}
    for k, label in labels.items():
        s = size_info.get(k)
        if s and k == "so_notls" and not size_info.get("notls_rebuilt", True):
            label += " (not rebuilt by this run: may be stale)"
        if s:
            w(f"| {label} | {fmt_bytes(s['stripped'])} | {fmt_bytes(s['unstripped'])} |")
        else:
            w(f"| {label} | not built | |")
    w("")

    # Targets.
    w("## Targets of the issue\n")
    w("| target | measured | verdict |")
    w("|---|---|---|")
    for c in ["modelapi-c", "modelapi-c-cb", "modelapi-rs"]:
        if c in B:
            sc, sr = 1 / B[c]["vs_curl"], 1 / B[c]["vs_raw"]
            lo, hi = (1 / B[c]["vs_curl_range"][1], 1 / B[c]["vs_curl_range"][0])
            w(f"| streaming chunks/s ≥ 2× libcurl+cJSON (`{c}`, (b)) | {sc:.3f}×"
              f" (CPU time: {1 / B[c]['cpu_vs_curl']:.2f}×) | {verdict(sc >= 2, lo, hi, 2)} |")
            w(f"| streaming chunks/s ≥ 0.8× the raw floor (`{c}`, (b)) | {sr:.3f}× |"
              f" {verdict(sr >= 0.8)} |")
    for c in ["modelapi-rs", "modelapi-c"]:
        e = EV["b"].get(c)
        if e:
            lo, hi = e["range"]
            w(f"| `next_event` chunks/s ≥ 0.9× `next_chunk`'s on a content stream"
              f" (`{e['event_client']}` / `{c}`, (b)) | {e['speed']:.3f}×"
              f" (CPU time: {e['cpu_speed']:.2f}×) | {verdict(e['speed'] >= 0.9, lo, hi, 0.9)} |")
    for c in ["modelapi-c", "modelapi-rs"]:
        if c in A:
            t = A[c]["vs_curl"]
            lo, hi = A[c]["vs_curl_range"]
            w(f"| time per `complete` ≤ 0.9× libcurl's (`{c}`, (a)) | {t:.3f}×"
              f" (CPU time: {A[c]['cpu_vs_curl']:.2f}×) | {verdict(t <= 0.9, lo, hi, 0.9)} |")
    rows_c = {r["chunks"]: r["maxrss_kib"] for r in rss_rows if r["client"] == "modelapi-c"}
    if rows_c:
        at = rows_c.get(200000) or B.get("modelapi-c", {}).get("rss")
        small, big = rows_c[min(rows_c)], rows_c[max(rows_c)]
        flat = big - small <= 256  # KiB: allocator noise, not growth
        w(f"| C 200,000-chunk stream peak RSS < 4 MiB (`modelapi-c`) | "
          f"{fmt_mib(at)} MiB | {verdict(at < 4096)} |")
        w(f"| ... and flat with length ({min(rows_c):,} → {max(rows_c):,} chunks) | "
          f"{fmt_mib(small)} → {fmt_mib(big)} MiB ({big - small:+d} KiB) | {verdict(flat)} |")
    s = size_info.get("so_tls")
    if s:
        w(f"| stripped `.so` ≤ 2.5 MiB with TLS | {s['stripped'] / 2**20:.2f} MiB |"
          f" {verdict(s['stripped'] <= 2.5 * 2**20)} |")
    s = size_info.get("so_notls")
    if s:
        w(f"| stripped `.so` ≤ 1 MiB without TLS | {s['stripped'] / 2**20:.2f} MiB |"
          f" {verdict(s['stripped'] <= 2**20)} |")
    w("")

    if cg:
        w("## Where the time goes\n")
        w("`valgrind --tool=callgrind` on the Rust client (`bench/target/release/"
          "bench-rust-client`: release, LTO, line tables) and, for `complete`, on the C client,"
          " the server running natively."
          " Each scenario is profiled twice, with N and 2N units, and the tables show the"
          " **difference** (the marginal cost of N units: process start and client creation"
          " cancel out), per function symbol (a copy of the binary without debug info)."
          " Instruction counts (Ir), not time: a system call costs far more time than its"
          " instructions show, and functions inlined by LTO count in their caller."
          " Profiles: `bench/results/callgrind.*.out`; `callgrind.*.lines.out` keep line"
          " tables, for `callgrind_annotate --auto=yes`.\n")
        for name, d in cg.items():
            n, total = d["n"], d["marginal_total"] or 1
            unit = "chunk" if name.startswith("stream") else "call"
            if name == "stream":
                w(f"### Rust, one stream: {n:,} more chunks (scenario (b) reduced)\n")
            elif name == "stream-vary":
                w(f"### Rust, one stream of chunks that differ beyond their content: {n:,} more"
                  " chunks (scenario (b2) reduced)\n")
            elif name == "complete":
                w(f"### Rust, `complete`: {n:,} more calls (scenario (a) reduced)\n")
            else:
                w(f"### C API, `modelapi_complete`: {n:,} more calls (scenario (a) reduced,"
                  " the `modelapi-c` client linked with `libmodelapi.a`)\n")
            w(f"**{total / n:,.0f} instructions per {unit}** (N = {n:,}: "
              f"{d['small_total']:,} instructions for the whole process)."
              + (f" The Rust client's `complete`: {cg['complete']['marginal_total'] / n:,.0f} per"
                 " call." if name == "complete-c" and "complete" in cg else "") + "\n")
            parts = {}
            for ir, fn in d["self"]:
                parts[component(fn)] = parts.get(component(fn), 0) + ir
            listed = sum(parts.values())
            parts["other"] = parts.get("other", 0) + max(0, total - listed)
            w("By component (self cost, grouped by function name):\n")
            w(f"| component | Ir per {unit} | % |")
            w("|---|---:|---:|")
            for label, ir in sorted(parts.items(), key=lambda kv: -kv[1]):
                w(f"| {label} | {ir / n:,.0f} | {100 * ir / total:.1f} |")
            w("")
            w("Self cost, top 20:\n")
            w(f"| Ir per {unit} | % | function |")
            w("|---:|---:|---|")
            for ir, fn in d["self"][:20]:
                w(f"| {ir / n:,.1f} | {100 * ir / total:.1f} | `{short_fn(fn)}` |")
            w("")
            w("Inclusive cost (callees included), top 15:\n")
            w(f"| Ir per {unit} | % | function |")
            w("|---:|---:|---|")
            shown = [(ir, fn) for ir, fn in d["inclusive"] if not WRAPPER.search(fn)]
            for ir, fn in shown[:15]:
                w(f"| {ir / n:,.1f} | {100 * ir / total:.1f} | `{short_fn(fn)}` |")
            w("")
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: ~1 minute")
    ap.add_argument("--reps", type=int, default=9, help="repetitions (default 9)")
    ap.add_argument("--py-stream-chunks", type=int, default=200000,
                    help="chunks of the Python clients in (b) (default 200000)")
    ap.add_argument("--tool-pieces", type=int, default=200000,
                    help="argument pieces of the tool call in (f) (default 200000;"
                         " --quick: 20000)")
    ap.add_argument("--only", help="run only these scenarios, comma-separated (a,b,b2,c,e,f,d;"
                                   " d is the peak RSS against stream length); writes"
                                   " bench/results/BENCHMARKS-only.md unless --out is given")
    ap.add_argument("--cpu", type=int, default=None,
                    help="the CPU to pin client and server to (default: the last one)")
    ap.add_argument("--no-build", action="store_true", help="use what is built")
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the report from bench/results/runs.json (runs-quick.json)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per client run")
    ap.add_argument("--out", help="the report (default BENCHMARKS.md, or"
                                  " bench/results/BENCHMARKS-quick.md with --quick)")
    args = ap.parse_args()
    if args.cpu is None:
        args.cpu = (os.cpu_count() or 1) - 1
    if args.only:
        args.only = set(args.only.split(","))
        unknown = args.only - {"a", "b", "b2", "c", "d", "e", "f"}
        if unknown:
            ap.error(f"--only: unknown scenarios {','.join(sorted(unknown))}")
    # A partial run never overwrites BENCHMARKS.md unless asked to.
    out_path = args.out or (os.path.join(RESULTS, "BENCHMARKS-quick.md") if args.quick
                            else os.path.join(RESULTS, "BENCHMARKS-only.md") if args.only
                            else os.path.join(ROOT, "BENCHMARKS.md"))
    command = "bench/run.sh" + (" --quick" if args.quick else "")
    extra = [a for a in sys.argv[1:] if a not in ("--quick", "--report-only", "--no-build")]
    if extra:
        command += " " + " ".join(extra)

    data_path = os.path.join(RESULTS, "runs-quick.json" if args.quick
                             else "runs-only.json" if args.only else "runs.json")
    if args.report_only:
        with open(data_path) as f:
            data = json.load(f)
        with open(out_path, "w") as f:
            f.write(report(data) + hand_notes())
        log(f"bench: wrote {os.path.relpath(out_path, ROOT)} from {data_path}")
        return

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    started = time.time()
    try:
        info = machine_info()  # the commit that gets built
        if not args.no_build:
            build(args)
        os.makedirs(RESULTS, exist_ok=True)
        desc = json.loads(subprocess.run([SERVER, "--describe"], stdout=subprocess.PIPE,
                                         text=True, check=True).stdout)
        p = plan(args)
        pin = ["taskset", "-c", str(args.cpu)] if shutil.which("taskset") else []
        load_before = " ".join(open("/proc/loadavg").read().split()[:3])
        server, base = start_server(pin)
        vary_server, vary_base = start_server(pin, vary=True)
        tools_server, tools_base = start_server(pin, tools=True)
        log(f"bench: servers at {base}, {vary_base} (--vary) and {tools_base} (--tools),"
            f" pinned to CPU {args.cpu}")
        runs = run_all(args, p, {"b": base, "b2": vary_base, "f": tools_base}, pin, desc)
        rss_rows = (rss_vs_length(args, p, base, pin, desc)
                    if not args.only or "d" in args.only else [])
        for srv in (server, vary_server, tools_server):
            srv.stdin.close()
            srv.wait(timeout=10)
        load_after = " ".join(open("/proc/loadavg").read().split()[:3])
        size_info = sizes(notls_rebuilt=not (args.quick or args.no_build))
        cg = None
        if not args.no_callgrind and not args.only:
            cg_server, cg_base = start_server([])
            cg_vary_server, cg_vary_base = start_server([], vary=True)
            cg = callgrind(p, cg_base, cg_vary_base)
            for srv in (cg_server, cg_vary_server):
                srv.stdin.close()
                srv.wait(timeout=10)
        elapsed = time.time() - started
        data = dict(quick=args.quick, cpu=args.cpu, command=command, plan=p, machine=info,
                    server=desc, runs=runs, rss=rss_rows, sizes=size_info, callgrind=cg,
                    load_before=load_before, load_after=load_after, elapsed=elapsed)
        with open(data_path, "w") as f:
            json.dump(data, f, indent=1)
        with open(out_path, "w") as f:
            f.write(report(data) + hand_notes())
        log(f"bench: wrote {os.path.relpath(out_path, ROOT)} in {elapsed / 60:.1f} min")
    finally:
        stop_all()


if __name__ == "__main__":
    main()
