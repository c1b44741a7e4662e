/*
 * bench_client.c: one streamed request through modelapi's C API, timed from
 * just before it is sent (tests/llamacpp/bench.sh).
 *
 *   bench_client URL MODEL REQUEST_JSON
 *
 * prints {"ttfc_ms": .., "chunks": .., "span_s": .., "bytes": ..}: the time
 * to the first content chunk, the content chunks, the time from the first
 * to the last, the content's bytes.
 */

#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <time.h>

#include "modelapi.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    ModelApi *api;
    ModelApiStream *stream = NULL;
    ModelApiStatus status;
    const char *chunk;
    size_t len, bytes = 0;
    unsigned long chunks = 0;
    double start, first = 0, last = 0;

    if (argc != 4) {
        fputs("usage: bench_client URL MODEL REQUEST_JSON\n", stderr);
        return 2;
    }
    api = modelapi_new(argv[2], argv[1], NULL);
    if (api == NULL || modelapi_set_max_retries(api, 0) != MODELAPI_OK) {
        fprintf(stderr, "client: %s\n", modelapi_last_error());
        return 1;
    }
    start = now_s();
    status = modelapi_stream_open_json(api, argv[3], NULL, &stream);
    while (status == MODELAPI_OK && (status = modelapi_stream_next(stream, &chunk, &len)) == MODELAPI_OK) {
        last = now_s();
        if (chunks == 0) {
            first = last;
        }
        chunks++;
        bytes += len;
    }
    modelapi_stream_free(stream);
    modelapi_close(api);
    if (status != MODELAPI_DONE || chunks == 0) {
        fprintf(stderr, "stream: status %d: %s\n", (int)status, modelapi_last_error());
        return 1;
    }
    printf("{\"ttfc_ms\": %.3f, \"chunks\": %lu, \"span_s\": %.6f, \"bytes\": %zu}\n",
           (first - start) * 1000.0, chunks, last - first, bytes);
    return 0;
}
