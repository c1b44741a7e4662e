/* The library built without its network code (cargo build
 * --no-default-features), from C: canned replies and detached streams work,
 * the calls that need the network say the build has none, and no stream has
 * a descriptor. Run by tests/no_net.rs under valgrind; prints what it saw. */
#include <stdio.h>
#include <string.h>

#include "modelapi.h"

#define CHECK(cond, what)                                                        \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "FAILED: %s (last error: %s)\n", what, modelapi_last_error()); \
      return 1;                                                                  \
    }                                                                            \
  } while (0)

static const char *MESSAGES = "[{\"role\":\"user\",\"content\":\"hi\"}]";

/* Reads every event of a stream into text; returns the final status. */
static ModelApiStatus read_all(ModelApiStream *stream, char *text, size_t room) {
  ModelApiEvent ev;
  ModelApiStatus st;
  text[0] = '\0';
  while ((st = modelapi_stream_next_event(stream, &ev)) == MODELAPI_OK) {
    if (ev.kind == MODELAPI_EVENT_CONTENT && strlen(text) + ev.len < room) {
      strcat(text, ev.text);
    }
  }
  return st;
}

int main(void) {
  char text[256];

  /* The network: refused, saying why. */
  ModelApi *api = modelapi_new("m", "http://127.0.0.1:9", "sk-offline-key-1234");
  CHECK(api != NULL, "modelapi_new");
  char *json = NULL, *content = NULL;
  ModelApiStatus st = modelapi_complete_json(api, MESSAGES, NULL, &json, &content);
  CHECK(st == MODELAPI_TRANSPORT_ERROR, "complete is a transport error");
  CHECK(strstr(modelapi_last_error(), "no network support") != NULL, "the error says why");
  printf("complete: %s\n", modelapi_last_error());
  ModelApiStream *stream = NULL;
  /* A started stream reports it from its first poll, as network errors. */
  st = modelapi_stream_start(api, MESSAGES, NULL, NULL, &stream);
  CHECK(st == MODELAPI_OK && stream != NULL, "stream_start starts");
  ModelApiEvent first;
  st = modelapi_stream_poll(stream, 0, &first);
  CHECK(st == MODELAPI_TRANSPORT_ERROR, "its first poll is a transport error");
  CHECK(strstr(modelapi_last_error(), "no network support") != NULL, "the poll's error says why");
  modelapi_stream_free(stream);
  stream = NULL;

  /* A detached stream: the host carries the bytes. */
  st = modelapi_stream_detached(api, MESSAGES, NULL, &stream);
  CHECK(st == MODELAPI_OK, "detached");
  CHECK(modelapi_stream_fd(stream, NULL) == -1, "no descriptor");
  CHECK(strcmp(modelapi_stream_request_url(stream), "http://127.0.0.1:9/v1/chat/completions") == 0,
        "the URL");
  int has_key = 0;
  for (size_t i = 0; i < modelapi_stream_request_header_count(stream); i++) {
    const char *name, *value;
    CHECK(modelapi_stream_request_header(stream, i, &name, &value) == MODELAPI_OK, "a header");
    if (strcmp(name, "authorization") == 0 && strcmp(value, "Bearer sk-offline-key-1234") == 0) {
      has_key = 1;
    }
  }
  CHECK(has_key, "the key is in the request's headers");
  ModelApiEvent ev;
  CHECK(modelapi_stream_next_event(stream, &ev) == MODELAPI_PENDING, "pending before the head");
  CHECK(modelapi_stream_feed_head(stream, 200, "text/event-stream") == MODELAPI_OK, "head");
  const char *sse =
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello \"}}]}\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"offline\"},"
      "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
  CHECK(modelapi_stream_feed(stream, sse, strlen(sse)) == MODELAPI_OK, "feed");
  CHECK(modelapi_stream_feed_end(stream) == MODELAPI_OK, "end");
  CHECK(read_all(stream, text, sizeof text) == MODELAPI_DONE, "read to the end");
  printf("detached: %s (%s)\n", text, modelapi_stream_finish_reason(stream));
  modelapi_stream_free(stream);

  /* Canned replies. */
  CHECK(modelapi_set_mock_responses(api, "[\"canned without a network\"]") == MODELAPI_OK, "mocks");
  st = modelapi_stream_start(api, MESSAGES, NULL, NULL, &stream);
  CHECK(st == MODELAPI_OK, "a canned stream starts");
  CHECK(read_all(stream, text, sizeof text) == MODELAPI_DONE, "canned read");
  printf("canned: %s\n", text);
  modelapi_stream_free(stream);
  modelapi_close(api);
  return 0;
}
