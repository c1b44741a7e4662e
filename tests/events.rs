//! Streams carry every kind of delta: events (`ChatStream::next_event`,
//! the callback forms) and the assembled answer (`ChatStream::completion`),
//! against a local server sending what real servers send.

mod common;

use std::ops::ControlFlow;
use std::time::Duration;

use common::server::{chunked, head, Reply, Step, TestServer};
use common::{carrier, event, event_line as line, user, DONE};
use modelapi::{ChatCompletion, ChatStream, Error, StreamEvent};
use serde_json::{json, Value};

/// A `chat.completion.chunk` event with these `choices`.
fn chunk(choices: Value) -> String {
    event(json!({
        "id": "chatcmpl-ev", "object": "chat.completion.chunk", "created": 1700000001,
        "model": "test-model", "system_fingerprint": "fp_test",
        "choices": choices,
    }))
}

/// A chunk of choice 0 with this delta.
fn delta(delta: Value) -> String {
    chunk(json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}]))
}

fn finish(reason: &str) -> String {
    chunk(json!([{"index": 0, "delta": {}, "finish_reason": reason}]))
}

/// A server answering every request with these events.
fn serve(events: Vec<String>) -> TestServer {
    TestServer::start(move |_| Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>()))
}

/// The ways a stream's bytes come: over the library's own connection, or
/// carried by a host (the test host of `common::carrier`) to a detached
/// stream, fed as the socket delivers them or cut again at random places.
/// Every scenario here runs each way with the same assertions.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Way {
    Network,
    Detached,
    DetachedResplit,
}

impl Way {
    const ALL: [Way; 3] = [Way::Network, Way::Detached, Way::DetachedResplit];
}

/// A stream of `server`'s answer, read `way`. The detached ones are fed
/// the whole exchange (head, body, end) before they are returned.
///
/// Before handing out the network stream, it also reads the answer whole
/// every way and checks the reads are the same: events, error, assembled
/// answer (its JSON) and metadata.
fn open(server: &TestServer, way: Way) -> ChatStream {
    // Shown when a scenario fails.
    eprintln!("way: {way:?}");
    if way == Way::Network {
        let network = read_whole(server, Way::Network);
        for other in [Way::Detached, Way::DetachedResplit] {
            assert_eq!(
                read_whole(server, other),
                network,
                "{other:?} against Network"
            );
        }
        assert_eq!(
            read_interleaved(server),
            network,
            "detached, read while carried, against Network"
        );
    }
    open_only(server, way)
}

fn open_only(server: &TestServer, way: Way) -> ChatStream {
    let api = common::client(&server.url());
    match way {
        Way::Network => api.stream(&user("hi"), None).unwrap(),
        Way::Detached | Way::DetachedResplit => {
            let mut stream = api.stream_detached(&user("hi"), None).unwrap();
            let split = (way == Way::DetachedResplit).then_some(0x5eed_u64);
            carrier::carry(&mut stream, split);
            stream
        }
    }
}

/// [`read_whole`] of a detached stream read while the test host carries
/// it: a read that gives `Error::Pending` makes the host feed what its next
/// read of the socket brings (cut again at random places), and the reads
/// go on.
fn read_interleaved(server: &TestServer) -> (Vec<String>, String, String, String) {
    let api = common::client(&server.url());
    let mut stream = api.stream_detached(&user("hi"), None).unwrap();
    let mut host = carrier::Carrier::send(stream.host_request().unwrap()).resplit(0xfeed);
    host.feed_head(&mut stream);
    let mut events = Vec::new();
    let mut error = None;
    let mut carrying = true;
    for _ in 0..10_000_000 {
        match stream.next_event() {
            Some(Err(Error::Pending(_))) => {
                assert!(carrying, "pending after the whole answer was fed");
                carrying = host.pump(&mut stream);
            }
            Some(Ok(event)) => events.push(line(event)),
            Some(Err(err)) => {
                error = Some(err);
                break;
            }
            None => break,
        }
    }
    summary(&mut stream, events, error, "interleaved")
}

/// Everything a stream read to its end shows, as comparable text: its
/// events, its error (variant, status and server message: the texts of
/// transport errors differ by nature), the assembled answer's JSON and
/// the metadata.
fn read_whole(server: &TestServer, way: Way) -> (Vec<String>, String, String, String) {
    let mut stream = open_only(server, way);
    let (events, error) = events_of(&mut stream);
    summary(&mut stream, events, error, &format!("{way:?}"))
}

fn summary(
    stream: &mut ChatStream,
    events: Vec<String>,
    error: Option<Error>,
    way: &str,
) -> (Vec<String>, String, String, String) {
    let error = match error {
        None => "none".to_string(),
        Some(Error::Http {
            status, message, ..
        }) => format!("Http {status} {message}"),
        Some(Error::Server { message, .. }) => format!("Server {message}"),
        Some(other) => {
            let debug = format!("{other:?}");
            debug[..debug.find('(').unwrap_or(debug.len())].to_string()
        }
    };
    assert!(stream.next_event().is_none(), "{way}: the stream has ended");
    let completion = stream.completion().raw_json().to_string();
    // When the first event came differs from read to read: the rest of
    // the metadata must not.
    let mut metadata = stream.metadata().clone();
    metadata.first_event = metadata.first_event.map(|_| Duration::ZERO);
    let metadata = format!("{metadata:?}");
    (events, error, completion, metadata)
}

/// Every event of a stream, and the error it ended with.
fn events_of(stream: &mut ChatStream) -> (Vec<String>, Option<Error>) {
    let mut lines = Vec::new();
    while let Some(event) = stream.next_event() {
        match event {
            Ok(event) => lines.push(line(event)),
            Err(err) => return (lines, Some(err)),
        }
    }
    (lines, None)
}

fn message(completion: &ChatCompletion, choice: usize) -> Value {
    serde_json::to_value(&completion.choices[choice].message).unwrap()
}

/// OpenAI's shape of two parallel calls: each call's first piece with its
/// index, id, type and name, then argument pieces keyed by index, here
/// interleaved.
fn parallel_tool_calls() -> Vec<String> {
    let head = |index: u32, id: &str, name: &str| {
        delta(
            json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                     "function": {"name": name, "arguments": ""}}]}),
        )
    };
    let piece = |index: u32, arguments: &str| {
        delta(json!({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]}))
    };
    vec![
        delta(json!({"role": "assistant", "content": null})),
        head(0, "call_weather", "get_weather"),
        piece(0, "{\"city\": "),
        head(1, "call_time", "get_time"),
        piece(1, "{\"tz\": \"Europe/"),
        piece(0, "\"Paris\"}"),
        piece(1, "Paris\"}"),
        finish("tool_calls"),
        DONE.into(),
    ]
}

#[test]
fn interleaved_parallel_tool_calls() {
    for way in Way::ALL {
        let server = serve(parallel_tool_calls());
        let mut stream = open(&server, way);
        let (events, error) = events_of(&mut stream);
        assert!(error.is_none(), "{error:?}");
        assert_eq!(
            events,
            [
                "tool 0 call_weather get_weather ",
                "tool 0 - - {\"city\": ",
                "tool 1 call_time get_time ",
                "tool 1 - - {\"tz\": \"Europe/",
                "tool 0 - - \"Paris\"}",
                "tool 1 - - Paris\"}",
            ]
        );
        let completion = stream.completion();
        assert_eq!(completion.finish_reason(), Some("tool_calls"));
        assert_eq!(completion.content(), None);
        let message = message(&completion, 0);
        assert_eq!(message["role"], "assistant");
        assert_eq!(message["content"], Value::Null);
        assert_eq!(
            message["tool_calls"],
            json!([
                {"id": "call_weather", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                {"id": "call_time", "type": "function",
                 "function": {"name": "get_time", "arguments": "{\"tz\": \"Europe/Paris\"}"}},
            ])
        );
        assert!(message.get("reasoning_content").is_none());
        assert!(message.get("refusal").is_none());
    }
}

#[test]
fn content_reads_skip_tool_calls_which_are_still_assembled() {
    for way in Way::ALL {
        let mut events = vec![delta(json!({"content": "Let me check."}))];
        events.extend(parallel_tool_calls());
        let server = serve(events);
        let stream = open(&server, way);
        let mut stream = stream;
        let mut text = String::new();
        while let Some(chunk) = stream.next_chunk() {
            text.push_str(chunk.unwrap());
        }
        assert_eq!(text, "Let me check.");
        let completion = stream.completion();
        assert_eq!(completion.content(), Some("Let me check."));
        let calls = &message(&completion, 0)["tool_calls"];
        assert_eq!(
            calls[1]["function"]["arguments"],
            "{\"tz\": \"Europe/Paris\"}"
        );
        assert_eq!(
            stream.metadata().finish_reason.as_deref(),
            Some("tool_calls")
        );
    }
}

#[test]
fn whole_calls_in_one_piece_without_index_take_their_position() {
    for way in Way::ALL {
        // Two calls (the fast reader's), then six in one chunk (the general
        // reader's), all without `index`, as LiteLLM and others send them.
        let call = |i: usize| {
            json!({"id": format!("call_{i}"), "type": "function",
               "function": {"name": format!("f{i}"), "arguments": format!("{{\"n\":{i}}}")}})
        };
        for count in [2, 6] {
            let calls: Vec<Value> = (0..count).map(call).collect();
            let server = serve(vec![
                delta(json!({"tool_calls": calls})),
                finish("tool_calls"),
                DONE.into(),
            ]);
            let mut stream = open(&server, way);
            let (events, _) = events_of(&mut stream);
            let expected: Vec<String> = (0..count)
                .map(|i| format!("tool {i} call_{i} f{i} {{\"n\":{i}}}"))
                .collect();
            assert_eq!(events, expected);
            let assembled = message(&stream.completion(), 0)["tool_calls"].clone();
            assert_eq!(assembled.as_array().unwrap().len(), count);
            assert_eq!(
                assembled[count - 1]["function"]["name"],
                format!("f{}", count - 1)
            );
            assert_eq!(assembled[1]["id"], "call_1");
        }
    }
}

#[test]
fn escaped_and_multibyte_arguments_split_across_chunks_and_reads() {
    for way in Way::ALL {
        // The arguments' JSON text, sent in pieces that cut it anywhere
        // between characters, with escapes of every kind.
        let arguments =
            "{\"text\": \"line\\nbreak \\\"quoted\\\" é ✓ 🦀 \\u00e9\", \"path\": \"C:\\\\tmp\"}";
        let pieces: Vec<String> = arguments
            .chars()
            .collect::<Vec<_>>()
            .chunks(3)
            .map(|c| c.iter().collect())
            .collect();
        let mut events = vec![delta(json!({"tool_calls": [{"index": 0, "id": "call_1",
        "type": "function", "function": {"name": "write", "arguments": ""}}]}))];
        for piece in &pieces {
            events.push(delta(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            ));
        }
        // An escaped surrogate pair and escaped quotes, as some servers send.
        events.push(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":\
         {\"arguments\":\" \\ud83e\\udd80\\\"\"}}]}}]}\n\n"
            .into(),
    );
        events.push(finish("tool_calls"));
        events.push(DONE.into());
        let body: Vec<u8> = events.concat().into_bytes();
        let expected = format!("{arguments} 🦀\"");
        // Whole, and dripped a byte at a time (multi-byte characters cut
        // between two reads of the socket).
        for drip in [false, true] {
            let body = body.clone();
            let server = TestServer::start(move |_| {
                let head = head(200, &[("Content-Type", "text/event-stream".into())]);
                let body_step = if drip {
                    Step::Drip {
                        bytes: body.clone(),
                        piece: 1,
                        delay: Duration::ZERO,
                    }
                } else {
                    Step::Write(body.clone())
                };
                Reply::script(vec![Step::Write(head), body_step])
            });
            let mut stream = open(&server, way);
            let mut assembled = String::new();
            let mut pieces_seen = 0;
            while let Some(event) = stream.next_event() {
                match event.unwrap() {
                    StreamEvent::ToolCall { arguments, .. } => {
                        assembled.push_str(arguments);
                        pieces_seen += 1;
                    }
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(assembled, expected, "drip: {drip}");
            assert_eq!(pieces_seen, pieces.len() + 2, "drip: {drip}");
            let calls = message(&stream.completion(), 0)["tool_calls"].clone();
            assert_eq!(calls[0]["function"]["arguments"], expected);
            let parsed: Value =
                serde_json::from_str(arguments).expect("the arguments are JSON text");
            assert_eq!(parsed["path"], "C:\\tmp");
        }
    }
}

#[test]
fn reasoning_under_both_names_and_both_at_once() {
    for way in Way::ALL {
        for field in ["reasoning_content", "reasoning"] {
            let server = serve(vec![
                delta(json!({"role": "assistant", field: "Think"})),
                delta(json!({field: "ing..."})),
                delta(json!({field: null, "content": "Answer"})),
                finish("stop"),
                DONE.into(),
            ]);
            let mut stream = open(&server, way);
            let (events, _) = events_of(&mut stream);
            assert_eq!(
                events,
                ["reasoning Think", "reasoning ing...", "content Answer"],
                "{field}"
            );
            let message = message(&stream.completion(), 0);
            // The assembled answer names it as `complete` answers of llama.cpp,
            // vLLM and DeepSeek do.
            assert_eq!(message["reasoning_content"], "Thinking...", "{field}");
            assert_eq!(message["content"], "Answer");
        }
        // Both at once (some servers send both): one event, the first's.
        // The third chunk goes to the general reader (an escaped key).
        let server = serve(vec![
        delta(json!({"reasoning_content": "A", "reasoning": "a"})),
        delta(json!({"reasoning_content": "", "reasoning": "B"})),
        "data: {\"choices\":[{\"delta\":{\"reasoning\":\"c\",\"reasoning_content\":\"C\",\"\\u0078\":1}}]}\n\n".into(),
        finish("stop"),
        DONE.into(),
    ]);
        let mut stream = open(&server, way);
        assert_eq!(
            events_of(&mut stream).0,
            ["reasoning A", "reasoning B", "reasoning C"]
        );
        assert_eq!(message(&stream.completion(), 0)["reasoning_content"], "ABC");
    }
}

#[test]
fn many_reasoning_and_argument_chunks_of_one_shape() {
    for way in Way::ALL {
        // Long runs of chunks that differ only in their text: the reader's
        // memory of the last chunk reads them by their text alone.
        let mut events = Vec::new();
        let mut reasoning = String::new();
        let mut arguments = String::new();
        for i in 0..300 {
            let piece = format!("r{i} \"é\"\n");
            reasoning.push_str(&piece);
            events.push(delta(json!({"reasoning_content": piece})));
        }
        events.push(delta(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
        "function": {"name": "f", "arguments": ""}}]}),
        ));
        for i in 0..300 {
            let piece = format!("{{\\\"k{i}\\\": 🦀}}");
            arguments.push_str(&piece);
            events.push(delta(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            ));
        }
        events.push(finish("tool_calls"));
        events.push(DONE.into());
        let server = serve(events);
        let mut stream = open(&server, way);
        let (events, error) = events_of(&mut stream);
        assert!(error.is_none());
        assert_eq!(events.len(), 601);
        let message = message(&stream.completion(), 0);
        assert_eq!(message["reasoning_content"], reasoning);
        assert_eq!(message["tool_calls"][0]["function"]["arguments"], arguments);
    }
}

#[test]
fn refusals() {
    for way in Way::ALL {
        let server = serve(vec![
            delta(json!({"role": "assistant", "content": null, "refusal": "I can't "})),
            delta(json!({"refusal": "help with that."})),
            finish("stop"),
            DONE.into(),
        ]);
        let mut stream = open(&server, way);
        assert_eq!(
            events_of(&mut stream).0,
            ["refusal I can't ", "refusal help with that."]
        );
        let message = message(&stream.completion(), 0);
        assert_eq!(message["refusal"], "I can't help with that.");
        assert_eq!(message["content"], Value::Null);
    }
}

#[test]
fn several_choices_events_of_choice_zero_answer_of_all() {
    for way in Way::ALL {
        let server = serve(vec![
            // Both choices in one chunk, then each alone, out of order.
            chunk(json!([
                {"index": 1, "delta": {"role": "assistant", "content": "B1 "}, "finish_reason": null},
                {"index": 0, "delta": {"role": "assistant", "content": "A1 "}, "finish_reason": null},
            ])),
            chunk(json!([{"index": 1, "delta": {"content": "B2"}, "finish_reason": null}])),
            chunk(
                json!([{"index": 0, "delta": {"reasoning_content": "R"}, "finish_reason": null}]),
            ),
            chunk(json!([{"index": 0, "delta": {"content": "A2"}, "finish_reason": null}])),
            chunk(
                json!([{"index": 1, "delta": {"tool_calls": [{"index": 0, "id": "call_x",
            "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            "finish_reason": "tool_calls"}]),
            ),
            chunk(json!([{"index": 0, "delta": {}, "finish_reason": "length"}])),
            DONE.into(),
        ]);
        let mut stream = open(&server, way);
        assert_eq!(
            events_of(&mut stream).0,
            ["content A1 ", "reasoning R", "content A2"]
        );
        let completion = stream.completion();
        assert_eq!(completion.choices.len(), 2);
        assert_eq!(
            (completion.choices[0].index, completion.choices[1].index),
            (0, 1)
        );
        assert_eq!(completion.content(), Some("A1 A2"));
        assert_eq!(completion.finish_reason(), Some("length"));
        assert_eq!(
            completion.choices[1].message.content.as_deref(),
            Some("B1 B2")
        );
        assert_eq!(
            completion.choices[1].finish_reason.as_deref(),
            Some("tool_calls")
        );
        assert_eq!(message(&completion, 1)["tool_calls"][0]["id"], "call_x");
        assert_eq!(stream.metadata().finish_reason.as_deref(), Some("length"));
    }
}

#[test]
fn an_error_in_the_middle_keeps_the_answer_before_it() {
    for way in Way::ALL {
        let server = serve(vec![
            delta(json!({"content": "Partial "})),
            delta(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "f", "arguments": "{\"a\""}}]}),
            ),
            "data: {\"error\":{\"message\":\"model overloaded\",\"type\":\"server_error\"}}\n\n"
                .into(),
            delta(json!({"content": "never read"})),
            DONE.into(),
        ]);
        let mut stream = open(&server, way);
        let (events, error) = events_of(&mut stream);
        assert_eq!(events, ["content Partial ", "tool 0 call_1 f {\"a\""]);
        assert!(
            matches!(&error, Some(Error::Server { message, .. }) if message == "model overloaded"),
            "{error:?}"
        );
        assert!(stream.next_event().is_none(), "the error ends the stream");
        let completion = stream.completion();
        assert_eq!(completion.content(), Some("Partial "));
        assert_eq!(completion.finish_reason(), None);
        assert_eq!(
            message(&completion, 0)["tool_calls"][0]["function"]["arguments"],
            "{\"a\""
        );
        // A connection cut in the middle: the same.
        let events = [
            delta(json!({"reasoning": "half"})),
            delta(json!({"content": "way"})),
        ]
        .concat();
        let server = TestServer::start(move |_| {
            let head = head(
                200,
                &[
                    ("Content-Type", "text/event-stream".into()),
                    ("Transfer-Encoding", "chunked".into()),
                ],
            );
            Reply::script(vec![
                Step::Write(head),
                Step::Write(chunked(events.as_bytes())),
                Step::Reset,
            ])
        });
        let mut stream = open(&server, way);
        let (events, error) = events_of(&mut stream);
        assert_eq!(events, ["reasoning half", "content way"]);
        assert!(matches!(error, Some(Error::Transport(_))), "{error:?}");
        let message = message(&stream.completion(), 0);
        assert_eq!(
            (
                message["reasoning_content"].as_str(),
                message["content"].as_str()
            ),
            (Some("half"), Some("way"))
        );
    }
}

#[test]
fn usage_only_last_chunk_and_metadata() {
    for way in Way::ALL {
        for empty_choices in [json!([]), json!(null)] {
            let usage = event(json!({
                "id": "chatcmpl-ev", "object": "chat.completion.chunk", "created": 1700000002,
                "model": "test-model", "choices": empty_choices,
                "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8,
                          "completion_tokens_details": {"reasoning_tokens": 2}}
            }));
            let server = serve(vec![
                delta(json!({"content": "Hi"})),
                finish("stop"),
                usage,
                DONE.into(),
            ]);
            let mut stream = open(&server, way);
            assert_eq!(events_of(&mut stream).0, ["content Hi"]);
            let completion = stream.completion();
            let usage = completion.usage.as_ref().expect("usage");
            assert_eq!(
                (
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    usage.total_tokens
                ),
                (3, 5, 8)
            );
            assert_eq!(
                usage.extra["completion_tokens_details"]["reasoning_tokens"],
                2
            );
            assert_eq!(completion.id, "chatcmpl-ev");
            assert_eq!(completion.object, "chat.completion");
            assert_eq!(completion.created, 1700000001, "the first chunk's");
            assert_eq!(completion.model, "test-model");
            assert_eq!(completion.extra["system_fingerprint"], "fp_test");
            // The JSON form is the same answer.
            let raw: Value = serde_json::from_str(completion.raw_json()).unwrap();
            assert_eq!(raw["usage"]["total_tokens"], 8);
            assert_eq!(raw["choices"][0]["message"]["content"], "Hi");
        }
    }
}

#[test]
fn the_answer_so_far_in_the_middle_of_a_stream() {
    for way in Way::ALL {
        let server = serve(vec![
            delta(json!({"content": "One "})),
            delta(json!({"content": "two "})),
            delta(json!({"content": "three"})),
            finish("stop"),
            DONE.into(),
        ]);
        let mut stream = open(&server, way);
        assert!(stream.completion().choices.is_empty(), "nothing read yet");
        assert_eq!(
            stream.next_event().unwrap().unwrap(),
            StreamEvent::Content("One ")
        );
        assert_eq!(stream.completion().content(), Some("One "));
        assert_eq!(stream.next_chunk().unwrap().unwrap(), "two ");
        let so_far = stream.completion();
        assert_eq!(so_far.content(), Some("One two "));
        assert_eq!(so_far.finish_reason(), None);
        assert_eq!(
            stream.by_ref().map(Result::unwrap).collect::<String>(),
            "three"
        );
        assert_eq!(stream.completion().content(), Some("One two three"));
        assert_eq!(stream.completion().finish_reason(), Some("stop"));
    }
}

#[test]
fn a_plain_json_answer_to_a_stream_request_streams_as_events() {
    for way in Way::ALL {
        let body = json!({
            "id": "chatcmpl-plain", "object": "chat.completion", "created": 1700000000,
            "model": "test-model",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Checking.", "reasoning_content": "Need weather.",
                "tool_calls": [{"id": "call_1", "type": "function",
                                "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        });
        let text = body.to_string();
        let server = TestServer::start(move |_| Reply::json(200, &text));
        let mut stream = open(&server, way);
        assert_eq!(
            events_of(&mut stream).0,
            [
                "reasoning Need weather.",
                "content Checking.",
                "tool 0 call_1 get_weather {\"city\":\"Oslo\"}"
            ]
        );
        let completion: Value = serde_json::to_value(stream.completion()).unwrap();
        assert_eq!(completion["choices"], body["choices"]);
        assert_eq!(completion["usage"], body["usage"]);
        assert_eq!(completion["id"], "chatcmpl-plain");
    }
}

#[test]
fn canned_replies_stand_for_tool_calls_and_reasoning() {
    let api = modelapi::ModelApi::builder("canned-model", "http://127.0.0.1:9")
        .mock_replies(vec![
            json!({"reasoning_content": "I should look it up.", "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"id": "call_own", "function": {"name": "get_time", "arguments": "{}"}}]}),
            json!({"content": "It is sunny.", "refusal": "No secrets."}),
            json!("Plain text"),
            json!({"tool_calls": [{"function": {"name": "f", "arguments": "{\"x\":\"é🦀\"}"}}]}),
        ])
        .build()
        .unwrap();
    let mut stream = api.stream(&user("weather?"), None).unwrap();
    let (events, error) = events_of(&mut stream);
    assert!(error.is_none());
    let reasoning: String = events
        .iter()
        .filter_map(|e| e.strip_prefix("reasoning "))
        .collect();
    assert_eq!(reasoning, "I should look it up.");
    assert!(
        events.contains(&"tool 0 call_mock_1_0 get_weather {\"c".to_string()),
        "{events:?}"
    );
    assert!(
        events.contains(&"tool 1 call_own get_time {}".to_string()),
        "{events:?}"
    );
    let completion = stream.completion();
    assert_eq!(completion.finish_reason(), Some("tool_calls"));
    assert_eq!(completion.model, "canned-model");
    let message = message(&completion, 0);
    assert_eq!(
        message["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(message["tool_calls"][1]["id"], "call_own");
    assert!(completion.usage.is_some());

    // `complete` answers with the same message.
    let answer = api.complete(&user("and now?"), None).unwrap();
    assert_eq!(answer.content(), Some("It is sunny."));
    assert_eq!(answer.choices[0].message.extra["refusal"], "No secrets.");
    assert_eq!(answer.finish_reason(), Some("stop"));

    let mut texts = Vec::new();
    let answer = api
        .stream_events_with(&user("x"), None, |event| {
            texts.push(line(event));
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(texts.concat(), "content Placontent in content texcontent t");
    assert_eq!(answer.content(), Some("Plain text"));

    let stream = api.stream(&user("x"), None).unwrap();
    let completion = stream.into_iter().count();
    assert_eq!(
        completion, 0,
        "a reply of tool calls alone has no text chunks"
    );
    assert_eq!(api.mock_responses_left(), 0);
}

#[test]
fn bad_canned_messages_are_refused_when_the_client_is_made() {
    for (reply, words) in [
        (json!({"tool_call": []}), "unknown field \"tool_call\""),
        (
            json!({"tool_calls": [{"function": {"arguments": "{}"}}]}),
            "tool_calls[0] has no function name",
        ),
        (json!({"role": "user", "content": "x"}), "role"),
        (json!({}), "none of content"),
        (json!(7), "neither a string"),
    ] {
        let err = modelapi::ModelApi::builder("m", "http://127.0.0.1:9")
            .mock_replies(vec![json!("fine"), reply.clone()])
            .build()
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::InvalidArgument(_)), "{reply}: {text}");
        assert!(
            text.contains("canned reply 1") && text.contains(words),
            "{reply}: {text}"
        );
    }
}

#[test]
fn the_event_callback_can_stop_the_stream() {
    let server = serve(parallel_tool_calls());
    let api = common::client(&server.url());
    let mut seen = 0;
    let result = api.stream_events_with(&user("hi"), None, |event| {
        seen += 1;
        match event {
            StreamEvent::ToolCall { index: 1, .. } => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    });
    assert!(matches!(result, Err(Error::Aborted(_))), "{result:?}");
    assert_eq!(seen, 3);
    // `for_each_event` on a stream opened with a whole request body.
    let mut request = serde_json::Map::new();
    request.insert(
        "messages".into(),
        json!([{"role": "user", "content": "hi"}]),
    );
    request.insert(
        "tools".into(),
        json!([{"type": "function", "function": {"name": "get_weather"}}]),
    );
    let mut stream = api.stream_request(request, None).unwrap();
    let mut count = 0;
    let answer = stream
        .for_each_event(|_| {
            count += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(count, 6);
    assert_eq!(
        message(&answer, 0)["tool_calls"][1]["function"]["name"],
        "get_time"
    );
    let sent = server.requests().last().unwrap().body_json();
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
}
