/*
 * common.h: the few lines every example shares.
 *
 *   status_name()     the name of a ModelApiStatus, e.g. "MODELAPI_HTTP_ERROR"
 *   print_error()     "error: <NAME> (<number>): <modelapi_last_error()>"
 *                     (+ "http status: <n>" for MODELAPI_HTTP_ERROR) on stderr
 *   join_args()       the command-line words as one string
 *   user_message_json()  [{"role":"user","content":<question>}] (malloc'd)
 *   example_client()  a client for MODEL_API_URL / MODEL_NAME / MODEL_API_KEY,
 *                     or, when MODEL_API_URL is not set, one that answers
 *                     with canned replies (DEBUG_MOCK_RESPONSES)
 *
 * C files must define _POSIX_C_SOURCE (for setenv) before including any
 * header. The header also compiles as C++ (chat.cpp uses it).
 */

#ifndef EXAMPLES_COMMON_H
#define EXAMPLES_COMMON_H

#if !defined(__cplusplus) && (!defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200112L)
#error "define _POSIX_C_SOURCE 200809L before including any header (setenv is POSIX)"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modelapi.h"

/* The name of a status, as spelled in modelapi.h. */
static inline const char *status_name(ModelApiStatus status)
{
    switch (status) {
    case MODELAPI_OK: return "MODELAPI_OK";
    case MODELAPI_DONE: return "MODELAPI_DONE";
    case MODELAPI_INVALID_ARGUMENT: return "MODELAPI_INVALID_ARGUMENT";
    case MODELAPI_HTTP_ERROR: return "MODELAPI_HTTP_ERROR";
    case MODELAPI_TRANSPORT_ERROR: return "MODELAPI_TRANSPORT_ERROR";
    case MODELAPI_TIMEOUT: return "MODELAPI_TIMEOUT";
    case MODELAPI_INVALID_RESPONSE: return "MODELAPI_INVALID_RESPONSE";
    case MODELAPI_CLOSED: return "MODELAPI_CLOSED";
    case MODELAPI_ABORTED: return "MODELAPI_ABORTED";
    case MODELAPI_INTERNAL: return "MODELAPI_INTERNAL";
    case MODELAPI_SERVER_ERROR: return "MODELAPI_SERVER_ERROR";
    case MODELAPI_PENDING: return "MODELAPI_PENDING";
    }
    return "MODELAPI_UNKNOWN_STATUS"; /* a status from a newer library */
}

/*
 * Reports a failed call on stderr. Call it right after the failure, on the
 * same thread: modelapi_last_error() and modelapi_last_http_status() are
 * per thread (the most recent failed call; the most recent HTTP error).
 */
static inline void print_error(ModelApiStatus status)
{
    fprintf(stderr, "error: %s (%d): %s\n", status_name(status), (int)status,
            modelapi_last_error());
    if (status == MODELAPI_HTTP_ERROR) {
        fprintf(stderr, "http status: %d\n", modelapi_last_http_status());
    }
}

/*
 * The words words[0..count-1] joined with single spaces, or a copy of
 * fallback when count is 0. Returns a malloc'd string (free it), or NULL
 * when out of memory.
 */
static inline char *join_args(int count, char **words, const char *fallback)
{
    size_t size = 1;
    char *text;
    int i;

    if (count <= 0) {
        size = strlen(fallback) + 1;
        text = (char *)malloc(size);
        if (text != NULL) {
            memcpy(text, fallback, size);
        }
        return text;
    }
    for (i = 0; i < count; i++) {
        size += strlen(words[i]) + 1;
    }
    text = (char *)malloc(size);
    if (text == NULL) {
        return NULL;
    }
    text[0] = '\0';
    for (i = 0; i < count; i++) {
        if (i > 0) {
            strcat(text, " ");
        }
        strcat(text, words[i]);
    }
    return text;
}

/*
 * Creates the client of an example.
 *
 * With MODEL_API_URL set, the client comes from the environment
 * (MODEL_API_URL, MODEL_NAME, optional MODEL_API_KEY). Without it, the
 * example still runs: canned_replies_json (a JSON array of strings) becomes
 * DEBUG_MOCK_RESPONSES unless the user set that variable already, and the
 * library answers each call with the next canned reply, without any network
 * traffic.
 *
 * Returns NULL after printing why on stderr. Free the client with
 * modelapi_close().
 */
static inline ModelApi *example_client(const char *canned_replies_json)
{
    const char *url = getenv("MODEL_API_URL");
    ModelApi *api;

    if (url != NULL && url[0] != '\0') {
        api = modelapi_from_env();
    } else {
        fputs("(MODEL_API_URL is not set: answering with canned replies; "
              "set MODEL_API_URL and MODEL_NAME to ask a real server)\n",
              stderr);
        /* 0: keep a DEBUG_MOCK_RESPONSES the user set. The library reads
           the variable when the client is created. */
        if (setenv("DEBUG_MOCK_RESPONSES", canned_replies_json, 0) != 0) {
            perror("error: setenv");
            return NULL;
        }
        api = modelapi_new("canned", "http://localhost:8000", NULL);
    }
    if (api == NULL) {
        /* Constructors return NULL, not a status: only the message is known. */
        fprintf(stderr, "error: cannot create the client: %s\n", modelapi_last_error());
    }
    return api;
}

/* The request's messages, [{"role":"user","content":<question>}], as JSON
   (malloc'd), or NULL when out of memory. */
static inline char *user_message_json(const char *question)
{
    static const char before[] = "[{\"role\":\"user\",\"content\":\"";
    static const char after[] = "\"}]";
    /* Each byte takes at most 6 (\u00XX). */
    char *json = (char *)malloc(sizeof before + strlen(question) * 6 + sizeof after);
    char *p;

    if (json == NULL) {
        return NULL;
    }
    p = json + sprintf(json, "%s", before);
    for (; *question != '\0'; question++) {
        unsigned char c = (unsigned char)*question;

        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20) {
            p += sprintf(p, "\\u%04x", (unsigned)c);
        } else {
            *p++ = (char)c; /* UTF-8 passes through */
        }
    }
    strcpy(p, after);
    return json;
}

#endif /* EXAMPLES_COMMON_H */
