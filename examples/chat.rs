//! The main job: stream a chat answer to the terminal.
//!
//! ```sh
//! cargo run -- "Write a haiku about coding"                 # the modelapi-chat binary
//! cargo run --example chat -- "Write a haiku about coding"  # the same, as an example
//! ```
//!
//! One source, two targets: `src/bin/modelapi-chat.rs` includes this file,
//! so that the first `cargo run` builds no dev-dependency.
//!
//! With `MODEL_API_URL` and `MODEL_NAME` set (and `MODEL_API_KEY` when the
//! server needs one) it asks that server; without them it answers with a
//! built-in canned reply through the mock path, and says so.

use std::io::Write;
use std::ops::ControlFlow;
use std::process::ExitCode;

use modelapi::{Message, ModelApi};

const CANNED_HAIKU: &str = "Silent loops at night,\n\
                            a missing semicolon -\n\
                            the tests turn green. Dawn.\n";

pub fn main() -> ExitCode {
    let prompt = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let prompt = if prompt.trim().is_empty() {
        "Write a haiku about coding".to_string()
    } else {
        prompt
    };
    let api = if std::env::var_os("MODEL_API_URL").is_some() {
        ModelApi::from_env()
    } else {
        eprintln!(
            "(MODEL_API_URL is not set: answering with a built-in canned reply; \
             set MODEL_API_URL and MODEL_NAME to ask a real server)"
        );
        ModelApi::builder("canned", "http://localhost:8000")
            .mock_responses(vec![CANNED_HAIKU.to_string()])
            .build()
    };
    let api = match api {
        Ok(api) => api,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let messages = [
        Message::system("You are a helpful assistant."),
        Message::user(prompt),
    ];
    let mut stdout = std::io::stdout().lock();
    let mut at_line_start = true;
    let result = api.stream_with(&messages, None, |chunk| {
        at_line_start = chunk.ends_with('\n');
        // A closed stdout (e.g. `| head`) stops the stream.
        match stdout
            .write_all(chunk.as_bytes())
            .and_then(|_| stdout.flush())
        {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    });
    api.close();
    if !at_line_start {
        let _ = writeln!(stdout);
    }
    match result {
        Ok(_) | Err(modelapi::Error::Aborted(_)) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
