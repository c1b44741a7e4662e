//! The C# binding (bindings/csharp/ModelApi.cs) on Mono: its test program
//! (bindings/csharp/ModelApiTests.cs) is built with `mcs` and run with
//! `mono` against a local test server, with `libmodelapi.so` found through
//! `LD_LIBRARY_PATH`; the structs' layout is compared with the C
//! compiler's; the Unity example (bindings/csharp/NpcDialogue.cs) is
//! compiled against a stub of UnityEngine.
//!
//! The test server answers by model name:
//! - `ok`: "Hello from the test server" (complete), or the same text in five
//!   pieces (stream), with `x-request-id: req-cs-1` and, when the request
//!   asks for it, usage 3 + 5 = 8;
//! - `echo`: the last message's content (complete), or the same text one
//!   character an event, each event written a few bytes at a time (stream);
//! - `drip`: the `ok` stream, 30 ms between events (poll mode);
//! - `tools`: reasoning, content and two interleaved tool calls;
//! - `refusal`: a refusal in two pieces;
//! - `unauthorized`: 401 with an OpenAI error body;
//! - `stream-error`: one piece "Partial", then an error event;
//! - `long`: 1000 pieces "x", 10 ms apart;
//! - `slow`: no answer for 5 s, then a close.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::cbuild::{build_library, target_dir, text, MODEL_ENV};
use common::server::{chunked, head, Reply, Request, Step, TestServer};
use common::{content_event, event, finish_event, DONE};
use serde_json::json;

/// Whether `mono` and `mcs` run; when they do not, a test fails under
/// `MODELAPI_BINDINGS=1` (as `bash tests/run-all.sh` sets) and is otherwise not run,
/// loudly.
fn mono_available() -> bool {
    let runs = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if runs("mono") && runs("mcs") {
        return true;
    }
    assert!(
        std::env::var("MODELAPI_BINDINGS").as_deref() != Ok("1"),
        "MODELAPI_BINDINGS is set but mono or mcs does not run: install Mono (tests/tools.sh)"
    );
    common::service::not_run(
        "NOTE: the C# binding's tests (tests/csharp.rs) were NOT run: install Mono \
         (mono, mcs) or run `bash tests/run-all.sh`",
    );
    false
}

fn bindings() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/csharp")
}

fn build_dir() -> PathBuf {
    let dir = target_dir().join("csharp");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a command to its end, killed after `limit`.
fn run_bounded(mut command: Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} took longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// `mcs` with these arguments, in the bindings folder.
fn mcs(args: &[&str], what: &str) {
    let mut command = Command::new("mcs");
    command.args(args).current_dir(bindings());
    let out = run_bounded(command, Duration::from_secs(120));
    assert_success(&out, what);
}

/// Builds ModelApiTests.exe (and the library); returns its path.
/// Builds ModelApiTests.exe (and the library), once per test process;
/// returns its path.
fn build_tests() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        build_library();
        let exe = build_dir().join("ModelApiTests.exe");
        mcs(
            &[
                "-warnaserror",
                &format!("-out:{}", exe.display()),
                "ModelApi.cs",
                "ModelApiTests.cs",
            ],
            "mcs ModelApiTests.exe",
        );
        exe
    })
}

/// `mono <exe> <args>`, with the library found through LD_LIBRARY_PATH and
/// no model-related environment.
fn mono(exe: &Path, args: &[&str]) -> Output {
    let mut command = Command::new("mono");
    command
        .arg("--debug")
        .arg(exe)
        .args(args)
        .env("LD_LIBRARY_PATH", target_dir().join("debug"));
    for var in MODEL_ENV {
        command.env_remove(var);
    }
    run_bounded(command, Duration::from_secs(120))
}

fn sse(events: Vec<String>) -> Reply {
    Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
}

fn chunk(delta: serde_json::Value, finish_reason: Option<&str>) -> String {
    event(json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    }))
}

fn completion(content: &str) -> Reply {
    Reply::json(200, &common::completion_body(content))
}

const HELLO: [&str; 5] = ["Hello", " from", " the", " test", " server"];

fn ok_stream(request: &Request, delay: Option<Duration>) -> Reply {
    let body = request.body_json();
    let mut events: Vec<String> = HELLO.iter().map(|p| content_event(p)).collect();
    events.push(finish_event("stop"));
    if body["stream_options"]["include_usage"] == json!(true) {
        events.push(event(json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": "test-model", "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
        })));
    }
    events.push(DONE.to_string());
    match delay {
        None => sse(events).with_header("x-request-id", "req-cs-1"),
        Some(delay) => {
            let mut steps = vec![Step::Write(head(
                200,
                &[
                    ("Content-Type", "text/event-stream".into()),
                    ("Transfer-Encoding", "chunked".into()),
                ],
            ))];
            for e in events {
                steps.push(Step::Sleep(delay));
                steps.push(Step::Write(chunked(e.as_bytes())));
            }
            steps.push(Step::Write(b"0\r\n\r\n".to_vec()));
            Reply::script(steps)
        }
    }
}

/// The last message's content, from a request of either shape.
fn last_content(body: &serde_json::Value) -> String {
    let messages = if body["messages"].is_array() {
        &body["messages"]
    } else {
        body
    };
    messages
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The echo stream: one character an event, each event's bytes written 3
/// at a time, so that reads cut characters in two.
fn echo_stream(content: &str) -> Reply {
    let mut steps = vec![Step::Write(head(
        200,
        &[
            ("Content-Type", "text/event-stream".into()),
            ("Transfer-Encoding", "chunked".into()),
        ],
    ))];
    let mut events: Vec<String> = content
        .chars()
        .map(|c| content_event(&c.to_string()))
        .collect();
    events.push(finish_event("stop"));
    events.push(DONE.to_string());
    for e in events {
        steps.push(Step::Drip {
            bytes: chunked(e.as_bytes()),
            piece: 3,
            delay: Duration::from_micros(200),
        });
    }
    steps.push(Step::Write(b"0\r\n\r\n".to_vec()));
    Reply::script(steps)
}

fn tools_stream() -> Reply {
    let call = |index: u32, id: Option<&str>, arguments: &str| {
        let mut piece = json!({"index": index, "function": {"arguments": arguments}});
        if let Some(id) = id {
            piece["id"] = json!(id);
            piece["type"] = json!("function");
            piece["function"]["name"] = json!("get_weather");
        }
        chunk(json!({ "tool_calls": [piece] }), None)
    };
    let events = vec![
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"reasoning_content": "Two cities: Zürich"}), None),
        chunk(json!({"reasoning_content": " and São Paulo."}), None),
        chunk(json!({"content": "Let me look."}), None),
        call(0, Some("call_zrh"), "{\"city\": "),
        call(1, Some("call_sao"), "{\"city\""),
        call(0, None, "\"Zürich\"}"),
        call(1, None, ": \"São Paulo\"}"),
        chunk(json!({}), Some("tool_calls")),
        DONE.to_string(),
    ];
    sse(events)
}

fn test_server() -> TestServer {
    TestServer::start(|request| {
        let body = request.body_json();
        let streaming = body["stream"] == json!(true);
        match (body["model"].as_str().unwrap_or(""), streaming) {
            ("ok", false) => completion("Hello from the test server"),
            ("ok", true) => ok_stream(request, None),
            ("drip", true) => ok_stream(request, Some(Duration::from_millis(30))),
            ("echo", false) => completion(&last_content(&body)),
            ("echo", true) => echo_stream(&last_content(&body)),
            ("tools", true) => tools_stream(),
            ("refusal", true) => sse(vec![
                chunk(json!({"refusal": "I can't"}), None),
                chunk(json!({"refusal": " help with that."}), None),
                chunk(json!({}), Some("stop")),
                DONE.to_string(),
            ]),
            ("unauthorized", _) => Reply::json(
                401,
                r#"{"error":{"message":"Invalid API key provided","type":"auth_error","code":"401"}}"#,
            ),
            ("stream-error", true) => sse(vec![
                content_event("Partial"),
                event(
                    json!({"error": {"message": "The server is overloaded", "type": "server_error"}}),
                ),
            ]),
            ("long", true) => {
                let mut steps = vec![Step::Write(head(
                    200,
                    &[
                        ("Content-Type", "text/event-stream".into()),
                        ("Transfer-Encoding", "chunked".into()),
                    ],
                ))];
                for _ in 0..1000 {
                    steps.push(Step::Write(chunked(content_event("x").as_bytes())));
                    steps.push(Step::Sleep(Duration::from_millis(10)));
                }
                steps.push(Step::Write(chunked(DONE.as_bytes())));
                steps.push(Step::Write(b"0\r\n\r\n".to_vec()));
                Reply::script(steps)
            }
            ("slow", _) => Reply::script(vec![Step::Sleep(Duration::from_secs(5))]),
            (model, streaming) => Reply::json(
                400,
                &format!(
                    r#"{{"error":{{"message":"no such test model: {model} (stream {streaming})"}}}}"#
                ),
            ),
        }
    })
}

/// Every check of ModelApiTests.cs against the test server: complete,
/// stream events and metadata, tool calls, refusals, poll mode, cancels
/// from another thread, errors (401, a mid-stream error, bad arguments),
/// canned replies, callbacks (static, with a GCHandle), Dispose rules
/// (from another thread; a token disposed before its streams).
#[test]
fn csharp_binding_against_the_test_server() {
    if !mono_available() {
        return;
    }
    let exe = build_tests();
    let server = test_server();
    let out = mono(exe, &[&server.url()]);
    let stdout = text(&out.stdout);
    print!("{stdout}");
    assert_success(&out, "mono ModelApiTests.exe");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    let summary = stdout
        .lines()
        .find(|l| l.ends_with(" passed, 0 failed"))
        .unwrap_or_else(|| panic!("no summary line: {stdout}"));
    let passed: usize = summary.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 75, "only {passed} checks ran: {stdout}");
    for check in [
        "ok: Complete: UTF-8 in and out (Message array)",
        "ok: stream: x-request-id",
        "ok: tools: arguments of call 1",
        "ok: refusal events",
        "ok: poll: the text",
        "ok: cancel token: Aborted",
        "ok: ChatStream.Cancel: Aborted",
        "ok: 401: HttpStatus",
        "ok: bad JSON: InvalidArgument",
        "ok: canned: complete",
        "ok: SetMockResponses: the canned reply answers",
        "ok: SetMockResponses: a malformed reply is InvalidArgument",
        "ok: callback exception: rethrown as the inner exception",
        "ok: a stream outlives its client",
        "ok: Dispose from another thread: the blocked read is Aborted",
        "ok: a stream outlives its disposed token",
        "ok: callbacks on four threads at once on one client",
        "ok: stream: UTF-8 pieces (split inside characters) reassembled",
    ] {
        assert!(stdout.contains(check), "missing {check:?}: {stdout}");
    }
}

/// `ModelApiEvent` and `ModelApiMessage` as C lays them out (a C program
/// compiled against include/modelapi.h) and as the binding marshals them
/// (`Marshal.SizeOf`/`OffsetOf`).
#[test]
fn csharp_structs_match_the_c_layout() {
    if !mono_available() {
        return;
    }
    let exe = build_tests();
    let dir = build_dir();
    let source = dir.join("layout.c");
    std::fs::write(
        &source,
        r#"#include <stdio.h>
#include <stddef.h>
#include "modelapi.h"
int main(void) {
    printf("ModelApiEvent size %zu kind %zu text %zu len %zu tool_index %zu tool_id %zu tool_name %zu\n",
           sizeof(ModelApiEvent), offsetof(ModelApiEvent, kind), offsetof(ModelApiEvent, text),
           offsetof(ModelApiEvent, len), offsetof(ModelApiEvent, tool_index),
           offsetof(ModelApiEvent, tool_id), offsetof(ModelApiEvent, tool_name));
    printf("ModelApiMessage size %zu role %zu content %zu\n", sizeof(ModelApiMessage),
           offsetof(ModelApiMessage, role), offsetof(ModelApiMessage, content));
    return 0;
}
"#,
    )
    .unwrap();
    let program = dir.join("layout");
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let mut cc = Command::new("cc");
    cc.arg("-I")
        .arg(&include)
        .arg(&source)
        .arg("-o")
        .arg(&program);
    assert_success(&run_bounded(cc, Duration::from_secs(60)), "cc layout.c");
    let c = run_bounded(Command::new(&program), Duration::from_secs(10));
    assert_success(&c, "layout");
    let cs = mono(exe, &["layout"]);
    assert_success(&cs, "mono ModelApiTests.exe layout");
    assert_eq!(text(&c.stdout), text(&cs.stdout));
    assert!(text(&c.stdout).contains("ModelApiEvent size"));
}

/// A stub of the few UnityEngine types NpcDialogue.cs uses, so that the
/// example is compiled by every test run.
const UNITY_STUB: &str = r#"
namespace UnityEngine
{
    public class Object { }
    public class Component : Object { }
    public class Behaviour : Component { public bool enabled = true; }
    public class MonoBehaviour : Behaviour { }
    public static class Debug
    {
        public static void Log(object message) { }
        public static void LogWarning(object message) { }
        public static void LogError(object message) { }
    }
    public static class Time { public static float deltaTime; }
    // Names that a Unity script sees beside the binding's.
    public sealed class Event { }
    public sealed class Network { }
    [System.AttributeUsage(System.AttributeTargets.Field)]
    public sealed class SerializeField : System.Attribute { }
    [System.AttributeUsage(System.AttributeTargets.Field)]
    public sealed class TextAreaAttribute : System.Attribute { }
}
"#;

/// The Unity example compiles (against the stub), with no warning.
#[test]
fn csharp_unity_example_compiles() {
    if !mono_available() {
        return;
    }
    let dir = build_dir();
    let stub = dir.join("UnityEngineStub.cs");
    std::fs::write(&stub, UNITY_STUB).unwrap();
    let out = dir.join("NpcDialogue.dll");
    mcs(
        &[
            "-target:library",
            "-warnaserror",
            &format!("-out:{}", out.display()),
            "ModelApi.cs",
            "NpcDialogue.cs",
            &stub.display().to_string(),
        ],
        "mcs NpcDialogue.cs",
    );
}
