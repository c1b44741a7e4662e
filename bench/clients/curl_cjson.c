/* libcurl + cJSON, as a careful C programmer would write it: one reused
 * easy handle (keep-alive), a CURLOPT_WRITEFUNCTION with an incremental
 * SSE line splitter, cJSON_Parse of every event's data and
 * choices[0].delta.content taken from it; a completion's body is parsed
 * with cJSON and choices[0].message.content taken.
 *
 * tools: every event parsed with cJSON, each choices[0].delta.tool_calls[]
 * piece appended to a growing buffer per tool index (its id and name kept
 * from the first piece that has them), and at the end the whole answer
 * built as a chat.completion cJSON object and printed (cJSON_PrintUnformatted;
 * the arguments buffer referenced, not copied). */
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

/* tools: the calls by index, and the answer's metadata. */
typedef struct {
    buf args;
    char *id, *name;
    int seen;
} tool_call;
static int tools_mode;
static tool_call *calls;
static size_t ncalls;
static char *answer_id, *answer_model, *finish_reason;
static double answer_created;

static char *dup_string(const char *s) {
    char *d = strdup(s);
    if (!d) die("out of memory", NULL);
    return d;
}

/* tools: one parsed event's choice 0: its tool-call pieces appended. */
static void tool_pieces(cJSON *root) {
    if (!answer_id) {
        cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
        cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
        cJSON *created = cJSON_GetObjectItemCaseSensitive(root, "created");
        if (cJSON_IsString(id)) answer_id = dup_string(id->valuestring);
        if (cJSON_IsString(model)) answer_model = dup_string(model->valuestring);
        if (cJSON_IsNumber(created)) answer_created = created->valuedouble;
    }
    cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    cJSON *finish = cJSON_GetObjectItemCaseSensitive(choice, "finish_reason");
    if (cJSON_IsString(finish)) {
        free(finish_reason);
        finish_reason = dup_string(finish->valuestring);
    }
    cJSON *delta = cJSON_GetObjectItemCaseSensitive(choice, "delta");
    cJSON *tool_calls = cJSON_GetObjectItemCaseSensitive(delta, "tool_calls");
    cJSON *piece;
    size_t position = 0;
    cJSON_ArrayForEach(piece, tool_calls) {
        cJSON *index = cJSON_GetObjectItemCaseSensitive(piece, "index");
        size_t i = cJSON_IsNumber(index) && index->valuedouble >= 0 ? (size_t)index->valuedouble
                                                                     : position;
        position++;
        if (i > 1024) die("tool call index too large", NULL);
        if (i >= ncalls) {
            calls = realloc(calls, (i + 1) * sizeof *calls);
            if (!calls) die("out of memory", NULL);
            memset(calls + ncalls, 0, (i + 1 - ncalls) * sizeof *calls);
            ncalls = i + 1;
        }
        tool_call *call = &calls[i];
        cJSON *id = cJSON_GetObjectItemCaseSensitive(piece, "id");
        cJSON *function = cJSON_GetObjectItemCaseSensitive(piece, "function");
        cJSON *name = cJSON_GetObjectItemCaseSensitive(function, "name");
        cJSON *arguments = cJSON_GetObjectItemCaseSensitive(function, "arguments");
        int has_id = cJSON_IsString(id) && id->valuestring[0];
        int has_name = cJSON_IsString(name) && name->valuestring[0];
        size_t len = cJSON_IsString(arguments) ? strlen(arguments->valuestring) : 0;
        if (has_id && !call->id) call->id = dup_string(id->valuestring);
        if (has_name && !call->name) call->name = dup_string(name->valuestring);
        call->seen = 1;
        if (len) buf_add(&call->args, arguments->valuestring, len);
        if (len || has_id || has_name) { /* an event, as modelapi counts them */
            total_bytes += len;
            total_chunks++;
        }
    }
}

/* tools: the answer, as chat.completion JSON (to be freed with cJSON_free). */
static char *tools_answer(void) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", answer_id ? answer_id : "");
    cJSON_AddStringToObject(root, "object", "chat.completion");
    cJSON_AddNumberToObject(root, "created", answer_created);
    cJSON_AddStringToObject(root, "model", answer_model ? answer_model : "");
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddNumberToObject(choice, "index", 0);
    cJSON *message = cJSON_AddObjectToObject(choice, "message");
    cJSON_AddStringToObject(message, "role", "assistant");
    cJSON_AddNullToObject(message, "content");
    cJSON *list = cJSON_AddArrayToObject(message, "tool_calls");
    for (size_t i = 0; i < ncalls; i++) {
        if (!calls[i].seen) continue;
        cJSON *call = cJSON_CreateObject();
        cJSON_AddStringToObject(call, "id", calls[i].id ? calls[i].id : "");
        cJSON_AddStringToObject(call, "type", "function");
        cJSON *function = cJSON_AddObjectToObject(call, "function");
        cJSON_AddStringToObject(function, "name", calls[i].name ? calls[i].name : "");
        cJSON_AddItemToObject(function, "arguments",
                              cJSON_CreateStringReference(calls[i].args.p ? calls[i].args.p : ""));
        cJSON_AddItemToArray(list, call);
    }
    if (finish_reason) cJSON_AddStringToObject(choice, "finish_reason", finish_reason);
    else cJSON_AddNullToObject(choice, "finish_reason");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON_AddItemToArray(choices, choice);
    char *json = cJSON_PrintUnformatted(root);
    if (!json) die("cJSON_PrintUnformatted", NULL);
    cJSON_Delete(root);
    return json;
}

/* One event's data: parse it, take choices[0].delta.content. */
static void dispatch(void) {
    if (data.len == 0) return;
    if (!strcmp(data.p, "[DONE]")) {
        saw_done = 1;
    } else {
        cJSON *root = cJSON_ParseWithLength(data.p, data.len);
        if (!root) die("bad event JSON", data.p);
        if (tools_mode) {
            tool_pieces(root);
            cJSON_Delete(root);
            data.len = 0;
            return;
        }
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
    tools_mode = is_tools(&a);
    char *answer = NULL;
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
            if (tools_mode) {
                if (answer) cJSON_free(answer);
                answer = tools_answer();
            }
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
    if (answer) {
        answer_rss_kib = peak_rss_kib();
        write_answer(&a, answer, strlen(answer));
        cJSON_free(answer);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    print_result("curl-cjson", &a, started, total_bytes, total_chunks, a.n);
    return 0;
}
