//! The examples whose bytes libcurl carries (examples-c/own_transport.c,
//! own_transport_hpp.cpp: detached streams, fed by the host) and the C++
//! checks of detached streams (examples-c/hpp_detached_test.cpp), built
//! with the system compilers against the static and the shared library,
//! run as they are, under valgrind and built with the sanitizers, against
//! the local test server, and against llama-server.
//!
//! The test server answers by model name:
//! - `ok`: "Hello", " from", " the", " test", " server", finish_reason
//!   stop, and a usage event (3 + 5 = 8 tokens) when the request asks for
//!   it (`stream_options.include_usage`);
//! - `unauthorized`: 401 with an OpenAI error body;
//! - `json`: a plain `chat.completion` (application/json), though the
//!   request asked for a stream;
//! - `tiny`: the `ok` stream in pieces of 3 bytes, each its own HTTP chunk,
//!   written 1 ms apart;
//! - `interim`: a `100 Continue` before the `ok` stream's head;
//! - `cut`: two pieces of text, then the body ends (no finish_reason, no
//!   `[DONE]`);
//! - `stream-error`: one piece, then an error event.

mod common;

use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use common::cbuild::{assert_ok, run, text, How, VARIANTS};
use common::server::{chunked, head, Reply, Step, TestServer};
use common::{completion_body, content_event, event, service, stream_events};

/// The two programs that carry their own bytes.
const PROGRAMS: [&str; 2] = ["own_transport", "own_transport_hpp"];
const KEY: &str = "sk-own-transport-key";
const QUESTION: &str = "Say \"hello\", ünïcode";

/// The `ok` stream's events, with the usage when `usage`.
fn ok_events(usage: bool) -> Vec<String> {
    let mut events = stream_events(&["Hello", " from", " the", " test", " server"]);
    if usage {
        let usage = event(serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": "test-model", "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
        }));
        events.insert(events.len() - 1, usage);
    }
    events
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

fn test_server() -> TestServer {
    TestServer::start(|request| {
        let body = request.body_json();
        let usage = body["stream_options"]["include_usage"] == true;
        match body["model"].as_str().unwrap_or("") {
            "unauthorized" => Reply::json(
                401,
                r#"{"error":{"message":"Invalid API key provided","type":"auth_error","code":"401"}}"#,
            ),
            "json" => Reply::json(200, &completion_body("A plain JSON answer")),
            "tiny" => {
                let bytes = ok_events(usage).concat().into_bytes();
                let mut steps = vec![Step::Write(sse_head())];
                for piece in bytes.chunks(3) {
                    steps.push(Step::Write(chunked(piece)));
                    steps.push(Step::Sleep(Duration::from_millis(1)));
                }
                steps.push(Step::Write(b"0\r\n\r\n".to_vec()));
                Reply::script(steps)
            }
            "interim" => {
                let mut steps = vec![
                    Step::Write(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()),
                    Step::Write(sse_head()),
                ];
                for e in ok_events(usage) {
                    steps.push(Step::Write(chunked(e.as_bytes())));
                }
                steps.push(Step::Write(b"0\r\n\r\n".to_vec()));
                Reply::script(steps)
            }
            "cut" => {
                let mut steps = vec![Step::Write(sse_head())];
                for piece in ["Cut", " short"] {
                    steps.push(Step::Write(chunked(content_event(piece).as_bytes())));
                }
                steps.push(Step::Write(b"0\r\n\r\n".to_vec()));
                Reply::script(steps)
            }
            "stream-error" => Reply::sse(&[
                &content_event("partial"),
                "data: {\"error\":{\"message\":\"model overloaded\"}}\n\n",
            ]),
            _ => {
                let events = ok_events(usage);
                Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
            }
        }
    })
}

fn env<'a>(url: &'a str, model: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("MODEL_API_URL", url),
        ("MODEL_NAME", model),
        ("MODEL_API_KEY", KEY),
    ]
}

/// valgrind fails a run with 99 (--error-exitcode), ASan/UBSan with 98.
fn assert_clean(out: &Output, what: &str) {
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("Sanitizer"), "{what}: {stderr}");
    assert!(!stderr.contains("runtime error"), "{what}: {stderr}");
    assert!(
        !matches!(out.status.code(), Some(98 | 99)),
        "{what} ({:?}): {stderr}",
        out.status
    );
}

/// Every line of `stderr` that starts with `prefix`, without it.
fn line_after<'a>(stderr: &'a str, prefix: &str) -> Option<&'a str> {
    stderr.lines().find_map(|line| line.strip_prefix(prefix))
}

/// The pieces own_transport reported it fed.
fn pieces_fed(stderr: &str) -> usize {
    let line = line_after(stderr, "fed: ").unwrap_or_else(|| panic!("no fed line: {stderr}"));
    line.split(' ').next().unwrap().parse().unwrap()
}

/// Both programs against the test server, `how`: the request the server
/// got, the text, the metadata, the error cases.
fn against_the_test_server(variant: &str, how: How) {
    let server = test_server();
    let url = server.url();
    for program in PROGRAMS {
        let what = format!("{variant}/{program} ({how:?})");

        // A stream: the text exactly, the finish reason and the usage.
        let before = server.requests().len();
        let out = run(variant, program, &[QUESTION], &env(&url, "ok"), "", how);
        assert_clean(&out, &what);
        assert_ok(&out, &what);
        assert_eq!(text(&out.stdout), "Hello from the test server\n", "{what}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("request: POST {url}/v1/chat/completions (")),
            "{what}: {stderr}"
        );
        assert!(
            stderr.contains("\nfinish_reason: stop\n"),
            "{what}: {stderr}"
        );
        assert!(
            stderr.contains("\nusage: 3 + 5 = 8 tokens\n"),
            "{what}: {stderr}"
        );
        assert!(!stderr.contains("canned"), "{what}: {stderr}");
        assert!(!stderr.contains(KEY), "{what}: {stderr}");

        // The request as the library built it, sent by curl.
        let requests = server.requests();
        assert_eq!(requests.len(), before + 1, "{what}: one request");
        let request = &requests[before];
        assert_eq!(request.method, "POST", "{what}");
        assert_eq!(request.path, "/v1/chat/completions", "{what}");
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {KEY}").as_str()),
            "{what}"
        );
        assert_eq!(request.header("x-example"), Some("own_transport"), "{what}");
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("accept"), Some("text/event-stream"));
        assert!(
            request
                .header("user-agent")
                .is_some_and(|agent| agent.starts_with("modelapi")),
            "{what}: {:?}",
            request.headers
        );
        assert_eq!(request.header("expect"), None, "{what}");
        let body = request.body_json();
        assert_eq!(body["stream"], true, "{what}: {body}");
        assert!(request.body_text().contains("\"stream\":true"), "{what}");
        assert_eq!(body["model"], "ok", "{what}");
        assert_eq!(body["stream_options"]["include_usage"], true, "{what}");
        assert_eq!(body["messages"][0]["role"], "user", "{what}");
        assert_eq!(body["messages"][0]["content"], QUESTION, "{what}");

        // A 1xx before the answer: skipped.
        let out = run(variant, program, &[], &env(&url, "interim"), "", how);
        assert_clean(&out, &what);
        assert_ok(&out, &format!("{what} interim"));
        assert_eq!(text(&out.stdout), "Hello from the test server\n", "{what}");

        // Tiny pieces, each fed as curl delivers it.
        let out = run(variant, program, &[], &env(&url, "tiny"), "", how);
        assert_clean(&out, &what);
        assert_ok(&out, &format!("{what} tiny"));
        assert_eq!(text(&out.stdout), "Hello from the test server\n", "{what}");
        let stderr = text(&out.stderr);
        assert!(pieces_fed(&stderr) >= 20, "{what}: {stderr}");
        assert!(
            stderr.contains("\nusage: 3 + 5 = 8 tokens\n"),
            "{what}: {stderr}"
        );

        // A plain JSON answer.
        let out = run(variant, program, &[], &env(&url, "json"), "", how);
        assert_clean(&out, &what);
        assert_ok(&out, &format!("{what} json"));
        assert_eq!(text(&out.stdout), "A plain JSON answer\n", "{what}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("\nfinish_reason: stop\n"),
            "{what}: {stderr}"
        );
        assert!(
            stderr.contains("\nusage: 3 + 2 = 5 tokens\n"),
            "{what}: {stderr}"
        );

        // 401: the server's message, exit 1, no key.
        let out = run(variant, program, &[], &env(&url, "unauthorized"), "", how);
        assert_clean(&out, &what);
        assert_eq!(out.status.code(), Some(1), "{what} unauthorized");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("error: MODELAPI_HTTP_ERROR"),
            "{what}: {stderr}"
        );
        assert!(stderr.contains("http status: 401"), "{what}: {stderr}");
        assert!(
            stderr.contains("Invalid API key provided"),
            "{what}: {stderr}"
        );
        assert!(!stderr.contains(KEY), "{what}: {stderr}");
        assert_eq!(text(&out.stdout), "", "{what}");

        // Cut short: the text that came, then the library's error.
        let out = run(variant, program, &[], &env(&url, "cut"), "", how);
        assert_clean(&out, &what);
        assert_eq!(out.status.code(), Some(1), "{what} cut");
        assert_eq!(text(&out.stdout), "Cut short\n", "{what}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("error: MODELAPI_TRANSPORT_ERROR"),
            "{what}: {stderr}"
        );

        // An error event in the middle: the transfer is stopped.
        let out = run(variant, program, &[], &env(&url, "stream-error"), "", how);
        assert_clean(&out, &what);
        assert_eq!(out.status.code(), Some(1), "{what} stream-error");
        assert_eq!(text(&out.stdout), "partial\n", "{what}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("model overloaded"), "{what}: {stderr}");

        // Canned replies: nothing to carry.
        let out = run(variant, program, &[], &[], "", how);
        assert_clean(&out, &what);
        assert_ok(&out, &format!("{what} canned"));
        assert_eq!(
            text(&out.stdout),
            "Bytes in someone's hands\nthe library reads them all\nthe host moves the wire\n",
            "{what}"
        );
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("MODEL_API_URL is not set"),
            "{what}: {stderr}"
        );
        assert!(stderr.contains("nothing to carry"), "{what}: {stderr}");
        assert!(!stderr.contains("request: POST"), "{what}: {stderr}");
    }

    // No server at all: curl's error, exit 1.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    for program in PROGRAMS {
        let what = format!("{variant}/{program} ({how:?}) refused");
        let out = run(variant, program, &[], &env(&closed, "ok"), "", how);
        assert_clean(&out, &what);
        assert_eq!(out.status.code(), Some(1), "{what}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("error: curl: "), "{what}: {stderr}");
        assert_eq!(text(&out.stdout), "", "{what}");
    }

    let out = run(variant, "hpp_detached_test", &[], &[], "", how);
    assert_clean(&out, &format!("{variant}/hpp_detached_test ({how:?})"));
    assert_ok(&out, &format!("{variant}/hpp_detached_test ({how:?})"));
    assert!(
        text(&out.stdout).ends_with(" passed, 0 failed\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn own_transport_against_the_test_server() {
    for variant in VARIANTS {
        against_the_test_server(variant, How::Plain);
    }
}

#[test]
fn own_transport_runs_clean_under_valgrind() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        panic!("valgrind is needed for this test: `bash tests/run-all.sh` installs it (tests/tools.sh)");
    }
    against_the_test_server("shared", How::Valgrind);
}

#[test]
fn own_transport_runs_clean_with_sanitizers() {
    for variant in VARIANTS {
        against_the_test_server(variant, How::Sanitizers);
    }
}

// ----- llama-server (see tests/llamacpp.rs) -----

/// The URL of a llama-server started for this test process, or `None`
/// (with a message) when the llama.cpp tests are not to run here, by the
/// rules of tests/llamacpp.rs.
fn llama_server() -> Option<&'static str> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let wanted = std::env::var("MODELAPI_LLAMACPP").unwrap_or_default();
        let cache = std::env::var("MODELAPI_LLAMACPP_HOME").unwrap_or_else(|_| {
            format!(
                "{}/.cache/modelapi/llamacpp-11434",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let installed = std::path::Path::new(&cache)
            .join(".modelapi-install-ok")
            .exists();
        if wanted == "0" || (wanted.is_empty() && !installed) {
            service::not_run(&format!(
                "NOTE: own_transport against llama-server was NOT run: set MODELAPI_LLAMACPP=1 \
                 to run it (it installs llama-server and SmolLM2-135M-Instruct into {cache}, \
                 once); `bash tests/run-all.sh` does"
            ));
            return None;
        }
        let script = root.join("tests/llamacpp/start.sh");
        let server = service::start(
            "llama-server",
            &script,
            "/health",
            Duration::from_secs(1800),
        );
        Some(format!("http://{}", server.addr))
    })
    .as_deref()
}

#[test]
fn own_transport_against_llama_server() {
    let Some(url) = llama_server() else { return };
    // The model's name is the server's alias (tests/llamacpp/start.sh).
    let env = [
        ("MODEL_API_URL", url),
        ("MODEL_NAME", "smollm2-135m-instruct"),
    ];
    let hows = [
        ("static", How::Plain),
        ("shared", How::Plain),
        ("shared", How::Valgrind),
        ("static", How::Sanitizers),
    ];
    for (variant, how) in hows {
        for program in PROGRAMS {
            let what = format!("{variant}/{program} ({how:?}) against llama-server");
            let out = run(
                variant,
                program,
                &["Write one short sentence about the sea."],
                &env,
                "",
                how,
            );
            assert_clean(&out, &what);
            assert_ok(&out, &what);
            let stdout = text(&out.stdout);
            let stderr = text(&out.stderr);
            assert!(
                stdout.trim().len() > 3 && stdout.ends_with('\n'),
                "{what}: {stdout:?}"
            );
            assert!(!stdout.contains('\u{fffd}'), "{what}: {stdout:?}");
            assert!(
                stderr.contains(&format!("request: POST {url}/v1/chat/completions (")),
                "{what}: {stderr}"
            );
            // llama-server streams a piece per token or so: many pieces.
            assert!(pieces_fed(&stderr) > 3, "{what}: {stderr}");
            let reason = line_after(&stderr, "finish_reason: ").unwrap_or("");
            assert!(reason == "stop" || reason == "length", "{what}: {stderr}");
            // It honours stream_options.include_usage.
            let usage = line_after(&stderr, "usage: ")
                .unwrap_or_else(|| panic!("{what}: no usage: {stderr}"));
            let numbers: Vec<u64> = usage
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            assert!(
                numbers.len() == 3 && numbers[0] > 0 && numbers[1] > 0,
                "{what}: {usage}"
            );
            assert_eq!(numbers[0] + numbers[1], numbers[2], "{what}: {usage}");
        }
    }
}
