//! Streams: the quirks real servers send, and every way a stream can end.

mod common;

use std::ops::ControlFlow;
use std::time::Duration;

use common::server::{chunked, head, Reply, Step, TestServer};
use common::{client, collect, content_event, event, stream_events, user, DONE};
use modelapi::Error;
use serde_json::json;

/// A server answering every request with these SSE events.
fn sse_server(events: Vec<String>) -> TestServer {
    TestServer::start(move |_| {
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        Reply::sse(&events)
    })
}

fn stream_of(events: Vec<String>) -> (Vec<String>, Option<Error>) {
    let server = sse_server(events);
    collect(client(&server.url()).stream(&user("hi"), None).unwrap())
}

#[test]
fn ordinary_stream() {
    let (chunks, err) = stream_of(stream_events(&["Hello", ", ", "world", "!\n"]));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(chunks.concat(), "Hello, world!\n");
    assert_eq!(chunks.len(), 4);
}

#[test]
fn quirks_of_real_servers() {
    let events = vec![
        // Azure: a first chunk with no choices (prompt filter results).
        event(json!({"id": "", "choices": [], "prompt_filter_results": [{"prompt_index": 0}]})),
        // llama.cpp: role only, with content "" or null.
        event(json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})),
        event(json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": null}}]})),
        // finish_reason "" on ordinary chunks, and fields nobody knows.
        event(
            json!({"choices": [{"index": 0, "delta": {"content": "A"}, "finish_reason": ""}],
                     "x_groq": {"id": "q"}, "timings": {"predicted_ms": 1.5}}),
        ),
        // A tool-call delta with no content.
        event(json!({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]}}]})),
        // Several choices: only index 0's content is yielded.
        event(json!({"choices": [{"index": 1, "delta": {"content": "X"}},
                                 {"index": 0, "delta": {"content": "B"}}]})),
        // Comments and keep-alives.
        ": OPENROUTER PROCESSING\n\n".to_string(),
        event(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})),
        // A usage-only last chunk with no choices.
        event(json!({"id": "chatcmpl-7", "model": "m", "choices": [],
                     "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}})),
        // [DONE] with no blank line after it.
        "data: [DONE]".to_string(),
    ];
    let server = sse_server(events);
    let mut stream = client(&server.url()).stream(&user("hi"), None).unwrap();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.next_chunk() {
        chunks.push(chunk.unwrap().to_string());
    }
    assert_eq!(chunks, ["A", "B"]);
    assert!(stream.is_finished());
    let meta = stream.metadata();
    assert_eq!(meta.finish_reason.as_deref(), Some("stop"));
    assert_eq!(meta.usage.as_ref().unwrap().total_tokens, 6);
    assert_eq!(meta.id.as_deref(), Some("chatcmpl-7"));
    assert_eq!(meta.model.as_deref(), Some("m"));
}

#[test]
fn line_endings_and_data_without_space() {
    let body = "data:{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\n\
                data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\r\r\
                data: {\"choices\":\r\ndata: [{\"delta\":{\"content\":\"c\"}}]}\n\n\
                data: [DONE]\r\n\r\n";
    let (chunks, err) = stream_of(vec![body.to_string()]);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(chunks, ["a", "b", "c"]);
}

#[test]
fn byte_by_byte_delivery_gives_the_same_chunks() {
    let pieces = ["héllo", " wörld", " ✓ 🦀", "\r\n", "end"];
    let body: String = stream_events(&pieces).concat().replace("\n\n", "\r\n\r\n");
    let server = TestServer::start(move |_| {
        let head = head(200, &[("Content-Type", "text/event-stream".into())]);
        Reply::script(vec![
            Step::Write(head),
            Step::Drip {
                bytes: body.clone().into_bytes(),
                piece: 1,
                delay: Duration::ZERO,
            },
            Step::Close,
        ])
    });
    let (chunks, err) = collect(client(&server.url()).stream(&user("hi"), None).unwrap());
    assert!(err.is_none(), "{err:?}");
    assert_eq!(chunks, pieces);
}

#[test]
fn end_of_body_after_finish_reason_is_a_clean_end() {
    let mut events = stream_events(&["a", "b"]);
    events.pop(); // no [DONE]
    let (chunks, err) = stream_of(events);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(chunks, ["a", "b"]);
}

#[test]
fn end_of_body_without_done_or_finish_reason_is_truncation() {
    let (chunks, err) = stream_of(vec![content_event("a"), content_event("b")]);
    assert_eq!(chunks, ["a", "b"], "the chunks that did arrive come first");
    let err = err.expect("a truncated stream is an error");
    assert!(
        matches!(&err, Error::Transport(m) if m.contains("truncated")),
        "{err:?}"
    );
}

#[test]
fn connection_reset_mid_stream_is_a_transport_error_after_the_chunks() {
    let server = TestServer::start(|_| {
        let head = head(
            200,
            &[
                ("Content-Type", "text/event-stream".into()),
                ("Transfer-Encoding", "chunked".into()),
            ],
        );
        Reply::script(vec![
            Step::Write(head),
            Step::Write(chunked(content_event("partial").as_bytes())),
            Step::Sleep(Duration::from_millis(50)),
            Step::Reset,
        ])
    });
    let (chunks, err) = collect(client(&server.url()).stream(&user("hi"), None).unwrap());
    assert_eq!(chunks, ["partial"]);
    assert!(matches!(err, Some(Error::Transport(_))), "{err:?}");
    assert_eq!(
        server.requests().len(),
        1,
        "no retry once a chunk was handed out"
    );
}

#[test]
fn errors_inside_the_stream_carry_the_servers_message() {
    let cases = [
        (
            event(
                json!({"error": {"message": "context length exceeded", "type": "invalid_request_error"}}),
            ),
            "context length exceeded",
        ),
        (
            "event: error\ndata: {\"message\": \"model crashed\"}\n\n".to_string(),
            "model crashed",
        ),
        (
            "event: error\ndata: overloaded, try later\n\n".to_string(),
            "overloaded, try later",
        ),
        (
            "error: {\"content\": \"slot unavailable\", \"code\": 503}\n\n".to_string(),
            "slot unavailable",
        ),
        // An error event without data is still an error, never skipped.
        (
            "event: error\n\n".to_string(),
            "the server sent an error event with no data",
        ),
        (
            "event: error\ndata:\n\n".to_string(),
            "the server sent an error event with no data",
        ),
    ];
    for (error_event, message) in cases {
        let events = vec![
            content_event("before"),
            error_event.clone(),
            content_event("after"),
            DONE.into(),
        ];
        let (chunks, err) = stream_of(events);
        assert_eq!(chunks, ["before"], "{error_event}");
        match err {
            Some(Error::Server { message: m, .. }) => assert_eq!(m, message),
            other => panic!("{error_event}: expected a server error, got {other:?}"),
        }
    }
}

#[test]
fn an_event_that_is_not_json_is_an_invalid_response() {
    let events = vec![
        content_event("a"),
        "data: {\"choices\": [{\"delta\"\n\n".into(),
        content_event("b"),
        DONE.into(),
    ];
    let (chunks, err) = stream_of(events);
    assert_eq!(chunks, ["a"]);
    assert!(matches!(err, Some(Error::InvalidResponse(_))), "{err:?}");
}

#[test]
fn a_json_answer_to_a_stream_request_is_one_chunk() {
    let server = TestServer::start(|_| {
        Reply::json(200, &common::completion_body("the whole answer"))
            .with_header("x-request-id", "req-42")
    });
    let mut stream = client(&server.url()).stream(&user("hi"), None).unwrap();
    assert_eq!(stream.next().unwrap().unwrap(), "the whole answer");
    assert!(stream.next().is_none());
    let meta = stream.metadata();
    assert_eq!(meta.finish_reason.as_deref(), Some("stop"));
    assert_eq!(meta.request_id.as_deref(), Some("req-42"));
    assert_eq!(meta.usage.as_ref().unwrap().total_tokens, 5);
}

#[test]
fn metadata_and_request_id() {
    let mut events = stream_events(&["x"]);
    events.insert(
        2,
        event(json!({"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})),
    );
    let server = TestServer::start(move |_| {
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        Reply::sse(&events).with_header("X-Request-Id", "req-7")
    });
    let api = client(&server.url());
    let meta = api
        .stream_with(&user("hi"), None, |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(meta.request_id.as_deref(), Some("req-7"));
    assert_eq!(meta.id.as_deref(), Some("chatcmpl-1"));
    assert_eq!(meta.model.as_deref(), Some("test-model"));
    assert_eq!(meta.finish_reason.as_deref(), Some("stop"));
    assert_eq!(meta.usage.unwrap().total_tokens, 2);
}

#[test]
fn callback_form_can_stop_early_and_the_client_goes_on() {
    let server = sse_server(stream_events(&["1", "2", "3", "4"]));
    let api = client(&server.url());
    let mut seen = Vec::new();
    let err = api
        .stream_with(&user("hi"), None, |chunk| {
            seen.push(chunk.to_string());
            if seen.len() == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap_err();
    assert_eq!(seen, ["1", "2"]);
    assert!(matches!(err, Error::Aborted(_)), "{err:?}");

    let mut all = String::new();
    api.stream_with(&user("again"), None, |chunk| {
        all.push_str(chunk);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(all, "1234");
}

#[test]
fn after_the_end_the_iterator_stays_ended() {
    let server = sse_server(vec![content_event("a"), "data: nope\n\n".into()]);
    let mut stream = client(&server.url()).stream(&user("hi"), None).unwrap();
    assert_eq!(stream.next().unwrap().unwrap(), "a");
    assert!(stream.next().unwrap().is_err());
    assert!(stream.next().is_none());
    assert!(stream.next().is_none());
    assert!(!stream.is_finished());
}
