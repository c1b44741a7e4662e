/*
 * request_test.c: the request builder (ModelApiRequest), embeddings
 * (ModelApiEmbeddings) and the model list (ModelApiModels), checked from C.
 *
 *   request_test <base_url>
 *
 * base_url is the local test server of tests/c_examples.rs (see
 * c_api_test.c): besides its chat models, it answers
 *   POST /v1/embeddings  one vector [length, first byte, 1] per input; HTTP
 *                        401 for the model "unauthorized"
 *   GET  /v1/models      {"data": [{"id": "ok"}, {"id": "agent"}, ...]}; HTTP
 *                        401 when the request carries an API key
 *
 * Output (stdout), TAP-like, one line per check:
 *   ok <n> - <description>
 *   not ok <n> - <description>: <details>
 * and last, alone on its line:
 *   <passed> passed, <failed> failed
 * Exit status: 0 when every check passed, 1 otherwise, 2 on bad usage.
 *
 * Everything is freed, so valgrind --leak-check=full reports no leaks.
 */

#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static int tests_run;
static int tests_passed;
static int tests_failed;

/* Reports one check; details (printf format) only when it failed. */
static int check(int ok, const char *description, const char *details, ...)
{
    tests_run++;
    if (ok) {
        tests_passed++;
        printf("ok %d - %s\n", tests_run, description);
    } else {
        va_list args;

        tests_failed++;
        printf("not ok %d - %s: ", tests_run, description);
        va_start(args, details);
        vprintf(details, args);
        va_end(args);
        printf("\n");
    }
    fflush(stdout);
    return ok;
}

static int contains(const char *haystack, const char *needle)
{
    return haystack != NULL && strstr(haystack, needle) != NULL;
}

static const char *str(const char *s)
{
    return s ? s : "(null)";
}

/* Not NULL, and surely not a pointer of the library: out pointers start as
   this, to see that the library sets them (to NULL on failure). */
#define GARBAGE ((void *)1)

static const char *base_url;

/* The request's JSON (to be freed), or NULL after a failed check. */
static char *json_of(const ModelApiRequest *request)
{
    char *json = NULL;
    ModelApiStatus status = modelapi_request_json(request, &json);

    if (!check(status == MODELAPI_OK && json != NULL, "modelapi_request_json gives the JSON",
               "status %d: %s", status, modelapi_last_error())) {
        return NULL;
    }
    return json;
}

/* A failing call: the status, and the message naming what. */
static void fails(ModelApiStatus status, const char *description, const char *named)
{
    check(status == MODELAPI_INVALID_ARGUMENT && contains(modelapi_last_error(), named),
          description, "status %d, last_error \"%s\" (wanted one naming %s)", status,
          modelapi_last_error(), named);
}

/* ---- the builder -------------------------------------------------------- */

static void builder_checks(void)
{
    static const unsigned char PNG[] = { 0x89, 'P', 'N', 'G' };
    ModelApiRequest *request = modelapi_request_new();
    char *before;
    char *after;
    char *json;

    if (!check(request != NULL, "modelapi_request_new makes a request", "%s",
               modelapi_last_error())) {
        return;
    }
    json = json_of(request);
    check(json != NULL && strcmp(json, "{\"messages\":[]}") == 0,
          "an empty request is {\"messages\":[]}", "%s", str(json));
    modelapi_string_free(json);

    /* Every string is escaped by the library. */
    check(modelapi_request_add_message(request, "system",
                                       "Say \"hi\"\n\tback\\slash \x01 Z\xc3\xbc" "rich") ==
              MODELAPI_OK,
          "add_message takes any text", "%s", modelapi_last_error());
    check(modelapi_request_add_message(request, "user", "What is on this picture?") ==
              MODELAPI_OK &&
              modelapi_request_add_image_data(request, PNG, sizeof PNG, "image/png") ==
                  MODELAPI_OK &&
              modelapi_request_add_image_url(request, "https://example.test/cat.jpg") ==
                  MODELAPI_OK,
          "an image from bytes and one by URL go on the user message", "%s",
          modelapi_last_error());
    check(modelapi_request_add_tool_result(request, "call_\"1\"", "{\"temp\": 21}") ==
              MODELAPI_OK,
          "add_tool_result", "%s", modelapi_last_error());
    check(modelapi_request_set_number(request, "temperature", 0.25) == MODELAPI_OK &&
              modelapi_request_set_int(request, "max_tokens", 12) == MODELAPI_OK &&
              modelapi_request_set_bool(request, "logprobs", 1) == MODELAPI_OK &&
              modelapi_request_set_string(request, "tool_choice", "auto") == MODELAPI_OK &&
              modelapi_request_set_json(request, "response_format",
                                        "{\"type\": \"json_object\"}") == MODELAPI_OK,
          "parameters of every kind are set", "%s", modelapi_last_error());
    json = json_of(request);
    check(contains(json, "{\"content\":\"Say \\\"hi\\\"\\n\\tback\\\\slash \\u0001 Z\xc3\xbc"
                         "rich\",\"role\":\"system\"}"),
          "the text is escaped (quotes, newline, tab, backslash, control), UTF-8 kept", "%s",
          str(json));
    check(contains(json, "{\"content\":[{\"text\":\"What is on this picture?\",\"type\":\"text\"},"
                         "{\"image_url\":{\"url\":\"data:image/png;base64,iVBORw==\"},"
                         "\"type\":\"image_url\"},{\"image_url\":{\"url\":"
                         "\"https://example.test/cat.jpg\"},\"type\":\"image_url\"}],"
                         "\"role\":\"user\"}"),
          "the user message has its text and the two images as content parts", "%s",
          str(json));
    check(contains(json, "{\"content\":\"{\\\"temp\\\": 21}\",\"role\":\"tool\","
                         "\"tool_call_id\":\"call_\\\"1\\\"\"}"),
          "the tool result carries its call's id", "%s", str(json));
    check(contains(json, "\"temperature\":0.25") && contains(json, "\"max_tokens\":12") &&
              contains(json, "\"logprobs\":true") && contains(json, "\"tool_choice\":\"auto\"") &&
              contains(json, "\"response_format\":{\"type\":\"json_object\"}"),
          "the parameters are in the JSON", "%s", str(json));
    modelapi_string_free(json);

    /* Failures name the field and leave the request as it was. */
    before = json_of(request);
    fails(modelapi_request_add_message(request, "\xff", "x"), "invalid UTF-8 in role", "role");
    fails(modelapi_request_add_message(request, "user", "\xc3"), "invalid UTF-8 in text",
          "text");
    fails(modelapi_request_add_message(request, NULL, "x"), "NULL role", "role is NULL");
    fails(modelapi_request_set_json(request, "tools", "[{\"type\":"), "bad raw JSON", "tools");
    fails(modelapi_request_set_string(request, "model", "\xfe"), "invalid UTF-8 in a value",
          "value");
    fails(modelapi_request_set_number(request, "temperature", NAN), "NaN", "finite");
    fails(modelapi_request_set_int(request, "stream", 1), "stream cannot be set", "stream");
    fails(modelapi_request_set_json(request, "messages", "[]"), "messages cannot be set",
          "messages");
    fails(modelapi_request_add_image_url(request, "https://x.test/a.png"),
          "an image after a tool message", "user message");
    fails(modelapi_request_add_image_data(request, NULL, 3, "image/png"), "NULL bytes",
          "bytes");
    after = json_of(request);
    check(before != NULL && after != NULL && strcmp(before, after) == 0,
          "failed calls change nothing", "before %s, after %s", str(before), str(after));
    modelapi_string_free(before);
    modelapi_string_free(after);

    modelapi_request_add_message(request, "user", "and this?");
    before = json_of(request);
    fails(modelapi_request_add_image_data(request, PNG, sizeof PNG, "png"), "a bad MIME type",
          "mime_type");
    fails(modelapi_request_add_message_json(request, "{\"content\": \"no role\"}"),
          "a message without a role", "role");
    fails(modelapi_request_add_message_json(request, "{"), "bad message JSON", "message_json");
    fails(modelapi_request_add_assistant_json(request, "{\"no\": \"choices\"}", 0),
          "add_assistant_json of something else", "completion_json");
    fails(modelapi_request_add_assistant_stream(request, NULL, 0), "a NULL stream", "stream");
    fails(modelapi_request_add_message(NULL, "user", "x"), "a NULL request", "request is NULL");
    fails(modelapi_request_json(request, NULL), "a NULL out_json", "out_json");
    {
        char *out = (char *)GARBAGE;

        fails(modelapi_request_json(NULL, &out), "modelapi_request_json(NULL)", "request");
        check(out == NULL, "a failed modelapi_request_json sets *out_json to NULL", "%p",
              (void *)out);
    }
    after = json_of(request);
    check(before != NULL && after != NULL && strcmp(before, after) == 0 &&
              contains(after, "{\"content\":\"and this?\",\"role\":\"user\"}]"),
          "failed calls change nothing, on a user message too", "before %s, after %s",
          str(before), str(after));
    modelapi_string_free(before);
    modelapi_string_free(after);

    check(modelapi_request_add_message_json(
              request, "{\"role\": \"user\", \"name\": \"bob\", \"content\": \"hi\"}") ==
              MODELAPI_OK,
          "add_message_json takes a message with more fields", "%s", modelapi_last_error());
    modelapi_request_free(request);
    modelapi_request_free(NULL);
}

/* The builder's JSON goes to the calls; an answer's turn comes back in. */
static void builder_call_checks(ModelApi *ok, ModelApi *agent)
{
    ModelApiRequest *request = modelapi_request_new();
    ModelApiStream *stream = NULL;
    ModelApiEvent event;
    ModelApiStatus status;
    char *answer = NULL;
    char *content = NULL;
    char *json;
    int events = 0;

    modelapi_request_add_message(request, "user", "Say \"hello\"");
    modelapi_request_set_number(request, "temperature", 0.25);
    json = json_of(request);
    status = modelapi_complete_json(ok, json, NULL, &answer, &content);
    check(status == MODELAPI_OK && strcmp(str(content), "temperature=0.25") == 0,
          "modelapi_complete_json sends the built request", "status %d, content %s: %s",
          status, str(content), modelapi_last_error());
    modelapi_string_free(json);
    check(modelapi_request_add_assistant_json(request, answer, 0) == MODELAPI_OK,
          "add_assistant_json takes the answer", "%s", modelapi_last_error());
    modelapi_string_free(answer);
    modelapi_string_free(content);
    json = json_of(request);
    check(contains(json, "{\"content\":\"temperature=0.25\",\"role\":\"assistant\"}"),
          "the answer's turn is an assistant message with its content", "%s", str(json));
    modelapi_string_free(json);
    modelapi_request_free(request);

    /* A stream's turn: its text and tool calls, as assembled. */
    request = modelapi_request_new();
    modelapi_request_add_message(request, "user", "Weather in two cities?");
    json = json_of(request);
    status = modelapi_stream_open_json(agent, json, NULL, &stream);
    modelapi_string_free(json);
    if (!check(status == MODELAPI_OK, "the agent stream opens", "%s", modelapi_last_error())) {
        modelapi_request_free(request);
        return;
    }
    while (events < 1000 && (status = modelapi_stream_next_event(stream, &event)) == MODELAPI_OK) {
        events++;
    }
    check(status == MODELAPI_DONE, "the agent stream ends", "status %d: %s", status,
          modelapi_last_error());
    check(modelapi_request_add_assistant_stream(request, stream, 0) == MODELAPI_OK &&
              modelapi_request_add_tool_result(request, "call_zrh", "9 C") == MODELAPI_OK,
          "add_assistant_stream takes the stream's answer", "%s", modelapi_last_error());
    json = json_of(request);
    check(contains(json, "\"content\":\"Let me check both cities.\"") &&
              contains(json, "\"id\":\"call_zrh\"") && contains(json, "\"id\":\"call_sao\"") &&
              contains(json, "\"name\":\"get_weather\"") &&
              contains(json, "\"arguments\":\"{\\\"city\\\": \\\"Z\xc3\xbc" "rich\\\"}\"") &&
              !contains(json, "reasoning"),
          "the assistant turn has the content and both tool calls, no reasoning", "%s",
          str(json));
    modelapi_string_free(json);
    check(modelapi_request_add_assistant_stream(request, stream, 1) == MODELAPI_OK,
          "add_assistant_stream with the reasoning", "%s", modelapi_last_error());
    json = json_of(request);
    check(contains(json, "\"reasoning_content\":\"Two cities: Z\xc3\xbc" "rich and S\xc3\xa3o Paulo.\""),
          "the reasoning goes back when asked for", "%s", str(json));
    modelapi_string_free(json);
    modelapi_stream_free(stream);
    modelapi_request_free(request);
}

/* ---- embeddings ----------------------------------------------------------- */

static void embeddings_checks(ModelApi *ok, ModelApi *unauthorized)
{
    static const char *const TEXTS[] = { "apple", "pear", "apple" };
    static const char *const WITH_NULL[] = { "apple", NULL };
    static const char *const BAD_UTF8[] = { "\xff" };
    ModelApiEmbeddings *e = (ModelApiEmbeddings *)GARBAGE;
    ModelApiStatus status;
    ModelApi *canned;

    status = modelapi_embed(ok, NULL, TEXTS, 3, &e);
    if (check(status == MODELAPI_OK && e != NULL, "modelapi_embed asks the server", "%d: %s",
              status, modelapi_last_error())) {
        const float *v0 = modelapi_embeddings_vector(e, 0);
        const float *v1 = modelapi_embeddings_vector(e, 1);

        check(modelapi_embeddings_count(e) == 3 && modelapi_embeddings_dimension(e) == 3,
              "one vector per input, of the server's dimension", "%lu x %lu",
              (unsigned long)modelapi_embeddings_count(e),
              (unsigned long)modelapi_embeddings_dimension(e));
        check(v0 != NULL && v1 != NULL && v0[0] == 5.0f && v0[1] == (float)'a' &&
                  v0[2] == 1.0f && v1[0] == 4.0f && v1[1] == (float)'p',
              "the vectors are the server's, in the order of the inputs", "%p %p", (void *)v0,
              (void *)v1);
        check(modelapi_embeddings_data(e) == v0 && modelapi_embeddings_vector(e, 2) == v0 + 6 &&
                  modelapi_embeddings_vector(e, 3) == NULL,
              "the vectors lie one after the other; past the end is NULL", "%p %p",
              (void *)modelapi_embeddings_data(e), (void *)modelapi_embeddings_vector(e, 3));
        modelapi_embeddings_free(e);
    }

    e = (ModelApiEmbeddings *)GARBAGE;
    status = modelapi_embed(unauthorized, NULL, TEXTS, 1, &e);
    check(status == MODELAPI_HTTP_ERROR && modelapi_last_http_status() == 401 && e == NULL &&
              contains(modelapi_last_error(), "Invalid API key provided") &&
              !contains(modelapi_last_error(), "sk-c-test-secret"),
          "an HTTP error of the embeddings call", "%d: %s", status, modelapi_last_error());

    e = (ModelApiEmbeddings *)GARBAGE;
    fails(modelapi_embed(NULL, NULL, TEXTS, 1, &e), "modelapi_embed(NULL api)", "api is NULL");
    check(e == NULL, "a failed modelapi_embed sets *out_embeddings to NULL", "%p", (void *)e);
    fails(modelapi_embed(ok, NULL, NULL, 1, &e), "NULL inputs", "inputs is NULL");
    fails(modelapi_embed(ok, NULL, TEXTS, 0, &e), "no input", "count is 0");
    fails(modelapi_embed(ok, NULL, TEXTS, 1, NULL), "NULL out_embeddings", "out_embeddings");
    fails(modelapi_embed(ok, NULL, WITH_NULL, 2, &e), "a NULL input", "inputs[1] is NULL");
    fails(modelapi_embed(ok, NULL, BAD_UTF8, 1, &e), "an input of invalid UTF-8", "inputs[0]");
    fails(modelapi_embed(ok, "\xff", TEXTS, 1, &e), "a model of invalid UTF-8", "model");
    check(modelapi_embeddings_count(NULL) == 0 && modelapi_embeddings_dimension(NULL) == 0 &&
              modelapi_embeddings_vector(NULL, 0) == NULL &&
              modelapi_embeddings_data(NULL) == NULL,
          "the readers of NULL embeddings give 0 and NULL", "%s", "");
    modelapi_embeddings_free(NULL);

    /* Canned replies: deterministic vectors, no network. */
    canned = modelapi_new("canned", "http://127.0.0.1:9", NULL);
    status = canned ? modelapi_set_mock_responses(canned, "[\"vectors\"]") : MODELAPI_INTERNAL;
    e = NULL;
    if (status == MODELAPI_OK) {
        status = modelapi_embed(canned, NULL, TEXTS, 3, &e);
    }
    if (check(status == MODELAPI_OK, "a canned reply answers modelapi_embed", "%d: %s", status,
              modelapi_last_error())) {
        size_t d = modelapi_embeddings_dimension(e);

        check(modelapi_embeddings_count(e) == 3 && d == 8 &&
                  memcmp(modelapi_embeddings_vector(e, 0), modelapi_embeddings_vector(e, 2),
                         d * sizeof(float)) == 0 &&
                  memcmp(modelapi_embeddings_vector(e, 0), modelapi_embeddings_vector(e, 1),
                         d * sizeof(float)) != 0,
              "canned vectors: 8 floats, equal for equal texts only", "%lu x %lu",
              (unsigned long)modelapi_embeddings_count(e), (unsigned long)d);
    }
    modelapi_embeddings_free(e);
    modelapi_close(canned);
}

/* ---- the model list -------------------------------------------------------- */

static void models_checks(ModelApi *ok, ModelApi *unauthorized)
{
    ModelApiModels *models = (ModelApiModels *)GARBAGE;
    ModelApiStatus status = modelapi_models(ok, &models);

    if (check(status == MODELAPI_OK && models != NULL, "modelapi_models asks the server",
              "%d: %s", status, modelapi_last_error())) {
        check(modelapi_models_count(models) == 3 &&
                  strcmp(str(modelapi_models_id(models, 0)), "ok") == 0 &&
                  strcmp(str(modelapi_models_id(models, 2)), "unauthorized") == 0 &&
                  modelapi_models_id(models, 3) == NULL,
              "the ids, in the server's order; past the end is NULL", "%lu: %s",
              (unsigned long)modelapi_models_count(models), str(modelapi_models_json(models)));
        check(contains(modelapi_models_json(models), "\"owned_by\":\"test\""),
              "the JSON is the server's", "%s", str(modelapi_models_json(models)));
        modelapi_models_free(models);
    }
    models = (ModelApiModels *)GARBAGE;
    status = modelapi_models(unauthorized, &models);
    check(status == MODELAPI_HTTP_ERROR && modelapi_last_http_status() == 401 && models == NULL,
          "an HTTP error of the model list", "%d: %s", status, modelapi_last_error());
    fails(modelapi_models(NULL, &models), "modelapi_models(NULL api)", "api is NULL");
    fails(modelapi_models(ok, NULL), "NULL out_models", "out_models");
    check(modelapi_models_count(NULL) == 0 && modelapi_models_id(NULL, 0) == NULL &&
              modelapi_models_json(NULL) == NULL,
          "the readers of a NULL list give 0 and NULL", "%s", "");
    modelapi_models_free(NULL);
}

static ModelApi *test_client(const char *model, const char *api_key)
{
    ModelApi *api = modelapi_new(model, base_url, api_key);

    if (api != NULL) {
        modelapi_set_timeout_ms(api, 10000);
    }
    check(api != NULL, "modelapi_new makes a client", "%s", modelapi_last_error());
    return api;
}

int main(int argc, char **argv)
{
    ModelApi *ok;
    ModelApi *agent;
    ModelApi *unauthorized;

    if (argc != 2) {
        fprintf(stderr, "usage: %s <base_url of the test server>\n", argv[0]);
        return 2;
    }
    base_url = argv[1];
    unsetenv("DEBUG_MOCK_RESPONSES");

    ok = test_client("ok", NULL);
    agent = test_client("agent", NULL);
    unauthorized = test_client("unauthorized", "sk-c-test-secret");
    if (ok == NULL || agent == NULL || unauthorized == NULL) {
        printf("Bail out! cannot create the clients\n");
    } else {
        builder_checks();
        builder_call_checks(ok, agent);
        embeddings_checks(ok, unauthorized);
        models_checks(ok, unauthorized);
    }
    modelapi_close(ok);
    modelapi_close(agent);
    modelapi_close(unauthorized);

    printf("%d passed, %d failed\n", tests_passed, tests_failed);
    return tests_failed == 0 ? 0 : 1;
}
