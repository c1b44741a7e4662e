/* modelapi's C API. Streams with modelapi_stream_open + modelapi_stream_next
 * (the pull API), or with --callback the callback modelapi_stream;
 * completions with modelapi_complete. The chunk count travels in the
 * X-Bench-Chunks header (set once per client with modelapi_set_header),
 * as the message-array API has no max_tokens. */
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

int main(int argc, char **argv) {
    double started = now_seconds();
    int callback = argc > 1 && !strcmp(argv[1], "--callback");
    if (callback) argv++, argc--;
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

    loop_start();
    for (uint64_t i = 0; i < a.n; i++) {
        if (!is_stream(&a)) {
            char *content = NULL;
            check(modelapi_complete(api, &msg, 1, NULL, NULL, &content), "modelapi_complete");
            total_bytes += strlen(content);
            modelapi_string_free(content);
        } else if (callback) {
            check(modelapi_stream(api, &msg, 1, NULL, on_chunk, NULL), "modelapi_stream");
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
    modelapi_close(api);
    print_result(callback ? "modelapi-c-cb" : "modelapi-c", &a, started,
                 total_bytes, total_chunks, a.n);
    return 0;
}
