/* Shared bits of the benchmark's C clients: arguments, timing, the result
 * line. Usage of every C client:
 *   CLIENT complete BASE_URL N | stream BASE_URL CHUNKS
 *        | streams BASE_URL N CHUNKS | once BASE_URL
 *        | tools BASE_URL PIECES [ANSWER_FILE] | idle BASE_URL POLLS
 * (tools: one stream of a tool call in PIECES argument pieces, from a
 * `bench-server --tools`; the assembled answer's JSON goes to ANSWER_FILE,
 * written after the measured part, for the runner to check.
 * idle: modelapi's poll mode only: POLLS polls of a stream that has
 * nothing to give, as `bench-server` pauses after its first content chunk.)
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROMPT "Write a long story about a benchmark, one token at a time."

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this process (user + system), immune to other processes
 * taking turns on the CPU. */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The measured part: the request loop (wall and CPU time). */
static double loop_t0, loop_t1, loop_c0, loop_c1;
static void loop_start(void) {
    loop_t0 = now_seconds();
    loop_c0 = cpu_seconds();
}
static void loop_stop(void) {
    loop_c1 = cpu_seconds();
    loop_t1 = now_seconds();
}

static void die(const char *what, const char *detail) {
    fprintf(stderr, "error: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

typedef struct {
    const char *scenario;
    const char *base; /* e.g. http://127.0.0.1:8000 */
    uint64_t n;       /* requests */
    uint64_t chunks;  /* chunks per stream (streams); argument pieces (tools) */
    const char *answer_file; /* tools: where the assembled answer goes, or NULL */
    uint64_t polls;   /* idle: how many polls to time */
} bench_args;

static uint64_t parse_count(const char *s) {
    char *end = NULL;
    unsigned long long v = strtoull(s ? s : "", &end, 10);
    if (!s || *end) die("not a number", s);
    return (uint64_t)v;
}

static bench_args parse_args(int argc, char **argv) {
    bench_args a = {0};
    if (argc < 3) die("usage: complete|stream|streams|once|tools BASE_URL [N] [CHUNKS]", NULL);
    a.scenario = argv[1];
    a.base = argv[2];
    if (!strcmp(a.scenario, "complete")) {
        if (argc != 4) die("complete BASE_URL N", NULL);
        a.n = parse_count(argv[3]);
    } else if (!strcmp(a.scenario, "stream")) {
        if (argc != 4) die("stream BASE_URL CHUNKS", NULL);
        a.n = 1;
        a.chunks = parse_count(argv[3]);
    } else if (!strcmp(a.scenario, "streams")) {
        if (argc != 5) die("streams BASE_URL N CHUNKS", NULL);
        a.n = parse_count(argv[3]);
        a.chunks = parse_count(argv[4]);
    } else if (!strcmp(a.scenario, "tools")) {
        if (argc != 4 && argc != 5) die("tools BASE_URL PIECES [ANSWER_FILE]", NULL);
        a.n = 1;
        a.chunks = parse_count(argv[3]);
        a.answer_file = argc == 5 ? argv[4] : NULL;
    } else if (!strcmp(a.scenario, "idle")) {
        if (argc != 4) die("idle BASE_URL POLLS", NULL);
        a.n = 1;
        a.chunks = 1;
        a.polls = parse_count(argv[3]);
    } else if (!strcmp(a.scenario, "once")) {
        a.n = 1;
    } else {
        die("unknown scenario", a.scenario);
    }
    return a;
}

static int is_tools(const bench_args *a) {
    return !strcmp(a->scenario, "tools");
}

/* A streamed request (tools included). */
static int is_stream(const bench_args *a) {
    return !strcmp(a->scenario, "stream") || !strcmp(a->scenario, "streams") || is_tools(a)
           || !strcmp(a->scenario, "idle");
}

/* The peak resident set of this program (VmHWM), in KiB. Unlike the
 * ru_maxrss a parent gets from wait4, it does not count the memory of the
 * process before exec (the forked runner). */
static long peak_rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kib = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kib;
}

/* tools: the peak RSS once the answer is assembled, taken before the
 * answer is written out for the check; 0 until then. */
static long answer_rss_kib;

/* tools: writes the assembled answer's JSON to a->answer_file, if any. */
static inline void write_answer(const bench_args *a, const char *json, size_t len) {
    if (!a->answer_file) return;
    FILE *f = fopen(a->answer_file, "wb");
    if (!f) die("cannot open", a->answer_file);
    if (fwrite(json, 1, len, f) != len || fclose(f) != 0) die("cannot write", a->answer_file);
}

/* More fields for the result line (",\"key\":value..."), or "". */
static char result_extra[2048];

static void print_result(const char *client, const bench_args *a, double started,
                         uint64_t bytes, uint64_t chunks, uint64_t requests) {
    long rss = answer_rss_kib ? answer_rss_kib : peak_rss_kib();
    printf("{\"client\":\"%s\",\"scenario\":\"%s\",\"seconds\":%.9f,\"cpu_seconds\":%.9f,"
           "\"with_setup_seconds\":%.9f,\"content_bytes\":%llu,\"chunks\":%llu,"
           "\"requests\":%llu,\"peak_rss_kib\":%ld%s}\n",
           client, a->scenario, loop_t1 - loop_t0, loop_c1 - loop_c0, now_seconds() - started,
           (unsigned long long)bytes, (unsigned long long)chunks, (unsigned long long)requests,
           rss, result_extra);
}

#endif
