/*
 * stream_pull.c: read a streamed answer one chunk per "frame", the way a
 * game loop or an event loop would: the program decides when to ask for
 * the next chunk, instead of being called back.
 *
 *   stream_pull [question...]   (default: "Write a haiku about coding")
 *
 * modelapi_stream_open sends the request; each modelapi_stream_next returns
 * the next chunk (it blocks until one arrives: call it from a thread of its
 * own, or between frames, when waiting is fine), and MODELAPI_DONE at the
 * end.
 *
 * Talks to MODEL_API_URL / MODEL_NAME (MODEL_API_KEY if needed); without
 * MODEL_API_URL it answers with a canned reply.
 * stdout: the answer, then a newline unless the answer ended with one.
 * stderr: "frames: <N>" (N = calls of modelapi_stream_next, the final
 * MODELAPI_DONE included), or errors, as
 *   error: <STATUS_NAME> (<number>): <message>
 *   http status: <n>                (for MODELAPI_HTTP_ERROR only)
 * Exit status: 0 on success, 1 on failure (after the chunks that arrived).
 */

#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>

#include "common.h"

int main(int argc, char **argv)
{
    ModelApi *api;
    ModelApiStream *stream = NULL;
    ModelApiMessage message;
    ModelApiStatus status;
    unsigned long frames = 0;
    size_t bytes = 0;
    char last = '\0';
    char *question;

    question = join_args(argc - 1, argv + 1, "Write a haiku about coding");
    if (question == NULL) {
        fputs("error: out of memory\n", stderr);
        return 1;
    }

    api = example_client("[\"Cursor blinks and waits\\none chunk per frame, "
                         "pulled, not pushed\\nthe loop stays in charge\", "
                         "\"Another canned answer.\", \"A third canned answer.\"]");
    if (api == NULL) {
        free(question);
        return 1;
    }

    message.role = "user";
    message.content = question;

    /* Sends the request now; HTTP errors (e.g. 401) show up here. */
    status = modelapi_stream_open(api, &message, 1, NULL, &stream);
    if (status != MODELAPI_OK) {
        print_error(status);
        modelapi_close(api);
        free(question);
        return 1;
    }

    /* The "game loop": one modelapi_stream_next per frame. */
    for (;;) {
        const char *chunk;
        size_t len;

        frames++;
        status = modelapi_stream_next(stream, &chunk, &len);
        if (status != MODELAPI_OK) {
            break; /* MODELAPI_DONE at the end, or an error */
        }
        /* chunk is valid until the next call on this stream: use it (or
           copy it) now. */
        if (len > 0) {
            fwrite(chunk, 1, len, stdout);
            fflush(stdout);
            bytes += len;
            last = chunk[len - 1];
        }
        /* ... a real loop would update and draw the rest of its world here ... */
    }

    /* End the line unless the answer did; after a partial answer too. */
    if ((bytes > 0 || status == MODELAPI_DONE) && last != '\n') {
        putchar('\n');
    }
    fflush(stdout);

    if (status != MODELAPI_DONE) {
        print_error(status);
        modelapi_stream_free(stream);
        modelapi_close(api);
        free(question);
        return 1;
    }
    fprintf(stderr, "frames: %lu\n", frames);

    /* Freeing a stream half-way would close its connection at once; here it
       is over, and freeing it releases what is left. */
    modelapi_stream_free(stream);
    modelapi_close(api);
    free(question);
    return 0;
}
