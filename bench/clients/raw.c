/* The floor: hand-written HTTP/1.1 on one kept-alive socket, chunked
 * decoding, and per SSE event a byte scan for "content":" (no JSON parsing).
 * Nothing a real client could skip is skipped: every byte is read, every
 * event's content is located, and the response is read to its end so the
 * connection can carry the next request. */
#include "common.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_CAP (64 * 1024)

static int fd = -1;
static char host[256], port[16];
static char in[IN_CAP];
static size_t in_start, in_end;

static void parse_base(const char *base) {
    const char *p = strstr(base, "://");
    p = p ? p + 3 : base;
    const char *colon = strchr(p, ':');
    const char *slash = strchr(p, '/');
    if (!colon || (slash && slash < colon)) die("BASE_URL needs host:port", base);
    snprintf(host, sizeof host, "%.*s", (int)(colon - p), p);
    size_t plen = slash ? (size_t)(slash - colon - 1) : strlen(colon + 1);
    snprintf(port, sizeof port, "%.*s", (int)plen, colon + 1);
}

static void connect_once(void) {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res) die("getaddrinfo", host);
    fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) die("connect", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    freeaddrinfo(res);
    in_start = in_end = 0;
}

static void send_request(int stream, uint64_t chunks) {
    char body[512], req[1024];
    int blen;
    if (stream)
        blen = snprintf(body, sizeof body,
                        "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\""
                        PROMPT "\"}],\"stream\":true,\"max_tokens\":%llu}",
                        (unsigned long long)chunks);
    else
        blen = snprintf(body, sizeof body,
                        "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\""
                        PROMPT "\"}],\"stream\":false}");
    int len = snprintf(req, sizeof req,
                       "POST /v1/chat/completions HTTP/1.1\r\nHost: %s:%s\r\n"
                       "Content-Type: application/json\r\nAccept: %s\r\n"
                       "Content-Length: %d\r\n\r\n%s",
                       host, port, stream ? "text/event-stream" : "application/json", blen, body);
    for (int off = 0; off < len;) {
        ssize_t w = send(fd, req + off, (size_t)(len - off), 0);
        if (w <= 0) die("send", strerror(errno));
        off += (int)w;
    }
}

/* Reads more bytes into in[]; dies at EOF. */
static void fill(void) {
    if (in_start == in_end) in_start = in_end = 0;
    if (in_end == IN_CAP) {
        if (in_start == 0) die("buffer full", NULL);
        memmove(in, in + in_start, in_end - in_start);
        in_end -= in_start;
        in_start = 0;
    }
    ssize_t r = recv(fd, in + in_end, IN_CAP - in_end, 0);
    if (r <= 0) die("recv", r == 0 ? "connection closed" : strerror(errno));
    in_end += (size_t)r;
}

/* Reads the response head; returns the Content-Length, or -1 if chunked. */
static long read_head(void) {
    char *end;
    while (!(end = memmem(in + in_start, in_end - in_start, "\r\n\r\n", 4))) fill();
    size_t head_len = (size_t)(end + 4 - (in + in_start));
    char head[4096];
    if (head_len >= sizeof head) die("head too long", NULL);
    memcpy(head, in + in_start, head_len);
    head[head_len] = 0;
    in_start += head_len;
    if (strncmp(head, "HTTP/1.1 200", 12) != 0) die("status", head);
    if (strcasestr(head, "\ntransfer-encoding: chunked")) return -1;
    char *cl = strcasestr(head, "\ncontent-length:");
    if (!cl) die("no length", head);
    return strtol(cl + 16, NULL, 10);
}

/* The length of the JSON string value after "content":" at p (escapes
 * skipped over), or 0 when there is none before lim. */
static size_t content_len(const char *p, const char *lim) {
    const char *k = memmem(p, (size_t)(lim - p), "\"content\":\"", 11);
    if (!k) return 0;
    const char *s = k + 11, *q = s;
    while (q < lim && *q != '"') q += (*q == '\\') ? 2 : 1;
    return (size_t)(q - s);
}

static uint64_t total_bytes, total_chunks;

static void complete_once(void) {
    send_request(0, 0);
    long len = read_head();
    if (len < 0) die("chunked completion", NULL);
    while (in_end - in_start < (size_t)len) fill();
    size_t n = content_len(in + in_start, in + in_start + len);
    if (!n) die("no content", NULL);
    total_bytes += n;
    in_start += (size_t)len;
}

/* The decoded (de-chunked) body, consumed line by line. */
static char body[128 * 1024];
static size_t body_start, body_end;

/* Handles the complete lines in body[]; returns 1 after data: [DONE]. */
static int scan_lines(void) {
    int done = 0;
    for (;;) {
        char *p = body + body_start;
        char *nl = memchr(p, '\n', body_end - body_start);
        if (!nl) break;
        if (nl - p >= 6 && !memcmp(p, "data: ", 6)) {
            if (nl - p >= 12 && !memcmp(p + 6, "[DONE]", 6)) {
                done = 1;
            } else {
                size_t n = content_len(p + 6, nl);
                if (n) {
                    total_bytes += n;
                    total_chunks++;
                }
            }
        }
        body_start = (size_t)(nl + 1 - body);
    }
    if (body_start == body_end) body_start = body_end = 0;
    else if (body_start > sizeof body / 2) {
        memmove(body, body + body_start, body_end - body_start);
        body_end -= body_start;
        body_start = 0;
    }
    return done;
}

static void stream_once(uint64_t chunks) {
    send_request(1, chunks);
    if (read_head() >= 0) die("stream not chunked", NULL);
    int done = 0;
    for (;;) {
        /* A chunk-size line. */
        char *crlf;
        while (!(crlf = memmem(in + in_start, in_end - in_start, "\r\n", 2))) fill();
        size_t size = strtoul(in + in_start, NULL, 16);
        in_start = (size_t)(crlf + 2 - in);
        if (size == 0) {
            while (in_end - in_start < 2) fill();
            if (memcmp(in + in_start, "\r\n", 2)) die("trailers", NULL);
            in_start += 2;
            break;
        }
        /* Its payload, in as many pieces as it arrives. */
        while (size > 0) {
            if (in_start == in_end) fill();
            size_t take = in_end - in_start;
            if (take > size) take = size;
            if (take > sizeof body - body_end) take = sizeof body - body_end;
            memcpy(body + body_end, in + in_start, take);
            body_end += take;
            in_start += take;
            size -= take;
            done |= scan_lines();
        }
        while (in_end - in_start < 2) fill();
        in_start += 2;
    }
    if (!done) die("no [DONE]", NULL);
    if (body_start != body_end) die("partial line at the end", NULL);
}

int main(int argc, char **argv) {
    double started = now_seconds();
    bench_args a = parse_args(argc, argv);
    if (is_tools(&a)) die("raw-c has no tools scenario", NULL);
    parse_base(a.base);
    loop_start();
    connect_once();
    for (uint64_t i = 0; i < a.n; i++) {
        if (is_stream(&a)) stream_once(a.chunks);
        else complete_once();
    }
    loop_stop();
    close(fd);
    print_result("raw-c", &a, started, total_bytes, total_chunks, a.n);
    return 0;
}
