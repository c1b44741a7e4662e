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

# Poll mode (scenarios pi, pl, pt): streams started with modelapi_stream_start
# / ModelApi::stream_request_start and driven by modelapi_stream_poll /
# ChatStream::poll_event. Not part of CLIENTS: they run in these scenarios only.
_C, _RS = os.path.join(BUILD, "modelapi-c"), RUST_CLIENT
POLL_CLIENTS = {}
for _api, _exe in (("c", _C), ("rs", _RS)):
    POLL_CLIENTS[f"modelapi-{_api}-idle"] = [_exe]
    for _mode, _flags in (("poll0", ["--poll", "0"]), ("poll1", ["--poll", "1"]),
                          ("pollfd", ["--pollfd"])):
        POLL_CLIENTS[f"modelapi-{_api}-{_mode}"] = [_exe] + _flags
        POLL_CLIENTS[f"modelapi-{_api}-{_mode}-timed"] = [_exe] + _flags + ["--time-polls"]
ALL_CLIENTS = {**CLIENTS, **POLL_CLIENTS}
POLL_SCENARIOS = ("pi", "pl", "pt")
# pi: idle polls; pl: every poll timed while streaming; pt: throughput of the
# poll loops beside the blocking reads of the same API, in the same repetitions.
POLL_IDLE_CLIENTS = ["modelapi-c-idle", "modelapi-rs-idle"]
POLL_TIMED_CLIENTS = [f"modelapi-{a}-{m}-timed" for a in ("c", "rs")
                      for m in ("poll0", "poll1", "pollfd")]
POLL_RATE_CLIENTS = [f"modelapi-{a}{m}" for a in ("c", "rs")
                     for m in ("", "-event", "-poll0", "-poll1", "-pollfd")]
POLL_LABEL = {
    "": "blocking `{next}`",
    "-event": "blocking `{event}`",
    "-poll0": "`{poll}` with wait 0 in a loop",
    "-poll1": "`{poll}` with wait 1 ms in a loop",
    "-pollfd": "`{poll}` with wait 0 until pending, then poll(2) on `{fd}`",
}
POLL_NAMES = {
    "c": dict(api="C", next="modelapi_stream_next", event="modelapi_stream_next_event",
              poll="modelapi_stream_poll", fd="modelapi_stream_fd",
              idle="`modelapi_stream_poll(stream, 0, &event)`"),
    "rs": dict(api="Rust", next="ChatStream::next_chunk", event="ChatStream::next_event",
               poll="ChatStream::poll_event", fd="ChatStream::waits_on",
               idle="`ChatStream::poll_event(Duration::ZERO)`"),
}

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
            log("bench: --quick: skipping the build without TLS")
        else:
            # The plain-HTTP build, in the crate's size profile.
            sh(nice + ["cargo", "build", "--profile", "min-size", "--no-default-features",
                       "--features", "net", "--lib", "--target-dir", NOTLS_DIR])
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
    cmd = pin + ALL_CLIENTS[client] + scenario_args
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
    if scenario == "idle":
        # One content chunk before the server's pause, then polls that must
        # all have found nothing.
        want = {"content_bytes": desc["piece_bytes"], "chunks": 1, "requests": 1,
                "polls": n, "poll_not_pending": 0}
        for k, v in want.items():
            if res.get(k) != v:
                raise RuntimeError(f"MISMATCH: {client} idle: {k} = {res.get(k)}, expected {v}"
                                   f" (result {res})")
        return
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
                    callgrind_calls=50, tool_pieces=20000, poll_stream=20000,
                    poll_idle=20000, poll_syscall_polls=20000, poll_callgrind_polls=20000)
    return dict(reps=args.reps, complete=2000, stream=200000, py_stream=args.py_stream_chunks,
                streams=1000, per_stream=50, lengths=[20000, 200000, 1000000],
                callgrind_chunks=20000, callgrind_calls=200, tool_pieces=args.tool_pieces,
                # Poll mode: the stream of pl and pt, the idle polls timed per
                # run (pi), and counted by strace and callgrind (N and 2N).
                poll_stream=200000, poll_idle=100000, poll_syscall_polls=100000,
                poll_callgrind_polls=100000)


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

    def poll_stream(c):
        return ["stream", p["poll_stream"]], 1, p["poll_stream"]

    def idle(c):
        return ["idle", p["poll_idle"]], p["poll_idle"], 1

    # (b2): (b) against the `--vary` server, without the Python clients
    # (their per-chunk cost is in (b); they would double the run's time).
    native = [c for c in every if c not in PYTHON]
    runs = [("a", nonstream, complete), ("b", every, stream), ("b2", native, stream),
            ("c", no_events, streams), ("e", nonstream, once)]
    if p.get("tool_pieces"):
        runs.append(("f", TOOL_CLIENTS, tools))
    if p.get("poll_stream"):
        runs += [("pi", POLL_IDLE_CLIENTS, idle), ("pl", POLL_TIMED_CLIENTS, poll_stream),
                 ("pt", POLL_RATE_CLIENTS, poll_stream)]
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
                                 wall=wall, maxrss_kib=rss,
                                 # Poll mode: poll counts, durations, idle cost.
                                 **{k: v for k, v in res.items()
                                    if k.startswith(("poll", "idle_poll", "fd_waits"))}))
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
    # The tables come from a copy without debug info (nodebug). The
    # line-level profiles (callgrind.*.lines.out, for callgrind_annotate
    # --auto=yes) come from the binary itself.
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


def nodebug(path):
    """A copy of `path` without debug info: callgrind then counts by symbol,
    not split per source file of inlined code."""
    copy = os.path.join(BUILD, os.path.basename(path) + ".nodebug")
    shutil.copyfile(path, copy)
    os.chmod(copy, 0o755)
    subprocess.run(["strip", "--strip-debug", copy], check=True)
    return copy


def result_line(stdout):
    lines = [l for l in stdout.splitlines() if l.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def strace_counts(path):
    """`strace -c` summary: syscall -> [calls, errors]."""
    rows = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(parts) in (5, 6) and re.match(r"^[\d.]+$", parts[0]) and parts[-1] != "total":
                rows[parts[-1]] = [int(parts[3]), int(parts[4]) if len(parts) == 6 else 0]
    return rows


def poll_profiles(args, p, base, pin, desc, keys):
    """Poll mode, counted rather than timed: the system calls of an idle poll
    (strace -c over N and 2N idle polls, the difference per poll), the
    instructions of an idle poll and those per chunk of each way of reading
    (callgrind, N and 2N, the difference). keys: the poll scenarios run."""
    res = {}
    m = p["poll_syscall_polls"]
    if "pi" in keys and shutil.which("strace"):
        res["strace"] = {}
        for c in POLL_IDLE_CLIENTS:
            counts = []
            for k in (m, 2 * m):
                path = os.path.join(RESULTS, f"strace.{c}.{k}.txt")
                cmd = ["strace", "-f", "-c", "-o", path] + pin + ALL_CLIENTS[c] + ["idle", base,
                                                                                  str(k)]
                log("+", " ".join(cmd))
                r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   timeout=600)
                if r.returncode != 0:
                    raise RuntimeError(f"strace {c} failed:\n{r.stderr[-2000:]}")
                check(c, result_line(r.stdout), "idle", k, 1, desc)
                counts.append(strace_counts(path))
            small, big = counts
            per_poll = {name: [(big[name][0] - small.get(name, [0, 0])[0]) / m,
                               (big[name][1] - small.get(name, [0, 0])[1]) / m]
                        for name in big}
            res["strace"][c] = dict(
                polls=m, small_calls=sum(v[0] for v in small.values()),
                per_poll={k: v for k, v in per_poll.items() if v[0] or v[1]})
            log(f"strace {c}: per idle poll {res['strace'][c]['per_poll']}")
    if args.no_callgrind or not shutil.which("valgrind"):
        return res
    exes = {ALL_CLIENTS["modelapi-c"][0]: nodebug(ALL_CLIENTS["modelapi-c"][0]),
            RUST_CLIENT: nodebug(RUST_CLIENT)}

    def profile(name, c, argv, n):
        """Marginal Ir per unit between argv+[n] and argv+[2n]."""
        cmd = ALL_CLIENTS[c]
        cmd = [exes[cmd[0]]] + cmd[1:]
        got = []
        for k in (n, 2 * n):
            path = os.path.join(RESULTS, f"callgrind.{name}.{c}.{k}.out")
            full = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={path}"] + cmd + [
                argv[0], base, str(k)]
            log("+", " ".join(full))
            r = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=900)
            if r.returncode != 0:
                raise RuntimeError(f"callgrind failed:\n{r.stderr[-3000:]}")
            line = result_line(r.stdout)
            check(c, line, argv[0], k if argv[0] == "idle" else 1, 1 if argv[0] == "idle" else k,
                  desc)
            text = subprocess.run(["callgrind_annotate", "--auto=no", "--inclusive=no",
                                   "--threshold=100", path], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, check=True).stdout
            got.append((parse_total(text), parse_annotate(text), line))
        (t1, self1, _), (t2, self2, line2) = got
        per_fn = {fn: (ir - self1.get(fn, 0)) / n for fn, ir in self2.items()}
        return dict(n=n, per_unit=(t2 - t1) / n, small_total=t1,
                    polls=line2.get("polls"), pending=line2.get("poll_pending"),
                    self=sorted(([v, fn] for fn, v in per_fn.items() if v >= 0.5),
                                reverse=True)[:40])

    if "pi" in keys:
        res["callgrind_idle"] = {c: profile("idle", c, ["idle"], p["poll_callgrind_polls"])
                                 for c in POLL_IDLE_CLIENTS}
    if "pt" in keys:
        res["callgrind_chunks"] = {c: profile("poll-stream", c, ["stream"],
                                              p["callgrind_chunks"])
                                   for c in POLL_RATE_CLIENTS}
    return res


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
    if run["scenario"] in ("b", "b2", "f", "pl", "pt"):
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


def fmt_ns(ns):
    """A duration for the poll tables: ns below 10 µs, then µs, then ms."""
    if ns != ns:
        return "n/a"
    if ns < 10_000:
        return f"{ns:,.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:,.1f} µs"
    return f"{ns / 1e6:,.2f} ms"


def poll_provenance(d):
    """The merge that brought the poll scenarios in, if they were merged."""
    for m in d.get("merged") or []:
        if set(m["scenarios"]) & set(POLL_SCENARIOS):
            return m
    return None


def poll_results(d):
    """Poll mode (pi, pl, pt): the summary bullets, the section and the
    target rows of the report, from the runs and the poll profiles."""
    by = {}
    for r in d["runs"]:
        if r["scenario"] in POLL_SCENARIOS:
            by.setdefault(r["scenario"], {}).setdefault(r["client"], {})[r["rep"]] = r
    if not by:
        return [], [], []
    p, prof = d["plan"], d.get("poll_profiles") or {}
    strace, cg_idle = prof.get("strace") or {}, prof.get("callgrind_idle") or {}
    cg_chunks = prof.get("callgrind_chunks") or {}
    facts, L, targets = {}, [], []
    w = L.append
    chunks = p.get("poll_stream", p["stream"])
    w("## Poll mode: `modelapi_stream_poll` and `ChatStream::poll_event`\n")
    prov = poll_provenance(d)
    if prov:
        w(f"> Measured apart from the sections above and merged into `runs.json`:"
          f" `{prov['command']}` at commit `{prov['commit']}`"
          + (" plus uncommitted changes in `src/`" if prov.get("dirty") else "")
          + f" on {prov.get('date') or 'an unrecorded date'}, load average before / after"
          f" {prov['load_before']} / {prov['load_after']}, {prov['reps']} repetitions.\n")
    w("Streams started without blocking (`modelapi_stream_start`,"
      " `ModelApi::stream_request_start`) and driven by polls, from the same programs as"
      " `modelapi-c` and `modelapi-rs` (flags `--poll MS`, `--pollfd`, `--time-polls`; the"
      " scenario `idle`), pinned with the server like the rest. The scenarios run interleaved"
      " with each other in every repetition (`bench/run.sh --only p`: pi, pl and pt).\n")

    # -- idle polls
    idle = by.get("pi", {})
    if idle:
        n_idle = next(iter(next(iter(idle.values())).values()))["n"]
        w("### (pi) An idle stream: what a poll that finds nothing costs\n")
        w("The server holds the stream after its first content chunk (request header"
          " `X-Bench-Pause-Ms`: it sends nothing more until the client closes). Each client polls"
          " with a wait until that chunk is in and a 20 ms poll finds nothing more, then times"
          f" {n_idle:,} polls with wait 0 in a row, every one of which must find nothing"
          " (`MODELAPI_PENDING`, `Poll::Pending`: checked), then closes. Wall and CPU time per"
          " poll over the repetitions; system calls per poll from `strace -f -c` of"
          f" {p.get('poll_syscall_polls', 0):,} and twice as many idle polls (the difference, so"
          " that start-up cancels out); instructions per poll likewise from callgrind"
          f" ({p.get('poll_callgrind_polls', 0):,} and twice as many).\n")
        w("| API | call | ns per idle poll (median, min–max) | CPU ns per poll | instructions"
          " per poll (callgrind) | system calls per poll (strace) | ≤ 2 µs |")
        w("|---|---|---:|---:|---:|---|---|")
        for api in ("c", "rs"):
            c = f"modelapi-{api}-idle"
            runs = list(idle.get(c, {}).values())
            if not runs:
                continue
            ns = [r["idle_poll_ns"] for r in runs]
            cpu = [r["idle_poll_cpu_ns"] for r in runs]
            sc = strace.get(c)
            if sc:
                calls = "; ".join(
                    f"{v[0]:.3f} `{name}`" + (f" ({v[1]:.3f} failing: EAGAIN)" if v[1] else "")
                    for name, v in sorted(sc["per_poll"].items(), key=lambda kv: -kv[1][0]))
                calls = calls or "none"
            else:
                calls = "not counted (no strace)"
            ir = cg_idle.get(c, {}).get("per_unit")
            names = POLL_NAMES[api]
            w(f"| {names['api']} | {names['idle']} | {med(ns):,.0f} ({min(ns):,.0f}–{max(ns):,.0f})"
              f" | {med(cpu):,.0f} | {f'{ir:,.0f}' if ir else 'n/a'} | {calls} |"
              f" {verdict(med(ns) <= 2000, min(ns), max(ns), 2000)} |")
            syscalls = sum(v[0] for v in sc["per_poll"].values()) if sc else None
            reads = sum(v[0] for k, v in sc["per_poll"].items()
                        if k in ("read", "recvfrom", "recv", "recvmsg", "readv")) if sc else None
            targets.append(f"| idle poll ≤ 2 µs ({names['api']}, {names['idle']}) |"
                           f" {med(ns):,.0f} ns (CPU {med(cpu):,.0f} ns) |"
                           f" {verdict(med(ns) <= 2000, min(ns), max(ns), 2000)} |")
            if sc:
                targets.append(f"| at most one non-blocking read per idle poll ({names['api']}) |"
                               f" {syscalls:.3f} system calls per poll, {reads:.3f} of them"
                               f" reads | {verdict(syscalls <= 1.0005 and reads <= 1.0005)} |")
            facts.setdefault("idle", []).append(
                f"{names['idle']} {med(ns):,.0f} ns ({names['api']})")
            if sc:
                facts.setdefault("syscalls", []).append(f"{syscalls:.2f}")
        w("")
        if cg_idle:
            w("Where an idle poll's instructions go (callgrind, self cost per poll, top 8; the"
              " system call's own time is the kernel's and does not show here):\n")
            w("| C: Ir per poll | function | Rust: Ir per poll | function |")
            w("|---:|---|---:|---|")
            cols = [cg_idle.get(f"modelapi-{a}-idle", {}).get("self", [])[:8] for a in ("c", "rs")]
            for i in range(max(len(x) for x in cols)):
                cells = []
                for col in cols:
                    cells += ([f"{col[i][0]:,.0f}", f"`{short_fn(col[i][1])}`"] if i < len(col)
                              else ["", ""])
                w("| " + " | ".join(cells) + " |")
            w("")

    # -- every poll timed
    timed = by.get("pl", {})
    if timed:
        w(f"### (pl) The longest poll while streaming {chunks:,} chunks\n")
        w("Every poll of the stream timed (`CLOCK_MONOTONIC` around the call) into a log"
          " histogram (8 buckets per power of two: the percentiles are bucket tops, within"
          " 12.5 %); `getrusage(RUSAGE_THREAD)` around each poll counts the polls during which the"
          " thread *slept* (a voluntary context switch: the poll waited in the kernel) or was"
          " *preempted* (involuntary: the server, pinned to the same CPU, or another process ran"
          " meanwhile). The longest poll that did neither is the library's own longest step"
          " (interrupts and the hypervisor's steal time still count in it). The timing and the"
          " two `getrusage` calls per poll slow these runs down several times: their"
          " throughput is not comparable with (pt). Medians over the repetitions; \"all runs\""
          " columns are the maximum or the sum over them.\n")
        w("| API | poll | polls per run | pending | median | p99 | p99.9 | p99.99"
          " | longest (median run) | longest (all runs) | polls that slept (all runs)"
          " | polls preempted per run | longest neither slept nor preempted (median run / all)"
          " |")
        w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        slept0 = {}
        for api in ("c", "rs"):
            names = POLL_NAMES[api]
            for mode, label in (("poll0", "wait 0"), ("poll1", "wait 1 ms"),
                                ("pollfd", "wait 0, poll(2) when pending")):
                runs = list(timed.get(f"modelapi-{api}-{mode}-timed", {}).values())
                if not runs:
                    continue
                col = lambda k: [r[k] for r in runs]
                if mode != "poll1":
                    slept0[(api, mode)] = (sum(col("poll_slept")), sum(col("polls")),
                                           max(col("poll_max_ns")), max(col("poll_max_clean_ns")))
                w(f"| {names['api']} | {label} | {med(col('polls')):,.0f} |"
                  f" {med(col('poll_pending')):,.0f} | {fmt_ns(med(col('poll_p50_ns')))} |"
                  f" {fmt_ns(med(col('poll_p99_ns')))} | {fmt_ns(med(col('poll_p999_ns')))} |"
                  f" {fmt_ns(med(col('poll_p9999_ns')))} | {fmt_ns(med(col('poll_max_ns')))} |"
                  f" {fmt_ns(max(col('poll_max_ns')))} | {sum(col('poll_slept')):,} |"
                  f" {med(col('poll_preempted')):,.0f} |"
                  f" {fmt_ns(med(col('poll_max_clean_ns')))} /"
                  f" {fmt_ns(max(col('poll_max_clean_ns')))} |")
        w("")
        for api in ("c", "rs"):
            got = [slept0[k] for k in ((api, "poll0"), (api, "pollfd")) if k in slept0]
            if got:
                slept, polls = sum(g[0] for g in got), sum(g[1] for g in got)
                longest, clean = max(g[2] for g in got), max(g[3] for g in got)
                facts.setdefault("slept", []).append((slept, polls))
                targets.append(
                    f"| a poll with wait 0 never blocks ({POLL_NAMES[api]['api']}, (pl)) |"
                    f" {slept:,} of {polls:,} polls slept; longest {fmt_ns(longest)}, longest"
                    f" not preempted {fmt_ns(clean)} | {verdict(slept == 0)} |")

    # -- throughput
    rate = by.get("pt", {})
    if rate:
        w(f"### (pt) Throughput: poll loops against the blocking reads, {chunks:,} chunks\n")
        w("The same stream as (b), read by the blocking reads and by three poll loops of the"
          " same API in the same repetitions: wait 0 in a loop (a busy loop, as a game loop"
          " polling every frame would be at its fastest), wait 1 ms in a loop, and a host loop"
          " that polls with wait 0 until pending and then waits in poll(2) on the stream's"
          " descriptor. Speed ratios are chunks/s over those of the blocking"
          " `modelapi_stream_next` (C) or `next_chunk` (Rust), computed within each repetition,"
          " then the median (in brackets the lowest and highest); \"× events\" is the same"
          " against the blocking event read, which does the same work per event as a poll."
          " Instructions per chunk: callgrind, N and 2N chunks"
          f" (N = {p.get('callgrind_chunks', 0):,}), the difference.\n")
        w("| API | read | chunks/s (median) | speed × blocking read | CPU speed × blocking read"
          " | speed × blocking events | instructions per chunk | pending polls per run"
          " | poll(2) waits per run |")
        w("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for api in ("c", "rs"):
            names = POLL_NAMES[api]
            base = rate.get(f"modelapi-{api}", {})
            events = rate.get(f"modelapi-{api}-event", {})
            if not base:
                continue
            for suffix, label in POLL_LABEL.items():
                c = f"modelapi-{api}{suffix}"
                runs = rate.get(c, {})
                if not runs:
                    continue
                reps = sorted(set(runs) & set(base))
                speed = [per_unit(base[i]) / per_unit(runs[i]) for i in reps]
                cpu = [per_unit(base[i], "cpu_seconds") / per_unit(runs[i], "cpu_seconds")
                       for i in reps]
                ev_reps = sorted(set(runs) & set(events))
                vs_ev = [per_unit(events[i]) / per_unit(runs[i]) for i in ev_reps]
                ir = cg_chunks.get(c, {}).get("per_unit")
                pend = [r.get("poll_pending") for r in runs.values() if "poll_pending" in r]
                waits = [r.get("fd_waits") for r in runs.values() if "fd_waits" in r]
                w(f"| {names['api']} | {label.format(**names)} |"
                  f" {1 / med([per_unit(r) for r in runs.values()]):,.0f} |"
                  f" {med(speed):.3f}× ({min(speed):.2f}–{max(speed):.2f}) | {med(cpu):.3f}× |"
                  f" {f'{med(vs_ev):.3f}×' if vs_ev else 'n/a'} |"
                  f" {f'{ir:,.0f}' if ir else 'n/a'} |"
                  f" {f'{med(pend):,.0f}' if pend else ''} |"
                  f" {f'{med(waits):,.0f}' if suffix == '-pollfd' and waits else ''} |")
                if suffix in ("-poll0", "-pollfd"):
                    what = "wait 0 in a loop" if suffix == "-poll0" else "fd + poll(2) host loop"
                    targets.append(
                        f"| poll-driven chunks/s ≥ 0.9× `{names['next']}`'s ({names['api']},"
                        f" {what}, (pt)) | {med(speed):.3f}× (CPU time: {med(cpu):.2f}×) |"
                        f" {verdict(med(speed) >= 0.9, min(speed), max(speed), 0.9)} |")
                    facts.setdefault(suffix, []).append(f"{med(speed):.2f}× ({names['api']})")
        w("")
        if cg_chunks:
            w("Where a wait-0 poll loop spends more than the blocking event read, per chunk"
              " (callgrind, self cost, poll(0) minus next_event, the largest differences either"
              " way):\n")
            w("| API | Ir per chunk | function |")
            w("|---|---:|---|")
            for api in ("c", "rs"):
                a = dict((fn, v) for v, fn in cg_chunks.get(f"modelapi-{api}-poll0", {})
                         .get("self", []))
                b = dict((fn, v) for v, fn in cg_chunks.get(f"modelapi-{api}-event", {})
                         .get("self", []))
                if not a or not b:
                    continue
                diff = sorted(((a.get(fn, 0) - b.get(fn, 0), fn) for fn in set(a) | set(b)),
                              key=lambda x: -abs(x[0]))
                for v, fn in [x for x in diff if abs(x[0]) >= 3][:8]:
                    w(f"| {POLL_NAMES[api]['api']} | {v:+,.0f} | `{short_fn(fn)}` |")
            w("")
    parts = []
    if facts.get("idle"):
        parts.append("an idle poll costs " + ", ".join(facts["idle"])
                     + (", " + " and ".join(sorted(set(facts["syscalls"])))
                        + " system calls (one `recvfrom`)" if facts.get("syscalls") else ""))
    if facts.get("slept"):
        parts.append(f"{sum(x[0] for x in facts['slept']):,} of"
                     f" {sum(x[1] for x in facts['slept']):,} timed polls with wait 0 slept")
    if facts.get("-poll0"):
        parts.append("a wait-0 poll loop reads " + ", ".join(facts["-poll0"])
                     + " the chunks/s of the blocking read")
    if facts.get("-pollfd"):
        parts.append("the descriptor + poll(2) host loop " + ", ".join(facts["-pollfd"]))
    summary = ["- Poll mode ([below](#poll-mode-modelapi_stream_poll-and-chatstreampoll_event)): "
               + "; ".join(parts) + "."] if parts else []
    return summary, L, targets


def report(d):
    quick, cpu, command, p = d["quick"], d["cpu"], d["command"], d["plan"]
    info, desc, runs, rss_rows = d["machine"], d["server"], d["runs"], d["rss"]
    size_info, cg, elapsed = d["sizes"], d["callgrind"], d["elapsed"]
    load_before, load_after = d["load_before"], d["load_after"]
    A, B, C, E = (summarize(runs, s) for s in "abce")
    poll_summary, poll_section, poll_targets = poll_results(d)
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
    for line in poll_summary:
        w(line)
    w("- The issue's targets, met or not: [below](#targets-of-the-issue). Where the"
      " instructions go: [below](#where-the-time-goes).\n")

    w("## Reproduce\n")
    w("```sh\n" + command + "\n```\n")
    w("One command: it installs what is missing (Debian: `libcurl4-openssl-dev`, `libcjson-dev`,")
    w("`valgrind`, `strace`; PyPI: `openai`, `httpx` into `bench/.venv`), builds the library")
    w("(`cargo build --release --lib`, plus a `--no-default-features --features net` build in")
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
         if info["dirty"] else "") + f"; run took {elapsed / 60:.1f} min"
      + ("" if d.get("merged") else "\n"))
    for m in d.get("merged") or []:
        w(f"- Rerun later and merged in (`--merge`): scenarios {', '.join(m['scenarios'])}, at"
          f" commit `{m['commit']}`" + (" plus uncommitted changes in `src/`" if m.get("dirty")
                                        else "")
          + f" on {m.get('date') or '?'} (`{m['command']}`, load average before / after"
          f" {m['load_before']} / {m['load_after']}, {m['elapsed'] / 60:.1f} min)")
    if d.get("merged"):
        w("")

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

    for line in poll_section:
        w(line)

    w("## Sizes\n")
    w("| artefact | stripped | unstripped |")
    w("|---|---:|---:|")
    labels = {"so_tls": "`libmodelapi.so`, default features (TLS: rustls + webpki roots)",
              "so_notls": "`libmodelapi.so`, `--no-default-features --features net --profile min-size` (no TLS)",
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
    for row in poll_targets:
        w(row)
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

def merge_runs(full, part, keys):
    """`full` (runs.json) with the scenarios `keys` taken from the partial run
    `part`: their runs (and the peak RSS rows for d, the poll profiles for
    pi and pt) replaced, everything else kept, and the merge recorded."""
    merged = dict(full)
    merged["runs"] = [r for r in full["runs"] if r["scenario"] not in keys] + part["runs"]
    if "d" in keys:
        merged["rss"] = part["rss"]
    prof = dict(full.get("poll_profiles") or {})
    for key, names in (("pi", ("strace", "callgrind_idle")), ("pt", ("callgrind_chunks",))):
        if key in keys:
            for name in names:
                prof.pop(name, None)
                if name in part["poll_profiles"]:
                    prof[name] = part["poll_profiles"][name]
    merged["poll_profiles"] = prof
    merged["plan"] = dict(full["plan"])
    for k, v in part["plan"].items():
        if k.startswith("poll_") or k not in merged["plan"]:
            merged["plan"][k] = v
    history = []
    for m in full.get("merged") or []:
        rest = [k for k in m["scenarios"] if k not in keys]
        if rest:
            history.append(dict(m, scenarios=rest))
    history.append(dict(scenarios=sorted(keys), commit=part["machine"]["commit"],
                        dirty=part["machine"]["dirty"], date=part.get("date"),
                        load_before=part["load_before"], load_after=part["load_after"],
                        reps=part["plan"]["reps"], command=part["command"],
                        elapsed=part["elapsed"]))
    merged["merged"] = history
    return merged


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
                                   " d is the peak RSS against stream length; poll mode: pi"
                                   " idle polls, pl every poll timed, pt poll throughput, p all"
                                   " three); writes bench/results/BENCHMARKS-only.md unless"
                                   " --out or --merge is given")
    ap.add_argument("--merge", action="store_true",
                    help="with --only: merge the scenarios run into bench/results/runs.json"
                         " (their earlier results replaced, every other section kept, the"
                         " merge recorded in the report) and rewrite BENCHMARKS.md from it")
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
        if "p" in args.only:
            args.only = (args.only - {"p"}) | set(POLL_SCENARIOS)
        unknown = args.only - {"a", "b", "b2", "c", "d", "e", "f", *POLL_SCENARIOS}
        if unknown:
            ap.error(f"--only: unknown scenarios {','.join(sorted(unknown))}")
    if args.merge and (not args.only or args.quick or args.report_only):
        ap.error("--merge goes with --only (and without --quick or --report-only)")
    # A partial run never overwrites BENCHMARKS.md unless asked to.
    out_path = args.out or (os.path.join(RESULTS, "BENCHMARKS-quick.md") if args.quick
                            else os.path.join(RESULTS, "BENCHMARKS-only.md")
                            if args.only and not args.merge
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
        poll_keys = {k for k in POLL_SCENARIOS if not args.only or k in args.only}
        poll_prof = poll_profiles(args, p, base, pin, desc, poll_keys) if poll_keys else {}
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
                    poll_profiles=poll_prof, load_before=load_before, load_after=load_after,
                    elapsed=elapsed, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        with open(data_path, "w") as f:
            json.dump(data, f, indent=1)
        if args.merge:
            full_path = os.path.join(RESULTS, "runs.json")
            with open(full_path) as f:
                full = json.load(f)
            data = merge_runs(full, data, args.only)
            with open(full_path, "w") as f:
                json.dump(data, f, indent=1)
            log(f"bench: merged {','.join(sorted(args.only))} into {full_path}")
        with open(out_path, "w") as f:
            f.write(report(data) + hand_notes())
        log(f"bench: wrote {os.path.relpath(out_path, ROOT)} in {elapsed / 60:.1f} min")
    finally:
        stop_all()


if __name__ == "__main__":
    main()
