/* modelapi's C API. Streams with modelapi_stream_open + modelapi_stream_next
 * (the pull API), with --callback the callback modelapi_stream, or with
 * --events modelapi_stream_next_event (content events counted);
 * completions with modelapi_complete. The chunk count travels in the
 * X-Bench-Chunks header (set once per client with modelapi_set_header),
 * as the message-array API has no max_tokens.
 *
 * tools: one stream of a tool call (bench-server --tools) read with
 * modelapi_stream_next_event, every TOOL_CALL event counted, then the
 * whole answer taken with modelapi_stream_completion_json (both measured). */
#include "common.h"

#include "modelapi.h"

static uint64_t total_bytes, total_chunks;

static int on_chunk(void *user, const char *chunk, size_t len) {
    (void)user;
    (void)chunk;
    if (len) {
        total_bytes += len;
        total_chunks++;
    }
    return 0;
}

static void check(ModelApiStatus st, const char *what) {
    if (st != MODELAPI_OK) die(what, modelapi_last_error());
}

/* tools: the events of one tool-call stream, then its assembled answer. */
static void tools_once(ModelApi *api, const ModelApiMessage *msg, char **answer) {
    ModelApiStream *s = NULL;
    check(modelapi_stream_open(api, msg, 1, NULL, &s), "modelapi_stream_open");
    ModelApiEvent ev;
    ModelApiStatus st;
    while ((st = modelapi_stream_next_event(s, &ev)) == MODELAPI_OK) {
        if (ev.kind == MODELAPI_EVENT_TOOL_CALL) {
            total_bytes += ev.len;
            total_chunks++;
        }
    }
    if (st != MODELAPI_DONE) die("modelapi_stream_next_event", modelapi_last_error());
    check(modelapi_stream_completion_json(s, answer), "modelapi_stream_completion_json");
    modelapi_stream_free(s);
}

int main(int argc, char **argv) {
    double started = now_seconds();
    int callback = argc > 1 && !strcmp(argv[1], "--callback");
    int events = argc > 1 && !strcmp(argv[1], "--events");
    if (callback || events) argv++, argc--;
    bench_args a = parse_args(argc, argv);
    ModelApi *api = modelapi_new("gpt-4o-mini", a.base, NULL);
    if (!api) die("modelapi_new", modelapi_last_error());
    check(modelapi_set_max_retries(api, 0), "modelapi_set_max_retries");
    if (is_stream(&a)) {
        char count[32];
        snprintf(count, sizeof count, "%llu", (unsigned long long)a.chunks);
        check(modelapi_set_header(api, "X-Bench-Chunks", count), "modelapi_set_header");
    }
    ModelApiMessage msg = {"user", PROMPT};
    char *answer = NULL;

    loop_start();
    for (uint64_t i = 0; i < a.n; i++) {
        if (!is_stream(&a)) {
            char *content = NULL;
            check(modelapi_complete(api, &msg, 1, NULL, NULL, &content), "modelapi_complete");
            total_bytes += strlen(content);
            modelapi_string_free(content);
        } else if (is_tools(&a)) {
            modelapi_string_free(answer);
            answer = NULL;
            tools_once(api, &msg, &answer);
        } else if (callback) {
            check(modelapi_stream(api, &msg, 1, NULL, on_chunk, NULL), "modelapi_stream");
        } else if (events) {
            ModelApiStream *s = NULL;
            check(modelapi_stream_open(api, &msg, 1, NULL, &s), "modelapi_stream_open");
            ModelApiEvent ev;
            ModelApiStatus st;
            while ((st = modelapi_stream_next_event(s, &ev)) == MODELAPI_OK) {
                if (ev.kind == MODELAPI_EVENT_CONTENT && ev.len) {
                    total_bytes += ev.len;
                    total_chunks++;
                }
            }
            if (st != MODELAPI_DONE) die("modelapi_stream_next_event", modelapi_last_error());
            modelapi_stream_free(s);
        } else {
            ModelApiStream *s = NULL;
            check(modelapi_stream_open(api, &msg, 1, NULL, &s), "modelapi_stream_open");
            const char *chunk;
            size_t len;
            ModelApiStatus st;
            while ((st = modelapi_stream_next(s, &chunk, &len)) == MODELAPI_OK) {
                if (len) {
                    total_bytes += len;
                    total_chunks++;
                }
            }
            if (st != MODELAPI_DONE) die("modelapi_stream_next", modelapi_last_error());
            modelapi_stream_free(s);
        }
    }
    loop_stop();
    if (answer) {
        answer_rss_kib = peak_rss_kib();
        write_answer(&a, answer, strlen(answer));
        modelapi_string_free(answer);
    }
    modelapi_close(api);
    print_result(callback ? "modelapi-c-cb" : events ? "modelapi-c-event" : "modelapi-c", &a,
                 started, total_bytes, total_chunks, a.n);
    return 0;
}
