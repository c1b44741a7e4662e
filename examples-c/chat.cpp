// chat.cpp: an interactive multi-turn chat, in C++11, over the C API.
//
//   chat                        (one question per line; /quit or EOF ends)
//
// Shows a small RAII layer over modelapi.h that a C++ program can copy:
//   modelapi::Error      a std::runtime_error with the status (and HTTP status)
//   modelapi::String     unique_ptr<char> freeing with modelapi_string_free
//   modelapi::Client     owns a ModelApi*; closes it; movable, not copyable
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

#include <cstddef>
#include <cstdio>
#include <exception>
#include <functional>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>  // isatty

#include "common.h"  // status_name, example_client

namespace modelapi {

// A failed call: the status, the library's message and, for
// MODELAPI_HTTP_ERROR, the HTTP status.
class Error : public std::runtime_error {
public:
    Error(ModelApiStatus status, const std::string& message, int http_status = 0)
        : std::runtime_error(message), status_(status), http_status_(http_status) {}

    // Builds the error of the call that just failed on this thread (the
    // library keeps the last error per thread, like errno).
    static Error last(ModelApiStatus status) {
        return Error(status, modelapi_last_error(),
                     status == MODELAPI_HTTP_ERROR ? modelapi_last_http_status() : 0);
    }

    ModelApiStatus status() const { return status_; }
    int http_status() const { return http_status_; }

private:
    ModelApiStatus status_;
    int http_status_;
};

// A string returned by the library, freed with modelapi_string_free.
struct StringFree {
    void operator()(char* s) const { modelapi_string_free(s); }
};
typedef std::unique_ptr<char, StringFree> String;

// One chat message, owning its text.
struct Message {
    std::string role;
    std::string content;
};

// A client of one server and model. Owns the ModelApi* and closes it.
// One Client may be used by several threads at once for complete/stream.
class Client {
public:
    // Takes ownership of api (from modelapi_new or modelapi_from_env).
    // A NULL api (a failed constructor: they fail on bad arguments or a bad
    // environment only) throws, with modelapi_last_error()'s message.
    explicit Client(ModelApi* api) : api_(api) {
        if (api_ == nullptr) {
            throw Error(MODELAPI_INVALID_ARGUMENT, modelapi_last_error());
        }
    }

    static Client from_env() { return Client(modelapi_from_env()); }
    static Client create(const std::string& model, const std::string& api_base,
                         const char* api_key = nullptr) {
        return Client(modelapi_new(model.c_str(), api_base.c_str(), api_key));
    }

    ~Client() { modelapi_close(api_); }  // NULL (moved from) is fine

    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    Client(Client&& other) noexcept : api_(other.api_) { other.api_ = nullptr; }
    Client& operator=(Client&& other) noexcept {
        if (this != &other) {
            modelapi_close(api_);
            api_ = other.api_;
            other.api_ = nullptr;
        }
        return *this;
    }

    // One completion: the answer's text.
    std::string complete(const std::vector<Message>& history) {
        std::vector<ModelApiMessage> messages = borrow(history);
        char* content = nullptr;
        ModelApiStatus status = modelapi_complete(api_, messages.data(), messages.size(),
                                                  nullptr, nullptr, &content);
        if (status != MODELAPI_OK) {
            throw Error::last(status);
        }
        String owned(content);  // freed however we leave this scope
        return std::string(owned.get());
    }

    // A streamed completion: on_chunk gets each piece as it arrives; returns
    // the whole answer. An exception thrown by on_chunk stops the stream and
    // comes out of stream() unchanged.
    std::string stream(const std::vector<Message>& history,
                       const std::function<void(const std::string&)>& on_chunk) {
        std::vector<ModelApiMessage> messages = borrow(history);
        StreamState state{on_chunk, std::string(), nullptr};
        ModelApiStatus status = modelapi_stream(api_, messages.data(), messages.size(),
                                                nullptr, &Client::chunk_trampoline, &state);
        if (state.exception) {
            std::rethrow_exception(state.exception);  // the callback's own error
        }
        if (status != MODELAPI_OK) {
            throw Error::last(status);
        }
        return state.text;
    }

    ModelApi* get() const { return api_; }

private:
    struct StreamState {
        const std::function<void(const std::string&)>& on_chunk;
        std::string text;
        std::exception_ptr exception;
    };

    // C views of the messages, valid while history is unchanged.
    static std::vector<ModelApiMessage> borrow(const std::vector<Message>& history) {
        std::vector<ModelApiMessage> messages;
        messages.reserve(history.size());
        for (const Message& m : history) {
            messages.push_back(ModelApiMessage{m.role.c_str(), m.content.c_str()});
        }
        return messages;
    }

    // The C callback. No exception may unwind through the library: catch
    // it, stop the stream (return 1), and rethrow it after the call.
    static int chunk_trampoline(void* user_data, const char* chunk, std::size_t len) {
        StreamState* state = static_cast<StreamState*>(user_data);
        try {
            std::string piece(chunk, len);  // chunk is valid only during the call
            state->text += piece;
            state->on_chunk(piece);
            return 0;
        } catch (...) {
            state->exception = std::current_exception();
            return 1;
        }
    }

    ModelApi* api_;
};

}  // namespace modelapi

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
    modelapi::Client client(api);  // from here on, closed by ~Client
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

        history.push_back(modelapi::Message{"user", line});
        std::cout << "assistant: " << std::flush;
        std::string answer;
        try {
            answer = client.stream(history, [](const std::string& piece) {
                std::cout << piece << std::flush;  // show it as it arrives
            });
        } catch (...) {
            std::cout << std::endl;  // end the (partial) answer's line
            throw;
        }
        std::cout << '\n';
        history.push_back(modelapi::Message{"assistant", answer});
    }
    return 0;
}

}  // namespace

int main() {
    try {
        return run();
    } catch (const modelapi::Error& e) {
        std::cout << std::flush;  // keep stdout before stderr in a terminal
        std::fprintf(stderr, "error: %s (%d): %s\n", status_name(e.status()),
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
