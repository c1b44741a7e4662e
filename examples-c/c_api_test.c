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
 *   "stream-error"  a stream of one chunk "partial", then
 *                   data: {"error":{"message":"model overloaded"}}
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
    if (ok == NULL || unauthorized == NULL || long_api == NULL || stream_error == NULL) {
        printf("Bail out! cannot create the clients\n");
    } else {
        argument_checks(ok);
        http_error_checks(unauthorized);
        complete_checks(ok);
        canned_reply_checks();
        stream_callback_checks(ok, long_api, stream_error);
        pull_stream_checks(ok, long_api, stream_error);
        setter_checks(ok);
        null_frees();
        thread_local_checks();
    }

    modelapi_close(ok);
    modelapi_close(unauthorized);
    modelapi_close(long_api);
    modelapi_close(stream_error);

    printf("%d passed, %d failed\n", tests_passed, tests_failed);
    return tests_failed == 0 ? 0 : 1;
}
