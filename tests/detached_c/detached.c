/* Detached streams from C (tests/detached_c.rs runs it, plain and under
   valgrind): the request handed out, the answer fed in pieces, PENDING from
   every read, HTTP errors, truncation, canned replies, and every NULL and
   out-of-order call refused with MODELAPI_INVALID_ARGUMENT without changing
   the stream. Prints "ok" at the end; the first failed check prints its line
   and exits 1. No network: a stream is only fed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modelapi.h"

static int failed = 0;
#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "line %d: check failed: %s (last error: %s)\n",      \
                    __LINE__, #cond, modelapi_last_error() ? modelapi_last_error() \
                                                           : "none");            \
            failed = 1;                                                          \
            return 1;                                                            \
        }                                                                        \
    } while (0)

static const char *MESSAGES = "[{\"role\":\"user\",\"content\":\"Hi\"}]";
static const char *KEY = "sk-c-detached-secret";

static ModelApiStatus feed_text(ModelApiStream *s, const char *text) {
    return modelapi_stream_feed(s, text, strlen(text));
}

/* The next event's text, which must be of kind CONTENT. */
static int next_content_is(ModelApiStream *s, const char *want) {
    ModelApiEvent ev;
    ModelApiStatus st = modelapi_stream_next_event(s, &ev);
    if (st != MODELAPI_OK || ev.kind != MODELAPI_EVENT_CONTENT || ev.len != strlen(want) ||
        memcmp(ev.text, want, ev.len) != 0) {
        fprintf(stderr, "next_event: status %d, text %s\n", (int)st, ev.text ? ev.text : "(null)");
        return 0;
    }
    return 1;
}

static int request_and_refusals(ModelApi *api) {
    ModelApiStream *s = (ModelApiStream *)1;
    CHECK(modelapi_stream_detached(NULL, MESSAGES, NULL, &s) == MODELAPI_INVALID_ARGUMENT);
    CHECK(s == NULL);
    CHECK(modelapi_stream_detached(api, NULL, NULL, &s) == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_detached(api, MESSAGES, NULL, NULL) == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_detached(api, MESSAGES, NULL, &s) == MODELAPI_OK && s != NULL);

    /* The request. */
    CHECK(strcmp(modelapi_stream_request_url(s), "http://127.0.0.1:9/v1/chat/completions") == 0);
    size_t count = modelapi_stream_request_header_count(s);
    CHECK(count >= 4);
    int auth = 0, accept = 0, custom = 0;
    for (size_t i = 0; i < count; i++) {
        const char *name = NULL, *value = NULL;
        CHECK(modelapi_stream_request_header(s, i, &name, &value) == MODELAPI_OK);
        CHECK(name != NULL && value != NULL);
        if (strcmp(name, "authorization") == 0 || strcmp(name, "Authorization") == 0) {
            char want[128];
            snprintf(want, sizeof want, "Bearer %s", KEY);
            auth = strcmp(value, want) == 0;
        }
        if (strcmp(name, "accept") == 0 || strcmp(name, "Accept") == 0)
            accept = strcmp(value, "text/event-stream") == 0;
        if (strcmp(name, "x-game") == 0 || strcmp(name, "X-Game") == 0)
            custom = strcmp(value, "engine 7") == 0;
    }
    CHECK(auth && accept && custom);
    const char *name = "x", *value = "x";
    CHECK(modelapi_stream_request_header(s, count, &name, &value) == MODELAPI_INVALID_ARGUMENT);
    CHECK(name == NULL && value == NULL);
    CHECK(modelapi_stream_request_header(s, 0, NULL, &value) == MODELAPI_INVALID_ARGUMENT);
    CHECK(value == NULL);
    CHECK(modelapi_stream_request_header(NULL, 0, &name, &value) == MODELAPI_INVALID_ARGUMENT);
    const char *body = NULL;
    size_t len = 0;
    CHECK(modelapi_stream_request_body(s, &body, &len) == MODELAPI_OK);
    CHECK(body != NULL && len == strlen(body));
    CHECK(strstr(body, "\"stream\":true") != NULL && strstr(body, "\"Hi\"") != NULL);
    CHECK(modelapi_stream_request_body(s, NULL, &len) == MODELAPI_INVALID_ARGUMENT && len == 0);
    CHECK(modelapi_stream_request_body(s, &body, NULL) == MODELAPI_INVALID_ARGUMENT && !body);
    CHECK(modelapi_stream_request_body(NULL, &body, &len) == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_request_url(NULL) == NULL);
    CHECK(modelapi_stream_request_header_count(NULL) == 0);
    CHECK(modelapi_stream_fd(s, NULL) == -1);
    int wants_write = 7;
    CHECK(modelapi_stream_fd(s, &wants_write) == -1);

    /* Nothing fed: every read is PENDING, and the stream goes on. */
    const char *chunk = "x";
    ModelApiEvent ev;
    CHECK(modelapi_stream_next(s, &chunk, &len) == MODELAPI_PENDING && chunk == NULL);
    CHECK(modelapi_stream_next_event(s, &ev) == MODELAPI_PENDING);
    CHECK(modelapi_stream_poll(s, 0, &ev) == MODELAPI_PENDING);

    /* Out of order, and NULLs: refused, nothing changes. */
    CHECK(feed_text(s, "data: x\n\n") == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_feed_end(s) == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_feed_head(NULL, 200, "text/event-stream") == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_feed_head(s, 99, "text/event-stream") == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_feed_head(s, -1, NULL) == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_feed_head(s, 1000, NULL) == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_feed(NULL, "x", 1) == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_feed_end(NULL) == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_poll(s, 0, &ev) == MODELAPI_PENDING);

    CHECK(modelapi_stream_feed_head(s, 200, "text/event-stream") == MODELAPI_OK);
    CHECK(modelapi_stream_feed_head(s, 200, "text/event-stream") == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_feed(s, NULL, 5) == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_feed(s, NULL, 0) == MODELAPI_OK);

    /* An event as soon as its blank line is fed, not before. */
    const char *first = "data: {\"choices\":[{\"delta\":{\"content\":\"H\xc3\xa9l\"}}]}\n\n";
    size_t n = strlen(first);
    for (size_t i = 0; i + 1 < n; i++) {
        CHECK(modelapi_stream_feed(s, first + i, 1) == MODELAPI_OK);
        CHECK(modelapi_stream_poll(s, 0, &ev) == MODELAPI_PENDING);
        CHECK(modelapi_stream_next(s, &chunk, &len) == MODELAPI_PENDING);
    }
    CHECK(modelapi_stream_feed(s, first + n - 1, 1) == MODELAPI_OK);
    CHECK(modelapi_stream_poll(s, 0, &ev) == MODELAPI_OK);
    CHECK(ev.kind == MODELAPI_EVENT_CONTENT && strcmp(ev.text, "H\xc3\xa9l") == 0);

    CHECK(feed_text(s, "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\r\n\r\n") ==
          MODELAPI_OK);
    CHECK(feed_text(s, "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":"
                       "\"call_1\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n") ==
          MODELAPI_OK);
    CHECK(modelapi_stream_next(s, &chunk, &len) == MODELAPI_OK);
    CHECK(len == 2 && strcmp(chunk, "lo") == 0);
    CHECK(feed_text(s, "data: {\"choices\":[{\"delta\":{\"content\":\"!\"},\"finish_reason\":"
                       "\"stop\"}]}\n\ndata: [DONE]\n\n") == MODELAPI_OK);
    CHECK(modelapi_stream_feed_end(s) == MODELAPI_OK);
    CHECK(feed_text(s, "data: x\n\n") == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_feed_end(s) == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_feed_head(s, 200, NULL) == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_next_event(s, &ev) == MODELAPI_OK);
    CHECK(ev.kind == MODELAPI_EVENT_TOOL_CALL && strcmp(ev.tool_id, "call_1") == 0);
    CHECK(next_content_is(s, "!"));
    CHECK(modelapi_stream_next_event(s, &ev) == MODELAPI_DONE);
    CHECK(modelapi_stream_poll(s, 0, &ev) == MODELAPI_DONE);
    char *json = NULL;
    CHECK(modelapi_stream_completion_json(s, &json) == MODELAPI_OK);
    CHECK(strstr(json, "\"content\":\"H\xc3\xa9llo!\"") != NULL);
    CHECK(strstr(json, "call_1") != NULL);
    modelapi_string_free(json);
    CHECK(strcmp(modelapi_stream_finish_reason(s), "stop") == 0);
    modelapi_stream_free(s);
    return 0;
}

static int http_error(ModelApi *api) {
    ModelApiStream *s = NULL;
    CHECK(modelapi_stream_detached(api, MESSAGES, NULL, &s) == MODELAPI_OK);
    CHECK(modelapi_stream_feed_head(s, 429, "application/json") == MODELAPI_OK);
    CHECK(feed_text(s, "{\"error\":{\"message\":\"Rate limit reached\",") == MODELAPI_OK);
    ModelApiEvent ev;
    CHECK(modelapi_stream_poll(s, 0, &ev) == MODELAPI_PENDING);
    CHECK(feed_text(s, "\"type\":\"requests\"}}") == MODELAPI_OK);
    CHECK(modelapi_stream_feed_end(s) == MODELAPI_OK);
    CHECK(modelapi_stream_next_event(s, &ev) == MODELAPI_HTTP_ERROR);
    CHECK(modelapi_last_http_status() == 429);
    CHECK(strstr(modelapi_last_error(), "Rate limit reached") != NULL);
    CHECK(modelapi_stream_next_event(s, &ev) == MODELAPI_DONE);
    modelapi_stream_free(s);
    return 0;
}

static int truncated(ModelApi *api) {
    ModelApiStream *s = NULL;
    CHECK(modelapi_stream_detached(api, MESSAGES, NULL, &s) == MODELAPI_OK);
    CHECK(modelapi_stream_feed_head(s, 200, NULL) == MODELAPI_OK);
    CHECK(feed_text(s, "data: {\"choices\":[{\"delta\":{\"content\":\"cut\"}}]}\n\n") ==
          MODELAPI_OK);
    CHECK(next_content_is(s, "cut"));
    ModelApiEvent ev;
    CHECK(modelapi_stream_poll(s, 0, &ev) == MODELAPI_PENDING);
    CHECK(modelapi_stream_feed_end(s) == MODELAPI_OK);
    CHECK(modelapi_stream_poll(s, 0, &ev) == MODELAPI_TRANSPORT_ERROR);
    CHECK(strstr(modelapi_last_error(), "truncated") != NULL);
    modelapi_stream_free(s);
    return 0;
}

static int not_detached_and_canned(void) {
    ModelApi *api = modelapi_new("test-model", "http://127.0.0.1:9", NULL);
    CHECK(api != NULL);
    CHECK(modelapi_set_mock_responses(api, "[\"canned one\", \"canned two\"]") == MODELAPI_OK);
    /* A stream that is not detached: refused, and it reads on. */
    ModelApiStream *s = NULL;
    CHECK(modelapi_stream_start(api, MESSAGES, NULL, NULL, &s) == MODELAPI_OK);
    CHECK(modelapi_stream_request_url(s) == NULL);
    CHECK(modelapi_stream_request_header_count(s) == 0);
    const char *name = "x", *value = "x", *body = "x";
    size_t len = 9;
    CHECK(modelapi_stream_request_header(s, 0, &name, &value) == MODELAPI_INVALID_ARGUMENT);
    CHECK(name == NULL && value == NULL);
    CHECK(modelapi_stream_request_body(s, &body, &len) == MODELAPI_INVALID_ARGUMENT);
    CHECK(body == NULL && len == 0);
    CHECK(modelapi_stream_feed_head(s, 200, "text/event-stream") == MODELAPI_INVALID_ARGUMENT);
    CHECK(feed_text(s, "data: [DONE]\n\n") == MODELAPI_INVALID_ARGUMENT);
    CHECK(modelapi_stream_feed_end(s) == MODELAPI_INVALID_ARGUMENT);
    char text[64] = "";
    const char *chunk = NULL;
    ModelApiStatus st;
    while ((st = modelapi_stream_next(s, &chunk, &len)) == MODELAPI_OK)
        strncat(text, chunk, sizeof text - strlen(text) - 1);
    CHECK(st == MODELAPI_DONE && strcmp(text, "canned one") == 0);
    modelapi_stream_free(s);

    /* A canned detached stream: events at once, feeds accepted and ignored. */
    CHECK(modelapi_stream_detached(api, MESSAGES, NULL, &s) == MODELAPI_OK);
    CHECK(modelapi_stream_request_url(s) != NULL);
    CHECK(modelapi_stream_next(s, &chunk, &len) == MODELAPI_OK);
    text[0] = '\0';
    strncat(text, chunk, sizeof text - 1);
    CHECK(modelapi_stream_feed_head(s, 500, "text/plain") == MODELAPI_OK);
    CHECK(feed_text(s, "data: {\"choices\":[{\"delta\":{\"content\":\"FED\"}}]}\n\n") ==
          MODELAPI_OK);
    CHECK(modelapi_stream_feed_end(s) == MODELAPI_OK);
    while ((st = modelapi_stream_next(s, &chunk, &len)) == MODELAPI_OK)
        strncat(text, chunk, sizeof text - strlen(text) - 1);
    CHECK(st == MODELAPI_DONE && strcmp(text, "canned two") == 0);
    modelapi_stream_free(s);
    modelapi_stream_free(NULL);
    modelapi_close(api);
    return 0;
}

int main(void) {
    ModelApi *api = modelapi_new("test-model", "http://127.0.0.1:9", KEY);
    if (!api) {
        fprintf(stderr, "modelapi_new: %s\n", modelapi_last_error());
        return 1;
    }
    if (modelapi_set_header(api, "X-Game", "engine 7") != MODELAPI_OK) {
        fprintf(stderr, "modelapi_set_header: %s\n", modelapi_last_error());
        return 1;
    }
    if (request_and_refusals(api) || http_error(api) || truncated(api) ||
        not_detached_and_canned()) {
        modelapi_close(api);
        return 1;
    }
    modelapi_close(api);
    printf("ok\n");
    return failed;
}
