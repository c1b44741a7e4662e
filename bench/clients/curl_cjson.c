/* libcurl + cJSON, as a careful C programmer would write it: one reused
 * easy handle (keep-alive), a CURLOPT_WRITEFUNCTION with an incremental
 * SSE line splitter, cJSON_Parse of every event's data and
 * choices[0].delta.content taken from it; a completion's body is parsed
 * with cJSON and choices[0].message.content taken. */
#include "common.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>

static uint64_t total_bytes, total_chunks;
static int saw_done;

/* Growable byte buffer. */
typedef struct {
    char *p;
    size_t len, cap;
} buf;

static void buf_add(buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) die("out of memory", NULL);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static buf line, data, response;

/* One event's data: parse it, take choices[0].delta.content. */
static void dispatch(void) {
    if (data.len == 0) return;
    if (!strcmp(data.p, "[DONE]")) {
        saw_done = 1;
    } else {
        cJSON *root = cJSON_ParseWithLength(data.p, data.len);
        if (!root) die("bad event JSON", data.p);
        cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
        cJSON *choice = cJSON_GetArrayItem(choices, 0);
        cJSON *delta = cJSON_GetObjectItemCaseSensitive(choice, "delta");
        cJSON *content = cJSON_GetObjectItemCaseSensitive(delta, "content");
        if (cJSON_IsString(content) && content->valuestring[0]) {
            total_bytes += strlen(content->valuestring);
            total_chunks++;
        }
        cJSON_Delete(root);
    }
    data.len = 0;
}

/* One SSE line (without its newline). */
static void sse_line(const char *s, size_t n) {
    if (n && s[n - 1] == '\r') n--;
    if (n == 0) {
        dispatch();
    } else if (n >= 5 && !memcmp(s, "data:", 5)) {
        s += 5;
        n -= 5;
        if (n && *s == ' ') s++, n--;
        if (data.len) buf_add(&data, "\n", 1);
        buf_add(&data, s, n);
    } /* comments, event:, id:, retry: ignored */
}

static size_t on_stream_data(char *ptr, size_t size, size_t nmemb, void *user) {
    (void)user;
    size_t n = size * nmemb;
    const char *p = ptr, *end = ptr + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            buf_add(&line, p, (size_t)(end - p));
            break;
        }
        if (line.len) {
            buf_add(&line, p, (size_t)(nl - p));
            sse_line(line.p, line.len);
            line.len = 0;
        } else {
            sse_line(p, (size_t)(nl - p));
        }
        p = nl + 1;
    }
    return n;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *user) {
    (void)user;
    buf_add(&response, ptr, size * nmemb);
    return size * nmemb;
}

int main(int argc, char **argv) {
    double started = now_seconds();
    bench_args a = parse_args(argc, argv);
    char url[512];
    snprintf(url, sizeof url, "%s/v1/chat/completions", a.base);
    char stream_body[512], complete_body[512];
    snprintf(stream_body, sizeof stream_body,
             "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"" PROMPT
             "\"}],\"stream\":true,\"max_tokens\":%llu}",
             (unsigned long long)a.chunks);
    snprintf(complete_body, sizeof complete_body,
             "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"" PROMPT
             "\"}],\"stream\":false}");

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *h = curl_easy_init();
    if (!h) die("curl_easy_init", NULL);
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers,
                                is_stream(&a) ? "Accept: text/event-stream" : "Accept: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, is_stream(&a) ? stream_body : complete_body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, is_stream(&a) ? on_stream_data : on_body);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);

    loop_start();

    for (uint64_t i = 0; i < a.n; i++) {
        saw_done = 0;
        response.len = 0;
        CURLcode rc = curl_easy_perform(h);
        if (rc != CURLE_OK) die("curl_easy_perform", curl_easy_strerror(rc));
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200) die("status not 200", NULL);
        if (is_stream(&a)) {
            if (line.len) sse_line(line.p, line.len), line.len = 0;
            dispatch();
            if (!saw_done) die("no [DONE]", NULL);
        } else {
            cJSON *root = cJSON_ParseWithLength(response.p, response.len);
            if (!root) die("bad completion JSON", response.p);
            cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
            cJSON *message = cJSON_GetObjectItemCaseSensitive(choice, "message");
            cJSON *content = cJSON_GetObjectItemCaseSensitive(message, "content");
            if (!cJSON_IsString(content)) die("no content", NULL);
            total_bytes += strlen(content->valuestring);
            cJSON_Delete(root);
        }
    }
    loop_stop();
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    print_result("curl-cjson", &a, started, total_bytes, total_chunks, a.n);
    return 0;
}
