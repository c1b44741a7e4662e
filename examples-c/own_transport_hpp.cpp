// own_transport_hpp.cpp: own_transport.c in C++17, over modelapi.hpp: libcurl
// (its easy interface, one blocking curl_easy_perform with callbacks)
// carries the bytes of a detached modelapi::Stream.
//
//   own_transport_hpp [question...]    (default: "Write a haiku about HTTP")
//
// Client::stream_detached builds the request and opens no connection;
// curl sends it (Stream::request_url, request_headers, request_body); its
// header callback catches the final status and Content-Type (skipping a
// 1xx), its write callback feeds the head once (Stream::feed_head), then
// each piece of the body (Stream::feed), and polls the events those bytes
// completed until PollResult::pending, printing the text as it arrives.
// After the transfer: Stream::feed_end, and the events left (an error
// answer or a plain JSON one is read whole at its end). No exception may
// unwind through curl: one thrown in a callback is kept, the transfer
// stopped, and the exception rethrown after curl_easy_perform.
//
// Talks to MODEL_API_URL / MODEL_NAME (MODEL_API_KEY if needed); the
// request also carries "X-Example: own_transport". Without MODEL_API_URL
// it answers with a canned reply: the stream answers at once and there is
// nothing to carry.
// stdout, stderr and the exit status: as own_transport.c's.

#include <cctype>
#include <cstdio>
#include <exception>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <curl/curl.h>

#include "common.h"  // example_client, user_message_json
#include "modelapi.hpp"

namespace {

// Whether stdout's last line is not ended yet (text printed, no '\n').
bool line_open = false;
bool printed_any = false;

// What the curl callbacks share with run().
struct Transfer {
    explicit Transfer(modelapi::Stream &s) : stream(s) {}
    modelapi::Stream &stream;  // run()'s, which outlives the transfer
    long status = 0;             // the last status line's code
    std::string content_type;    // its Content-Type ("" if none)
    bool head_fed = false;
    std::exception_ptr error;    // thrown in a callback, rethrown after curl
    std::size_t pieces = 0, bytes = 0;
};

// Reads what the stream has until it needs more bytes (false) or ends
// (true); prints the text. A failure throws.
bool read_events(Transfer &t)
{
    modelapi::Event event;
    modelapi::PollResult polled;
    while ((polled = t.stream.poll(event)) == modelapi::PollResult::event) {
        if (event.kind == modelapi::EventKind::content && !event.text.empty()) {
            std::cout << event.text << std::flush;  // a view: print it now
            line_open = event.text.back() != '\n';
            printed_any = true;
        }
    }
    return polled == modelapi::PollResult::done;
}

void feed_head(Transfer &t)
{
    if (!t.head_fed) {
        t.head_fed = true;
        t.stream.feed_head(static_cast<int>(t.status),
                           t.content_type.empty()
                               ? std::nullopt
                               : std::optional<std::string_view>(t.content_type));
    }
}

// curl: one header line, with its CRLF. A status line starts a new head
// (a 1xx interim answer is followed by the final one).
std::size_t on_header(char *line, std::size_t size, std::size_t count, void *user_data) noexcept
{
    auto &t = *static_cast<Transfer *>(user_data);
    const std::string_view text(line, size * count);
    if (t.head_fed) {
        return text.size();  // trailers
    }
    if (text.substr(0, 5) == "HTTP/") {
        const std::size_t space = text.find(' ');
        t.status = space == std::string_view::npos ? 0 : std::strtol(line + space + 1, nullptr, 10);
        t.content_type.clear();
        return text.size();
    }
    const std::size_t colon = text.find(':');
    std::string name(text.substr(0, colon == std::string_view::npos ? 0 : colon));
    for (char &c : name) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (name == "content-type") {
        std::string_view value = text.substr(colon + 1);
        const std::size_t first = value.find_first_not_of(" \t");
        const std::size_t last = value.find_last_not_of(" \t\r\n");
        t.content_type = first == std::string_view::npos
                             ? std::string()
                             : std::string(value.substr(first, last - first + 1));
    }
    return text.size();
}

// curl: a piece of the body, valid during the call only (feed copies it).
std::size_t on_body(char *bytes, std::size_t size, std::size_t count, void *user_data) noexcept
{
    auto &t = *static_cast<Transfer *>(user_data);
    const std::size_t len = size * count;
    if (t.status < 200) {
        return len;
    }
    try {
        feed_head(t);
        t.stream.feed(bytes, len);
        ++t.pieces;
        t.bytes += len;
        read_events(t);
        return len;
    } catch (...) {
        t.error = std::current_exception();
        return 0;  // less than len: curl stops with CURLE_WRITE_ERROR
    }
}

struct CurlFree {
    void operator()(CURL *easy) const noexcept { curl_easy_cleanup(easy); }
    void operator()(curl_slist *list) const noexcept { curl_slist_free_all(list); }
};

int run(int argc, char **argv)
{
    ModelApi *api = example_client(
        "[\"Bytes in someone's hands\\nthe library reads them all\\nthe host moves the wire\"]");
    if (api == nullptr) {
        return 1;
    }
    modelapi::Client client(api);  // adopts it
    client.header("X-Example", "own_transport");

    std::string question;
    for (int i = 1; i < argc; ++i) {
        question += (i > 1 ? " " : "") + std::string(argv[i]);
    }
    if (question.empty()) {
        question = "Write a haiku about HTTP";
    }
    modelapi::Stream stream = client.stream_detached_json(
        "{\"messages\":" + modelapi::to_json({modelapi::user(question)}) +
        ",\"stream_options\":{\"include_usage\":true}}");
    Transfer t(stream);

    if (read_events(t)) {
        std::cerr << "(canned replies: the stream answered at once; there is nothing to carry)\n";
    } else {
        const std::string url(stream.request_url());
        const auto request_headers = stream.request_headers();
        const std::string_view body = stream.request_body();  // the stream's
        std::cerr << "request: POST " << url << " (" << request_headers.size() << " headers, "
                  << body.size() << " bytes of JSON)\n";

        // curl_slist_append copies each line; the list is ours.
        std::unique_ptr<curl_slist, CurlFree> headers;
        for (const auto &[name, value] : request_headers) {
            const std::string line = std::string(name) + ": " + std::string(value);
            curl_slist *longer = curl_slist_append(headers.get(), line.c_str());
            if (longer == nullptr) {
                throw std::bad_alloc();
            }
            headers.release();
            headers.reset(longer);
        }
        curl_slist *longer = curl_slist_append(headers.get(), "Expect:");
        if (longer == nullptr) {
            throw std::bad_alloc();
        }
        headers.release();
        headers.reset(longer);

        std::unique_ptr<CURL, CurlFree> easy(curl_easy_init());
        if (!easy) {
            std::cerr << "error: curl: cannot set the transfer up\n";
            return 1;
        }
        CURL *e = easy.get();
        curl_easy_setopt(e, CURLOPT_URL, url.c_str());
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers.get());
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());  // outlives the transfer
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);  // the host's timeouts
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        const CURLcode result = curl_easy_perform(e);

        if (t.error) {
            std::rethrow_exception(t.error);  // the stream's failure, e.g. an error event
        }
        if (result != CURLE_OK) {
            std::cerr << "error: curl: " << curl_easy_strerror(result) << '\n';
        }
        if (!t.head_fed && result == CURLE_OK && t.status >= 200) {
            feed_head(t);  // an answer with an empty body
        }
        if (!t.head_fed) {
            return 1;  // no answer came: nothing for the stream
        }
        stream.feed_end();
        if (!read_events(t)) {
            throw modelapi::Error(MODELAPI_TRANSPORT_ERROR, "the stream needs more bytes");
        }
    }
    if (line_open || !printed_any) {
        std::cout << '\n';  // end the answer's line
    }
    std::cout << std::flush;
    std::cerr << "fed: " << t.pieces << " pieces, " << t.bytes << " bytes\n";
    std::cerr << "finish_reason: " << stream.finish_reason().value_or("(none)") << '\n';
    if (const auto usage = stream.usage()) {
        std::cerr << "usage: " << usage->prompt_tokens << " + " << usage->completion_tokens
                  << " = " << usage->total_tokens << " tokens\n";
    }
    return 0;
}

}  // namespace

int main(int argc, char **argv)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        std::fputs("error: curl: cannot initialise\n", stderr);
        return 1;
    }
    int code = 1;
    try {
        code = run(argc, argv);
    } catch (const modelapi::Error &e) {
        if (line_open) {
            std::cout << '\n';  // end the partial answer's line
        }
        std::cout << std::flush;
        std::fprintf(stderr, "error: %s (%d): %s\n", modelapi::status_name(e.status()),
                     static_cast<int>(e.status()), e.what());
        if (e.status() == MODELAPI_HTTP_ERROR) {
            std::fprintf(stderr, "http status: %d\n", e.http_status());
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
    }
    curl_global_cleanup();
    return code;
}
