/*
 * event_loop.c: several streamed answers at once in a host's own event
 * loop, on one thread, with poll(2): the loop sleeps until one of the
 * streams' sockets is ready or its timer is due, and never blocks inside
 * the library.
 *
 *   event_loop [question...]    each argument is one question, and one
 *                               stream (at most 8); default: two questions
 *
 * Every stream is started with modelapi_stream_start, which returns at
 * once. Then, in each turn of the loop:
 *   1. each stream that may have something (its socket was ready, it
 *      waits on no socket, or the timer ticked) is polled with
 *      modelapi_stream_poll(stream, 0, ...) until MODELAPI_PENDING: the
 *      stream may hold events it has already read from its socket, so one
 *      wake-up can bring several;
 *   2. modelapi_stream_fd says what each stream waits on: its socket, to
 *      read (POLLIN) or to write (POLLIN | POLLOUT: connecting, sending
 *      the request, whose answer may come before the server has read it
 *      all), or -1, no socket (a canned reply, a retry's backoff); and
 *      modelapi_stream_wake_ms how long it may be left alone whatever its
 *      socket does (until a backoff ends, or its timeout would expire: a
 *      server that goes silent never makes its socket ready);
 *   3. poll(2) waits for all the sockets, the timer and the nearest of
 *      those deadlines at once; a stream is polled again when its socket is
 *      ready or its deadline has come.
 * The timer stands for the host's other work (an animation, a heartbeat):
 * every TICK_MS it reports progress.
 * A blocking read (modelapi_stream_next) would have stalled the timer and
 * the other streams until its stream had something; here they all move on
 * together.
 *
 * Talks to MODEL_API_URL / MODEL_NAME (MODEL_API_KEY if needed); without
 * MODEL_API_URL it answers with canned replies (one per stream, in order),
 * which never wait on a socket.
 * stdout: each answer, when its stream has ended (so in the order they
 *   finish), as "[<n>] <text>", then a newline unless the text ended with
 *   one; n is the question's place on the command line, from 1.
 * stderr: at each tick of the timer
 *   tick <t>: <r> of <s> streams running, <c> chunks so far
 *   and at the end
 *   wake-ups: <W> (a socket was ready: <S>, waits on no socket: <N>), ticks: <T>, polls: <P>, chunks: <C>
 *   W: returns of poll(2); S: of those, the ones where a socket was ready;
 *   N: waits while a stream waited on no socket (a backoff: one wait each);
 *   P: modelapi_stream_poll calls; C: content events of all the streams.
 *   Errors, as
 *   [<n>] error: <STATUS_NAME> (<number>): <message>
 *   http status: <n>                (for MODELAPI_HTTP_ERROR only)
 * Exit status: 0 when every stream ended well, 1 when one failed (the
 * others still run to their end), 2 on bad usage.
 */

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

#define MAX_STREAMS 8
/* The timer's period. */
#define TICK_MS 250
/* The longest wait while a stream waits on no socket. */

/* Canned replies (without MODEL_API_URL), one per stream. */
static const char CANNED_REPLIES[] =
    "[\"One thread, one poll(2)\\nevery socket at once\\nnothing blocks the loop\","
    "\"Two answers stream in\\nside by side, as bytes arrive\\nthe timer still ticks\"]";

static const char *const DEFAULT_QUESTIONS[] = {
    "Write a haiku about an event loop",
    "Write a haiku about two streams at once",
};

/* One stream and what it has brought so far. */
struct job {
    int number;              /* its question's place on the command line, from 1 */
    char *request;           /* the request's messages, JSON (malloc'd) */
    ModelApiStream *stream;  /* NULL once it is over (and freed) */
    char *text;              /* the answer's text so far (malloc'd; NULL: none) */
    size_t len;
    size_t cap;
    int out_of_memory;       /* text could not grow: the answer is lost */
    int due;                 /* poll it in this turn of the loop */
    int slot;                /* its entry in the pollfd array; -1: no socket */
    int64_t deadline;        /* poll it by then, whatever its socket does (ms) */
    ModelApiStatus status;   /* MODELAPI_PENDING while it runs; then DONE or an error */
};

/* The loop's counters, printed at the end. */
struct counts {
    unsigned long wakeups;        /* returns of poll(2) */
    unsigned long socket_wakeups; /* of those, with a socket ready */
    unsigned long no_socket_waits;
    unsigned long ticks;
    unsigned long polls;          /* modelapi_stream_poll calls */
    unsigned long chunks;         /* content events */
};

/* Milliseconds on the monotonic clock. */
static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000L);
}


/* Adds bytes[0..n-1] to the job's text. */
static void append(struct job *job, const char *bytes, size_t n)
{
    if (job->out_of_memory) {
        return;
    }
    if (job->len + n + 1 > job->cap) {
        size_t cap = job->cap ? job->cap : 64;
        char *text;

        while (cap < job->len + n + 1) {
            cap *= 2;
        }
        text = (char *)realloc(job->text, cap);
        if (text == NULL) {
            job->out_of_memory = 1;
            return;
        }
        job->text = text;
        job->cap = cap;
    }
    memcpy(job->text + job->len, bytes, n);
    job->len += n;
    job->text[job->len] = '\0';
}

/* The stream of job is over with status (MODELAPI_DONE or an error, just
   returned by modelapi_stream_poll): prints the answer or the error, and
   frees the stream, which closes its connection if it is still open. */
static void finish(struct job *job, ModelApiStatus status)
{
    if (status == MODELAPI_DONE && job->out_of_memory) {
        fprintf(stderr, "[%d] error: out of memory\n", job->number);
        status = MODELAPI_INTERNAL;
    } else if (status == MODELAPI_DONE) {
        printf("[%d] %s", job->number, job->text ? job->text : "");
        if (job->len == 0 || job->text[job->len - 1] != '\n') {
            putchar('\n');
        }
        fflush(stdout);
    } else {
        /* Right after the failed poll: last_error is its. */
        fprintf(stderr, "[%d] ", job->number);
        print_error(status);
    }
    job->status = status;
    modelapi_stream_free(job->stream);
    job->stream = NULL;
}

/* Polls the job's stream until MODELAPI_PENDING, taking every event that
   has arrived; finishes the job at the end of its stream or at an error.
   Returns 1 when the stream is over. */
static int drain(struct job *job, struct counts *counts)
{
    ModelApiStatus status;
    ModelApiEvent event;

    for (;;) {
        status = modelapi_stream_poll(job->stream, 0, &event);
        counts->polls++;
        if (status == MODELAPI_PENDING) {
            return 0; /* nothing more for now: wait again */
        }
        if (status != MODELAPI_OK) {
            break; /* MODELAPI_DONE, or an error */
        }
        /* The text is the stream's until the next poll: copy it now. The
           other kinds (reasoning, tool calls) are left out here. */
        if (event.kind == MODELAPI_EVENT_CONTENT) {
            counts->chunks++;
            append(job, event.text, event.len);
        }
    }
    finish(job, status);
    return 1;
}

/* Frees what the jobs hold. */
static void free_jobs(struct job *jobs, int count)
{
    int i;

    for (i = 0; i < count; i++) {
        modelapi_stream_free(jobs[i].stream); /* NULL is a no-op */
        free(jobs[i].request);
        free(jobs[i].text);
    }
}

int main(int argc, char **argv)
{
    struct job jobs[MAX_STREAMS];
    struct pollfd fds[MAX_STREAMS];
    struct counts counts;
    ModelApi *api;
    int count = argc - 1;
    int running = 0;
    int failed = 0;
    int64_t next_tick;
    int i;

    if (count > MAX_STREAMS) {
        fprintf(stderr, "usage: %s [question...]   (at most %d questions)\n", argv[0],
                MAX_STREAMS);
        return 2;
    }
    if (count == 0) {
        count = (int)(sizeof DEFAULT_QUESTIONS / sizeof DEFAULT_QUESTIONS[0]);
    }
    memset(jobs, 0, sizeof jobs);
    memset(&counts, 0, sizeof counts);

    api = example_client(CANNED_REPLIES);
    if (api == NULL) {
        return 1;
    }

    /* Start every stream: each call returns at once. Argument errors come
       here; network and server errors from a later poll. */
    for (i = 0; i < count; i++) {
        struct job *job = &jobs[i];
        ModelApiStatus status;

        job->number = i + 1;
        job->request = user_message_json(argc > 1 ? argv[i + 1] : DEFAULT_QUESTIONS[i]);
        if (job->request == NULL) {
            fputs("error: out of memory\n", stderr);
            free_jobs(jobs, count);
            modelapi_close(api);
            return 1;
        }
        status = modelapi_stream_start(api, job->request, NULL, NULL, &job->stream);
        if (status != MODELAPI_OK) {
            fprintf(stderr, "[%d] ", job->number);
            print_error(status);
            free_jobs(jobs, count);
            modelapi_close(api);
            return 1;
        }
        job->status = MODELAPI_PENDING;
        job->due = 1; /* a new stream has not even connected: poll it first */
        running++;
    }

    next_tick = now_ms() + TICK_MS;
    while (running > 0) {
        int nfds = 0;
        int no_socket = 0;
        int64_t nearest = INT64_MAX;
        int socket_ready = 0;
        int64_t now;
        int timeout;
        int ready;

        /* 1. Poll the streams that may have something, each until PENDING. */
        for (i = 0; i < count; i++) {
            if (jobs[i].stream != NULL && jobs[i].due && drain(&jobs[i], &counts)) {
                running--;
                failed |= jobs[i].status != MODELAPI_DONE;
            }
        }
        if (running == 0) {
            break;
        }

        /* 2. What each stream waits on. Asked again at every turn: the
           socket changes with a retry or a redirect. */
        for (i = 0; i < count; i++) {
            struct job *job = &jobs[i];
            int wants_write = 0;
            int64_t wake;
            int fd;

            job->slot = -1;
            if (job->stream == NULL) {
                continue;
            }
            wake = modelapi_stream_wake_ms(job->stream);
            job->deadline = wake < 0 ? INT64_MAX : now_ms() + wake;
            if (job->deadline < nearest) {
                nearest = job->deadline;
            }
            fd = modelapi_stream_fd(job->stream, &wants_write);
            if (fd < 0) {
                no_socket = 1; /* poll it again soon */
                continue;
            }
            fds[nfds].fd = fd;
            fds[nfds].events = wants_write ? (POLLIN | POLLOUT) : POLLIN;
            fds[nfds].revents = 0;
            job->slot = nfds++;
        }

        /* 3. Wait for a socket, the timer, or the nearest deadline. */
        now = now_ms();
        if (nearest > next_tick) {
            nearest = next_tick;
        }
        timeout = nearest > now ? (int)(nearest - now) : 0;
        if (no_socket) {
            counts.no_socket_waits++;
        }
        ready = poll(fds, (nfds_t)nfds, timeout);
        if (ready < 0 && errno != EINTR) {
            perror("error: poll");
            failed = 1;
            break;
        }
        counts.wakeups++;

        /* Which streams to poll: those whose socket is ready (readable,
           writable, or in error: the poll will say which), and those whose
           deadline has come. After EINTR (ready < 0), all of them. */
        now = now_ms();
        for (i = 0; i < count; i++) {
            struct job *job = &jobs[i];

            job->due = 0;
            if (job->stream == NULL) {
                continue;
            }
            if (ready < 0 || now >= job->deadline) {
                job->due = 1;
            } else if (job->slot >= 0 && fds[job->slot].revents != 0) {
                job->due = 1;
                socket_ready = 1;
            }
        }
        if (socket_ready) {
            counts.socket_wakeups++;
        }

        /* The timer. */
        if (now >= next_tick) {
            counts.ticks++;
            fprintf(stderr, "tick %lu: %d of %d streams running, %lu chunks so far\n",
                    counts.ticks, running, count, counts.chunks);
            next_tick += TICK_MS;
            if (next_tick <= now) {
                next_tick = now + TICK_MS; /* fell behind: skip the missed ticks */
            }
        }
    }

    fprintf(stderr,
            "wake-ups: %lu (a socket was ready: %lu, waits on no socket: %lu), ticks: %lu, "
            "polls: %lu, chunks: %lu\n",
            counts.wakeups, counts.socket_wakeups, counts.no_socket_waits, counts.ticks,
            counts.polls, counts.chunks);

    free_jobs(jobs, count);
    modelapi_close(api);
    return failed ? 1 : 0;
}
