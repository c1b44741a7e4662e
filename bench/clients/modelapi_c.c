/* modelapi's C API. Streams with modelapi_stream_open + modelapi_stream_next
 * (the pull API), with --callback the callback modelapi_stream, or with
 * --events modelapi_stream_next_event (content events counted);
 * completions with modelapi_complete.
 *
 * Poll mode (streams started with modelapi_stream_start):
 *   --poll MS      modelapi_stream_poll(stream, MS, &event) in a loop
 *   --pollfd       modelapi_stream_poll(stream, 0, ...) until MODELAPI_PENDING,
 *                  then poll(2) on modelapi_stream_fd's descriptor, and again
 *   --time-polls   (after --poll or --pollfd) times every poll: the result
 *                  line gets the longest and the percentiles (poll_* fields),
 *                  and, from getrusage(RUSAGE_THREAD) around each poll, how
 *                  many polls slept (a voluntary context switch: the poll
 *                  waited in the kernel) or were preempted (involuntary),
 *                  and the longest poll that was neither; and the polls that
 *                  took page faults (memory touched for the first time)
 *   idle BASE_URL POLLS   a stream the server pauses after its first content
 *                  chunk (X-Bench-Pause-Ms): once that chunk is in, POLLS
 *                  polls with wait 0 are timed, every one of which must be
 *                  MODELAPI_PENDING. The chunk count travels in the
 * X-Bench-Chunks header (set once per client with modelapi_set_header),
 * as the message-array API has no max_tokens.
 *
 * tools: one stream of a tool call (bench-server --tools) read with
 * modelapi_stream_next_event, every TOOL_CALL event counted, then the
 * whole answer taken with modelapi_stream_completion_json (both measured). */
#include "common.h"

#include <errno.h>
#include <poll.h>
#include <sys/resource.h>

#include "modelapi.h"

#define MESSAGES_JSON "[{\"role\":\"user\",\"content\":\"" PROMPT "\"}]"

/* How long the server pauses in `idle` (it stops early when we close). */
#define IDLE_PAUSE_MS "60000"

static uint64_t total_bytes, total_chunks;

static int on_chunk(void *user, const char *chunk, size_t len) {
    (void)user;
    (void)chunk;
    if (len) {
        total_bytes += len;
        total_chunks++;
    }
    return 0;
}

static void check(ModelApiStatus st, const char *what) {
    if (st != MODELAPI_OK) die(what, modelapi_last_error());
}

/* ---- poll mode ---- */

enum { NO_POLL, POLL_LOOP, POLL_FD };
static int poll_mode = NO_POLL;
static uint32_t poll_wait_ms;
static int time_polls;
static uint64_t polls, pendings, fd_waits;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Durations in a log histogram: 8 buckets per power of two (within 12.5 %),
 * exact below 8 ns; the longest kept exactly. */
#define BUCKETS 512
static uint64_t hist[BUCKETS], max_ns, max_ok_ns, max_pending_ns;
static uint64_t over_20us, over_100us, over_1ms, over_2ms;
/* Polls that slept (voluntary switch) or were preempted (involuntary), the
 * longest of each, and the longest poll with neither (and its number). */
static uint64_t slept, preempted, max_slept_ns, max_preempted_ns, max_clean_ns, max_clean_at;
/* Polls that took page faults (minor: memory touched the first time), the
 * faults of the longest clean poll, and the longest poll with no switch and
 * no fault. */
static uint64_t faulted, max_clean_faults, max_quiet_ns;

static unsigned bucket_of(uint64_t ns) {
    if (ns < 8) return (unsigned)ns;
    unsigned e = 63 - (unsigned)__builtin_clzll(ns);
    unsigned i = 8 * (e - 2) + (unsigned)((ns >> (e - 3)) & 7);
    return i < BUCKETS ? i : BUCKETS - 1;
}

static uint64_t bucket_top(unsigned i) {
    if (i < 8) return i;
    unsigned e = i / 8 + 2, sub = i % 8;
    return ((uint64_t)(8 + sub) << (e - 3)) + ((uint64_t)1 << (e - 3)) - 1;
}

static void record(uint64_t ns, ModelApiStatus st, long vol, long invol, long faults) {
    faulted += faults > 0;
    if (!vol && !invol && !faults && ns > max_quiet_ns) max_quiet_ns = ns;
    hist[bucket_of(ns)]++;
    if (vol) {
        slept++;
        if (ns > max_slept_ns) max_slept_ns = ns;
    }
    if (invol) {
        preempted++;
        if (ns > max_preempted_ns) max_preempted_ns = ns;
    }
    if (!vol && !invol && ns > max_clean_ns) {
        max_clean_ns = ns;
        max_clean_at = polls;
        max_clean_faults = (uint64_t)faults;
    }
    if (ns > max_ns) max_ns = ns;
    if (st == MODELAPI_PENDING) {
        if (ns > max_pending_ns) max_pending_ns = ns;
    } else if (ns > max_ok_ns) {
        max_ok_ns = ns;
    }
    over_20us += ns > 20000;
    over_100us += ns > 100000;
    over_1ms += ns > 1000000;
    over_2ms += ns > 2000000;
}

/* The q-quantile's bucket top (never above the longest). */
static uint64_t quantile(double q) {
    uint64_t total = 0, seen = 0;
    for (unsigned i = 0; i < BUCKETS; i++) total += hist[i];
    uint64_t rank = (uint64_t)(q * (double)total + 0.999999);
    if (rank < 1) rank = 1;
    for (unsigned i = 0; i < BUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank) return bucket_top(i) < max_ns ? bucket_top(i) : max_ns;
    }
    return max_ns;
}

/* POLL_FD: waits on the stream's descriptor (no descriptor: poll again). */
static void wait_fd(ModelApiStream *s) {
    int wants_write = 0;
    int fd = modelapi_stream_fd(s, &wants_write);
    if (fd < 0) return;
    struct pollfd p = {fd, wants_write ? POLLOUT : POLLIN, 0};
    int r = poll(&p, 1, 10000);
    if (r == 0) die("poll(2): nothing for 10 s", NULL);
    if (r < 0 && errno != EINTR) die("poll(2)", strerror(errno));
    fd_waits++;
}

/* One stream driven by polls (POLL_LOOP or POLL_FD). */
static void poll_stream(ModelApi *api, uint64_t *bytes, uint64_t *chunks) {
    ModelApiStream *s = NULL;
    check(modelapi_stream_start(api, MESSAGES_JSON, NULL, NULL, &s), "modelapi_stream_start");
    uint32_t wait = poll_mode == POLL_FD ? 0 : poll_wait_ms;
    ModelApiEvent ev;
    for (;;) {
        ModelApiStatus st;
        if (time_polls) {
            struct rusage r0, r1;
            getrusage(RUSAGE_THREAD, &r0);
            uint64_t t0 = now_ns();
            st = modelapi_stream_poll(s, wait, &ev);
            uint64_t ns = now_ns() - t0;
            getrusage(RUSAGE_THREAD, &r1);
            record(ns, st, r1.ru_nvcsw - r0.ru_nvcsw, r1.ru_nivcsw - r0.ru_nivcsw,
                   r1.ru_minflt - r0.ru_minflt + r1.ru_majflt - r0.ru_majflt);
        } else {
            st = modelapi_stream_poll(s, wait, &ev);
        }
        polls++;
        if (st == MODELAPI_OK) {
            if (ev.kind == MODELAPI_EVENT_CONTENT && ev.len) {
                *bytes += ev.len;
                (*chunks)++;
            }
        } else if (st == MODELAPI_PENDING) {
            pendings++;
            if (poll_mode == POLL_FD) wait_fd(s);
        } else if (st == MODELAPI_DONE) {
            break;
        } else {
            die("modelapi_stream_poll", modelapi_last_error());
        }
    }
    modelapi_stream_free(s);
}

/* idle: the stream's first content chunk, then `n` timed polls that must
 * all find nothing; returns the polls that did find something (0). */
static uint64_t idle_polls(ModelApi *api, uint64_t n, uint64_t *bytes, uint64_t *chunks) {
    ModelApiStream *s = NULL;
    check(modelapi_stream_start(api, MESSAGES_JSON, NULL, NULL, &s), "modelapi_stream_start");
    ModelApiEvent ev;
    ModelApiStatus st;
    int waited = 0;
    while (!*chunks) {
        st = modelapi_stream_poll(s, 1000, &ev);
        if (st == MODELAPI_OK && ev.kind == MODELAPI_EVENT_CONTENT && ev.len) {
            *bytes += ev.len;
            (*chunks)++;
        } else if (st == MODELAPI_PENDING) {
            if (++waited > 10) die("idle: no content chunk in 10 s", NULL);
        } else if (st != MODELAPI_OK) {
            die("idle: modelapi_stream_poll", modelapi_last_error());
        }
    }
    /* Whatever else came with it, until the server's pause shows. */
    while ((st = modelapi_stream_poll(s, 20, &ev)) == MODELAPI_OK) {
    }
    if (st != MODELAPI_PENDING) die("idle: the stream ended", modelapi_last_error());
    uint64_t busy = 0;
    loop_start();
    for (uint64_t i = 0; i < n; i++) busy += modelapi_stream_poll(s, 0, &ev) != MODELAPI_PENDING;
    loop_stop();
    polls = n;
    pendings = n - busy;
    modelapi_stream_free(s);
    return busy;
}

/* tools: the events of one tool-call stream, then its assembled answer. */
static void tools_once(ModelApi *api, const ModelApiMessage *msg, char **answer) {
    ModelApiStream *s = NULL;
    check(modelapi_stream_open(api, msg, 1, NULL, &s), "modelapi_stream_open");
    ModelApiEvent ev;
    ModelApiStatus st;
    while ((st = modelapi_stream_next_event(s, &ev)) == MODELAPI_OK) {
        if (ev.kind == MODELAPI_EVENT_TOOL_CALL) {
            total_bytes += ev.len;
            total_chunks++;
        }
    }
    if (st != MODELAPI_DONE) die("modelapi_stream_next_event", modelapi_last_error());
    check(modelapi_stream_completion_json(s, answer), "modelapi_stream_completion_json");
    modelapi_stream_free(s);
}

int main(int argc, char **argv) {
    double started = now_seconds();
    int callback = argc > 1 && !strcmp(argv[1], "--callback");
    int events = argc > 1 && !strcmp(argv[1], "--events");
    if (callback || events) argv++, argc--;
    if (argc > 2 && !strcmp(argv[1], "--poll")) {
        poll_mode = POLL_LOOP;
        poll_wait_ms = (uint32_t)parse_count(argv[2]);
        argv += 2, argc -= 2;
    } else if (argc > 1 && !strcmp(argv[1], "--pollfd")) {
        poll_mode = POLL_FD;
        argv++, argc--;
    }
    if (poll_mode != NO_POLL && argc > 1 && !strcmp(argv[1], "--time-polls")) {
        time_polls = 1;
        argv++, argc--;
    }
    bench_args a = parse_args(argc, argv);
    int idle = !strcmp(a.scenario, "idle");
    ModelApi *api = modelapi_new("gpt-4o-mini", a.base, NULL);
    if (!api) die("modelapi_new", modelapi_last_error());
    check(modelapi_set_max_retries(api, 0), "modelapi_set_max_retries");
    if (is_stream(&a)) {
        char count[32];
        snprintf(count, sizeof count, "%llu", (unsigned long long)a.chunks);
        check(modelapi_set_header(api, "X-Bench-Chunks", count), "modelapi_set_header");
    }
    if (idle)
        check(modelapi_set_header(api, "X-Bench-Pause-Ms", IDLE_PAUSE_MS), "modelapi_set_header");
    if (idle) {
        uint64_t busy = idle_polls(api, a.polls, &total_bytes, &total_chunks);
        double secs = loop_t1 - loop_t0;
        snprintf(result_extra, sizeof result_extra,
                 ",\"polls\":%llu,\"poll_pending\":%llu,\"poll_not_pending\":%llu,"
                 "\"idle_poll_ns\":%.2f,\"idle_poll_cpu_ns\":%.2f",
                 (unsigned long long)polls, (unsigned long long)pendings,
                 (unsigned long long)busy, secs * 1e9 / (double)a.polls,
                 (loop_c1 - loop_c0) * 1e9 / (double)a.polls);
        modelapi_close(api);
        print_result("modelapi-c-idle", &a, started, total_bytes, total_chunks, 1);
        return 0;
    }
    ModelApiMessage msg = {"user", PROMPT};
    char *answer = NULL;

    loop_start();
    for (uint64_t i = 0; i < a.n; i++) {
        if (!is_stream(&a)) {
            char *content = NULL;
            check(modelapi_complete(api, &msg, 1, NULL, NULL, &content), "modelapi_complete");
            total_bytes += strlen(content);
            modelapi_string_free(content);
        } else if (is_tools(&a)) {
            modelapi_string_free(answer);
            answer = NULL;
            tools_once(api, &msg, &answer);
        } else if (poll_mode != NO_POLL) {
            poll_stream(api, &total_bytes, &total_chunks);
        } else if (callback) {
            check(modelapi_stream(api, &msg, 1, NULL, on_chunk, NULL), "modelapi_stream");
        } else if (events) {
            ModelApiStream *s = NULL;
            check(modelapi_stream_open(api, &msg, 1, NULL, &s), "modelapi_stream_open");
            ModelApiEvent ev;
            ModelApiStatus st;
            while ((st = modelapi_stream_next_event(s, &ev)) == MODELAPI_OK) {
                if (ev.kind == MODELAPI_EVENT_CONTENT && ev.len) {
                    total_bytes += ev.len;
                    total_chunks++;
                }
            }
            if (st != MODELAPI_DONE) die("modelapi_stream_next_event", modelapi_last_error());
            modelapi_stream_free(s);
        } else {
            ModelApiStream *s = NULL;
            check(modelapi_stream_open(api, &msg, 1, NULL, &s), "modelapi_stream_open");
            const char *chunk;
            size_t len;
            ModelApiStatus st;
            while ((st = modelapi_stream_next(s, &chunk, &len)) == MODELAPI_OK) {
                if (len) {
                    total_bytes += len;
                    total_chunks++;
                }
            }
            if (st != MODELAPI_DONE) die("modelapi_stream_next", modelapi_last_error());
            modelapi_stream_free(s);
        }
    }
    loop_stop();
    if (answer) {
        answer_rss_kib = peak_rss_kib();
        write_answer(&a, answer, strlen(answer));
        modelapi_string_free(answer);
    }
    modelapi_close(api);
    const char *name = callback ? "modelapi-c-cb" : events ? "modelapi-c-event" : "modelapi-c";
    char poll_name[64];
    if (poll_mode != NO_POLL) {
        if (poll_mode == POLL_FD)
            snprintf(poll_name, sizeof poll_name, "modelapi-c-pollfd%s", time_polls ? "-timed" : "");
        else
            snprintf(poll_name, sizeof poll_name, "modelapi-c-poll%u%s", (unsigned)poll_wait_ms,
                     time_polls ? "-timed" : "");
        name = poll_name;
        int at = snprintf(result_extra, sizeof result_extra,
                          ",\"polls\":%llu,\"poll_pending\":%llu,\"fd_waits\":%llu",
                          (unsigned long long)polls, (unsigned long long)pendings,
                          (unsigned long long)fd_waits);
        if (time_polls)
            snprintf(result_extra + at, sizeof result_extra - (size_t)at,
                     ",\"poll_max_ns\":%llu,\"poll_max_ok_ns\":%llu,\"poll_max_pending_ns\":%llu,"
                     "\"poll_p50_ns\":%llu,\"poll_p99_ns\":%llu,\"poll_p999_ns\":%llu,"
                     "\"poll_p9999_ns\":%llu,\"poll_over_20us\":%llu,\"poll_over_100us\":%llu,"
                     "\"poll_over_1ms\":%llu,\"poll_over_2ms\":%llu,\"poll_slept\":%llu,"
                     "\"poll_preempted\":%llu,\"poll_max_slept_ns\":%llu,"
                     "\"poll_max_preempted_ns\":%llu,\"poll_max_clean_ns\":%llu,"
                     "\"poll_max_clean_at\":%llu,\"poll_faulted\":%llu,"
                     "\"poll_max_clean_faults\":%llu,\"poll_max_quiet_ns\":%llu",
                     (unsigned long long)max_ns, (unsigned long long)max_ok_ns,
                     (unsigned long long)max_pending_ns, (unsigned long long)quantile(0.5),
                     (unsigned long long)quantile(0.99), (unsigned long long)quantile(0.999),
                     (unsigned long long)quantile(0.9999), (unsigned long long)over_20us,
                     (unsigned long long)over_100us, (unsigned long long)over_1ms,
                     (unsigned long long)over_2ms, (unsigned long long)slept,
                     (unsigned long long)preempted, (unsigned long long)max_slept_ns,
                     (unsigned long long)max_preempted_ns, (unsigned long long)max_clean_ns,
                     (unsigned long long)max_clean_at, (unsigned long long)faulted,
                     (unsigned long long)max_clean_faults, (unsigned long long)max_quiet_ns);
    }
    print_result(name, &a, started, total_bytes, total_chunks, a.n);
    return 0;
}
