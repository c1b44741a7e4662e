/*
 * probe.c: the C API against a real llama-server, for tests/llamacpp.rs.
 *
 *   probe URL MODEL compare  REQUEST          complete, then stream the same request
 *   probe URL MODEL events   REQUEST          stream with modelapi_stream_next_event
 *   probe URL MODEL overflow REQUEST          a request the server refuses (HTTP 400)
 *   probe URL MODEL free     LONG SHORT       free a stream mid-generation, then SHORT
 *   probe URL MODEL cancel   LONG SHORT       cancel a stream from another thread, then SHORT
 *   probe URL MODEL timeout  SLOW SHORT MS    a timeout before the first token, then SHORT
 *   probe URL MODEL threads  N REQUEST        N threads complete REQUEST on one client
 *
 * REQUEST, LONG, SHORT and SLOW are whole request bodies (JSON). The program
 * reports what happened as "key=value" lines on stdout (texts in hex, so
 * that any byte survives); the test decides whether that is right. It checks
 * one thing itself, because only C sees it: every chunk is valid UTF-8 and
 * has no NUL before its end (invalid_chunks counts those that fail).
 * Exit status: 0 when the report is complete, 2 on bad usage.
 */

#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "modelapi.h"

/* A growing byte buffer. */
struct buf {
    char *data;
    size_t len;
    size_t cap;
};

static void buf_add(struct buf *b, const char *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + len + 1) {
            cap *= 2;
        }
        b->data = (char *)realloc(b->data, cap);
        if (b->data == NULL) {
            fputs("out of memory\n", stderr);
            exit(3);
        }
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

/* Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
static int valid_utf8(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + n >= len) {
            return 0; /* cut short */
        }
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return 0;
        }
        i += n + 1;
    }
    return 1;
}

static void put_hex(const char *key, const char *data, size_t len)
{
    printf("%s=", key);
    for (size_t i = 0; i < len; i++) {
        printf("%02x", (unsigned char)data[i]);
    }
    putchar('\n');
}

static void put_text(const char *key, const char *text)
{
    put_hex(key, text ? text : "", text ? strlen(text) : 0);
}

/* The status of a failed call, with this thread's error and HTTP status. */
static void put_failure(const char *prefix, ModelApiStatus status)
{
    char key[64];
    printf("%s_status=%d\n", prefix, (int)status);
    if (status != MODELAPI_OK && status != MODELAPI_DONE) {
        snprintf(key, sizeof key, "%s_error", prefix);
        put_text(key, modelapi_last_error());
        printf("%s_http=%d\n", prefix, modelapi_last_http_status());
    }
}

/* Reads a pull stream to its end with modelapi_stream_next. */
struct read_result {
    ModelApiStatus status;
    struct buf text;
    size_t chunks;
    size_t invalid_chunks;
};

static struct read_result read_chunks(ModelApiStream *stream, size_t max_chunks)
{
    struct read_result r;
    memset(&r, 0, sizeof r);
    for (;;) {
        const char *chunk = NULL;
        size_t len = 0;
        if (max_chunks && r.chunks == max_chunks) {
            r.status = MODELAPI_OK;
            break;
        }
        r.status = modelapi_stream_next(stream, &chunk, &len);
        if (r.status != MODELAPI_OK) {
            break;
        }
        r.chunks++;
        if (!valid_utf8((const unsigned char *)chunk, len) || strlen(chunk) != len ||
            chunk[len] != '\0') {
            r.invalid_chunks++;
        }
        buf_add(&r.text, chunk, len);
    }
    return r;
}

static void put_stream_meta(ModelApiStream *stream)
{
    uint64_t p = 0, c = 0, t = 0;
    char *json = NULL;
    const char *finish = modelapi_stream_finish_reason(stream);
    const char *id = modelapi_stream_id(stream);
    const char *model = modelapi_stream_model(stream);
    printf("finish_reason=%s\n", finish ? finish : "(null)");
    printf("id=%s\n", id ? id : "(null)");
    printf("model=%s\n", model ? model : "(null)");
    if (modelapi_stream_usage(stream, &p, &c, &t)) {
        printf("usage=%llu,%llu,%llu\n", (unsigned long long)p, (unsigned long long)c,
               (unsigned long long)t);
    } else {
        printf("usage=none\n");
    }
    if (modelapi_stream_completion_json(stream, &json) == MODELAPI_OK) {
        put_text("completion_json", json);
    }
    modelapi_string_free(json);
}

static int cmd_compare(ModelApi *api, const char *request)
{
    char *content = NULL;
    ModelApiStream *stream = NULL;
    ModelApiStatus status = modelapi_complete_json(api, request, NULL, NULL, &content);
    put_failure("complete", status);
    put_text("complete_text", content);
    modelapi_string_free(content);

    status = modelapi_stream_open_json(api, request, NULL, &stream);
    put_failure("open", status);
    if (status != MODELAPI_OK) {
        return 0;
    }
    struct read_result r = read_chunks(stream, 0);
    put_failure("stream", r.status);
    printf("chunks=%zu\ninvalid_chunks=%zu\n", r.chunks, r.invalid_chunks);
    put_hex("stream_text", r.text.data ? r.text.data : "", r.text.len);
    put_stream_meta(stream);
    modelapi_stream_free(stream);
    free(r.text.data);
    return 0;
}

static int cmd_events(ModelApi *api, const char *request)
{
    ModelApiStream *stream = NULL;
    ModelApiEvent event;
    ModelApiStatus status = modelapi_stream_open_json(api, request, NULL, &stream);
    struct buf text = { NULL, 0, 0 };
    size_t kinds[4] = { 0, 0, 0, 0 };
    size_t other = 0, invalid = 0;
    put_failure("open", status);
    if (status != MODELAPI_OK) {
        return 0;
    }
    while ((status = modelapi_stream_next_event(stream, &event)) == MODELAPI_OK) {
        if ((unsigned)event.kind < 4) {
            kinds[event.kind]++;
        } else {
            other++;
        }
        if (!valid_utf8((const unsigned char *)event.text, event.len)) {
            invalid++;
        }
        if (event.kind == MODELAPI_EVENT_CONTENT) {
            buf_add(&text, event.text, event.len);
            if (kinds[MODELAPI_EVENT_CONTENT] == 5) {
                /* As it lands: the answer assembled so far, mid-stream. */
                char *json = NULL;
                put_failure("mid_completion", modelapi_stream_completion_json(stream, &json));
                put_text("mid_completion_json", json);
                put_hex("mid_text", text.data, text.len);
                modelapi_string_free(json);
            }
        }
    }
    put_failure("stream", status);
    printf("content_events=%zu\nreasoning_events=%zu\ntool_call_events=%zu\n"
           "refusal_events=%zu\nother_events=%zu\ninvalid_events=%zu\n",
           kinds[0], kinds[1], kinds[2], kinds[3], other, invalid);
    put_hex("stream_text", text.data ? text.data : "", text.len);
    put_stream_meta(stream);
    modelapi_stream_free(stream);
    free(text.data);
    return 0;
}

static int cmd_overflow(ModelApi *api, const char *request)
{
    char *json = NULL;
    ModelApiStream *stream = NULL;
    ModelApiStatus status = modelapi_complete_json(api, request, NULL, &json, NULL);
    put_failure("complete", status);
    printf("complete_json_null=%d\n", json == NULL);
    modelapi_string_free(json);
    status = modelapi_stream_open_json(api, request, NULL, &stream);
    put_failure("open", status);
    printf("stream_null=%d\n", stream == NULL);
    modelapi_stream_free(stream);
    return 0;
}

/* SHORT after the first part of a test: how long its first chunk took. */
static void then_short(ModelApi *api, const char *short_request)
{
    ModelApiStream *stream = NULL;
    double start = now_ms();
    ModelApiStatus status = modelapi_stream_open_json(api, short_request, NULL, &stream);
    put_failure("short_open", status);
    if (status != MODELAPI_OK) {
        return;
    }
    struct read_result first = read_chunks(stream, 1);
    printf("short_first_chunk_ms=%.0f\n", now_ms() - start);
    struct read_result rest = read_chunks(stream, 0);
    put_failure("short_stream", rest.status);
    buf_add(&first.text, rest.text.data ? rest.text.data : "", rest.text.len);
    put_hex("short_text", first.text.data ? first.text.data : "", first.text.len);
    modelapi_stream_free(stream);
    free(first.text.data);
    free(rest.text.data);
}

static int cmd_free(ModelApi *api, const char *long_request, const char *short_request)
{
    ModelApiStream *stream = NULL;
    ModelApiStatus status = modelapi_stream_open_json(api, long_request, NULL, &stream);
    put_failure("open", status);
    if (status != MODELAPI_OK) {
        return 0;
    }
    struct read_result r = read_chunks(stream, 3);
    printf("chunks_before_free=%zu\n", r.chunks);
    free(r.text.data);
    modelapi_stream_free(stream); /* mid-generation: closes the connection */
    then_short(api, short_request);
    return 0;
}

struct canceller {
    ModelApiStream *stream;
    int delay_ms;
    ModelApiStatus status;
    double at_ms;
};

static void *cancel_later(void *arg)
{
    struct canceller *c = (struct canceller *)arg;
    struct timespec delay = { 0, (long)c->delay_ms * 1000000L };
    nanosleep(&delay, NULL);
    c->at_ms = now_ms();
    c->status = modelapi_stream_cancel(c->stream);
    return NULL;
}

static int cmd_cancel(ModelApi *api, const char *long_request, const char *short_request)
{
    ModelApiStream *stream = NULL;
    pthread_t thread;
    struct canceller c;
    ModelApiStatus status = modelapi_stream_open_json(api, long_request, NULL, &stream);
    put_failure("open", status);
    if (status != MODELAPI_OK) {
        return 0;
    }
    struct read_result before = read_chunks(stream, 3);
    c.stream = stream;
    c.delay_ms = 200;
    c.status = MODELAPI_INTERNAL;
    c.at_ms = 0;
    if (pthread_create(&thread, NULL, cancel_later, &c) != 0) {
        fputs("pthread_create failed\n", stderr);
        return 3;
    }
    /* Reads on while the other thread cancels: the chunks go on arriving
       until the cancel, then this read returns MODELAPI_ABORTED. */
    struct read_result after = read_chunks(stream, 0);
    double ended = now_ms();
    pthread_join(thread, NULL);
    printf("cancel_status=%d\n", (int)c.status);
    put_failure("stream", after.status);
    printf("chunks_before_cancel=%zu\nchunks_while_cancelling=%zu\n", before.chunks, after.chunks);
    printf("stopped_after_cancel_ms=%.0f\n", ended - c.at_ms);
    {
        const char *chunk = NULL;
        size_t len = 0;
        printf("next_after_cancel=%d\n", (int)modelapi_stream_next(stream, &chunk, &len));
    }
    modelapi_stream_free(stream);
    free(before.text.data);
    free(after.text.data);
    then_short(api, short_request);
    return 0;
}

static int cmd_timeout(ModelApi *api, const char *slow_request, const char *short_request,
                       const char *ms)
{
    char *content = NULL;
    double start;
    ModelApiStatus status = modelapi_set_timeout_ms(api, strtoull(ms, NULL, 10));
    put_failure("set_timeout", status);
    start = now_ms();
    status = modelapi_complete_json(api, slow_request, NULL, NULL, &content);
    printf("slow_ms=%.0f\n", now_ms() - start);
    put_failure("slow", status);
    printf("slow_content_null=%d\n", content == NULL);
    modelapi_string_free(content);
    /* The same client, with a timeout the model can meet. */
    put_failure("reset_timeout", modelapi_set_timeout_ms(api, 60000));
    then_short(api, short_request);
    return 0;
}

struct worker {
    ModelApi *api;
    const char *request;
    ModelApiStatus status;
    char *content;
    char *json;
};

static void *work(void *arg)
{
    struct worker *w = (struct worker *)arg;
    w->status = modelapi_complete_json(w->api, w->request, NULL, &w->json, &w->content);
    return NULL;
}

static int cmd_threads(ModelApi *api, const char *count, const char *request)
{
    int n = atoi(count);
    pthread_t threads[16];
    struct worker workers[16];
    if (n < 1 || n > 16) {
        fputs("threads: N is 1..16\n", stderr);
        return 2;
    }
    for (int i = 0; i < n; i++) {
        workers[i].api = api;
        workers[i].request = request;
        workers[i].status = MODELAPI_INTERNAL;
        workers[i].content = NULL;
        workers[i].json = NULL;
        if (pthread_create(&threads[i], NULL, work, &workers[i]) != 0) {
            fputs("pthread_create failed\n", stderr);
            return 3;
        }
    }
    for (int i = 0; i < n; i++) {
        char key[32];
        pthread_join(threads[i], NULL);
        snprintf(key, sizeof key, "thread%d", i);
        put_failure(key, workers[i].status);
        snprintf(key, sizeof key, "thread%d_text", i);
        put_text(key, workers[i].content);
        snprintf(key, sizeof key, "thread%d_json", i);
        put_text(key, workers[i].json);
        modelapi_string_free(workers[i].content);
        modelapi_string_free(workers[i].json);
    }
    return 0;
}

int main(int argc, char **argv)
{
    ModelApi *api;
    int rc = 2;
    if (argc < 5) {
        fputs("usage: probe URL MODEL COMMAND ARGS... (see probe.c)\n", stderr);
        return 2;
    }
    api = modelapi_new(argv[2], argv[1], NULL);
    if (api == NULL) {
        fprintf(stderr, "modelapi_new: %s\n", modelapi_last_error());
        return 3;
    }
    if (strcmp(argv[3], "compare") == 0 && argc == 5) {
        rc = cmd_compare(api, argv[4]);
    } else if (strcmp(argv[3], "events") == 0 && argc == 5) {
        rc = cmd_events(api, argv[4]);
    } else if (strcmp(argv[3], "overflow") == 0 && argc == 5) {
        rc = cmd_overflow(api, argv[4]);
    } else if (strcmp(argv[3], "free") == 0 && argc == 6) {
        rc = cmd_free(api, argv[4], argv[5]);
    } else if (strcmp(argv[3], "cancel") == 0 && argc == 6) {
        rc = cmd_cancel(api, argv[4], argv[5]);
    } else if (strcmp(argv[3], "timeout") == 0 && argc == 7) {
        rc = cmd_timeout(api, argv[4], argv[5], argv[6]);
    } else if (strcmp(argv[3], "threads") == 0 && argc == 6) {
        rc = cmd_threads(api, argv[4], argv[5]);
    } else {
        fprintf(stderr, "unknown command or wrong arguments: %s\n", argv[3]);
    }
    modelapi_close(api);
    fflush(stdout);
    return rc;
}
