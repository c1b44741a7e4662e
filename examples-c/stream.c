/*
 * stream.c: ask one question, print the answer as it arrives.
 *
 *   stream [question...]        (default: "Write a haiku about coding")
 *
 * modelapi_stream calls a callback once per chunk of the answer, on the
 * calling thread, and returns when the answer is complete.
 *
 * Talks to MODEL_API_URL / MODEL_NAME (MODEL_API_KEY if needed); without
 * MODEL_API_URL it answers with a canned reply.
 * stdout: the answer, then a newline unless the answer ended with one.
 * stderr: errors, as
 *   error: <STATUS_NAME> (<number>): <message>
 *   http status: <n>                (for MODELAPI_HTTP_ERROR only)
 * Exit status: 0 on success, 1 on failure (after the chunks that arrived).
 */

#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>

#include "common.h"

/* What the callback needs to know between chunks. */
struct printer {
    size_t bytes; /* bytes written so far */
    char last;    /* the last character written */
};

/*
 * Called once per chunk. chunk is valid only during the call (copy it to
 * keep it); len is its length in bytes. Returning non-zero would stop the
 * stream (modelapi_stream then returns MODELAPI_ABORTED).
 */
static int print_chunk(void *user_data, const char *chunk, size_t len)
{
    struct printer *printer = (struct printer *)user_data;

    if (len > 0) {
        fwrite(chunk, 1, len, stdout);
        fflush(stdout); /* show each piece now, not when the buffer fills */
        printer->bytes += len;
        printer->last = chunk[len - 1];
    }
    return 0;
}

int main(int argc, char **argv)
{
    ModelApi *api;
    ModelApiMessage message;
    ModelApiStatus status;
    struct printer printer = { 0, '\0' };
    char *question;

    question = join_args(argc - 1, argv + 1, "Write a haiku about coding");
    if (question == NULL) {
        fputs("error: out of memory\n", stderr);
        return 1;
    }

    api = example_client("[\"Semicolons fall\\nlike leaves on an autumn screen\\n"
                         "the build is green now\", "
                         "\"Another canned answer.\", \"A third canned answer.\"]");
    if (api == NULL) {
        free(question);
        return 1;
    }

    message.role = "user";
    message.content = question;

    status = modelapi_stream(api, &message, 1, NULL, print_chunk, &printer);

    /* End the line unless the answer did; after a partial answer too, so
       the error message starts on a line of its own. */
    if ((printer.bytes > 0 || status == MODELAPI_OK) && printer.last != '\n') {
        putchar('\n');
    }
    fflush(stdout);

    if (status != MODELAPI_OK) {
        print_error(status);
        modelapi_close(api);
        free(question);
        return 1;
    }

    modelapi_close(api);
    free(question);
    return 0;
}
