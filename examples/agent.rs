//! An agent's tool loop, streamed: the model thinks (shown as it arrives),
//! calls a tool, gets the tool's result, and streams its final answer.
//!
//! ```sh
//! cargo run --example agent -- "What is the weather in Paris?"
//! ```
//!
//! With `MODEL_API_URL` and `MODEL_NAME` set (and `MODEL_API_KEY` when the
//! server needs one) it asks that server, which must support tools (for
//! llama.cpp's llama-server, start it with `--jinja`); without them it
//! answers with built-in canned replies that stand for a tool call and a
//! final answer, and says so.

use std::io::Write;
use std::ops::ControlFlow;
use std::process::ExitCode;

use modelapi::{ChatCompletion, ModelApi, StreamEvent};
use serde_json::{json, Map, Value};

/// At most this many rounds of tool calls before the agent gives up.
const MAX_ROUNDS: usize = 4;

fn main() -> ExitCode {
    let question = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let question = if question.trim().is_empty() {
        "What is the weather in Paris?".to_string()
    } else {
        question
    };
    match run(&question) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(question: &str) -> Result<(), modelapi::Error> {
    let api = client()?;
    let mut messages = vec![
        json!({"role": "system", "content": "You are a helpful assistant. Use the tools when they help."}),
        json!({"role": "user", "content": question}),
    ];
    for _ in 0..MAX_ROUNDS {
        let answer = stream_turn(&api, &messages)?;
        let message = &answer.choices[0].message;
        let calls = message
            .extra
            .get("tool_calls")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if calls.is_empty() {
            return Ok(());
        }
        // The assistant's turn goes back as it came, tool calls included,
        // followed by one `tool` message per call.
        messages.push(json!({
            "role": "assistant",
            "content": message.content,
            "tool_calls": calls,
        }));
        for call in &calls {
            let name = call["function"]["name"].as_str().unwrap_or_default();
            let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
            let result = run_tool(name, arguments);
            eprintln!("[tool] {name}({arguments}) -> {result}");
            messages.push(json!({
                "role": "tool",
                "tool_call_id": call["id"],
                "content": result,
            }));
        }
    }
    eprintln!("(stopped after {MAX_ROUNDS} rounds of tool calls)");
    Ok(())
}

/// Streams one turn: reasoning on stderr and text on stdout as they
/// arrive; returns the whole answer.
fn stream_turn(api: &ModelApi, messages: &[Value]) -> Result<ChatCompletion, modelapi::Error> {
    let mut request = Map::new();
    request.insert("messages".into(), json!(messages));
    request.insert("tools".into(), tools());
    let mut stream = api.stream_request(request, None)?;
    let (mut stdout, mut stderr) = (std::io::stdout().lock(), std::io::stderr().lock());
    let mut text_ends_line = true;
    let answer = stream.for_each_event(|event| {
        // A closed stdout or stderr only loses the display.
        let _ = match event {
            StreamEvent::Reasoning(piece) => write!(stderr, "{piece}"),
            StreamEvent::Content(piece) => {
                text_ends_line = piece.ends_with('\n');
                write!(stdout, "{piece}").and_then(|_| stdout.flush())
            }
            StreamEvent::ToolCall {
                name: Some(name), ..
            } => writeln!(stderr, "\n[calling {name}]"),
            StreamEvent::Refusal(piece) => write!(stderr, "[refusal] {piece}"),
            _ => Ok(()),
        };
        ControlFlow::Continue(())
    })?;
    if !text_ends_line {
        let _ = writeln!(stdout);
    }
    Ok(answer)
}

/// The tools the model may call, in OpenAI's format.
fn tools() -> Value {
    json!([{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "The city's name"}},
                "required": ["city"],
            },
        },
    }])
}

/// Runs a tool locally: the result's text, for the `tool` message.
fn run_tool(name: &str, arguments: &str) -> String {
    let arguments: Value = match serde_json::from_str(arguments) {
        Ok(arguments) => arguments,
        Err(err) => {
            return json!({"error": format!("the arguments are not JSON: {err}")}).to_string()
        }
    };
    match name {
        "get_weather" => {
            let city = arguments["city"].as_str().unwrap_or("somewhere");
            // A stand-in for a weather service: the same city, the same weather.
            let temperature = 12 + city.bytes().map(u32::from).sum::<u32>() % 15;
            json!({"city": city, "temperature_c": temperature, "sky": "sunny"}).to_string()
        }
        other => json!({"error": format!("no tool named {other}")}).to_string(),
    }
}

/// The server of `MODEL_API_URL`, or canned replies: a tool call, then the
/// final answer.
fn client() -> Result<ModelApi, modelapi::Error> {
    if std::env::var_os("MODEL_API_URL").is_some() {
        return ModelApi::from_env();
    }
    eprintln!(
        "(MODEL_API_URL is not set: answering with built-in canned replies; \
         set MODEL_API_URL and MODEL_NAME to ask a real server)"
    );
    ModelApi::builder("canned", "http://localhost:8000")
        .mock_replies(vec![
            json!({
                "reasoning_content": "The user wants the weather; I should call get_weather.",
                "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
            }),
            json!("It is 13 °C and sunny in Paris."),
        ])
        .build()
}
