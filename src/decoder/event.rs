//! [`StreamEvent`]: one piece of a streamed answer (text, reasoning, a tool
//! call, a refusal), and [`Events`], the queue of the pieces of the chunk a
//! stream is handing out.

/// One piece of a streamed answer, of choice 0, in the order it arrived;
/// see [`ChatStream::next_event`](crate::ChatStream::next_event).
///
/// Servers name the fields differently; each kind stands for:
///
/// | event | `delta` field |
/// |---|---|
/// | `Content` | `content` |
/// | `Reasoning` | `reasoning_content` (llama.cpp, vLLM, DeepSeek) or `reasoning` (Ollama, OpenRouter); one event when a delta has both |
/// | `ToolCall` | one piece of `tool_calls[]` |
/// | `Refusal` | `refusal` |
///
/// The texts are borrowed from the stream until its next read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamEvent<'a> {
    /// A piece of the answer's text.
    Content(&'a str),
    /// A piece of the model's reasoning.
    Reasoning(&'a str),
    /// A piece of one tool call. The pieces of one call share its `index`
    /// (the position in the `tool_calls` array when the server leaves it
    /// out); the first piece of a call usually carries its `id` and the
    /// function's `name`; the call's arguments are the `arguments` of its
    /// pieces, concatenated (escapes resolved; UTF-8 intact).
    ToolCall {
        /// The call this piece belongs to.
        index: u32,
        /// The call's id, when this piece carries it.
        id: Option<&'a str>,
        /// The function's name, when this piece carries it.
        name: Option<&'a str>,
        /// A piece of the arguments' JSON text (may be empty when the
        /// piece carries only the id or the name).
        arguments: &'a str,
    },
    /// A piece of a refusal.
    Refusal(&'a str),
}

/// The kind of a piece of text in a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Content,
    Reasoning,
    ToolCall,
    Refusal,
}

/// One queued event: where its texts are in [`Events::text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Queued {
    kind: Kind,
    /// The piece's text: `text[start..end]`, a NUL after it.
    text: (usize, usize),
    tool_index: u32,
    tool_id: Option<(usize, usize)>,
    tool_name: Option<(usize, usize)>,
}

/// An event's texts as C wants them: each followed by its NUL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventWithNul<'a> {
    pub kind: Kind,
    pub text: &'a [u8],
    pub tool_index: u32,
    pub tool_id: Option<&'a [u8]>,
    pub tool_name: Option<&'a [u8]>,
}

/// The events of the chunk being handed out, choice 0's, in order. Their
/// texts share one buffer, each followed by a NUL so that C can have it in
/// place; the buffer and the queue are reused from chunk to chunk, so a
/// stream allocates nothing per chunk once they have grown.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Events {
    text: String,
    queue: Vec<Queued>,
    /// The next event to hand out is `queue[next]`.
    next: usize,
}

impl Events {
    /// Forgets every event (a new chunk is coming).
    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.queue.clear();
        self.next = 0;
    }

    /// Queues a text event whose text `write` appends: the text; none
    /// when it is empty.
    #[inline]
    pub(crate) fn push_text(
        &mut self,
        kind: Kind,
        write: impl FnOnce(&mut String),
    ) -> Option<&str> {
        let text = self.write(write);
        if text.0 == text.1 {
            self.text.truncate(text.0);
            return None;
        }
        self.queue.push(Queued {
            kind,
            text,
            tool_index: 0,
            tool_id: None,
            tool_name: None,
        });
        Some(&self.text[text.0..text.1])
    }

    /// Queues a piece of a tool call: its arguments' text; none when it
    /// carries neither an id, a name nor any argument text.
    pub(crate) fn push_tool_call(
        &mut self,
        index: u32,
        id: Option<&str>,
        name: Option<&str>,
        write_arguments: impl FnOnce(&mut String),
    ) -> Option<&str> {
        let start = self.text.len();
        let tool_id = id.map(|id| self.write(|t| t.push_str(id)));
        let tool_name = name.map(|name| self.write(|t| t.push_str(name)));
        let text = self.write(write_arguments);
        if text.0 == text.1 && tool_id.is_none() && tool_name.is_none() {
            self.text.truncate(start);
            return None;
        }
        self.queue.push(Queued {
            kind: Kind::ToolCall,
            text,
            tool_index: index,
            tool_id,
            tool_name,
        });
        Some(&self.text[text.0..text.1])
    }

    /// Appends a text and its NUL; where the text is (without the NUL).
    #[inline]
    fn write(&mut self, write: impl FnOnce(&mut String)) -> (usize, usize) {
        let start = self.text.len();
        write(&mut self.text);
        let end = self.text.len();
        self.text.push('\0');
        (start, end)
    }

    /// Whether an event is waiting to be handed out.
    pub(crate) fn has_next(&self) -> bool {
        self.next < self.queue.len()
    }

    /// The next event not handed out yet: moves past it.
    #[inline]
    pub(crate) fn take(&mut self) -> Option<usize> {
        let at = self.next;
        if at < self.queue.len() {
            self.next += 1;
            Some(at)
        } else {
            None
        }
    }

    #[inline]
    pub(crate) fn kind(&self, at: usize) -> Kind {
        self.queue[at].kind
    }

    /// The text of event `at`, and the same with its NUL.
    #[inline]
    pub(crate) fn text(&self, at: usize) -> (&str, &[u8]) {
        let (start, end) = self.queue[at].text;
        (&self.text[start..end], &self.text.as_bytes()[start..=end])
    }

    /// Event `at` (from [`take`](Self::take)).
    pub(crate) fn event(&self, at: usize) -> StreamEvent<'_> {
        let queued = &self.queue[at];
        let text = |(start, end): (usize, usize)| &self.text[start..end];
        match queued.kind {
            Kind::Content => StreamEvent::Content(text(queued.text)),
            Kind::Reasoning => StreamEvent::Reasoning(text(queued.text)),
            Kind::Refusal => StreamEvent::Refusal(text(queued.text)),
            Kind::ToolCall => StreamEvent::ToolCall {
                index: queued.tool_index,
                id: queued.tool_id.map(text),
                name: queued.tool_name.map(text),
                arguments: text(queued.text),
            },
        }
    }

    /// Event `at` for C: its texts with their NULs.
    pub(crate) fn event_with_nul(&self, at: usize) -> EventWithNul<'_> {
        let queued = &self.queue[at];
        let bytes = |(start, end): (usize, usize)| &self.text.as_bytes()[start..=end];
        EventWithNul {
            kind: queued.kind,
            text: bytes(queued.text),
            tool_index: queued.tool_index,
            tool_id: queued.tool_id.map(bytes),
            tool_name: queued.tool_name.map(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_texts_are_no_events_but_a_tool_call_with_an_id_is() {
        let mut events = Events::default();
        events.push_text(Kind::Content, |t| t.push_str(""));
        events.push_tool_call(0, None, None, |t| t.push_str(""));
        assert_eq!(events.queue, []);
        events.push_tool_call(1, Some("call_1"), Some("f"), |_| {});
        events.push_text(Kind::Reasoning, |t| t.push_str("think"));
        let first = events.take().unwrap();
        assert_eq!(
            events.event(first),
            StreamEvent::ToolCall {
                index: 1,
                id: Some("call_1"),
                name: Some("f"),
                arguments: ""
            }
        );
        let c = events.event_with_nul(first);
        assert_eq!(
            (c.text, c.tool_id, c.tool_name),
            (&b"\0"[..], Some(&b"call_1\0"[..]), Some(&b"f\0"[..]))
        );
        let second = events.take().unwrap();
        assert_eq!(events.event(second), StreamEvent::Reasoning("think"));
        assert_eq!(events.event_with_nul(second).text, b"think\0");
        assert_eq!(events.take(), None);
    }
}
