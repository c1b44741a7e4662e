//! The events of a stream as C sees them: their kinds, the struct, and
//! the callback type.

use std::ffi::{c_char, c_int, c_void};

use crate::decoder::event::{EventWithNul, Kind};

/// What an event of a stream is (see `ModelApiEvent`). The numbers are
/// stable.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelApiEventKind {
    /// A piece of the answer's text (`delta.content`).
    MODELAPI_EVENT_CONTENT = 0,
    /// A piece of the model's reasoning (`delta.reasoning_content`, or
    /// `delta.reasoning`).
    MODELAPI_EVENT_REASONING = 1,
    /// A piece of one tool call (`delta.tool_calls[]`).
    MODELAPI_EVENT_TOOL_CALL = 2,
    /// A piece of a refusal (`delta.refusal`).
    MODELAPI_EVENT_REFUSAL = 3,
}

/// One event of a stream: a piece of the text, of the reasoning, of a tool
/// call or of a refusal, of choice 0, in the order they arrived. Its
/// strings belong to the stream: valid until the next read of the stream
/// (`modelapi_stream_next`, `modelapi_stream_next_event`) or its free;
/// for a callback, during the call only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModelApiEvent {
    /// What the piece is.
    pub kind: ModelApiEventKind,
    /// The piece (`MODELAPI_EVENT_TOOL_CALL`: of the call's arguments, the
    /// JSON text with its escapes resolved); NUL-terminated, never NULL.
    pub text: *const c_char,
    /// Bytes of `text`, without the NUL.
    pub len: usize,
    /// `MODELAPI_EVENT_TOOL_CALL`: the call this piece belongs to (its
    /// `index`, or its position when the server leaves it out); else 0.
    pub tool_index: u32,
    /// `MODELAPI_EVENT_TOOL_CALL`: the call's id when this piece carries
    /// it (usually the first piece of the call); else NULL.
    pub tool_id: *const c_char,
    /// `MODELAPI_EVENT_TOOL_CALL`: the function's name when this piece
    /// carries it; else NULL.
    pub tool_name: *const c_char,
}

/// Called once per event by `modelapi_stream_events`, on the calling
/// thread. `event` and its strings are valid during the call only (copy
/// what you keep). Return 0 to go on, non-zero to stop: the stream is then
/// closed and the call returns `MODELAPI_ABORTED`.
pub type ModelApiEventFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const ModelApiEvent) -> c_int>;

/// The event C gets when there is none: empty content.
pub(super) fn no_event() -> ModelApiEvent {
    ModelApiEvent {
        kind: ModelApiEventKind::MODELAPI_EVENT_CONTENT,
        text: c"".as_ptr(),
        len: 0,
        tool_index: 0,
        tool_id: std::ptr::null(),
        tool_name: std::ptr::null(),
    }
}

/// An event for C, pointing into the stream's buffer.
pub(super) fn c_event(event: &EventWithNul<'_>) -> ModelApiEvent {
    let c_text = |bytes: &[u8]| bytes.as_ptr().cast::<c_char>();
    ModelApiEvent {
        kind: match event.kind {
            Kind::Content => ModelApiEventKind::MODELAPI_EVENT_CONTENT,
            Kind::Reasoning => ModelApiEventKind::MODELAPI_EVENT_REASONING,
            Kind::ToolCall => ModelApiEventKind::MODELAPI_EVENT_TOOL_CALL,
            Kind::Refusal => ModelApiEventKind::MODELAPI_EVENT_REFUSAL,
        },
        text: c_text(event.text),
        len: event.text.len() - 1,
        tool_index: event.tool_index,
        tool_id: event.tool_id.map_or(std::ptr::null(), c_text),
        tool_name: event.tool_name.map_or(std::ptr::null(), c_text),
    }
}
