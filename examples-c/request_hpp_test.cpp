// request_hpp_test.cpp: modelapi::Request, Client::embed and
// Client::models of modelapi.hpp, checked against the local test server of
// tests/c_examples.rs (see request_test.c for what it answers).
//
//   request_hpp_test <base_url>
//
// Output (stdout), TAP-like: "ok <n> - ..." or "not ok <n> - ...: why" per
// check, then "<passed> passed, <failed> failed". Exit status: 0 when every
// check passed, 1 otherwise, 2 on bad usage.

#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "modelapi.hpp"

namespace {

int passed = 0;
int failed = 0;

void check(bool ok, const std::string &description, const std::string &why = "")
{
    const int n = passed + failed + 1;
    if (ok) {
        passed++;
        std::printf("ok %d - %s\n", n, description.c_str());
    } else {
        failed++;
        std::printf("not ok %d - %s: %s\n", n, description.c_str(), why.c_str());
    }
    std::fflush(stdout);
}

bool contains(const std::string &text, const std::string &part)
{
    return text.find(part) != std::string::npos;
}

// Runs f, which must throw modelapi::Error with status and a message
// holding named.
template <class F>
void throws(F &&f, ModelApiStatus status, const std::string &named, const std::string &what)
{
    try {
        f();
        check(false, what, "did not throw");
    } catch (const modelapi::Error &e) {
        check(e.status() == status && contains(e.what(), named), what,
              std::string(modelapi::status_name(e.status())) + ": " + e.what());
    }
}

void request_checks(const modelapi::Client &ok, const modelapi::Client &agent)
{
    modelapi::Request request;
    request.message("system", "Say \"hi\"\n")
        .message("user", "What is this?")
        .image_data(std::string_view("\x89PNG", 4), "image/png")
        .image_url("https://example.test/a.jpg")
        .set("temperature", 0.25)
        .set("max_tokens", 12)
        .set("seed", 7u)
        .set("logprobs", true)
        .set("tool_choice", "auto")
        .set("user", std::string("npc-7"))
        .set_json("response_format", "{\"type\": \"json_object\"}");
    const std::string json = request.json();
    check(contains(json, "{\"content\":\"Say \\\"hi\\\"\\n\",\"role\":\"system\"}"),
          "the text is escaped by the library", json);
    check(contains(json, "\"url\":\"data:image/png;base64,iVBORw==\"") &&
              contains(json, "\"url\":\"https://example.test/a.jpg\""),
          "images from bytes and by URL", json);
    check(contains(json, "\"temperature\":0.25") && contains(json, "\"max_tokens\":12,") &&
              contains(json, "\"seed\":7") && contains(json, "\"logprobs\":true") &&
              contains(json, "\"tool_choice\":\"auto\"") && contains(json, "\"user\":\"npc-7\"") &&
              contains(json, "\"response_format\":{\"type\":\"json_object\"}"),
          "set() picks the JSON type of its value (an int stays an int, a literal a string)",
          json);

    throws([&] { request.set_json("tools", "[{"); }, MODELAPI_INVALID_ARGUMENT, "tools",
           "bad raw JSON throws, naming the field");
    throws([&] { request.message("user", "\xff"); }, MODELAPI_INVALID_ARGUMENT, "text",
           "invalid UTF-8 throws, naming the field");
    throws([&] { request.set("stream", true); }, MODELAPI_INVALID_ARGUMENT, "stream",
           "stream cannot be set");
    check(request.json() == json, "a call that threw changed nothing", request.json());

    modelapi::Request moved = std::move(request);
    check(moved.json() == json && request.get() == nullptr, "a Request moves", moved.json());

    // The JSON goes to the calls; the answer's turn comes back in.
    modelapi::Request ask;
    ask.message("user", "Hello").set("temperature", 0.5);
    const modelapi::Completion answer = ok.complete_json(ask.json());
    check(answer.content == "temperature=0.5", "complete_json sends the built request",
          answer.content);
    ask.assistant_turn(answer.json).message_json(
        "{\"role\": \"user\", \"name\": \"bob\", \"content\": \"thanks\"}");
    check(contains(ask.json(), "{\"content\":\"temperature=0.5\",\"role\":\"assistant\"},"
                               "{\"content\":\"thanks\",\"name\":\"bob\",\"role\":\"user\"}"),
          "assistant_turn(json) and message_json", ask.json());

    modelapi::Request tools;
    tools.message("user", "Weather?");
    modelapi::Stream stream = agent.stream_json(tools.json());
    for (const modelapi::Event &event : stream.events()) {
        (void)event;
    }
    tools.assistant_turn(stream, true).tool_result("call_zrh", "9 C");
    const std::string turn = tools.json();
    check(contains(turn, "\"id\":\"call_zrh\"") && contains(turn, "\"id\":\"call_sao\"") &&
              contains(turn, "\"content\":\"Let me check both cities.\"") &&
              contains(turn, "\"reasoning_content\":") &&
              contains(turn, "{\"content\":\"9 C\",\"role\":\"tool\",\"tool_call_id\":\"call_zrh\"}"),
          "assistant_turn(stream) takes the assembled answer, its tool calls and reasoning",
          turn);
}

void embeddings_and_models_checks(const modelapi::Client &ok,
                                  const modelapi::Client &unauthorized)
{
    const modelapi::Embeddings e = ok.embed({"apple", "pear", "apple"});
    check(e.size() == 3 && e.dimension() == 3, "embed: one vector per input",
          std::to_string(e.size()) + " x " + std::to_string(e.dimension()));
    check(e.at(0) == e.at(2) && e.at(0) != e.at(1) && e.at(1)[0] == 4.0f &&
              e.data() == e.vector(0),
          "the vectors are the server's, in order", "");
    try {
        (void)e.vector(3);
        check(false, "vector() past the end throws std::out_of_range", "did not throw");
    } catch (const std::out_of_range &) {
        check(true, "vector() past the end throws std::out_of_range");
    }
    modelapi::Embeddings moved = ok.embed({"x"}, "other-model");
    check(moved.size() == 1 && moved.at(0)[1] == static_cast<float>('x'),
          "embed with another model", "");

    const modelapi::Models models = ok.models();
    check(models.ids == std::vector<std::string>{"ok", "agent", "unauthorized"} &&
              contains(models.json, "\"owned_by\":\"test\""),
          "models(): the ids and the JSON", models.json);
    try {
        (void)unauthorized.models();
        check(false, "an HTTP error of models() throws", "did not throw");
    } catch (const modelapi::Error &e) {
        check(e.status() == MODELAPI_HTTP_ERROR && e.http_status() == 401 &&
                  !contains(e.what(), "sk-hpp-secret"),
              "an HTTP error of models() throws, without the key", e.what());
    }
    throws([&] { (void)unauthorized.embed({"a"}); }, MODELAPI_HTTP_ERROR,
           "Invalid API key provided", "an HTTP error of embed() throws");
}

}  // namespace

int main(int argc, char **argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <base_url of the test server>\n", argv[0]);
        return 2;
    }
    try {
        const modelapi::Client ok("ok", argv[1]);
        const modelapi::Client agent("agent", argv[1]);
        const modelapi::Client unauthorized("unauthorized", argv[1], "sk-hpp-secret");
        request_checks(ok, agent);
        embeddings_and_models_checks(ok, unauthorized);
    } catch (const std::exception &e) {
        check(false, "no unexpected exception", e.what());
    }
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
