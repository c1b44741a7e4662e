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
 * - A Completion owns its strings.
 * - A chunk of a Stream (a std::string_view) points into the stream: it is
 *   valid until the stream is read again (operator++, next(), begin()) or
 *   destroyed. Copy it (std::string(chunk)) to keep it. A chunk handed to a
 *   callback is valid during that call only.
 * - The metadata of a Stream (finish_reason(), id(), model(),
 *   request_id()) stays valid until the Stream is destroyed.
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
 * - Callbacks run on the thread that called stream(), inside the call.
 * - The library keeps its last error per thread; an Error copies it when it
 *   is thrown, so an Error may be passed to and read on any thread.
 * - Nothing here starts a thread or writes to stdout or stderr.
 *
 * Cancelling (Cancel, Stream::cancel())
 * - A cancelled call throws Error with status MODELAPI_ABORTED
 *   (Error::cancelled()) within milliseconds, wherever it was waiting:
 *   complete() and stream() while the request is sent or the answer
 *   awaited; a range-for over a Stream (or next()) from the operator++
 *   waiting for the next chunk; a callback stream() after the chunks that
 *   arrived. A callback that returns false is not an error: stream() then
 *   returns false.
 * - Calls given a Cancel send the messages as JSON (modelapi_*_with); the
 *   others use the message arrays of the C API. Both send the same request.
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

/* Runs call(trampoline, user_data), a C streaming call with a callback:
   true at the end of the stream, false when the callback stopped it; else
   rethrows the callback's exception or throws the call's Error. */
template <class Fn, class Call>
bool run_callback(Fn &fn, Call &&call)
{
    using Result = std::invoke_result_t<Fn &, std::string_view>;
    static_assert(std::is_void_v<Result> || std::is_same_v<Result, bool>,
                  "a modelapi chunk callback returns void (goes on to the end) or bool "
                  "(true: go on, false: stop)");
    CallbackState<Fn> state{&fn, false, nullptr};
    const ModelApiStatus status = call(&trampoline<Fn>, static_cast<void *>(&state));
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
   stream): the request has been sent when the Stream is returned, and
   each chunk is read from the network when asked for.

     for (std::string_view chunk : stream) { ... }   // a single-pass range
     while (auto chunk = stream.next()) { ... *chunk ... }

   An error in the middle of the stream throws from the operator++ (or
   next()) that met it, after the chunks before it were delivered. Each
   chunk is delivered once: a range-for left with break, then started again,
   goes on with the chunk after. Destroying a Stream in the middle closes
   its connection at once.

   Move-only; moving it invalidates its iterators. An empty Stream
   (default-constructed or moved from) has no chunks and no metadata. */
class Stream {
public:
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

    Stream() noexcept = default;

    /* Adopts a stream of modelapi_stream_open* (NULL: an empty Stream). */
    explicit Stream(ModelApiStream *stream) noexcept : stream_(stream) {}

    ~Stream() { modelapi_stream_free(stream_); }

    Stream(const Stream &) = delete;
    Stream &operator=(const Stream &) = delete;

    Stream(Stream &&other) noexcept
        : stream_(std::exchange(other.stream_, nullptr)),
          chunk_(std::exchange(other.chunk_, std::string_view()))
    {
    }
    Stream &operator=(Stream &&other) noexcept
    {
        if (this != &other) {
            modelapi_stream_free(stream_);
            stream_ = std::exchange(other.stream_, nullptr);
            chunk_ = std::exchange(other.chunk_, std::string_view());
        }
        return *this;
    }

    /* The next chunk, or std::nullopt at the end (and on every later call).
       Blocks until a chunk arrives. Throws Error on a failure (including
       MODELAPI_ABORTED after a cancel), after which the stream is over. */
    std::optional<std::string_view> next()
    {
        chunk_ = std::string_view();
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

    /* Stops the stream from any thread, also while another thread waits in
       operator++/next(): that read throws Error (MODELAPI_ABORTED) within
       milliseconds; the connection is closed. The Stream must stay alive
       (not destroyed, not moved) during this call. */
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
        return std::exchange(stream_, nullptr);
    }

private:
    ModelApiStream *stream_ = nullptr;
    std::string_view chunk_;  // the current chunk, in the C stream's buffer
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

    Client(Client &&other) noexcept : api_(std::exchange(other.api_, nullptr)) {}
    Client &operator=(Client &&other) noexcept
    {
        if (this != &other) {
            modelapi_close(api_);
            api_ = std::exchange(other.api_, nullptr);
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

    /* The C handle, still owned by this object (NULL once moved from). */
    ModelApi *get() const noexcept { return api_; }
    /* Gives the C handle up (close it with modelapi_close). */
    ModelApi *release() noexcept { return std::exchange(api_, nullptr); }

private:
    static ModelApi *adopt(ModelApi *api)
    {
        if (api == nullptr) {
            throw Error(MODELAPI_INVALID_ARGUMENT, modelapi_last_error());
        }
        return api;
    }

    ModelApi *api_;
};

}  // namespace modelapi

#undef MODELAPI_HPP_CPLUSPLUS

#endif /* MODELAPI_HPP */
