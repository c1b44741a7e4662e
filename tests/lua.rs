//! The LuaJIT binding (`bindings/lua/modelapi.lua`) and its LÖVE example
//! (`bindings/lua/love-npc`):
//! - its `ffi.cdef` declares exactly what `include/modelapi.h` declares
//!   (runs everywhere, needs nothing installed);
//! - the Lua test suite `tests/lua/main.lua`, run by `love` (LÖVE 11.4
//!   ships LuaJIT; no standalone `luajit` is needed), against the scripted
//!   test server on loopback;
//! - the NPC game: canned, against a slow stream of the test server, and
//!   against llama-server when `MODELAPI_LLAMACPP=1` (as tests/llamacpp.rs).
//!
//! `MODELAPI_BINDINGS=1` (`bash tests/run-all.sh`) makes a missing `love` a failure;
//! without it and without `love`, the tests say they were not run.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cbuild::{self, text, MODEL_ENV};
use common::server::{chunked, head, Reply, Request, Step, TestServer};
use common::service;
use common::{completion_body, content_event, event, finish_event, DONE};
use serde_json::{json, Value};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---- the cdef and the header ---------------------------------------------

/// The declarations of C text: comments, preprocessor lines and the
/// `extern "C"` guard (inside `#ifdef __cplusplus`) removed, whitespace
/// normalised, split at each `;` outside braces, sorted.
fn declarations(c: &str) -> Vec<String> {
    // Comments.
    let mut code = String::new();
    let mut rest = c;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            let end = after.find("*/").expect("an unterminated comment");
            rest = &after[end + 2..];
            code.push(' ');
        } else if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |end| &after[end..]);
        } else {
            let ch = rest.chars().next().unwrap();
            code.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
    }
    // Preprocessor lines, and what `#ifdef __cplusplus` guards.
    let mut kept = String::new();
    let mut in_cplusplus = false;
    for line in code.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("#ifdef __cplusplus") {
            in_cplusplus = true;
        } else if in_cplusplus {
            in_cplusplus = !trimmed.starts_with("#endif");
        } else if !trimmed.starts_with('#') {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    // Whitespace: one space between words, none around punctuation.
    let words: Vec<&str> = kept.split_whitespace().collect();
    let mut flat = String::new();
    for word in words {
        let glue = |c: char| c.is_alphanumeric() || c == '_';
        if flat.chars().last().is_some_and(glue) && word.chars().next().is_some_and(glue) {
            flat.push(' ');
        }
        flat.push_str(word);
    }
    let mut decls = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for ch in flat.chars() {
        current.push(ch);
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ';' if depth == 0 => decls.push(std::mem::take(&mut current)),
            _ => {}
        }
    }
    assert!(
        current.trim().is_empty(),
        "text after the last declaration: {current}"
    );
    decls.sort();
    decls
}

/// The cdef embedded in modelapi.lua (between its BEGIN and END markers).
fn embedded_cdef(lua: &str) -> &str {
    let start = lua
        .find("local HEADER_CDEF = [[\n")
        .expect("modelapi.lua: no `local HEADER_CDEF = [[`")
        + "local HEADER_CDEF = [[\n".len();
    let len = lua[start..]
        .find("]]")
        .expect("modelapi.lua: HEADER_CDEF is not closed");
    &lua[start..start + len]
}

#[test]
fn the_cdef_declares_exactly_what_the_header_declares() {
    let header = std::fs::read_to_string(root().join("include/modelapi.h")).unwrap();
    let lua = std::fs::read_to_string(root().join("bindings/lua/modelapi.lua")).unwrap();
    assert!(
        lua.contains("ffi.cdef(HEADER_CDEF)"),
        "the cdef is not used"
    );
    let want = declarations(&header);
    let got = declarations(embedded_cdef(&lua));
    // The check itself: it sees every function, struct and enum.
    assert!(
        want.len() > 50,
        "{} declarations in the header?",
        want.len()
    );
    assert!(want
        .iter()
        .any(|d| d.starts_with("typedef enum ModelApiStatus{")));
    assert!(want
        .iter()
        .any(|d| d.starts_with("typedef struct ModelApiEvent{")));
    assert!(want.iter().any(|d| d.contains("modelapi_stream_poll(")));
    let missing: Vec<&String> = want.iter().filter(|d| !got.contains(d)).collect();
    let extra: Vec<&String> = got.iter().filter(|d| !want.contains(d)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "bindings/lua/modelapi.lua's cdef differs from include/modelapi.h: replace what is \
         between `local HEADER_CDEF = [[` and `]]` by the header without its comments and \
         # lines (and the extern \"C\" guard).\nIn the header only:\n{}\nIn the cdef only:\n{}",
        missing
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        extra
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    );
}

#[test]
fn the_drift_check_sees_a_changed_signature() {
    let a = declarations("/* x */ int f(int a);\n#define X 1\nstruct S { int a; };");
    assert_eq!(a, vec!["int f(int a);", "struct S{int a;};"]);
    let b = declarations("int   f(int   a) ;\nstruct S {\n  int a;\n};");
    assert_eq!(a, b);
    assert_ne!(a, declarations("int f(long a);\nstruct S { int a; };"));
}

// ---- running love ----------------------------------------------------------

/// Whether the `love` tests can run: `love` is there (else, with
/// `MODELAPI_BINDINGS=1` a failure, without it a note).
fn love_available() -> bool {
    let found = Command::new("love")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success());
    if found {
        return true;
    }
    if std::env::var("MODELAPI_BINDINGS").is_ok_and(|v| v == "1") {
        panic!(
            "MODELAPI_BINDINGS=1 but `love` (LÖVE 11.4) does not run: tests/tools.sh installs it"
        );
    }
    static NOTE: std::sync::Once = std::sync::Once::new();
    NOTE.call_once(|| {
        service::not_run(
            "NOTE: the Lua binding's tests (tests/lua.rs) were NOT run: install LÖVE 11.4 \
             (`apt-get install love`) or run `bash tests/run-all.sh`",
        )
    });
    false
}

fn library() -> PathBuf {
    cbuild::build_library();
    cbuild::target_dir().join("debug/libmodelapi.so")
}

/// Runs `love <dir> <args>` headless with only the given model-related
/// environment; kills it after `limit`.
fn love(dir: &Path, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut command = Command::new("love");
    command.arg(dir).args(args);
    for var in MODEL_ENV {
        command.env_remove(var);
    }
    command
        .env("MODELAPI_LIB", library())
        .env("SDL_VIDEODRIVER", "dummy")
        .env("SDL_AUDIODRIVER", "dummy")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("love runs");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "love {} did not end within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                dir.display(),
                text(&out_reader.join().unwrap()),
                text(&err_reader.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

// ---- the test server ----------------------------------------------------------

/// The pace of `/drip`: one write every `DRIP_MS`, 3 characters each.
const DRIP_MS: u64 = 40;
/// What `/drip` streams.
const DRIP: &str = "Mira looks up from the anvil: \"Iron, traveller? Bring me some.\"";

/// `text` in pieces of `n` characters.
fn pieces(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(n).map(|c| c.iter().collect()).collect()
}

fn sse_head() -> Vec<u8> {
    head(
        200,
        &[
            ("Content-Type", "text/event-stream".into()),
            ("Transfer-Encoding", "chunked".into()),
        ],
    )
}

/// [`DRIP`] in pieces of 3 characters, `DRIP_MS` apart.
fn drip_reply() -> Reply {
    let pause = Step::Sleep(Duration::from_millis(DRIP_MS));
    let mut steps = vec![Step::Write(sse_head())];
    for piece in pieces(DRIP, 3) {
        steps.push(pause.clone());
        steps.push(Step::Write(chunked(content_event(&piece).as_bytes())));
    }
    steps.push(pause);
    steps.push(Step::Write(chunked(finish_event("stop").as_bytes())));
    steps.push(Step::Write(chunked(DONE.as_bytes())));
    steps.push(Step::Write(b"0\r\n\r\n".to_vec()));
    Reply {
        steps,
        keep_alive: true,
    }
}

fn delta(delta: Value, finish: Value) -> String {
    event(json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    }))
}

/// Reasoning, text, a tool call in two pieces and a refusal.
fn events_reply() -> Reply {
    let events = [
        delta(
            json!({"role": "assistant", "reasoning_content": "Thinking"}),
            Value::Null,
        ),
        delta(json!({"reasoning_content": " hard"}), Value::Null),
        delta(json!({"content": "Let me check."}), Value::Null),
        delta(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                   "function": {"name": "get_weather", "arguments": "{\"city\":"}}]}),
            Value::Null,
        ),
        delta(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            Value::Null,
        ),
        delta(json!({"refusal": "I can't"}), Value::Null),
        delta(json!({}), json!("tool_calls")),
        DONE.to_string(),
    ];
    let events: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
    Reply::sse(&events)
}

/// Routes by the api_base's path: `/complete`, `/events`,
/// `/unauthorized`, `/drip`, `/broken`.
fn handler(request: &Request) -> Reply {
    let path = request.path.as_str();
    if path.starts_with("/complete/") {
        Reply::json(200, &completion_body("Hello from the server: ¡olé!"))
    } else if path.starts_with("/events/") {
        events_reply()
    } else if path.starts_with("/unauthorized/") {
        Reply::json(
            401,
            r#"{"error":{"message":"invalid api key","type":"auth_error","code":"401"}}"#,
        )
    } else if path.starts_with("/drip/") {
        drip_reply()
    } else if path.starts_with("/broken/") {
        let events = [
            content_event("partial "),
            content_event("answer"),
            event(json!({"error": {"message": "the model crashed", "type": "server_error"}})),
        ];
        let events: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
        Reply::sse(&events)
    } else {
        Reply::json(404, r#"{"error":{"message":"no such route"}}"#)
    }
}

fn server() -> TestServer {
    // One worker per connection the suite keeps open at once (its pooled
    // and streaming connections).
    TestServer::start_with_workers(32, handler)
}

// ---- the Lua test suite ---------------------------------------------------------

#[test]
fn lua_test_suite_passes_in_love() {
    if !love_available() {
        return;
    }
    let server = server();
    let url = server.url();
    let out = love(
        &root().join("tests/lua"),
        &[],
        &[("MODELAPI_TEST_URL", &url), ("MODELAPI_TEST_DRIP", DRIP)],
        Duration::from_secs(120),
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(" passed, 0 failed"),
        "the Lua tests failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    eprintln!("{stdout}");
    let passed = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(passed >= 20, "only {passed} Lua tests ran:\n{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");

    // What the binding sent: the messages encoded faithfully, a request
    // object's fields passed through, the mock_response, the key.
    let requests = server.requests();
    let completes: Vec<Value> = requests
        .iter()
        .filter(|r| r.path == "/complete/v1/chat/completions")
        .map(|r| r.body_json())
        .collect();
    let first = &completes[0];
    assert_eq!(first["model"], "test-model");
    assert_eq!(first["stream"], false);
    assert_eq!(
        first["messages"],
        json!([
            {"role": "system", "content": "Be \"brief\"\n\tplease \\ ok"},
            {"role": "user", "content": "Grüße, 東京 🍣"},
        ])
    );
    let second = &completes[1];
    assert_eq!(second["temperature"], 0.5);
    assert_eq!(second["mock_response"], "as LiteLLM does");
    assert_eq!(second["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        second["tools"][0]["function"]["parameters"]["properties"]["city"]["type"],
        "string"
    );
    assert_eq!(completes[2]["messages"][0]["content"], "from JSON");
    let keyed = requests
        .iter()
        .find(|r| r.path.starts_with("/unauthorized/"))
        .unwrap();
    assert_eq!(keyed.header("authorization"), Some("Bearer sk-wrong"));
    // Canned replies made no request: the many-clients test made 2000
    // clients of /unauthorized that answered canned only.
    let unauthorized = requests
        .iter()
        .filter(|r| r.path.starts_with("/unauthorized/"))
        .count();
    assert!(
        unauthorized <= 5,
        "{unauthorized} requests to /unauthorized"
    );
}

// ---- the NPC game ----------------------------------------------------------------

struct Report {
    frames: f64,
    longest_work_ms: f64,
    longest_gap_ms: f64,
    api_ms: f64,
    events: f64,
    quiet: f64,
    text: String,
    answer: Value,
}

fn numbers(stdout: &str, prefix: &str) -> Vec<f64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{stdout}"));
    line[prefix.len()..]
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|w| w.trim_matches('.').parse().ok())
        .collect()
}

fn npc(frames: u32, env: &[(&str, &str)]) -> (Report, String) {
    let frames = frames.to_string();
    let out = love(
        &root().join("bindings/lua/love-npc"),
        &[&frames],
        env,
        Duration::from_secs(120),
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "love-npc failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let line = |prefix: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{stdout}"))
            .to_string()
    };
    let longest = numbers(&stdout, "longest frame: ");
    let events = numbers(&stdout, "events: ");
    let report = Report {
        frames: numbers(&stdout, "frames: ")[0],
        longest_work_ms: longest[0],
        longest_gap_ms: longest[1],
        api_ms: numbers(&stdout, "modelapi calls: ")[0],
        events: events[0],
        quiet: events[1],
        text: serde_json::from_str(&line("text: ")).expect("text: a JSON string"),
        answer: serde_json::from_str(&line("answer: ")).expect("answer: JSON"),
    };
    let output = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    eprintln!("{output}");
    (report, output)
}

#[test]
fn npc_speaks_a_canned_line_by_default() {
    if !love_available() {
        return;
    }
    let (report, output) = npc(30, &[]);
    assert_eq!(report.frames, 30.0, "{output}");
    assert!(report.text.starts_with("Well met, traveller!"), "{output}");
    assert_eq!(
        report.answer["choices"][0]["message"]["content"], report.text,
        "{output}"
    );
    assert_eq!(report.answer["model"], "canned", "{output}");
    assert!(output.contains("MODEL_API_URL is not set"), "{output}");
    assert!(report.longest_work_ms < 100.0, "{output}");
}

#[test]
fn npc_line_streams_in_while_the_game_keeps_its_frames() {
    if !love_available() {
        return;
    }
    let server = server();
    let url = format!("{}/drip", server.url());
    let started = Instant::now();
    let (report, output) = npc(120, &[("MODEL_API_URL", &url), ("MODEL_NAME", "npc-model")]);
    let took = started.elapsed();
    let pieces = pieces(DRIP, 3).len() as f64;
    assert_eq!(report.frames, 120.0, "{output}");
    assert_eq!(report.text, DRIP, "{output}");
    assert_eq!(report.answer["choices"][0]["message"]["content"], DRIP);
    assert_eq!(report.answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(report.events, pieces, "{output}");
    // The answer took (pieces + 1) * 40 ms: 2.4 frames a piece, so most
    // frames polled and found nothing (polls that waited would find
    // something every frame).
    assert!(report.quiet >= pieces / 2.0, "{output}");
    // 120 frames at 60 Hz: 2 s, paced (not rushed through).
    assert!(took >= Duration::from_millis(1900), "{took:?}\n{output}");
    // Generous bounds: the frames never waited on the network.
    assert!(report.longest_work_ms < 100.0, "{output}");
    assert!(report.longest_gap_ms < 250.0, "{output}");
    assert!(report.api_ms < 500.0, "{output}");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let body = requests[0].body_json();
    assert_eq!(body["model"], "npc-model");
    assert_eq!(body["stream"], true);
    assert_eq!(body["messages"][0]["role"], "system");
}

/// llama-server, when `MODELAPI_LLAMACPP=1` (or it is installed), started
/// as tests/llamacpp.rs starts it.
#[test]
fn npc_speaks_through_llama_server() {
    if !love_available() {
        return;
    }
    let wanted = std::env::var("MODELAPI_LLAMACPP").unwrap_or_default();
    let cache = std::env::var("MODELAPI_LLAMACPP_HOME").unwrap_or_else(|_| {
        format!(
            "{}/.cache/modelapi/llamacpp-11434",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let installed = Path::new(&cache).join(".modelapi-install-ok").exists();
    if wanted == "0" || (wanted.is_empty() && !installed) {
        service::not_run(
            "NOTE: the LÖVE NPC against llama-server (tests/lua.rs) was NOT run: set \
             MODELAPI_LLAMACPP=1 (see tests/llamacpp.rs); `bash tests/run-all.sh` does",
        );
        return;
    }
    let llama = service::start(
        "llama-server-lua",
        &root().join("tests/llamacpp/start.sh"),
        "/health",
        Duration::from_secs(1800),
    );
    let url = format!("http://{}", llama.addr);
    // 360 frames (6 s) for 24 tokens of a 135M model (about 1 s on 2 cores).
    let (report, output) = npc(
        360,
        &[
            ("MODEL_API_URL", &url),
            ("MODEL_NAME", "smollm2-135m-instruct"),
            ("NPC_MAX_TOKENS", "24"),
        ],
    );
    assert_eq!(report.frames, 360.0, "{output}");
    assert!(!report.text.trim().is_empty(), "{output}");
    assert_eq!(
        report.answer["choices"][0]["message"]["content"], report.text,
        "{output}"
    );
    assert_eq!(report.answer["model"], "smollm2-135m-instruct", "{output}");
    assert!(report.events >= 2.0, "{output}");
    assert!(report.longest_work_ms < 100.0, "{output}");
}
