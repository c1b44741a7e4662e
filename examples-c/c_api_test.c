/*
 * c_api_test.c: the rules of the C API, checked from C.
 *
 *   c_api_test <base_url>
 *
 * base_url is a local test server that answers by model name:
 *   "ok"            complete: "Hello from the test server", or
 *                   "temperature=<value as JSON>" when the request has a
 *                   temperature; stream: "Hello", " from", " the", " test",
 *                   " server", finish_reason stop, [DONE]
 *   "unauthorized"  HTTP 401, {"error":{"message":"Invalid API key provided",...}}
 *   "long"          a stream of 1000 chunks "x", 10 ms apart
 *   "slow"          no answer for 5 s, then the connection is closed
 *   "stream-error"  a stream of one chunk "partial", then
 *                   data: {"error":{"message":"model overloaded"}}
 *   "agent"         a stream of reasoning, content and two parallel tool
 *                   calls whose pieces interleave (AGENT_EVENTS below),
 *                   finish_reason tool_calls
 *
 * Output (stdout), TAP-like, one line per check:
 *   ok <n> - <description>
 *   not ok <n> - <description>: <details>
 * and last, alone on its line:
 *   <passed> passed, <failed> failed
 * Exit status: 0 when every check passed, 1 otherwise, 2 on bad usage.
 *
 * Everything is freed, so valgrind --leak-check=full reports no leaks.
 */

#define _POSIX_C_SOURCE 200809L

#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

/* ---- the test harness --------------------------------------------------- */

static int tests_run;
static int tests_passed;
static int tests_failed;

/* Reports one check. details (printf format) says what went wrong; it is
   printed only when the check failed. Returns ok. */
static int check(int ok, const char *description, const char *details, ...)
{
    tests_run++;
    if (ok) {
        tests_passed++;
        printf("ok %d - %s\n", tests_run, description);
    } else {
        va_list args;

        tests_failed++;
        printf("not ok %d - %s: ", tests_run, description);
        va_start(args, details);
        vprintf(details, args);
        va_end(args);
        printf("\n");
    }
    fflush(stdout);
    return ok;
}

/* strstr that accepts NULL (a NULL haystack contains nothing). */
static int contains(const char *haystack, const char *needle)
{
    return haystack != NULL && strstr(haystack, needle) != NULL;
}

/* s, or "(null)" for printing. */
static const char *str(const char *s)
{
    return s ? s : "(null)";
}

/* Seconds on a monotonic clock. */
static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Not NULL, and surely not a string of the library: out pointers start as
   this, to see that the library sets them (to NULL on failure). */
#define GARBAGE ((char *)1)

/* Frees an out string unless the library left the garbage in it. */
static void free_out(char *s)
{
    if (s != GARBAGE) {
        modelapi_string_free(s);
    }
}

/* ---- a chunk collector for modelapi_stream ------------------------------ */

struct collector {
    char text[4096];  /* the chunks, concatenated (truncated if longer) */
    size_t len;
    int chunks;       /* calls of the callback */
    int stop_after;   /* return non-zero at this many chunks; 0: never */
    int bad_chunk;    /* a chunk that was NULL or whose len was wrong */
};

static int collect(void *user_data, const char *chunk, size_t len)
{
    struct collector *c = (struct collector *)user_data;

    c->chunks++;
    if (chunk == NULL || strlen(chunk) != len) {
        c->bad_chunk = 1;
        return 1;
    }
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, chunk, len);
        c->len += len;
        c->text[c->len] = '\0';
    }
    return c->stop_after > 0 && c->chunks >= c->stop_after;
}

/* ---- an event recorder -------------------------------------------------- */

/* One event, copied. */
struct recorded_event {
    ModelApiEventKind kind;
    char text[128];
    uint32_t tool_index;
    char tool_id[64];    /* "" with has_id 0: NULL */
    int has_id;
    char tool_name[64];
    int has_name;
};

struct recorder {
    struct recorded_event events[64];
    int count;       /* events recorded (calls beyond 64 are counted too) */
    int stop_after;  /* a callback returns non-zero at this many; 0: never */
    char bad[256];   /* the first event that broke a rule, described */
};

/* Copies a string of an event into out (size n), checking it fits. */
static int copy_text(char *out, size_t n, const char *text, size_t len)
{
    if (len >= n) {
        return 0;
    }
    memcpy(out, text, len);
    out[len] = '\0';
    return 1;
}

/* Records *event, checking the rules every event keeps: text never NULL,
   len its length, tool fields only on tool calls. */
static void record(struct recorder *r, const ModelApiEvent *event)
{
    struct recorded_event *e;
    int fits;

    if (r->count >= (int)(sizeof r->events / sizeof r->events[0])) {
        r->count++;
        return;
    }
    e = &r->events[r->count++];
    memset(e, 0, sizeof *e);
    if (event == NULL || event->text == NULL || strlen(event->text) != event->len) {
        if (r->bad[0] == '\0') {
            snprintf(r->bad, sizeof r->bad, "event %d: NULL, or text NULL, or len wrong",
                     r->count);
        }
        return;
    }
    e->kind = event->kind;
    e->tool_index = event->tool_index;
    fits = copy_text(e->text, sizeof e->text, event->text, event->len);
    if (event->tool_id != NULL) {
        e->has_id = 1;
        fits = fits && copy_text(e->tool_id, sizeof e->tool_id, event->tool_id,
                                 strlen(event->tool_id));
    }
    if (event->tool_name != NULL) {
        e->has_name = 1;
        fits = fits && copy_text(e->tool_name, sizeof e->tool_name, event->tool_name,
                                 strlen(event->tool_name));
    }
    if (!fits && r->bad[0] == '\0') {
        snprintf(r->bad, sizeof r->bad, "event %d: a text too long for the test", r->count);
    }
    if (event->kind != MODELAPI_EVENT_TOOL_CALL &&
        (event->tool_index != 0 || event->tool_id != NULL || event->tool_name != NULL) &&
        r->bad[0] == '\0') {
        snprintf(r->bad, sizeof r->bad, "event %d: tool fields on a kind %d event", r->count,
                 (int)event->kind);
    }
}

static int record_event(void *user_data, const ModelApiEvent *event)
{
    struct recorder *r = (struct recorder *)user_data;

    record(r, event);
    return r->stop_after > 0 && r->count >= r->stop_after;
}

/* An event as expected: NULL id or name means none. */
struct expected_event {
    ModelApiEventKind kind;
    const char *text;
    uint32_t tool_index;
    const char *tool_id;
    const char *tool_name;
};

/* The events of the test server's "agent" stream, in order. The server
   sends reasoning with \u escapes, an empty content piece (no event), and
   the pieces of two tool calls interleaved, one chunk holding a piece of
   each (the second one empty: no event), the UTF-8 of a piece split across
   two writes. */
static const struct expected_event AGENT_EVENTS[] = {
    { MODELAPI_EVENT_REASONING, "Two cities: Z\xc3\xbc" "rich", 0, NULL, NULL },
    { MODELAPI_EVENT_REASONING, " and S\xc3\xa3o Paulo.", 0, NULL, NULL },
    { MODELAPI_EVENT_CONTENT, "Let me check both cities.", 0, NULL, NULL },
    { MODELAPI_EVENT_TOOL_CALL, "", 0, "call_zrh", "get_weather" },
    { MODELAPI_EVENT_TOOL_CALL, "{\"ci", 1, "call_sao", "get_weather" },
    { MODELAPI_EVENT_TOOL_CALL, "{\"city\": \"Z", 0, NULL, NULL },
    { MODELAPI_EVENT_TOOL_CALL, "ty\": \"S\\u00", 1, NULL, NULL },
    { MODELAPI_EVENT_TOOL_CALL, "\xc3\xbc" "rich\"}", 0, NULL, NULL },
    { MODELAPI_EVENT_TOOL_CALL, "e3o Paulo\", \"unit", 1, NULL, NULL },
    { MODELAPI_EVENT_TOOL_CALL, "\": \"celsius\"}", 1, NULL, NULL },
};
#define AGENT_EVENT_COUNT ((int)(sizeof AGENT_EVENTS / sizeof AGENT_EVENTS[0]))

/* The JSON text of the two calls' arguments, as they appear (escaped) in
   the assembled answer. */
#define ZRH_ARGUMENTS_JSON "\"arguments\":\"{\\\"city\\\": \\\"Z\xc3\xbc" "rich\\\"}\""
#define SAO_ARGUMENTS_JSON                                                               \
    "\"arguments\":\"{\\\"city\\\": \\\"S\\\\u00e3o Paulo\\\", \\\"unit\\\": "           \
    "\\\"celsius\\\"}\""
#define AGENT_REASONING_JSON "\"reasoning_content\":\"Two cities: Z\xc3\xbc" "rich and S\xc3\xa3o Paulo.\""

/* Whether a recorded event is the expected one; else says why in why. */
static int event_is(const struct recorded_event *e, const struct expected_event *x, char *why,
                    size_t n)
{
    if (e->kind != x->kind || strcmp(e->text, x->text) != 0 || e->tool_index != x->tool_index ||
        e->has_id != (x->tool_id != NULL) || e->has_name != (x->tool_name != NULL) ||
        (x->tool_id != NULL && strcmp(e->tool_id, x->tool_id) != 0) ||
        (x->tool_name != NULL && strcmp(e->tool_name, x->tool_name) != 0)) {
        snprintf(why, n,
                 "got kind %d \"%s\" index %u id %s%s name %s%s, expected kind %d \"%s\" "
                 "index %u id %s name %s",
                 (int)e->kind, e->text, (unsigned)e->tool_index, e->has_id ? e->tool_id : "",
                 e->has_id ? "" : "(null)", e->has_name ? e->tool_name : "",
                 e->has_name ? "" : "(null)", (int)x->kind, x->text, (unsigned)x->tool_index,
                 str(x->tool_id), str(x->tool_name));
        return 0;
    }
    return 1;
}

/* Whether the recorder holds exactly the events expected[0..count-1]. */
static int events_are(const struct recorder *r, const struct expected_event *expected,
                      int count, char *why, size_t n)
{
    int i;

    if (r->bad[0] != '\0') {
        snprintf(why, n, "%s", r->bad);
        return 0;
    }
    for (i = 0; i < r->count && i < count; i++) {
        char detail[512];

        if (!event_is(&r->events[i], &expected[i], detail, sizeof detail)) {
            snprintf(why, n, "event %d: %s", i + 1, detail);
            return 0;
        }
    }
    if (r->count != count) {
        snprintf(why, n, "%d events, expected %d", r->count, count);
        return 0;
    }
    return 1;
}

/* Whether *event is the empty content event of a status other than OK. */
static int is_empty_event(const ModelApiEvent *event)
{
    return event->kind == MODELAPI_EVENT_CONTENT && event->text != NULL &&
           event->text[0] == '\0' && event->len == 0 && event->tool_index == 0 &&
           event->tool_id == NULL && event->tool_name == NULL;
}

/* An event full of garbage, to see that the library sets every field. */
static void garbage_event(ModelApiEvent *event)
{
    event->kind = MODELAPI_EVENT_REFUSAL;
    event->text = GARBAGE;
    event->len = 99;
    event->tool_index = 7;
    event->tool_id = GARBAGE;
    event->tool_name = GARBAGE;
}

/* Pulls up to max events of stream into r with modelapi_stream_next_event;
   returns the status of the last call. */
static ModelApiStatus pull_events(ModelApiStream *stream, struct recorder *r, int max)
{
    ModelApiStatus status = MODELAPI_OK;
    ModelApiEvent event;
    int i;

    for (i = 0; i < max; i++) {
        status = modelapi_stream_next_event(stream, &event);
        if (status != MODELAPI_OK) {
            break;
        }
        record(r, &event);
    }
    return status;
}

/* The stream's assembled answer (NULL after printing why when it fails).
   Free it with modelapi_string_free. */
static char *completion_of(ModelApiStream *stream)
{
    char *json = GARBAGE;
    ModelApiStatus status = modelapi_stream_completion_json(stream, &json);

    if (status != MODELAPI_OK || json == NULL || json == GARBAGE) {
        check(0, "modelapi_stream_completion_json", "status %s (%s), json %p",
              status_name(status), modelapi_last_error(), (void *)json);
        return NULL;
    }
    return json;
}

/* The position of needle in haystack, or -1. */
static long position(const char *haystack, const char *needle)
{
    const char *at = haystack != NULL ? strstr(haystack, needle) : NULL;

    return at != NULL ? (long)(at - haystack) : -1;
}

/* ---- the checks --------------------------------------------------------- */

static const char *base_url;

static const ModelApiMessage HELLO[] = { { "user", "Say hello" } };

static void version_checks(void)
{
    char expected[64];

    check(strcmp(modelapi_version(), MODELAPI_VERSION) == 0,
          "modelapi_version() equals MODELAPI_VERSION",
          "got \"%s\", header says \"%s\"", modelapi_version(), MODELAPI_VERSION);
    snprintf(expected, sizeof expected, "%d.%d.%d", MODELAPI_VERSION_MAJOR,
             MODELAPI_VERSION_MINOR, MODELAPI_VERSION_PATCH);
    check(strcmp(modelapi_version(), expected) == 0,
          "modelapi_version() equals MAJOR.MINOR.PATCH of the header",
          "got \"%s\", expected \"%s\"", modelapi_version(), expected);
}

static void no_error_yet(void)
{
    check(strcmp(modelapi_last_error(), "") == 0 && modelapi_last_http_status() == 0,
          "last_error is \"\" and last_http_status 0 before any failure",
          "last_error \"%s\", last_http_status %d", modelapi_last_error(),
          modelapi_last_http_status());
}

static void constructor_checks(void)
{
    ModelApi *api;

    api = modelapi_new(NULL, base_url, NULL);
    check(api == NULL && contains(modelapi_last_error(), "model"),
          "modelapi_new with a NULL model fails, naming the model",
          "client %p, last_error \"%s\"", (void *)api, modelapi_last_error());
    modelapi_close(api);

    api = modelapi_new("ok", "ftp://x", NULL);
    check(api == NULL && contains(modelapi_last_error(), "api_base"),
          "modelapi_new with api_base ftp://x fails, naming api_base",
          "client %p, last_error \"%s\"", (void *)api, modelapi_last_error());
    modelapi_close(api);

    api = modelapi_new("\xff", base_url, NULL);
    check(api == NULL && contains(modelapi_last_error(), "UTF-8"),
          "modelapi_new with an invalid UTF-8 model fails, saying UTF-8",
          "client %p, last_error \"%s\"", (void *)api, modelapi_last_error());
    modelapi_close(api);

    /* DEBUG_MOCK_RESPONSES is read when a client is created. */
    setenv("DEBUG_MOCK_RESPONSES", "{\"not\": \"an array\"}", 1);
    api = modelapi_new("ok", base_url, NULL);
    check(api == NULL && contains(modelapi_last_error(), "DEBUG_MOCK_RESPONSES"),
          "modelapi_new with DEBUG_MOCK_RESPONSES a JSON object fails, naming it",
          "client %p, last_error \"%s\"", (void *)api, modelapi_last_error());
    modelapi_close(api);
    unsetenv("DEBUG_MOCK_RESPONSES");
}

static void argument_checks(ModelApi *ok)
{
    ModelApiMessage bad;
    ModelApiStatus status;
    char *json = GARBAGE;
    char *content = GARBAGE;

    status = modelapi_complete(NULL, HELLO, 1, NULL, &json, &content);
    check(status == MODELAPI_INVALID_ARGUMENT && json == NULL && content == NULL,
          "complete with a NULL client: INVALID_ARGUMENT, out pointers set to NULL",
          "status %s, out_json %p, out_content %p", status_name(status), (void *)json,
          (void *)content);
    free_out(json);
    free_out(content);

    json = GARBAGE;
    content = GARBAGE;
    status = modelapi_complete(ok, NULL, 1, NULL, &json, &content);
    check(status == MODELAPI_INVALID_ARGUMENT && json == NULL && content == NULL,
          "complete with messages NULL and count 1: INVALID_ARGUMENT",
          "status %s, last_error \"%s\"", status_name(status), modelapi_last_error());
    json = GARBAGE;
    content = GARBAGE;
    status = modelapi_complete(ok, NULL, 0, NULL, &json, &content);
    check(status == MODELAPI_INVALID_ARGUMENT && json == NULL && content == NULL,
          "complete with messages NULL and count 0: INVALID_ARGUMENT too",
          "status %s, last_error \"%s\"", status_name(status), modelapi_last_error());
    free_out(json);
    free_out(content);

    bad.role = "user";
    bad.content = "caf\xe9"; /* Latin-1, not UTF-8 */
    status = modelapi_complete(ok, &bad, 1, NULL, NULL, &content);
    check(status == MODELAPI_INVALID_ARGUMENT &&
              contains(modelapi_last_error(), "messages[0].content"),
          "complete with invalid UTF-8 content: INVALID_ARGUMENT naming messages[0].content",
          "status %s, last_error \"%s\"", status_name(status), modelapi_last_error());
    free_out(content);
}

static void http_error_checks(ModelApi *unauthorized)
{
    ModelApiStream *stream = (ModelApiStream *)GARBAGE;
    ModelApiStatus status;
    char *json = GARBAGE;
    char *content = GARBAGE;
    int http_status;

    status = modelapi_complete(unauthorized, HELLO, 1, NULL, &json, &content);
    http_status = modelapi_last_http_status();
    check(status == MODELAPI_HTTP_ERROR && http_status == 401,
          "complete answered 401: MODELAPI_HTTP_ERROR, last_http_status 401",
          "status %s, last_http_status %d", status_name(status), http_status);
    check(contains(modelapi_last_error(), "Invalid API key provided"),
          "the HTTP error carries the server's message",
          "last_error \"%s\"", modelapi_last_error());
    check(!contains(modelapi_last_error(), "sk-c-test-secret"),
          "the HTTP error does not contain the API key",
          "last_error \"%s\"", modelapi_last_error());
    check(json == NULL && content == NULL,
          "the out pointers are NULL after the HTTP error",
          "out_json %p, out_content %p", (void *)json, (void *)content);
    free_out(json);
    free_out(content);

    status = modelapi_stream_open(unauthorized, HELLO, 1, NULL, &stream);
    check(status == MODELAPI_HTTP_ERROR && stream == NULL &&
              modelapi_last_http_status() == 401,
          "stream_open answered 401: MODELAPI_HTTP_ERROR, out_stream NULL",
          "status %s, stream %p, last_http_status %d", status_name(status), (void *)stream,
          modelapi_last_http_status());
    if (stream != (ModelApiStream *)GARBAGE) {
        modelapi_stream_free(stream);
    }

    /* A failure of another kind leaves the status of the last HTTP error. */
    status = modelapi_set_timeout_ms(NULL, 1000);
    check(status == MODELAPI_INVALID_ARGUMENT && modelapi_last_http_status() == 401,
          "a later non-HTTP failure leaves last_http_status at the last HTTP error's",
          "status %s, last_http_status %d", status_name(status),
          modelapi_last_http_status());
}

static void complete_checks(ModelApi *ok)
{
    ModelApiStatus status;
    char *json = NULL;
    char *content = NULL;
    char before[256];

    status = modelapi_complete(ok, HELLO, 1, NULL, &json, &content);
    check(status == MODELAPI_OK && content != NULL &&
              strcmp(content, "Hello from the test server") == 0,
          "complete on \"ok\": MODELAPI_OK with the exact content",
          "status %s (%s), content \"%s\"", status_name(status), modelapi_last_error(),
          str(content));
    check(contains(json, "\"chat.completion\""),
          "complete's out_json is the chat.completion object", "out_json %s", str(json));
    modelapi_string_free(json);
    modelapi_string_free(content);

    /* Only the content wanted; and a success leaves last_error as it was. */
    snprintf(before, sizeof before, "%s", modelapi_last_error());
    content = NULL;
    status = modelapi_complete(ok, HELLO, 1, NULL, NULL, &content);
    check(status == MODELAPI_OK && content != NULL &&
              strcmp(content, "Hello from the test server") == 0,
          "complete with out_json NULL gives the content alone",
          "status %s, content \"%s\"", status_name(status), str(content));
    modelapi_string_free(content);
    check(strcmp(modelapi_last_error(), before) == 0,
          "a successful call leaves last_error as it was",
          "was \"%s\", now \"%s\"", before, modelapi_last_error());

    content = NULL;
    status = modelapi_complete_json(ok, "[{\"role\": \"user\", \"content\": \"Say hello\"}]",
                                    NULL, NULL, &content);
    check(status == MODELAPI_OK && content != NULL &&
              strcmp(content, "Hello from the test server") == 0,
          "complete_json with a message array",
          "status %s (%s), content \"%s\"", status_name(status), modelapi_last_error(),
          str(content));
    modelapi_string_free(content);

    content = NULL;
    status = modelapi_complete_json(
        ok, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"temperature\": 0.5}",
        NULL, NULL, &content);
    check(status == MODELAPI_OK && content != NULL && strcmp(content, "temperature=0.5") == 0,
          "complete_json with a request object passes temperature through",
          "status %s (%s), content \"%s\"", status_name(status), modelapi_last_error(),
          str(content));
    modelapi_string_free(content);

    content = GARBAGE;
    status = modelapi_complete_json(ok, "not json", NULL, NULL, &content);
    check(status == MODELAPI_INVALID_ARGUMENT && content == NULL,
          "complete_json with \"not json\": INVALID_ARGUMENT",
          "status %s, content %p", status_name(status), (void *)content);
    free_out(content);

    content = GARBAGE;
    status = modelapi_complete_json(ok, "42", NULL, NULL, &content);
    check(status == MODELAPI_INVALID_ARGUMENT && content == NULL,
          "complete_json with \"42\": INVALID_ARGUMENT",
          "status %s, content %p", status_name(status), (void *)content);
    free_out(content);
}

static void canned_reply_checks(void)
{
    ModelApi *api;
    ModelApiStatus status;
    char *content = NULL;

    setenv("DEBUG_MOCK_RESPONSES", "[\"A canned reply\"]", 1);
    api = modelapi_new("ok", base_url, NULL);
    unsetenv("DEBUG_MOCK_RESPONSES"); /* read at creation: no longer needed */

    status = modelapi_complete(api, HELLO, 1, NULL, NULL, &content);
    check(status == MODELAPI_OK && content != NULL && strcmp(content, "A canned reply") == 0,
          "DEBUG_MOCK_RESPONSES: the first complete gets the canned reply",
          "status %s (%s), content \"%s\"", status_name(status), modelapi_last_error(),
          str(content));
    modelapi_string_free(content);

    content = NULL;
    status = modelapi_complete(api, HELLO, 1, NULL, NULL, &content);
    check(status == MODELAPI_OK && content != NULL &&
              strcmp(content, "Hello from the test server") == 0,
          "DEBUG_MOCK_RESPONSES: once used up, calls go to the server",
          "status %s (%s), content \"%s\"", status_name(status), modelapi_last_error(),
          str(content));
    modelapi_string_free(content);
    modelapi_close(api);
}

static void stream_callback_checks(ModelApi *ok, ModelApi *long_api, ModelApi *stream_error)
{
    struct collector c;
    ModelApiStatus status;
    ModelApiStream *stream = NULL;
    const char *chunk = NULL;
    size_t len = 0;

    status = modelapi_stream(ok, HELLO, 1, NULL, NULL, NULL);
    check(status == MODELAPI_INVALID_ARGUMENT, "stream with on_chunk NULL: INVALID_ARGUMENT",
          "status %s", status_name(status));

    memset(&c, 0, sizeof c);
    status = modelapi_stream(ok, HELLO, 1, NULL, collect, &c);
    check(status == MODELAPI_OK && strcmp(c.text, "Hello from the test server") == 0 &&
              !c.bad_chunk,
          "stream on \"ok\": MODELAPI_OK, the chunks make the answer",
          "status %s (%s), text \"%s\", %d chunks", status_name(status),
          modelapi_last_error(), c.text, c.chunks);

    memset(&c, 0, sizeof c);
    c.stop_after = 3;
    status = modelapi_stream(long_api, HELLO, 1, NULL, collect, &c);
    check(status == MODELAPI_ABORTED && c.chunks == 3 && strcmp(c.text, "xxx") == 0,
          "stream on \"long\" stopped by the callback after 3 chunks: MODELAPI_ABORTED",
          "status %s (%s), %d chunks", status_name(status), modelapi_last_error(), c.chunks);

    /* The client stays usable after an abort. */
    status = modelapi_stream_open(long_api, HELLO, 1, NULL, &stream);
    if (status == MODELAPI_OK) {
        status = modelapi_stream_next(stream, &chunk, &len);
    }
    check(status == MODELAPI_OK && chunk != NULL && strcmp(chunk, "x") == 0 && len == 1,
          "the same client streams again after the abort",
          "status %s (%s), chunk \"%s\"", status_name(status), modelapi_last_error(),
          str(chunk));
    modelapi_stream_free(stream); /* half-way: closes the connection */

    memset(&c, 0, sizeof c);
    status = modelapi_stream(stream_error, HELLO, 1, NULL, collect, &c);
    check(status == MODELAPI_SERVER_ERROR && c.chunks == 1 && strcmp(c.text, "partial") == 0 &&
              contains(modelapi_last_error(), "model overloaded"),
          "stream with a mid-stream error event: MODELAPI_SERVER_ERROR after 1 chunk",
          "status %s (%s), %d chunks, text \"%s\"", status_name(status),
          modelapi_last_error(), c.chunks, c.text);
}

static void pull_stream_checks(ModelApi *ok, ModelApi *long_api, ModelApi *stream_error)
{
    ModelApiStream *stream = NULL;
    ModelApiStatus status;
    const char *chunk;
    size_t len;
    char text[256] = "";
    int chunks = 0;
    int i;
    int all_done;
    double started;
    double seconds;

    /* Read "ok" to the end. */
    status = modelapi_stream_open(ok, HELLO, 1, NULL, &stream);
    if (status == MODELAPI_OK) {
        for (i = 0; i < 100; i++) {
            status = modelapi_stream_next(stream, &chunk, &len);
            if (status != MODELAPI_OK) {
                break;
            }
            chunks++;
            if (strlen(chunk) == len && strlen(text) + len < sizeof text) {
                strcat(text, chunk);
            }
        }
    }
    check(status == MODELAPI_DONE && strcmp(text, "Hello from the test server") == 0,
          "stream_open + stream_next on \"ok\": the chunks, then MODELAPI_DONE",
          "status %s (%s), text \"%s\", %d chunks", status_name(status),
          modelapi_last_error(), text, chunks);

    /* After the end: MODELAPI_DONE again, with chunk NULL and len 0. */
    all_done = 1;
    for (i = 0; i < 3; i++) {
        chunk = GARBAGE;
        len = 99;
        status = modelapi_stream_next(stream, &chunk, &len);
        if (status != MODELAPI_DONE || chunk != NULL || len != 0) {
            all_done = 0;
        }
    }
    check(all_done, "stream_next after the end: MODELAPI_DONE 3 more times, chunk NULL, len 0",
          "last: status %s, chunk %p, len %lu", status_name(status), (const void *)chunk,
          (unsigned long)len);
    modelapi_stream_free(stream);

    /* Free "long" half-way: the connection is closed, nothing more read. */
    stream = NULL;
    chunks = 0;
    status = modelapi_stream_open(long_api, HELLO, 1, NULL, &stream);
    while (status == MODELAPI_OK && chunks < 2) {
        status = modelapi_stream_next(stream, &chunk, &len);
        if (status == MODELAPI_OK) {
            chunks++;
        }
    }
    started = now();
    modelapi_stream_free(stream);
    seconds = now() - started;
    check(status == MODELAPI_OK && chunks == 2 && seconds < 2.0,
          "stream_free half-way through \"long\" returns at once",
          "status %s (%s), %d chunks, free took %.3f s", status_name(status),
          modelapi_last_error(), chunks, seconds);

    /* A mid-stream error event: the chunk, the error, then DONE. */
    stream = NULL;
    chunk = NULL;
    status = modelapi_stream_open(stream_error, HELLO, 1, NULL, &stream);
    if (status == MODELAPI_OK) {
        status = modelapi_stream_next(stream, &chunk, &len);
    }
    check(status == MODELAPI_OK && chunk != NULL && strcmp(chunk, "partial") == 0,
          "stream_next on \"stream-error\": first the chunk \"partial\"",
          "status %s (%s), chunk \"%s\"", status_name(status), modelapi_last_error(),
          str(chunk));
    chunk = GARBAGE;
    len = 99;
    status = modelapi_stream_next(stream, &chunk, &len);
    check(status == MODELAPI_SERVER_ERROR && contains(modelapi_last_error(), "model overloaded") &&
              chunk == NULL && len == 0,
          "then MODELAPI_SERVER_ERROR with the server's message",
          "status %s, last_error \"%s\", chunk %p, len %lu", status_name(status),
          modelapi_last_error(), (const void *)chunk, (unsigned long)len);
    status = modelapi_stream_next(stream, &chunk, &len);
    check(status == MODELAPI_DONE, "then MODELAPI_DONE", "status %s", status_name(status));
    modelapi_stream_free(stream);

    chunk = GARBAGE;
    len = 99;
    status = modelapi_stream_next(NULL, &chunk, &len);
    check(status == MODELAPI_INVALID_ARGUMENT && chunk == NULL && len == 0,
          "stream_next(NULL, ...): INVALID_ARGUMENT", "status %s", status_name(status));
}

static void event_argument_checks(ModelApi *ok)
{
    ModelApiStream *stream = NULL;
    ModelApiStatus status;
    ModelApiEvent event;
    char *json = GARBAGE;

    garbage_event(&event);
    status = modelapi_stream_next_event(NULL, &event);
    check(status == MODELAPI_INVALID_ARGUMENT && is_empty_event(&event) &&
              contains(modelapi_last_error(), "stream"),
          "stream_next_event(NULL, &event): INVALID_ARGUMENT, an empty content event",
          "status %s, last_error \"%s\", text %p", status_name(status), modelapi_last_error(),
          (const void *)event.text);

    status = modelapi_stream_completion_json(NULL, &json);
    check(status == MODELAPI_INVALID_ARGUMENT && json == NULL,
          "stream_completion_json(NULL, &json): INVALID_ARGUMENT, json NULL",
          "status %s, json %p", status_name(status), (void *)json);
    free_out(json);

    status = modelapi_stream_open(ok, HELLO, 1, NULL, &stream);
    if (!check(status == MODELAPI_OK, "stream_open on \"ok\" for the NULL checks", "status %s (%s)",
               status_name(status), modelapi_last_error())) {
        return;
    }
    status = modelapi_stream_next_event(stream, NULL);
    check(status == MODELAPI_INVALID_ARGUMENT && contains(modelapi_last_error(), "out_event"),
          "stream_next_event(stream, NULL): INVALID_ARGUMENT naming out_event",
          "status %s, last_error \"%s\"", status_name(status), modelapi_last_error());
    status = modelapi_stream_completion_json(stream, NULL);
    check(status == MODELAPI_INVALID_ARGUMENT && contains(modelapi_last_error(), "out_json"),
          "stream_completion_json(stream, NULL): INVALID_ARGUMENT naming out_json",
          "status %s, last_error \"%s\"", status_name(status), modelapi_last_error());

    /* The failed calls left the stream as it was. */
    garbage_event(&event);
    status = modelapi_stream_next_event(stream, &event);
    check(status == MODELAPI_OK && event.kind == MODELAPI_EVENT_CONTENT && event.len == 5 &&
              strcmp(event.text, "Hello") == 0 && event.tool_id == NULL &&
              event.tool_name == NULL && event.tool_index == 0,
          "then stream_next_event gives the first chunk, \"Hello\", as a content event",
          "status %s (%s), text \"%s\"", status_name(status), modelapi_last_error(),
          status == MODELAPI_OK ? event.text : "");

    json = completion_of(stream);
    check(contains(json, "\"content\":\"Hello\"") && contains(json, "\"finish_reason\":null") &&
              contains(json, "\"id\":\"chatcmpl-1\"") && contains(json, "\"model\":\"test-model\"") &&
              contains(json, "\"object\":\"chat.completion\""),
          "completion_json after the first chunk: content \"Hello\", no finish_reason yet",
          "%s", str(json));
    modelapi_string_free(json);
    modelapi_stream_free(stream);

    /* modelapi_stream_events */
    json = GARBAGE;
    status = modelapi_stream_events(NULL, "[]", NULL, NULL, record_event, NULL, &json);
    check(status == MODELAPI_INVALID_ARGUMENT && json == NULL,
          "stream_events with a NULL client: INVALID_ARGUMENT, out_json NULL",
          "status %s, json %p", status_name(status), (void *)json);
    free_out(json);
    json = GARBAGE;
    status = modelapi_stream_events(ok, "[{\"role\":\"user\",\"content\":\"hi\"}]", NULL, NULL,
                                    NULL, NULL, &json);
    check(status == MODELAPI_INVALID_ARGUMENT && json == NULL &&
              contains(modelapi_last_error(), "on_event"),
          "stream_events with on_event NULL: INVALID_ARGUMENT naming on_event, out_json NULL",
          "status %s, last_error \"%s\", json %p", status_name(status), modelapi_last_error(),
          (void *)json);
    free_out(json);
    json = GARBAGE;
    status = modelapi_stream_events(ok, NULL, NULL, NULL, record_event, NULL, &json);
    check(status == MODELAPI_INVALID_ARGUMENT && json == NULL,
          "stream_events with messages_json NULL: INVALID_ARGUMENT",
          "status %s, json %p", status_name(status), (void *)json);
    free_out(json);
    json = GARBAGE;
    status = modelapi_stream_events(ok, "not json", NULL, NULL, record_event, NULL, &json);
    check(status == MODELAPI_INVALID_ARGUMENT && json == NULL,
          "stream_events with messages_json \"not json\": INVALID_ARGUMENT",
          "status %s, json %p", status_name(status), (void *)json);
    free_out(json);
}

/* The substrings of the whole "agent" answer. */
static int is_whole_agent_answer(const char *json)
{
    long zrh = position(json, "\"id\":\"call_zrh\"");
    long sao = position(json, "\"id\":\"call_sao\"");

    return contains(json, AGENT_REASONING_JSON) &&
           contains(json, "\"content\":\"Let me check both cities.\"") &&
           contains(json, ZRH_ARGUMENTS_JSON) && contains(json, SAO_ARGUMENTS_JSON) &&
           contains(json, "\"name\":\"get_weather\"") &&
           contains(json, "\"type\":\"function\"") &&
           contains(json, "\"finish_reason\":\"tool_calls\"") && zrh >= 0 && sao > zrh;
}

static void pull_event_checks(ModelApi *agent, ModelApi *stream_error)
{
    ModelApiStream *stream = NULL;
    ModelApiStatus status;
    ModelApiEvent event;
    struct recorder r;
    char why[1024] = "";
    char *json;
    const char *chunk;
    size_t len;
    int all_done;
    int i;

    /* The whole "agent" stream, event by event. */
    memset(&r, 0, sizeof r);
    status = modelapi_stream_open(agent, HELLO, 1, NULL, &stream);
    if (status == MODELAPI_OK) {
        status = pull_events(stream, &r, 100);
    }
    check(status == MODELAPI_DONE && events_are(&r, AGENT_EVENTS, AGENT_EVENT_COUNT, why,
                                                sizeof why),
          "stream_next_event on \"agent\": reasoning, content, interleaved tool-call pieces, "
          "then MODELAPI_DONE",
          "status %s (%s); %s", status_name(status), modelapi_last_error(), why);
    all_done = 1;
    for (i = 0; i < 3; i++) {
        garbage_event(&event);
        status = modelapi_stream_next_event(stream, &event);
        if (status != MODELAPI_DONE || !is_empty_event(&event)) {
            all_done = 0;
        }
    }
    check(all_done,
          "after the end: MODELAPI_DONE 3 more times, each with an empty content event "
          "(text \"\", never NULL)",
          "last: status %s, text %p, len %lu", status_name(status), (const void *)event.text,
          (unsigned long)event.len);
    check(strcmp(str(modelapi_stream_finish_reason(stream)), "tool_calls") == 0,
          "stream_finish_reason is \"tool_calls\"", "got %s",
          str(modelapi_stream_finish_reason(stream)));
    json = completion_of(stream);
    check(is_whole_agent_answer(json),
          "completion_json at the end: reasoning, content, both calls' whole arguments in "
          "index order, finish_reason tool_calls",
          "%s", str(json));
    modelapi_string_free(json);
    modelapi_stream_free(stream);

    /* In the middle. */
    stream = NULL;
    memset(&r, 0, sizeof r);
    status = modelapi_stream_open(agent, HELLO, 1, NULL, &stream);
    if (status == MODELAPI_OK) {
        status = pull_events(stream, &r, 2);
    }
    json = status == MODELAPI_OK ? completion_of(stream) : NULL;
    check(status == MODELAPI_OK && r.count == 2 && contains(json, AGENT_REASONING_JSON) &&
              contains(json, "\"content\":null") && !contains(json, "tool_calls") &&
              contains(json, "\"finish_reason\":null"),
          "completion_json after the 2 reasoning events: the reasoning, content null, no "
          "tool_calls, no finish_reason",
          "status %s (%s), %d events: %s", status_name(status), modelapi_last_error(), r.count,
          str(json));
    modelapi_string_free(json);
    if (status == MODELAPI_OK) {
        status = pull_events(stream, &r, 4);
    }
    json = status == MODELAPI_OK ? completion_of(stream) : NULL;
    check(status == MODELAPI_OK && r.count == 6 &&
              contains(json, "\"content\":\"Let me check both cities.\"") &&
              contains(json, "\"arguments\":\"{\\\"city\\\": \\\"Z\"") &&
              contains(json, "\"arguments\":\"{\\\"ci\"") && contains(json, "\"id\":\"call_sao\"") &&
              contains(json, "\"finish_reason\":null"),
          "completion_json after 6 events: both calls' arguments so far",
          "status %s (%s), %d events: %s", status_name(status), modelapi_last_error(), r.count,
          str(json));
    modelapi_string_free(json);
    modelapi_stream_free(stream); /* half-way */

    /* modelapi_stream_next and modelapi_stream_next_event mixed. */
    stream = NULL;
    memset(&r, 0, sizeof r);
    chunk = NULL;
    len = 0;
    status = modelapi_stream_open(agent, HELLO, 1, NULL, &stream);
    if (status == MODELAPI_OK) {
        status = pull_events(stream, &r, 1);
    }
    check(status == MODELAPI_OK && r.count == 1 &&
              event_is(&r.events[0], &AGENT_EVENTS[0], why, sizeof why),
          "mixed: stream_next_event gives the first reasoning piece", "status %s (%s); %s",
          status_name(status), modelapi_last_error(), why);
    if (status == MODELAPI_OK) {
        status = modelapi_stream_next(stream, &chunk, &len);
    }
    check(status == MODELAPI_OK && chunk != NULL && strcmp(chunk, "Let me check both cities.") == 0 &&
              len == strlen(chunk),
          "mixed: then stream_next skips the second reasoning piece, gives the content",
          "status %s (%s), chunk \"%s\"", status_name(status), modelapi_last_error(), str(chunk));
    if (status == MODELAPI_OK) {
        status = pull_events(stream, &r, 1);
    }
    check(status == MODELAPI_OK && r.count == 2 &&
              event_is(&r.events[1], &AGENT_EVENTS[3], why, sizeof why),
          "mixed: then stream_next_event gives the first tool-call piece",
          "status %s (%s); %s", status_name(status), modelapi_last_error(), why);
    if (status == MODELAPI_OK) {
        status = modelapi_stream_next(stream, &chunk, &len);
    }
    check(status == MODELAPI_DONE && chunk == NULL && len == 0,
          "mixed: then stream_next skips the other tool-call pieces: MODELAPI_DONE",
          "status %s (%s), chunk \"%s\"", status_name(status), modelapi_last_error(), str(chunk));
    garbage_event(&event);
    status = modelapi_stream_next_event(stream, &event);
    json = completion_of(stream);
    check(status == MODELAPI_DONE && is_empty_event(&event) && is_whole_agent_answer(json),
          "mixed: stream_next_event is DONE too, and the skipped pieces are in completion_json",
          "status %s: %s", status_name(status), str(json));
    modelapi_string_free(json);
    modelapi_stream_free(stream);

    /* A mid-stream error. */
    stream = NULL;
    memset(&r, 0, sizeof r);
    status = modelapi_stream_open(stream_error, HELLO, 1, NULL, &stream);
    if (status == MODELAPI_OK) {
        status = pull_events(stream, &r, 1);
    }
    check(status == MODELAPI_OK && r.count == 1 && r.events[0].kind == MODELAPI_EVENT_CONTENT &&
              strcmp(r.events[0].text, "partial") == 0,
          "stream_next_event on \"stream-error\": first the content event \"partial\"",
          "status %s (%s)", status_name(status), modelapi_last_error());
    garbage_event(&event);
    status = modelapi_stream_next_event(stream, &event);
    check(status == MODELAPI_SERVER_ERROR && contains(modelapi_last_error(), "model overloaded") &&
              is_empty_event(&event),
          "then MODELAPI_SERVER_ERROR, with an empty content event",
          "status %s, last_error \"%s\"", status_name(status), modelapi_last_error());
    json = completion_of(stream);
    check(contains(json, "\"content\":\"partial\"") && contains(json, "\"finish_reason\":null"),
          "completion_json after the error: what arrived before it", "%s", str(json));
    modelapi_string_free(json);
    status = modelapi_stream_next_event(stream, &event);
    check(status == MODELAPI_DONE && is_empty_event(&event), "then stream_next_event is DONE",
          "status %s", status_name(status));
    modelapi_stream_free(stream);
}

static void callback_event_checks(ModelApi *agent, ModelApi *ok, ModelApi *stream_error,
                                  ModelApi *unauthorized)
{
    static const char *const request = "{\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"}],"
                                       "\"tools\":[{\"type\":\"function\",\"function\":{"
                                       "\"name\":\"get_weather\",\"parameters\":{\"type\":"
                                       "\"object\",\"properties\":{\"city\":{\"type\":"
                                       "\"string\"}}}}}]}";
    ModelApiCancel *cancel;
    ModelApiStatus status;
    struct recorder r;
    char why[1024] = "";
    char *json = GARBAGE;

    memset(&r, 0, sizeof r);
    status = modelapi_stream_events(agent, request, NULL, NULL, record_event, &r, &json);
    check(status == MODELAPI_OK && events_are(&r, AGENT_EVENTS, AGENT_EVENT_COUNT, why, sizeof why),
          "stream_events on \"agent\": every event, in order", "status %s (%s); %s",
          status_name(status), modelapi_last_error(), why);
    check(json != GARBAGE && is_whole_agent_answer(json),
          "stream_events: out_json is the whole answer", "%s",
          json == GARBAGE ? "(not set)" : str(json));
    free_out(json);

    memset(&r, 0, sizeof r);
    status = modelapi_stream_events(agent, request, NULL, NULL, record_event, &r, NULL);
    check(status == MODELAPI_OK && r.count == AGENT_EVENT_COUNT,
          "stream_events with out_json NULL (not wanted): MODELAPI_OK", "status %s (%s), %d events",
          status_name(status), modelapi_last_error(), r.count);

    memset(&r, 0, sizeof r);
    r.stop_after = 3;
    json = GARBAGE;
    status = modelapi_stream_events(agent, request, NULL, NULL, record_event, &r, &json);
    check(status == MODELAPI_ABORTED && r.count == 3 && json == NULL &&
              events_are(&r, AGENT_EVENTS, 3, why, sizeof why),
          "stream_events whose callback stops at the 3rd event: MODELAPI_ABORTED, out_json NULL",
          "status %s (%s), %d events, json %p; %s", status_name(status), modelapi_last_error(),
          r.count, (void *)json, why);
    free_out(json);

    memset(&r, 0, sizeof r);
    json = GARBAGE;
    status = modelapi_stream_events(ok, "[{\"role\":\"user\",\"content\":\"hi\"}]", NULL, NULL,
                                    record_event, &r, &json);
    check(status == MODELAPI_OK && r.count == 5 && strcmp(r.events[4].text, " server") == 0 &&
              contains(json, "\"content\":\"Hello from the test server\"") &&
              contains(json, "\"finish_reason\":\"stop\""),
          "the client streams again after the stop: 5 content events, the answer",
          "status %s (%s), %d events, %s", status_name(status), modelapi_last_error(), r.count,
          json == GARBAGE ? "(not set)" : str(json));
    free_out(json);

    memset(&r, 0, sizeof r);
    json = GARBAGE;
    status = modelapi_stream_events(stream_error, "[]", NULL, NULL, record_event, &r, &json);
    check(status == MODELAPI_SERVER_ERROR && r.count == 1 && strcmp(r.events[0].text, "partial") == 0 &&
              json == NULL && contains(modelapi_last_error(), "model overloaded"),
          "stream_events on \"stream-error\": MODELAPI_SERVER_ERROR after 1 event, out_json NULL",
          "status %s (%s), %d events, json %p", status_name(status), modelapi_last_error(),
          r.count, (void *)json);
    free_out(json);

    memset(&r, 0, sizeof r);
    json = GARBAGE;
    status = modelapi_stream_events(unauthorized, "[]", NULL, NULL, record_event, &r, &json);
    check(status == MODELAPI_HTTP_ERROR && modelapi_last_http_status() == 401 && r.count == 0 &&
              json == NULL,
          "stream_events answered 401: MODELAPI_HTTP_ERROR, no event, out_json NULL",
          "status %s (%s), %d events, json %p", status_name(status), modelapi_last_error(),
          r.count, (void *)json);
    free_out(json);

    cancel = modelapi_cancel_new();
    modelapi_cancel(cancel);
    memset(&r, 0, sizeof r);
    json = GARBAGE;
    status = modelapi_stream_events(agent, request, NULL, cancel, record_event, &r, &json);
    check(status == MODELAPI_ABORTED && r.count == 0 && json == NULL,
          "stream_events with a cancelled token: MODELAPI_ABORTED, no event, out_json NULL",
          "status %s (%s), %d events, json %p", status_name(status), modelapi_last_error(),
          r.count, (void *)json);
    free_out(json);
    modelapi_cancel_reset(cancel);
    memset(&r, 0, sizeof r);
    status = modelapi_stream_events(agent, request, NULL, cancel, record_event, &r, NULL);
    check(status == MODELAPI_OK && r.count == AGENT_EVENT_COUNT,
          "stream_events with the token reset: MODELAPI_OK", "status %s (%s), %d events",
          status_name(status), modelapi_last_error(), r.count);
    modelapi_cancel_free(cancel);
}

/* The texts of the events of one kind, concatenated into out (size n);
   max_len: the longest a piece was. Returns how many there were. */
static int join_kind(const struct recorder *r, ModelApiEventKind kind, uint32_t tool_index,
                     char *out, size_t n, size_t *max_len)
{
    int i;
    int pieces = 0;

    out[0] = '\0';
    for (i = 0; i < r->count && i < 64; i++) {
        const struct recorded_event *e = &r->events[i];

        if (e->kind != kind || e->tool_index != tool_index) {
            continue;
        }
        pieces++;
        if (strlen(e->text) > *max_len) {
            *max_len = strlen(e->text);
        }
        if (strlen(out) + strlen(e->text) < n) {
            strcat(out, e->text);
        }
    }
    return pieces;
}

/* Canned replies that are whole assistant messages, with tool calls. */
static void canned_tool_call_checks(void)
{
    ModelApi *api;
    ModelApiStream *stream = NULL;
    ModelApiStatus status;
    struct recorder r;
    char reasoning[128];
    char arguments[128];
    char content[128];
    size_t longest = 0;
    char *json = NULL;
    int pieces;

    setenv("DEBUG_MOCK_RESPONSES",
           "[{\"reasoning_content\":\"I should call the tool.\",\"tool_calls\":[{\"id\":\"call_1\","
           "\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}}]},"
           "\"It is 18 \\u00b0C and sunny in Paris.\","
           "{\"tool_calls\":[{\"function\":{\"name\":\"get_time\",\"arguments\":"
           "\"{\\\"tz\\\": \\\"Europe/Paris\\\"}\"}},{\"function\":{\"name\":\"get_weather\","
           "\"arguments\":{\"city\":\"Lyon\"}}}]}]",
           1);
    api = modelapi_new("ok", base_url, NULL);
    unsetenv("DEBUG_MOCK_RESPONSES");
    if (!check(api != NULL, "modelapi_new with canned tool-call replies", "%s",
               modelapi_last_error())) {
        return;
    }

    /* 1: reasoning and a tool call, pulled. */
    memset(&r, 0, sizeof r);
    status = modelapi_stream_open(api, HELLO, 1, NULL, &stream);
    if (status == MODELAPI_OK) {
        status = pull_events(stream, &r, 100);
    }
    pieces = join_kind(&r, MODELAPI_EVENT_REASONING, 0, reasoning, sizeof reasoning, &longest);
    check(status == MODELAPI_DONE && r.bad[0] == '\0' && pieces == 8 && longest == 3 &&
              strcmp(reasoning, "I should call the tool.") == 0,
          "canned: the reasoning streams in pieces of 3 characters",
          "status %s (%s), %d pieces, \"%s\" %s", status_name(status), modelapi_last_error(),
          pieces, reasoning, r.bad);
    longest = 0;
    pieces = join_kind(&r, MODELAPI_EVENT_TOOL_CALL, 0, arguments, sizeof arguments, &longest);
    {
        const struct recorded_event *first = &r.events[8 < r.count ? 8 : 0];

        check(pieces == 6 && longest == 3 && strcmp(arguments, "{\"city\":\"Paris\"}") == 0 &&
                  first->kind == MODELAPI_EVENT_TOOL_CALL && first->has_id && first->has_name &&
                  strcmp(first->tool_id, "call_1") == 0 &&
                  strcmp(first->tool_name, "get_weather") == 0 &&
                  strcmp(first->text, "{\"c") == 0 && r.count == 14 && !r.events[9].has_id &&
                  !r.events[9].has_name,
              "canned: the tool call: id and name with the first 3 characters of the "
              "arguments, then pieces of 3",
              "%d pieces, arguments \"%s\", %d events, first \"%s\" id \"%s\" name \"%s\"",
              pieces, arguments, r.count, first->text, first->tool_id, first->tool_name);
    }
    check(strcmp(str(modelapi_stream_finish_reason(stream)), "tool_calls") == 0,
          "canned: finish_reason \"tool_calls\"", "got %s",
          str(modelapi_stream_finish_reason(stream)));
    json = completion_of(stream);
    check(contains(json, "\"id\":\"call_1\"") &&
              contains(json, "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"") &&
              contains(json, "\"reasoning_content\":\"I should call the tool.\"") &&
              contains(json, "\"content\":null") &&
              contains(json, "\"finish_reason\":\"tool_calls\""),
          "canned: completion_json holds the tool call, the reasoning, content null",
          "%s", str(json));
    modelapi_string_free(json);
    modelapi_stream_free(stream);

    /* 2: a text, through the callback. */
    memset(&r, 0, sizeof r);
    json = NULL;
    status = modelapi_stream_events(api, "[{\"role\":\"user\",\"content\":\"hi\"}]", NULL, NULL,
                                    record_event, &r, &json);
    longest = 0;
    pieces = join_kind(&r, MODELAPI_EVENT_CONTENT, 0, content, sizeof content, &longest);
    check(status == MODELAPI_OK && pieces == r.count &&
              strcmp(content, "It is 18 \xc2\xb0" "C and sunny in Paris.") == 0 &&
              contains(json, "\"content\":\"It is 18 \xc2\xb0" "C and sunny in Paris.\"") &&
              contains(json, "\"finish_reason\":\"stop\"") && !contains(json, "tool_calls"),
          "canned: the next reply, a text, streams as content events; finish_reason stop",
          "status %s (%s), \"%s\", %s", status_name(status), modelapi_last_error(), content,
          str(json));
    modelapi_string_free(json);

    /* 3: two calls without ids. */
    memset(&r, 0, sizeof r);
    json = NULL;
    status = modelapi_stream_events(api, "[{\"role\":\"user\",\"content\":\"hi\"}]", NULL, NULL,
                                    record_event, &r, &json);
    pieces = join_kind(&r, MODELAPI_EVENT_TOOL_CALL, 0, arguments, sizeof arguments, &longest);
    join_kind(&r, MODELAPI_EVENT_TOOL_CALL, 1, content, sizeof content, &longest);
    check(status == MODELAPI_OK && strcmp(arguments, "{\"tz\": \"Europe/Paris\"}") == 0 &&
              strcmp(content, "{\"city\":\"Lyon\"}") == 0 && r.events[0].has_id &&
              strcmp(r.events[0].tool_id, "call_mock_3_0") == 0 &&
              strcmp(r.events[0].tool_name, "get_time") == 0 && r.events[pieces].has_id &&
              strcmp(r.events[pieces].tool_id, "call_mock_3_1") == 0 &&
              r.events[pieces].tool_index == 1,
          "canned: calls without an id get call_mock_<n>_<i>, one index each",
          "status %s (%s), \"%s\", \"%s\", first id \"%s\", second id \"%s\"",
          status_name(status), modelapi_last_error(), arguments, content, r.events[0].tool_id,
          r.events[pieces < 64 ? pieces : 0].tool_id);
    check(contains(json, "\"id\":\"call_mock_3_0\"") && contains(json, "\"id\":\"call_mock_3_1\"") &&
              contains(json, "\"arguments\":\"{\\\"city\\\":\\\"Lyon\\\"}\"") &&
              contains(json, "\"finish_reason\":\"tool_calls\""),
          "canned: out_json holds both calls", "%s", str(json));
    modelapi_string_free(json);
    modelapi_close(api);
}

/* ---- non-blocking streams: modelapi_stream_start/poll/fd ----------------- */

/* What polling a stream to its end with wait_ms 0 saw. */
struct poll_run {
    ModelApiStatus status;  /* the first status neither OK nor PENDING */
    char text[256];         /* the content events' texts, concatenated */
    int events;             /* OK polls */
    int pending;            /* PENDING polls */
    int waits;              /* poll(2) calls on the stream's socket */
    int no_socket;          /* PENDING with fd -1: short sleeps instead */
    double longest_poll;    /* seconds, of one modelapi_stream_poll call */
    char bad[256];          /* an event that broke a rule, described */
};

/* Polls stream with wait_ms 0 until it ends or fails, or until max_events
   events came (0: no limit; run->status is then MODELAPI_OK), waiting with
   poll(2) on its socket (at most 50 ms) or sleeping 5 ms when it waits on
   none, after each MODELAPI_PENDING; gives up after 10 s. */
static void poll_to_end(ModelApiStream *stream, struct poll_run *run, int max_events)
{
    double deadline = now() + 10.0;
    ModelApiEvent event;

    memset(run, 0, sizeof *run);
    for (;;) {
        double before = now();
        ModelApiStatus status;
        int wants_write = 7;
        int fd;

        garbage_event(&event);
        status = modelapi_stream_poll(stream, 0, &event);
        if (now() - before > run->longest_poll) {
            run->longest_poll = now() - before;
        }
        if (status == MODELAPI_OK) {
            run->events++;
            if (event.text == NULL || strlen(event.text) != event.len) {
                snprintf(run->bad, sizeof run->bad, "event %d: text NULL or len wrong",
                         run->events);
            } else if (event.kind == MODELAPI_EVENT_CONTENT &&
                       strlen(run->text) + event.len < sizeof run->text) {
                strcat(run->text, event.text);
            }
            if (run->events == max_events) {
                run->status = MODELAPI_OK;
                return;
            }
            continue;
        }
        if (status != MODELAPI_PENDING) {
            if (!is_empty_event(&event) && run->bad[0] == '\0') {
                snprintf(run->bad, sizeof run->bad, "status %s without an empty event",
                         status_name(status));
            }
            run->status = status;
            return;
        }
        run->pending++;
        if (!is_empty_event(&event) && run->bad[0] == '\0') {
            snprintf(run->bad, sizeof run->bad, "MODELAPI_PENDING without an empty event");
        }
        if (now() > deadline) {
            run->status = MODELAPI_INTERNAL;
            snprintf(run->bad, sizeof run->bad, "still PENDING after 10 s");
            return;
        }
        fd = modelapi_stream_fd(stream, &wants_write);
        if (fd >= 0 && (wants_write == 0 || wants_write == 1)) {
            struct pollfd p;

            p.fd = fd;
            p.events = wants_write ? (POLLIN | POLLOUT) : POLLIN;
            p.revents = 0;
            run->waits++;
            poll(&p, 1, 50);
        } else if (fd < 0 && wants_write == 0) {
            struct timespec pause = { 0, 5000000L };

            run->no_socket++;
            nanosleep(&pause, NULL);
        } else {
            snprintf(run->bad, sizeof run->bad, "modelapi_stream_fd: %d, wants_write %d", fd,
                     wants_write);
            run->status = MODELAPI_INTERNAL;
            return;
        }
    }
}

static void nonblocking_checks(ModelApi *ok, ModelApi *unauthorized, ModelApi *long_api)
{
    static const char JSON[] = "[{\"role\":\"user\",\"content\":\"hi\"}]";
    ModelApiStream *stream;
    ModelApiStatus status;
    ModelApiEvent event;
    ModelApiCancel *cancel;
    ModelApi *api;
    ModelApi *slow;
    struct poll_run run;
    int wants_write;
    int fd;
    char *json;
    double started;

    check(MODELAPI_PENDING == 11, "MODELAPI_PENDING is 11", "it is %d", (int)MODELAPI_PENDING);

    /* modelapi_stream_start: argument errors, *out_stream set to NULL. */
    stream = (ModelApiStream *)GARBAGE;
    status = modelapi_stream_start(NULL, JSON, NULL, NULL, &stream);
    check(status == MODELAPI_INVALID_ARGUMENT && stream == NULL,
          "stream_start with a NULL client: INVALID_ARGUMENT, out_stream NULL",
          "status %s, stream %p", status_name(status), (void *)stream);
    stream = (ModelApiStream *)GARBAGE;
    status = modelapi_stream_start(ok, NULL, NULL, NULL, &stream);
    check(status == MODELAPI_INVALID_ARGUMENT && stream == NULL,
          "stream_start with messages_json NULL: INVALID_ARGUMENT, out_stream NULL",
          "status %s, stream %p", status_name(status), (void *)stream);
    stream = (ModelApiStream *)GARBAGE;
    status = modelapi_stream_start(ok, "not json", NULL, NULL, &stream);
    check(status == MODELAPI_INVALID_ARGUMENT && stream == NULL,
          "stream_start with \"not json\": INVALID_ARGUMENT, out_stream NULL",
          "status %s, stream %p", status_name(status), (void *)stream);
    status = modelapi_stream_start(ok, JSON, NULL, NULL, NULL);
    check(status == MODELAPI_INVALID_ARGUMENT && contains(modelapi_last_error(), "out_stream"),
          "stream_start with out_stream NULL: INVALID_ARGUMENT naming out_stream",
          "status %s, last_error \"%s\"", status_name(status), modelapi_last_error());

    /* modelapi_stream_poll and modelapi_stream_fd on NULL. */
    garbage_event(&event);
    status = modelapi_stream_poll(NULL, 0, &event);
    check(status == MODELAPI_INVALID_ARGUMENT && is_empty_event(&event),
          "stream_poll(NULL, 0, &event): INVALID_ARGUMENT, an empty content event",
          "status %s, last_error \"%s\"", status_name(status), modelapi_last_error());
    check(modelapi_stream_fd(NULL, NULL) == -1, "stream_fd(NULL, NULL) is -1", "it is not");
    check(modelapi_stream_wake_ms(NULL) == -1, "stream_wake_ms(NULL) is -1", "it is not");
    wants_write = 7;
    fd = modelapi_stream_fd(NULL, &wants_write);
    check(fd == -1 && wants_write == 0, "stream_fd(NULL, &wants_write): -1, wants_write 0",
          "fd %d, wants_write %d", fd, wants_write);

    /* A canned reply: in memory, so no socket, and every event at once. */
    setenv("DEBUG_MOCK_RESPONSES", "[\"Canned, and polled.\"]", 1);
    api = modelapi_new("ok", base_url, NULL);
    unsetenv("DEBUG_MOCK_RESPONSES");
    stream = NULL;
    status = api ? modelapi_stream_start(api, JSON, NULL, NULL, &stream) : MODELAPI_INTERNAL;
    if (check(status == MODELAPI_OK && stream != NULL, "stream_start with a canned reply",
              "status %s (%s)", status_name(status), modelapi_last_error())) {
        wants_write = 7;
        fd = modelapi_stream_fd(stream, &wants_write);
        check(fd == -1 && wants_write == 0, "stream_fd of a canned stream: -1, wants_write 0",
              "fd %d, wants_write %d", fd, wants_write);
        check(modelapi_stream_wake_ms(stream) == 0,
              "stream_wake_ms of a canned stream: 0 (poll now)", "%lld",
              (long long)modelapi_stream_wake_ms(stream));
        garbage_event(&event);
        status = modelapi_stream_poll(stream, 0, NULL);
        check(status == MODELAPI_INVALID_ARGUMENT && contains(modelapi_last_error(), "out_event"),
              "stream_poll(stream, 0, NULL): INVALID_ARGUMENT naming out_event",
              "status %s, last_error \"%s\"", status_name(status), modelapi_last_error());
        poll_to_end(stream, &run, 0);
        check(run.status == MODELAPI_DONE && run.pending == 0 && run.events > 1 &&
                  strcmp(run.text, "Canned, and polled.") == 0 && run.bad[0] == '\0',
              "a canned stream polled with wait 0: OK events (never PENDING), then DONE",
              "status %s (%s), %d events, %d PENDING, \"%s\" %s", status_name(run.status),
              modelapi_last_error(), run.events, run.pending, run.text, run.bad);
        garbage_event(&event);
        status = modelapi_stream_poll(stream, 0, &event);
        check(status == MODELAPI_DONE && is_empty_event(&event) &&
                  modelapi_stream_poll(stream, 0, &event) == MODELAPI_DONE &&
                  modelapi_stream_fd(stream, NULL) == -1 && modelapi_stream_wake_ms(stream) == -1,
              "then DONE again, and again; stream_fd -1, stream_wake_ms -1", "status %s",
              status_name(status));
        json = completion_of(stream);
        check(contains(json, "\"content\":\"Canned, and polled.\"") &&
                  contains(json, "\"finish_reason\":\"stop\""),
              "the canned stream's assembled answer", "%s", str(json));
        modelapi_string_free(json);
    }
    modelapi_stream_free(stream);
    modelapi_close(api);

    /* A server's stream, waited for on its socket. */
    stream = NULL;
    started = now();
    status = modelapi_stream_start(ok, JSON, NULL, NULL, &stream);
    check(status == MODELAPI_OK && stream != NULL && now() - started < 1.0,
          "stream_start on \"ok\" returns at once", "status %s (%s), %.3f s",
          status_name(status), modelapi_last_error(), now() - started);
    if (status == MODELAPI_OK) {
        poll_to_end(stream, &run, 0);
        check(run.status == MODELAPI_DONE && strcmp(run.text, "Hello from the test server") == 0 &&
                  run.events == 5 && run.bad[0] == '\0' && run.no_socket == 0 &&
                  run.longest_poll < 0.5,
              "stream_poll on \"ok\": the 5 chunks, then DONE; no poll blocks",
              "status %s (%s), %d events, \"%s\" %s, %d PENDING with no socket, longest poll "
              "%.3f s",
              status_name(run.status), modelapi_last_error(), run.events, run.text, run.bad,
              run.no_socket, run.longest_poll);
        check(modelapi_stream_fd(stream, NULL) == -1 &&
                  modelapi_stream_poll(stream, 0, &event) == MODELAPI_DONE,
              "a finished stream: fd -1, DONE again", "fd %d",
              modelapi_stream_fd(stream, NULL));
    }
    modelapi_stream_free(stream);

    /* "long" (chunks 10 ms apart): PENDING between them, waiting on the
       socket, which the stream names while it waits. How many PENDINGs
       depends on the machine's load (under valgrind on a busy machine the
       chunks pile up between polls): at least one. */
    stream = NULL;
    status = modelapi_stream_start(long_api, JSON, NULL, NULL, &stream);
    if (status == MODELAPI_OK) {
        poll_to_end(stream, &run, 10);
        check(run.status == MODELAPI_OK && strcmp(run.text, "xxxxxxxxxx") == 0 &&
                  run.bad[0] == '\0' && run.pending >= 1 && run.waits == run.pending &&
                  run.longest_poll < 0.5,
              "stream_poll on \"long\": 10 chunks, PENDING between them, each time with a "
              "socket to wait on; no poll blocks",
              "status %s (%s), \"%s\" %s, %d PENDING, %d waits on the socket, longest poll "
              "%.3f s",
              status_name(run.status), modelapi_last_error(), run.text, run.bad, run.pending,
              run.waits, run.longest_poll);
    }
    modelapi_stream_free(stream);

    /* The blocking reads work on a started stream. */
    stream = NULL;
    status = modelapi_stream_start(ok, JSON, NULL, NULL, &stream);
    if (status == MODELAPI_OK) {
        const char *chunk = NULL;
        size_t len = 0;

        status = modelapi_stream_next(stream, &chunk, &len);
        check(status == MODELAPI_OK && chunk != NULL && strcmp(chunk, "Hello") == 0,
              "stream_next on a started stream: the first chunk", "status %s (%s), chunk %s",
              status_name(status), modelapi_last_error(), str(chunk));
        garbage_event(&event);
        status = modelapi_stream_poll(stream, 2000, &event);
        check(status == MODELAPI_OK && event.kind == MODELAPI_EVENT_CONTENT &&
                  strcmp(event.text, " from") == 0,
              "then stream_poll with wait_ms 2000: the second", "status %s (%s)",
              status_name(status), modelapi_last_error());
    }
    modelapi_stream_free(stream);

    /* Errors come from a poll: start succeeds, the poll says 401. */
    stream = NULL;
    status = modelapi_stream_start(unauthorized, JSON, NULL, NULL, &stream);
    if (check(status == MODELAPI_OK && stream != NULL,
              "stream_start on \"unauthorized\" succeeds: errors come from a poll",
              "status %s (%s)", status_name(status), modelapi_last_error())) {
        poll_to_end(stream, &run, 0);
        check(run.status == MODELAPI_HTTP_ERROR && modelapi_last_http_status() == 401 &&
                  contains(modelapi_last_error(), "Invalid API key provided") &&
                  !contains(modelapi_last_error(), "sk-c-test-secret") && run.events == 0,
              "then stream_poll: MODELAPI_HTTP_ERROR 401 with the server's message",
              "status %s, http %d, last_error \"%s\", %d events", status_name(run.status),
              modelapi_last_http_status(), modelapi_last_error(), run.events);
        status = modelapi_stream_poll(stream, 0, &event);
        check(status == MODELAPI_DONE, "and DONE after the error", "status %s",
              status_name(status));
    }
    modelapi_stream_free(stream);

    /* modelapi_stream_cancel between two polls. */
    stream = NULL;
    status = modelapi_stream_start(long_api, JSON, NULL, NULL, &stream);
    if (status == MODELAPI_OK) {
        status = modelapi_stream_poll(stream, 5000, &event);
        check(status == MODELAPI_OK && strcmp(event.text, "x") == 0,
              "stream_poll with wait_ms 5000 on \"long\": the first chunk \"x\"",
              "status %s (%s)", status_name(status), modelapi_last_error());
        modelapi_stream_cancel(stream);
        status = modelapi_stream_poll(stream, 0, &event);
        check(status == MODELAPI_ABORTED && modelapi_stream_poll(stream, 0, &event) == MODELAPI_DONE,
              "stream_cancel, then stream_poll: MODELAPI_ABORTED, then DONE", "status %s (%s)",
              status_name(status), modelapi_last_error());
    }
    modelapi_stream_free(stream);

    /* A cancel token: cancelled before the start, the stream is aborted. */
    cancel = modelapi_cancel_new();
    modelapi_cancel(cancel);
    stream = NULL;
    status = modelapi_stream_start(ok, JSON, NULL, cancel, &stream);
    if (status == MODELAPI_OK) {
        poll_to_end(stream, &run, 0);
        status = run.status;
    }
    check(status == MODELAPI_ABORTED,
          "stream_start with a cancelled token: MODELAPI_ABORTED (from start or a poll)",
          "status %s (%s)", status_name(status), modelapi_last_error());
    modelapi_stream_free(stream);
    modelapi_cancel_free(cancel);

    /* The timeout counts time without progress across polls. */
    slow = modelapi_new("slow", base_url, NULL);
    stream = NULL;
    status = slow ? modelapi_set_timeout_ms(slow, 300) : MODELAPI_INTERNAL;
    if (status == MODELAPI_OK) {
        status = modelapi_set_max_retries(slow, 0);
    }
    if (status == MODELAPI_OK) {
        status = modelapi_stream_start(slow, JSON, NULL, NULL, &stream);
    }
    if (status == MODELAPI_OK) {
        started = now();
        poll_to_end(stream, &run, 0);
        check(run.status == MODELAPI_TIMEOUT && now() - started >= 0.25 &&
                  now() - started < 3.0 && run.pending > 1,
              "a server silent for longer than the timeout (300 ms): PENDING polls, then TIMEOUT",
              "status %s (%s) after %.3f s, %d PENDING", status_name(run.status),
              modelapi_last_error(), now() - started, run.pending);
    } else {
        check(0, "the \"slow\" client", "status %s (%s)", status_name(status),
              modelapi_last_error());
    }
    modelapi_stream_free(stream);
    modelapi_close(slow);
}

static void setter_checks(ModelApi *ok)
{
    ModelApiStatus status;

    status = modelapi_set_timeout_ms(ok, 0);
    check(status == MODELAPI_INVALID_ARGUMENT, "set_timeout_ms(api, 0): INVALID_ARGUMENT",
          "status %s", status_name(status));

    status = modelapi_set_header(ok, "bad name", "v");
    check(status == MODELAPI_INVALID_ARGUMENT,
          "set_header with the name \"bad name\": INVALID_ARGUMENT", "status %s",
          status_name(status));

    status = modelapi_set_header(ok, "X-Example-Test", "c_api_test");
    check(status == MODELAPI_OK, "set_header with a valid header: MODELAPI_OK",
          "status %s (%s)", status_name(status), modelapi_last_error());

    status = modelapi_set_max_retries(NULL, 1);
    check(status == MODELAPI_INVALID_ARGUMENT, "set_max_retries(NULL, 1): INVALID_ARGUMENT",
          "status %s", status_name(status));
}

static void null_frees(void)
{
    modelapi_close(NULL);
    modelapi_stream_free(NULL);
    modelapi_string_free(NULL);
    check(1, "modelapi_close(NULL), modelapi_stream_free(NULL), modelapi_string_free(NULL)"
             " are no-ops", "");
}

/* What the other thread saw. */
struct thread_view {
    int empty_at_start;   /* last_error "" and http status 0 there */
    char seen[256];
    int failed_own_call;  /* its own failure was recorded there */
};

static void *other_thread(void *arg)
{
    struct thread_view *view = (struct thread_view *)arg;
    ModelApiStatus status;

    snprintf(view->seen, sizeof view->seen, "%s", modelapi_last_error());
    view->empty_at_start =
        strcmp(modelapi_last_error(), "") == 0 && modelapi_last_http_status() == 0;
    status = modelapi_set_max_retries(NULL, 1);
    view->failed_own_call =
        status == MODELAPI_INVALID_ARGUMENT && strcmp(modelapi_last_error(), "") != 0;
    return NULL;
}

static void thread_local_checks(void)
{
    struct thread_view view;
    pthread_t thread;
    char mine[256];
    int err;

    /* An error of this thread... */
    modelapi_set_header(NULL, "X-Example", "v");
    snprintf(mine, sizeof mine, "%s", modelapi_last_error());

    memset(&view, 0, sizeof view);
    err = pthread_create(&thread, NULL, other_thread, &view);
    if (err != 0) {
        check(0, "last_error is per thread", "pthread_create: %s", strerror(err));
        return;
    }
    pthread_join(thread, NULL);
    /* ...is not seen by another, and the other's error does not touch it. */
    check(view.empty_at_start && view.failed_own_call,
          "last_error is per thread: another thread sees \"\" while this one has an error",
          "the other thread saw \"%s\"", view.seen);
    check(mine[0] != '\0' && strcmp(modelapi_last_error(), mine) == 0,
          "another thread's failure leaves this thread's last_error alone",
          "was \"%s\", now \"%s\"", mine, modelapi_last_error());
}

/* ---- main --------------------------------------------------------------- */

/* A client of the test server for model, checked; NULL on failure. */
static ModelApi *test_client(const char *model, const char *api_key)
{
    ModelApi *api = modelapi_new(model, base_url, api_key);
    ModelApiStatus status = MODELAPI_OK;
    char description[96];

    if (api != NULL) {
        /* Fail fast rather than hang if the server stops answering. */
        status = modelapi_set_timeout_ms(api, 10000);
    }
    snprintf(description, sizeof description, "modelapi_new(\"%s\", base_url) makes a client",
             model);
    check(api != NULL && status == MODELAPI_OK, description, "%s", modelapi_last_error());
    return api;
}

int main(int argc, char **argv)
{
    ModelApi *ok;
    ModelApi *unauthorized;
    ModelApi *long_api;
    ModelApi *stream_error;
    ModelApi *agent;

    if (argc != 2) {
        fprintf(stderr, "usage: %s <base_url of the test server>\n", argv[0]);
        return 2;
    }
    base_url = argv[1];
    /* The checks talk to the server: no canned replies from the caller. */
    unsetenv("DEBUG_MOCK_RESPONSES");

    version_checks();
    no_error_yet(); /* before any failure */
    constructor_checks();

    ok = test_client("ok", NULL);
    unauthorized = test_client("unauthorized", "sk-c-test-secret");
    long_api = test_client("long", NULL);
    stream_error = test_client("stream-error", NULL);
    agent = test_client("agent", NULL);
    if (ok == NULL || unauthorized == NULL || long_api == NULL || stream_error == NULL ||
        agent == NULL) {
        printf("Bail out! cannot create the clients\n");
    } else {
        argument_checks(ok);
        http_error_checks(unauthorized);
        complete_checks(ok);
        canned_reply_checks();
        stream_callback_checks(ok, long_api, stream_error);
        pull_stream_checks(ok, long_api, stream_error);
        event_argument_checks(ok);
        pull_event_checks(agent, stream_error);
        callback_event_checks(agent, ok, stream_error, unauthorized);
        canned_tool_call_checks();
        nonblocking_checks(ok, unauthorized, long_api);
        setter_checks(ok);
        null_frees();
        thread_local_checks();
    }

    modelapi_close(ok);
    modelapi_close(unauthorized);
    modelapi_close(long_api);
    modelapi_close(stream_error);
    modelapi_close(agent);

    printf("%d passed, %d failed\n", tests_passed, tests_failed);
    return tests_failed == 0 ? 0 : 1;
}
