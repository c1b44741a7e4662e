/*
 * complete.c: ask one question, print the answer.
 *
 *   complete [question...]      (default: "What is 2+2?")
 *
 * Talks to MODEL_API_URL / MODEL_NAME (MODEL_API_KEY if needed); without
 * MODEL_API_URL it answers with a canned reply.
 * stdout: the answer and a newline. stderr: errors, as
 *   error: <STATUS_NAME> (<number>): <message>
 *   http status: <n>                (for MODELAPI_HTTP_ERROR only)
 * Exit status: 0 on success, 1 on failure.
 */

#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>

#include "common.h"

int main(int argc, char **argv)
{
    ModelApi *api;
    ModelApiMessage messages[2];
    ModelApiStatus status;
    char *question;
    char *content = NULL;

    question = join_args(argc - 1, argv + 1, "What is 2+2?");
    if (question == NULL) {
        fputs("error: out of memory\n", stderr);
        return 1;
    }

    api = example_client("[\"2 + 2 = 4.\", \"A second canned answer.\", "
                         "\"A third canned answer.\"]");
    if (api == NULL) {
        free(question);
        return 1;
    }

    /* The strings of a message are borrowed for the call only. */
    messages[0].role = "system";
    messages[0].content = "You are a helpful assistant. Answer briefly.";
    messages[1].role = "user";
    messages[1].content = question;

    /* out_json is NULL: we only want the text of the answer. On success
       content belongs to us and is freed with modelapi_string_free. */
    status = modelapi_complete(api, messages, 2, NULL, NULL, &content);
    if (status != MODELAPI_OK) {
        print_error(status); /* right away: last_error is per thread */
        modelapi_close(api);
        free(question);
        return 1;
    }

    printf("%s\n", content);

    modelapi_string_free(content);
    modelapi_close(api);
    free(question);
    return 0;
}
