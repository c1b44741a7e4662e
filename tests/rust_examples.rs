//! The Rust examples (examples/), built and run as a user runs them: with
//! their canned replies, and against a local server.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::server::{Reply, TestServer};
use common::{event, DONE};
use serde_json::{json, Value};

/// Builds the examples once; the folder of their binaries.
fn examples() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = env!("CARGO_MANIFEST_DIR");
        let out = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "--example",
                "agent",
                "--example",
                "chat",
            ])
            .current_dir(root)
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("debug/examples")
    })
}

fn run(example: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_program(&examples().join(example), args, env)
}

/// The main job as the README runs it (`cargo run`): the `modelapi-chat`
/// binary, built by cargo for the tests.
fn run_chat_binary(args: &[&str], env: &[(&str, &str)]) -> Output {
    run_program(env!("CARGO_BIN_EXE_modelapi-chat").as_ref(), args, env)
}

fn run_program(program: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let example = program.display();
    let mut command = Command::new(program);
    command.args(args);
    for var in common::cbuild::MODEL_ENV {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    let out = command.output().expect("the example runs");
    assert!(
        out.status.success(),
        "{example}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn chat_streams_its_canned_haiku() {
    let out = run("chat", &["Write a haiku"], &[]);
    assert!(
        text(&out.stdout).starts_with("Silent loops at night,\n"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stderr).contains("canned reply"));
}

#[test]
fn chat_binary_streams_its_canned_haiku() {
    let out = run_chat_binary(&["Write a haiku"], &[]);
    assert!(
        text(&out.stdout).starts_with("Silent loops at night,\n"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stderr).contains("canned reply"));
}

#[test]
fn chat_binary_asks_the_server_named_by_model_api_url() {
    let server = TestServer::start(|_| {
        Reply::sse(&[
            &chunk(
                json!({"role": "assistant", "content": "Tabs or "}),
                Value::Null,
            ),
            &chunk(json!({"content": "spaces?"}), json!("stop")),
            DONE,
        ])
    });
    let url = server.url();
    let out = run_chat_binary(
        &["Write", "a haiku"],
        &[
            ("MODEL_API_URL", url.as_str()),
            ("MODEL_NAME", "haiku-model"),
        ],
    );
    assert_eq!(text(&out.stdout), "Tabs or spaces?\n");
    assert!(
        !text(&out.stderr).contains("canned"),
        "{}",
        text(&out.stderr)
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let body = requests[0].body_json();
    assert_eq!(body["model"], "haiku-model");
    assert_eq!(body["stream"], true);
    assert_eq!(body["messages"][1]["content"], "Write a haiku");
}

#[test]
fn agent_runs_its_tool_loop_with_canned_replies() {
    let out = run("agent", &[], &[]);
    assert_eq!(text(&out.stdout), "It is 13 °C and sunny in Paris.\n");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("I should call get_weather."), "{stderr}");
    assert!(stderr.contains("[calling get_weather]"), "{stderr}");
    assert!(
        stderr.contains(r#"[tool] get_weather({"city":"Paris"}) -> {"city":"Paris","sky":"sunny","temperature_c":13}"#),
        "{stderr}"
    );
}

fn chunk(delta: Value, finish_reason: Value) -> String {
    event(json!({
        "id": "chatcmpl-agent", "object": "chat.completion.chunk", "created": 1,
        "model": "tool-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }))
}

#[test]
fn agent_runs_its_tool_loop_against_a_server() {
    let server = TestServer::start(|request| {
        let body = request.body_json();
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let events = if messages.iter().any(|m| m["role"] == "tool") {
            // The second turn: the tool's result is there; the answer.
            let result = messages.last().unwrap()["content"]
                .as_str()
                .unwrap_or("")
                .to_string();
            vec![
                chunk(
                    json!({"role": "assistant", "content": "Oslo: "}),
                    Value::Null,
                ),
                chunk(json!({"content": result}), Value::Null),
                chunk(json!({}), json!("stop")),
                DONE.to_string(),
            ]
        } else {
            // The first turn: reasoning, then a call whose arguments come
            // in pieces.
            vec![
                chunk(
                    json!({"role": "assistant", "reasoning_content": "Weather: "}),
                    Value::Null,
                ),
                chunk(json!({"reasoning_content": "use the tool."}), Value::Null),
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_42", "type": "function",
                    "function": {"name": "get_weather", "arguments": ""}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Oslo\"}"}}]}),
                    Value::Null,
                ),
                chunk(json!({}), json!("tool_calls")),
                DONE.to_string(),
            ]
        };
        Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
    });
    let url = server.url();
    let out = run(
        "agent",
        &["Weather in Oslo?"],
        &[
            ("MODEL_API_URL", url.as_str()),
            ("MODEL_NAME", "tool-model"),
        ],
    );
    let result = r#"{"city":"Oslo","sky":"sunny","temperature_c":20}"#;
    assert_eq!(text(&out.stdout), format!("Oslo: {result}\n"));
    assert!(text(&out.stderr).contains("Weather: use the tool."));
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let first = requests[0].body_json();
    assert_eq!(first["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(first["stream"], true);
    let second = requests[1].body_json();
    let messages = second["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[1]["content"], "Weather in Oslo?");
    assert_eq!(messages[2]["role"], "assistant");
    assert_eq!(
        messages[2]["tool_calls"],
        json!([{"id": "call_42", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}])
    );
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "call_42", "content": result})
    );
}
