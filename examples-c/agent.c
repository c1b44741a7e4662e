/*
 * agent.c: an agent's tool loop in C. The model is offered one tool,
 * get_weather(city); when it calls it (once or several times in parallel),
 * the program runs a local C function for each call, sends the results
 * back, and the model answers with them.
 *
 *   agent [question...]     (default: "What is the weather in Paris?")
 *
 * The conversation is a ModelApiRequest (modelapi_request_*): the library
 * writes and escapes its JSON, so this program writes none. Each turn is a
 * pull stream (modelapi_stream_open_json of modelapi_request_json, with
 * "tools" set on the request) read with modelapi_stream_next_event: the
 * answer's text is printed as it arrives, the model's reasoning too (on
 * stderr), and the tool calls are put together from their pieces, which
 * come keyed by tool_index (parallel calls may interleave): the first piece
 * of a call carries its id and name, the arguments' JSON text arrives in
 * pieces. Then the assistant turn as the stream assembled it
 * (modelapi_request_add_assistant_stream) and one tool result per call
 * (modelapi_request_add_tool_result, with the call's id) are added to the
 * request, and the next turn asks again, until an answer has no tool call.
 *
 * Talks to MODEL_API_URL / MODEL_NAME (MODEL_API_KEY if needed; the model
 * must support tools); without MODEL_API_URL, canned replies answer: a tool
 * call, then a text.
 * stdout: the answer's text as it arrives, and for each tool call
 *   -> <name>(<arguments>) [<id>]
 *   <- <result>
 * stderr: the reasoning, as "(thinking) <text>", and errors, as
 *   error: <STATUS_NAME> (<number>): <message>
 *   http status: <n>                (for MODELAPI_HTTP_ERROR only)
 * Exit status: 0 on success, 1 on failure.
 */

#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* At most this many turns (each a request); a model that still calls
   tools after them is stopped. */
#define MAX_TURNS 5

/* The tool, in the OpenAI format. */
static const char TOOLS_JSON[] =
    "[{\"type\":\"function\",\"function\":{"
    "\"name\":\"get_weather\","
    "\"description\":\"The current weather in a city: temperature and conditions.\","
    "\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"city\":{\"type\":\"string\",\"description\":\"The city, e.g. Paris\"}},"
    "\"required\":[\"city\"]}}}]";

/* Canned replies (without MODEL_API_URL): a reply that calls the tool,
   then the answer. */
static const char CANNED_REPLIES[] =
    "[{\"reasoning_content\":\"The user asks about the weather in Paris: I should call "
    "get_weather.\","
    "\"tool_calls\":[{\"id\":\"call_1\",\"function\":{\"name\":\"get_weather\","
    "\"arguments\":{\"city\":\"Paris\"}}}]},"
    "\"It is 18 \\u00b0C and sunny in Paris.\"]";

/* ---- a growable text ---------------------------------------------------- */

struct text {
    char *data; /* NUL-terminated once anything was added; NULL before */
    size_t len;
    size_t cap;
    int failed; /* out of memory: the text is incomplete */
};

static void text_add(struct text *t, const char *bytes, size_t n)
{
    if (t->failed) {
        return;
    }
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        char *data;

        while (cap < t->len + n + 1) {
            cap *= 2;
        }
        data = (char *)realloc(t->data, cap);
        if (data == NULL) {
            t->failed = 1;
            return;
        }
        t->data = data;
        t->cap = cap;
    }
    memcpy(t->data + t->len, bytes, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void text_puts(struct text *t, const char *s)
{
    text_add(t, s, strlen(s));
}

/* The text, "" when nothing was added. */
static const char *text_str(const struct text *t)
{
    return t->data ? t->data : "";
}

static void text_free(struct text *t)
{
    free(t->data);
    memset(t, 0, sizeof *t);
}

/* ---- reading a JSON string value ---------------------------------------- */

/* Appends code point cp as UTF-8. */
static void text_utf8(struct text *t, unsigned long cp)
{
    char out[4];
    size_t n;

    if (cp < 0x80) {
        out[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        out[0] = (char)(0xf0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    text_add(t, out, n);
}

/* The four hex digits at s as a number; -1 when they are not. */
static long hex4(const char *s)
{
    long value = 0;
    int i;

    for (i = 0; i < 4; i++) {
        char c = s[i];

        value <<= 4;
        if (c >= '0' && c <= '9') {
            value |= c - '0';
        } else if (c >= 'a' && c <= 'f') {
            value |= c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            value |= c - 'A' + 10;
        } else {
            return -1;
        }
    }
    return value;
}

/* Reads the JSON string that starts at *s (its opening quote) into out,
   escapes resolved (\uXXXX, surrogate pairs too, as UTF-8). Returns 1, or 0
   when it is not a whole JSON string. */
static int read_json_string(const char *s, struct text *out)
{
    if (*s++ != '"') {
        return 0;
    }
    text_add(out, "", 0); /* "" rather than NULL for an empty string */
    while (*s != '"') {
        if (*s == '\0') {
            return 0;
        }
        if (*s != '\\') {
            text_add(out, s++, 1);
            continue;
        }
        s++;
        switch (*s) {
        case '"': case '\\': case '/': text_add(out, s, 1); break;
        case 'b': text_add(out, "\b", 1); break;
        case 'f': text_add(out, "\f", 1); break;
        case 'n': text_add(out, "\n", 1); break;
        case 'r': text_add(out, "\r", 1); break;
        case 't': text_add(out, "\t", 1); break;
        case 'u': {
            long cp = hex4(s + 1);

            if (cp < 0) {
                return 0;
            }
            s += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && s[1] == '\\' && s[2] == 'u') {
                long low = hex4(s + 3);

                if (low >= 0xdc00 && low < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                    s += 6;
                }
            }
            if (cp >= 0xd800 && cp < 0xe000) {
                cp = 0xfffd; /* a lone surrogate */
            }
            text_utf8(out, (unsigned long)cp);
            break;
        }
        default: return 0;
        }
        s++;
    }
    return 1;
}

/* The string value of "key" in the JSON object text json (a shallow look:
   enough for a tool's arguments), into out. Returns 1 when found. */
static int json_string_field(const char *json, const char *key, struct text *out)
{
    size_t key_len = strlen(key);
    const char *at = json;

    while ((at = strchr(at, '"')) != NULL) {
        const char *after = at + 1 + key_len;

        if (strncmp(at + 1, key, key_len) == 0 && *after == '"') {
            after++;
            while (*after == ' ' || *after == '\t' || *after == '\n' || *after == '\r') {
                after++;
            }
            if (*after == ':') {
                after++;
                while (*after == ' ' || *after == '\t' || *after == '\n' || *after == '\r') {
                    after++;
                }
                return read_json_string(after, out);
            }
        }
        at++;
    }
    return 0;
}

/* ---- the tool ----------------------------------------------------------- */

struct weather {
    const char *city;
    int temperature_c;
    const char *conditions;
};

/* A fake weather service. */
static const struct weather WEATHER[] = {
    { "Paris", 18, "sunny" },
    { "Z\xc3\xbc" "rich", 9, "foggy" },
    { "S\xc3\xa3o Paulo", 27, "rainy" },
    { "London", 12, "drizzly" },
    { "Tokyo", 21, "clear" },
};

/* get_weather(arguments): the result for the model, as JSON, into result:
   made of this program's own table only (nothing of the model's text), so
   no string in it needs escaping. */
static void get_weather(const char *arguments, struct text *result)
{
    struct text city = { NULL, 0, 0, 0 };
    char json[160];
    size_t i;

    if (!json_string_field(arguments, "city", &city) || city.failed) {
        text_puts(result, "{\"error\":\"the arguments have no \\\"city\\\" string\"}");
        text_free(&city);
        return;
    }
    for (i = 0; i < sizeof WEATHER / sizeof WEATHER[0]; i++) {
        if (strcmp(WEATHER[i].city, text_str(&city)) == 0) {
            break;
        }
    }
    if (i < sizeof WEATHER / sizeof WEATHER[0]) {
        snprintf(json, sizeof json, "{\"city\":\"%s\",\"temperature_c\":%d,\"conditions\":\"%s\"}",
                 WEATHER[i].city, WEATHER[i].temperature_c, WEATHER[i].conditions);
        text_puts(result, json);
    } else {
        text_puts(result, "{\"error\":\"no weather data for this city\"}");
    }
    text_free(&city);
}

/* ---- the tool calls of one answer --------------------------------------- */

struct tool_call {
    uint32_t index;         /* tool_index of its pieces */
    struct text id;         /* from the first piece that carries one */
    struct text name;
    struct text arguments;  /* the pieces, concatenated */
};

struct tool_calls {
    struct tool_call *calls;
    size_t count;
    size_t cap;
};

/* The call of tool_index index, added when it is new; NULL when out of
   memory. Kept in index order, as the calls are to be answered. */
static struct tool_call *call_at(struct tool_calls *calls, uint32_t index)
{
    size_t at;

    for (at = 0; at < calls->count && calls->calls[at].index <= index; at++) {
        if (calls->calls[at].index == index) {
            return &calls->calls[at];
        }
    }
    if (calls->count == calls->cap) {
        size_t cap = calls->cap ? calls->cap * 2 : 4;
        struct tool_call *grown =
            (struct tool_call *)realloc(calls->calls, cap * sizeof *grown);

        if (grown == NULL) {
            return NULL;
        }
        calls->calls = grown;
        calls->cap = cap;
    }
    memmove(&calls->calls[at + 1], &calls->calls[at],
            (calls->count - at) * sizeof calls->calls[0]);
    memset(&calls->calls[at], 0, sizeof calls->calls[0]);
    calls->calls[at].index = index;
    calls->count++;
    return &calls->calls[at];
}

/* Adds a TOOL_CALL event's piece to its call. Returns 0 when out of memory. */
static int add_piece(struct tool_calls *calls, const ModelApiEvent *event)
{
    struct tool_call *call = call_at(calls, event->tool_index);

    if (call == NULL) {
        return 0;
    }
    /* The id and the name come once, usually with the first piece. */
    if (event->tool_id != NULL && call->id.len == 0) {
        text_puts(&call->id, event->tool_id);
    }
    if (event->tool_name != NULL && call->name.len == 0) {
        text_puts(&call->name, event->tool_name);
    }
    text_add(&call->arguments, event->text, event->len);
    return !call->id.failed && !call->name.failed && !call->arguments.failed;
}

static void free_calls(struct tool_calls *calls)
{
    size_t i;

    for (i = 0; i < calls->count; i++) {
        text_free(&calls->calls[i].id);
        text_free(&calls->calls[i].name);
        text_free(&calls->calls[i].arguments);
    }
    free(calls->calls);
    memset(calls, 0, sizeof *calls);
}

/* ---- one turn ----------------------------------------------------------- */

/* What a turn brought: its text and its tool calls. */
struct turn {
    struct text content;
    struct tool_calls calls;
};

/* Streams the answer to request, printing the text and the reasoning as
   they arrive and collecting the tool calls; then adds the answer, as the
   stream assembled it, to request as its assistant turn. */
static ModelApiStatus stream_turn(ModelApi *api, ModelApiRequest *request, struct turn *turn)
{
    ModelApiStream *stream = NULL;
    ModelApiStatus status;
    ModelApiEvent event;
    char *json = NULL;
    int thinking = 0; /* in the middle of a "(thinking)" line */

    status = modelapi_request_json(request, &json);
    if (status != MODELAPI_OK) {
        print_error(status);
        return status;
    }
    /* Sends the request now; HTTP errors (e.g. 401) show up here. */
    status = modelapi_stream_open_json(api, json, NULL, &stream);
    modelapi_string_free(json);
    if (status != MODELAPI_OK) {
        print_error(status);
        return status;
    }
    while ((status = modelapi_stream_next_event(stream, &event)) == MODELAPI_OK) {
        /* event's strings are valid until the next call on the stream. */
        if (thinking && event.kind != MODELAPI_EVENT_REASONING) {
            fputc('\n', stderr);
            thinking = 0;
        }
        switch (event.kind) {
        case MODELAPI_EVENT_CONTENT:
            fwrite(event.text, 1, event.len, stdout);
            fflush(stdout);
            text_add(&turn->content, event.text, event.len);
            break;
        case MODELAPI_EVENT_REASONING:
            if (!thinking) {
                fputs("(thinking) ", stderr);
                thinking = 1;
            }
            fwrite(event.text, 1, event.len, stderr);
            break;
        case MODELAPI_EVENT_TOOL_CALL:
            if (!add_piece(&turn->calls, &event)) {
                fputs("error: out of memory\n", stderr);
                modelapi_stream_free(stream);
                return MODELAPI_INTERNAL;
            }
            break;
        case MODELAPI_EVENT_REFUSAL: /* the model declines: shown as its answer */
            fwrite(event.text, 1, event.len, stdout);
            fflush(stdout);
            text_add(&turn->content, event.text, event.len);
            break;
        default:
            break; /* a kind of a newer library */
        }
    }
    if (thinking) {
        fputc('\n', stderr);
    }
    /* End the answer's line. */
    if (turn->content.len > 0 && turn->content.data[turn->content.len - 1] != '\n') {
        putchar('\n');
    }
    fflush(stdout);
    if (status == MODELAPI_DONE) {
        /* The assistant turn: its text and its tool calls (ids, names,
           arguments), as the library assembled them; the reasoning is not
           sent back. */
        status = modelapi_request_add_assistant_stream(request, stream, 0);
    }
    if (status != MODELAPI_OK) {
        print_error(status);
    }
    modelapi_stream_free(stream);
    return status;
}

/* Runs each call of turn, printing the call and its result, and adds the
   result to request as a tool result for the call's id. */
static ModelApiStatus answer_calls(const struct turn *turn, ModelApiRequest *request)
{
    ModelApiStatus status = MODELAPI_OK;
    size_t i;

    for (i = 0; i < turn->calls.count && status == MODELAPI_OK; i++) {
        const struct tool_call *call = &turn->calls.calls[i];
        struct text result = { NULL, 0, 0, 0 };
        char fallback_id[32];
        const char *id = text_str(&call->id);

        if (call->id.len == 0) {
            /* A server that sent no id: the assistant turn names the call
               call_<position>, as the library does. */
            snprintf(fallback_id, sizeof fallback_id, "call_%lu", (unsigned long)i);
            id = fallback_id;
        }
        printf("-> %s(%s) [%s]\n", text_str(&call->name), text_str(&call->arguments), id);
        if (strcmp(text_str(&call->name), "get_weather") == 0) {
            get_weather(text_str(&call->arguments), &result);
        } else {
            text_puts(&result, "{\"error\":\"there is no such tool\"}");
        }
        printf("<- %s\n", text_str(&result));
        fflush(stdout);
        if (result.failed) {
            fputs("error: out of memory\n", stderr);
            status = MODELAPI_INTERNAL;
        } else {
            status = modelapi_request_add_tool_result(request, id, text_str(&result));
            if (status != MODELAPI_OK) {
                print_error(status);
            }
        }
        text_free(&result);
    }
    return status;
}

int main(int argc, char **argv)
{
    ModelApi *api;
    ModelApiRequest *request;
    ModelApiStatus status;
    char *question;
    int turns;
    int done = 0;

    question = join_args(argc - 1, argv + 1, "What is the weather in Paris?");
    if (question == NULL) {
        fputs("error: out of memory\n", stderr);
        return 1;
    }
    api = example_client(CANNED_REPLIES);
    if (api == NULL) {
        free(question);
        return 1;
    }
    request = modelapi_request_new();
    if (request == NULL) {
        fputs("error: out of memory\n", stderr);
        modelapi_close(api);
        free(question);
        return 1;
    }

    /* The question, escaped by the library; the tool, as the raw JSON it
       is in the OpenAI format. */
    status = modelapi_request_add_message(request, "user", question);
    if (status == MODELAPI_OK) {
        status = modelapi_request_set_json(request, "tools", TOOLS_JSON);
    }
    if (status != MODELAPI_OK) {
        print_error(status);
    }

    for (turns = 0; status == MODELAPI_OK && turns < MAX_TURNS && !done; turns++) {
        struct turn turn;

        memset(&turn, 0, sizeof turn);
        status = stream_turn(api, request, &turn);
        if (status == MODELAPI_OK && turn.calls.count == 0) {
            done = 1; /* an answer without tool calls: the end */
        } else if (status == MODELAPI_OK) {
            status = answer_calls(&turn, request);
        }
        text_free(&turn.content);
        free_calls(&turn.calls);
    }
    if (status == MODELAPI_OK && !done) {
        fprintf(stderr, "error: still calling tools after %d turns\n", MAX_TURNS);
    }

    modelapi_request_free(request);
    modelapi_close(api);
    free(question);
    return status == MODELAPI_OK && done ? 0 : 1;
}
