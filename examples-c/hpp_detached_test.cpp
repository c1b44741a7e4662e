// hpp_detached_test.cpp: the detached streams of the C++17 interface
// (Client::stream_detached, Stream::request_*, feed_head, feed, feed_end),
// with the answer fed by hand: no network, no server.
//
//   hpp_detached_test
//
// Output (stdout), TAP-like, one line per check:
//   ok <n> - <description>
//   not ok <n> - <description>: <details>
// and last, alone on its line:
//   <passed> passed, <failed> failed
// Exit status: 0 when every check passed, 1 otherwise.
//
// Everything is freed by the RAII types, so valgrind --leak-check=full and
// LeakSanitizer report no leaks.

#include <cctype>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "modelapi.hpp"

namespace {

int passed = 0;
int failed = 0;

void check(bool ok, const std::string &what, const std::string &details = "")
{
    const int n = passed + failed + 1;
    if (ok) {
        ++passed;
        std::printf("ok %d - %s\n", n, what.c_str());
    } else {
        ++failed;
        std::printf("not ok %d - %s: %s\n", n, what.c_str(), details.c_str());
    }
}

// The status of the Error f throws, or MODELAPI_OK when it throws none.
template <class F>
ModelApiStatus status_of(F &&f, int *http_status = nullptr, std::string *message = nullptr)
{
    try {
        f();
    } catch (const modelapi::Error &e) {
        if (http_status != nullptr) {
            *http_status = e.http_status();
        }
        if (message != nullptr) {
            *message = e.what();
        }
        return e.status();
    }
    return MODELAPI_OK;
}

std::string content_event(std::string_view text)
{
    return "data: {\"id\":\"chatcmpl-d\",\"object\":\"chat.completion.chunk\",\"created\":1,"
           "\"model\":\"fed-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" +
           std::string(text) + "\"},\"finish_reason\":null}]}\n\n";
}

const std::string FINISH =
    "data: {\"id\":\"chatcmpl-d\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"fed-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}}\n\n"
    "data: [DONE]\n\n";

// Polls (no wait) until pending or done; the text of the content events.
std::string poll_text(modelapi::Stream &stream, modelapi::PollResult &last)
{
    std::string text;
    modelapi::Event event;
    while ((last = stream.poll(event)) == modelapi::PollResult::event) {
        if (event.kind == modelapi::EventKind::content) {
            text += event.text;
        }
    }
    return text;
}

modelapi::Client fed_client()
{
    modelapi::Client client("fed-model", "http://127.0.0.1:9", "sk-detached-key");
    client.clear_mock_responses().header("X-Custom", "custom value");
    return client;
}

void request_checks()
{
    const modelapi::Client client = fed_client();
    modelapi::Stream stream = client.stream_detached({modelapi::user("Say \"hi\"")});
    check(stream.detached(), "stream_detached: detached()");
    check(stream.request_url() == "http://127.0.0.1:9/v1/chat/completions",
          "request_url: the chat completions URL", std::string(stream.request_url()));
    const auto headers = stream.request_headers();
    auto header = [&](std::string_view name) -> std::optional<std::string_view> {
        for (const auto &[n, v] : headers) {
            if (n.size() == name.size()) {
                bool same = true;
                for (std::size_t i = 0; i < n.size(); ++i) {
                    same = same && std::tolower(static_cast<unsigned char>(n[i])) ==
                                       std::tolower(static_cast<unsigned char>(name[i]));
                }
                if (same) {
                    return v;
                }
            }
        }
        return std::nullopt;
    };
    check(header("authorization") == std::optional<std::string_view>("Bearer sk-detached-key"),
          "request_headers: Authorization with the key");
    check(header("x-custom") == std::optional<std::string_view>("custom value"),
          "request_headers: the client's own header");
    check(header("content-type") == std::optional<std::string_view>("application/json"),
          "request_headers: the JSON content type");
    check(!header("host") && !header("content-length"),
          "request_headers: no framing headers");
    const std::string body(stream.request_body());
    check(body.find("\"stream\":true") != std::string::npos &&
              body.find("Say \\\"hi\\\"") != std::string::npos &&
              body.find("\"model\":\"fed-model\"") != std::string::npos,
          "request_body: the model, the message, stream true", body);
    check(!stream.waits_on().has_value(), "waits_on: no socket");

    // Moving the Stream keeps the request's views.
    const std::string_view url = stream.request_url();
    modelapi::Stream moved = std::move(stream);
    check(moved.request_url().data() == url.data(), "a moved Stream keeps its request");

    const modelapi::Stream json_stream = client.stream_detached_json(
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":0.5}");
    check(std::string(json_stream.request_body()).find("\"temperature\":0.5") !=
              std::string::npos,
          "stream_detached_json: the request object's fields pass through");
    check(status_of([&] { (void)client.stream_detached_json("not json"); }) ==
              MODELAPI_INVALID_ARGUMENT,
          "stream_detached_json: bad JSON throws MODELAPI_INVALID_ARGUMENT");
}

void feed_checks()
{
    const modelapi::Client client = fed_client();
    modelapi::Stream stream = client.stream_detached({modelapi::user("hi")});
    modelapi::Event event;
    check(stream.poll(event) == modelapi::PollResult::pending, "poll before the head: pending");
    std::string message;
    const ModelApiStatus before = status_of([&] { (void)stream.next(); }, nullptr, &message);
    check(before == MODELAPI_PENDING, "next() before the head throws MODELAPI_PENDING",
          modelapi::status_name(before));
    check(status_of([&] { stream.feed("data: "); }) == MODELAPI_INVALID_ARGUMENT,
          "feed before the head: MODELAPI_INVALID_ARGUMENT");
    check(status_of([&] { stream.feed_end(); }) == MODELAPI_INVALID_ARGUMENT,
          "feed_end before the head: MODELAPI_INVALID_ARGUMENT");

    stream.feed_head(200, "text/event-stream");
    check(status_of([&] { stream.feed_head(200, "text/event-stream"); }) ==
              MODELAPI_INVALID_ARGUMENT,
          "a second feed_head: MODELAPI_INVALID_ARGUMENT");

    // "Grüße" cut inside the ü.
    const std::string first = content_event("Grüße");
    const std::size_t cut = first.find("ü") + 1;
    stream.feed(first.data(), cut);
    modelapi::PollResult last;
    std::string text = poll_text(stream, last);
    check(text.empty() && last == modelapi::PollResult::pending,
          "half an event: pending, no text");
    stream.feed(std::string_view(first).substr(cut));
    text = poll_text(stream, last);
    check(text == "Grüße" && last == modelapi::PollResult::pending,
          "the rest of it: its text at once, then pending", text);

    // The blocking reads throw PENDING, and the stream goes on.
    bool threw_pending = false;
    try {
        for (const modelapi::Event &e : stream.events()) {
            (void)e;
        }
    } catch (const modelapi::Error &e) {
        threw_pending = e.pending() && e.status() == MODELAPI_PENDING;
    }
    check(threw_pending, "a range-for that needs bytes throws Error::pending()");
    stream.feed(content_event(", ") + content_event("world"));
    std::string more;
    try {
        while (auto e = stream.next_event()) {
            more += e->text;
        }
    } catch (const modelapi::Error &e) {
        threw_pending = e.pending();
    }
    check(more == ", world" && threw_pending,
          "after the pending throw, next_event() goes on with the next pieces", more);

    // The rest, one byte at a time.
    for (char c : FINISH) {
        stream.feed(&c, 1);
    }
    stream.feed_end();
    check(status_of([&] { stream.feed("x"); }) == MODELAPI_INVALID_ARGUMENT,
          "feed after the end: MODELAPI_INVALID_ARGUMENT");
    text = poll_text(stream, last);
    check(text.empty() && last == modelapi::PollResult::done, "after the end: done");
    check(stream.finish_reason() == std::optional<std::string_view>("stop"),
          "finish_reason: stop");
    const auto usage = stream.usage();
    check(usage && usage->prompt_tokens == 4 && usage->completion_tokens == 2 &&
              usage->total_tokens == 6,
          "usage: 4 + 2 = 6");
    const std::string json = stream.completion_json();
    check(json.find("\"content\":\"Grüße, world\"") != std::string::npos,
          "completion_json: the fed text", json);
    check(!stream.next().has_value(), "next() at the end: nullopt");
}

void error_answer_checks()
{
    const modelapi::Client client = fed_client();
    modelapi::Stream stream = client.stream_detached({modelapi::user("hi")});
    stream.feed_head(401, "application/json");
    stream.feed("{\"error\":{\"message\":\"Invalid API key ");
    modelapi::Event event;
    check(stream.poll(event) == modelapi::PollResult::pending,
          "an error answer before its end: pending");
    stream.feed("provided\",\"type\":\"auth_error\"}}");
    stream.feed_end();
    int http_status = 0;
    std::string message;
    const ModelApiStatus status =
        status_of([&] { (void)stream.poll(event); }, &http_status, &message);
    check(status == MODELAPI_HTTP_ERROR && http_status == 401 &&
              message.find("Invalid API key provided") != std::string::npos,
          "a 401 fed: MODELAPI_HTTP_ERROR, 401, the server's message",
          std::string(modelapi::status_name(status)) + " " + message);

    // A plain JSON answer, read whole at its end.
    modelapi::Stream json = client.stream_detached({modelapi::user("hi")});
    json.feed_head(200, "application/json; charset=utf-8");
    const std::string body =
        "{\"id\":\"chatcmpl-j\",\"object\":\"chat.completion\",\"created\":1,"
        "\"model\":\"fed-model\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
        "\"content\":\"Plain JSON\"},\"finish_reason\":\"stop\"}]}";
    json.feed(body.substr(0, 20));
    modelapi::PollResult last;
    std::string text = poll_text(json, last);
    check(text.empty() && last == modelapi::PollResult::pending,
          "a JSON answer before its end: pending");
    json.feed(body.substr(20));
    json.feed_end();
    text = poll_text(json, last);
    check(text == "Plain JSON" && last == modelapi::PollResult::done,
          "a JSON answer: its content as an event, then done", text);

    // Cut short: no [DONE], no finish_reason.
    modelapi::Stream cut = client.stream_detached({modelapi::user("hi")});
    cut.feed_head(200, std::nullopt);
    cut.feed(content_event("partial"));
    cut.feed_end();
    std::string got;
    const ModelApiStatus cut_status = status_of([&] { got = poll_text(cut, last); });
    check(cut_status == MODELAPI_TRANSPORT_ERROR,
          "a stream cut short: MODELAPI_TRANSPORT_ERROR after its text",
          modelapi::status_name(cut_status));
}

void other_stream_checks()
{
    modelapi::Client canned("canned", "http://127.0.0.1:9");
    canned.mock_responses("[\"Canned and detached.\", \"Started.\"]");
    modelapi::Stream stream = canned.stream_detached({modelapi::user("hi")});
    modelapi::PollResult last;
    std::string text = poll_text(stream, last);
    check(text == "Canned and detached." && last == modelapi::PollResult::done,
          "canned replies: the events are there at once", text);
    check(status_of([&] {
              stream.feed_head(200, "text/event-stream");
              stream.feed(content_event("ignored"));
              stream.feed_end();
          }) == MODELAPI_OK,
          "canned replies: what is fed is accepted");
    check(poll_text(stream, last).empty() && last == modelapi::PollResult::done,
          "canned replies: and ignored");

    modelapi::Stream started = canned.stream_start({modelapi::user("hi")});
    check(!started.detached(), "a started stream is not detached");
    check(status_of([&] { (void)started.request_url(); }) == MODELAPI_INVALID_ARGUMENT &&
              status_of([&] { (void)started.request_headers(); }) == MODELAPI_INVALID_ARGUMENT &&
              status_of([&] { (void)started.request_body(); }) == MODELAPI_INVALID_ARGUMENT,
          "its request_*: MODELAPI_INVALID_ARGUMENT");
    check(status_of([&] { started.feed_head(200, "text/event-stream"); }) ==
              MODELAPI_INVALID_ARGUMENT,
          "its feed_head: MODELAPI_INVALID_ARGUMENT");

    modelapi::Stream empty;
    check(!empty.detached() &&
              status_of([&] { (void)empty.request_url(); }) == MODELAPI_INVALID_ARGUMENT &&
              status_of([&] { empty.feed("x"); }) == MODELAPI_INVALID_ARGUMENT,
          "an empty Stream: not detached, its calls throw");
}

}  // namespace

int main()
{
    try {
        request_checks();
        feed_checks();
        error_answer_checks();
        other_stream_checks();
    } catch (const std::exception &e) {
        check(false, "no unexpected exception", e.what());
    }
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
