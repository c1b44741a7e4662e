// agent_hpp.cpp: agent.c's tool loop in C++17, on modelapi.hpp. The model
// is offered one tool, get_weather(city); when it calls it (once or several
// times in parallel), the program runs a local function for each call,
// sends the results back, and the model answers with them.
//
//   agent_hpp [question...]     (default: "What is the weather in Paris?")
//
// The conversation is a modelapi::Request: the library writes and escapes
// its JSON, so this program writes none. Each turn is
// Client::stream_events_json of Request::json() (with "tools" set on the
// request): the callback gets every piece of the answer as a
// modelapi::Event: the text is printed as it arrives, the reasoning too (on
// stderr), and the tool calls are put together from their pieces, keyed by
// Event::tool_index (parallel calls may interleave). Then the answer the
// call returns, as the library assembled it, goes into the request as the
// assistant turn (Request::assistant_turn), and one tool result per call
// (Request::tool_result), and the next turn asks again, until an answer has
// no tool call.
//
// Talks to MODEL_API_URL / MODEL_NAME (MODEL_API_KEY if needed; the model
// must support tools); without MODEL_API_URL, canned replies answer: a tool
// call, then a text.
// stdout and stderr: as agent.c's (the same lines for the same answers).
// Exit status: 0 on success, 1 on failure.

#include <cstdint>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common.h"  // example_client
#include "modelapi.hpp"

namespace {

// At most this many turns; a model still calling tools after them is stopped.
constexpr int max_turns = 5;

// The tool, in the OpenAI format.
const char tools_json[] =
    "[{\"type\":\"function\",\"function\":{"
    "\"name\":\"get_weather\","
    "\"description\":\"The current weather in a city: temperature and conditions.\","
    "\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"city\":{\"type\":\"string\",\"description\":\"The city, e.g. Paris\"}},"
    "\"required\":[\"city\"]}}}]";

// Canned replies (without MODEL_API_URL): a tool call, then the answer.
const char canned_replies[] =
    "[{\"reasoning_content\":\"The user asks about the weather in Paris: I should call "
    "get_weather.\","
    "\"tool_calls\":[{\"id\":\"call_1\",\"function\":{\"name\":\"get_weather\","
    "\"arguments\":{\"city\":\"Paris\"}}}]},"
    "\"It is 18 \\u00b0C and sunny in Paris.\"]";

// One tool call, from its pieces.
struct ToolCall {
    std::string id;         // from the first piece that carries one
    std::string name;
    std::string arguments;  // the pieces, concatenated
};

// Appends code point cp as UTF-8.
void append_utf8(std::string &out, unsigned long cp)
{
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    }
}

// The four hex digits at text[at] as a number, if they are.
std::optional<unsigned long> hex4(std::string_view text, std::size_t at)
{
    if (at + 4 > text.size()) {
        return std::nullopt;
    }
    unsigned long value = 0;
    for (std::size_t i = at; i < at + 4; i++) {
        const char c = text[i];
        value <<= 4;
        if (c >= '0' && c <= '9') {
            value |= static_cast<unsigned long>(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            value |= static_cast<unsigned long>(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            value |= static_cast<unsigned long>(c - 'A' + 10);
        } else {
            return std::nullopt;
        }
    }
    return value;
}

// The JSON string starting at json[at] (its opening quote), escapes
// resolved; nullopt when it is not a whole JSON string.
std::optional<std::string> read_json_string(std::string_view json, std::size_t at)
{
    if (at >= json.size() || json[at] != '"') {
        return std::nullopt;
    }
    std::string out;
    for (std::size_t i = at + 1; i < json.size(); i++) {
        const char c = json[i];
        if (c == '"') {
            return out;
        }
        if (c != '\\') {
            out += c;
            continue;
        }
        if (++i == json.size()) {
            return std::nullopt;
        }
        switch (json[i]) {
        case '"': case '\\': case '/': out += json[i]; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
            std::optional<unsigned long> cp = hex4(json, i + 1);
            if (!cp) {
                return std::nullopt;
            }
            i += 4;
            if (*cp >= 0xd800 && *cp < 0xdc00 && json.substr(i + 1, 2) == "\\u") {
                const std::optional<unsigned long> low = hex4(json, i + 3);
                if (low && *low >= 0xdc00 && *low < 0xe000) {
                    cp = 0x10000 + ((*cp - 0xd800) << 10) + (*low - 0xdc00);
                    i += 6;
                }
            }
            append_utf8(out, *cp >= 0xd800 && *cp < 0xe000 ? 0xfffd : *cp);
            break;
        }
        default: return std::nullopt;
        }
    }
    return std::nullopt;
}

// The string value of "key" in the JSON object text json (a shallow look:
// enough for a tool's arguments).
std::optional<std::string> string_field(std::string_view json, std::string_view key)
{
    const std::string quoted = "\"" + std::string(key) + "\"";
    const std::string_view blanks = " \t\r\n";
    for (std::size_t at = json.find(quoted); at != std::string_view::npos;
         at = json.find(quoted, at + 1)) {
        std::size_t colon = json.find_first_not_of(blanks, at + quoted.size());
        if (colon != std::string_view::npos && json[colon] == ':') {
            const std::size_t value = json.find_first_not_of(blanks, colon + 1);
            return value == std::string_view::npos ? std::nullopt : read_json_string(json, value);
        }
    }
    return std::nullopt;
}

// A fake weather service: the result for the model, as JSON, made of this
// program's own table only (nothing of the model's text), so no string in
// it needs escaping.
std::string get_weather(std::string_view arguments)
{
    struct Weather {
        std::string_view city;
        int temperature_c;
        std::string_view conditions;
    };
    static const Weather weather[] = {
        {"Paris", 18, "sunny"},
        {"Z\xc3\xbc" "rich", 9, "foggy"},
        {"S\xc3\xa3o Paulo", 27, "rainy"},
        {"London", 12, "drizzly"},
        {"Tokyo", 21, "clear"},
    };
    const std::optional<std::string> city = string_field(arguments, "city");
    if (!city) {
        return "{\"error\":\"the arguments have no \\\"city\\\" string\"}";
    }
    for (const Weather &w : weather) {
        if (w.city == *city) {
            return "{\"city\":\"" + std::string(w.city) +
                   "\",\"temperature_c\":" + std::to_string(w.temperature_c) +
                   ",\"conditions\":\"" + std::string(w.conditions) + "\"}";
        }
    }
    return "{\"error\":\"no weather data for this city\"}";
}

int run(const std::string &question)
{
    // MODEL_API_URL..., or canned replies (see common.h). On failure
    // example_client has already said why on stderr.
    ModelApi *api = example_client(canned_replies);
    if (api == nullptr) {
        return 1;
    }
    const modelapi::Client client(api);  // adopts it: closed by ~Client

    // The conversation: the question, escaped by the library; the tool, as
    // the raw JSON it is in the OpenAI format.
    modelapi::Request request;
    request.message("user", question).set_json("tools", tools_json);
    for (int turn = 0; turn < max_turns; turn++) {
        std::string content;
        std::map<std::uint32_t, ToolCall> calls;  // in index order
        bool thinking = false;                    // in a "(thinking)" line
        const std::string answer = client.stream_events_json(
            request.json(),
            [&](const modelapi::Event &event) {
                // The event's strings are valid during this call only.
                if (thinking && event.kind != modelapi::EventKind::reasoning) {
                    std::cerr << '\n';
                    thinking = false;
                }
                switch (event.kind) {
                case modelapi::EventKind::content:
                case modelapi::EventKind::refusal:  // the model declines: its answer
                    std::cout << event.text << std::flush;
                    content += event.text;
                    break;
                case modelapi::EventKind::reasoning:
                    std::cerr << (thinking ? "" : "(thinking) ") << event.text;
                    thinking = true;
                    break;
                case modelapi::EventKind::tool_call: {
                    ToolCall &call = calls[event.tool_index];
                    if (event.tool_id && call.id.empty()) {
                        call.id = *event.tool_id;
                    }
                    if (event.tool_name && call.name.empty()) {
                        call.name = *event.tool_name;
                    }
                    call.arguments += event.text;
                    break;
                }
                }
            });
        if (thinking) {
            std::cerr << '\n';
        }
        if (!content.empty() && content.back() != '\n') {
            std::cout << '\n';
        }
        if (calls.empty()) {
            return 0;  // an answer without tool calls: the end
        }

        // The assistant turn with its calls, as the library assembled it
        // (the reasoning is not sent back), then a tool result per call.
        request.assistant_turn(answer);
        std::size_t position = 0;
        for (auto &[index, call] : calls) {
            (void)index;
            if (call.id.empty()) {  // a server that sent none: named as the library does
                call.id = "call_" + std::to_string(position);
            }
            position++;
            std::cout << "-> " << call.name << "(" << call.arguments << ") [" << call.id << "]\n";
            const std::string result = call.name == "get_weather"
                                           ? get_weather(call.arguments)
                                           : "{\"error\":\"there is no such tool\"}";
            std::cout << "<- " << result << '\n' << std::flush;
            request.tool_result(call.id, result);
        }
    }
    std::cerr << "error: still calling tools after " << max_turns << " turns\n";
    return 1;
}

}  // namespace

int main(int argc, char **argv)
{
    std::string question;
    for (int i = 1; i < argc; i++) {
        question += (i > 1 ? " " : "") + std::string(argv[i]);
    }
    if (question.empty()) {
        question = "What is the weather in Paris?";
    }
    try {
        return run(question);
    } catch (const modelapi::Error &e) {
        std::cout << std::flush;
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
