/*
 * cancel.c: stop a streamed answer from another thread, the way a game or
 * an editor does: a worker thread streams, and the UI thread (here: main)
 * cancels when the user presses Escape, closes the document, ... (here:
 * after a delay).
 *
 *   cancel [delay_ms [question...]]   (delay_ms: 0..600000, default 300)
 *
 * The worker streams with modelapi_stream_open_with + modelapi_stream_next,
 * passing a ModelApiCancel token; main calls modelapi_cancel(token) after
 * delay_ms. The worker's blocked call then returns MODELAPI_ABORTED within
 * milliseconds, whether it was still sending the request, waiting for the
 * answer, or waiting between two chunks, and the connection is closed (the
 * server stops generating). Other ways to do the same:
 *   - modelapi_stream_with(api, json, NULL, token, on_chunk, data): the
 *     callback form with a token;
 *   - modelapi_stream_cancel(stream): stops one pull stream from any thread
 *     (the thread calling it must know the stream is not being freed).
 * A token stays cancelled until modelapi_cancel_reset; it is freed only
 * after every call and stream using it is done (here: after the join).
 *
 * Talks to MODEL_API_URL / MODEL_NAME (MODEL_API_KEY if needed); without
 * MODEL_API_URL it answers with a canned reply, which streams at once and
 * so ends before any cancel.
 * stdout: the chunks that arrived (then a newline unless they ended with one).
 * stderr, last line, one of:
 *   cancelled after <N> ms: <STATUS_NAME>   N: from the modelapi_cancel call
 *                                           to the return of the worker's
 *                                           blocked call (CLOCK_MONOTONIC)
 *   finished before the cancel              the stream ended first
 * and errors, as
 *   error: <STATUS_NAME> (<number>): <message>
 *   http status: <n>                (for MODELAPI_HTTP_ERROR only)
 * Exit status: 0 when the cancel stopped the stream (MODELAPI_ABORTED) or
 * the stream ended before it, 1 on failure, 2 on bad usage.
 */

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

#define MAX_DELAY_MS 600000L

/* What the worker and main share. */
struct worker {
    /* Inputs, set before the thread starts. */
    ModelApi *api;
    ModelApiCancel *cancel;
    const char *request_json;

    /* Set by the worker; main reads them after pthread_join. */
    ModelApiStatus status;      /* MODELAPI_DONE at the end of the stream */
    struct timespec returned;   /* when its last (blocking) call returned */
    char *error;                /* copy of modelapi_last_error() (malloc'd) */
    int http_status;
    size_t bytes;               /* of chunks printed */
    char last;                  /* their last byte */

    /* finished, under lock: main waits on it with a timeout. */
    pthread_mutex_t lock;
    pthread_cond_t finished_cond;
    int finished;
};

static void *stream_worker(void *arg)
{
    struct worker *w = (struct worker *)arg;
    ModelApiStream *stream = NULL;
    ModelApiStatus status;

    /* Sends the request; cancellable already while it waits for the server. */
    status = modelapi_stream_open_with(w->api, w->request_json, NULL, w->cancel, &stream);
    while (status == MODELAPI_OK) {
        const char *chunk;
        size_t len;

        status = modelapi_stream_next(stream, &chunk, &len);
        if (status == MODELAPI_OK && len > 0) {
            /* chunk is valid until the next call on the stream: use it now. */
            fwrite(chunk, 1, len, stdout);
            fflush(stdout);
            w->bytes += len;
            w->last = chunk[len - 1];
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &w->returned);
    w->status = status;
    if (status != MODELAPI_DONE) {
        /* last_error is per thread: copy it here, for main to print. */
        w->error = strdup(modelapi_last_error());
        w->http_status = modelapi_last_http_status();
    }
    modelapi_stream_free(stream); /* NULL when the open failed */

    pthread_mutex_lock(&w->lock);
    w->finished = 1;
    pthread_cond_signal(&w->finished_cond);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Milliseconds from a to b, at least 0. */
static long elapsed_ms(const struct timespec *a, const struct timespec *b)
{
    long ms = (long)(b->tv_sec - a->tv_sec) * 1000L + (b->tv_nsec - a->tv_nsec) / 1000000L;
    return ms > 0 ? ms : 0;
}

/* Waits until the worker finished or delay_ms passed; 1 if it finished. */
static int wait_finished(struct worker *w, long delay_ms)
{
    struct timespec deadline;
    int finished;
    int err = 0;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += delay_ms / 1000;
    deadline.tv_nsec += (delay_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    while (!w->finished && err != ETIMEDOUT) {
        err = pthread_cond_timedwait(&w->finished_cond, &w->lock, &deadline);
    }
    finished = w->finished;
    pthread_mutex_unlock(&w->lock);
    return finished;
}

/* s as a JSON string literal (malloc'd), or NULL when out of memory. */
static char *json_string(const char *s)
{
    char *out = (char *)malloc(strlen(s) * 6 + 3);
    char *p = out;

    if (out == NULL) {
        return NULL;
    }
    *p++ = '"';
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20) {
            p += sprintf(p, "\\u%04x", (unsigned)c);
        } else {
            *p++ = (char)c;
        }
    }
    *p++ = '"';
    *p = '\0';
    return out;
}

/* The messages of the request, as JSON (malloc'd), or NULL. */
static char *request_json(const char *question)
{
    static const char before[] = "[{\"role\": \"user\", \"content\": ";
    char *content = json_string(question);
    char *json;

    if (content == NULL) {
        return NULL;
    }
    json = (char *)malloc(sizeof before + strlen(content) + 2);
    if (json != NULL) {
        sprintf(json, "%s%s}]", before, content);
    }
    free(content);
    return json;
}

int main(int argc, char **argv)
{
    struct worker w;
    pthread_condattr_t attr;
    pthread_t thread;
    struct timespec cancelled_at = {0, 0};
    long delay_ms = 300;
    char *question;
    char *json;
    int finished_first;
    int exit_code;
    int err;

    if (argc >= 2) {
        char *end;

        errno = 0;
        delay_ms = strtol(argv[1], &end, 10);
        if (end == argv[1] || *end != '\0' || errno != 0 || delay_ms < 0 ||
            delay_ms > MAX_DELAY_MS) {
            fprintf(stderr, "usage: %s [delay_ms [question...]]   (0 <= delay_ms <= %ld)\n",
                    argv[0], MAX_DELAY_MS);
            return 2;
        }
    }
    question = join_args(argc - 2, argv + 2, "Tell me a long story about a lighthouse keeper");
    json = question ? request_json(question) : NULL;
    free(question);
    if (json == NULL) {
        fputs("error: out of memory\n", stderr);
        return 1;
    }

    memset(&w, 0, sizeof w);
    w.api = example_client("[\"A canned story: it streams at once, so it ends before "
                           "any cancel.\"]");
    w.cancel = modelapi_cancel_new();
    w.request_json = json;
    if (w.api == NULL || w.cancel == NULL) {
        if (w.cancel == NULL && w.api != NULL) {
            fprintf(stderr, "error: modelapi_cancel_new: %s\n", modelapi_last_error());
        }
        modelapi_close(w.api);
        free(json);
        return 1;
    }
    /* The condition variable times out on the monotonic clock, like the
       measurements. */
    pthread_mutex_init(&w.lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w.finished_cond, &attr);
    pthread_condattr_destroy(&attr);

    err = pthread_create(&thread, NULL, stream_worker, &w);
    if (err != 0) {
        fprintf(stderr, "error: pthread_create: %s\n", strerror(err));
        exit_code = 1;
        goto cleanup;
    }

    /* The "UI thread": a real one would go on drawing frames and cancel on
       an event; this one waits delay_ms, unless the answer is done first. */
    finished_first = wait_finished(&w, delay_ms);
    if (!finished_first) {
        clock_gettime(CLOCK_MONOTONIC, &cancelled_at);
        modelapi_cancel(w.cancel); /* any thread, any time */
    }
    pthread_join(thread, NULL);

    /* End the line of the chunks unless they did. */
    if ((w.bytes > 0 || w.status == MODELAPI_DONE) && w.last != '\n') {
        putchar('\n');
    }
    fflush(stdout);

    if (w.status == MODELAPI_DONE) {
        /* Also when it ended between the wait and the cancel: too late to
           stop anything. */
        fputs("finished before the cancel\n", stderr);
        exit_code = 0;
    } else if (finished_first) {
        /* Failed on its own (e.g. HTTP 401), before any cancel. */
        fprintf(stderr, "error: %s (%d): %s\n", status_name(w.status), (int)w.status,
                w.error ? w.error : "(out of memory)");
        if (w.status == MODELAPI_HTTP_ERROR) {
            fprintf(stderr, "http status: %d\n", w.http_status);
        }
        exit_code = 1;
    } else {
        if (w.status != MODELAPI_ABORTED) {
            fprintf(stderr, "error: %s (%d): %s\n", status_name(w.status), (int)w.status,
                    w.error ? w.error : "(out of memory)");
        }
        fprintf(stderr, "cancelled after %ld ms: %s\n", elapsed_ms(&cancelled_at, &w.returned),
                status_name(w.status));
        exit_code = w.status == MODELAPI_ABORTED ? 0 : 1;
    }

cleanup:
    /* Every call using the token has returned: it can be freed. */
    modelapi_cancel_free(w.cancel);
    modelapi_close(w.api);
    pthread_cond_destroy(&w.finished_cond);
    pthread_mutex_destroy(&w.lock);
    free(w.error);
    free(json);
    return exit_code;
}
