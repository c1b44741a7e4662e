//! The C and C++ programs of examples-c/, built against the static and the
//! shared library with the system compilers, run against a local test
//! server and in canned mode, and run again under valgrind.
//!
//! The test server answers by model name:
//! - `ok`: "Hello from the test server" (complete; `temperature=<v>` when the
//!   request has a temperature), or the same text in five chunks (stream);
//! - `unauthorized`: 401 with an OpenAI error body;
//!   The stream carries the header `x-request-id: req-hpp-1`, and a usage
//!   event (3 + 5 = 8 tokens) when the request asks for it
//!   (`stream_options.include_usage`);
//! - `long`: a stream of 1000 chunks "x", 10 ms apart;
//! - `stream-error`: one chunk, then an error event;
//! - `slow`: no answer for 5 s, then the connection is closed (for cancels
//!   of a waiting `complete`).

mod common;

use std::process::Command;
use std::time::Duration;

use common::cbuild::{assert_ok, build, run, target_dir, text, How, VARIANTS};
use common::server::{chunked, head, Reply, Step, TestServer};
use common::{completion_body, content_event, event, stream_events, DONE};

fn sse(events: Vec<String>) -> Reply {
    Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
}

fn test_server() -> TestServer {
    TestServer::start(|request| {
        let body = request.body_json();
        let streaming = body["stream"] == true;
        match body["model"].as_str().unwrap_or("") {
            "slow" => Reply::script(vec![Step::Sleep(Duration::from_secs(5))]),
            "unauthorized" => Reply::json(
                401,
                r#"{"error":{"message":"Invalid API key provided","type":"auth_error","code":"401"}}"#,
            ),
            "long" if streaming => {
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
                Reply {
                    steps,
                    keep_alive: true,
                }
            }
            "stream-error" if streaming => sse(vec![
                content_event("partial"),
                "data: {\"error\":{\"message\":\"model overloaded\"}}\n\n".into(),
            ]),
            _ if streaming => {
                let mut events = stream_events(&["Hello", " from", " the", " test", " server"]);
                if body["stream_options"]["include_usage"] == true {
                    let usage = event(serde_json::json!({
                        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                        "model": "test-model", "choices": [],
                        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
                    }));
                    events.insert(events.len() - 1, usage);
                }
                sse(events).with_header("x-request-id", "req-hpp-1")
            }
            _ => {
                let content = match body.get("temperature") {
                    Some(t) => format!("temperature={t}"),
                    None => "Hello from the test server".into(),
                };
                Reply::json(200, &completion_body(&content))
            }
        }
    })
}

#[test]
fn examples_talk_to_a_server() {
    let server = test_server();
    let url = server.url();
    let env = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "ok")];
    for variant in VARIANTS {
        for program in ["complete", "stream", "stream_pull", "ask"] {
            let out = run(variant, program, &["Say hello"], &env, "", How::Plain);
            assert_ok(&out, &format!("{variant}/{program}"));
            assert_eq!(
                text(&out.stdout),
                "Hello from the test server\n",
                "{variant}/{program}"
            );
            assert!(
                !text(&out.stderr).contains("canned"),
                "{variant}/{program} used canned replies"
            );
        }
        let out = run(variant, "stream_pull", &[], &env, "", How::Plain);
        assert!(
            text(&out.stderr).contains("frames: "),
            "{}",
            text(&out.stderr)
        );

        let out = run(variant, "threads", &["6"], &env, "", How::Plain);
        assert_ok(&out, &format!("{variant}/threads"));
        let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 6, "{lines:?}");
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(
                line,
                &format!("thread {i}: Hello from the test server | Hello from the test server")
            );
        }

        // A stream shorter than the delay ends before the cancel.
        let out = run(variant, "cancel", &["2000"], &env, "", How::Plain);
        assert_ok(&out, &format!("{variant}/cancel"));
        assert_eq!(text(&out.stdout), "Hello from the test server\n");
        assert!(
            text(&out.stderr).contains("finished before the cancel"),
            "{}",
            text(&out.stderr)
        );

        let out = run(
            variant,
            "chat",
            &[],
            &env,
            "hi\n\nhow are you?\n",
            How::Plain,
        );
        assert_ok(&out, &format!("{variant}/chat"));
        let stdout = text(&out.stdout);
        assert_eq!(
            stdout
                .matches("assistant: Hello from the test server")
                .count(),
            2,
            "{stdout}"
        );
    }
    // The chat sent the whole history with its second question.
    let chat_requests: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| {
            r.body_json()["messages"]
                .as_array()
                .is_some_and(|m| m.len() >= 3)
        })
        .collect();
    assert!(
        !chat_requests.is_empty(),
        "the chat's second turn carries the history"
    );
    let messages = chat_requests[0].body_json()["messages"].clone();
    assert_eq!(messages[0]["content"], "hi");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"], "Hello from the test server");
    assert_eq!(messages[2]["content"], "how are you?");
}

#[test]
fn examples_report_http_errors_with_the_servers_message() {
    let server = test_server();
    let url = server.url();
    let env = [
        ("MODEL_API_URL", url.as_str()),
        ("MODEL_NAME", "unauthorized"),
        ("MODEL_API_KEY", "sk-example-secret-key"),
    ];
    for variant in VARIANTS {
        for program in ["complete", "stream", "stream_pull", "cancel"] {
            let out = run(variant, program, &[], &env, "", How::Plain);
            assert_eq!(out.status.code(), Some(1), "{variant}/{program}");
            let stderr = text(&out.stderr);
            assert!(stderr.contains("MODELAPI_HTTP_ERROR"), "{stderr}");
            assert!(stderr.contains("http status: 401"), "{stderr}");
            assert!(stderr.contains("Invalid API key provided"), "{stderr}");
            assert!(!stderr.contains("sk-example-secret-key"), "{stderr}");
            assert_eq!(text(&out.stdout).trim(), "");
        }
    }
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Bearer sk-example-secret-key")
    );
}

#[test]
fn examples_fall_back_to_canned_replies() {
    for variant in VARIANTS {
        let env = [(
            "DEBUG_MOCK_RESPONSES",
            r#"["Canned: two plus two is four."]"#,
        )];
        let out = run(variant, "complete", &[], &env, "", How::Plain);
        assert_ok(&out, "complete");
        assert_eq!(text(&out.stdout), "Canned: two plus two is four.\n");
        assert!(text(&out.stderr).contains("MODEL_API_URL is not set"));

        let env = [(
            "DEBUG_MOCK_RESPONSES",
            "\"Lines of code,\\n  indented.\\n\"",
        )];
        for program in ["stream", "stream_pull"] {
            let out = run(variant, program, &[], &env, "", How::Plain);
            assert_ok(&out, program);
            assert_eq!(
                text(&out.stdout),
                "Lines of code,\n  indented.\n",
                "{program}"
            );
        }
        let env = [("DEBUG_MOCK_RESPONSES", r#"["Canned, from C++."]"#)];
        let out = run(variant, "ask", &[], &env, "", How::Plain);
        assert_ok(&out, "ask");
        assert_eq!(text(&out.stdout), "Canned, from C++.\n");
        // Each program's own canned replies.
        for program in [
            "complete",
            "stream",
            "stream_pull",
            "threads",
            "cancel",
            "ask",
        ] {
            let out = run(variant, program, &[], &[], "", How::Plain);
            assert_ok(&out, program);
            assert!(
                !text(&out.stdout).trim().is_empty(),
                "{program} printed nothing"
            );
        }
        let out = run(
            variant,
            "chat",
            &[],
            &[],
            "hello\nagain\n/quit\nnot read\n",
            How::Plain,
        );
        assert_ok(&out, "chat");
        assert_eq!(
            text(&out.stdout).matches("assistant: ").count(),
            2,
            "{}",
            text(&out.stdout)
        );
    }
}

#[test]
fn c_api_rules_and_error_paths() {
    let server = test_server();
    for variant in VARIANTS {
        let out = run(variant, "c_api_test", &[&server.url()], &[], "", How::Plain);
        assert_ok(&out, &format!("{variant}/c_api_test"));
        let stdout = text(&out.stdout);
        assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
        assert!(!stdout.contains("not ok"), "{stdout}");
    }
}

#[test]
fn cpp_wrapper_against_the_test_server() {
    let server = test_server();
    for variant in VARIANTS {
        let out = run(variant, "hpp_test", &[&server.url()], &[], "", How::Plain);
        assert_ok(&out, &format!("{variant}/hpp_test"));
        let stdout = text(&out.stdout);
        assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
        assert!(!stdout.contains("not ok"), "{stdout}");
    }
    // The setters' header and the key reached the server.
    let requests = server.requests();
    assert!(requests
        .iter()
        .any(|r| r.header("x-example-test") == Some("hpp_test")));
    assert!(requests
        .iter()
        .any(|r| r.header("authorization") == Some("Bearer sk-hpp-literal")));
    assert!(requests
        .iter()
        .any(|r| r.header("authorization") == Some("Bearer sk-hpp-secret")));
}

/// `cancelled after <N> ms: <STATUS>` in `stderr`: N and STATUS.
fn cancelled_after(stderr: &str) -> Option<(u64, String)> {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("cancelled after "))?;
    let (ms, status) = line.split_once(" ms: ")?;
    Some((ms.parse().ok()?, status.to_string()))
}

#[test]
fn cancel_example_stops_a_long_stream() {
    let server = test_server();
    let url = server.url();
    let env = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "long")];
    for variant in VARIANTS {
        // The default delay (300 ms), then a shorter one.
        for args in [&[][..], &["100"]] {
            let out = run(variant, "cancel", args, &env, "", How::Plain);
            assert_ok(&out, &format!("{variant}/cancel {args:?}"));
            let stderr = text(&out.stderr);
            let (ms, status) = cancelled_after(&stderr)
                .unwrap_or_else(|| panic!("no 'cancelled after' line: {stderr}"));
            assert_eq!(status, "MODELAPI_ABORTED", "{stderr}");
            assert!(ms < 500, "the cancel took {ms} ms: {stderr}");
            let stdout = text(&out.stdout);
            let chunks = stdout.matches('x').count();
            assert!(
                chunks > 0 && chunks < 1000,
                "{chunks} chunks arrived: {stdout}"
            );
            assert_eq!(stdout.trim_end_matches('\n').replace('x', ""), "");
        }
        // Cancelled before the request was even answered.
        let out = run(variant, "cancel", &["0"], &env, "", How::Plain);
        assert_ok(&out, &format!("{variant}/cancel 0"));
        let stderr = text(&out.stderr);
        assert_eq!(
            cancelled_after(&stderr).map(|(_, s)| s).as_deref(),
            Some("MODELAPI_ABORTED"),
            "{stderr}"
        );
    }
    let out = run("shared", "cancel", &["soon"], &env, "", How::Plain);
    assert_eq!(out.status.code(), Some(2), "a bad delay is a usage error");
}

#[test]
fn cancel_example_in_canned_mode_finishes_first() {
    for variant in VARIANTS {
        let out = run(variant, "cancel", &[], &[], "", How::Plain);
        assert_ok(&out, &format!("{variant}/cancel"));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("MODEL_API_URL is not set"), "{stderr}");
        assert!(stderr.contains("finished before the cancel"), "{stderr}");
        assert!(!stderr.contains("cancelled after"), "{stderr}");
        assert!(!text(&out.stdout).trim().is_empty());

        let env = [("DEBUG_MOCK_RESPONSES", r#"["Canned and quick."]"#)];
        let out = run(variant, "cancel", &["1000"], &env, "", How::Plain);
        assert_ok(&out, &format!("{variant}/cancel"));
        assert_eq!(text(&out.stdout), "Canned and quick.\n");
    }
}

/// Compiles `source` with the C++ compiler and `flags`, `-I include`.
fn compile_cpp(name: &str, source: &str, flags: &[&str]) -> std::process::Output {
    let include = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, source).unwrap();
    Command::new("c++")
        .args(flags)
        .args(["-fsyntax-only", "-I"])
        .arg(&include)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("c++ is needed for this test: {e}"))
}

#[test]
fn cpp_header_compiles_standalone_as_strict_cpp17() {
    // The header first, alone: it includes what it needs. Every template is
    // instantiated (the callback forms with void and bool callbacks).
    let source = r#"#include "modelapi.hpp"
int use(const modelapi::Client &client, modelapi::Cancel &cancel);
int use(const modelapi::Client &client, modelapi::Cancel &cancel)
{
    std::vector<modelapi::Message> messages{modelapi::system("s"), modelapi::user("u")};
    int n = 0;
    for (std::string_view chunk : client.stream(messages)) {
        n += static_cast<int>(chunk.size());
    }
    modelapi::Stream stream = client.stream_json(modelapi::to_json(messages), cancel, "mock");
    while (std::optional<std::string_view> chunk = stream.next()) {
        n += static_cast<int>(chunk->size());
    }
    n += static_cast<int>(stream.usage().value_or(modelapi::Usage{}).total_tokens);
    n += stream.finish_reason().has_value() ? 1 : 0;
    client.stream(messages, [&](std::string_view chunk) { n += static_cast<int>(chunk.size()); });
    client.stream(messages, [](std::string_view) { return false; }, cancel);
    client.stream_json("[]", [](std::string_view) {}, std::string_view("mock"));
    client.stream_json("[]", [](std::string_view) { return true; }, cancel);
    modelapi::Completion answer = client.complete(messages, "mock");
    answer = client.complete(messages, cancel);
    answer = client.complete_json("[]");
    answer = client.complete_json("[]", cancel);
    return n + static_cast<int>(answer.content.size());
}
int main()
{
    try {
        modelapi::Client client = modelapi::Client::from_env();
        client.timeout(std::chrono::seconds(5)).max_retries(1).header("a", "b").ca_file("c");
        modelapi::Cancel cancel;
        return use(client, cancel);
    } catch (const modelapi::Error &e) {
        return e.status() == MODELAPI_OK || e.http_status() != 0;
    }
}
"#;
    let strict = ["-Wall", "-Wextra", "-Werror", "-pedantic"];
    let stricter = [
        "-Wshadow",
        "-Wconversion",
        "-Wsign-conversion",
        "-Wold-style-cast",
        "-Wnon-virtual-dtor",
        "-Wcast-qual",
        "-Wundef",
    ];
    for (std, extra) in [
        ("-std=c++17", &[][..]),
        ("-std=c++17", &stricter[..]),
        ("-std=c++20", &[][..]),
    ] {
        let flags: Vec<&str> = [std].iter().chain(&strict).chain(extra).copied().collect();
        let out = compile_cpp("hpp_standalone.cpp", source, &flags);
        assert!(out.status.success(), "c++ {flags:?}: {}", text(&out.stderr));
    }
    // Before C++17: a clear message, not a cascade of errors.
    let out = compile_cpp("hpp_cpp14.cpp", source, &["-std=c++14"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("modelapi.hpp needs C++17"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn examples_run_clean_under_valgrind() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        panic!("valgrind is needed for this test: apt-get install valgrind (.ci/run installs it)");
    }
    let server = test_server();
    let url = server.url();
    let served = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "ok")];
    // (program, arguments, environment, standard input)
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 9] = [
        ("complete", &[], &served, ""),
        ("ask", &[], &served, ""),
        ("ask", &[], &[], ""),
        ("stream", &[], &served, ""),
        ("stream_pull", &[], &served, ""),
        ("threads", &["3"], &served, ""),
        ("chat", &[], &served, "hi\nmore\n"),
        ("complete", &[], &[], ""),
        ("stream_pull", &[], &[], ""),
    ];
    for (program, args, env, stdin) in cases {
        let out = run("shared", program, args, env, stdin, How::Valgrind);
        assert_ok(&out, &format!("valgrind {program}"));
    }
    let out = run("static", "c_api_test", &[&url], &[], "", How::Valgrind);
    assert_ok(&out, "valgrind c_api_test");
    let out = run("static", "hpp_test", &[&url], &[], "", How::Valgrind);
    assert_ok(&out, "valgrind hpp_test");
    assert!(text(&out.stdout).contains(" passed, 0 failed"));
    // The worker thread cancelled half-way, and the canned stream.
    let long = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "long")];
    for env in [&long[..], &[]] {
        let out = run("shared", "cancel", &["300"], env, "", How::Valgrind);
        assert_ok(&out, "valgrind cancel");
    }
}

#[test]
fn examples_run_clean_with_sanitizers() {
    let server = test_server();
    let url = server.url();
    let served = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "ok")];
    for variant in VARIANTS {
        let out = run(variant, "c_api_test", &[&url], &[], "", How::Sanitizers);
        assert_ok(&out, &format!("{variant}/c_api_test with sanitizers"));
        for (program, args) in [
            ("complete", &[][..]),
            ("stream", &[]),
            ("stream_pull", &[]),
            ("threads", &["4"]),
            ("ask", &[]),
        ] {
            for env in [&served[..], &[]] {
                let out = run(variant, program, args, env, "", How::Sanitizers);
                assert_ok(&out, &format!("{variant}/{program} with sanitizers"));
                assert!(
                    !text(&out.stderr).contains("Sanitizer"),
                    "{}",
                    text(&out.stderr)
                );
            }
        }
        let out = run(
            variant,
            "chat",
            &[],
            &served,
            "hi\nagain\n",
            How::Sanitizers,
        );
        assert_ok(&out, &format!("{variant}/chat with sanitizers"));

        let out = run(variant, "hpp_test", &[&url], &[], "", How::Sanitizers);
        assert_ok(&out, &format!("{variant}/hpp_test with sanitizers"));
        assert!(text(&out.stdout).contains(" passed, 0 failed"));

        let long = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "long")];
        for env in [&long[..], &[]] {
            let out = run(variant, "cancel", &["200"], env, "", How::Sanitizers);
            assert_ok(&out, &format!("{variant}/cancel with sanitizers"));
            assert!(
                !text(&out.stderr).contains("Sanitizer"),
                "{}",
                text(&out.stderr)
            );
        }
    }
}

#[test]
fn shared_library_exports_only_the_c_api() {
    build();
    let lib = target_dir().join("debug").join("libmodelapi.so");
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&lib)
        .output()
        .expect("nm (binutils) is needed for this test");
    assert!(out.status.success());
    let symbols: Vec<String> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    assert!(
        symbols.iter().any(|s| s == "modelapi_complete"),
        "{symbols:?}"
    );
    let others: Vec<&String> = symbols
        .iter()
        .filter(|s| !s.starts_with("modelapi_"))
        .collect();
    assert!(others.is_empty(), "exported besides modelapi_*: {others:?}");
}
