//! Shared by the integration tests: the scripted test server and helpers
//! that build OpenAI-shaped events and clients.
#![allow(dead_code)]

pub mod carrier;
pub mod cbuild;
pub mod proxy;
pub mod relay;
pub mod server;
pub mod service;
pub mod stall;
pub mod tls;

use std::time::Duration;

use modelapi::ModelApi;
use serde_json::json;

/// A client of `url` that ignores `DEBUG_MOCK_RESPONSES` and retries fast.
pub fn client(url: &str) -> ModelApi {
    builder(url).build().unwrap()
}

/// The builder behind [`client`], for tests that change a setting.
pub fn builder(url: &str) -> modelapi::ModelApiBuilder {
    ModelApi::builder("test-model", url)
        .mock_responses(Vec::new())
        .retry_backoff(Duration::from_millis(1))
}

/// One `chat.completion.chunk` event carrying `content` for choice 0.
pub fn content_event(content: &str) -> String {
    event(json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
        "model": "test-model",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]
    }))
}

/// The last chunk: empty delta and a finish_reason.
pub fn finish_event(reason: &str) -> String {
    event(json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
        "model": "test-model",
        "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]
    }))
}

/// `data: <json>\n\n`.
pub fn event(value: serde_json::Value) -> String {
    format!("data: {value}\n\n")
}

pub const DONE: &str = "data: [DONE]\n\n";

/// A whole, ordinary stream of `pieces`.
pub fn stream_events(pieces: &[&str]) -> Vec<String> {
    let mut events: Vec<String> = pieces.iter().map(|p| content_event(p)).collect();
    events.push(finish_event("stop"));
    events.push(DONE.to_string());
    events
}

/// A `chat.completion` body answering `content`.
pub fn completion_body(content: &str) -> String {
    json!({
        "id": "chatcmpl-9", "object": "chat.completion", "created": 1700000000,
        "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    })
    .to_string()
}

/// Pulls a stream to its end: the chunks, and the error if it failed.
pub fn collect(stream: modelapi::ChatStream) -> (Vec<String>, Option<modelapi::Error>) {
    let mut chunks = Vec::new();
    for item in stream {
        match item {
            Ok(chunk) => chunks.push(chunk),
            Err(err) => return (chunks, Some(err)),
        }
    }
    (chunks, None)
}

pub fn user(text: &str) -> Vec<modelapi::Message> {
    vec![modelapi::Message::user(text)]
}

/// An event as one owned line, for comparisons.
pub fn event_line(event: modelapi::StreamEvent<'_>) -> String {
    match event {
        modelapi::StreamEvent::Content(t) => format!("content {t}"),
        modelapi::StreamEvent::Reasoning(t) => format!("reasoning {t}"),
        modelapi::StreamEvent::Refusal(t) => format!("refusal {t}"),
        modelapi::StreamEvent::ToolCall {
            index,
            id,
            name,
            arguments,
        } => format!(
            "tool {index} {} {} {arguments}",
            id.unwrap_or("-"),
            name.unwrap_or("-")
        ),
        other => panic!("a kind this test does not know: {other:?}"),
    }
}
