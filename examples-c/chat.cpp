// chat.cpp: an interactive multi-turn chat, in C++17, over modelapi.hpp.
//
//   chat                        (one question per line; /quit or EOF ends)
//
// Uses the C++ interface of include/modelapi.hpp: a modelapi::Client (RAII,
// move-only), modelapi::Message history, and the callback form of
// Client::stream; failures are modelapi::Error exceptions carrying the
// status (and the HTTP status).
//
// Each answer is streamed and printed as it arrives; the whole history
// (user and assistant messages) goes with every question.
//
// Talks to MODEL_API_URL / MODEL_NAME (MODEL_API_KEY if needed); without
// MODEL_API_URL it answers with canned replies.
// stdout: "assistant: <answer>\n" per question; the prompt "you> " only when
// stdin is a terminal. stderr: errors, as
//   error: <STATUS_NAME> (<number>): <message>
//   http status: <n>                (for MODELAPI_HTTP_ERROR only)
// Exit status: 0 at /quit or end of input, 1 on failure.

#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <unistd.h>  // isatty

#include "common.h"  // example_client
#include "modelapi.hpp"

namespace {

int run() {
    // MODEL_API_URL..., or canned replies (see common.h). On failure
    // example_client has already said why on stderr.
    ModelApi* api = example_client(
        "[\"Hello! I am a canned assistant.\", "
        "\"You said something else; still canned.\", "
        "\"Third canned answer.\"]");
    if (api == nullptr) {
        return 1;
    }
    modelapi::Client client(api);  // adopts it: from here on, closed by ~Client
    std::vector<modelapi::Message> history;
    const bool interactive = isatty(STDIN_FILENO) != 0;
    std::string line;

    for (;;) {
        if (interactive) {
            std::cout << "you> " << std::flush;
        }
        if (!std::getline(std::cin, line)) {
            if (interactive) {
                std::cout << '\n';  // leave the terminal on a fresh line
            }
            break;  // end of input
        }
        if (!line.empty() && line[line.size() - 1] == '\r') {
            line.erase(line.size() - 1);  // CRLF input
        }
        if (line.find_first_not_of(" \t") == std::string::npos) {
            continue;  // nothing asked
        }
        if (line == "/quit") {
            break;
        }

        history.push_back(modelapi::user(line));
        std::cout << "assistant: " << std::flush;
        std::string answer;
        try {
            // The chunk is valid during the callback only: copy what to keep.
            client.stream(history, [&answer](std::string_view piece) {
                std::cout << piece << std::flush;  // show it as it arrives
                answer += piece;
            });
        } catch (...) {
            std::cout << std::endl;  // end the (partial) answer's line
            throw;
        }
        std::cout << '\n';
        history.push_back(modelapi::assistant(std::move(answer)));
    }
    return 0;
}

}  // namespace

int main() {
    try {
        return run();
    } catch (const modelapi::Error& e) {
        std::cout << std::flush;  // keep stdout before stderr in a terminal
        std::fprintf(stderr, "error: %s (%d): %s\n", modelapi::status_name(e.status()),
                     static_cast<int>(e.status()), e.what());
        if (e.status() == MODELAPI_HTTP_ERROR) {
            std::fprintf(stderr, "http status: %d\n", e.http_status());
        }
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
