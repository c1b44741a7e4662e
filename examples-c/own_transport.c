/*
 * own_transport.c: the host carries the bytes. libcurl sends the request
 * the library built and feeds the answer back, piece by piece, as it
 * arrives; the library reads it (SSE, events, errors, the assembled
 * answer) exactly as it reads its own connections. An engine, a browser or
 * a console does the same with its own HTTP stack.
 *
 *   own_transport [question...]    (default: "Write a haiku about HTTP")
 *
 * 1. modelapi_stream_detached opens a stream that opens no connection: it
 *    holds the request (modelapi_stream_request_url, _header_count,
 *    _header, _body).
 * 2. libcurl's multi interface sends it (non-blocking: curl_multi_perform,
 *    then curl_multi_poll until the socket has something):
 *    - the header callback catches the final status and Content-Type
 *      (a 1xx interim answer is skipped);
 *    - the write callback feeds the head once (modelapi_stream_feed_head),
 *      then every piece of the body (modelapi_stream_feed), and reads the
 *      events those bytes completed with modelapi_stream_poll(stream, 0, ..)
 *      until MODELAPI_PENDING, printing the text as it arrives.
 * 3. Once the transfer is over: modelapi_stream_feed_end, and the rest of
 *    the events (an error answer, e.g. a 401, or a plain JSON answer is
 *    read whole at the end).
 * Timeouts, retries and redirects are the host's (here: curl's connect and
 * low-speed limits; no retry, no redirect).
 *
 * Talks to MODEL_API_URL / MODEL_NAME (MODEL_API_KEY if needed); the
 * request also carries a header of the client's own ("X-Example:
 * own_transport"). Without MODEL_API_URL it answers with a canned reply:
 * the stream answers at once and there is nothing to carry.
 * stdout: the answer, then a newline unless the answer ended with one.
 * stderr: the request, as
 *   request: POST <url> (<h> headers, <b> bytes of JSON)
 *   and at the end
 *   fed: <p> pieces, <n> bytes
 *   finish_reason: <reason>
 *   usage: <prompt> + <completion> = <total> tokens   (when the server sent it)
 *   Errors, as
 *   error: <STATUS_NAME> (<number>): <message>
 *   http status: <n>                (for MODELAPI_HTTP_ERROR only)
 *   error: curl: <curl's message>   (when the transfer failed)
 * Exit status: 0 on success, 1 on failure (after the text that arrived).
 *
 * Build: link with -lcurl (the Makefile does).
 */

#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common.h"

/* What the curl callbacks share with main. */
struct transfer {
    ModelApiStream *stream;  /* borrowed from main, which frees it */
    long status;             /* the last status line's code (0: none yet) */
    char content_type[256];  /* its Content-Type value ("" if none) */
    int head_fed;            /* modelapi_stream_feed_head was called */
    ModelApiStatus failed;   /* a read or feed failed: MODELAPI_OK if not */
    size_t pieces, bytes;    /* what was fed */
    size_t printed;          /* bytes of text printed */
    char last;               /* the last character printed */
};

/* Reads the events the stream has until it needs more bytes: prints the
   text, returns MODELAPI_PENDING (more bytes needed), MODELAPI_DONE (the
   end) or the error (modelapi_last_error() says more). */
static ModelApiStatus read_events(struct transfer *t)
{
    for (;;) {
        ModelApiEvent event;
        ModelApiStatus status = modelapi_stream_poll(t->stream, 0, &event);

        if (status != MODELAPI_OK) {
            return status; /* PENDING, DONE or an error */
        }
        /* event.text points into the stream: valid until its next read. */
        if (event.kind == MODELAPI_EVENT_CONTENT && event.len > 0) {
            fwrite(event.text, 1, event.len, stdout);
            fflush(stdout);
            t->printed += event.len;
            t->last = event.text[event.len - 1];
        }
    }
}

/* Feeds the head, once: the final status and its Content-Type. */
static ModelApiStatus feed_head(struct transfer *t)
{
    if (t->head_fed) {
        return MODELAPI_OK;
    }
    t->head_fed = 1;
    return modelapi_stream_feed_head(t->stream, (int)t->status,
                                     t->content_type[0] != '\0' ? t->content_type : NULL);
}

/* curl: one header line (not NUL-terminated, with its CRLF). A status line
   starts a new head: a 1xx interim answer's is followed by the final one,
   so only the last status and Content-Type count. */
static size_t on_header(char *line, size_t size, size_t count, void *user_data)
{
    struct transfer *t = (struct transfer *)user_data;
    size_t len = size * count;
    static const char name[] = "content-type:";
    size_t name_len = sizeof name - 1;

    if (t->head_fed) {
        return len; /* trailers after the body: nothing for the stream */
    }
    if (len > 5 && memcmp(line, "HTTP/", 5) == 0) {
        const char *space = memchr(line, ' ', len);

        t->status = space != NULL ? strtol(space + 1, NULL, 10) : 0;
        t->content_type[0] = '\0';
    } else if (len > name_len) {
        size_t i;
        int match = 1;

        for (i = 0; i < name_len; i++) {
            if (tolower((unsigned char)line[i]) != name[i]) {
                match = 0;
                break;
            }
        }
        if (match) {
            const char *value = line + name_len;
            size_t value_len = len - name_len;

            while (value_len > 0 && (*value == ' ' || *value == '\t')) {
                value++;
                value_len--;
            }
            while (value_len > 0 && isspace((unsigned char)value[value_len - 1])) {
                value_len--; /* the CRLF */
            }
            if (value_len >= sizeof t->content_type) {
                value_len = sizeof t->content_type - 1;
            }
            memcpy(t->content_type, value, value_len);
            t->content_type[value_len] = '\0';
        }
    }
    return len;
}

/* curl: a piece of the body (transfer framing and content encoding already
   removed by curl), valid during the call only: the stream copies it. */
static size_t on_body(char *bytes, size_t size, size_t count, void *user_data)
{
    struct transfer *t = (struct transfer *)user_data;
    size_t len = size * count;
    ModelApiStatus status;

    if (t->status < 200) {
        return len; /* the body of a 1xx answer: there is none */
    }
    status = feed_head(t);
    if (status == MODELAPI_OK) {
        status = modelapi_stream_feed(t->stream, bytes, len);
    }
    if (status == MODELAPI_OK) {
        t->pieces++;
        t->bytes += len;
        status = read_events(t);
    }
    if (status == MODELAPI_OK || status == MODELAPI_PENDING || status == MODELAPI_DONE) {
        return len;
    }
    /* The stream failed (e.g. an error event in the middle): keep the
       status (and report it now, while modelapi_last_error() is this
       one), and stop the transfer: returning less than len makes curl
       fail it with CURLE_WRITE_ERROR. */
    t->failed = status;
    if (t->printed > 0 && t->last != '\n') {
        putchar('\n');
        fflush(stdout);
    }
    print_error(status);
    return 0;
}

/* Sends the stream's request with curl's multi interface and feeds the
   answer to the stream. Returns 0 when the transfer went through (whatever
   the server answered), 1 when it failed before an answer's head came. */
static int carry(struct transfer *t)
{
    const char *url = modelapi_stream_request_url(t->stream);
    size_t count = modelapi_stream_request_header_count(t->stream);
    const char *body = NULL;
    size_t body_len = 0;
    struct curl_slist *headers = NULL; /* ours: curl_slist_free_all */
    CURL *easy = NULL;                 /* ours: curl_easy_cleanup */
    CURLM *multi = NULL;               /* ours: curl_multi_cleanup */
    CURLcode result = CURLE_FAILED_INIT;
    int running = 1;
    size_t i;
    int ok = 1;

    if (modelapi_stream_request_body(t->stream, &body, &body_len) != MODELAPI_OK) {
        print_error(MODELAPI_INVALID_ARGUMENT);
        return 1;
    }
    fprintf(stderr, "request: POST %s (%zu headers, %zu bytes of JSON)\n", url, count,
            body_len);

    /* The headers: "Name: value" lines, which curl_slist_append copies.
       The key is in them (Authorization): they go to this URL only. */
    for (i = 0; i < count && ok; i++) {
        const char *name, *value; /* the stream's strings */
        char *line;
        struct curl_slist *longer;

        ok = modelapi_stream_request_header(t->stream, i, &name, &value) == MODELAPI_OK;
        line = ok ? (char *)malloc(strlen(name) + strlen(value) + 3) : NULL;
        if (line == NULL) {
            ok = 0;
            break;
        }
        sprintf(line, "%s: %s", name, value);
        longer = curl_slist_append(headers, line);
        /* Wiping it is good manners: it may hold the key. */
        memset(line, 0, strlen(line));
        free(line);
        ok = longer != NULL;
        headers = ok ? longer : headers;
    }
    /* curl adds "Expect: 100-continue" to large POSTs: not needed here. */
    if (ok) {
        struct curl_slist *longer = curl_slist_append(headers, "Expect:");

        ok = longer != NULL;
        headers = ok ? longer : headers;
    }
    easy = ok ? curl_easy_init() : NULL;
    multi = easy != NULL ? curl_multi_init() : NULL;
    if (multi == NULL) {
        fputs("error: curl: cannot set the transfer up\n", stderr);
        curl_easy_cleanup(easy);
        curl_slist_free_all(headers);
        return 1;
    }

    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    /* The body belongs to the stream, which outlives the transfer: curl
       may point at it without copying. */
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
    /* The host's timeouts: 10 s to connect; a stream that sends nothing
       for 60 s is dropped. No redirects (curl's default). */
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_multi_add_handle(multi, easy);

    /* The host's loop: curl moves the bytes when its socket is ready (a
       game would do this once a frame, with no wait); the callbacks feed
       the stream and print what it has. Ends when curl is done (curl's
       timeouts bound it). */
    while (running) {
        CURLMcode code = curl_multi_perform(multi, &running);

        if (code == CURLM_OK && running) {
            code = curl_multi_poll(multi, NULL, 0, 1000, NULL);
        }
        if (code != CURLM_OK) {
            fprintf(stderr, "error: curl: %s\n", curl_multi_strerror(code));
            break;
        }
    }
    {
        int left;
        CURLMsg *message;

        while ((message = curl_multi_info_read(multi, &left)) != NULL) {
            if (message->msg == CURLMSG_DONE) {
                result = message->data.result;
            }
        }
    }
    curl_multi_remove_handle(multi, easy);
    curl_easy_cleanup(easy);
    curl_multi_cleanup(multi);
    curl_slist_free_all(headers); /* after the transfer, which used it */

    if (result != CURLE_OK && t->failed == MODELAPI_OK) {
        /* The transfer failed: before an answer came (nothing to feed), or
           in the middle of the body (the stream just ends: it reports the
           truncation). */
        fprintf(stderr, "error: curl: %s\n", curl_easy_strerror(result));
    }
    if (!t->head_fed && t->status >= 200 && t->failed == MODELAPI_OK &&
        (result == CURLE_OK)) {
        /* An answer with an empty body: its head still counts. */
        ModelApiStatus status = feed_head(t);

        if (status != MODELAPI_OK) {
            print_error(status);
            t->failed = status;
        }
    }
    return t->head_fed ? 0 : 1;
}

int main(int argc, char **argv)
{
    ModelApi *api;
    ModelApiStream *stream = NULL; /* ours: modelapi_stream_free */
    struct transfer t;
    ModelApiStatus status;
    char *question, *messages, *request;
    uint64_t prompt, completion, total;
    const char *reason;
    int exit_code = 0;

    memset(&t, 0, sizeof t);
    t.failed = MODELAPI_OK;
    question = join_args(argc - 1, argv + 1, "Write a haiku about HTTP");
    messages = question != NULL ? user_message_json(question) : NULL;
    request = messages != NULL ? (char *)malloc(strlen(messages) + 80) : NULL;
    if (request == NULL) {
        fputs("error: out of memory\n", stderr);
        free(messages);
        free(question);
        return 1;
    }
    /* A request object: the messages, and the usage at the end. */
    sprintf(request, "{\"messages\":%s,\"stream_options\":{\"include_usage\":true}}", messages);

    api = example_client("[\"Bytes in someone's hands\\nthe library reads them all\\n"
                         "the host moves the wire\"]");
    if (api == NULL || modelapi_set_header(api, "X-Example", "own_transport") != MODELAPI_OK) {
        if (api != NULL) {
            print_error(MODELAPI_INVALID_ARGUMENT);
        }
        modelapi_close(api);
        free(request);
        free(messages);
        free(question);
        return 1;
    }

    /* No connection: the stream holds the request, for us to send. */
    status = modelapi_stream_detached(api, request, NULL, &stream);
    free(request);
    free(messages);
    free(question);
    if (status != MODELAPI_OK) {
        print_error(status);
        modelapi_close(api);
        return 1;
    }
    /* The stream does not borrow the client. */
    modelapi_close(api);
    t.stream = stream;

    /* A stream that answers before anything is fed (canned replies) has
       nothing to carry. A real one is PENDING: it needs the answer. */
    status = read_events(&t);
    if (status == MODELAPI_PENDING) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            fputs("error: curl: cannot initialise\n", stderr);
            modelapi_stream_free(stream);
            return 1;
        }
        if (carry(&t) != 0) {
            exit_code = 1; /* no answer came (reported by carry) */
        } else if (t.failed == MODELAPI_OK) {
            /* The end of the body: the stream reads what is left (the
               whole answer of an error or a JSON reply, or reports a
               stream cut short). */
            status = modelapi_stream_feed_end(stream);
            if (status == MODELAPI_OK) {
                status = read_events(&t);
            }
        }
        curl_global_cleanup();
    } else {
        fputs("(canned replies: the stream answered at once; there is nothing to carry)\n",
              stderr);
    }

    if (exit_code == 0 && t.failed == MODELAPI_OK && status != MODELAPI_DONE) {
        /* After the end, a read needing more bytes means a stream cut
           short; the library says so as an error, as here. */
        if (t.printed > 0 && t.last != '\n') {
            putchar('\n');
            t.last = '\n';
        }
        fflush(stdout);
        print_error(status);
        exit_code = 1;
    }
    if (t.failed != MODELAPI_OK) {
        exit_code = 1;
    }
    if (exit_code == 0) {
        if (t.printed == 0 || t.last != '\n') {
            putchar('\n');
        }
        fflush(stdout);
        fprintf(stderr, "fed: %zu pieces, %zu bytes\n", t.pieces, t.bytes);
        reason = modelapi_stream_finish_reason(stream); /* the stream's */
        fprintf(stderr, "finish_reason: %s\n", reason != NULL ? reason : "(none)");
        if (modelapi_stream_usage(stream, &prompt, &completion, &total)) {
            fprintf(stderr, "usage: %llu + %llu = %llu tokens\n", (unsigned long long)prompt,
                    (unsigned long long)completion, (unsigned long long)total);
        }
    }
    modelapi_stream_free(stream);
    return exit_code;
}
