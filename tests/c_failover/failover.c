/* The first-token deadline, fallbacks and hedging from C (run by
   tests/c_failover.rs): argv[1] is an endpoint that stalls, argv[2] one
   that answers "rescued". Prints one line per check and a summary. */
#define _POSIX_C_SOURCE 200809L

#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "modelapi.h"

static int passed, failed;

static void check(int ok, const char *what)
{
    printf("%s - %s\n", ok ? "ok" : "not ok", what);
    if (ok) {
        passed++;
    } else {
        failed++;
    }
}

/* Reads a pull stream to its end; its text into buf. */
static ModelApiStatus read_all(ModelApiStream *stream, char *buf, size_t size)
{
    const char *chunk;
    size_t len, used = 0;
    ModelApiStatus status;
    buf[0] = '\0';
    while ((status = modelapi_stream_next(stream, &chunk, &len)) == MODELAPI_OK) {
        if (used + len + 1 < size) {
            memcpy(buf + used, chunk, len);
            used += len;
            buf[used] = '\0';
        }
    }
    return status;
}

int main(int argc, char **argv)
{
    ModelApiMessage message = {"user", "hi"};
    ModelApiStream *stream = NULL;
    ModelApi *api;
    char text[256];
    const char *endpoint;

    if (argc != 3) {
        fprintf(stderr, "usage: %s STALLING_URL FALLBACK_URL\n", argv[0]);
        return 2;
    }

    /* The deadline alone: MODELAPI_TIMEOUT. */
    api = modelapi_new("m", argv[1], "sk-c-primary-key");
    check(modelapi_set_mock_responses(api, NULL) == MODELAPI_OK, "no canned replies");
    check(modelapi_set_first_token_timeout_ms(api, 300) == MODELAPI_OK, "deadline set");
    check(modelapi_stream_open(api, &message, 1, NULL, &stream) == MODELAPI_TIMEOUT,
          "past the deadline: MODELAPI_TIMEOUT");
    check(stream == NULL, "no stream on failure");

    /* With a fallback: rescued, and the stream says by whom. */
    check(modelapi_add_fallback(api, argv[2], "backup", "sk-c-fallback-key") == MODELAPI_OK,
          "fallback added");
    check(modelapi_add_fallback(api, "ftp://nope", "m", NULL) == MODELAPI_INVALID_ARGUMENT,
          "a bad fallback is refused");
    check(modelapi_add_fallback(api, argv[2], NULL, NULL) == MODELAPI_INVALID_ARGUMENT,
          "a NULL model is refused");
    check(modelapi_stream_open(api, &message, 1, NULL, &stream) == MODELAPI_OK,
          "the fallback serves");
    check(read_all(stream, text, sizeof text) == MODELAPI_DONE, "read to its end");
    check(strcmp(text, "rescued") == 0, "the fallback's text");
    endpoint = modelapi_stream_endpoint(stream);
    check(endpoint != NULL && strcmp(endpoint, argv[2]) == 0, "modelapi_stream_endpoint");
    check(modelapi_stream_first_event_ms(stream) >= 300, "modelapi_stream_first_event_ms");
    modelapi_stream_free(stream);
    stream = NULL;
    check(modelapi_stream_endpoint(NULL) == NULL, "NULL stream: no endpoint");
    check(modelapi_stream_first_event_ms(NULL) == -1, "NULL stream: -1");

    /* Hedging, polled by a host loop on the descriptor. */
    check(modelapi_set_first_token_timeout_ms(api, 0) == MODELAPI_OK, "deadline off");
    check(modelapi_set_hedge_ms(api, 200) == MODELAPI_OK, "hedge set");
    check(modelapi_stream_start(api, "[{\"role\":\"user\",\"content\":\"hi\"}]", NULL, NULL,
                                &stream) == MODELAPI_OK,
          "started");
    check(modelapi_stream_first_event_ms(stream) == -1, "no first event yet");
    {
        ModelApiEvent event;
        ModelApiStatus status;
        int turns = 0;
        size_t used = 0;
        text[0] = '\0';
        for (;;) {
            status = modelapi_stream_poll(stream, 0, &event);
            if (status == MODELAPI_PENDING) {
                struct pollfd fd;
                int wants_write = 0;
                fd.fd = modelapi_stream_fd(stream, &wants_write);
                fd.events = (short)(wants_write ? POLLIN | POLLOUT : POLLIN);
                fd.revents = 0;
                if (++turns > 5000) {
                    break;
                }
                poll(&fd, fd.fd < 0 ? 0 : 1, (int)modelapi_stream_wake_ms(stream));
                continue;
            }
            if (status != MODELAPI_OK) {
                break;
            }
            if (event.kind == MODELAPI_EVENT_CONTENT && used + event.len + 1 < sizeof text) {
                memcpy(text + used, event.text, event.len);
                used += event.len;
                text[used] = '\0';
            }
        }
        check(status == MODELAPI_DONE, "the hedged stream ends");
        check(strcmp(text, "rescued") == 0, "the hedge's text");
        check(turns < 5000, "woken, not spinning");
    }
    endpoint = modelapi_stream_endpoint(stream);
    check(endpoint != NULL && strcmp(endpoint, argv[2]) == 0, "served by the hedge");
    modelapi_stream_free(stream);
    check(modelapi_set_hedge_ms(NULL, 1) == MODELAPI_INVALID_ARGUMENT, "NULL client");
    modelapi_close(api);

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
