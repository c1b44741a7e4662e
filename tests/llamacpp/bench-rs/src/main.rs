//! One streamed request through modelapi's Rust API, timed from just before
//! it is sent: `llamacpp-bench-rs URL MODEL REQUEST_JSON` prints
//! `{"ttfc_ms": .., "chunks": .., "span_s": .., "bytes": ..}` (the time to
//! the first content chunk, the content chunks, the time from the first to
//! the last, the content's bytes). See tests/llamacpp/bench.sh.

use std::time::Instant;

use modelapi::ModelApi;
use serde_json::Value;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, model, request] = args.as_slice() else {
        eprintln!("usage: llamacpp-bench-rs URL MODEL REQUEST_JSON");
        std::process::exit(2);
    };
    let Ok(Value::Object(request)) = serde_json::from_str::<Value>(request) else {
        eprintln!("REQUEST_JSON is not a JSON object");
        std::process::exit(2);
    };
    let api = ModelApi::builder(model.as_str(), url.as_str())
        .mock_responses(vec![])
        .max_retries(0)
        .build()
        .expect("client");
    let start = Instant::now();
    let mut stream = api.stream_request(request, None).expect("stream");
    let (mut first, mut last) = (None, start);
    let (mut chunks, mut bytes) = (0u64, 0usize);
    while let Some(chunk) = stream.next_chunk() {
        let chunk = chunk.expect("chunk");
        let now = Instant::now();
        first.get_or_insert(now);
        last = now;
        chunks += 1;
        bytes += chunk.len();
    }
    let first = first.expect("at least one chunk");
    println!(
        "{{\"ttfc_ms\": {:.3}, \"chunks\": {chunks}, \"span_s\": {:.6}, \"bytes\": {bytes}}}",
        (first - start).as_secs_f64() * 1000.0,
        (last - first).as_secs_f64()
    );
}
