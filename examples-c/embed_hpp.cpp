// embed_hpp.cpp: embed.c in C++17, on modelapi.hpp: the server's models
// (Client::models), then the embeddings of the texts in one call
// (Client::embed), read as float arrays.
//
//   embed_hpp [text...]     (default: three texts, the first and the last equal)
//
// Talks to MODEL_API_URL / MODEL_NAME (MODEL_API_KEY if needed); without
// MODEL_API_URL, a canned reply answers the embeddings call.
// stdout and stderr: as embed.c's (the same lines for the same answers).
// Exit status: 0 on success, 1 on failure.

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "common.h"  // example_client
#include "modelapi.hpp"

namespace {

double dot(const float *a, const float *b, std::size_t n)
{
    double sum = 0;
    for (std::size_t i = 0; i < n; i++) {
        sum += static_cast<double>(a[i]) * static_cast<double>(b[i]);
    }
    return sum;
}

int run(const std::vector<std::string> &texts)
{
    ModelApi *api = example_client("[\"(canned embeddings)\"]");
    if (api == nullptr) {
        return 1;
    }
    const modelapi::Client client(api);  // adopts it: closed by ~Client
    const char *url = std::getenv("MODEL_API_URL");
    if (url != nullptr && url[0] != '\0') {
        for (const std::string &id : client.models().ids) {
            std::printf("model: %s\n", id.c_str());
        }
    }
    const modelapi::Embeddings embeddings = client.embed(texts);
    const std::size_t dimension = embeddings.dimension();
    std::printf("vectors: %lu x %lu\n", static_cast<unsigned long>(embeddings.size()),
                static_cast<unsigned long>(dimension));
    const float *first = embeddings.vector(0);
    for (std::size_t i = 0; i < embeddings.size(); i++) {
        const float *v = embeddings.vector(i);
        const double cosine = dot(first, v, dimension) /
                              std::sqrt(dot(first, first, dimension) * dot(v, v, dimension));
        std::printf("text %lu: norm %.4f, cosine with text 0: %.4f\n",
                    static_cast<unsigned long>(i), std::sqrt(dot(v, v, dimension)), cosine);
    }
    return 0;
}

}  // namespace

int main(int argc, char **argv)
{
    std::vector<std::string> texts(argv + 1, argv + argc);
    if (texts.empty()) {
        texts = {"The cat sat on the mat.", "A dog barked at the moon.",
                 "The cat sat on the mat."};
    }
    try {
        return run(texts);
    } catch (const modelapi::Error &e) {
        std::fflush(stdout);
        std::cerr << "error: " << modelapi::status_name(e.status()) << " (" << e.status()
                  << "): " << e.what() << '\n';
        if (e.status() == MODELAPI_HTTP_ERROR) {
            std::cerr << "http status: " << e.http_status() << '\n';
        }
        return 1;
    } catch (const std::exception &e) {
        std::cerr << "error: " << e.what() << '\n';
        return 1;
    }
}
