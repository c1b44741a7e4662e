/*
 * game_loop.c: stream an answer inside a fixed 60 Hz loop that must never
 * block, the way a game shows a character's reply while it goes on drawing.
 *
 *   game_loop [question...]     (default: "Write a haiku about a game loop")
 *
 * modelapi_stream_start returns at once: connecting, sending the request
 * and reading the answer happen a little at a time, inside the
 * modelapi_stream_poll calls that the frames make. With wait_ms 0 a poll
 * never waits: it hands out an event that has arrived (MODELAPI_OK), or
 * says that none has yet (MODELAPI_PENDING), and the frame goes on. Each
 * frame (1/60 s, on CLOCK_MONOTONIC):
 *   1. polls until MODELAPI_PENDING (several events may have arrived since
 *      the last frame), printing the answer's text as it comes;
 *   2. "draws" (here: a small framebuffer in memory);
 *   3. sleeps until the next frame is due.
 * The loop ends at MODELAPI_DONE or at an error. A real game would go on
 * running; if the player walked away it would free the stream, which
 * closes its connection (the server stops generating).
 *
 * Talks to MODEL_API_URL / MODEL_NAME (MODEL_API_KEY if needed); without
 * MODEL_API_URL it answers with a canned reply, which has all arrived by
 * the first frame.
 * stdout: the answer's text as it arrives, then a newline unless it ended
 *   with one; then the whole answer, as modelapi_stream_completion_json
 *   assembles it, on one line:
 *     answer: {"id":...,"object":"chat.completion",...}
 * stderr, at the end:
 *   frames: <N> (<M> without an event, <L> over budget)
 *   longest frame: <A> ms in modelapi calls, <B> ms in all (budget 16.667 ms)
 *   modelapi calls: <C> ms in all, over <D> ms of streaming
 *   (a frame's time is its work, steps 1 and 2, without the sleep), and
 *   errors, as
 *   error: <STATUS_NAME> (<number>): <message>
 *   http status: <n>                (for MODELAPI_HTTP_ERROR only)
 * Exit status: 0 on success, 1 on failure (after the text that arrived).
 */

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

/* 60 frames a second: 16.667 ms a frame, in nanoseconds. */
#define FRAME_NS (1000000000LL / 60)

/* Canned reply (without MODEL_API_URL). */
static const char CANNED_REPLIES[] =
    "[\"Sixty frames a second\\nthe answer trickles in, polled\\nno frame ever waits\"]";

/* ---- time ---------------------------------------------------------------- */

/* Nanoseconds on the monotonic clock (which no one can set back). */
static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + (int64_t)ts.tv_nsec;
}

/* Sleeps until the monotonic clock reads deadline (nanoseconds). */
static void sleep_until(int64_t deadline)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(deadline / 1000000000LL);
    ts.tv_nsec = (long)(deadline % 1000000000LL);
    /* An absolute deadline: a signal that interrupts the sleep does not
       make the frame longer. clock_nanosleep returns the error number. */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static double ms(int64_t ns)
{
    return (double)ns / 1e6;
}

/* ---- the "game" ---------------------------------------------------------- */

/* What the loop draws: a small framebuffer, redrawn every frame. */
#define WIDTH 64
#define HEIGHT 36

struct world {
    unsigned char pixels[WIDTH * HEIGHT];
    unsigned long frame;
    size_t text_bytes;      /* of the answer shown so far (its "dialog box") */
    unsigned long checksum; /* of every frame drawn: the drawing is used */
};

/* One frame of the game: update and draw (a tiny bit of work). */
static void draw_frame(struct world *w)
{
    int x;
    int y;

    w->frame++;
    for (y = 0; y < HEIGHT; y++) {
        for (x = 0; x < WIDTH; x++) {
            unsigned char p = (unsigned char)((unsigned long)(x + y) + w->frame + w->text_bytes);

            w->pixels[y * WIDTH + x] = p;
            w->checksum += p;
        }
    }
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
    ModelApi *api = NULL;
    ModelApiStream *stream = NULL;
    ModelApiStatus status;
    struct world world;
    char *question;
    char *json;
    char *answer = NULL;
    size_t bytes = 0;        /* of text printed */
    char last = '\0';        /* its last byte */
    unsigned long frames = 0;
    unsigned long quiet_frames = 0;  /* whose polls gave no event */
    unsigned long over_budget = 0;   /* whose work took longer than a frame */
    int64_t longest_api = 0;         /* the most time one frame spent in modelapi calls */
    int64_t longest_frame = 0;       /* the longest frame's work */
    int64_t total_api = 0;
    int64_t started;
    int64_t next_frame;
    int exit_code = 1;

    question = join_args(argc - 1, argv + 1, "Write a haiku about a game loop");
    json = question ? user_message_json(question) : NULL;
    free(question);
    if (json == NULL) {
        fputs("error: out of memory\n", stderr);
        return 1;
    }
    api = example_client(CANNED_REPLIES);
    if (api == NULL) {
        free(json);
        return 1;
    }

    /* Returns at once (only the name lookup of a host name may block; an IP
       address or "localhost" does not). Network and server errors, e.g.
       HTTP 401, come from a later poll. */
    started = now_ns();
    status = modelapi_stream_start(api, json, NULL, NULL, &stream);
    if (status != MODELAPI_OK) {
        print_error(status);
        goto cleanup;
    }

    memset(&world, 0, sizeof world);
    next_frame = now_ns();
    for (;;) {
        int64_t frame_start = now_ns();
        int64_t in_api = 0;
        int64_t frame_ns;
        int events = 0;
        ModelApiEvent event;

        /* 1. The model: every event that has arrived, then on with the
           frame. The event's text belongs to the stream, valid until the
           next poll: use it (or copy it) now. */
        for (;;) {
            int64_t before = now_ns();

            status = modelapi_stream_poll(stream, 0, &event);
            in_api += now_ns() - before;
            if (status != MODELAPI_OK) {
                break; /* MODELAPI_PENDING: nothing more this frame */
            }
            events++;
            /* The reasoning and tool-call pieces (kinds a game may not
               show) are in the assembled answer all the same. */
            if (event.kind == MODELAPI_EVENT_CONTENT && event.len > 0) {
                fwrite(event.text, 1, event.len, stdout);
                bytes += event.len;
                last = event.text[event.len - 1];
            }
        }
        if (events > 0) {
            fflush(stdout);
        } else {
            quiet_frames++;
        }

        /* 2. The rest of the game: update and draw. */
        world.text_bytes = bytes;
        draw_frame(&world);
        frames++;

        frame_ns = now_ns() - frame_start;
        total_api += in_api;
        if (in_api > longest_api) {
            longest_api = in_api;
        }
        if (frame_ns > longest_frame) {
            longest_frame = frame_ns;
        }
        if (frame_ns > FRAME_NS) {
            over_budget++;
        }
        if (status != MODELAPI_PENDING) {
            break; /* MODELAPI_DONE at the end, or an error */
        }

        /* 3. Wait for the next frame. A loop that fell behind starts the
           next frame now rather than rushing to catch up. */
        next_frame += FRAME_NS;
        if (next_frame < now_ns()) {
            next_frame = now_ns();
        }
        sleep_until(next_frame);
    }

    /* End the line unless the text did; after a partial answer too. */
    if ((bytes > 0 || status == MODELAPI_DONE) && last != '\n') {
        putchar('\n');
    }
    fflush(stdout);
    fprintf(stderr, "frames: %lu (%lu without an event, %lu over budget)\n", frames,
            quiet_frames, over_budget);
    fprintf(stderr, "longest frame: %.3f ms in modelapi calls, %.3f ms in all (budget %.3f ms)\n",
            ms(longest_api), ms(longest_frame), ms(FRAME_NS));
    fprintf(stderr, "modelapi calls: %.3f ms in all, over %.3f ms of streaming\n", ms(total_api),
            ms(now_ns() - started));
    if (status != MODELAPI_DONE) {
        /* No library call since the failed poll: last_error is its. */
        print_error(status);
        goto cleanup;
    }

    /* The whole answer, as modelapi_complete would have returned it. */
    status = modelapi_stream_completion_json(stream, &answer);
    if (status != MODELAPI_OK) {
        print_error(status);
        goto cleanup;
    }
    printf("answer: %s\n", answer);
    fflush(stdout);
    exit_code = 0;

cleanup:
    modelapi_string_free(answer); /* NULL is a no-op, as for the frees below */
    modelapi_stream_free(stream);
    modelapi_close(api);
    free(json);
    return exit_code;
}
