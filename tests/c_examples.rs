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
//!   of a waiting `complete`);
//! - `agent` (streamed): without a `tool` message in the request, reasoning,
//!   content and two parallel tool calls whose pieces interleave, as vLLM
//!   and OpenAI send them (see [`agent_first_turn`]); with one, a text made
//!   of the tool results (see [`agent_answer`]).

mod common;

use std::process::Command;
use std::time::Duration;

use common::cbuild::{assert_ok, run, text, How, VARIANTS};
use common::server::{chunked, head, Reply, Step, TestServer};
use common::{completion_body, content_event, event, finish_event, stream_events, DONE};

fn sse(events: Vec<String>) -> Reply {
    Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
}

/// One chunk of the `agent` stream with this `delta` (JSON text, written
/// as is, so that its escapes are those given).
fn agent_chunk(delta: &str, finish_reason: &str) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-agent\",\"object\":\"chat.completion.chunk\",\"created\":1,\
         \"model\":\"agent-model\",\"choices\":[{{\"index\":0,\"delta\":{delta},\
         \"finish_reason\":{finish_reason}}}]}}\n\n"
    )
}

/// The arguments the `agent` stream's two tool calls add up to.
const ZRH_ARGUMENTS: &str = r#"{"city": "Zürich"}"#;
const SAO_ARGUMENTS: &str = r#"{"city": "S\u00e3o Paulo", "unit": "celsius"}"#;

/// The first turn of the `agent` model: an empty content piece (llama.cpp
/// sends one), reasoning with `\u` escapes, content, then tool calls
/// `call_zrh` (index 0, [`ZRH_ARGUMENTS`]) and `call_sao` (index 1,
/// [`SAO_ARGUMENTS`], whose text holds a `\u` escape of its own, split
/// between two pieces), the first piece of each with its id, type and name,
/// the others keyed by index only, interleaved; one chunk has a piece of
/// each call (the second one empty). One event is written in two parts
/// that cut a `ü` in two, another in two parts that cut a `\\` in two.
fn agent_first_turn() -> Reply {
    let deltas = [
        r#"{"role":"assistant","content":""}"#,
        r#"{"reasoning_content":"Two cities: Z\u00fcrich"}"#,
        r#"{"reasoning_content":" and S\u00e3o Paulo."}"#,
        r#"{"content":"Let me check both cities."}"#,
        r#"{"tool_calls":[{"index":0,"id":"call_zrh","type":"function","function":{"name":"get_weather","arguments":""}}]}"#,
        r#"{"tool_calls":[{"index":1,"id":"call_sao","type":"function","function":{"name":"get_weather","arguments":"{\"ci"}}]}"#,
        r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Z"}}]}"#,
        r#"{"tool_calls":[{"index":1,"function":{"arguments":"ty\": \"S\\u00"}}]}"#,
        r#"{"tool_calls":[{"index":0,"function":{"arguments":"ürich\"}"}}]}"#,
        r#"{"tool_calls":[{"index":1,"function":{"arguments":"e3o Paulo\", \"unit"}},{"index":0,"function":{"arguments":""}}]}"#,
        r#"{"tool_calls":[{"index":1,"function":{"arguments":"\": \"celsius\"}"}}]}"#,
    ];
    let mut steps = vec![Step::Write(head(
        200,
        &[
            ("Content-Type", "text/event-stream".into()),
            ("Transfer-Encoding", "chunked".into()),
        ],
    ))];
    for delta in deltas {
        let event = agent_chunk(delta, "null");
        // Where to cut the event in two writes, if anywhere.
        let cut = if delta.contains('ü') {
            event.find('ü').map(|at| at + 1) // inside the character's UTF-8
        } else {
            event.find(r"\\u00").map(|at| at + 1) // between the two backslashes
        };
        match cut {
            Some(at) => {
                steps.push(Step::Write(chunked(&event.as_bytes()[..at])));
                steps.push(Step::Sleep(Duration::from_millis(20)));
                steps.push(Step::Write(chunked(&event.as_bytes()[at..])));
            }
            None => steps.push(Step::Write(chunked(event.as_bytes()))),
        }
    }
    steps.push(Step::Write(chunked(
        agent_chunk("{}", "\"tool_calls\"").as_bytes(),
    )));
    steps.push(Step::Write(chunked(DONE.as_bytes())));
    steps.push(Step::Write(b"0\r\n\r\n".to_vec()));
    Reply {
        steps,
        keep_alive: true,
    }
}

/// The answer of the `agent` model once the request has `tool` messages:
/// "It is 9 °C and foggy in Zürich, and ..." made of each tool message's
/// JSON (`city`, `temperature_c`, `conditions`), or a text saying what is
/// wrong with one.
fn agent_answer(messages: &[serde_json::Value]) -> String {
    let mut parts = Vec::new();
    for message in messages.iter().filter(|m| m["role"] == "tool") {
        let content = message["content"].as_str().unwrap_or("");
        match serde_json::from_str::<serde_json::Value>(content) {
            Ok(result) => parts.push(format!(
                "{} °C and {} in {}",
                result["temperature_c"],
                result["conditions"].as_str().unwrap_or("?"),
                result["city"].as_str().unwrap_or("?")
            )),
            Err(e) => return format!("The tool result is not JSON ({e}): {content}"),
        }
    }
    format!("It is {}.", parts.join(", and "))
}

/// `text` in pieces of at most `chars` characters.
fn pieces_of(text: &str, chars: usize) -> Vec<String> {
    let all: Vec<char> = text.chars().collect();
    all.chunks(chars).map(|c| c.iter().collect()).collect()
}

fn test_server() -> TestServer {
    TestServer::start(|request| {
        if let Some(reply) = embeddings_and_models(request) {
            return reply;
        }
        let body = request.body_json();
        let streaming = body["stream"] == true;
        match body["model"].as_str().unwrap_or("") {
            "agent" if streaming => {
                let messages = body["messages"].as_array().cloned().unwrap_or_default();
                if messages.iter().any(|m| m["role"] == "tool") {
                    let pieces = pieces_of(&agent_answer(&messages), 6);
                    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
                    sse(stream_events(&pieces))
                } else {
                    agent_first_turn()
                }
            }
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

/// `POST /v1/embeddings`: one vector `[length, first byte, 1]` per input
/// (401 for the model `unauthorized`); `GET /v1/models`: the models `ok`,
/// `agent` and `unauthorized` (401 when the request carries a key).
fn embeddings_and_models(request: &common::server::Request) -> Option<Reply> {
    let unauthorized = || {
        Reply::json(
            401,
            r#"{"error":{"message":"Invalid API key provided","type":"auth_error","code":"401"}}"#,
        )
    };
    match request.path.as_str() {
        "/v1/models" if request.header("authorization").is_some() => Some(unauthorized()),
        "/v1/models" => Some(Reply::json(
            200,
            r#"{"object":"list","data":[{"id":"ok","object":"model","owned_by":"test"},
                {"id":"agent","object":"model","owned_by":"test"},
                {"id":"unauthorized","object":"model","owned_by":"test"}]}"#,
        )),
        "/v1/embeddings" => {
            let body = request.body_json();
            if body["model"] == "unauthorized" {
                return Some(unauthorized());
            }
            let data: Vec<serde_json::Value> = body["input"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    let text = text.as_str().unwrap();
                    serde_json::json!({"object": "embedding", "index": i,
                        "embedding": [text.len(), text.as_bytes()[0], 1]})
                })
                .collect();
            Some(Reply::json(
                200,
                &serde_json::json!({"object": "list", "model": body["model"], "data": data})
                    .to_string(),
            ))
        }
        _ => None,
    }
}

/// What embed and embed_hpp print for `texts` and vectors `[length, first
/// byte, 1]` (the test server's).
fn embed_stdout(models: &[&str], vectors: &[Vec<f64>]) -> String {
    let mut out: String = models.iter().map(|m| format!("model: {m}\n")).collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    out += &format!("vectors: {} x {}\n", vectors.len(), vectors[0].len());
    for (i, v) in vectors.iter().enumerate() {
        let first = &vectors[0];
        let cosine = dot(first, v) / (dot(first, first) * dot(v, v)).sqrt();
        out += &format!(
            "text {i}: norm {:.4}, cosine with text 0: {cosine:.4}\n",
            dot(v, v).sqrt()
        );
    }
    out
}

#[test]
fn embeddings_and_models_from_c_and_cpp() {
    let server = test_server();
    let url = server.url();
    let env = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "ok")];
    let texts = [
        "The cat sat on the mat.",
        "A dog barked at the moon.",
        "The cat sat on the mat.",
    ];
    let vectors: Vec<Vec<f64>> = texts
        .iter()
        .map(|t| vec![t.len() as f64, f64::from(t.as_bytes()[0]), 1.0])
        .collect();
    let expected = embed_stdout(&["ok", "agent", "unauthorized"], &vectors);
    assert!(
        expected.contains("text 2: norm 87.0976, cosine with text 0: 1.0000"),
        "{expected}"
    );
    for variant in VARIANTS {
        for program in ["request_test", "request_hpp_test"] {
            let out = run(variant, program, &[&url], &[], "", How::Plain);
            assert_ok(&out, &format!("{variant}/{program}"));
            assert!(text(&out.stdout).contains(" passed, 0 failed"));
        }
        for program in ["embed", "embed_hpp"] {
            let what = format!("{variant}/{program}");
            let out = run(variant, program, &[], &env, "", How::Plain);
            assert_ok(&out, &what);
            assert_eq!(text(&out.stdout), expected, "{what}");
            // Texts given on the command line, escaped on the way.
            let out = run(
                variant,
                program,
                &["a \"quoted\"\n text", "b"],
                &env,
                "",
                How::Plain,
            );
            assert_ok(&out, &what);
            let given = embed_stdout(
                &["ok", "agent", "unauthorized"],
                &[vec![16.0, 97.0, 1.0], vec![1.0, 98.0, 1.0]],
            );
            assert_eq!(text(&out.stdout), given, "{what}");
            // Canned: 8 floats a text, equal for equal texts.
            let out = run(variant, program, &[], &[], "", How::Plain);
            assert_ok(&out, &what);
            let stdout = text(&out.stdout);
            let lines: Vec<&str> = stdout.lines().collect();
            assert_eq!(lines.len(), 4, "{what}: {stdout}");
            assert_eq!(lines[0], "vectors: 3 x 8", "{what}");
            assert_eq!(
                lines[1], "text 0: norm 1.0000, cosine with text 0: 1.0000",
                "{what}"
            );
            assert_eq!(
                lines[3], "text 2: norm 1.0000, cosine with text 0: 1.0000",
                "{what}"
            );
            assert!(!lines[2].ends_with("1.0000"), "{what}: {stdout}");
        }
    }
    let embeds: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/embeddings" && r.body_json()["model"] == "ok")
        .collect();
    assert!(!embeds.is_empty());
    assert!(embeds
        .iter()
        .any(|r| r.body_json()["input"] == serde_json::json!(["a \"quoted\"\n text", "b"])));
}

/// request_test, embed and embed_hpp under valgrind and with the
/// sanitizers: no error, no leak.
#[test]
fn embeddings_and_requests_run_clean() {
    let server = test_server();
    let url = server.url();
    let env = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "ok")];
    for how in [How::Valgrind, How::Sanitizers] {
        for program in ["request_test", "request_hpp_test"] {
            let out = run("static", program, &[&url], &[], "", how);
            assert_ok(&out, &format!("{how:?} {program}"));
            assert!(text(&out.stdout).contains(" passed, 0 failed"));
        }
        for program in ["embed", "embed_hpp"] {
            for env in [&env[..], &[]] {
                let out = run("shared", program, &[], env, "", how);
                assert_ok(&out, &format!("{how:?} {program}"));
                assert!(
                    !text(&out.stderr).contains("Sanitizer"),
                    "{}",
                    text(&out.stderr)
                );
            }
        }
    }
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
        for program in [
            "complete",
            "stream",
            "stream_pull",
            "cancel",
            "agent",
            "agent_hpp",
            "embed",
            "embed_hpp",
        ] {
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

/// What the agents print for the `agent` model's two turns.
const AGENT_STDOUT: &str = "Let me check both cities.\n\
    -> get_weather({\"city\": \"Zürich\"}) [call_zrh]\n\
    <- {\"city\":\"Zürich\",\"temperature_c\":9,\"conditions\":\"foggy\"}\n\
    -> get_weather({\"city\": \"S\\u00e3o Paulo\", \"unit\": \"celsius\"}) [call_sao]\n\
    <- {\"city\":\"São Paulo\",\"temperature_c\":27,\"conditions\":\"rainy\"}\n\
    It is 9 °C and foggy in Zürich, and 27 °C and rainy in São Paulo.\n";

#[test]
fn agents_call_tools_on_a_server() {
    let server = test_server();
    let url = server.url();
    let env = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "agent")];
    // A question that needs escaping in JSON.
    let question = "Weather in \"Zürich\"\\and\tSão Paulo?";
    for variant in VARIANTS {
        for program in ["agent", "agent_hpp"] {
            let out = run(variant, program, &[question], &env, "", How::Plain);
            let what = format!("{variant}/{program}");
            assert_ok(&out, &what);
            assert_eq!(text(&out.stdout), AGENT_STDOUT, "{what}");
            let stderr = text(&out.stderr);
            assert_eq!(
                stderr, "(thinking) Two cities: Zürich and São Paulo.\n",
                "{what}"
            );
        }
    }
    let requests: Vec<serde_json::Value> = server
        .requests()
        .iter()
        .map(|r| r.body_json())
        .filter(|b| b["model"] == "agent")
        .collect();
    assert_eq!(requests.len(), 8, "two turns of four runs: {requests:#?}");
    for (turn, body) in requests.iter().enumerate() {
        let first_turn = turn % 2 == 0;
        assert_eq!(body["stream"], true);
        assert_eq!(body["tools"][0]["type"], "function");
        assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
        assert_eq!(
            body["tools"][0]["function"]["parameters"]["required"][0],
            "city"
        );
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages[0]["role"], "user");
        assert_eq!(messages[0]["content"], question);
        if first_turn {
            assert_eq!(messages.len(), 1, "{body:#}");
            continue;
        }
        // The second turn: the assistant message with both calls, each
        // call's arguments exactly as their pieces add up, then one tool
        // message per call, in index order.
        assert_eq!(messages.len(), 4, "{body:#}");
        let assistant = &messages[1];
        assert_eq!(assistant["role"], "assistant");
        assert_eq!(assistant["content"], "Let me check both cities.");
        let calls = assistant["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2, "{body:#}");
        for (call, (id, arguments)) in calls
            .iter()
            .zip([("call_zrh", ZRH_ARGUMENTS), ("call_sao", SAO_ARGUMENTS)])
        {
            assert_eq!(call["id"], id);
            assert_eq!(call["type"], "function");
            assert_eq!(call["function"]["name"], "get_weather");
            assert_eq!(call["function"]["arguments"], arguments);
        }
        for (message, (id, result)) in messages[2..].iter().zip([
            (
                "call_zrh",
                serde_json::json!({"city": "Zürich", "temperature_c": 9, "conditions": "foggy"}),
            ),
            (
                "call_sao",
                serde_json::json!({"city": "São Paulo", "temperature_c": 27, "conditions": "rainy"}),
            ),
        ]) {
            assert_eq!(message["role"], "tool");
            assert_eq!(message["tool_call_id"], id);
            let content: serde_json::Value =
                serde_json::from_str(message["content"].as_str().unwrap()).unwrap();
            assert_eq!(content, result);
        }
    }
}

#[test]
fn agents_call_tools_with_canned_replies() {
    for variant in VARIANTS {
        for program in ["agent", "agent_hpp"] {
            let what = format!("{variant}/{program}");
            // Their own canned replies: a tool call, then the answer.
            let out = run(variant, program, &[], &[], "", How::Plain);
            assert_ok(&out, &what);
            assert_eq!(
                text(&out.stdout),
                "-> get_weather({\"city\":\"Paris\"}) [call_1]\n\
                 <- {\"city\":\"Paris\",\"temperature_c\":18,\"conditions\":\"sunny\"}\n\
                 It is 18 °C and sunny in Paris.\n",
                "{what}"
            );
            let stderr = text(&out.stderr);
            assert!(stderr.contains("MODEL_API_URL is not set"), "{stderr}");
            assert!(
                stderr.contains(
                    "\n(thinking) The user asks about the weather in Paris: I should call \
                     get_weather.\n"
                ),
                "{stderr}"
            );

            // Parallel calls without ids, an unknown city, an unknown tool.
            let env = [(
                "DEBUG_MOCK_RESPONSES",
                r#"[{"content": "Three calls.", "tool_calls": [
                      {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}},
                      {"function": {"name": "get_weather", "arguments": "{\"city\": \"Atlantis\"}"}},
                      {"function": {"name": "launch_rockets", "arguments": {}}}]},
                    "Done."]"#,
            )];
            let out = run(variant, program, &[], &env, "", How::Plain);
            assert_ok(&out, &what);
            assert_eq!(
                text(&out.stdout),
                "Three calls.\n\
                 -> get_weather({\"city\":\"Tokyo\"}) [call_mock_1_0]\n\
                 <- {\"city\":\"Tokyo\",\"temperature_c\":21,\"conditions\":\"clear\"}\n\
                 -> get_weather({\"city\": \"Atlantis\"}) [call_mock_1_1]\n\
                 <- {\"error\":\"no weather data for this city\"}\n\
                 -> launch_rockets({}) [call_mock_1_2]\n\
                 <- {\"error\":\"there is no such tool\"}\n\
                 Done.\n",
                "{what}"
            );

            // A model that never stops calling tools is stopped.
            let call = r#"{"tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}"#;
            let replies = format!("[{}]", [call; 6].join(","));
            let env = [("DEBUG_MOCK_RESPONSES", replies.as_str())];
            let out = run(variant, program, &[], &env, "", How::Plain);
            assert_eq!(out.status.code(), Some(1), "{what}");
            assert_eq!(text(&out.stdout).matches("-> get_weather").count(), 5);
            assert!(
                text(&out.stderr).contains("still calling tools after 5 turns"),
                "{}",
                text(&out.stderr)
            );
        }
    }
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
        .unwrap_or_else(|e| {
            panic!("c++ is needed for this test (`bash tests/run-all.sh` installs it: tests/tools.sh): {e}")
        })
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
    modelapi::Stream events = client.stream_json("[]");
    for (const modelapi::Event &event : events.events()) {
        n += static_cast<int>(event.text.size() + event.tool_index);
        n += event.tool_id.has_value() + event.tool_name.has_value();
        n += event.kind == modelapi::EventKind::tool_call ? 1 : 0;
    }
    for (const modelapi::Event &event : client.stream(messages).events()) {
        n += static_cast<int>(event.text.size());
    }
    modelapi::Stream::event_iterator it = events.events().begin();
    n += static_cast<int>((*it++).text.size());
    while (std::optional<modelapi::Event> event = events.next_event()) {
        n += static_cast<int>(std::string_view(modelapi::event_kind_name(event->kind)).size());
    }
    std::string json = events.completion_json();
    json += client.stream_events(messages, [&](const modelapi::Event &e) { n += static_cast<int>(e.text.size()); });
    json += client.stream_events(messages, [](modelapi::Event) { return false; }, cancel, "mock");
    json += client.stream_events_json("[]", [](const modelapi::Event &) {}, std::string_view("m"));
    json += client.stream_events_json("[]", [](const modelapi::Event &) { return true; }, cancel);
    json += modelapi::json_string("a\"b");
    modelapi::Stream detached = client.stream_detached(messages, "mock");
    json += detached.request_url();
    json += detached.request_body();
    for (const auto &[name, value] : detached.request_headers()) {
        n += static_cast<int>(name.size() + value.size());
    }
    detached.feed_head(200, "text/event-stream");
    detached.feed("data: ");
    detached.feed("[DONE]\n\n", 8);
    detached.feed_end();
    n += detached.detached() ? 1 : 0;
    json += client.stream_detached_json("[]").request_url();
    n += static_cast<int>(json.size());
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
        return e.status() == MODELAPI_OK || e.http_status() != 0 || e.pending();
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
        panic!("valgrind is needed for this test: `bash tests/run-all.sh` installs it (tests/tools.sh)");
    }
    let server = test_server();
    let url = server.url();
    let served = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "ok")];
    // (program, arguments, environment, standard input)
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let agent = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "agent")];
    let cases: [Case; 13] = [
        ("agent", &[], &agent, ""),
        ("agent", &[], &[], ""),
        ("agent_hpp", &[], &agent, ""),
        ("agent_hpp", &[], &[], ""),
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
        if program.starts_with("agent") && !env.is_empty() {
            assert_eq!(text(&out.stdout), AGENT_STDOUT, "valgrind {program}");
        }
    }
    let out = run("static", "c_api_test", &[&url], &[], "", How::Valgrind);
    assert_ok(&out, "valgrind c_api_test");
    assert!(text(&out.stdout).contains(" passed, 0 failed"));
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
    let agent = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "agent")];
    for variant in VARIANTS {
        let out = run(variant, "c_api_test", &[&url], &[], "", How::Sanitizers);
        assert_ok(&out, &format!("{variant}/c_api_test with sanitizers"));
        assert!(text(&out.stdout).contains(" passed, 0 failed"));
        for program in ["agent", "agent_hpp"] {
            for env in [&agent[..], &[]] {
                let out = run(variant, program, &[], env, "", How::Sanitizers);
                assert_ok(&out, &format!("{variant}/{program} with sanitizers"));
                assert!(
                    !text(&out.stderr).contains("Sanitizer"),
                    "{}",
                    text(&out.stderr)
                );
                if !env.is_empty() {
                    assert_eq!(text(&out.stdout), AGENT_STDOUT, "{variant}/{program}");
                }
            }
        }
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

// ---- the non-blocking examples: game_loop and event_loop ------------------

/// The pace of the `drip` model: one write every `DRIP_MS`.
const DRIP_MS: u64 = 40;

/// What the `drip` model answers to a question.
fn drip_answer(question: &str) -> String {
    format!("You asked: {question}")
}

/// How many writes the `drip` model makes for a question: the head, one
/// per piece of 3 characters, the finish event, `[DONE]`, the last chunk.
fn drip_writes(question: &str) -> usize {
    pieces_of(&drip_answer(question), 3).len() + 4
}

/// [`drip_answer`] of the request's last message, in pieces of 3
/// characters, one content event per write, `DRIP_MS` apart.
fn drip_reply(request: &common::server::Request) -> Reply {
    let body = request.body_json();
    let question = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    let pause = Step::Sleep(Duration::from_millis(DRIP_MS));
    let mut steps = vec![Step::Write(head(
        200,
        &[
            ("Content-Type", "text/event-stream".into()),
            ("Transfer-Encoding", "chunked".into()),
        ],
    ))];
    for piece in pieces_of(&drip_answer(&question), 3) {
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

/// A server for the non-blocking examples, by model name:
/// - `drip`: [`drip_reply`], a slow stream (so that the programs really see
///   `MODELAPI_PENDING` and really wait on the socket);
/// - `flaky`: 503 to every other request (the 1st, 3rd, ...), else as
///   `drip`: a program's first attempt fails and its retry, after the
///   backoff, streams;
/// - `unauthorized`: 401 with an OpenAI error body.
fn drip_server() -> TestServer {
    let flaky = std::sync::atomic::AtomicUsize::new(0);
    TestServer::start(move |request| match request.body_json()["model"].as_str() {
        Some("flaky") if flaky.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 2 == 0 => {
            Reply::json(
                503,
                r#"{"error":{"message":"overloaded, try again","type":"server_error"}}"#,
            )
        }
        Some("unauthorized") => Reply::json(
            401,
            r#"{"error":{"message":"Invalid API key provided","type":"auth_error","code":"401"}}"#,
        ),
        _ => drip_reply(request),
    })
}

/// The numbers of the first line of `stderr` that starts with `prefix`,
/// in order (e.g. "frames: 30 (17 without an event, 0 over budget)" gives
/// 30, 17, 0).
fn numbers_of(stderr: &str, prefix: &str) -> Vec<f64> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{stderr}"));
    line[prefix.len()..]
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|word| word.trim_matches('.').parse().ok())
        .collect()
}

/// What game_loop printed: the streamed text (without its last newline)
/// and the assembled answer of the `answer: ` line.
fn game_output(stdout: &str) -> (String, serde_json::Value) {
    let (text, answer) = stdout
        .rsplit_once("answer: ")
        .unwrap_or_else(|| panic!("no answer line: {stdout}"));
    let text = text
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("the text does not end its line: {stdout}"));
    let answer = serde_json::from_str(answer.trim_end())
        .unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {stdout}"));
    (text.to_string(), answer)
}

/// Checks game_loop's output for a streamed `expected` text; returns the
/// frames, the frames without an event, the milliseconds spent in modelapi
/// calls and the milliseconds of streaming.
fn check_game_loop(out: &std::process::Output, expected: &str, what: &str) -> [f64; 4] {
    assert_ok(out, what);
    let (streamed, answer) = game_output(&text(&out.stdout));
    assert_eq!(streamed, expected, "{what}");
    assert_eq!(answer["object"], "chat.completion", "{what}: {answer}");
    assert_eq!(
        answer["choices"][0]["message"]["content"], expected,
        "{what}"
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop", "{what}");
    let stderr = text(&out.stderr);
    let frames = numbers_of(&stderr, "frames: ");
    let longest = numbers_of(&stderr, "longest frame: ");
    let calls = numbers_of(&stderr, "modelapi calls: ");
    assert_eq!(frames.len(), 3, "{stderr}");
    assert!(
        frames[0] >= 1.0 && frames[1] < frames[0],
        "{what}: {stderr}"
    );
    assert!(longest[0] <= longest[1], "{what}: {stderr}");
    assert!(calls[0] <= calls[1], "{what}: {stderr}");
    [frames[0], frames[1], calls[0], calls[1]]
}

/// The counters of event_loop's last line: wake-ups, of which with a socket
/// ready, waits on no socket, ticks, polls, chunks.
fn event_loop_counts(stderr: &str) -> [f64; 6] {
    let numbers = numbers_of(stderr, "wake-ups: ");
    numbers
        .try_into()
        .unwrap_or_else(|n| panic!("not 6 counters: {n:?}\n{stderr}"))
}

#[test]
fn game_loop_draws_frames_while_the_answer_drips_in() {
    let server = drip_server();
    let url = server.url();
    let env = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "drip")];
    let question = "what does a game loop do?";
    let expected = drip_answer(question);
    let pieces = pieces_of(&expected, 3).len() as f64;
    for variant in VARIANTS {
        let what = format!("{variant}/game_loop");
        let out = run(variant, "game_loop", &[question], &env, "", How::Plain);
        let [frames, quiet, in_calls, streaming] = check_game_loop(&out, &expected, &what);
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("canned"), "{stderr}");
        // The answer takes (pieces + 1) * DRIP_MS ms: 2.4 frames a piece.
        // Polls that waited for the next piece would make about one frame
        // a piece, and no frame without an event.
        assert!(
            frames >= 1.5 * pieces,
            "{what}: {frames} frames for {pieces} pieces\n{stderr}"
        );
        assert!(
            quiet >= pieces / 2.0,
            "{what}: {quiet} frames without an event\n{stderr}"
        );
        assert!(
            streaming >= pieces * DRIP_MS as f64 * 0.9,
            "{what}: streamed in {streaming} ms\n{stderr}"
        );
        // The loop slept through most of it: the polls did not wait.
        assert!(
            in_calls < streaming * 0.25,
            "{what}: {in_calls} ms in modelapi calls over {streaming} ms\n{stderr}"
        );
    }
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one request a run");
    for request in requests {
        let body = request.body_json();
        assert_eq!(body["stream"], true);
        assert_eq!(body["model"], "drip");
        assert_eq!(body["messages"][0]["content"], question);
    }
}

#[test]
fn event_loop_waits_on_the_sockets_of_two_streams() {
    let questions = ["first question", "the second question, a longer one"];
    let writes: usize = questions.iter().map(|q| drip_writes(q)).sum();
    let chunks: usize = questions
        .iter()
        .map(|q| pieces_of(&drip_answer(q), 3).len())
        .sum();
    for variant in VARIANTS {
        let what = format!("{variant}/event_loop");
        let server = drip_server();
        let url = server.url();
        let env = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "drip")];
        let out = run(variant, "event_loop", &questions, &env, "", How::Plain);
        assert_ok(&out, &what);
        let stderr = text(&out.stderr);
        // The shorter answer ends first (9 pieces against 16, 40 ms apart).
        assert_eq!(
            text(&out.stdout),
            format!(
                "[1] {}\n[2] {}\n",
                drip_answer(questions[0]),
                drip_answer(questions[1])
            ),
            "{what}\n{stderr}"
        );
        // Both at once: two connections (one after the other, the second
        // stream would have reused the first one's), both running at the
        // first tick of the timer (250 ms; the first ends at ~400 ms).
        assert_eq!(server.accepted(), 2, "{what}: connections");
        assert!(
            stderr.contains("tick 1: 2 of 2 streams running"),
            "{what}\n{stderr}"
        );

        let [wakeups, socket_wakeups, no_socket, ticks, polls, counted] =
            event_loop_counts(&stderr);
        assert_eq!(counted as usize, chunks, "{what}: chunks\n{stderr}");
        // No busy loop: a wake-up per write of the server at most, plus
        // the timer's, plus connecting and sending the requests.
        assert!(
            wakeups <= (writes + 8) as f64 + ticks,
            "{what}: {wakeups} wake-ups for {writes} writes and {ticks} ticks\n{stderr}"
        );
        // It did wait on the sockets: the longer stream's 16 pieces come
        // 40 ms apart.
        assert!(
            socket_wakeups >= 8.0,
            "{what}: {socket_wakeups} socket wake-ups\n{stderr}"
        );
        // A stream that is connected always has a socket to wait on.
        assert_eq!(no_socket, 0.0, "{what}: waits on no socket\n{stderr}");
        // Each wake-up polls each stream until PENDING: one PENDING per
        // stream per wake-up at most, besides the events and the two DONEs.
        assert!(
            polls <= counted + 2.0 * (wakeups + 1.0) + 2.0,
            "{what}: {polls} polls\n{stderr}"
        );
    }
}

#[test]
fn nonblocking_examples_poll_through_a_retrys_backoff() {
    let server = drip_server();
    let url = server.url();
    let env = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "flaky")];
    let question = "again?";
    let expected = drip_answer(question);
    for variant in VARIANTS {
        // The first attempt gets 503; the retry waits 375..500 ms (the
        // default backoff), on no socket.
        let what = format!("{variant}/game_loop");
        let out = run(variant, "game_loop", &[question], &env, "", How::Plain);
        let [frames, _, in_calls, streaming] = check_game_loop(&out, &expected, &what);
        let stderr = text(&out.stderr);
        assert!(frames >= 20.0, "{what}: the backoff took frames\n{stderr}");
        assert!(
            in_calls < streaming * 0.25,
            "{what}: {in_calls} ms in modelapi calls over {streaming} ms\n{stderr}"
        );

        let what = format!("{variant}/event_loop");
        let out = run(variant, "event_loop", &[question], &env, "", How::Plain);
        assert_ok(&out, &what);
        let stderr = text(&out.stderr);
        assert_eq!(
            text(&out.stdout),
            format!("[1] {expected}\n"),
            "{what}\n{stderr}"
        );
        let [wakeups, _, no_socket, ticks, _, chunks] = event_loop_counts(&stderr);
        assert_eq!(chunks as usize, pieces_of(&expected, 3).len(), "{what}");
        // The backoff is waited out in one wait (modelapi_stream_wake_ms),
        // not in a spin of short ones (a tick of the timer may split it).
        assert!(
            (1.0..=4.0).contains(&no_socket),
            "{what}: {no_socket} waits on no socket\n{stderr}"
        );
        assert!(
            wakeups <= no_socket + ticks + (drip_writes(question) + 12) as f64,
            "{what}: {wakeups} wake-ups\n{stderr}"
        );
    }
    assert_eq!(server.requests().len(), 8, "two attempts a run");
}

#[test]
fn nonblocking_examples_with_canned_replies() {
    for variant in VARIANTS {
        // Their own canned replies.
        let out = run(variant, "game_loop", &[], &[], "", How::Plain);
        let what = format!("{variant}/game_loop");
        check_game_loop(
            &out,
            "Sixty frames a second\nthe answer trickles in, polled\nno frame ever waits",
            &what,
        );
        assert!(text(&out.stderr).contains("MODEL_API_URL is not set"));

        let out = run(variant, "event_loop", &[], &[], "", How::Plain);
        let what = format!("{variant}/event_loop");
        assert_ok(&out, &what);
        let stdout = text(&out.stdout);
        assert!(
            stdout.starts_with("[1] One thread, one poll(2)\n"),
            "{stdout}"
        );
        assert!(stdout.contains("\n[2] Two answers stream in\n"), "{stdout}");
        // Canned replies are in memory: all there at the first polls.
        let [wakeups, _, _, _, _, chunks] = event_loop_counts(&text(&out.stderr));
        assert!(wakeups <= 2.0 && chunks > 2.0, "{}", text(&out.stderr));

        // Replies set by the user, one per stream.
        let env = [(
            "DEBUG_MOCK_RESPONSES",
            r#"["Canned: one frame is enough."]"#,
        )];
        let out = run(variant, "game_loop", &[], &env, "", How::Plain);
        check_game_loop(&out, "Canned: one frame is enough.", &what);
        let env = [(
            "DEBUG_MOCK_RESPONSES",
            r#"["first", "second, \"quoted\"", "third\n"]"#,
        )];
        let out = run(
            variant,
            "event_loop",
            &["a", "b", "c"],
            &env,
            "",
            How::Plain,
        );
        assert_ok(&out, &what);
        assert_eq!(
            text(&out.stdout),
            "[1] first\n[2] second, \"quoted\"\n[3] third\n"
        );

        let nine: Vec<&str> = vec!["q"; 9];
        let out = run(variant, "event_loop", &nine, &[], "", How::Plain);
        assert_eq!(out.status.code(), Some(2), "nine streams: a usage error");
    }
}

#[test]
fn nonblocking_examples_report_http_errors() {
    let server = drip_server();
    let url = server.url();
    let env = [
        ("MODEL_API_URL", url.as_str()),
        ("MODEL_NAME", "unauthorized"),
        ("MODEL_API_KEY", "sk-example-secret-key"),
    ];
    for variant in VARIANTS {
        for (program, args) in [("game_loop", &[][..]), ("event_loop", &["one", "two"])] {
            let what = format!("{variant}/{program}");
            let out = run(variant, program, args, &env, "", How::Plain);
            assert_eq!(out.status.code(), Some(1), "{what}");
            let stderr = text(&out.stderr);
            assert!(stderr.contains("MODELAPI_HTTP_ERROR"), "{stderr}");
            assert!(stderr.contains("http status: 401"), "{stderr}");
            assert!(stderr.contains("Invalid API key provided"), "{stderr}");
            assert!(!stderr.contains("sk-example-secret-key"), "{stderr}");
            assert_eq!(text(&out.stdout), "", "{what}");
            if program == "event_loop" {
                // Each stream fails on its own, after its own poll.
                assert!(
                    stderr.contains("[1] error: MODELAPI_HTTP_ERROR"),
                    "{stderr}"
                );
                assert!(
                    stderr.contains("[2] error: MODELAPI_HTTP_ERROR"),
                    "{stderr}"
                );
            }
        }
    }
}

/// game_loop and event_loop run `how` (under valgrind, or built with the
/// sanitizers) against the `drip` server (two streams at once for
/// event_loop), through a retry (`flaky`), an HTTP error, and in canned
/// mode: no memory error, no leak, the right answers.
fn nonblocking_examples_run_clean(variant: &str, how: How) {
    let server = drip_server();
    let url = server.url();
    let drip = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "drip")];
    let flaky = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", "flaky")];
    let unauthorized = [
        ("MODEL_API_URL", url.as_str()),
        ("MODEL_NAME", "unauthorized"),
    ];
    let questions = ["first", "second one"];
    let both = format!(
        "[1] {}\n[2] {}\n",
        drip_answer(questions[0]),
        drip_answer(questions[1])
    );
    let what = |program: &str| format!("{variant}/{program} ({how:?})");
    // valgrind fails a run with 99 (--error-exitcode), ASan with 98.
    let clean = |out: &std::process::Output, program: &str| {
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("Sanitizer"), "{}: {stderr}", what(program));
        assert!(
            !matches!(out.status.code(), Some(98 | 99)),
            "{}: {stderr}",
            what(program)
        );
    };

    let out = run(variant, "game_loop", &["slowly"], &drip, "", how);
    clean(&out, "game_loop");
    check_game_loop(&out, &drip_answer("slowly"), &what("game_loop"));
    let out = run(variant, "game_loop", &[], &[], "", how);
    clean(&out, "game_loop");
    assert_ok(&out, &what("game_loop"));
    let out = run(variant, "game_loop", &[], &unauthorized, "", how);
    clean(&out, "game_loop");
    assert_eq!(out.status.code(), Some(1), "{}", what("game_loop"));

    let out = run(variant, "event_loop", &questions, &drip, "", how);
    clean(&out, "event_loop");
    assert_ok(&out, &what("event_loop"));
    // Slowed down (valgrind), the order the streams end in is not sure.
    let mut lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines.join("\n") + "\n", both, "{}", what("event_loop"));
    let out = run(variant, "event_loop", &["retried"], &flaky, "", how);
    clean(&out, "event_loop");
    assert_ok(&out, &what("event_loop"));
    assert_eq!(
        text(&out.stdout),
        format!("[1] {}\n", drip_answer("retried"))
    );
    let out = run(variant, "event_loop", &[], &[], "", how);
    clean(&out, "event_loop");
    assert_ok(&out, &what("event_loop"));
    let out = run(variant, "event_loop", &["a", "b"], &unauthorized, "", how);
    clean(&out, "event_loop");
    assert_eq!(out.status.code(), Some(1), "{}", what("event_loop"));
}

#[test]
fn nonblocking_examples_run_clean_under_valgrind() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        panic!("valgrind is needed for this test: `bash tests/run-all.sh` installs it (tests/tools.sh)");
    }
    nonblocking_examples_run_clean("shared", How::Valgrind);
}

#[test]
fn nonblocking_examples_run_clean_with_sanitizers() {
    for variant in VARIANTS {
        nonblocking_examples_run_clean(variant, How::Sanitizers);
    }
}
