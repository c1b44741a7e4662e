// The first-token deadline, fallbacks and hedging from C++ (run by
// tests/c_failover.rs): argv[1] stalls, argv[2] answers "rescued".
#include <chrono>
#include <cstdio>
#include <string>

#include "modelapi.hpp"

static int passed, failed;

static void check(bool ok, const char *what)
{
    std::printf("%s - %s\n", ok ? "ok" : "not ok", what);
    (ok ? passed : failed)++;
}

int main(int argc, char **argv)
{
    using namespace std::chrono_literals;
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s STALLING_URL FALLBACK_URL\n", argv[0]);
        return 2;
    }
    try {
        modelapi::Client client("m", argv[1], "sk-cpp-primary-key");
        client.clear_mock_responses().first_token_timeout(300ms);
        try {
            auto stream = client.stream({modelapi::user("hi")});
            check(false, "past the deadline: throws");
        } catch (const modelapi::Error &error) {
            check(error.status() == MODELAPI_TIMEOUT, "past the deadline: MODELAPI_TIMEOUT");
        }
        client.fallback(argv[2], "backup", "sk-cpp-fallback-key");
        auto stream = client.stream({modelapi::user("hi")});
        check(!stream.endpoint().has_value() || *stream.endpoint() == argv[2],
              "endpoint: the fallback's, once the first event came");
        std::string text;
        while (auto chunk = stream.next()) {
            text += *chunk;
        }
        check(text == "rescued", "the fallback's text");
        check(stream.endpoint() && *stream.endpoint() == argv[2], "Stream::endpoint");
        check(stream.first_event() && *stream.first_event() >= 300ms, "Stream::first_event");

        modelapi::Client hedged("m", argv[1]);
        hedged.clear_mock_responses().fallback(argv[2], "backup").hedge(200ms);
        auto raced = hedged.stream({modelapi::user("hi")});
        text.clear();
        while (auto chunk = raced.next()) {
            text += *chunk;
        }
        check(text == "rescued", "the hedge's text");
        check(raced.endpoint() && *raced.endpoint() == argv[2], "served by the hedge");
    } catch (const modelapi::Error &error) {
        check(false, error.what());
    }
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
