/*
 * ask.cpp: ask one question, print the answer as it arrives; a C++ program
 * that uses the C API, modelapi.h, directly (modelapi.hpp wraps the same
 * functions in classes).
 *
 *   ask [question...]        (default: "Write a haiku about coding")
 *
 * Talks to MODEL_API_URL / MODEL_NAME (MODEL_API_KEY if needed); without
 * MODEL_API_URL it answers with a canned reply.
 * stdout: the answer and a newline. stderr: errors, as
 *   error: <status number>: <message>
 * Exit status: 0 on success, 1 on failure.
 */

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include <stdlib.h> /* setenv (POSIX) */

#include "modelapi.h"

namespace {

/* Each handle is freed by its own function: unique_ptr does it on every
   path out of main. */
struct CloseClient {
    void operator()(ModelApi *api) const { modelapi_close(api); }
};
struct FreeStream {
    void operator()(ModelApiStream *stream) const { modelapi_stream_free(stream); }
};
using Client = std::unique_ptr<ModelApi, CloseClient>;
using Stream = std::unique_ptr<ModelApiStream, FreeStream>;

int fail(ModelApiStatus status)
{
    /* The message belongs to the library and lives until the next call. */
    std::cerr << "error: " << static_cast<int>(status) << ": " << modelapi_last_error() << '\n';
    return 1;
}

Client open_client()
{
    const char *url = std::getenv("MODEL_API_URL");
    if (url == nullptr || *url == '\0') {
        std::cerr << "(no MODEL_API_URL: a canned reply answers)\n";
        /* 0: keep a DEBUG_MOCK_RESPONSES the user set. */
        setenv("DEBUG_MOCK_RESPONSES", "[\"Lines of code align / bugs hide in the spaces\"]", 0);
        return Client(modelapi_new("canned", "http://localhost:8000", nullptr));
    }
    const char *model = std::getenv("MODEL_NAME");
    return Client(modelapi_new(model ? model : "", url, std::getenv("MODEL_API_KEY")));
}

} // namespace

int main(int argc, char **argv)
{
    std::string question;
    for (int i = 1; i < argc; i++) {
        question += (i > 1 ? " " : "") + std::string(argv[i]);
    }
    if (question.empty()) {
        question = "Write a haiku about coding";
    }

    Client api = open_client();
    if (!api) {
        std::cerr << "error: " << modelapi_last_error() << '\n';
        return 1;
    }

    ModelApiMessage message = {"user", question.c_str()};
    ModelApiStream *raw = nullptr;
    ModelApiStatus status = modelapi_stream_open(api.get(), &message, 1, nullptr, &raw);
    if (status != MODELAPI_OK) {
        return fail(status);
    }
    Stream stream(raw);

    const char *chunk = nullptr;
    size_t len = 0;
    /* Each chunk is valid until the next call on the stream. */
    while ((status = modelapi_stream_next(stream.get(), &chunk, &len)) == MODELAPI_OK) {
        std::cout.write(chunk, static_cast<std::streamsize>(len)).flush();
    }
    std::cout << '\n';
    return status == MODELAPI_DONE ? 0 : fail(status);
}
