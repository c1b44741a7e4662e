//! modelapi's Rust API in one benchmark scenario, with a JSON result line.
//!
//! Usage: bench-rust-client [--iter | --events] SCENARIO BASE_URL [ARGS]
//!   complete N         N sequential `complete` calls on one client
//!   stream CHUNKS      one stream of CHUNKS content chunks
//!   streams N CHUNKS   N sequential streams of CHUNKS chunks each
//!   once               create a client, one `complete`, exit
//!   tools PIECES [ANSWER_FILE]
//!                      one stream of a tool call in PIECES argument pieces
//!                      (`bench-server --tools`): `next_event()` for every
//!                      event, then `completion()` (both measured); the
//!                      answer's JSON goes to ANSWER_FILE afterwards
//! Streams are read with `next_chunk()` (no allocation per chunk), with
//! the `Iterator` (an owned `String` per chunk) under `--iter`, or with
//! `next_event()` (content events counted) under `--events`.

use std::time::Instant;

use modelapi::{ChatCompletion, Message, ModelApi, StreamEvent};
use serde_json::{json, Map, Value};

const PROMPT: &str = "Write a long story about a benchmark, one token at a time.";

fn request(chunks: u64) -> Map<String, Value> {
    match json!({"messages": [{"role": "user", "content": PROMPT}], "max_tokens": chunks}) {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Read {
    Chunks,
    Iter,
    Events,
}

/// One stream: (content bytes, non-empty chunks).
fn one_stream(api: &ModelApi, chunks: u64, read: Read) -> (u64, u64) {
    let mut stream = api.stream_request(request(chunks), None).expect("stream");
    let (mut bytes, mut count) = (0u64, 0u64);
    if read == Read::Events {
        while let Some(event) = stream.next_event() {
            if let StreamEvent::Content(text) = event.expect("event") {
                if !text.is_empty() {
                    bytes += text.len() as u64;
                    count += 1;
                }
            }
        }
    } else if read == Read::Iter {
        for chunk in stream {
            let chunk = chunk.expect("chunk");
            if !chunk.is_empty() {
                bytes += chunk.len() as u64;
                count += 1;
            }
        }
    } else {
        while let Some(chunk) = stream.next_chunk() {
            let chunk = chunk.expect("chunk");
            if !chunk.is_empty() {
                bytes += chunk.len() as u64;
                count += 1;
            }
        }
    }
    (bytes, count)
}

/// One stream of a tool call: (argument bytes, tool-call events, the
/// assembled answer).
fn tool_stream(api: &ModelApi, pieces: u64) -> (u64, u64, ChatCompletion) {
    let mut stream = api.stream_request(request(pieces), None).expect("stream");
    let (mut bytes, mut count) = (0u64, 0u64);
    while let Some(event) = stream.next_event() {
        if let StreamEvent::ToolCall { arguments, .. } = event.expect("event") {
            bytes += arguments.len() as u64;
            count += 1;
        }
    }
    (bytes, count, stream.completion())
}

/// The peak resident set of this program (VmHWM), in KiB: unlike the
/// `ru_maxrss` a parent gets from `wait4`, it does not count the memory of
/// the process before `exec` (the forked runner).
fn peak_rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(-1)
}

/// CPU time of this process (user + system), immune to other processes
/// taking turns on the CPU.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let read = match args.first().map(String::as_str) {
        Some("--iter") => Read::Iter,
        Some("--events") => Read::Events,
        _ => Read::Chunks,
    };
    if read != Read::Chunks {
        args.remove(0);
    }
    let arg = |i: usize| -> u64 {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("argument {i} must be a number"))
    };
    let scenario = args.first().expect("scenario").clone();
    let base = args.get(1).expect("base url").clone();
    let started = Instant::now();
    let api = ModelApi::builder("gpt-4o-mini", base.as_str())
        .max_retries(0)
        .build()
        .expect("client");
    let messages = [Message::user(PROMPT)];
    let t0 = Instant::now();
    let c0 = cpu_seconds();
    let (mut bytes, mut chunks, mut requests) = (0u64, 0u64, 0u64);
    let mut answer = None;
    match scenario.as_str() {
        "complete" | "once" => {
            let n = if scenario == "once" { 1 } else { arg(2) };
            for _ in 0..n {
                let answer = api.complete(&messages, None).expect("complete");
                bytes += answer.content().expect("content").len() as u64;
                requests += 1;
            }
        }
        "stream" | "streams" => {
            let (n, per) = if scenario == "stream" {
                (1, arg(2))
            } else {
                (arg(2), arg(3))
            };
            for _ in 0..n {
                let (b, c) = one_stream(&api, per, read);
                bytes += b;
                chunks += c;
                requests += 1;
            }
        }
        "tools" => {
            let (b, c, completion) = tool_stream(&api, arg(2));
            bytes += b;
            chunks += c;
            requests += 1;
            answer = Some(completion);
        }
        other => panic!("unknown scenario {other}"),
    }
    let cpu = cpu_seconds() - c0;
    let seconds = t0.elapsed().as_secs_f64();
    // tools: the peak with the answer assembled, before its JSON is made
    // for the check (the other scenarios: at the end, below).
    let answer_rss = answer.as_ref().map(|_| peak_rss_kib());
    if let (Some(answer), Some(path)) = (&answer, args.get(3)) {
        let json = serde_json::to_string(answer).expect("answer JSON");
        std::fs::write(path, json).expect("write the answer");
    }
    api.close();
    let total = started.elapsed().as_secs_f64();
    println!(
        "{{\"client\":\"modelapi-rs{}\",\"scenario\":\"{scenario}\",\"seconds\":{seconds:.9},\"cpu_seconds\":{cpu:.9},\
         \"with_setup_seconds\":{total:.9},\"content_bytes\":{bytes},\"chunks\":{chunks},\
         \"requests\":{requests},\"peak_rss_kib\":{}}}",
        match read {
            Read::Chunks => "",
            Read::Iter => "-iter",
            Read::Events => "-event",
        },
        answer_rss.unwrap_or_else(peak_rss_kib)
    );
}
