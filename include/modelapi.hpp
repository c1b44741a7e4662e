/*
 * modelapi.hpp: the C++17 interface of modelapi, header-only, over the C API
 * of modelapi.h (link the same libmodelapi.a or libmodelapi.so).
 *
 *   #include "modelapi.hpp"
 *
 *   modelapi::Client client = modelapi::Client::from_env();
 *   std::vector<modelapi::Message> messages{modelapi::user("Write a haiku")};
 *
 *   std::cout << client.complete(messages).content << '\n';    // one answer
 *
 *   for (std::string_view chunk : client.stream(messages)) {   // chunk by chunk
 *       std::cout << chunk << std::flush;
 *   }
 *
 *   client.stream(messages, [](std::string_view chunk) {       // callback form
 *       std::cout << chunk;
 *       return chunk != "STOP";                                // false stops it
 *   });
 *
 * Every kind of piece of a streamed answer (text, reasoning, tool calls,
 * refusals) comes as an Event, and the whole answer as chat.completion JSON:
 *
 *   modelapi::Stream stream = client.stream_json(request_with_tools);
 *   for (const modelapi::Event &event : stream.events()) {     // event by event
 *       if (event.kind == modelapi::EventKind::content) std::cout << event.text;
 *       if (event.kind == modelapi::EventKind::tool_call) {    // parallel calls'
 *           calls[event.tool_index].arguments += event.text;   // pieces interleave
 *           if (event.tool_id) calls[event.tool_index].id = *event.tool_id;
 *       }
 *   }
 *   std::string answer = stream.completion_json();             // the whole answer
 *
 *   std::string json = client.stream_events_json(request_with_tools,
 *       [](const modelapi::Event &event) { ... });             // callback form
 *
 * A thread that must never block (a game loop, a UI thread, an event loop)
 * starts a stream, which returns at once, and polls it, e.g. once a frame:
 *
 *   modelapi::Stream stream = client.stream_start(messages);  // no waiting
 *   ...
 *   modelapi::Event event;                                     // each frame:
 *   modelapi::PollResult polled;
 *   while ((polled = stream.poll(event)) == modelapi::PollResult::event) {
 *       if (event.kind == modelapi::EventKind::content) label += event.text;
 *   }
 *   if (polled == modelapi::PollResult::done) { ... }          // the end
 *   // PollResult::pending: nothing more yet, poll again next frame; an
 *   // error throws, as everywhere. A host with its own poll/select/epoll
 *   // waits on stream.waits_on()->fd between polls.
 *
 * A host that must use its own HTTP stack (an engine's, a browser's fetch,
 * a console SDK) opens a detached stream, sends its request and feeds it
 * the answer; the stream is read as any other, best with poll():
 *
 *   modelapi::Stream stream = client.stream_detached(messages); // no connection
 *   send_post(stream.request_url(), stream.request_headers(),
 *             stream.request_body());                          // the host's HTTP
 *   // as the answer arrives:
 *   stream.feed_head(status, content_type);                    // once, first
 *   stream.feed(bytes);                                        // each piece
 *   while ((polled = stream.poll(event)) == modelapi::PollResult::event) { ... }
 *   // pending: it needs more bytes; at the end of the body:
 *   stream.feed_end();                                         // then poll to done
 *
 * A request with tools, images, tool results or parameters is built with a
 * Request, never by writing JSON; embeddings and the model list sit beside
 * the chat calls:
 *
 *   modelapi::Request request;
 *   request.message("user", "What is in this picture?")
 *          .image_data(png_bytes, "image/png")
 *          .set("max_tokens", 100);
 *   modelapi::Completion answer = client.complete_json(request.json());
 *   request.assistant_turn(answer.json);                       // the next turn
 *
 *   modelapi::Embeddings vectors = client.embed({"an apple", "a pear"});
 *   const float *first = vectors.vector(0);                    // dimension() floats
 *   for (const std::string &id : client.models().ids) { ... }
 *
 * Errors are exceptions. Every failed call throws modelapi::Error (a
 * std::runtime_error) carrying the ModelApiStatus, the library's message
 * (what()) and, for MODELAPI_HTTP_ERROR, the HTTP status. Exceptions, rather
 * than status codes, because the types here are RAII types and ranges: a
 * constructor cannot return a status, and neither can the operator++ of a
 * range-for over a stream, while an exception leaves the client, the stream
 * and the cancel token cleaned up however the scope is left. A program built
 * without exceptions (-fno-exceptions) uses the C API of modelapi.h
 * directly, which reports every outcome as a status.
 *
 * Ownership and lifetime
 * - Client, Stream and Cancel own their C handle and free it in their
 *   destructor. Client and Stream are move-only; Cancel is neither copyable
 *   nor movable (other threads hold it by reference). get() hands out the
 *   C handle for the C API, still owned; Client and Stream also adopt a
 *   handle from the C API (explicit constructor) and give it up (release()).
 * - Strings passed in (messages, JSON, mock replies, settings) are read
 *   during the call only; the library copies what it keeps. The C API takes
 *   NUL-terminated strings, so text after a NUL character is not seen.
 * - A Request and an Embeddings own their C handle (move-only); the
 *   floats of Embeddings::vector() and data() are valid while it lives.
 *   Models copies what it holds.
 * - A Completion owns its strings, and so does the std::string of
 *   completion_json() and stream_events().
 * - A chunk of a Stream (a std::string_view) points into the stream: it is
 *   valid until the stream is read again (operator++, next(), begin(),
 *   next_event(), poll(), or the same on its events()) or destroyed. Copy
 *   it (std::string(chunk)) to keep it. A chunk handed to a callback is
 *   valid during that call only.
 * - An Event is a view too: its text, tool_id and tool_name point into the
 *   stream, with the lifetime of a chunk (an Event handed to a callback:
 *   during that call only; the Event poll() fills: until the next read,
 *   poll() included). Copy what you keep.
 * - The socket of Stream::waits_on() belongs to the Stream: wait on it, do
 *   not read, write or close it, and ask for it again after each poll().
 * - stream.events() on a Stream variable borrows it (the Stream must outlive
 *   the loop); on a temporary (client.stream_json(...).events()) the range
 *   takes the Stream over, so a range-for directly over it is safe.
 * - The metadata of a Stream (finish_reason(), id(), model(),
 *   request_id()) stays valid until the Stream is destroyed, and so do the
 *   request of a detached Stream (request_url(), request_headers()' views,
 *   request_body()). Bytes given to feed() are copied.
 * - A Stream does not borrow its Client: it stays valid after the Client is
 *   destroyed. A Stream opened with a Cancel uses it until the Stream is
 *   destroyed, so the Cancel must outlive the Stream.
 *
 * Threads
 * - A Client may be used by several threads at once for its const members
 *   (complete*, stream*): they share its pool of connections. The setters
 *   (timeout, max_retries, header, ca_file), moves and the destructor need
 *   the Client to themselves: set it up before sharing it.
 * - A Stream is used by one thread at a time (it may move between threads),
 *   except cancel(), which any thread may call at any time while the Stream
 *   object is alive (not being destroyed or moved).
 * - Cancel::cancel() and Cancel::reset() are safe from any thread at any
 *   time; destroy a Cancel after every call using it has returned and every
 *   Stream opened with it is destroyed.
 * - Callbacks run on the thread that called stream() or stream_events(),
 *   inside the call.
 * - The library keeps its last error per thread; an Error copies it when it
 *   is thrown, so an Error may be passed to and read on any thread.
 * - Nothing here starts a thread or writes to stdout or stderr.
 *
 * Cancelling (Cancel, Stream::cancel())
 * - A cancelled call throws Error with status MODELAPI_ABORTED
 *   (Error::cancelled()) within milliseconds, wherever it was waiting:
 *   complete() and stream() while the request is sent or the answer
 *   awaited; a range-for over a Stream or its events() (or next(),
 *   next_event()) from the operator++ waiting for the next piece; a callback
 *   stream() or stream_events() after the pieces that arrived; a Stream
 *   polled (poll()) from the poll waiting, or the next one. A callback
 *   that returns false is not an error: stream() then returns false,
 *   stream_events() an empty string.
 * - Calls given a Cancel send the messages as JSON (modelapi_*_with); the
 *   others use the message arrays of the C API (stream_events(),
 *   stream_start() and stream_detached() always send JSON:
 *   modelapi_stream_events, modelapi_stream_start, modelapi_stream_detached).
 *   They all send the same request.
 */

#ifndef MODELAPI_HPP
#define MODELAPI_HPP

#if defined(_MSVC_LANG) && _MSVC_LANG > __cplusplus
#define MODELAPI_HPP_CPLUSPLUS _MSVC_LANG
#else
#define MODELAPI_HPP_CPLUSPLUS __cplusplus
#endif
#if MODELAPI_HPP_CPLUSPLUS < 201703L
#error "modelapi.hpp needs C++17 (e.g. -std=c++17); older C++ can use modelapi.h directly"
#endif
#if !defined(__cpp_exceptions) && !defined(__EXCEPTIONS) && !defined(_CPPUNWIND)
#error "modelapi.hpp reports errors with exceptions; without exceptions, use modelapi.h directly"
#endif

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "modelapi.h"

namespace modelapi {

/* ---- statuses and errors ------------------------------------------------ */

/* The name of a status as spelled in modelapi.h, e.g. "MODELAPI_HTTP_ERROR";
   "MODELAPI_UNKNOWN_STATUS" for a status of a newer library. */
inline const char *status_name(ModelApiStatus status) noexcept
{
    switch (status) {
    case MODELAPI_OK: return "MODELAPI_OK";
    case MODELAPI_DONE: return "MODELAPI_DONE";
    case MODELAPI_INVALID_ARGUMENT: return "MODELAPI_INVALID_ARGUMENT";
    case MODELAPI_HTTP_ERROR: return "MODELAPI_HTTP_ERROR";
    case MODELAPI_TRANSPORT_ERROR: return "MODELAPI_TRANSPORT_ERROR";
    case MODELAPI_TIMEOUT: return "MODELAPI_TIMEOUT";
    case MODELAPI_INVALID_RESPONSE: return "MODELAPI_INVALID_RESPONSE";
    case MODELAPI_CLOSED: return "MODELAPI_CLOSED";
    case MODELAPI_ABORTED: return "MODELAPI_ABORTED";
    case MODELAPI_INTERNAL: return "MODELAPI_INTERNAL";
    case MODELAPI_SERVER_ERROR: return "MODELAPI_SERVER_ERROR";
    case MODELAPI_PENDING: return "MODELAPI_PENDING";
    }
    return "MODELAPI_UNKNOWN_STATUS";
}

/* The library's version, e.g. "0.1.0" (that of the library linked, which
   may be newer than MODELAPI_VERSION of the header). */
inline std::string_view version() noexcept
{
    return modelapi_version();
}

/* A failed call: what() is the library's message (for an HTTP error, the
   server's message; never the API key). */
class Error : public std::runtime_error {
public:
    Error(ModelApiStatus status, const std::string &message, int http_status = 0)
        : std::runtime_error(message), status_(status), http_status_(http_status)
    {
    }

    /* The error of the C call that just failed on this thread with status
       (modelapi_last_error(), modelapi_last_http_status()): for code that
       mixes the C API in. */
    static Error last(ModelApiStatus status)
    {
        return Error(status, modelapi_last_error(),
                     status == MODELAPI_HTTP_ERROR ? modelapi_last_http_status() : 0);
    }

    /* Why the call failed. A client that could not be created reports
       MODELAPI_INVALID_ARGUMENT (the C constructors return NULL, not a
       status; they fail on bad arguments or a bad environment). */
    ModelApiStatus status() const noexcept { return status_; }

    /* The HTTP status for MODELAPI_HTTP_ERROR (e.g. 401, 429), else 0. */
    int http_status() const noexcept { return http_status_; }

    /* Whether a Cancel or Stream::cancel() stopped the call. */
    bool cancelled() const noexcept { return status_ == MODELAPI_ABORTED; }

    /* Whether a blocking read of a detached Stream (Client::stream_detached)
       needs bytes the host has not fed yet (MODELAPI_PENDING): not a
       failure, the stream goes on; feed more and read again. */
    bool pending() const noexcept { return status_ == MODELAPI_PENDING; }

private:
    ModelApiStatus status_;
    int http_status_;
};

/* ---- messages and results ----------------------------------------------- */

/* One chat message. */
struct Message {
    std::string role;     /* "system", "user", "assistant", "tool" */
    std::string content;
};

/* Messages of each role. Call them qualified (modelapi::system(...)): with
   `using namespace modelapi`, system("...") would find std::system. */
inline Message system(std::string content) { return Message{"system", std::move(content)}; }
inline Message user(std::string content) { return Message{"user", std::move(content)}; }
inline Message assistant(std::string content) { return Message{"assistant", std::move(content)}; }

namespace detail {

/* text as a JSON string literal, appended to out. */
inline void append_json_string(std::string &out, std::string_view text)
{
    static const char hex[] = "0123456789abcdef";
    out += '"';
    for (char c : text) {
        const unsigned char byte = static_cast<unsigned char>(c);
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
            if (byte < 0x20) {
                out += "\\u00";
                out += hex[byte >> 4];
                out += hex[byte & 0x0f];
            } else {
                out += c;  // UTF-8 passes through (the library checks it)
            }
        }
    }
    out += '"';
}

}  // namespace detail

/* The messages as an OpenAI-format JSON array, e.g. to build a request
   object for complete_json/stream_json:
     "{\"messages\": " + modelapi::to_json(messages) + ", \"temperature\": 0.2}" */
inline std::string to_json(const std::vector<Message> &messages)
{
    std::string json = "[";
    for (const Message &m : messages) {
        if (json.size() > 1) {
            json += ',';
        }
        json += "{\"role\":";
        detail::append_json_string(json, m.role);
        json += ",\"content\":";
        detail::append_json_string(json, m.content);
        json += '}';
    }
    json += ']';
    return json;
}

/* text as a JSON string literal, quotes included, e.g. to build a request
   object with tools, or the tool messages that answer tool calls:
     "{\"role\":\"tool\",\"tool_call_id\":" + modelapi::json_string(id) +
     ",\"content\":" + modelapi::json_string(result) + "}" */
inline std::string json_string(std::string_view text)
{
    std::string json;
    json.reserve(text.size() + 2);
    detail::append_json_string(json, text);
    return json;
}

/* The answer of complete()/complete_json(). */
struct Completion {
    std::string content;  /* the first choice's message content ("" if none) */
    std::string json;     /* the server's chat.completion object, as sent */
};

/* Token counts, when the server sent them. */
struct Usage {
    std::uint64_t prompt_tokens = 0;
    std::uint64_t completion_tokens = 0;
    std::uint64_t total_tokens = 0;
};

/* How much a trace line matters (Client::trace); the values are those of
   ModelApiTraceLevel. */
enum class TraceLevel : int {
    error = MODELAPI_TRACE_ERROR, /* a call failed */
    warn = MODELAPI_TRACE_WARN,   /* a retry: what failed, and the wait */
    info = MODELAPI_TRACE_INFO,   /* a redirect followed */
    debug = MODELAPI_TRACE_DEBUG, /* each step: connections, TLS, requests, statuses, timings */
};

/* A trace hook: the line's level and text (valid during the call only). */
using TraceHook = std::function<void(TraceLevel, std::string_view)>;

/* What an Event is; the values are those of ModelApiEventKind. A newer
   library may hand out other values: skip an event of a kind you do not
   know. */
enum class EventKind : int {
    content = MODELAPI_EVENT_CONTENT,      /* a piece of the answer's text */
    reasoning = MODELAPI_EVENT_REASONING,  /* a piece of the model's reasoning */
    tool_call = MODELAPI_EVENT_TOOL_CALL,  /* a piece of one tool call */
    refusal = MODELAPI_EVENT_REFUSAL,      /* a piece of a refusal */
};

/* The name of a kind: "content", "reasoning", "tool_call", "refusal";
   "unknown" for a kind of a newer library. */
inline const char *event_kind_name(EventKind kind) noexcept
{
    switch (kind) {
    case EventKind::content: return "content";
    case EventKind::reasoning: return "reasoning";
    case EventKind::tool_call: return "tool_call";
    case EventKind::refusal: return "refusal";
    }
    return "unknown";
}

/* One piece of a streamed answer (of choice 0, in the order the pieces
   arrived): of its text, of the model's reasoning, of a tool call or of a
   refusal. A view: the strings point into the stream (see "Ownership"). */
struct Event {
    EventKind kind = EventKind::content;
    /* The piece; for a tool_call, a piece of the call's arguments (JSON
       text, escapes resolved; may be empty when the piece carries only the
       id or the name). Concatenated, a call's pieces are its arguments. */
    std::string_view text;
    /* tool_call: the call this piece belongs to (parallel calls interleave;
       the pieces of one call share its index); else 0. */
    std::uint32_t tool_index = 0;
    /* tool_call: the call's id and the function's name, on the piece that
       carries them (usually the call's first); else none. */
    std::optional<std::string_view> tool_id;
    std::optional<std::string_view> tool_name;
};

/* What Stream::poll() came to. A failure is no result: it throws Error. */
enum class PollResult {
    event,    /* an event came: it is in poll()'s Event argument */
    pending,  /* none yet: the stream goes on; poll again (MODELAPI_PENDING) */
    done,     /* the end of the stream, and every poll after it (MODELAPI_DONE) */
};

/* The name of a result: "event", "pending", "done". */
inline const char *poll_result_name(PollResult result) noexcept
{
    switch (result) {
    case PollResult::event: return "event";
    case PollResult::pending: return "pending";
    case PollResult::done: return "done";
    }
    return "unknown";
}

/* The socket a polled Stream waits on (Stream::waits_on()), for a host that
   waits in its own poll/select/epoll between polls. */
struct WaitsOn {
    int fd = -1;               /* the descriptor: the Stream's own; never read,
                                  write or close it */
    bool wants_write = false;  /* true: wait until it is writable (connecting,
                                  sending the request; also readable: an
                                  answer may come before the whole request
                                  is sent); false: readable */
};

namespace detail {

struct StringFree {
    void operator()(char *s) const noexcept { modelapi_string_free(s); }
};
/* A string returned by the library. */
using CString = std::unique_ptr<char, StringFree>;

inline void check(ModelApiStatus status)
{
    if (status != MODELAPI_OK) {
        throw Error::last(status);
    }
}

/* A NUL-terminated copy of an optional text (NULL when there is none). */
class OptionalText {
public:
    explicit OptionalText(std::optional<std::string_view> text)
        : present_(text.has_value()), text_(text ? std::string(*text) : std::string())
    {
    }
    const char *c_str() const noexcept { return present_ ? text_.c_str() : nullptr; }

private:
    bool present_;
    std::string text_;
};

/* The C view of messages, valid while messages is unchanged. */
inline std::vector<ModelApiMessage> borrow(const std::vector<Message> &messages)
{
    std::vector<ModelApiMessage> view;
    view.reserve(messages.size());
    for (const Message &m : messages) {
        view.push_back(ModelApiMessage{m.role.c_str(), m.content.c_str()});
    }
    return view;
}

/* The Completion of a complete call (takes the out strings in any case). */
inline Completion completion(ModelApiStatus status, char *json, char *content)
{
    CString owned_json(json);
    CString owned_content(content);
    check(status);
    Completion result;
    result.content = owned_content ? owned_content.get() : "";
    result.json = owned_json ? owned_json.get() : "";
    return result;
}

inline std::optional<std::string_view> optional_view(const char *text)
{
    if (text == nullptr) {
        return std::nullopt;
    }
    return std::string_view(text);
}

/* A chunk callback: called with a std::string_view, returns void or bool. */
template <class F>
using if_chunk_callback =
    std::enable_if_t<std::is_invocable_v<std::remove_reference_t<F> &, std::string_view>, int>;

/* What the C trampoline shares with the call: the callback, whether it
   asked to stop, and the exception it threw. */
template <class Fn>
struct CallbackState {
    Fn *fn;
    bool stopped;
    std::exception_ptr error;
};

/* The ModelApiChunkFn of a callback. No exception may unwind through the
   C library: one thrown by the callback is kept, the stream stopped (1),
   and the exception rethrown once the C call has returned. */
template <class Fn>
int trampoline(void *user_data, const char *chunk, std::size_t len) noexcept
{
    auto *state = static_cast<CallbackState<Fn> *>(user_data);
    try {
        const std::string_view view(chunk, len);
        if constexpr (std::is_void_v<std::invoke_result_t<Fn &, std::string_view>>) {
            std::invoke(*state->fn, view);
            return 0;
        } else {
            if (std::invoke(*state->fn, view)) {
                return 0;
            }
            state->stopped = true;
            return 1;
        }
    } catch (...) {
        state->error = std::current_exception();
        return 1;
    }
}

/* What a C streaming call with a callback came to: true at the end of the
   stream, false when the callback stopped it; else rethrows the callback's
   exception or throws the call's Error. */
template <class Fn>
bool callback_outcome(ModelApiStatus status, const CallbackState<Fn> &state)
{
    if (state.error) {
        std::rethrow_exception(state.error);
    }
    if (status == MODELAPI_OK) {
        return true;
    }
    if (status == MODELAPI_ABORTED && state.stopped) {
        return false;
    }
    throw Error::last(status);
}

/* Runs call(trampoline, user_data), a C streaming call with a chunk
   callback (see callback_outcome). */
template <class Fn, class Call>
bool run_callback(Fn &fn, Call &&call)
{
    using Result = std::invoke_result_t<Fn &, std::string_view>;
    static_assert(std::is_void_v<Result> || std::is_same_v<Result, bool>,
                  "a modelapi chunk callback returns void (goes on to the end) or bool "
                  "(true: go on, false: stop)");
    CallbackState<Fn> state{&fn, false, nullptr};
    const ModelApiStatus status = call(&trampoline<Fn>, static_cast<void *>(&state));
    return callback_outcome(status, state);
}

/* The Event of a C event (views of its strings). */
inline Event to_event(const ModelApiEvent &event) noexcept
{
    Event out;
    out.kind = static_cast<EventKind>(event.kind);
    out.text = event.text != nullptr ? std::string_view(event.text, event.len)
                                     : std::string_view();
    out.tool_index = event.tool_index;
    out.tool_id = optional_view(event.tool_id);
    out.tool_name = optional_view(event.tool_name);
    return out;
}

/* An event callback: called with a const Event &, returns void or bool. */
template <class F>
using if_event_callback =
    std::enable_if_t<std::is_invocable_v<std::remove_reference_t<F> &, const Event &>, int>;

/* The ModelApiEventFn of a callback, with the rules of trampoline. */
template <class Fn>
int event_trampoline(void *user_data, const ModelApiEvent *event) noexcept
{
    auto *state = static_cast<CallbackState<Fn> *>(user_data);
    try {
        const Event view = to_event(*event);
        if constexpr (std::is_void_v<std::invoke_result_t<Fn &, const Event &>>) {
            std::invoke(*state->fn, view);
            return 0;
        } else {
            if (std::invoke(*state->fn, view)) {
                return 0;
            }
            state->stopped = true;
            return 1;
        }
    } catch (...) {
        state->error = std::current_exception();
        return 1;
    }
}

/* Runs call(event_trampoline, user_data), a C streaming call with an event
   callback (see callback_outcome). */
template <class Fn, class Call>
bool run_event_callback(Fn &fn, Call &&call)
{
    using Result = std::invoke_result_t<Fn &, const Event &>;
    static_assert(std::is_void_v<Result> || std::is_same_v<Result, bool>,
                  "a modelapi event callback returns void (goes on to the end) or bool "
                  "(true: go on, false: stop)");
    CallbackState<Fn> state{&fn, false, nullptr};
    const ModelApiStatus status = call(&event_trampoline<Fn>, static_cast<void *>(&state));
    return callback_outcome(status, state);
}

}  // namespace detail

/* ---- Cancel ------------------------------------------------------------- */

/* A cancel token: pass it to complete/stream, call cancel() from any
   thread. A cancelled call throws Error with MODELAPI_ABORTED within
   milliseconds and closes its connection (the server stops generating).
   The token stays cancelled (later calls with it fail at once) until
   reset(). One token may serve several calls, e.g. "cancel everything of
   this document". Not copyable, not movable: threads share it by
   reference; it must outlive the calls and Streams using it. */
class Cancel {
public:
    Cancel() : token_(modelapi_cancel_new())
    {
        if (token_ == nullptr) {
            throw Error(MODELAPI_INTERNAL, modelapi_last_error());
        }
    }
    ~Cancel() { modelapi_cancel_free(token_); }

    Cancel(const Cancel &) = delete;
    Cancel &operator=(const Cancel &) = delete;
    Cancel(Cancel &&) = delete;
    Cancel &operator=(Cancel &&) = delete;

    /* Cancels the calls using the token. Any thread, any time. */
    void cancel() noexcept { modelapi_cancel(token_); }

    /* Makes the token usable for new calls. Any thread. */
    void reset() noexcept { modelapi_cancel_reset(token_); }

    /* The C handle, still owned by this object. */
    ModelApiCancel *get() const noexcept { return token_; }

private:
    ModelApiCancel *token_;
};

/* ---- Stream ------------------------------------------------------------- */

/* A streamed answer, read chunk by chunk as the caller asks (a pull
   stream): the request has been sent when Client::stream() returns the
   Stream (Client::stream_start() returns before, see poll()), and each
   chunk is read from the network when asked for.

     for (std::string_view chunk : stream) { ... }   // a single-pass range
     while (auto chunk = stream.next()) { ... *chunk ... }

   or event by event, with the reasoning, tool-call and refusal pieces too
   (the chunk reads above skip them):

     for (const modelapi::Event &event : stream.events()) { ... }
     while (auto event = stream.next_event()) { ... event->text ... }

   The two kinds of read may be mixed on one stream. An error in the middle
   of the stream throws from the operator++ (or next(), next_event()) that
   met it, after the pieces before it were delivered. Each piece is
   delivered once: a range-for left with break, then started again, goes on
   with the piece after. completion_json() gives the answer assembled from
   the pieces read so far, at any time (after an error too). Destroying a
   Stream in the middle closes its connection at once.

   The reads above block until a piece arrives. poll() never blocks longer
   than it is told to (by default not at all), for a thread that must not
   block, with a Stream of Client::stream_start() (or any other):

     modelapi::Event event;
     switch (stream.poll(event)) {              // or poll(event, 16ms)
     case modelapi::PollResult::event: ... event.text ...; break;
     case modelapi::PollResult::pending: break;   // nothing yet: poll again
     case modelapi::PollResult::done: break;      // the end
     }

   Move-only; moving it invalidates its iterators (and a borrowing
   events() range). An empty Stream (default-constructed or moved from) has
   no chunks, no events and no metadata. */
class Stream {
public:
    class Events;

    /* An input iterator over the chunks; *it is valid until the next read
       of the stream. Copies share the stream's position. */
    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = std::string_view;
        using difference_type = std::ptrdiff_t;
        using pointer = const std::string_view *;
        using reference = const std::string_view &;

        /* What it++ returns: a copy of the chunk it was at. Prefer ++it. */
        class postfix {
        public:
            const std::string &operator*() const noexcept { return chunk_; }

        private:
            friend class iterator;
            explicit postfix(std::string chunk) : chunk_(std::move(chunk)) {}
            std::string chunk_;
        };

        iterator() noexcept = default;

        reference operator*() const noexcept { return stream_->chunk_; }
        pointer operator->() const noexcept { return &stream_->chunk_; }

        /* Reads the next chunk (modelapi_stream_next): blocks until it
           arrives; at the end, becomes end(); throws Error on a failure
           (then the stream is over). */
        iterator &operator++()
        {
            Stream *stream = stream_;
            stream_ = nullptr;  // end() if next() throws, too
            if (stream->next()) {
                stream_ = stream;
            }
            return *this;
        }
        postfix operator++(int)
        {
            postfix old{std::string(stream_->chunk_)};
            ++*this;
            return old;
        }

        friend bool operator==(const iterator &a, const iterator &b) noexcept
        {
            return a.stream_ == b.stream_;
        }
        friend bool operator!=(const iterator &a, const iterator &b) noexcept
        {
            return a.stream_ != b.stream_;
        }

    private:
        friend class Stream;
        explicit iterator(Stream *stream) noexcept : stream_(stream) {}
        Stream *stream_ = nullptr;  // nullptr: the end
    };

    /* An input iterator over the events (see events()); *it is valid until
       the next read of the stream. Copies share the stream's position. */
    class event_iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = Event;
        using difference_type = std::ptrdiff_t;
        using pointer = const Event *;
        using reference = const Event &;

        /* What it++ returns: a copy of the event it was at, whose *
           (an Event) points into the copy: use it within the expression
           (*it++), or copy its strings. Prefer ++it. */
        class postfix {
        public:
            Event operator*() const
            {
                Event event;
                event.kind = kind_;
                event.text = text_;
                event.tool_index = tool_index_;
                if (id_) {
                    event.tool_id = std::string_view(*id_);
                }
                if (name_) {
                    event.tool_name = std::string_view(*name_);
                }
                return event;
            }

        private:
            friend class event_iterator;
            explicit postfix(const Event &event)
                : kind_(event.kind), text_(event.text), tool_index_(event.tool_index),
                  id_(event.tool_id ? std::optional<std::string>(std::string(*event.tool_id))
                                    : std::nullopt),
                  name_(event.tool_name
                            ? std::optional<std::string>(std::string(*event.tool_name))
                            : std::nullopt)
            {
            }
            EventKind kind_;
            std::string text_;
            std::uint32_t tool_index_;
            std::optional<std::string> id_;
            std::optional<std::string> name_;
        };

        event_iterator() noexcept = default;

        reference operator*() const noexcept { return stream_->event_; }
        pointer operator->() const noexcept { return &stream_->event_; }

        /* Reads the next event (modelapi_stream_next_event): blocks until
           it arrives; at the end, becomes the end; throws Error on a
           failure (then the stream is over). */
        event_iterator &operator++()
        {
            Stream *stream = stream_;
            stream_ = nullptr;  // the end if next_event() throws, too
            if (stream->next_event()) {
                stream_ = stream;
            }
            return *this;
        }
        postfix operator++(int)
        {
            postfix old(stream_->event_);
            ++*this;
            return old;
        }

        friend bool operator==(const event_iterator &a, const event_iterator &b) noexcept
        {
            return a.stream_ == b.stream_;
        }
        friend bool operator!=(const event_iterator &a, const event_iterator &b) noexcept
        {
            return a.stream_ != b.stream_;
        }

    private:
        friend class Stream;
        explicit event_iterator(Stream *stream) noexcept : stream_(stream) {}
        Stream *stream_ = nullptr;  // nullptr: the end
    };

    Stream() noexcept = default;

    /* Adopts a stream of modelapi_stream_open* (NULL: an empty Stream). */
    explicit Stream(ModelApiStream *stream) noexcept : stream_(stream) {}

    ~Stream() { modelapi_stream_free(stream_); }

    Stream(const Stream &) = delete;
    Stream &operator=(const Stream &) = delete;

    Stream(Stream &&other) noexcept
        : stream_(std::exchange(other.stream_, nullptr)),
          chunk_(std::exchange(other.chunk_, std::string_view())),
          event_(std::exchange(other.event_, Event()))
    {
    }
    Stream &operator=(Stream &&other) noexcept
    {
        if (this != &other) {
            modelapi_stream_free(stream_);
            stream_ = std::exchange(other.stream_, nullptr);
            chunk_ = std::exchange(other.chunk_, std::string_view());
            event_ = std::exchange(other.event_, Event());
        }
        return *this;
    }

    /* The next chunk, or std::nullopt at the end (and on every later call).
       Blocks until a chunk arrives. Throws Error on a failure (including
       MODELAPI_ABORTED after a cancel), after which the stream is over. */
    std::optional<std::string_view> next()
    {
        chunk_ = std::string_view();
        event_ = Event();
        if (stream_ == nullptr) {
            return std::nullopt;
        }
        const char *chunk = nullptr;
        std::size_t len = 0;
        const ModelApiStatus status = modelapi_stream_next(stream_, &chunk, &len);
        if (status == MODELAPI_DONE) {
            return std::nullopt;
        }
        detail::check(status);
        chunk_ = std::string_view(chunk, len);
        return chunk_;
    }

    /* Reads the first chunk not read yet; end() when there is none. */
    iterator begin()
    {
        return next() ? iterator(this) : iterator();
    }
    iterator end() noexcept { return iterator(); }

    /* The next event: a piece of the text, of the reasoning, of a tool call
       or of a refusal (see Event), or std::nullopt at the end (and on every
       later call). Blocks until one arrives. Throws Error on a failure, as
       next() does, after which the stream is over. */
    std::optional<Event> next_event()
    {
        chunk_ = std::string_view();
        event_ = Event();
        if (stream_ == nullptr) {
            return std::nullopt;
        }
        ModelApiEvent event{};
        const ModelApiStatus status = modelapi_stream_next_event(stream_, &event);
        if (status == MODELAPI_DONE) {
            return std::nullopt;
        }
        detail::check(status);
        event_ = detail::to_event(event);
        return event_;
    }

    /* The next event if one can be had within wait (by default 0: at once;
       a poll with a wait of 0 makes no blocking system call):
       - PollResult::event: out is set to it (a view, valid until the next
         read of the stream, as next_event()'s);
       - PollResult::pending: none came in time; the stream goes on. Poll
         again, e.g. at the next frame or once waits_on()'s socket is ready;
       - PollResult::done: the end, and every later call (an empty Stream
         is done).
       out is an empty Event on every result but event. A failure throws
       Error, after which the stream is over (later polls are done): the
       network and HTTP errors of a Stream of stream_start() come from a
       poll (e.g. MODELAPI_HTTP_ERROR with http_status() 401), as do
       MODELAPI_ABORTED after a cancel and MODELAPI_TIMEOUT when the
       client's timeout passes with no progress (time counted across
       polls). A retry's backoff is time spent pending. A negative wait is
       0; one longer than 2^32-1 ms (49 days) is cut to that. Works on
       every Stream, however it was opened, and may be mixed with the
       blocking reads. */
    PollResult poll(Event &out, std::chrono::milliseconds wait = std::chrono::milliseconds::zero())
    {
        chunk_ = std::string_view();
        event_ = Event();
        out = Event();
        if (stream_ == nullptr) {
            return PollResult::done;
        }
        constexpr std::uint32_t longest = std::numeric_limits<std::uint32_t>::max();
        const auto ms = wait.count();
        const std::uint32_t wait_ms =
            ms <= 0 ? 0
                    : (static_cast<std::uint64_t>(ms) >= longest ? longest
                                                                 : static_cast<std::uint32_t>(ms));
        ModelApiEvent event{};
        const ModelApiStatus status = modelapi_stream_poll(stream_, wait_ms, &event);
        if (status == MODELAPI_PENDING) {
            return PollResult::pending;
        }
        if (status == MODELAPI_DONE) {
            return PollResult::done;
        }
        detail::check(status);
        event_ = detail::to_event(event);
        out = event_;
        return PollResult::event;
    }

    /* The socket the stream waits on between polls, for a host that waits
       in its own poll/select/epoll: its descriptor, and whether to wait
       for it to be writable (connecting, sending the request) or readable;
       std::nullopt when the stream waits on no socket (canned replies, a
       retry's backoff, a finished or empty Stream): then poll again after
       wake_in(). Ask again after every poll (a
       retry or a redirect changes the socket). The Stream may hold events
       it has already read, so after a wake-up poll until
       PollResult::pending before waiting again. */
    /* The longest the host may wait (on waits_on()'s socket, or asleep when
       there is none) before it must poll again, whatever the socket does:
       zero when a poll has something to do now, else the time until a
       retry's backoff ends or the stream's timeout would expire;
       std::nullopt once the stream is over. Use it as the timeout of the
       host's poll/epoll_wait (as libcurl's curl_multi_timeout). */
    std::optional<std::chrono::milliseconds> wake_in() const noexcept
    {
        const std::int64_t ms = modelapi_stream_wake_ms(stream_);
        if (ms < 0) {
            return std::nullopt;
        }
        return std::chrono::milliseconds(ms);
    }

    std::optional<WaitsOn> waits_on() const noexcept
    {
        int wants_write = 0;
        const int fd = modelapi_stream_fd(stream_, &wants_write);
        if (fd < 0) {
            return std::nullopt;
        }
        WaitsOn waits;
        waits.fd = fd;
        waits.wants_write = wants_write != 0;
        return waits;
    }

    /* ---- detached streams (Client::stream_detached): the host carries
       the bytes ---------------------------------------------------------

       The request to send: POST request_body() to request_url() with
       request_headers(): the JSON content type, Accept, the User-Agent,
       Authorization with the key (send them to this URL only) and the
       client's own headers; Host and Content-Length are the host's HTTP
       stack's to write. The views belong to the Stream (valid until it is
       destroyed; moving the Stream keeps them). On a Stream that is not
       detached they throw Error (MODELAPI_INVALID_ARGUMENT).

       The answer, fed as it arrives: feed_head() once (the final status,
       not a 1xx, and the Content-Type, std::nullopt if none), then feed()
       with the body's pieces (transfer framing and content encoding
       removed) of any size, split anywhere, then feed_end(). A non-2xx
       status makes the body an error answer: the reads throw Error
       (MODELAPI_HTTP_ERROR, http_status(), the server's message) once it
       has ended. Out of order, or on a Stream that is not detached: Error
       (MODELAPI_INVALID_ARGUMENT), and nothing changes.

       Reading: an event is readable as soon as the bytes that complete it
       are fed. poll() returns PollResult::pending while it needs bytes not
       fed yet (poll with no wait: no byte arrives while it waits). The
       blocking reads (range-for, next(), next_event(), events()) cannot
       wait for the host: they throw Error with status MODELAPI_PENDING
       (Error::pending()) instead, and the stream goes on: feed more, then
       read again (a range-for is left by the exception; a new begin() goes
       on with the next piece). After feed_end() no read is pending: a
       stream with neither [DONE] nor a finish_reason throws
       MODELAPI_TRANSPORT_ERROR (cut short). waits_on() is std::nullopt:
       timeouts, retries and redirects are the host's. With canned replies
       the events are there at once, and what is fed is ignored. */

    /* Whether the Stream is detached (its request is the host's to send). */
    bool detached() const noexcept { return modelapi_stream_request_url(stream_) != nullptr; }

    std::string_view request_url() const
    {
        const char *url = modelapi_stream_request_url(stream_);
        if (url == nullptr) {
            throw Error(MODELAPI_INVALID_ARGUMENT,
                        "this stream is not detached: the library carries its bytes "
                        "(open one with Client::stream_detached)");
        }
        return url;
    }
    /* The headers as (name, value) pairs, in the order to send them. */
    std::vector<std::pair<std::string_view, std::string_view>> request_headers() const
    {
        request_url();  // throws on a Stream that is not detached
        const std::size_t count = modelapi_stream_request_header_count(stream_);
        std::vector<std::pair<std::string_view, std::string_view>> headers;
        headers.reserve(count);
        for (std::size_t i = 0; i < count; ++i) {
            const char *name = nullptr;
            const char *value = nullptr;
            detail::check(modelapi_stream_request_header(stream_, i, &name, &value));
            headers.emplace_back(name, value);
        }
        return headers;
    }
    /* The JSON body (followed by a NUL that the view does not count). */
    std::string_view request_body() const
    {
        const char *body = nullptr;
        std::size_t len = 0;
        detail::check(modelapi_stream_request_body(stream_, &body, &len));
        return std::string_view(body, len);
    }

    void feed_head(int http_status,
                   std::optional<std::string_view> content_type = std::nullopt)
    {
        const detail::OptionalText type(content_type);
        detail::check(modelapi_stream_feed_head(stream_, http_status, type.c_str()));
    }
    /* The bytes are copied. */
    void feed(const char *bytes, std::size_t len)
    {
        detail::check(modelapi_stream_feed(stream_, bytes, len));
    }
    void feed(std::string_view bytes) { feed(bytes.data(), bytes.size()); }
    void feed_end() { detail::check(modelapi_stream_feed_end(stream_)); }

    /* The events as a single-pass range, for a range-for:
         for (const modelapi::Event &event : stream.events()) { ... }
       Its begin() reads the first event not read yet. On a Stream variable
       the range borrows the Stream; on a temporary it takes the Stream over
       (Events::stream() reaches it), so that
         for (const modelapi::Event &event : client.stream_json(request).events())
       is safe. Defined below, once Events is. */
    Events events() &;
    Events events() &&;

    /* The answer assembled from every piece read so far, as a
       chat.completion object (the shape of Completion::json): the content,
       reasoning_content, tool_calls (id, function name, the arguments'
       pieces concatenated, in index order) and refusal, each only when some
       arrived, with finish_reason, id, model and usage as the server sent
       them. Works at any time: in the middle of the stream, at its end, and
       after a read threw (what arrived before the error). Throws Error
       (MODELAPI_INVALID_ARGUMENT) on an empty Stream. */
    std::string completion_json() const
    {
        char *json = nullptr;
        const ModelApiStatus status = modelapi_stream_completion_json(stream_, &json);
        detail::CString owned(json);
        detail::check(status);
        return owned ? std::string(owned.get()) : std::string();
    }

    /* Stops the stream from any thread, also while another thread waits in
       operator++/next() (or poll()): that read throws Error
       (MODELAPI_ABORTED) within milliseconds; the connection is closed. The
       Stream must stay alive (not destroyed, not moved) during this call. */
    void cancel() noexcept { modelapi_stream_cancel(stream_); }

    /* Metadata, as far as the stream has been read (complete at its end);
       the texts stay valid until the Stream is destroyed. Use them on the
       thread reading the stream. */
    std::optional<std::string_view> finish_reason() const
    {
        return detail::optional_view(modelapi_stream_finish_reason(stream_));
    }
    std::optional<std::string_view> id() const
    {
        return detail::optional_view(modelapi_stream_id(stream_));
    }
    std::optional<std::string_view> model() const
    {
        return detail::optional_view(modelapi_stream_model(stream_));
    }
    /* The x-request-id header of the response. */
    std::optional<std::string_view> request_id() const
    {
        return detail::optional_view(modelapi_stream_request_id(stream_));
    }
    /* The api_base of the endpoint that served the stream (the client's
       own or a fallback's), once one produced its first event. */
    std::optional<std::string_view> endpoint() const
    {
        return detail::optional_view(modelapi_stream_endpoint(stream_));
    }
    /* The time from the stream's start to its first event, once it came. */
    std::optional<std::chrono::milliseconds> first_event() const
    {
        const std::int64_t ms = modelapi_stream_first_event_ms(stream_);
        if (ms < 0) {
            return std::nullopt;
        }
        return std::chrono::milliseconds(ms);
    }
    /* When the server sent them: ask with
       "stream_options": {"include_usage": true} in a stream_json request. */
    std::optional<Usage> usage() const
    {
        Usage usage;
        if (modelapi_stream_usage(stream_, &usage.prompt_tokens, &usage.completion_tokens,
                                  &usage.total_tokens) == 0) {
            return std::nullopt;
        }
        return usage;
    }

    /* The C handle, still owned by this object (NULL when empty). */
    ModelApiStream *get() const noexcept { return stream_; }
    /* Gives the C handle up (free it with modelapi_stream_free). */
    ModelApiStream *release() noexcept
    {
        chunk_ = std::string_view();
        event_ = Event();
        return std::exchange(stream_, nullptr);
    }

private:
    ModelApiStream *stream_ = nullptr;
    std::string_view chunk_;  // the current chunk, in the C stream's buffer
    Event event_;             // the current event, its views in that buffer
};

/* The events of a Stream as a single-pass range (see Stream::events()):
   borrowing a Stream, or owning one taken over from a temporary. Move-only;
   moving it invalidates its iterators. */
class Stream::Events {
public:
    /* Reads the first event not read yet; end() when there is none. */
    event_iterator begin()
    {
        Stream &events_of = stream();
        return events_of.next_event() ? event_iterator(&events_of) : event_iterator();
    }
    event_iterator end() noexcept { return event_iterator(); }

    /* The Stream the events come from (the one borrowed, or the one owned),
       e.g. for its completion_json() after the loop. */
    Stream &stream() noexcept { return borrowed_ != nullptr ? *borrowed_ : owned_; }

private:
    friend class Stream;
    explicit Events(Stream &borrowed) noexcept : borrowed_(&borrowed) {}
    explicit Events(Stream &&owned) noexcept : owned_(std::move(owned)) {}

    Stream *borrowed_ = nullptr;  // nullptr: the events of owned_
    Stream owned_;
};

inline Stream::Events Stream::events() &
{
    return Events(*this);
}

inline Stream::Events Stream::events() &&
{
    return Events(std::move(*this));
}

/* ---- Request: a request built without writing JSON ------------------- */

/* A chat request built piece by piece: messages by role, images, the
   assistant turn of an answer, tool results, parameters. Every string is
   escaped by the library; json() goes to every *_json call (complete_json,
   stream_json, stream_start, ...). Move-only; used by one thread at a time.
   A call that throws leaves the request as it was.

     modelapi::Request request;
     request.message("system", "You are a terse NPC.")
            .message("user", "Where is the inn?")
            .set("temperature", 0.2)
            .set("max_tokens", 64);
     modelapi::Completion answer = client.complete_json(request.json());
     request.assistant_turn(answer.json).message("user", "Thanks!");       */
class Request {
public:
    Request() : request_(modelapi_request_new())
    {
        if (request_ == nullptr) {
            throw Error(MODELAPI_INTERNAL, modelapi_last_error());
        }
    }
    ~Request() { modelapi_request_free(request_); }
    Request(const Request &) = delete;
    Request &operator=(const Request &) = delete;
    Request(Request &&other) noexcept : request_(std::exchange(other.request_, nullptr)) {}
    Request &operator=(Request &&other) noexcept
    {
        if (this != &other) {
            modelapi_request_free(request_);
            request_ = std::exchange(other.request_, nullptr);
        }
        return *this;
    }

    /* A message of role ("system", "user", "assistant", "tool", ...). */
    Request &message(const std::string &role, const std::string &text)
    {
        detail::check(modelapi_request_add_message(request_, role.c_str(), text.c_str()));
        return *this;
    }
    /* An image by URL ("https://..." or "data:...") on the last message,
       which must be a user message. */
    Request &image_url(const std::string &url)
    {
        detail::check(modelapi_request_add_image_url(request_, url.c_str()));
        return *this;
    }
    /* An image from its bytes (sent as a base64 data: URL of mime_type,
       e.g. "image/png") on the last message, which must be a user message. */
    Request &image_data(const void *bytes, std::size_t len, const std::string &mime_type)
    {
        detail::check(modelapi_request_add_image_data(request_, bytes, len, mime_type.c_str()));
        return *this;
    }
    Request &image_data(std::string_view bytes, const std::string &mime_type)
    {
        return image_data(bytes.data(), bytes.size(), mime_type);
    }
    /* The assistant turn of a finished answer given as chat.completion JSON
       (Completion::json, Stream::completion_json()): content, tool calls,
       refusal; its reasoning too when with_reasoning. */
    Request &assistant_turn(const std::string &completion_json, bool with_reasoning = false)
    {
        detail::check(modelapi_request_add_assistant_json(request_, completion_json.c_str(),
                                                          with_reasoning ? 1 : 0));
        return *this;
    }
    /* The assistant turn of a stream, as assembled so far. */
    Request &assistant_turn(const Stream &stream, bool with_reasoning = false)
    {
        detail::check(modelapi_request_add_assistant_stream(request_, stream.get(),
                                                            with_reasoning ? 1 : 0));
        return *this;
    }
    /* The result of the tool call tool_call_id. */
    Request &tool_result(const std::string &tool_call_id, const std::string &content)
    {
        detail::check(
            modelapi_request_add_tool_result(request_, tool_call_id.c_str(), content.c_str()));
        return *this;
    }
    /* A message written as JSON (an object with a "role" string). */
    Request &message_json(const std::string &message)
    {
        detail::check(modelapi_request_add_message_json(request_, message.c_str()));
        return *this;
    }

    /* Parameters ("temperature", "max_tokens", "model", ...); setting one
       again replaces it. "messages" and "stream" cannot be set. */
    Request &set(const std::string &name, bool value)
    {
        detail::check(modelapi_request_set_bool(request_, name.c_str(), value ? 1 : 0));
        return *this;
    }
    template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
    Request &set(const std::string &name, T value)
    {
        detail::check(
            modelapi_request_set_int(request_, name.c_str(), static_cast<std::int64_t>(value)));
        return *this;
    }
    template <class T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
    Request &set(const std::string &name, T value)
    {
        detail::check(
            modelapi_request_set_number(request_, name.c_str(), static_cast<double>(value)));
        return *this;
    }
    Request &set(const std::string &name, const char *value)
    {
        detail::check(modelapi_request_set_string(request_, name.c_str(), value));
        return *this;
    }
    Request &set(const std::string &name, const std::string &value)
    {
        return set(name, value.c_str());
    }
    /* A parameter written as JSON ("tools", "response_format",
       "stream_options", ...); bad JSON throws MODELAPI_INVALID_ARGUMENT. */
    Request &set_json(const std::string &name, const std::string &json)
    {
        detail::check(modelapi_request_set_json(request_, name.c_str(), json.c_str()));
        return *this;
    }

    /* The request as JSON, for the *_json calls. */
    std::string json() const
    {
        char *out = nullptr;
        const ModelApiStatus status = modelapi_request_json(request_, &out);
        detail::CString owned(out);
        detail::check(status);
        return std::string(owned.get());
    }

    /* The C handle, still owned by this object (NULL once moved from). */
    ModelApiRequest *get() const noexcept { return request_; }

private:
    ModelApiRequest *request_;
};

/* ---- embeddings and the model list -------------------------------------- */

/* The vectors of Client::embed: one per input, in order, all of
   dimension() floats. Move-only; the pointers it hands out are valid
   while it lives. */
class Embeddings {
public:
    explicit Embeddings(ModelApiEmbeddings *embeddings) noexcept : embeddings_(embeddings) {}
    ~Embeddings() { modelapi_embeddings_free(embeddings_); }
    Embeddings(const Embeddings &) = delete;
    Embeddings &operator=(const Embeddings &) = delete;
    Embeddings(Embeddings &&other) noexcept
        : embeddings_(std::exchange(other.embeddings_, nullptr))
    {
    }
    Embeddings &operator=(Embeddings &&other) noexcept
    {
        if (this != &other) {
            modelapi_embeddings_free(embeddings_);
            embeddings_ = std::exchange(other.embeddings_, nullptr);
        }
        return *this;
    }

    /* How many vectors (the number of inputs). */
    std::size_t size() const noexcept { return modelapi_embeddings_count(embeddings_); }
    /* The floats in each vector. */
    std::size_t dimension() const noexcept { return modelapi_embeddings_dimension(embeddings_); }
    /* The vector of input index (dimension() floats); throws
       std::out_of_range past the end. */
    const float *vector(std::size_t index) const
    {
        const float *v = modelapi_embeddings_vector(embeddings_, index);
        if (v == nullptr) {
            throw std::out_of_range("modelapi::Embeddings::vector: index out of range");
        }
        return v;
    }
    /* A copy of the vector of input index. */
    std::vector<float> at(std::size_t index) const
    {
        const float *v = vector(index);
        return std::vector<float>(v, v + dimension());
    }
    /* Every vector, one after the other (size() * dimension() floats). */
    const float *data() const noexcept { return modelapi_embeddings_data(embeddings_); }

    ModelApiEmbeddings *get() const noexcept { return embeddings_; }

private:
    ModelApiEmbeddings *embeddings_;
};

/* The models a server offers (Client::models). */
struct Models {
    std::vector<std::string> ids;  /* the names to ask for, in the server's order */
    std::string json;              /* the server's answer, as sent */
};

/* ---- Client ------------------------------------------------------------- */

/* A client of one server and model. Move-only; closes its connections in
   its destructor. */
class Client {
public:
    /* A client of model at api_base (e.g. "http://localhost:8000" or
       "https://api.openai.com/v1"); no api_key: no Authorization header.
       DEBUG_MOCK_RESPONSES is read now. Throws Error on bad arguments. */
    Client(std::string_view model, std::string_view api_base,
           std::optional<std::string_view> api_key = std::nullopt)
        : api_(nullptr)
    {
        const std::string model_text(model);
        const std::string base_text(api_base);
        const detail::OptionalText key(api_key);
        api_ = adopt(modelapi_new(model_text.c_str(), base_text.c_str(), key.c_str()));
    }

    /* The same, with the key as a C string: NULL is no key (e.g.
       std::getenv("MY_API_KEY")). */
    Client(std::string_view model, std::string_view api_base, const char *api_key)
        : Client(model, api_base,
                 api_key ? std::optional<std::string_view>(api_key) : std::nullopt)
    {
    }

    /* A client of MODEL_API_URL / MODEL_NAME / MODEL_API_KEY (optional).
       Throws Error when they are missing or bad. */
    static Client from_env() { return Client(modelapi_from_env()); }

    /* Adopts a client of modelapi_new/modelapi_from_env. NULL (a failed C
       constructor) throws Error with this thread's modelapi_last_error(). */
    explicit Client(ModelApi *api) : api_(adopt(api)) {}

    ~Client() { modelapi_close(api_); }

    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;

    Client(Client &&other) noexcept
        : api_(std::exchange(other.api_, nullptr)), trace_(std::move(other.trace_))
    {
    }
    Client &operator=(Client &&other) noexcept
    {
        if (this != &other) {
            modelapi_close(api_);
            api_ = std::exchange(other.api_, nullptr);
            trace_ = std::move(other.trace_);
        }
        return *this;
    }

    /* ---- settings: before the client is shared; each returns *this ---- */

    /* The longest single wait on the network (default 60 s); at least 1 ms.
       A stream that keeps sending is never cut. */
    Client &timeout(std::chrono::milliseconds timeout)
    {
        const auto ms = timeout.count();
        detail::check(modelapi_set_timeout_ms(api_, ms > 0 ? static_cast<std::uint64_t>(ms) : 0));
        return *this;
    }
    /* The longest wait from sending a request to its first event (content,
       reasoning, tool call or refusal; keep-alive comments and role-only
       deltas do not count); zero (the default) turns it off. Past it the
       attempt fails (MODELAPI_TIMEOUT) or the next fallback is tried. */
    Client &first_token_timeout(std::chrono::milliseconds timeout)
    {
        const auto ms = timeout.count();
        detail::check(modelapi_set_first_token_timeout_ms(
            api_, ms > 0 ? static_cast<std::uint64_t>(ms) : 0));
        return *this;
    }
    /* Adds an endpoint tried, in order, when the current one fails before
       any event was handed out (connect or TLS failure, 5xx or 429 after
       its retries, a timeout); api_key (empty: none) goes to it alone. */
    Client &fallback(std::string_view api_base, std::string_view model,
                     std::string_view api_key = std::string_view())
    {
        const std::string base(api_base);
        const std::string name(model);
        const std::string key(api_key);
        detail::check(modelapi_add_fallback(api_, base.c_str(), name.c_str(),
                                            key.empty() ? nullptr : key.c_str()));
        return *this;
    }
    /* When the current endpoint has not produced its first event after
       delay, the next fallback is started too; the first to produce an
       event serves the stream, the other is closed at once. Zero (the
       default) turns it off. */
    Client &hedge(std::chrono::milliseconds delay)
    {
        const auto ms = delay.count();
        detail::check(modelapi_set_hedge_ms(api_, ms > 0 ? static_cast<std::uint64_t>(ms) : 0));
        return *this;
    }
    /* How often a failed request is sent again (default 2). */
    Client &max_retries(std::uint32_t retries)
    {
        detail::check(modelapi_set_max_retries(api_, retries));
        return *this;
    }
    /* A header sent with every request (e.g. "OpenAI-Organization"). */
    Client &header(std::string_view name, std::string_view value)
    {
        const std::string name_text(name);
        const std::string value_text(value);
        detail::check(modelapi_set_header(api_, name_text.c_str(), value_text.c_str()));
        return *this;
    }
    /* Trusts the CA certificates of a PEM file (read now) instead of the
       built-in roots. */
    Client &ca_file(std::string_view pem_path)
    {
        const std::string path(pem_path);
        detail::check(modelapi_set_ca_file(api_, path.c_str()));
        return *this;
    }
    /* Sends every request through the HTTP proxy at url ("http://host:port"
       or "http://user:password@host:port"); "" removes it. HTTPS goes
       through a CONNECT tunnel, verified end to end. Environment proxies are
       never used. */
    Client &proxy(std::string_view url)
    {
        const std::string text(url);
        detail::check(modelapi_set_proxy(api_, text.c_str()));
        return *this;
    }
    /* Adds an entry to the client's own name table, consulted before the
       system's resolver, as curl's --resolve: "HOST:PORT:ADDRESS[,ADDRESS...]"
       (an IPv6 address in brackets). Requests to HOST:PORT (the server, a
       redirect's target, the proxy) connect to those addresses in that
       order, falling back to the next when one fails or has not answered
       within 250 ms; TLS still verifies HOST. A malformed entry throws
       (MODELAPI_INVALID_ARGUMENT). */
    Client &resolve(std::string_view entry)
    {
        const std::string text(entry);
        detail::check(modelapi_set_resolve(api_, text.c_str()));
        return *this;
    }
    /* Empties the client's name table (see resolve). */
    Client &clear_resolve()
    {
        detail::check(modelapi_set_resolve(api_, nullptr));
        return *this;
    }
    /* Replaces the client's canned replies, written as DEBUG_MOCK_RESPONSES
       is (a JSON array of strings and of objects standing for assistant
       messages), in place of that variable: each answers one call, in
       order, with no network traffic. A malformed value throws
       (MODELAPI_INVALID_ARGUMENT). */
    Client &mock_responses(std::string_view replies_json)
    {
        const std::string text(replies_json);
        detail::check(modelapi_set_mock_responses(api_, text.c_str()));
        return *this;
    }
    /* Leaves the client no canned replies, whatever DEBUG_MOCK_RESPONSES
       says. */
    Client &clear_mock_responses()
    {
        detail::check(modelapi_set_mock_responses(api_, nullptr));
        return *this;
    }
    /* Calls hook with a line for each step of every request (connections,
       TLS, requests and sizes, statuses and times, retries, redirects, a
       stream's first event and end, errors); never the key or message
       content. The hook runs on the thread making the call, so on several
       threads at once when the client is shared, and must not throw (an
       exception is swallowed) nor call back into this client. An empty
       hook turns tracing off. */
    Client &trace(TraceHook hook)
    {
        if (!hook) {
            detail::check(modelapi_set_trace(api_, nullptr, nullptr));
            trace_.reset();
            return *this;
        }
        auto kept = std::make_unique<TraceHook>(std::move(hook));
        detail::check(modelapi_set_trace(api_, &Client::on_trace, kept.get()));
        trace_ = std::move(kept);  // the old hook is no longer called
        return *this;
    }

    /* ---- calls: several threads may make them at once ----------------- */

    /* One chat completion. mock is sent as mock_response (servers such as
       LiteLLM answer with it). */
    Completion complete(const std::vector<Message> &messages,
                        std::optional<std::string_view> mock = std::nullopt) const
    {
        const std::vector<ModelApiMessage> view = detail::borrow(messages);
        const detail::OptionalText mock_text(mock);
        char *json = nullptr;
        char *content = nullptr;
        const ModelApiStatus status = modelapi_complete(api_, view.data(), view.size(),
                                                        mock_text.c_str(), &json, &content);
        return detail::completion(status, json, content);
    }
    Completion complete(const std::vector<Message> &messages, Cancel &cancel,
                        std::optional<std::string_view> mock = std::nullopt) const
    {
        return complete_json(to_json(messages), cancel, mock);
    }

    /* One chat completion of a JSON request: an array of OpenAI messages,
       or a request object whose other fields (temperature, max_tokens,
       tools, ...) pass through. Bad JSON throws MODELAPI_INVALID_ARGUMENT. */
    Completion complete_json(std::string_view request_json,
                             std::optional<std::string_view> mock = std::nullopt) const
    {
        const std::string request(request_json);
        const detail::OptionalText mock_text(mock);
        char *json = nullptr;
        char *content = nullptr;
        const ModelApiStatus status =
            modelapi_complete_json(api_, request.c_str(), mock_text.c_str(), &json, &content);
        return detail::completion(status, json, content);
    }
    Completion complete_json(std::string_view request_json, Cancel &cancel,
                             std::optional<std::string_view> mock = std::nullopt) const
    {
        const std::string request(request_json);
        const detail::OptionalText mock_text(mock);
        char *json = nullptr;
        char *content = nullptr;
        const ModelApiStatus status = modelapi_complete_with(
            api_, request.c_str(), mock_text.c_str(), cancel.get(), &json, &content);
        return detail::completion(status, json, content);
    }

    /* A pull stream (see Stream): the request is sent now, so HTTP errors
       such as 401 throw here. */
    [[nodiscard]] Stream stream(const std::vector<Message> &messages,
                                std::optional<std::string_view> mock = std::nullopt) const
    {
        const std::vector<ModelApiMessage> view = detail::borrow(messages);
        const detail::OptionalText mock_text(mock);
        ModelApiStream *stream = nullptr;
        detail::check(
            modelapi_stream_open(api_, view.data(), view.size(), mock_text.c_str(), &stream));
        return Stream(stream);
    }
    /* Cancellable: the Cancel must outlive the Stream. */
    [[nodiscard]] Stream stream(const std::vector<Message> &messages, Cancel &cancel,
                                std::optional<std::string_view> mock = std::nullopt) const
    {
        return stream_json(to_json(messages), cancel, mock);
    }
    [[nodiscard]] Stream stream_json(std::string_view request_json,
                                     std::optional<std::string_view> mock = std::nullopt) const
    {
        const std::string request(request_json);
        const detail::OptionalText mock_text(mock);
        ModelApiStream *stream = nullptr;
        detail::check(
            modelapi_stream_open_json(api_, request.c_str(), mock_text.c_str(), &stream));
        return Stream(stream);
    }
    [[nodiscard]] Stream stream_json(std::string_view request_json, Cancel &cancel,
                                     std::optional<std::string_view> mock = std::nullopt) const
    {
        const std::string request(request_json);
        const detail::OptionalText mock_text(mock);
        ModelApiStream *stream = nullptr;
        detail::check(modelapi_stream_open_with(api_, request.c_str(), mock_text.c_str(),
                                                cancel.get(), &stream));
        return Stream(stream);
    }

    /* A Stream, returned at once, before anything is sent: connecting,
       sending the request and reading the answer happen in its later
       poll() calls (see Stream::poll() and Stream::waits_on()), for a
       thread that must never block. Looking up a host name is the one step
       that may block here; an IP address or "localhost" never does. Bad
       arguments (e.g. bad JSON), a Cancel already cancelled and a canned
       error reply (DEBUG_MOCK_RESPONSES) throw here; network and HTTP
       errors (e.g. 401) throw from a poll(). The blocking reads
       (range-for, next(), events()) work on it too. The messages are sent as JSON
       (modelapi_stream_start); stream_start_json takes a request object.
       With a Cancel: the Cancel must outlive the Stream. */
    [[nodiscard]] Stream stream_start(const std::vector<Message> &messages,
                                      std::optional<std::string_view> mock = std::nullopt) const
    {
        return start(to_json(messages), nullptr, mock);
    }
    [[nodiscard]] Stream stream_start(const std::vector<Message> &messages, Cancel &cancel,
                                      std::optional<std::string_view> mock = std::nullopt) const
    {
        return start(to_json(messages), cancel.get(), mock);
    }
    [[nodiscard]] Stream stream_start_json(std::string_view request_json,
                                           std::optional<std::string_view> mock = std::nullopt) const
    {
        return start(request_json, nullptr, mock);
    }
    [[nodiscard]] Stream stream_start_json(std::string_view request_json, Cancel &cancel,
                                           std::optional<std::string_view> mock = std::nullopt) const
    {
        return start(request_json, cancel.get(), mock);
    }

    /* A detached Stream, returned at once: no connection is opened; the
       Stream holds the request exactly as this client would send it
       (Stream::request_url(), request_headers(), request_body()), for the
       host's own HTTP stack to send, and is fed the answer
       (Stream::feed_head(), feed(), feed_end()); see "detached streams" in
       Stream. Bad arguments (e.g. bad JSON) throw here; HTTP errors come
       from the reads, once fed. With canned replies (DEBUG_MOCK_RESPONSES)
       the events are there at once. The messages are sent as JSON
       (modelapi_stream_detached); stream_detached_json takes a request
       object. */
    [[nodiscard]] Stream stream_detached(const std::vector<Message> &messages,
                                         std::optional<std::string_view> mock = std::nullopt) const
    {
        return stream_detached_json(to_json(messages), mock);
    }
    [[nodiscard]] Stream stream_detached_json(
        std::string_view request_json, std::optional<std::string_view> mock = std::nullopt) const
    {
        const std::string request(request_json);
        const detail::OptionalText mock_text(mock);
        ModelApiStream *stream = nullptr;
        detail::check(
            modelapi_stream_detached(api_, request.c_str(), mock_text.c_str(), &stream));
        return Stream(stream);
    }

    /* A streamed completion handed to on_chunk, chunk by chunk, on this
       thread: on_chunk(std::string_view) returns void, or bool (false
       stops the stream). Returns true at the end of the stream, false when
       on_chunk stopped it. An exception thrown by on_chunk stops the
       stream and comes out of stream() unchanged; a failure throws Error,
       after the chunks that arrived. */
    template <class F, detail::if_chunk_callback<F> = 0>
    bool stream(const std::vector<Message> &messages, F &&on_chunk,
                std::optional<std::string_view> mock = std::nullopt) const
    {
        const std::vector<ModelApiMessage> view = detail::borrow(messages);
        const detail::OptionalText mock_text(mock);
        return detail::run_callback(on_chunk, [&](ModelApiChunkFn fn, void *state) {
            return modelapi_stream(api_, view.data(), view.size(), mock_text.c_str(), fn, state);
        });
    }
    template <class F, detail::if_chunk_callback<F> = 0>
    bool stream(const std::vector<Message> &messages, F &&on_chunk, Cancel &cancel,
                std::optional<std::string_view> mock = std::nullopt) const
    {
        return stream_json(to_json(messages), std::forward<F>(on_chunk), cancel, mock);
    }
    template <class F, detail::if_chunk_callback<F> = 0>
    bool stream_json(std::string_view request_json, F &&on_chunk,
                     std::optional<std::string_view> mock = std::nullopt) const
    {
        const std::string request(request_json);
        const detail::OptionalText mock_text(mock);
        return detail::run_callback(on_chunk, [&](ModelApiChunkFn fn, void *state) {
            return modelapi_stream_json(api_, request.c_str(), mock_text.c_str(), fn, state);
        });
    }
    template <class F, detail::if_chunk_callback<F> = 0>
    bool stream_json(std::string_view request_json, F &&on_chunk, Cancel &cancel,
                     std::optional<std::string_view> mock = std::nullopt) const
    {
        const std::string request(request_json);
        const detail::OptionalText mock_text(mock);
        return detail::run_callback(on_chunk, [&](ModelApiChunkFn fn, void *state) {
            return modelapi_stream_with(api_, request.c_str(), mock_text.c_str(), cancel.get(),
                                        fn, state);
        });
    }

    /* A streamed completion handed to on_event, event by event, on this
       thread: on_event(const modelapi::Event &) is called with each piece of
       the text, the reasoning, the tool calls and the refusal (see Event;
       valid during the call only), and returns void, or bool (false stops
       the stream). Returns the whole answer, as chat.completion JSON (see
       Stream::completion_json()), at the end of the stream; an empty string
       when on_event stopped it. An exception thrown by on_event stops the
       stream and comes out of stream_events() unchanged; a failure throws
       Error, after the events that arrived. The messages are sent as JSON
       (modelapi_stream_events); stream_events_json takes a request object,
       e.g. with "tools". */
    template <class F, detail::if_event_callback<F> = 0>
    std::string stream_events(const std::vector<Message> &messages, F &&on_event,
                              std::optional<std::string_view> mock = std::nullopt) const
    {
        return events_call(to_json(messages), on_event, nullptr, mock);
    }
    template <class F, detail::if_event_callback<F> = 0>
    std::string stream_events(const std::vector<Message> &messages, F &&on_event,
                              Cancel &cancel,
                              std::optional<std::string_view> mock = std::nullopt) const
    {
        return events_call(to_json(messages), on_event, cancel.get(), mock);
    }
    template <class F, detail::if_event_callback<F> = 0>
    std::string stream_events_json(std::string_view request_json, F &&on_event,
                                   std::optional<std::string_view> mock = std::nullopt) const
    {
        return events_call(request_json, on_event, nullptr, mock);
    }
    template <class F, detail::if_event_callback<F> = 0>
    std::string stream_events_json(std::string_view request_json, F &&on_event, Cancel &cancel,
                                   std::optional<std::string_view> mock = std::nullopt) const
    {
        return events_call(request_json, on_event, cancel.get(), mock);
    }

    /* The embeddings of inputs (POST {api_base}/v1/embeddings) by model
       (the client's when none): one vector per input, in order. Retries,
       timeout, caps and canned replies apply as to chat calls. */
    Embeddings embed(const std::vector<std::string> &inputs,
                     std::optional<std::string_view> model = std::nullopt) const
    {
        std::vector<const char *> view;
        view.reserve(inputs.size());
        for (const std::string &input : inputs) {
            view.push_back(input.c_str());
        }
        const detail::OptionalText model_text(model);
        ModelApiEmbeddings *out = nullptr;
        detail::check(modelapi_embed(api_, model_text.c_str(), view.data(), view.size(), &out));
        return Embeddings(out);
    }

    /* The models the server offers (GET {api_base}/v1/models). */
    Models models() const
    {
        ModelApiModels *out = nullptr;
        detail::check(modelapi_models(api_, &out));
        std::unique_ptr<ModelApiModels, void (*)(ModelApiModels *)> owned(out,
                                                                           modelapi_models_free);
        Models result;
        const std::size_t count = modelapi_models_count(out);
        result.ids.reserve(count);
        for (std::size_t i = 0; i < count; ++i) {
            result.ids.emplace_back(modelapi_models_id(out, i));
        }
        result.json = modelapi_models_json(out);
        return result;
    }

    /* The C handle, still owned by this object (NULL once moved from). */
    ModelApi *get() const noexcept { return api_; }
    /* Gives the C handle up (close it with modelapi_close). */
    ModelApi *release() noexcept { return std::exchange(api_, nullptr); }

private:
    /* stream_start: modelapi_stream_start; cancel may be NULL. */
    Stream start(std::string_view request_json, ModelApiCancel *cancel,
                 std::optional<std::string_view> mock) const
    {
        const std::string request(request_json);
        const detail::OptionalText mock_text(mock);
        ModelApiStream *stream = nullptr;
        detail::check(
            modelapi_stream_start(api_, request.c_str(), mock_text.c_str(), cancel, &stream));
        return Stream(stream);
    }

    /* stream_events: modelapi_stream_events with on_event behind the
       trampoline; cancel may be NULL. */
    template <class F>
    std::string events_call(std::string_view request_json, F &on_event, ModelApiCancel *cancel,
                            std::optional<std::string_view> mock) const
    {
        const std::string request(request_json);
        const detail::OptionalText mock_text(mock);
        detail::CString json;
        const bool completed =
            detail::run_event_callback(on_event, [&](ModelApiEventFn fn, void *state) {
                char *out = nullptr;
                const ModelApiStatus status = modelapi_stream_events(
                    api_, request.c_str(), mock_text.c_str(), cancel, fn, state, &out);
                json.reset(out);
                return status;
            });
        return completed && json ? std::string(json.get()) : std::string();
    }

    static ModelApi *adopt(ModelApi *api)
    {
        if (api == nullptr) {
            throw Error(MODELAPI_INVALID_ARGUMENT, modelapi_last_error());
        }
        return api;
    }

    static void on_trace(void *user_data, ModelApiTraceLevel level, const char *line) noexcept
    {
        try {
            (*static_cast<TraceHook *>(user_data))(static_cast<TraceLevel>(level),
                                                   std::string_view(line));
        } catch (...) {
            /* A trace hook must not throw into the library: swallowed. */
        }
    }

    ModelApi *api_;
    /* The hook the C library calls, on the heap so that a moved Client
       keeps its address; freed after the client is closed. */
    std::unique_ptr<TraceHook> trace_;
};

}  // namespace modelapi

#undef MODELAPI_HPP_CPLUSPLUS

#endif /* MODELAPI_HPP */
