//! A loopback OpenAI-shaped chat server for the benchmark (no dependencies).
//!
//! `POST .../chat/completions`, HTTP/1.1 with keep-alive:
//!
//! - `"stream": false` (or absent): a fixed `chat.completion` JSON with a
//!   `Content-Length`;
//! - `"stream": true`: Server-Sent Events with chunked transfer encoding: a
//!   role chunk, N content chunks of `"tok "`, a finish chunk and
//!   `data: [DONE]`. N is the request's `max_tokens`, else the
//!   `X-Bench-Chunks` header, else 50.
//!
//! Every byte it sends is computed once at start; a stream is written as
//! HTTP chunks of about 32 KiB, each holding many events, so one `write`
//! carries ~150 events and the server stays far from being the bottleneck.
//! One thread per connection (the benchmark uses one at a time).
//!
//! With `--vary`, each content chunk also carries an `obfuscation` field
//! whose value changes from chunk to chunk (as OpenAI's do): chunks then
//! differ beyond their content, which clients that recognise a repeated
//! chunk shape cannot skip.
//!
//! With `--tools`, a stream is one tool call instead of text, shaped as
//! OpenAI streams them: a first chunk with the role, `content: null` and
//! the call's `index`, `id`, `type` and `function.name` (arguments `""`),
//! then N chunks each carrying one piece of `function.arguments` (a few
//! bytes of JSON text, some with escapes, some with multi-byte UTF-8), a
//! chunk with `finish_reason: "tool_calls"` and `data: [DONE]`. The
//! arguments are a `write_file` call's JSON object: a fixed head
//! (`{"path": ..., "content": "`), a cycle of body pieces (a Markdown file
//! with its newlines and quotes escaped) and a fixed tail (`"}`), N pieces
//! in all (at least the head and tail), so they parse as JSON at any N.
//!
//! With an `X-Bench-Pause-Ms: N` request header, a stream stops after its
//! head (the response head, the role chunk and the first content chunk;
//! `--tools`: the head of the arguments) for N milliseconds, or until the
//! client closes the connection, before it goes on: an idle stream, for
//! the cost of a poll that finds nothing.
//!
//! Usage: `bench-server [--port N] [--exit-on-stdin-eof] [--vary | --tools]`.
//! It prints `PORT <n>` on stdout once it listens on 127.0.0.1.
//! `--describe` prints what a client must receive (JSON: sizes, and the
//! tool call's pieces, from which the runner rebuilds the arguments for any
//! N) and exits.

use std::io::{self, BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

/// The content of every stream chunk.
pub const PIECE: &str = "tok ";
/// Target size of one HTTP chunk of a stream.
const BATCH_BYTES: usize = 32 * 1024;
const DEFAULT_CHUNKS: u64 = 50;

const ID: &str = "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT";
const MODEL: &str = "gpt-4o-mini-2024-07-18";
const CREATED: u64 = 1741569952;
const FINGERPRINT: &str = "fp_06737a9306";
/// The content of the non-streamed answer.
pub const ANSWER: &str = "Hello! How can I assist you today? This is the benchmark's fixed answer.";

/// `--tools`: the call's id and function name.
pub const TOOL_ID: &str = "call_q8XhVn2LkR5tWj3mYc9bPz4s";
pub const TOOL_NAME: &str = "write_file";

/// `--tools`: the argument pieces, as the arguments text has them: in this
/// source `"\\n"` is a backslash and an `n` (an escape inside the
/// arguments' `content` string), `"\n"` a newline between the arguments'
/// own tokens. The head and tail are sent once, the body pieces in turn
/// between them.
pub const TOOL_HEAD: &[&str] = &[
    "{\n", "  \"", "path", "\":", " \"", "notes", "/", "bench", "mark", "-", "run", ".md", "\",\n",
    "  \"", "content", "\":", " \"",
];
pub const TOOL_TAIL: &[&str] = &["\"\n", "}"];
pub const TOOL_BODY: &[&str] = &[
    "# ", "Ré", "sum", "é", " of", " the", " run", "\\n\\n", "The", " client", " read", " every",
    " “", "piece", "”", " —", " 200", " 000", " of", " them", " —", " and", " said", " \\\"",
    "ok", "\\\".", "\\n\\n", "|", " na", "ïve", " |", " café", " |", "\\n", "|", "---", "|",
    "---", "|", "\\n", "|", " 1", " |", " 2", " |", "\\n\\n", "```", "rust", "\\n", "fn",
    " main", "()", " {", "\\n", "   ", " println", "!(", "\\\"", "日本", "語", " ✓", " 🚀",
    "\\\");", "\\n", "}", "\\n", "```", "\\n\\n", "Tabs", ":", "\\t", "a", "\\t", "b",
    ",", " path", " C", ":", "\\\\", "tmp", "\\\\", "x", ".", "\\n\\n",
];

/// `s` as the inside of a JSON string: `"`, `\` and control characters
/// escaped, the rest (non-ASCII included) as it is.
fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// What the server streams.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Content chunks that are all alike.
    Plain,
    /// `--vary`: content chunks with a changing `obfuscation` field.
    Vary,
    /// `--tools`: one tool call's arguments in pieces.
    Tools,
}

struct Canned {
    completion: Vec<u8>,
    stream_head: Vec<u8>,
    /// Pieces sent in `stream_head` and `end` whatever the count asked
    /// (`--tools`: the head and tail of the arguments); the batches and the
    /// rest make up the difference.
    fixed: u64,
    /// One HTTP chunk holding `per_batch` content events.
    batch: Vec<u8>,
    per_batch: u64,
    /// The content events, used in turn (one unless `--vary`).
    events: Vec<Vec<u8>>,
    /// The finish event and `[DONE]` as one HTTP chunk, then the last chunk.
    end: Vec<u8>,
}

fn http_chunk(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

fn chunk_event(delta: &str, finish_reason: &str) -> Vec<u8> {
    chunk_event_with(delta, finish_reason, "")
}

/// `--tools`: a chunk event as OpenAI streams tool calls (no
/// `system_fingerprint`).
fn tool_event(delta: &str, finish_reason: &str) -> Vec<u8> {
    format!(
        "data: {{\"id\":\"{ID}\",\"object\":\"chat.completion.chunk\",\"created\":{CREATED},\
         \"model\":\"{MODEL}\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\
         \"finish_reason\":{finish_reason}}}]}}\n\n"
    )
    .into_bytes()
}

/// `--tools`: the event carrying one piece of the call's arguments.
fn tool_piece_event(piece: &str) -> Vec<u8> {
    tool_event(
        &format!(
            "{{\"tool_calls\":[{{\"index\":0,\"function\":{{\"arguments\":\"{}\"}}}}]}}",
            json_escape(piece)
        ),
        "null",
    )
}

/// A chunk event; `extra` (`,"key":value...`) goes after `choices`.
fn chunk_event_with(delta: &str, finish_reason: &str, extra: &str) -> Vec<u8> {
    format!(
        "data: {{\"id\":\"{ID}\",\"object\":\"chat.completion.chunk\",\"created\":{CREATED},\
         \"model\":\"{MODEL}\",\"system_fingerprint\":\"{FINGERPRINT}\",\"choices\":[{{\"index\":0,\
         \"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish_reason}}}]{extra}}}\n\n"
    )
    .into_bytes()
}

/// `--vary`: how many different content events there are, and their
/// `obfuscation` values (1 to 13 characters, as OpenAI's pad the chunk).
const VARIANTS: usize = 16;

fn obfuscation(i: usize) -> String {
    const LETTERS: &[u8] = b"aZ3kQ9xLm2Rt7VbN";
    (0..1 + (i * 5) % 13)
        .map(|j| LETTERS[(i * 7 + j * 3) % LETTERS.len()] as char)
        .collect()
}

impl Canned {
    fn new(mode: Mode) -> Canned {
        let body = format!(
            "{{\"id\":\"{ID}\",\"object\":\"chat.completion\",\"created\":{CREATED},\"model\":\"{MODEL}\",\
             \"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":\"{ANSWER}\",\
             \"refusal\":null,\"annotations\":[]}},\"logprobs\":null,\"finish_reason\":\"stop\"}}],\
             \"usage\":{{\"prompt_tokens\":19,\"completion_tokens\":17,\"total_tokens\":36,\
             \"prompt_tokens_details\":{{\"cached_tokens\":0,\"audio_tokens\":0}},\
             \"completion_tokens_details\":{{\"reasoning_tokens\":0,\"audio_tokens\":0,\
             \"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}},\
             \"service_tier\":\"default\",\"system_fingerprint\":\"{FINGERPRINT}\"}}"
        );
        let mut completion = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: keep-alive\r\nx-request-id: req_bench0001\r\nopenai-processing-ms: 1\r\n\r\n",
            body.len()
        )
        .into_bytes();
        completion.extend_from_slice(body.as_bytes());

        let mut stream_head =
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n\
            transfer-encoding: chunked\r\ncache-control: no-cache\r\nconnection: keep-alive\r\n\
            x-request-id: req_bench0001\r\n\r\n"
                .to_vec();

        if mode == Mode::Tools {
            let mut first = tool_event(
                &format!(
                    "{{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{{\"index\":0,\
                     \"id\":\"{TOOL_ID}\",\"type\":\"function\",\"function\":{{\"name\":\"{TOOL_NAME}\",\
                     \"arguments\":\"\"}}}}]}}"
                ),
                "null",
            );
            for piece in TOOL_HEAD {
                first.extend(tool_piece_event(piece));
            }
            stream_head.extend(http_chunk(&first));
            let events: Vec<Vec<u8>> = TOOL_BODY.iter().map(|p| tool_piece_event(p)).collect();
            // Whole cycles of the body per batch, so each batch starts the
            // cycle again.
            let cycle_bytes: usize = events.iter().map(Vec::len).sum();
            let per_batch = ((BATCH_BYTES / cycle_bytes).max(1) * events.len()) as u64;
            let batch = http_chunk(&cycle(&events, per_batch as usize));
            let mut finish = Vec::new();
            for piece in TOOL_TAIL {
                finish.extend(tool_piece_event(piece));
            }
            finish.extend(tool_event("{}", "\"tool_calls\""));
            finish.extend_from_slice(b"data: [DONE]\n\n");
            let mut end = http_chunk(&finish);
            end.extend_from_slice(b"0\r\n\r\n");
            return Canned {
                completion,
                stream_head,
                fixed: (TOOL_HEAD.len() + TOOL_TAIL.len()) as u64,
                batch,
                per_batch,
                events,
                end,
            };
        }

        let delta = format!("{{\"content\":\"{PIECE}\"}}");
        let events: Vec<Vec<u8>> = if mode == Mode::Vary {
            (0..VARIANTS)
                .map(|i| {
                    let extra = format!(",\"obfuscation\":\"{}\"", obfuscation(i));
                    chunk_event_with(&delta, "null", &extra)
                })
                .collect()
        } else {
            vec![chunk_event(&delta, "null")]
        };
        let per_batch = (BATCH_BYTES / events[0].len()).max(1) as u64;
        let batch = http_chunk(&cycle(&events, per_batch as usize));

        stream_head.extend(http_chunk(&chunk_event(
            "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}",
            "null",
        )));

        let mut finish = chunk_event("{}", "\"stop\"");
        finish.extend_from_slice(b"data: [DONE]\n\n");
        let mut end = http_chunk(&finish);
        end.extend_from_slice(b"0\r\n\r\n");

        Canned {
            completion,
            stream_head,
            fixed: 0,
            batch,
            per_batch,
            events,
            end,
        }
    }
}

/// The first `n` of `events` repeated in turn, concatenated.
fn cycle(events: &[Vec<u8>], n: usize) -> Vec<u8> {
    events.iter().cycle().take(n).flatten().copied().collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value after `"key"` and a colon in a JSON text, whitespace skipped
/// (good enough for the flat request bodies of the clients).
fn json_value<'a>(body: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let quoted = format!("\"{key}\"");
    let at = find(body, quoted.as_bytes())? + quoted.len();
    let rest = &body[at..];
    let rest = &rest[rest.iter().position(|b| !b.is_ascii_whitespace())?..];
    let rest = rest.strip_prefix(b":")?;
    Some(&rest[rest.iter().position(|b| !b.is_ascii_whitespace())?..])
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&s[..digits]).ok()?.parse().ok()
}

/// Reads more bytes into `buf`; 0 at the end of the connection.
fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut tmp = [0u8; 16 * 1024];
    let n = s.read(&mut tmp)?;
    buf.extend_from_slice(&tmp[..n]);
    Ok(n)
}

/// A chunked request body decoded from `buf[from..]`: (body, bytes used),
/// or None when more bytes are needed.
fn dechunk(buf: &[u8], from: usize) -> Option<(Vec<u8>, usize)> {
    let mut at = from;
    let mut body = Vec::new();
    loop {
        let line_end = at + find(&buf[at..], b"\r\n")?;
        let size_text = std::str::from_utf8(&buf[at..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let end = at + find(&buf[at..], b"\r\n")?;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some((body, at));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return None;
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
    }
}

fn serve(mut s: TcpStream, canned: &Canned) -> io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let mut pause_ms = 0u64;
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if read_more(&mut s, &mut buf)? == 0 {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let (mut content_length, mut chunked, mut close, mut expect, mut header_chunks) =
            (0usize, false, false, false, None);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "content-length" => content_length = value.parse().unwrap_or(0),
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                "expect" => expect = value.eq_ignore_ascii_case("100-continue"),
                "x-bench-chunks" => header_chunks = value.parse::<u64>().ok(),
                "x-bench-pause-ms" => pause_ms = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        if expect {
            s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let (body, used) = loop {
            if chunked {
                if let Some(done) = dechunk(&buf, head_end) {
                    break done;
                }
            } else if buf.len() >= head_end + content_length {
                let end = head_end + content_length;
                break (buf[head_end..end].to_vec(), end);
            }
            if read_more(&mut s, &mut buf)? == 0 {
                return Ok(());
            }
        };
        buf.drain(..used);

        if method != "POST" || !path.ends_with("/chat/completions") {
            let msg = b"{\"error\":{\"message\":\"not found\",\"type\":\"invalid_request_error\"}}";
            let mut out = format!(
                "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                msg.len()
            )
            .into_bytes();
            out.extend_from_slice(msg);
            s.write_all(&out)?;
        } else if json_value(&body, "stream").is_some_and(|v| v.starts_with(b"true")) {
            let n = json_value(&body, "max_tokens")
                .and_then(parse_u64)
                .or(header_chunks)
                .unwrap_or(DEFAULT_CHUNKS);
            if !write_stream(&mut s, canned, n, pause_ms)? {
                return Ok(());
            }
        } else {
            s.write_all(&canned.completion)?;
        }
        if close {
            return Ok(());
        }
    }
}

/// A stream of `n` pieces (content chunks, or `--tools` argument pieces:
/// the fixed head and tail included). With `pause_ms`, the head (and the
/// first content chunk) goes out first, then nothing for `pause_ms` or
/// until the client closes: `Ok(false)` when it did (the stream is not
/// finished).
fn write_stream(s: &mut TcpStream, c: &Canned, n: u64, pause_ms: u64) -> io::Result<bool> {
    let mut n = n.saturating_sub(c.fixed);
    let mut pending = c.stream_head.clone();
    if pause_ms > 0 {
        if c.fixed == 0 && n > 0 {
            pending.extend(http_chunk(&c.events[0]));
            n -= 1;
        }
        s.write_all(&pending)?;
        pending.clear();
        if !pause(s, pause_ms)? {
            return Ok(false);
        }
    }
    for _ in 0..n / c.per_batch {
        if pending.is_empty() {
            s.write_all(&c.batch)?;
        } else {
            pending.extend_from_slice(&c.batch);
            s.write_all(&pending)?;
            pending.clear();
        }
    }
    let rest = (n % c.per_batch) as usize;
    if rest > 0 {
        pending.extend(http_chunk(&cycle(&c.events, rest)));
    }
    pending.extend_from_slice(&c.end);
    s.write_all(&pending)?;
    Ok(true)
}

/// Sends nothing for `ms` milliseconds: `Ok(false)` when the client closes
/// the connection (or sends anything) meanwhile.
fn pause(s: &mut TcpStream, ms: u64) -> io::Result<bool> {
    s.set_read_timeout(Some(std::time::Duration::from_millis(ms)))?;
    let mut byte = [0u8; 1];
    let result = match s.read(&mut byte) {
        Ok(_) => Ok(false),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(true)
        }
        Err(_) => Ok(false),
    };
    s.set_read_timeout(None)?;
    result
}

/// `--tools`: the arguments text of a call of `n` pieces.
pub fn tool_arguments(n: u64) -> String {
    let body = n.saturating_sub((TOOL_HEAD.len() + TOOL_TAIL.len()) as u64) as usize;
    let mut out: String = TOOL_HEAD.concat();
    for piece in TOOL_BODY.iter().cycle().take(body) {
        out.push_str(piece);
    }
    out.push_str(&TOOL_TAIL.concat());
    out
}

/// 64-bit FNV-1a, the checksum the clients and the runner agree on.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn json_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|p| format!("\"{}\"", json_escape(p)))
        .collect();
    format!("[{}]", quoted.join(","))
}

/// `--describe`: what a client must receive, as JSON.
fn describe(pieces: u64) -> String {
    let c = Canned::new(Mode::Plain);
    let t = Canned::new(Mode::Tools);
    let args = tool_arguments(pieces);
    let body_bytes: usize = t.events.iter().map(Vec::len).sum();
    let body_piece_bytes: usize = TOOL_BODY.iter().map(|p| p.len()).sum();
    format!(
        "{{\"piece_bytes\":{},\"answer_bytes\":{},\"event_bytes\":{},\"events_per_write\":{},\
         \"completion_response_bytes\":{},\
         \"tool_id\":\"{TOOL_ID}\",\"tool_name\":\"{TOOL_NAME}\",\
         \"tool_head\":{},\"tool_body\":{},\"tool_tail\":{},\
         \"tool_event_bytes\":{:.1},\"tool_piece_bytes\":{:.2},\"tool_events_per_write\":{},\
         \"tool_pieces\":{pieces},\"tool_events\":{},\"tool_arguments_bytes\":{},\
         \"tool_arguments_fnv1a64\":\"{:016x}\"}}",
        PIECE.len(),
        ANSWER.len(),
        c.events[0].len(),
        c.per_batch,
        c.completion.len(),
        json_list(TOOL_HEAD),
        json_list(TOOL_BODY),
        json_list(TOOL_TAIL),
        body_bytes as f64 / t.events.len() as f64,
        body_piece_bytes as f64 / TOOL_BODY.len() as f64,
        t.per_batch,
        // The first event (id and name, arguments "") is an event too.
        pieces.max(t.fixed) + 1,
        args.len(),
        fnv1a64(args.as_bytes()),
    )
}

const USAGE: &str = "usage: bench-server [--port N] [--exit-on-stdin-eof] [--vary | --tools] \
                     | --describe [--pieces N]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut port = 0u16;
    let mut watch_stdin = false;
    let mut mode = Mode::Plain;
    let mut describe_only = false;
    let mut pieces = 200_000u64;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--port" => {
                i += 1;
                port = args.get(i).and_then(|p| p.parse().ok()).expect("--port N");
            }
            "--exit-on-stdin-eof" => watch_stdin = true,
            "--vary" => mode = Mode::Vary,
            "--tools" => mode = Mode::Tools,
            // For the runner: what a client must receive.
            "--describe" => describe_only = true,
            "--pieces" => {
                i += 1;
                pieces = args
                    .get(i)
                    .and_then(|p| p.parse().ok())
                    .expect("--pieces N");
            }
            other => {
                eprintln!("{USAGE} (got {other})");
                std::process::exit(2);
            }
        }
        i += 1;
    }
    if describe_only {
        println!("{}", describe(pieces));
        return;
    }
    if watch_stdin {
        // The runner holds our stdin: when it goes away, so do we.
        std::thread::spawn(|| {
            let mut line = String::new();
            let stdin = io::stdin();
            let mut lock = stdin.lock();
            while lock.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                line.clear();
            }
            std::process::exit(0);
        });
    }
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1");
    println!("PORT {}", listener.local_addr().expect("local addr").port());
    io::stdout().flush().ok();
    let canned = Arc::new(Canned::new(mode));
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let canned = Arc::clone(&canned);
        std::thread::spawn(move || {
            let _ = serve(conn, &canned);
        });
    }
}
