/*
 * threads.c: one client shared by several threads.
 *
 *   threads [N]                 (1 <= N <= 64, default 4)
 *
 * A ModelApi* may be used by several threads at once for modelapi_complete*,
 * modelapi_stream* and modelapi_stream_open* (its pooled connections are
 * shared). Each thread here does one modelapi_complete and one
 * modelapi_stream with the message "Hello from thread <i>".
 *
 * modelapi_last_error() is per thread: a thread that fails copies its
 * message before returning, and the main thread prints it.
 *
 * Talks to MODEL_API_URL / MODEL_NAME (MODEL_API_KEY if needed); without
 * MODEL_API_URL it answers with 2*N canned replies "Canned reply 0".."Canned
 * reply 2N-1", shared by all threads, so each thread gets two of them in
 * whatever order the threads happen to run.
 * stdout: one line per thread that succeeded, in thread order:
 *   thread <i>: <complete content> | <streamed text>
 * stderr: one error per thread that failed:
 *   thread <i>: error: <STATUS_NAME> (<number>): <message>
 *   thread <i>: http status: <n>    (for MODELAPI_HTTP_ERROR only)
 * Exit status: 0 when every thread succeeded, 1 otherwise, 2 on bad usage.
 */

#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define MAX_THREADS 64

/* A growing text buffer for the streamed chunks. */
struct buffer {
    char *data; /* NUL-terminated, or NULL while empty */
    size_t len;
    size_t cap;
};

/* One thread's work: its inputs and results. */
struct job {
    int index;
    ModelApi *api;            /* shared by all threads */
    pthread_t thread;
    ModelApiStatus status;    /* MODELAPI_OK, or the first failure */
    char *error;              /* copy of modelapi_last_error() (malloc'd) */
    int http_status;          /* modelapi_last_http_status() after a failure */
    char *content;            /* from modelapi_complete (modelapi_string_free) */
    struct buffer streamed;   /* from modelapi_stream (free) */
};

/* The chunk callback: appends the chunk to a struct buffer. The chunk is
   valid only during the call, hence the copy. */
static int append_chunk(void *user_data, const char *chunk, size_t len)
{
    struct buffer *buffer = (struct buffer *)user_data;

    if (buffer->len + len + 1 > buffer->cap) {
        size_t cap = buffer->cap ? buffer->cap : 64;
        char *data;

        while (buffer->len + len + 1 > cap) {
            cap *= 2;
        }
        data = (char *)realloc(buffer->data, cap);
        if (data == NULL) {
            return 1; /* out of memory: stop the stream (MODELAPI_ABORTED) */
        }
        buffer->data = data;
        buffer->cap = cap;
    }
    memcpy(buffer->data + buffer->len, chunk, len);
    buffer->len += len;
    buffer->data[buffer->len] = '\0';
    return 0;
}

/* Records a failure of this thread, while its last_error is still there. */
static void record_failure(struct job *job, ModelApiStatus status)
{
    job->status = status;
    job->http_status = modelapi_last_http_status();
    job->error = strdup(modelapi_last_error());
}

static void *run_job(void *arg)
{
    struct job *job = (struct job *)arg;
    char text[64];
    ModelApiMessage message;
    ModelApiStatus status;

    snprintf(text, sizeof text, "Hello from thread %d", job->index);
    message.role = "user";
    message.content = text;

    status = modelapi_complete(job->api, &message, 1, NULL, NULL, &job->content);
    if (status != MODELAPI_OK) {
        record_failure(job, status);
        return NULL;
    }

    status = modelapi_stream(job->api, &message, 1, NULL, append_chunk, &job->streamed);
    if (status != MODELAPI_OK) {
        record_failure(job, status);
    }
    return NULL;
}

/* The canned replies for n threads: a JSON array of 2*n strings (malloc'd). */
static char *canned_replies(int n)
{
    size_t size = 2 + (size_t)(2 * n) * sizeof "\"Canned reply 127\", ";
    char *json = (char *)malloc(size);
    size_t used = 0;
    int i;

    if (json == NULL) {
        return NULL;
    }
    used += (size_t)snprintf(json + used, size - used, "[");
    for (i = 0; i < 2 * n; i++) {
        used += (size_t)snprintf(json + used, size - used, "%s\"Canned reply %d\"",
                                 i > 0 ? ", " : "", i);
    }
    snprintf(json + used, size - used, "]");
    return json;
}

int main(int argc, char **argv)
{
    static struct job jobs[MAX_THREADS];
    ModelApi *api;
    char *canned;
    int n = 4;
    int started = 0;
    int failed = 0;
    int i;

    if (argc > 2) {
        fprintf(stderr, "usage: %s [N]   (1 <= N <= %d threads, default 4)\n",
                argv[0], MAX_THREADS);
        return 2;
    }
    if (argc == 2) {
        char *end;
        long value = strtol(argv[1], &end, 10);

        if (end == argv[1] || *end != '\0' || value < 1 || value > MAX_THREADS) {
            fprintf(stderr, "usage: %s [N]   (1 <= N <= %d threads, default 4)\n",
                    argv[0], MAX_THREADS);
            return 2;
        }
        n = (int)value;
    }

    canned = canned_replies(n);
    if (canned == NULL) {
        fputs("error: out of memory\n", stderr);
        return 1;
    }
    api = example_client(canned);
    free(canned); /* setenv copied it */
    if (api == NULL) {
        return 1;
    }
    /* Settings (modelapi_set_timeout_ms, ...) would go here: before the
       client is shared. */

    for (i = 0; i < n; i++) {
        int err;

        jobs[i].index = i;
        jobs[i].api = api;
        jobs[i].status = MODELAPI_OK;
        err = pthread_create(&jobs[i].thread, NULL, run_job, &jobs[i]);
        if (err != 0) {
            fprintf(stderr, "error: pthread_create: %s\n", strerror(err));
            failed = 1;
            break;
        }
        started++;
    }
    for (i = 0; i < started; i++) {
        pthread_join(jobs[i].thread, NULL);
    }
    /* No thread uses the client any more: it can be closed. */
    modelapi_close(api);

    for (i = 0; i < started; i++) {
        struct job *job = &jobs[i];

        if (job->status == MODELAPI_OK) {
            printf("thread %d: %s | %s\n", i, job->content,
                   job->streamed.data ? job->streamed.data : "");
        } else {
            failed = 1;
            fprintf(stderr, "thread %d: error: %s (%d): %s\n", i, status_name(job->status),
                    (int)job->status, job->error ? job->error : "(out of memory)");
            if (job->status == MODELAPI_HTTP_ERROR) {
                fprintf(stderr, "thread %d: http status: %d\n", i, job->http_status);
            }
        }
        modelapi_string_free(job->content); /* NULL is fine */
        free(job->streamed.data);
        free(job->error);
    }
    return failed ? 1 : 0;
}
