// hpp_test.cpp: the C++17 interface (include/modelapi.hpp), checked against
// the local test server that c_api_test uses.
//
//   hpp_test <base_url>
//
// base_url is a test server that answers by model name:
//   "ok"            complete: "Hello from the test server" ("temperature=<v>"
//                   when the request has a temperature); stream: "Hello",
//                   " from", " the", " test", " server", finish_reason stop,
//                   model "test-model", id "chatcmpl-1", header x-request-id
//                   "req-hpp-1", and a usage event (3 + 5 = 8 tokens) when
//                   stream_options.include_usage is true
//   "unauthorized"  HTTP 401, {"error":{"message":"Invalid API key provided",...}}
//   "long"          a stream of 1000 chunks "x", 10 ms apart
//   "stream-error"  a stream of one chunk "partial", then an error event
//                   "model overloaded"
//   "slow"          no answer for 5 s (then the connection is closed)
//   "agent"         a stream of reasoning, content and two parallel tool
//                   calls whose pieces interleave (AGENT_EVENTS below),
//                   finish_reason tool_calls
//
// Output (stdout), TAP-like, one line per check:
//   ok <n> - <description>
//   not ok <n> - <description>: <details>
// and last, alone on its line:
//   <passed> passed, <failed> failed
// Exit status: 0 when every check passed, 1 otherwise, 2 on bad usage.
//
// Everything is freed by the RAII types, so valgrind --leak-check=full and
// LeakSanitizer report no leaks.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <poll.h>

#include "modelapi.hpp"

namespace {

// ---- what the types promise, checked at compile time ----------------------

static_assert(!std::is_copy_constructible_v<modelapi::Client>, "Client is move-only");
static_assert(!std::is_copy_assignable_v<modelapi::Client>, "Client is move-only");
static_assert(std::is_nothrow_move_constructible_v<modelapi::Client>, "Client moves");
static_assert(std::is_nothrow_move_assignable_v<modelapi::Client>, "Client moves");
static_assert(!std::is_copy_constructible_v<modelapi::Stream>, "Stream is move-only");
static_assert(!std::is_copy_assignable_v<modelapi::Stream>, "Stream is move-only");
static_assert(std::is_nothrow_move_constructible_v<modelapi::Stream>, "Stream moves");
static_assert(std::is_nothrow_move_assignable_v<modelapi::Stream>, "Stream moves");
static_assert(!std::is_copy_constructible_v<modelapi::Cancel>, "Cancel is not copyable");
static_assert(!std::is_move_constructible_v<modelapi::Cancel>, "Cancel stays where it is");
static_assert(std::is_base_of_v<std::runtime_error, modelapi::Error>, "Error is a runtime_error");
static_assert(std::is_same_v<std::iterator_traits<modelapi::Stream::iterator>::iterator_category,
                             std::input_iterator_tag>,
              "Stream::iterator is an input iterator");
static_assert(std::is_same_v<std::iterator_traits<modelapi::Stream::iterator>::value_type,
                             std::string_view>,
              "a chunk is a std::string_view");
static_assert(std::is_same_v<std::iterator_traits<modelapi::Stream::event_iterator>::iterator_category,
                             std::input_iterator_tag>,
              "Stream::event_iterator is an input iterator");
static_assert(std::is_same_v<std::iterator_traits<modelapi::Stream::event_iterator>::value_type,
                             modelapi::Event>,
              "an event is a modelapi::Event");
static_assert(static_cast<int>(modelapi::EventKind::content) == MODELAPI_EVENT_CONTENT &&
                  static_cast<int>(modelapi::EventKind::reasoning) == MODELAPI_EVENT_REASONING &&
                  static_cast<int>(modelapi::EventKind::tool_call) == MODELAPI_EVENT_TOOL_CALL &&
                  static_cast<int>(modelapi::EventKind::refusal) == MODELAPI_EVENT_REFUSAL,
              "EventKind mirrors ModelApiEventKind");
static_assert(!std::is_copy_constructible_v<modelapi::Stream::Events>, "Events is move-only");
static_assert(std::is_same_v<decltype(std::declval<modelapi::Stream &>().poll(
                                 std::declval<modelapi::Event &>())),
                             modelapi::PollResult>,
              "poll(event) says what it came to");
static_assert(std::is_same_v<decltype(std::declval<const modelapi::Stream &>().waits_on()),
                             std::optional<modelapi::WaitsOn>> &&
                  noexcept(std::declval<const modelapi::Stream &>().waits_on()),
              "waits_on() is an optional socket, and does not throw");
static_assert(std::is_nothrow_move_constructible_v<modelapi::Stream::Events>, "Events moves");

// ---- the test harness -----------------------------------------------------

int tests_run = 0;
int tests_passed = 0;
int tests_failed = 0;

// Reports one check; details are printed only when it failed.
bool check(bool ok, const std::string &description, const std::string &details = "")
{
    tests_run++;
    if (ok) {
        tests_passed++;
        std::printf("ok %d - %s\n", tests_run, description.c_str());
    } else {
        tests_failed++;
        std::printf("not ok %d - %s: %s\n", tests_run, description.c_str(), details.c_str());
    }
    std::fflush(stdout);
    return ok;
}

bool contains(std::string_view haystack, std::string_view needle)
{
    return haystack.find(needle) != std::string_view::npos;
}

std::string show(const std::optional<std::string_view> &text)
{
    return text ? "\"" + std::string(*text) + "\"" : std::string("(none)");
}

std::string describe(const modelapi::Error &e)
{
    return std::string(modelapi::status_name(e.status())) + " (http " +
           std::to_string(e.http_status()) + "): " + e.what();
}

std::string join(const std::vector<std::string> &pieces)
{
    std::string text;
    for (const std::string &p : pieces) {
        text += p;
    }
    return text;
}

// What a piece of code threw.
struct Outcome {
    std::optional<modelapi::Error> error;  // a modelapi::Error
    std::string other;                     // what() of any other exception
    bool threw_other = false;

    std::string describe() const
    {
        if (error) {
            return ::describe(*error);
        }
        return threw_other ? "other exception: " + other : std::string("no exception");
    }
    bool failed_with(ModelApiStatus status) const { return error && error->status() == status; }
};

template <class F>
Outcome outcome_of(F &&f)
{
    Outcome out;
    try {
        f();
    } catch (const modelapi::Error &e) {
        out.error = e;
    } catch (const std::exception &e) {
        out.threw_other = true;
        out.other = e.what();
    } catch (...) {
        out.threw_other = true;
        out.other = "(not a std::exception)";
    }
    return out;
}

using Clock = std::chrono::steady_clock;

long long ms_between(Clock::time_point a, Clock::time_point b)
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

// Runs body on this thread while another thread calls cancel() after delay.
// latency_ms: from that cancel() to body's end (negative: body ended first).
struct CancelRun {
    Outcome outcome;
    long long latency_ms = -1;
};

template <class CancelFn, class Body>
CancelRun cancel_after(std::chrono::milliseconds delay, CancelFn &&cancel, Body &&body)
{
    std::atomic<Clock::rep> cancelled_at{0};
    std::thread canceller([&] {
        std::this_thread::sleep_for(delay);
        cancelled_at = Clock::now().time_since_epoch().count();
        cancel();  // the thread-safe part of the interface
    });
    CancelRun run;
    run.outcome = outcome_of(body);
    const Clock::time_point returned = Clock::now();
    canceller.join();
    run.latency_ms =
        ms_between(Clock::time_point(Clock::duration(cancelled_at.load())), returned);
    return run;
}

std::string base_url;

const std::vector<modelapi::Message> HELLO{modelapi::user("Say hello")};
const std::vector<std::string> OK_CHUNKS{"Hello", " from", " the", " test", " server"};

// A client of the test server; fails fast rather than hang.
modelapi::Client test_client(std::string_view model,
                             std::optional<std::string_view> api_key = std::nullopt)
{
    modelapi::Client client(model, base_url, api_key);
    client.timeout(std::chrono::seconds(10));
    return client;
}

// An event, copied.
struct Seen {
    modelapi::EventKind kind = modelapi::EventKind::content;
    std::string text;
    std::uint32_t tool_index = 0;
    std::optional<std::string> tool_id;
    std::optional<std::string> tool_name;

    bool operator==(const Seen &other) const
    {
        return kind == other.kind && text == other.text && tool_index == other.tool_index &&
               tool_id == other.tool_id && tool_name == other.tool_name;
    }
};

Seen seen(const modelapi::Event &event)
{
    Seen copy;
    copy.kind = event.kind;
    copy.text = std::string(event.text);
    copy.tool_index = event.tool_index;
    if (event.tool_id) {
        copy.tool_id = std::string(*event.tool_id);
    }
    if (event.tool_name) {
        copy.tool_name = std::string(*event.tool_name);
    }
    return copy;
}

std::string show(const std::vector<Seen> &events)
{
    std::string text;
    for (const Seen &e : events) {
        text += std::string(modelapi::event_kind_name(e.kind)) + "[" +
                std::to_string(e.tool_index) + (e.tool_id ? " " + *e.tool_id : "") +
                (e.tool_name ? " " + *e.tool_name : "") + "] \"" + e.text + "\"; ";
    }
    return text;
}

Seen reasoning(std::string text)
{
    return Seen{modelapi::EventKind::reasoning, std::move(text), 0, std::nullopt, std::nullopt};
}
Seen content(std::string text)
{
    return Seen{modelapi::EventKind::content, std::move(text), 0, std::nullopt, std::nullopt};
}
Seen tool_piece(std::uint32_t index, std::string text,
                std::optional<std::string> id = std::nullopt,
                std::optional<std::string> name = std::nullopt)
{
    return Seen{modelapi::EventKind::tool_call, std::move(text), index, std::move(id),
                std::move(name)};
}

// The events of the test server's "agent" stream, in order.
const std::vector<Seen> AGENT_EVENTS{
    reasoning("Two cities: Z\xc3\xbc" "rich"),
    reasoning(" and S\xc3\xa3o Paulo."),
    content("Let me check both cities."),
    tool_piece(0, "", "call_zrh", "get_weather"),
    tool_piece(1, "{\"ci", "call_sao", "get_weather"),
    tool_piece(0, "{\"city\": \"Z"),
    tool_piece(1, "ty\": \"S\\u00"),
    tool_piece(0, "\xc3\xbc" "rich\"}"),
    tool_piece(1, "e3o Paulo\", \"unit"),
    tool_piece(1, "\": \"celsius\"}"),
};

// Substrings of the whole "agent" answer as chat.completion JSON.
bool is_whole_agent_answer(std::string_view json)
{
    const std::size_t zrh = json.find("\"id\":\"call_zrh\"");
    const std::size_t sao = json.find("\"id\":\"call_sao\"");
    return contains(json, "\"reasoning_content\":\"Two cities: Z\xc3\xbc" "rich and S\xc3\xa3o Paulo.\"") &&
           contains(json, "\"content\":\"Let me check both cities.\"") &&
           contains(json, "\"arguments\":\"{\\\"city\\\": \\\"Z\xc3\xbc" "rich\\\"}\"") &&
           contains(json, "\"arguments\":\"{\\\"city\\\": \\\"S\\\\u00e3o Paulo\\\", "
                          "\\\"unit\\\": \\\"celsius\\\"}\"") &&
           contains(json, "\"finish_reason\":\"tool_calls\"") && zrh != std::string_view::npos &&
           sao != std::string_view::npos && zrh < sao;
}

const std::string TOOLS_REQUEST =
    "{\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"}],\"tools\":[{\"type\":"
    "\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]}";

// ---- the checks -------------------------------------------------------------

void version_checks()
{
    check(modelapi::version() == MODELAPI_VERSION, "modelapi::version() equals MODELAPI_VERSION",
          std::string(modelapi::version()));
    check(std::string_view(modelapi::status_name(MODELAPI_ABORTED)) == "MODELAPI_ABORTED" &&
              std::string_view(modelapi::status_name(MODELAPI_SERVER_ERROR)) ==
                  "MODELAPI_SERVER_ERROR",
          "modelapi::status_name names the statuses");
}

void message_checks()
{
    const modelapi::Message s = modelapi::system("be brief");
    const modelapi::Message u = modelapi::user("hi");
    const modelapi::Message a = modelapi::assistant("hello");
    check(s.role == "system" && s.content == "be brief" && u.role == "user" &&
              a.role == "assistant" && a.content == "hello",
          "system/user/assistant make messages of their role");

    const std::string json = modelapi::to_json(
        {modelapi::user("a\"b\\c\nd\te\x01"), modelapi::assistant("caf\xc3\xa9")});
    const std::string expected =
        "[{\"role\":\"user\",\"content\":\"a\\\"b\\\\c\\nd\\te\\u0001\"},"
        "{\"role\":\"assistant\",\"content\":\"caf\xc3\xa9\"}]";
    check(json == expected, "to_json escapes quotes, backslashes and control characters",
          json);
    check(modelapi::to_json({}) == "[]", "to_json of no messages is []",
          modelapi::to_json({}));
    const std::string literal = modelapi::json_string("a\"b\\c\nd\x01" "caf\xc3\xa9");
    check(literal == "\"a\\\"b\\\\c\\nd\\u0001caf\xc3\xa9\"",
          "json_string makes a JSON string literal, escaped", literal);
}

void constructor_checks()
{
    Outcome out = outcome_of([] { modelapi::Client client("ok", "ftp://x"); });
    check(out.failed_with(MODELAPI_INVALID_ARGUMENT) && contains(out.error->what(), "api_base"),
          "Client(\"ok\", \"ftp://x\") throws INVALID_ARGUMENT naming api_base", out.describe());

    out = outcome_of([] { modelapi::Client client(static_cast<ModelApi *>(nullptr)); });
    check(out.failed_with(MODELAPI_INVALID_ARGUMENT), "adopting a NULL ModelApi* throws",
          out.describe());

    // The key as a C string: NULL (an unset variable) is no key.
    const char *no_key = std::getenv("MODELAPI_HPP_TEST_UNSET_VARIABLE");
    std::string answer;
    out = outcome_of(
        [&] { answer = modelapi::Client("ok", base_url, no_key).complete(HELLO).content; });
    check(!out.error && answer == "Hello from the test server",
          "Client(model, base, (const char *)NULL): no key", out.describe());
    out = outcome_of(
        [] { modelapi::Client("unauthorized", base_url, "sk-hpp-literal").complete(HELLO); });
    check(out.failed_with(MODELAPI_HTTP_ERROR) && out.error->http_status() == 401,
          "Client(model, base, \"sk-...\"): the key is sent", out.describe());

    unsetenv("MODEL_API_URL");
    out = outcome_of([] { modelapi::Client client = modelapi::Client::from_env(); });
    check(out.failed_with(MODELAPI_INVALID_ARGUMENT) && contains(out.error->what(), "MODEL_API_URL"),
          "Client::from_env() without MODEL_API_URL throws, naming it", out.describe());

    setenv("MODEL_API_URL", base_url.c_str(), 1);
    setenv("MODEL_NAME", "ok", 1);
    std::string content;
    out = outcome_of([&] { content = modelapi::Client::from_env().complete(HELLO).content; });
    unsetenv("MODEL_API_URL");
    unsetenv("MODEL_NAME");
    check(!out.error && !out.threw_other && content == "Hello from the test server",
          "Client::from_env() with MODEL_API_URL and MODEL_NAME asks that server",
          out.describe() + ", content \"" + content + "\"");

    // DEBUG_MOCK_RESPONSES is read when a client is created.
    setenv("DEBUG_MOCK_RESPONSES", "[\"A canned reply\", \"A canned stream\"]", 1);
    std::string canned;
    std::string streamed;
    out = outcome_of([&] {
        const modelapi::Client client = test_client("ok");
        canned = client.complete(HELLO).content;
        for (std::string_view chunk : client.stream(HELLO)) {
            streamed += chunk;
        }
    });
    unsetenv("DEBUG_MOCK_RESPONSES");
    check(!out.error && canned == "A canned reply" && streamed == "A canned stream",
          "DEBUG_MOCK_RESPONSES: complete and stream get the canned replies",
          out.describe() + ", \"" + canned + "\", \"" + streamed + "\"");
}

void complete_checks(const modelapi::Client &ok)
{
    modelapi::Completion answer;
    Outcome out = outcome_of([&] { answer = ok.complete(HELLO); });
    check(!out.error && answer.content == "Hello from the test server",
          "complete on \"ok\": the exact content", out.describe() + ", \"" + answer.content + "\"");
    check(contains(answer.json, "\"chat.completion\"") && contains(answer.json, "chatcmpl-9"),
          "Completion::json is the server's chat.completion object", answer.json);

    out = outcome_of([&] { answer = ok.complete({modelapi::system("Be brief."), modelapi::user("hi")}); });
    check(!out.error && answer.content == "Hello from the test server",
          "complete with a braced list of messages", out.describe());

    out = outcome_of([&] {
        answer = ok.complete_json(
            "{\"messages\": " + modelapi::to_json(HELLO) + ", \"temperature\": 0.5}");
    });
    check(!out.error && answer.content == "temperature=0.5",
          "complete_json with a request object passes temperature through",
          out.describe() + ", \"" + answer.content + "\"");

    out = outcome_of([&] { answer = ok.complete_json("[{\"role\":\"user\",\"content\":\"x\"}]"); });
    check(!out.error && answer.content == "Hello from the test server",
          "complete_json with a message array", out.describe());

    out = outcome_of([&] { answer = ok.complete_json("not json"); });
    check(out.failed_with(MODELAPI_INVALID_ARGUMENT), "complete_json(\"not json\") throws INVALID_ARGUMENT",
          out.describe());

    out = outcome_of([&] { answer = ok.complete(HELLO, "a mock reply"); });
    check(!out.error && answer.content == "Hello from the test server",
          "complete with a mock_response (this server ignores it)", out.describe());
}

void http_error_checks(const modelapi::Client &unauthorized)
{
    Outcome out = outcome_of([&] { unauthorized.complete(HELLO); });
    check(out.failed_with(MODELAPI_HTTP_ERROR) && out.error->http_status() == 401,
          "complete answered 401: Error with MODELAPI_HTTP_ERROR and http_status() 401",
          out.describe());
    check(out.error && contains(out.error->what(), "Invalid API key provided") &&
              !contains(out.error->what(), "sk-hpp-secret"),
          "what() is the server's message, without the API key", out.describe());

    out = outcome_of([&] { modelapi::Stream stream = unauthorized.stream(HELLO); });
    check(out.failed_with(MODELAPI_HTTP_ERROR) && out.error->http_status() == 401,
          "stream() answered 401 throws when it is opened", out.describe());

    int chunks = 0;
    out = outcome_of([&] { unauthorized.stream(HELLO, [&](std::string_view) { chunks++; }); });
    check(out.failed_with(MODELAPI_HTTP_ERROR) && out.error->http_status() == 401 && chunks == 0,
          "the callback stream() answered 401 throws, no chunk", out.describe());

    // The error is a copy: later failures on this thread do not change it.
    modelapi_set_max_retries(nullptr, 1);
    check(out.error && contains(out.error->what(), "Invalid API key provided"),
          "an Error keeps its message after later failures", out.describe());

    const ModelApiStatus status = modelapi_set_timeout_ms(nullptr, 1000);
    const modelapi::Error last = modelapi::Error::last(status);
    check(last.status() == MODELAPI_INVALID_ARGUMENT && contains(last.what(), "api") &&
              last.http_status() == 0,
          "Error::last builds the error of a failed C call", describe(last));
}

void range_for_checks(const modelapi::Client &ok)
{
    std::vector<std::string> chunks;
    std::optional<std::string_view> finish_reason;
    std::optional<std::string_view> model;
    std::optional<std::string_view> id;
    std::optional<std::string_view> request_id;
    std::optional<modelapi::Usage> usage;
    std::optional<std::string_view> after;
    bool begin_is_end = false;
    bool finish_unknown_before = false;

    Outcome out = outcome_of([&] {
        modelapi::Stream stream = ok.stream(HELLO);
        finish_unknown_before = !stream.finish_reason().has_value();
        for (std::string_view chunk : stream) {
            chunks.emplace_back(chunk);  // copied: valid until the next chunk only
        }
        finish_reason = stream.finish_reason();
        model = stream.model();
        id = stream.id();
        request_id = stream.request_id();
        usage = stream.usage();
        after = stream.next();
        begin_is_end = stream.begin() == stream.end();
        // The views live as long as the stream: compare them here.
        check(finish_reason == "stop" && model == "test-model" && id == "chatcmpl-1" &&
                  request_id == "req-hpp-1",
              "after the stream: finish_reason \"stop\", model \"test-model\", id, request_id",
              show(finish_reason) + " " + show(model) + " " + show(id) + " " + show(request_id));
    });
    check(!out.error && chunks == OK_CHUNKS,
          "range-for over stream(\"ok\") gives the five chunks",
          out.describe() + ", \"" + join(chunks) + "\"");
    check(finish_unknown_before, "finish_reason() is unknown before the stream is read");
    check(!usage.has_value(), "usage() is none when the server sent none");
    check(!after.has_value() && begin_is_end,
          "after the end: next() is nullopt and begin() == end()");

    // The pull form, with usage asked for.
    chunks.clear();
    out = outcome_of([&] {
        modelapi::Stream stream = ok.stream_json(
            "{\"messages\": " + modelapi::to_json(HELLO) +
            ", \"stream_options\": {\"include_usage\": true}}");
        while (std::optional<std::string_view> chunk = stream.next()) {
            chunks.emplace_back(*chunk);
        }
        usage = stream.usage();
    });
    check(!out.error && chunks == OK_CHUNKS, "stream_json + next() until nullopt",
          out.describe() + ", \"" + join(chunks) + "\"");
    check(usage && usage->prompt_tokens == 3 && usage->completion_tokens == 5 &&
              usage->total_tokens == 8,
          "usage() after stream_options.include_usage: 3 + 5 = 8",
          usage ? std::to_string(usage->total_tokens) : std::string("(none)"));

    // The iterator's other operators.
    std::string first;
    std::size_t second_size = 0;
    std::string rest;
    out = outcome_of([&] {
        modelapi::Stream stream = ok.stream(HELLO);
        modelapi::Stream::iterator it = stream.begin();
        first = *it++;  // a copy of "Hello"; it moves to " from"
        second_size = it->size();
        for (++it; it != stream.end(); ++it) {
            rest += *it;
        }
    });
    check(!out.error && first == "Hello" && second_size == 5 && rest == " the test server",
          "it++ returns the chunk it was at, -> and ++it work",
          out.describe() + ", \"" + first + "\", " + std::to_string(second_size) + ", \"" +
              rest + "\"");

    // break, then a new loop: it goes on with the next chunk.
    chunks.clear();
    out = outcome_of([&] {
        modelapi::Stream stream = ok.stream(HELLO);
        for (std::string_view chunk : stream) {
            chunks.emplace_back(chunk);
            break;
        }
        for (std::string_view chunk : stream) {
            chunks.emplace_back(chunk);
        }
    });
    check(!out.error && chunks == OK_CHUNKS,
          "a loop left with break, then started again, delivers each chunk once",
          out.describe() + ", \"" + join(chunks) + "\"");

    // A range-for over the temporary.
    std::string text;
    out = outcome_of([&] {
        for (std::string_view chunk : ok.stream({modelapi::user("hi")})) {
            text += chunk;
        }
    });
    check(!out.error && text == "Hello from the test server",
          "range-for directly over client.stream(...)", out.describe());
}

// A free function as a callback.
std::string free_function_text;
void append_to_free_function_text(std::string_view chunk)
{
    free_function_text += chunk;
}

void callback_checks(const modelapi::Client &ok, const modelapi::Client &long_api)
{
    std::vector<std::string> chunks;
    bool completed = false;
    Outcome out = outcome_of([&] {
        completed = ok.stream(HELLO, [&](std::string_view chunk) { chunks.emplace_back(chunk); });
    });
    check(!out.error && completed && chunks == OK_CHUNKS,
          "callback stream (void callback) gives the five chunks, returns true",
          out.describe() + ", \"" + join(chunks) + "\"");

    out = outcome_of([&] { completed = ok.stream(HELLO, &append_to_free_function_text); });
    check(!out.error && completed && free_function_text == "Hello from the test server",
          "a function pointer as the callback", out.describe());

    // false stops the stream: not an error.
    std::string text;
    completed = true;
    const Clock::time_point started = Clock::now();
    out = outcome_of([&] {
        completed = long_api.stream(HELLO, [&](std::string_view chunk) {
            text += chunk;
            return text.size() < 3;
        });
    });
    long long ms = ms_between(started, Clock::now());
    check(!out.error && !completed && text == "xxx" && ms < 5000,
          "a callback returning false after 3 chunks of \"long\": stream() returns false",
          out.describe() + ", \"" + text + "\", " + std::to_string(ms) + " ms");

    // An exception from the callback stops the stream and comes out unchanged.
    int calls = 0;
    out = outcome_of([&] {
        long_api.stream(HELLO, [&](std::string_view) {
            if (++calls == 2) {
                throw std::logic_error("boom from the callback");
            }
        });
    });
    check(!out.error && out.threw_other && out.other == "boom from the callback" && calls == 2,
          "an exception thrown by the callback comes out of stream() unchanged",
          out.describe() + ", " + std::to_string(calls) + " calls");

    std::string answer;
    out = outcome_of([&] { answer = long_api.complete(HELLO).content; });
    check(!out.error && answer == "Hello from the test server",
          "the client stays usable after the callback's exception", out.describe());

    // The JSON form, with a const callable.
    text.clear();
    const auto collect = [&text](std::string_view chunk) { text += chunk; };
    out = outcome_of([&] { completed = ok.stream_json(modelapi::to_json(HELLO), collect); });
    check(!out.error && completed && text == "Hello from the test server",
          "stream_json with a callback", out.describe());
}

void stream_error_checks(const modelapi::Client &stream_error)
{
    std::vector<std::string> chunks;
    std::optional<std::string_view> after;
    Outcome out = outcome_of([&] {
        modelapi::Stream stream = stream_error.stream(HELLO);
        const Outcome inner = outcome_of([&] {
            for (std::string_view chunk : stream) {
                chunks.emplace_back(chunk);
            }
        });
        after = stream.next();
        if (inner.error) {
            throw *inner.error;
        }
    });
    check(out.failed_with(MODELAPI_SERVER_ERROR) && contains(out.error->what(), "model overloaded") &&
              chunks == std::vector<std::string>{"partial"},
          "a mid-stream error throws from operator++ after the chunk \"partial\"",
          out.describe() + ", \"" + join(chunks) + "\"");
    check(!after.has_value(), "after the error, next() is nullopt");

    chunks.clear();
    out = outcome_of([&] {
        stream_error.stream(HELLO, [&](std::string_view chunk) { chunks.emplace_back(chunk); });
    });
    check(out.failed_with(MODELAPI_SERVER_ERROR) && chunks == std::vector<std::string>{"partial"},
          "the callback stream() throws the mid-stream error after \"partial\"",
          out.describe() + ", \"" + join(chunks) + "\"");
}

void pull_event_checks(const modelapi::Client &agent, const modelapi::Client &stream_error)
{
    // A range-for over the events of a Stream variable.
    std::vector<Seen> events;
    std::string json;
    std::optional<std::string_view> finish_reason;
    bool ended = false;
    Outcome out = outcome_of([&] {
        modelapi::Stream stream = agent.stream(HELLO);
        for (const modelapi::Event &event : stream.events()) {
            events.push_back(seen(event));
        }
        json = stream.completion_json();
        finish_reason = stream.finish_reason();
        check(finish_reason == "tool_calls", "finish_reason() after the events: \"tool_calls\"",
              show(finish_reason));
        ended = !stream.next_event().has_value() && stream.events().begin() == stream.events().end() &&
                !stream.next().has_value();
    });
    check(!out.error && events == AGENT_EVENTS,
          "range-for over stream.events() on \"agent\": reasoning, content, interleaved "
          "tool-call pieces",
          out.describe() + ": " + show(events));
    check(is_whole_agent_answer(json),
          "completion_json() at the end: the whole answer, both calls in index order", json);
    check(ended, "after the end: next_event() is nullopt, events() is empty, next() is nullopt");

    // Directly over the temporary: events() takes the Stream over.
    events.clear();
    out = outcome_of([&] {
        for (const modelapi::Event &event : agent.stream_json(TOOLS_REQUEST).events()) {
            events.push_back(seen(event));
        }
    });
    check(!out.error && events == AGENT_EVENTS,
          "range-for directly over client.stream_json(...).events()",
          out.describe() + ": " + show(events));

    // next_event() until nullopt; completion_json() in the middle.
    events.clear();
    std::string after_two;
    std::string after_six;
    out = outcome_of([&] {
        modelapi::Stream stream = agent.stream(HELLO);
        while (std::optional<modelapi::Event> event = stream.next_event()) {
            events.push_back(seen(*event));
            if (events.size() == 2) {
                after_two = stream.completion_json();
            } else if (events.size() == 6) {
                after_six = stream.completion_json();
            }
        }
    });
    check(!out.error && events == AGENT_EVENTS, "next_event() until nullopt",
          out.describe() + ": " + show(events));
    check(contains(after_two, "\"reasoning_content\":\"Two cities: Z\xc3\xbc" "rich and S\xc3\xa3o Paulo.\"") &&
              contains(after_two, "\"content\":null") && !contains(after_two, "tool_calls") &&
              contains(after_six, "\"arguments\":\"{\\\"city\\\": \\\"Z\"") &&
              contains(after_six, "\"arguments\":\"{\\\"ci\"") &&
              contains(after_six, "\"finish_reason\":null"),
          "completion_json() in the middle: what was read so far", after_two + " | " + after_six);

    // Mixed with the chunk reads, which skip the other kinds.
    std::vector<std::string> steps;
    out = outcome_of([&] {
        modelapi::Stream stream = agent.stream(HELLO);
        std::optional<modelapi::Event> event = stream.next_event();
        steps.push_back(event ? show({seen(*event)}) : "(none)");
        const std::optional<std::string_view> chunk = stream.next();
        steps.push_back(chunk ? std::string(*chunk) : "(none)");
        event = stream.next_event();
        steps.push_back(event ? show({seen(*event)}) : "(none)");
        steps.push_back(stream.next() ? "more" : "end");
        steps.push_back(stream.next_event() ? "more" : "end");
        json = stream.completion_json();
    });
    check(!out.error && steps.size() == 5 && steps[0] == show({AGENT_EVENTS[0]}) &&
              steps[1] == "Let me check both cities." && steps[2] == show({AGENT_EVENTS[3]}) &&
              steps[3] == "end" && steps[4] == "end" && is_whole_agent_answer(json),
          "next_event() and next() mixed: next() skips the other kinds, still assembled",
          out.describe() + ": " + join(steps) + " " + json);

    // break, then a move, an iterator, and a new loop: each event once.
    events.clear();
    std::string postfix_text;
    out = outcome_of([&] {
        modelapi::Stream stream = agent.stream(HELLO);
        for (const modelapi::Event &event : stream.events()) {
            events.push_back(seen(event));
            if (events.size() == 3) {
                break;
            }
        }
        modelapi::Stream moved = std::move(stream);
        modelapi::Stream::event_iterator it = moved.events().begin();  // reads the 4th
        events.push_back(seen(*it++));  // copied from the postfix value; reads the 5th
        events.push_back(seen(*it));
        for (const modelapi::Event &event : moved.events()) {  // reads the 6th, ...
            events.push_back(seen(event));
        }
    });
    check(!out.error && events == AGENT_EVENTS,
          "a loop left with break, the Stream moved, *it++, then a new loop: each event once",
          out.describe() + ": " + show(events));
    out = outcome_of([&] {
        modelapi::Stream stream = agent.stream(HELLO);
        modelapi::Stream::event_iterator it = stream.events().begin();
        for (int i = 0; i < 3; i++) {
            ++it;
        }
        const modelapi::Stream::event_iterator::postfix old = it++;
        const modelapi::Event event = *old;
        postfix_text = std::string(event.text) + "|" +
                       (event.tool_id ? std::string(*event.tool_id) : "(none)") + "|" +
                       std::string(it->text);
    });
    check(!out.error && postfix_text == "|call_zrh|{\"ci",
          "it++ returns a copy of the event it was at", out.describe() + ", " + postfix_text);

    // A mid-stream error.
    events.clear();
    json.clear();
    std::optional<modelapi::Event> after;
    out = outcome_of([&] {
        modelapi::Stream stream = stream_error.stream(HELLO);
        const Outcome inner = outcome_of([&] {
            for (const modelapi::Event &event : stream.events()) {
                events.push_back(seen(event));
            }
        });
        json = stream.completion_json();
        after = stream.next_event();
        if (inner.error) {
            throw *inner.error;
        }
    });
    check(out.failed_with(MODELAPI_SERVER_ERROR) && contains(out.error->what(), "model overloaded") &&
              events == std::vector<Seen>{content("partial")},
          "a mid-stream error throws from the events loop after the content event \"partial\"",
          out.describe() + ": " + show(events));
    check(contains(json, "\"content\":\"partial\"") && !after.has_value(),
          "completion_json() after the error: what arrived; then next_event() is nullopt", json);

    // An empty Stream.
    modelapi::Stream empty;
    check(!empty.next_event().has_value() && empty.events().begin() == empty.events().end(),
          "an empty Stream has no events");
    out = outcome_of([&] { json = empty.completion_json(); });
    check(out.failed_with(MODELAPI_INVALID_ARGUMENT),
          "completion_json() of an empty Stream throws INVALID_ARGUMENT", out.describe());
}

// A free function as an event callback.
std::string free_function_events;
void append_event_text(const modelapi::Event &event)
{
    free_function_events += event.text;
}

void callback_event_checks(const modelapi::Client &agent, const modelapi::Client &ok,
                           const modelapi::Client &long_api, const modelapi::Client &stream_error)
{
    std::vector<Seen> events;
    std::string json;
    Outcome out = outcome_of([&] {
        json = agent.stream_events_json(TOOLS_REQUEST, [&](const modelapi::Event &event) {
            events.push_back(seen(event));
        });
    });
    check(!out.error && events == AGENT_EVENTS,
          "stream_events_json (void callback) on \"agent\": every event",
          out.describe() + ": " + show(events));
    check(is_whole_agent_answer(json), "stream_events_json returns the whole answer's JSON", json);

    // false stops the stream: not an error, "" returned.
    events.clear();
    json = "(not set)";
    out = outcome_of([&] {
        json = agent.stream_events(HELLO, [&](const modelapi::Event &event) {
            events.push_back(seen(event));
            return events.size() < 3;
        });
    });
    check(!out.error && json.empty() && events.size() == 3 &&
              std::vector<Seen>(AGENT_EVENTS.begin(), AGENT_EVENTS.begin() + 3) == events,
          "a callback returning false at the 3rd event: stream_events() returns \"\"",
          out.describe() + ", \"" + json + "\", " + show(events));

    // An exception from the callback stops the stream and comes out unchanged.
    int calls = 0;
    out = outcome_of([&] {
        long_api.stream_events(HELLO, [&](const modelapi::Event &) {
            if (++calls == 2) {
                throw std::logic_error("boom from the event callback");
            }
        });
    });
    check(!out.error && out.threw_other && out.other == "boom from the event callback" &&
              calls == 2,
          "an exception thrown by the event callback comes out of stream_events() unchanged",
          out.describe() + ", " + std::to_string(calls) + " calls");
    std::string text;
    out = outcome_of([&] {
        json = ok.stream_events({modelapi::user("hi")}, [&](modelapi::Event event) {
            text += event.text;
            return true;
        });
    });
    check(!out.error && text == "Hello from the test server" &&
              contains(json, "\"content\":\"Hello from the test server\"") &&
              contains(json, "\"finish_reason\":\"stop\""),
          "the client streams events again after the exception", out.describe() + ", " + json);

    out = outcome_of([&] { ok.stream_events(HELLO, &append_event_text); });
    check(!out.error && free_function_events == "Hello from the test server",
          "a function pointer as the event callback", out.describe());

    // Failures throw Error, after the events that arrived.
    events.clear();
    out = outcome_of([&] {
        stream_error.stream_events(
            HELLO, [&](const modelapi::Event &event) { events.push_back(seen(event)); });
    });
    check(out.failed_with(MODELAPI_SERVER_ERROR) && events == std::vector<Seen>{content("partial")},
          "stream_events() throws the mid-stream error after \"partial\"",
          out.describe() + ": " + show(events));

    // A Cancel: MODELAPI_ABORTED is thrown (only a callback's false returns "").
    {
        modelapi::Cancel cancel;
        std::size_t count = 0;
        const CancelRun run = cancel_after(std::chrono::milliseconds(150), [&] { cancel.cancel(); },
                                           [&] {
                                               long_api.stream_events(
                                                   HELLO, [&](const modelapi::Event &) { count++; },
                                                   cancel);
                                           });
        check(run.outcome.failed_with(MODELAPI_ABORTED) && count > 0 && count < 1000 &&
                  run.latency_ms >= 0 && run.latency_ms < 2000,
              "stream_events() with a Cancel from another thread throws MODELAPI_ABORTED",
              run.outcome.describe() + ", " + std::to_string(count) + " events, " +
                  std::to_string(run.latency_ms) + " ms after the cancel");
        out = outcome_of([&] {
            agent.stream_events_json(TOOLS_REQUEST, [](const modelapi::Event &) { return true; },
                                     cancel);
        });
        check(out.failed_with(MODELAPI_ABORTED), "stream_events_json() with a cancelled token throws",
              out.describe());
    }
}

void canned_event_checks()
{
    setenv("DEBUG_MOCK_RESPONSES",
           "[{\"reasoning_content\":\"I should call the tool.\",\"tool_calls\":[{\"id\":\"call_1\","
           "\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}}]},"
           "\"It is 18 \\u00b0C and sunny in Paris.\"]",
           1);
    std::string reasoning_text;
    std::string arguments;
    std::string first_id;
    std::string first_name;
    std::string json;
    std::string answer;
    std::string answer_json;
    std::size_t longest = 0;
    const Outcome out = outcome_of([&] {
        const modelapi::Client client = test_client("ok");
        modelapi::Stream stream = client.stream(HELLO);
        for (const modelapi::Event &event : stream.events()) {
            longest = std::max(longest, event.text.size());
            if (event.kind == modelapi::EventKind::reasoning) {
                reasoning_text += event.text;
            } else if (event.kind == modelapi::EventKind::tool_call) {
                if (event.tool_id) {
                    first_id += *event.tool_id;
                    first_name += event.tool_name.value_or("(none)");
                }
                arguments += event.text;
            }
        }
        json = stream.completion_json();
        answer_json = client.stream_events(
            HELLO, [&](const modelapi::Event &event) { answer += event.text; });
    });
    unsetenv("DEBUG_MOCK_RESPONSES");
    check(!out.error && reasoning_text == "I should call the tool." &&
              arguments == "{\"city\":\"Paris\"}" && first_id == "call_1" &&
              first_name == "get_weather" && longest == 3,
          "canned: a whole assistant message streams as reasoning and tool-call events",
          out.describe() + ", \"" + reasoning_text + "\", \"" + arguments + "\", " + first_id);
    check(contains(json, "\"id\":\"call_1\"") &&
              contains(json, "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"") &&
              contains(json, "\"finish_reason\":\"tool_calls\""),
          "canned: completion_json() holds the tool call", json);
    check(answer == "It is 18 \xc2\xb0" "C and sunny in Paris." &&
              contains(answer_json, "\"finish_reason\":\"stop\""),
          "canned: then stream_events() gets the text reply", answer + " " + answer_json);
}

// ---- poll mode: Client::stream_start, Stream::poll, Stream::waits_on --------

std::string show(modelapi::PollResult result)
{
    return modelapi::poll_result_name(result);
}

// What polling a stream to its end came to.
struct PollRun {
    std::vector<Seen> events;
    int pending = 0;                 // polls that came to pending
    int pending_without_socket = 0;  // ... after which waits_on() had no socket
    int socket_waits = 0;            // waits on waits_on()'s socket
    bool gave_up = false;            // no end within 20 s
    bool done_again = false;         // the poll after done: done again
    bool out_emptied = true;         // out was an empty Event after pending/done
};

bool is_empty(const modelapi::Event &event)
{
    return event.kind == modelapi::EventKind::content && event.text.empty() &&
           event.tool_index == 0 && !event.tool_id && !event.tool_name;
}

// Polls stream to its end as a host with its own event loop does: with
// wait, and after each pending, a wait on waits_on()'s socket (at most
// 200 ms), or 1 ms of sleep when it has none. What poll() throws comes out,
// run keeping the events before it.
void poll_to_end(modelapi::Stream &stream, PollRun &run,
                 std::chrono::milliseconds wait = std::chrono::milliseconds(0))
{
    const Clock::time_point started = Clock::now();
    modelapi::Event event;
    for (;;) {
        if (ms_between(started, Clock::now()) > 20000) {
            run.gave_up = true;
            return;
        }
        event.text = "stale";
        const modelapi::PollResult result = stream.poll(event, wait);
        if (result == modelapi::PollResult::event) {
            run.events.push_back(seen(event));
            continue;
        }
        run.out_emptied = run.out_emptied && is_empty(event);
        if (result == modelapi::PollResult::done) {
            event.text = "stale";
            run.done_again = stream.poll(event) == modelapi::PollResult::done && is_empty(event);
            return;
        }
        run.pending++;
        const std::optional<modelapi::WaitsOn> waits = stream.waits_on();
        if (!waits) {
            run.pending_without_socket++;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
            continue;
        }
        pollfd socket{};
        socket.fd = waits->fd;
        socket.events = waits->wants_write ? (POLLIN | POLLOUT) : POLLIN;
        run.socket_waits++;
        ::poll(&socket, 1, 200);
    }
}

std::vector<Seen> content_events(const std::vector<std::string> &texts)
{
    std::vector<Seen> events;
    for (const std::string &text : texts) {
        events.push_back(content(text));
    }
    return events;
}

void canned_poll_checks()
{
    setenv("DEBUG_MOCK_RESPONSES",
           "[{\"reasoning_content\":\"I should call the tool.\",\"tool_calls\":[{\"id\":\"call_1\","
           "\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}}]},"
           "\"A canned reply to poll\", \"Another\", \"litellm.RateLimitError\"]",
           1);
    std::optional<modelapi::Client> client;
    const Outcome created = outcome_of([&] { client.emplace(test_client("ok")); });
    unsetenv("DEBUG_MOCK_RESPONSES");
    if (!check(!created.error && !created.threw_other, "canned poll: the client is created",
               created.describe())) {
        return;
    }

    // Polled with wait 0: only events, then done, and done again.
    std::vector<modelapi::PollResult> results;
    std::string reasoning_text;
    std::string arguments;
    std::string tool_id;
    std::string json;
    bool socket_before = true;
    bool socket_after = true;
    bool done_again = false;
    bool done_emptied = false;
    Outcome out = outcome_of([&] {
        modelapi::Stream stream = client->stream_start(HELLO);
        socket_before = stream.waits_on().has_value();
        modelapi::Event event;
        for (int i = 0; i < 1000; i++) {
            const modelapi::PollResult result = stream.poll(event);
            results.push_back(result);
            if (result != modelapi::PollResult::event) {
                break;
            }
            if (event.kind == modelapi::EventKind::reasoning) {
                reasoning_text += event.text;
            } else if (event.kind == modelapi::EventKind::tool_call) {
                arguments += event.text;
                tool_id += event.tool_id.value_or("");
            }
        }
        event.text = "stale";
        done_again = stream.poll(event) == modelapi::PollResult::done;
        done_emptied = is_empty(event);
        socket_after = stream.waits_on().has_value();
        json = stream.completion_json();
    });
    const bool events_then_done =
        results.size() > 1 && results.back() == modelapi::PollResult::done &&
        std::all_of(results.begin(), results.end() - 1,
                    [](modelapi::PollResult r) { return r == modelapi::PollResult::event; });
    std::string sequence;
    for (modelapi::PollResult r : results) {
        sequence += show(r) + " ";
    }
    check(!out.error && events_then_done && reasoning_text == "I should call the tool." &&
              arguments == "{\"city\":\"Paris\"}" && tool_id == "call_1",
          "canned: stream_start() polled with wait 0 gives every event, then done",
          out.describe() + ", " + sequence + ", \"" + reasoning_text + "\", \"" + arguments +
              "\", " + tool_id);
    check(done_again && done_emptied, "canned: poll() after done is done again, out emptied");
    check(!socket_before && !socket_after,
          "canned: waits_on() is none (no socket), before the polls and after done");
    check(contains(json, "\"id\":\"call_1\"") && contains(json, "\"finish_reason\":\"tool_calls\""),
          "canned: completion_json() of a polled stream holds the tool call", json);

    // The JSON form; a wait longer than the C API's 2^32-1 ms is cut, not wrapped.
    std::string text;
    int pending = 0;
    out = outcome_of([&] {
        modelapi::Stream stream = client->stream_start_json(TOOLS_REQUEST);
        modelapi::Event event;
        for (;;) {
            const modelapi::PollResult result = stream.poll(event, std::chrono::hours(24 * 100));
            if (result == modelapi::PollResult::done) {
                break;
            }
            pending += result == modelapi::PollResult::pending ? 1 : 0;
            text += event.text;
        }
    });
    check(!out.error && text == "A canned reply to poll" && pending == 0,
          "canned: stream_start_json() polled with a wait of 100 days, returning at each event",
          out.describe() + ", \"" + text + "\", " + std::to_string(pending) + " pending");

    // A negative wait is 0.
    text.clear();
    out = outcome_of([&] {
        modelapi::Stream stream = client->stream_start(HELLO);
        modelapi::Event event;
        while (stream.poll(event, std::chrono::milliseconds(-5)) == modelapi::PollResult::event) {
            text += event.text;
        }
    });
    check(!out.error && text == "Another", "canned: a negative wait polls as 0",
          out.describe() + ", \"" + text + "\"");

    // A canned error reply: HTTP 429 from stream_start() or the first poll().
    out = outcome_of([&] {
        modelapi::Stream stream = client->stream_start(HELLO);
        modelapi::Event event;
        while (stream.poll(event) != modelapi::PollResult::done) {
        }
    });
    check(out.failed_with(MODELAPI_HTTP_ERROR) && out.error->http_status() == 429 &&
              contains(out.error->what(), "RateLimitError"),
          "canned: a litellm.RateLimitError reply throws MODELAPI_HTTP_ERROR 429",
          out.describe());
}

void poll_argument_checks()
{
    modelapi::Client client = test_client("ok");

    Outcome out = outcome_of([&] { modelapi::Stream stream = client.stream_start_json("not json"); });
    check(out.failed_with(MODELAPI_INVALID_ARGUMENT),
          "stream_start_json(\"not json\") throws INVALID_ARGUMENT", out.describe());

    modelapi::Client moved = std::move(client);
    out = outcome_of([&] { modelapi::Stream stream = client.stream_start(HELLO); });
    check(out.failed_with(MODELAPI_INVALID_ARGUMENT),
          "stream_start() on a moved-from Client throws INVALID_ARGUMENT", out.describe());

    // A cancelled token: MODELAPI_ABORTED from stream_start() or the first poll().
    modelapi::Cancel cancel;
    cancel.cancel();
    out = outcome_of([&] {
        modelapi::Stream stream = moved.stream_start(HELLO, cancel);
        modelapi::Event event;
        stream.poll(event, std::chrono::seconds(5));
    });
    check(out.failed_with(MODELAPI_ABORTED), "stream_start() with a cancelled token throws ABORTED",
          out.describe());

    modelapi::Stream empty;
    modelapi::Event event;
    event.text = "stale";
    const modelapi::PollResult result = empty.poll(event);
    check(result == modelapi::PollResult::done && is_empty(event) && !empty.waits_on(),
          "an empty Stream: poll() is done, out emptied, waits_on() none", show(result));
}

void poll_checks(const modelapi::Client &ok, const modelapi::Client &unauthorized,
                 const modelapi::Client &long_api, const modelapi::Client &stream_error,
                 const modelapi::Client &slow, const modelapi::Client &agent)
{
    using std::chrono::milliseconds;

    // "ok", as an event loop does it: wait 0, then wait on the socket.
    PollRun run;
    std::optional<std::string_view> finish_reason;
    std::optional<std::string_view> request_id;
    std::string json;
    bool socket_after = true;
    Outcome out = outcome_of([&] {
        modelapi::Stream stream = ok.stream_start(HELLO);
        poll_to_end(stream, run);
        socket_after = stream.waits_on().has_value();
        json = stream.completion_json();
        finish_reason = stream.finish_reason();
        request_id = stream.request_id();
        check(finish_reason == "stop" && request_id == "req-hpp-1",
              "a polled stream's metadata: finish_reason \"stop\", request_id",
              show(finish_reason) + " " + show(request_id));
    });
    check(!out.error && !run.gave_up && run.events == content_events(OK_CHUNKS) &&
              run.done_again && run.out_emptied,
          "stream_start(\"ok\") polled with wait 0 and waits on its socket: the five chunks, "
          "done, done again",
          out.describe() + ": " + show(run.events));
    check(run.pending_without_socket == 0 && run.socket_waits == run.pending,
          "while pending, waits_on() names the socket",
          std::to_string(run.pending) + " pending, " +
              std::to_string(run.pending_without_socket) + " without a socket");
    check(!socket_after && contains(json, "\"content\":\"Hello from the test server\""),
          "after done: waits_on() is none; completion_json() has the answer", json);

    // "agent": every kind of event; a wait given to poll().
    for (const milliseconds wait : {milliseconds(0), milliseconds(500)}) {
        run = PollRun();
        out = outcome_of([&] {
            modelapi::Stream stream = agent.stream_start_json(TOOLS_REQUEST);
            poll_to_end(stream, run, wait);
            json = stream.completion_json();
        });
        check(!out.error && !run.gave_up && run.events == AGENT_EVENTS &&
                  is_whole_agent_answer(json),
              "stream_start_json(\"agent\") polled with wait " + std::to_string(wait.count()) +
                  " ms: every event, the whole answer",
              out.describe() + ": " + show(run.events) + " " + json);
    }

    // "slow" (no answer for 5 s): pending, for as long as asked.
    {
        modelapi::Cancel cancel;
        std::vector<modelapi::PollResult> results;
        long long start_ms = -1;
        long long waited_ms = -1;
        bool emptied = false;
        std::optional<modelapi::WaitsOn> waits;
        int ready = -1;
        out = outcome_of([&] {
            Clock::time_point started = Clock::now();
            modelapi::Stream stream = slow.stream_start(HELLO, cancel);
            start_ms = ms_between(started, Clock::now());
            modelapi::Event event;
            results.push_back(stream.poll(event));
            event.text = "stale";
            started = Clock::now();
            results.push_back(stream.poll(event, milliseconds(100)));
            waited_ms = ms_between(started, Clock::now());
            emptied = is_empty(event);
            waits = stream.waits_on();
            if (waits) {
                pollfd socket{};
                socket.fd = waits->fd;
                socket.events = POLLIN;
                ready = ::poll(&socket, 1, 50);
            }
            cancel.cancel();
            results.push_back(stream.poll(event));
        });
        std::string sequence;
        for (modelapi::PollResult r : results) {
            sequence += show(r) + " ";
        }
        check(start_ms >= 0 && start_ms < 1000,
              "stream_start(\"slow\") returns at once, before the answer",
              std::to_string(start_ms) + " ms");
        check(results.size() >= 2 && results[0] == modelapi::PollResult::pending &&
                  results[1] == modelapi::PollResult::pending && waited_ms >= 90 &&
                  waited_ms < 2000 && emptied,
              "\"slow\": poll() is pending; poll(100 ms) waits about 100 ms, out emptied",
              sequence + ", " + std::to_string(waited_ms) + " ms");
        check(waits && waits->fd >= 0 && !waits->wants_write && ready == 0,
              "\"slow\": waits_on() is the socket, waiting to read; it is not ready",
              waits ? std::to_string(waits->fd) + (waits->wants_write ? " write " : " read ") +
                          std::to_string(ready)
                    : std::string("(none)"));
        check(out.failed_with(MODELAPI_ABORTED) && results.size() == 2,
              "the poll after Cancel::cancel() throws MODELAPI_ABORTED",
              out.describe() + ", " + sequence);
    }

    // Stream::cancel() from another thread while poll() waits.
    {
        std::optional<modelapi::Stream> stream;
        out = outcome_of([&] { stream.emplace(slow.stream_start(HELLO)); });
        if (!out.error) {
            modelapi::Event event;
            const CancelRun cancelled = cancel_after(milliseconds(150), [&] { stream->cancel(); }, [&] {
                for (int i = 0; i < 10 && stream->poll(event, milliseconds(3000)) !=
                                              modelapi::PollResult::done;
                     i++) {
                }
            });
            const modelapi::PollResult after = stream->poll(event);
            check(cancelled.outcome.failed_with(MODELAPI_ABORTED) && cancelled.latency_ms >= 0 &&
                      cancelled.latency_ms < 2000 && after == modelapi::PollResult::done,
                  "Stream::cancel() from another thread stops a waiting poll(): ABORTED, "
                  "then done",
                  cancelled.outcome.describe() + ", " + std::to_string(cancelled.latency_ms) +
                      " ms after the cancel, then " + show(after));
        } else {
            check(false, "stream_start(\"slow\")", out.describe());
        }
    }

    // The client's timeout counts the time without progress across polls.
    {
        long long ms = -1;
        int pending = 0;
        out = outcome_of([&] {
            modelapi::Client quick("slow", base_url);
            quick.timeout(milliseconds(300)).max_retries(0);
            modelapi::Stream stream = quick.stream_start(HELLO);
            modelapi::Event event;
            const Clock::time_point started = Clock::now();
            try {
                while (ms_between(started, Clock::now()) < 5000 &&
                       stream.poll(event) == modelapi::PollResult::pending) {
                    pending++;
                    std::this_thread::sleep_for(milliseconds(10));
                }
            } catch (...) {
                ms = ms_between(started, Clock::now());
                throw;
            }
        });
        check(out.failed_with(MODELAPI_TIMEOUT) && ms >= 250 && ms < 4000 && pending > 5,
              "polls with wait 0 to a server that does not answer: MODELAPI_TIMEOUT after the "
              "client's timeout (300 ms)",
              out.describe() + " after " + std::to_string(ms) + " ms, " + std::to_string(pending) +
                  " pending");
    }

    // An HTTP error comes from a poll, not from stream_start().
    {
        bool started = false;
        bool done_after = false;
        run = PollRun();
        out = outcome_of([&] {
            modelapi::Stream stream = unauthorized.stream_start(HELLO);
            started = true;
            const Outcome polled = outcome_of([&] { poll_to_end(stream, run); });
            modelapi::Event event;
            done_after = stream.poll(event) == modelapi::PollResult::done;
            if (polled.error) {
                throw *polled.error;
            }
        });
        check(started && out.failed_with(MODELAPI_HTTP_ERROR) && out.error->http_status() == 401 &&
                  contains(out.error->what(), "Invalid API key provided") &&
                  !contains(out.error->what(), "sk-hpp-secret") && run.events.empty(),
              "stream_start(\"unauthorized\") returns; a poll throws MODELAPI_HTTP_ERROR 401 "
              "with the server's message",
              out.describe());
        check(done_after, "after the error, poll() is done");
    }

    // A mid-stream error, after the event before it.
    {
        run = PollRun();
        bool done_after = false;
        out = outcome_of([&] {
            modelapi::Stream stream = stream_error.stream_start(HELLO);
            const Outcome polled = outcome_of([&] { poll_to_end(stream, run, milliseconds(1000)); });
            json = stream.completion_json();
            modelapi::Event event;
            done_after = stream.poll(event) == modelapi::PollResult::done;
            if (polled.error) {
                throw *polled.error;
            }
        });
        check(out.failed_with(MODELAPI_SERVER_ERROR) && contains(out.error->what(), "model overloaded") &&
                  run.events == std::vector<Seen>{content("partial")} && done_after &&
                  contains(json, "\"content\":\"partial\""),
              "a polled mid-stream error throws MODELAPI_SERVER_ERROR after \"partial\", then done",
              out.describe() + ": " + show(run.events));
    }

    // A game loop: frames of 5 ms; each drains what came, never blocking.
    {
        std::size_t chunks = 0;
        int frames = 0;
        int pending = 0;
        bool all_x = true;
        out = outcome_of([&] {
            modelapi::Stream stream = long_api.stream_start(HELLO);
            modelapi::Event event;
            const Clock::time_point started = Clock::now();
            while (chunks < 5 && ms_between(started, Clock::now()) < 10000) {
                frames++;
                modelapi::PollResult result;
                while ((result = stream.poll(event)) == modelapi::PollResult::event) {
                    all_x = all_x && event.text == "x";
                    chunks++;
                }
                if (result == modelapi::PollResult::done) {
                    break;
                }
                pending++;
                std::this_thread::sleep_for(milliseconds(5));
            }
        });  // the Stream destroyed in the middle
        check(!out.error && chunks >= 5 && all_x && pending > 0,
              "a game loop polls \"long\" once a frame: chunks \"x\" between pending frames",
              out.describe() + ", " + std::to_string(chunks) + " chunks, " +
                  std::to_string(frames) + " frames, " + std::to_string(pending) + " pending");
    }

    // Polls and the blocking reads, on any stream.
    {
        std::vector<std::string> chunks;
        out = outcome_of([&] {
            for (std::string_view chunk : ok.stream_start(HELLO)) {
                chunks.emplace_back(chunk);
            }
        });
        check(!out.error && chunks == OK_CHUNKS, "a range-for over ok.stream_start(...)",
              out.describe() + ", \"" + join(chunks) + "\"");

        run = PollRun();
        out = outcome_of([&] {
            modelapi::Stream stream = ok.stream(HELLO);
            poll_to_end(stream, run, milliseconds(1000));
        });
        check(!out.error && run.events == content_events(OK_CHUNKS) && run.done_again,
              "a Stream of stream() (opened blocking) polled to its end",
              out.describe() + ": " + show(run.events));

        std::vector<Seen> events;
        out = outcome_of([&] {
            modelapi::Stream stream = agent.stream_start(HELLO);
            modelapi::Event event;
            for (int i = 0; i < 20 && events.empty(); i++) {
                if (stream.poll(event, milliseconds(1000)) == modelapi::PollResult::event) {
                    events.push_back(seen(event));
                }
            }
            if (std::optional<modelapi::Event> next = stream.next_event()) {
                events.push_back(seen(*next));
            }
            if (stream.poll(event, milliseconds(1000)) == modelapi::PollResult::event) {
                events.push_back(seen(event));
            }
            modelapi::Stream moved = std::move(stream);
            for (const modelapi::Event &e : moved.events()) {
                events.push_back(seen(e));
            }
            if (moved.poll(event) != modelapi::PollResult::done) {
                events.push_back(content("(not done)"));
            }
        });
        check(!out.error && events == AGENT_EVENTS,
              "poll(), next_event(), poll(), a move, then events(): each event once",
              out.describe() + ": " + show(events));
    }
}

void cancel_checks(const modelapi::Client &ok, const modelapi::Client &long_api,
                   const modelapi::Client &slow)
{
    using std::chrono::milliseconds;

    // A Cancel from another thread stops a range-for between two chunks.
    {
        modelapi::Cancel cancel;
        std::size_t chunks = 0;
        const CancelRun run = cancel_after(milliseconds(150), [&] { cancel.cancel(); }, [&] {
            for (std::string_view chunk : long_api.stream(HELLO, cancel)) {
                chunks += chunk == "x" ? 1 : 0;
            }
        });
        check(run.outcome.failed_with(MODELAPI_ABORTED) && run.outcome.error->cancelled() &&
                  chunks > 0 && chunks < 1000 && run.latency_ms >= 0 && run.latency_ms < 2000,
              "Cancel::cancel() from another thread: the range-for throws MODELAPI_ABORTED",
              run.outcome.describe() + ", " + std::to_string(chunks) + " chunks, " +
                  std::to_string(run.latency_ms) + " ms after the cancel");

        // The token stays cancelled until reset().
        Outcome out = outcome_of([&] { ok.complete(HELLO, cancel); });
        check(out.failed_with(MODELAPI_ABORTED), "a cancelled token fails complete() at once",
              out.describe());
        out = outcome_of([&] { modelapi::Stream stream = ok.stream(HELLO, cancel); });
        check(out.failed_with(MODELAPI_ABORTED), "a cancelled token fails stream() at once",
              out.describe());

        cancel.reset();
        std::string answer;
        std::string text;
        out = outcome_of([&] {
            answer = ok.complete(HELLO, cancel).content;
            for (std::string_view chunk : ok.stream(HELLO, cancel)) {
                text += chunk;
            }
        });
        check(!out.error && answer == "Hello from the test server" &&
                  text == "Hello from the test server",
              "after reset(), complete and stream with the token work", out.describe());
    }

    // Stream::cancel() from another thread.
    {
        std::size_t chunks = 0;
        modelapi::Stream stream = long_api.stream(HELLO);
        const CancelRun run = cancel_after(milliseconds(150), [&] { stream.cancel(); }, [&] {
            for (std::string_view chunk : stream) {
                chunks += chunk.size();
            }
        });
        check(run.outcome.failed_with(MODELAPI_ABORTED) && chunks > 0 && chunks < 1000 &&
                  run.latency_ms >= 0 && run.latency_ms < 2000,
              "Stream::cancel() from another thread: the range-for throws MODELAPI_ABORTED",
              run.outcome.describe() + ", " + std::to_string(chunks) + " chunks, " +
                  std::to_string(run.latency_ms) + " ms after the cancel");
        check(!stream.next().has_value(), "after the cancel, next() is nullopt");
    }

    // A callback stream with a Cancel.
    {
        modelapi::Cancel cancel;
        std::size_t chunks = 0;
        const CancelRun run = cancel_after(milliseconds(150), [&] { cancel.cancel(); }, [&] {
            long_api.stream(HELLO, [&](std::string_view) { chunks++; }, cancel);
        });
        check(run.outcome.failed_with(MODELAPI_ABORTED) && chunks > 0 && chunks < 1000 &&
                  run.latency_ms >= 0 && run.latency_ms < 2000,
              "a callback stream with a Cancel: MODELAPI_ABORTED after the chunks that arrived",
              run.outcome.describe() + ", " + std::to_string(chunks) + " chunks, " +
                  std::to_string(run.latency_ms) + " ms after the cancel");
    }

    // A complete() waiting for a server that does not answer.
    {
        modelapi::Cancel cancel;
        const CancelRun run = cancel_after(milliseconds(150), [&] { cancel.cancel(); },
                                           [&] { slow.complete(HELLO, cancel); });
        check(run.outcome.failed_with(MODELAPI_ABORTED) && run.latency_ms >= 0 &&
                  run.latency_ms < 2000,
              "Cancel stops a complete() waiting for the answer",
              run.outcome.describe() + ", " + std::to_string(run.latency_ms) +
                  " ms after the cancel");
    }
}

void move_checks()
{
    Outcome out = outcome_of([] {
        modelapi::Client a = test_client("ok");
        ModelApi *handle = a.get();
        modelapi::Client b = std::move(a);
        check(a.get() == nullptr && b.get() == handle,
              "a moved Client hands its handle over");
        check(b.complete(HELLO).content == "Hello from the test server",
              "the Client moved to works");
        const Outcome moved_from = outcome_of([&] { a.complete(HELLO); });
        check(moved_from.failed_with(MODELAPI_INVALID_ARGUMENT),
              "a moved-from Client throws INVALID_ARGUMENT", moved_from.describe());

        modelapi::Client c = test_client("unauthorized");
        c = std::move(b);  // closes c's own client
        check(c.complete(HELLO).content == "Hello from the test server",
              "move assignment closes the old client and takes the new one");

        modelapi::Client adopted(c.release());
        check(c.get() == nullptr && adopted.complete(HELLO).content == "Hello from the test server",
              "release() and the adopting constructor pass the handle on");

        // Streams.
        modelapi::Stream s = adopted.stream(HELLO);
        const std::optional<std::string_view> first = s.next();
        check(first == "Hello", "the first chunk before the move", show(first));
        modelapi::Stream t = std::move(s);
        check(s.get() == nullptr && !s.next().has_value() && s.begin() == s.end() &&
                  !s.finish_reason().has_value() && !s.usage().has_value(),
              "a moved-from Stream is empty");
        std::string rest;
        for (std::string_view chunk : t) {
            rest += chunk;
        }
        check(rest == " from the test server" && t.finish_reason() == "stop",
              "the Stream moved to goes on where it was", rest);

        // Move assignment over a half-read stream frees it (closing its
        // connection at once).
        modelapi::Client long_api = test_client("long");
        modelapi::Stream u = long_api.stream(HELLO);
        check(u.next() == "x", "a chunk of \"long\"");
        const Clock::time_point started = Clock::now();
        u = adopted.stream(HELLO);
        const long long ms = ms_between(started, Clock::now());
        std::string text;
        for (std::string_view chunk : u) {
            text += chunk;
        }
        check(text == "Hello from the test server" && ms < 2000,
              "move assignment over a half-read stream frees it at once",
              text + ", " + std::to_string(ms) + " ms");

        ModelApiStream *raw = t.release();
        check(raw != nullptr && t.get() == nullptr, "Stream::release() gives the handle up");
        modelapi_stream_free(raw);

        modelapi::Stream empty;
        check(empty.begin() == empty.end() && !empty.id().has_value(),
              "a default-constructed Stream is empty");
        empty.cancel();  // harmless
    });
    check(!out.error && !out.threw_other, "move checks ran without an exception", out.describe());
}

void setter_checks()
{
    modelapi::Client client = test_client("ok");

    Outcome out = outcome_of([&] { client.timeout(std::chrono::milliseconds(0)); });
    check(out.failed_with(MODELAPI_INVALID_ARGUMENT), "timeout(0 ms) throws INVALID_ARGUMENT",
          out.describe());
    out = outcome_of([&] { client.timeout(std::chrono::milliseconds(-5)); });
    check(out.failed_with(MODELAPI_INVALID_ARGUMENT), "a negative timeout throws INVALID_ARGUMENT",
          out.describe());
    out = outcome_of([&] { client.header("bad name", "v"); });
    check(out.failed_with(MODELAPI_INVALID_ARGUMENT),
          "header(\"bad name\", ...) throws INVALID_ARGUMENT", out.describe());
    out = outcome_of([&] { client.ca_file("/nonexistent/modelapi-ca.pem"); });
    check(out.error && out.error->status() != MODELAPI_OK,
          "ca_file of a missing file throws", out.describe());

    modelapi::Client *same = nullptr;
    std::string answer;
    out = outcome_of([&] {
        same = &client.timeout(std::chrono::seconds(5))
                    .max_retries(1)
                    .header("X-Example-Test", "hpp_test");
        answer = client.complete(HELLO).content;
    });
    check(!out.error && same == &client && answer == "Hello from the test server",
          "the setters chain and the client works after them", out.describe());

    // The trace hook: lines with levels, on this thread, moved with the
    // client, and off again with an empty hook.
    std::vector<std::pair<modelapi::TraceLevel, std::string>> lines;
    out = outcome_of([&] {
        client.trace([&lines](modelapi::TraceLevel level, std::string_view line) {
            lines.emplace_back(level, std::string(line));
            throw std::runtime_error("a throwing hook is swallowed");
        });
        modelapi::Client moved = std::move(client);
        answer = moved.complete(HELLO).content;
        client = std::move(moved);
    });
    bool told_status = false;
    for (const auto &line : lines) {
        told_status |= line.first == modelapi::TraceLevel::debug &&
                       line.second.rfind("HTTP 200", 0) == 0;
    }
    check(!out.error && answer == "Hello from the test server" && told_status,
          "trace() tells each step (HTTP 200 at debug level), through a move",
          out.describe() + ", " + std::to_string(lines.size()) + " lines");
    const std::size_t told = lines.size();
    out = outcome_of([&] {
        client.trace(nullptr);
        answer = client.complete(HELLO).content;
    });
    check(!out.error && lines.size() == told, "an empty hook turns the trace off", out.describe());

    // The proxy: a bad URL throws, "" removes it.
    out = outcome_of([&] { client.proxy("socks5://proxy:1080"); });
    check(out.failed_with(MODELAPI_INVALID_ARGUMENT), "proxy(\"socks5://...\") throws INVALID_ARGUMENT",
          out.describe());
    out = outcome_of([&] {
        client.proxy("http://127.0.0.1:9").proxy("");
        answer = client.complete(HELLO).content;
    });
    check(!out.error && answer == "Hello from the test server", "proxy(\"\") removes the proxy",
          out.describe());

    // The name table: a malformed entry throws and says the form; an entry
    // sends a host's requests to its address (the host matched whatever its
    // case); clear_resolve() empties the table.
    out = outcome_of([&] { client.resolve("model.test:443"); });
    check(out.failed_with(MODELAPI_INVALID_ARGUMENT) && contains(out.error->what(), "HOST:PORT:ADDRESS"),
          "resolve(\"model.test:443\") throws INVALID_ARGUMENT naming the form", out.describe());
    const std::string port = base_url.substr(base_url.rfind(':') + 1);
    out = outcome_of([&] {
        modelapi::Client named("ok", "http://model.test:" + port);
        named.timeout(std::chrono::seconds(10)).resolve("MODEL.test:" + port + ":127.0.0.1");
        answer = named.complete(HELLO).content;
    });
    check(!out.error && answer == "Hello from the test server",
          "resolve() sends the requests to a host the system does not know to the table's address",
          out.describe());
    out = outcome_of([&] {
        // Nothing listens on 127.0.0.2: refused, until the table is cleared.
        client.max_retries(0).resolve("127.0.0.1:" + port + ":127.0.0.2");
        client.complete(HELLO);
    });
    check(out.failed_with(MODELAPI_TRANSPORT_ERROR) && contains(out.error->what(), "127.0.0.2"),
          "resolve() overrides even an IP address's host", out.describe());
    out = outcome_of([&] {
        answer = client.clear_resolve().complete(HELLO).content;
    });
    check(!out.error && answer == "Hello from the test server", "clear_resolve() empties the table",
          out.describe());

    // Canned replies set on the client: they answer first, a malformed
    // value throws and changes nothing, and clear_mock_responses() leaves
    // the server to answer.
    out = outcome_of([&] { client.mock_responses(R"([{"colour": "blue"}])"); });
    check(out.failed_with(MODELAPI_INVALID_ARGUMENT), "mock_responses(malformed) throws INVALID_ARGUMENT",
          out.describe());
    out = outcome_of([&] { answer = client.mock_responses(R"(["Canned by the setter"])").complete(HELLO).content; });
    check(!out.error && answer == "Canned by the setter", "mock_responses() answers the next call", out.describe());
    out = outcome_of([&] {
        answer = client.mock_responses(R"(["never used"])").clear_mock_responses().complete(HELLO).content;
    });
    check(!out.error && answer == "Hello from the test server", "clear_mock_responses() leaves none",
          out.describe());
}

void thread_checks(const modelapi::Client &ok)
{
    // One Client, several threads at once (its calls are const).
    constexpr int threads = 4;
    std::vector<std::string> answers(threads);
    std::vector<std::string> streamed(threads);
    std::vector<std::thread> workers;
    for (int i = 0; i < threads; i++) {
        workers.emplace_back([&, i] {
            const auto slot = static_cast<std::size_t>(i);
            try {
                answers[slot] = ok.complete({modelapi::user("thread " + std::to_string(i))}).content;
                for (std::string_view chunk : ok.stream(HELLO)) {
                    streamed[slot] += chunk;
                }
            } catch (const std::exception &e) {
                answers[slot] = std::string("error: ") + e.what();
            }
        });
    }
    for (std::thread &worker : workers) {
        worker.join();
    }
    bool all = true;
    std::string details;
    for (int i = 0; i < threads; i++) {
        const auto slot = static_cast<std::size_t>(i);
        if (answers[slot] != "Hello from the test server" ||
            streamed[slot] != "Hello from the test server") {
            all = false;
            details += answers[slot] + " | " + streamed[slot] + "; ";
        }
    }
    check(all, "one Client used by 4 threads at once", details);
}

int run_checks()
{
    version_checks();
    message_checks();
    constructor_checks();

    std::optional<modelapi::Client> ok;
    std::optional<modelapi::Client> unauthorized;
    std::optional<modelapi::Client> long_api;
    std::optional<modelapi::Client> stream_error;
    std::optional<modelapi::Client> slow;
    std::optional<modelapi::Client> agent;
    const Outcome out = outcome_of([&] {
        ok.emplace(test_client("ok"));
        unauthorized.emplace(test_client("unauthorized", "sk-hpp-secret"));
        long_api.emplace(test_client("long"));
        stream_error.emplace(test_client("stream-error"));
        slow.emplace(test_client("slow"));
        agent.emplace(test_client("agent"));
    });
    if (!check(!out.error && !out.threw_other, "the clients of the test server are created",
               out.describe())) {
        std::printf("Bail out! cannot create the clients\n");
        return 1;
    }
    complete_checks(*ok);
    http_error_checks(*unauthorized);
    range_for_checks(*ok);
    callback_checks(*ok, *long_api);
    stream_error_checks(*stream_error);
    pull_event_checks(*agent, *stream_error);
    callback_event_checks(*agent, *ok, *long_api, *stream_error);
    canned_event_checks();
    canned_poll_checks();
    poll_argument_checks();
    poll_checks(*ok, *unauthorized, *long_api, *stream_error, *slow, *agent);
    cancel_checks(*ok, *long_api, *slow);
    move_checks();
    setter_checks();
    thread_checks(*ok);
    return 0;
}

}  // namespace

int main(int argc, char **argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <base_url of the test server>\n", argv[0]);
        return 2;
    }
    base_url = argv[1];
    // The checks talk to the server: no canned replies from the caller.
    unsetenv("DEBUG_MOCK_RESPONSES");

    const Outcome out = outcome_of([] { run_checks(); });
    check(!out.error && !out.threw_other, "no exception escaped the checks", out.describe());

    std::printf("%d passed, %d failed\n", tests_passed, tests_failed);
    return tests_failed == 0 ? 0 : 1;
}
