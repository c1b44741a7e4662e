--[[
modelapi.lua: the modelapi C library from LuaJIT (and so from LÖVE), through
the FFI. One file, no other dependency.

  local modelapi = require("modelapi")
  local client = modelapi.new{model = "gpt-4o-mini",
                              api_base = "https://api.openai.com/v1",
                              api_key = os.getenv("OPENAI_API_KEY")}
  local text, json = client:complete{{role = "user", content = "Hi!"}}

  local s = client:stream{{role = "user", content = "Tell a story"}}
  for ev in s do
    if ev.kind == "content" then io.write(ev.text) end
  end
  print(s:completion())          -- the whole answer, chat.completion JSON

  -- In a game: never blocks (poll mode)
  local s = client:stream_start(messages)
  function love.update(dt)
    local ev = s:poll()          -- an event, nil (nothing yet) or false (done)
    while ev do ... ev = s:poll() end
  end

The library: ffi.load(path) of modelapi.load(path) when called before the
first client; else of $MODELAPI_LIB; else "modelapi" (libmodelapi.so on the
system's library path).

Messages: a Lua array of {role = ..., content = ...} tables (any
OpenAI-format message, e.g. with tool_calls), a whole request object (a
table with a `messages` field, and `tools`, `temperature`, ...), or a JSON
string of either. Lua tables are encoded by modelapi.json_encode.

Errors: raised as Lua errors whose value is a table
  {status = "MODELAPI_HTTP_ERROR", code = 3, message = "...", http_status = 401}
(http_status only for MODELAPI_HTTP_ERROR), whose tostring is
  "MODELAPI_HTTP_ERROR (401): invalid api key"
so pcall catches them and modelapi.is_error(e) tells them apart.

Ownership: clients and streams are freed by the garbage collector (ffi.gc);
client:close() and stream:close() free them at once and may be called
again. Streams stay usable after their client is closed. Strings the
library returns are copied into Lua strings and freed at once.

Threads: the library never starts a thread. A client and its streams belong
to the Lua state that made them (a LÖVE thread has its own Lua state: make
its clients there). Errors are read from the calling thread's last error.

The cdef below is include/modelapi.h without comments and preprocessor
lines; tests/lua.rs fails when the two differ.
]]

local ffi = require("ffi")

local M = {}

-- BEGIN modelapi.h (generated from include/modelapi.h; tests/lua.rs checks it)
local HEADER_CDEF = [[
typedef enum ModelApiStatus {
  MODELAPI_OK = 0,
  MODELAPI_DONE = 1,
  MODELAPI_INVALID_ARGUMENT = 2,
  MODELAPI_HTTP_ERROR = 3,
  MODELAPI_TRANSPORT_ERROR = 4,
  MODELAPI_TIMEOUT = 5,
  MODELAPI_INVALID_RESPONSE = 6,
  MODELAPI_CLOSED = 7,
  MODELAPI_ABORTED = 8,
  MODELAPI_INTERNAL = 9,
  MODELAPI_SERVER_ERROR = 10,
  MODELAPI_PENDING = 11,
} ModelApiStatus;
typedef enum ModelApiTraceLevel {
  MODELAPI_TRACE_ERROR = 1,
  MODELAPI_TRACE_WARN = 2,
  MODELAPI_TRACE_INFO = 3,
  MODELAPI_TRACE_DEBUG = 4,
} ModelApiTraceLevel;
typedef enum ModelApiEventKind {
  MODELAPI_EVENT_CONTENT = 0,
  MODELAPI_EVENT_REASONING = 1,
  MODELAPI_EVENT_TOOL_CALL = 2,
  MODELAPI_EVENT_REFUSAL = 3,
} ModelApiEventKind;
typedef struct ModelApiCancel ModelApiCancel;
typedef struct ModelApiEmbeddings ModelApiEmbeddings;
typedef struct ModelApi ModelApi;
typedef struct ModelApiModels ModelApiModels;
typedef struct ModelApiRequest ModelApiRequest;
typedef struct ModelApiStream ModelApiStream;
typedef void (*ModelApiTraceFn)(void *user_data, enum ModelApiTraceLevel level, const char *line);
typedef struct ModelApiMessage {
  const char *role;
  const char *content;
} ModelApiMessage;
typedef int (*ModelApiChunkFn)(void *user_data, const char *chunk, size_t len);
typedef struct ModelApiEvent {
  enum ModelApiEventKind kind;
  const char *text;
  size_t len;
  uint32_t tool_index;
  const char *tool_id;
  const char *tool_name;
} ModelApiEvent;
typedef int (*ModelApiEventFn)(void *user_data, const struct ModelApiEvent *event);
struct ModelApi *modelapi_new(const char *model, const char *api_base, const char *api_key);
struct ModelApi *modelapi_from_env(void);
enum ModelApiStatus modelapi_set_timeout_ms(struct ModelApi *api, uint64_t timeout_ms);
enum ModelApiStatus modelapi_set_first_token_timeout_ms(struct ModelApi *api, uint64_t timeout_ms);
enum ModelApiStatus modelapi_add_fallback(struct ModelApi *api,
                                          const char *api_base,
                                          const char *model,
                                          const char *api_key);
enum ModelApiStatus modelapi_set_hedge_ms(struct ModelApi *api, uint64_t hedge_ms);
enum ModelApiStatus modelapi_set_max_retries(struct ModelApi *api, uint32_t max_retries);
enum ModelApiStatus modelapi_set_header(struct ModelApi *api, const char *name, const char *value);
enum ModelApiStatus modelapi_set_ca_file(struct ModelApi *api, const char *pem_path);
enum ModelApiStatus modelapi_set_proxy(struct ModelApi *api, const char *proxy_url);
enum ModelApiStatus modelapi_set_resolve(struct ModelApi *api, const char *entry);
enum ModelApiStatus modelapi_set_mock_responses(struct ModelApi *api, const char *replies_json);
enum ModelApiStatus modelapi_set_trace(struct ModelApi *api,
                                       ModelApiTraceFn on_trace,
                                       void *user_data);
void modelapi_close(struct ModelApi *api);
enum ModelApiStatus modelapi_complete(struct ModelApi *api,
                                      const struct ModelApiMessage *messages,
                                      size_t count,
                                      const char *mock_response,
                                      char **out_json,
                                      char **out_content);
enum ModelApiStatus modelapi_complete_json(struct ModelApi *api,
                                           const char *messages_json,
                                           const char *mock_response,
                                           char **out_json,
                                           char **out_content);
enum ModelApiStatus modelapi_stream(struct ModelApi *api,
                                    const struct ModelApiMessage *messages,
                                    size_t count,
                                    const char *mock_response,
                                    ModelApiChunkFn on_chunk,
                                    void *user_data);
enum ModelApiStatus modelapi_stream_json(struct ModelApi *api,
                                         const char *messages_json,
                                         const char *mock_response,
                                         ModelApiChunkFn on_chunk,
                                         void *user_data);
enum ModelApiStatus modelapi_stream_open(struct ModelApi *api,
                                         const struct ModelApiMessage *messages,
                                         size_t count,
                                         const char *mock_response,
                                         struct ModelApiStream **out_stream);
enum ModelApiStatus modelapi_stream_open_json(struct ModelApi *api,
                                              const char *messages_json,
                                              const char *mock_response,
                                              struct ModelApiStream **out_stream);
enum ModelApiStatus modelapi_complete_with(struct ModelApi *api,
                                           const char *messages_json,
                                           const char *mock_response,
                                           struct ModelApiCancel *cancel,
                                           char **out_json,
                                           char **out_content);
enum ModelApiStatus modelapi_stream_with(struct ModelApi *api,
                                         const char *messages_json,
                                         const char *mock_response,
                                         struct ModelApiCancel *cancel,
                                         ModelApiChunkFn on_chunk,
                                         void *user_data);
enum ModelApiStatus modelapi_stream_open_with(struct ModelApi *api,
                                              const char *messages_json,
                                              const char *mock_response,
                                              struct ModelApiCancel *cancel,
                                              struct ModelApiStream **out_stream);
enum ModelApiStatus modelapi_stream_detached(struct ModelApi *api,
                                             const char *messages_json,
                                             const char *mock_response,
                                             struct ModelApiStream **out_stream);
enum ModelApiStatus modelapi_stream_start(struct ModelApi *api,
                                          const char *messages_json,
                                          const char *mock_response,
                                          struct ModelApiCancel *cancel,
                                          struct ModelApiStream **out_stream);
enum ModelApiStatus modelapi_stream_events(struct ModelApi *api,
                                           const char *messages_json,
                                           const char *mock_response,
                                           struct ModelApiCancel *cancel,
                                           ModelApiEventFn on_event,
                                           void *user_data,
                                           char **out_json);
enum ModelApiStatus modelapi_stream_next(struct ModelApiStream *stream,
                                         const char **out_chunk,
                                         size_t *out_len);
enum ModelApiStatus modelapi_stream_next_event(struct ModelApiStream *stream,
                                               struct ModelApiEvent *out_event);
enum ModelApiStatus modelapi_stream_completion_json(struct ModelApiStream *stream, char **out_json);
enum ModelApiStatus modelapi_stream_cancel(struct ModelApiStream *stream);
const char *modelapi_stream_finish_reason(struct ModelApiStream *stream);
const char *modelapi_stream_id(struct ModelApiStream *stream);
const char *modelapi_stream_model(struct ModelApiStream *stream);
const char *modelapi_stream_request_id(struct ModelApiStream *stream);
const char *modelapi_stream_endpoint(struct ModelApiStream *stream);
int64_t modelapi_stream_first_event_ms(struct ModelApiStream *stream);
int modelapi_stream_usage(struct ModelApiStream *stream,
                          uint64_t *out_prompt_tokens,
                          uint64_t *out_completion_tokens,
                          uint64_t *out_total_tokens);
enum ModelApiStatus modelapi_stream_poll(struct ModelApiStream *stream,
                                         uint32_t wait_ms,
                                         struct ModelApiEvent *out_event);
int modelapi_stream_fd(const struct ModelApiStream *stream,
                       int *out_wants_write);
int64_t modelapi_stream_wake_ms(const struct ModelApiStream *stream);
void modelapi_stream_free(struct ModelApiStream *stream);
const char *modelapi_stream_request_url(const struct ModelApiStream *stream);
size_t modelapi_stream_request_header_count(const struct ModelApiStream *stream);
enum ModelApiStatus modelapi_stream_request_header(const struct ModelApiStream *stream,
                                                   size_t index,
                                                   const char **out_name,
                                                   const char **out_value);
enum ModelApiStatus modelapi_stream_request_body(const struct ModelApiStream *stream,
                                                 const char **out_body,
                                                 size_t *out_len);
enum ModelApiStatus modelapi_stream_feed_head(struct ModelApiStream *stream,
                                              int http_status,
                                              const char *content_type);
enum ModelApiStatus modelapi_stream_feed(struct ModelApiStream *stream,
                                         const char *bytes,
                                         size_t len);
enum ModelApiStatus modelapi_stream_feed_end(struct ModelApiStream *stream);
struct ModelApiCancel *modelapi_cancel_new(void);
enum ModelApiStatus modelapi_cancel(struct ModelApiCancel *cancel);
enum ModelApiStatus modelapi_cancel_reset(struct ModelApiCancel *cancel);
void modelapi_cancel_free(struct ModelApiCancel *cancel);
void modelapi_string_free(char *s);
const char *modelapi_last_error(void);
int modelapi_last_http_status(void);
const char *modelapi_version(void);
struct ModelApiRequest *modelapi_request_new(void);
void modelapi_request_free(struct ModelApiRequest *request);
enum ModelApiStatus modelapi_request_add_message(struct ModelApiRequest *request,
                                                 const char *role,
                                                 const char *text);
enum ModelApiStatus modelapi_request_add_image_url(struct ModelApiRequest *request,
                                                   const char *url);
enum ModelApiStatus modelapi_request_add_image_data(struct ModelApiRequest *request,
                                                    const void *bytes,
                                                    size_t len,
                                                    const char *mime_type);
enum ModelApiStatus modelapi_request_add_tool_result(struct ModelApiRequest *request,
                                                     const char *tool_call_id,
                                                     const char *content);
enum ModelApiStatus modelapi_request_add_assistant_json(struct ModelApiRequest *request,
                                                        const char *completion_json,
                                                        int include_reasoning);
enum ModelApiStatus modelapi_request_add_assistant_stream(struct ModelApiRequest *request,
                                                          struct ModelApiStream *stream,
                                                          int include_reasoning);
enum ModelApiStatus modelapi_request_add_message_json(struct ModelApiRequest *request,
                                                      const char *message_json);
enum ModelApiStatus modelapi_request_set_number(struct ModelApiRequest *request,
                                                const char *name,
                                                double value);
enum ModelApiStatus modelapi_request_set_int(struct ModelApiRequest *request,
                                             const char *name,
                                             int64_t value);
enum ModelApiStatus modelapi_request_set_string(struct ModelApiRequest *request,
                                                const char *name,
                                                const char *value);
enum ModelApiStatus modelapi_request_set_bool(struct ModelApiRequest *request,
                                              const char *name,
                                              int value);
enum ModelApiStatus modelapi_request_set_json(struct ModelApiRequest *request,
                                              const char *name,
                                              const char *json);
enum ModelApiStatus modelapi_request_json(const struct ModelApiRequest *request, char **out_json);
enum ModelApiStatus modelapi_embed(struct ModelApi *api,
                                   const char *model,
                                   const char *const *inputs,
                                   size_t count,
                                   struct ModelApiEmbeddings **out_embeddings);
size_t modelapi_embeddings_count(const struct ModelApiEmbeddings *embeddings);
size_t modelapi_embeddings_dimension(const struct ModelApiEmbeddings *embeddings);
const float *modelapi_embeddings_vector(const struct ModelApiEmbeddings *embeddings, size_t index);
const float *modelapi_embeddings_data(const struct ModelApiEmbeddings *embeddings);
void modelapi_embeddings_free(struct ModelApiEmbeddings *embeddings);
enum ModelApiStatus modelapi_models(struct ModelApi *api, struct ModelApiModels **out_models);
size_t modelapi_models_count(const struct ModelApiModels *models);
const char *modelapi_models_id(const struct ModelApiModels *models, size_t index);
const char *modelapi_models_json(const struct ModelApiModels *models);
void modelapi_models_free(struct ModelApiModels *models);
]]
-- END modelapi.h

ffi.cdef(HEADER_CDEF)

M.VERSION = nil -- the library's version, once it is loaded

local C -- the loaded library

--- Loads the library from `path` (default: $MODELAPI_LIB, else "modelapi").
--- Called by the first modelapi.new/from_env; call it before to choose.
function M.load(path)
  if C and not path then
    return C
  end
  path = path or os.getenv("MODELAPI_LIB")
  if path == nil or path == "" then
    path = "modelapi"
  end
  C = ffi.load(path)
  M.C = C
  M.VERSION = ffi.string(C.modelapi_version())
  return C
end

-- ---- errors ------------------------------------------------------------------

local STATUS_NAMES = {
  [0] = "MODELAPI_OK", "MODELAPI_DONE", "MODELAPI_INVALID_ARGUMENT",
  "MODELAPI_HTTP_ERROR", "MODELAPI_TRANSPORT_ERROR", "MODELAPI_TIMEOUT",
  "MODELAPI_INVALID_RESPONSE", "MODELAPI_CLOSED", "MODELAPI_ABORTED",
  "MODELAPI_INTERNAL", "MODELAPI_SERVER_ERROR", "MODELAPI_PENDING",
}
M.STATUS_NAMES = STATUS_NAMES

--- The name of a status number, as spelled in modelapi.h.
function M.status_name(code)
  return STATUS_NAMES[tonumber(code)] or "MODELAPI_UNKNOWN_STATUS"
end

local Error = {}
Error.__index = Error
Error.__tostring = function(e)
  if e.http_status then
    return string.format("%s (%d): %s", e.status, e.http_status, e.message)
  end
  return string.format("%s: %s", e.status, e.message)
end
M.Error = Error

--- Whether `value` is an error raised by this module.
function M.is_error(value)
  return getmetatable(value) == Error
end

local function new_error(code, message, http_status)
  return setmetatable({
    status = M.status_name(code),
    code = tonumber(code),
    message = message,
    http_status = http_status,
  }, Error)
end

-- Raises the error of the call that just returned `status` (on this thread).
local function raise(status)
  local code = tonumber(status)
  local http
  if code == 3 then
    http = C.modelapi_last_http_status()
  end
  error(new_error(code, ffi.string(C.modelapi_last_error()), http), 3)
end

local function bad_argument(message)
  error(new_error(2, message), 3)
end

-- ---- JSON (encoding only: requests) -------------------------------------------

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

--- A table whose metatable is this encodes as a JSON array even when empty.
M.array_mt = {}
--- The JSON null (a Lua nil cannot be a table's value).
M.null = setmetatable({}, { __tostring = function() return "null" end })

local function encode(value, out, depth)
  if depth > 100 then
    bad_argument("JSON: nested too deeply (a cycle?)")
  end
  local t = type(value)
  if value == nil or value == M.null then
    out[#out + 1] = "null"
  elseif t == "boolean" then
    out[#out + 1] = tostring(value)
  elseif t == "number" then
    if value ~= value or value == math.huge or value == -math.huge then
      bad_argument("JSON: cannot encode " .. tostring(value))
    end
    if value == math.floor(value) and math.abs(value) < 2 ^ 53 then
      out[#out + 1] = string.format("%d", value)
    else
      out[#out + 1] = string.format("%.17g", value)
    end
  elseif t == "string" then
    out[#out + 1] = encode_string(value)
  elseif t == "table" then
    local n = #value
    local is_array = getmetatable(value) == M.array_mt or n > 0
    if is_array then
      local count = 0
      for _ in pairs(value) do
        count = count + 1
      end
      if count ~= n then
        bad_argument("JSON: a table with both array items and keys")
      end
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then
          out[#out + 1] = ","
        end
        encode(value[i], out, depth + 1)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(value) do
        if type(k) ~= "string" then
          bad_argument("JSON: an object key that is not a string: " .. tostring(k))
        end
        keys[#keys + 1] = k
      end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then
          out[#out + 1] = ","
        end
        out[#out + 1] = encode_string(k)
        out[#out + 1] = ":"
        encode(value[k], out, depth + 1)
      end
      out[#out + 1] = "}"
    end
  else
    bad_argument("JSON: cannot encode a " .. t)
  end
end

--- Lua value -> JSON text. Tables with items 1..n are arrays (or any
--- table with metatable modelapi.array_mt), others objects.
function M.json_encode(value)
  local out = {}
  encode(value, out, 0)
  return table.concat(out)
end

local function request_json(messages)
  if type(messages) == "string" then
    return messages
  elseif type(messages) == "table" then
    return M.json_encode(messages)
  end
  bad_argument("messages: expected a table or a JSON string, got a " .. type(messages))
end

local function optional_string(value, what)
  if value ~= nil and type(value) ~= "string" then
    bad_argument(what .. ": expected a string, got a " .. type(value))
  end
  return value
end

-- ---- out strings ----------------------------------------------------------------

local function take_string(ptr)
  if ptr == nil then
    return nil
  end
  local s = ffi.string(ptr)
  C.modelapi_string_free(ptr)
  return s
end

local function opt_cstring(ptr)
  if ptr == nil then
    return nil
  end
  return ffi.string(ptr)
end

-- ---- streams --------------------------------------------------------------------

local KINDS = { [0] = "content", "reasoning", "tool_call", "refusal" }

local function event_table(ev)
  local kind = KINDS[tonumber(ev.kind)] or "unknown"
  local text = ffi.string(ev.text, ev.len)
  if kind == "tool_call" then
    return {
      kind = kind,
      text = text,
      arguments = text,
      index = tonumber(ev.tool_index),
      id = opt_cstring(ev.tool_id),
      name = opt_cstring(ev.tool_name),
    }
  end
  return { kind = kind, text = text }
end

local Stream = {}
Stream.__index = Stream

local function new_stream(handle)
  return setmetatable({
    handle = ffi.gc(handle, C.modelapi_stream_free),
    event = ffi.new("ModelApiEvent"),
    finished = false,
  }, Stream)
end

local function live(stream)
  local h = stream.handle
  if h == nil then
    error(new_error(7, "the stream is closed"), 3)
  end
  return h
end

--- The next event, blocking until it arrives: a table, or nil at the end
--- (and after stream:close()). Raises the stream's error (once).
function Stream:next()
  if self.finished then
    return nil
  end
  local status = C.modelapi_stream_next_event(live(self), self.event)
  if status == 0 then
    return event_table(self.event)
  end
  self.finished = true
  if status == 1 then
    return nil
  end
  raise(status)
end

--- `for ev in stream do ... end` reads the events with Stream:next().
Stream.__call = Stream.next

--- The next event if one can be had within `wait_ms` (default 0: never
--- waits): an event table; nil when none came in time (call again, e.g.
--- next frame); false once the stream is over (and on every later call,
--- also after stream:close()). Raises the stream's error (once; later polls
--- return false).
function Stream:poll(wait_ms)
  if self.finished then
    return false
  end
  wait_ms = wait_ms or 0
  if type(wait_ms) ~= "number" or wait_ms < 0 then
    bad_argument("wait_ms: expected a number >= 0")
  end
  local status = C.modelapi_stream_poll(live(self), wait_ms, self.event)
  if status == 0 then
    return event_table(self.event)
  elseif status == 11 then
    return nil
  end
  self.finished = true
  if status == 1 then
    return false
  end
  raise(status)
end

--- Whether the stream is over (done, failed, or closed).
function Stream:done()
  return self.finished or self.handle == nil
end

--- The answer assembled from the events read so far: chat.completion JSON.
function Stream:completion()
  local out = ffi.new("char*[1]")
  local status = C.modelapi_stream_completion_json(live(self), out)
  if status ~= 0 then
    raise(status)
  end
  return take_string(out[0])
end

--- "stop", "length", "tool_calls"..., or nil while none was sent.
function Stream:finish_reason()
  return opt_cstring(C.modelapi_stream_finish_reason(live(self)))
end

--- The response id, the answering model, the x-request-id (or nil).
function Stream:id()
  return opt_cstring(C.modelapi_stream_id(live(self)))
end

function Stream:model()
  return opt_cstring(C.modelapi_stream_model(live(self)))
end

function Stream:request_id()
  return opt_cstring(C.modelapi_stream_request_id(live(self)))
end

--- The api_base of the endpoint that served the stream (its own or a
--- fallback's), and the milliseconds to its first event; nil before it.
function Stream:endpoint()
  return opt_cstring(C.modelapi_stream_endpoint(live(self)))
end

function Stream:first_event_ms()
  local ms = tonumber(C.modelapi_stream_first_event_ms(live(self)))
  if ms < 0 then
    return nil
  end
  return ms
end

--- {prompt_tokens=, completion_tokens=, total_tokens=} or nil.
function Stream:usage()
  local counts = ffi.new("uint64_t[3]")
  if C.modelapi_stream_usage(live(self), counts, counts + 1, counts + 2) == 0 then
    return nil
  end
  return {
    prompt_tokens = tonumber(counts[0]),
    completion_tokens = tonumber(counts[1]),
    total_tokens = tonumber(counts[2]),
  }
end

--- The socket to wait on (for a host with its own poll loop) and whether
--- it waits to write; -1 when none (see modelapi_stream_fd).
function Stream:fd()
  local wants = ffi.new("int[1]")
  local fd = C.modelapi_stream_fd(live(self), wants)
  return fd, wants[0] ~= 0
end

--- The longest wait before the next poll, in ms (-1: over).
function Stream:wake_ms()
  return tonumber(C.modelapi_stream_wake_ms(live(self)))
end

--- Stops the stream: its connection is closed; later reads end it.
function Stream:cancel()
  if self.handle ~= nil then
    C.modelapi_stream_cancel(self.handle)
  end
end

--- Frees the stream now (closing its connection mid-answer). Idempotent.
function Stream:close()
  local h = self.handle
  if h ~= nil then
    self.handle = nil
    self.finished = true
    ffi.gc(h, nil)
    C.modelapi_stream_free(h)
  end
end
Stream.free = Stream.close

-- ---- clients --------------------------------------------------------------------

local Client = {}
Client.__index = Client
M.Client = Client
M.Stream = Stream

local function client_handle(client)
  local h = client.handle
  if h == nil then
    error(new_error(7, "the client is closed"), 3)
  end
  return h
end

-- The canned replies option as the JSON modelapi_set_mock_responses takes:
-- an array of strings, or a string (JSON or one plain reply).
local function mock_json(mock_responses)
  local value = mock_responses
  if type(value) == "table" then
    local replies = setmetatable({}, M.array_mt)
    for k, reply in pairs(value) do
      if type(reply) ~= "string" or type(k) ~= "number" then
        bad_argument("mock_responses: expected an array of strings")
      end
      replies[k] = reply
    end
    return M.json_encode(replies)
  elseif type(value) ~= "string" then
    bad_argument("mock_responses: expected a table of strings or a string")
  end
  return value
end

local function configure(handle, options)
  local function check(status)
    if status ~= 0 then
      C.modelapi_close(handle)
      raise(status)
    end
  end
  if options.timeout_ms ~= nil then
    if type(options.timeout_ms) ~= "number" or options.timeout_ms < 0 then
      C.modelapi_close(handle)
      bad_argument("timeout_ms: expected a number > 0")
    end
    check(C.modelapi_set_timeout_ms(handle, options.timeout_ms))
  end
  if options.max_retries ~= nil then
    check(C.modelapi_set_max_retries(handle, options.max_retries))
  end
  for name, value in pairs(options.headers or {}) do
    check(C.modelapi_set_header(handle, tostring(name), tostring(value)))
  end
  if options.ca_file ~= nil then
    check(C.modelapi_set_ca_file(handle, options.ca_file))
  end
  if options.proxy ~= nil then
    check(C.modelapi_set_proxy(handle, options.proxy))
  end
  for _, entry in ipairs(options.resolve or {}) do
    check(C.modelapi_set_resolve(handle, entry))
  end
  for name, set in pairs({ first_token_timeout_ms = C.modelapi_set_first_token_timeout_ms,
                           hedge_ms = C.modelapi_set_hedge_ms }) do
    local value = options[name]
    if value ~= nil then
      if type(value) ~= "number" or value < 0 then
        C.modelapi_close(handle)
        bad_argument(name .. ": expected a number >= 0")
      end
      check(set(handle, value))
    end
  end
  for _, fallback in ipairs(options.fallbacks or {}) do
    if type(fallback) ~= "table" then
      C.modelapi_close(handle)
      bad_argument("fallbacks: expected tables {api_base=, model=, api_key=}")
    end
    check(C.modelapi_add_fallback(handle, fallback.api_base, fallback.model, fallback.api_key))
  end
  if options.mock_responses ~= nil then
    local ok, json = pcall(mock_json, options.mock_responses)
    if not ok then
      C.modelapi_close(handle)
      error(json, 0)
    end
    check(C.modelapi_set_mock_responses(handle, json))
  end
end

local KNOWN = {
  model = true, api_base = true, api_key = true, timeout_ms = true,
  max_retries = true, headers = true, ca_file = true, proxy = true,
  resolve = true, mock_responses = true, first_token_timeout_ms = true, hedge_ms = true,
  fallbacks = true,
}

local function check_options(options, allowed)
  if type(options) ~= "table" then
    bad_argument("expected a table of options")
  end
  for k in pairs(options) do
    if not allowed[k] then
      bad_argument("unknown option: " .. tostring(k))
    end
  end
end

local function wrap_client(handle, options)
  if handle == nil then
    error(new_error(2, ffi.string(C.modelapi_last_error())), 3)
  end
  configure(handle, options)
  return setmetatable({ handle = ffi.gc(handle, C.modelapi_close) }, Client)
end

--- A client: modelapi.new{model=, api_base=, api_key=, timeout_ms=,
--- max_retries=, headers={name=value}, ca_file=, proxy=, resolve={...},
--- first_token_timeout_ms=, hedge_ms=, fallbacks={{api_base=, model=, api_key=}},
--- mock_responses={"canned", "replies"}} (mock_responses: in place of
--- $DEBUG_MOCK_RESPONSES; {} for none whatever the environment says).
function M.new(options)
  M.load()
  check_options(options, KNOWN)
  optional_string(options.model, "model")
  optional_string(options.api_base, "api_base")
  optional_string(options.api_key, "api_key")
  if options.model == nil or options.api_base == nil then
    bad_argument("model and api_base are required")
  end
  local handle = C.modelapi_new(options.model, options.api_base, options.api_key)
  return wrap_client(handle, options)
end

--- A client of $MODEL_API_URL, $MODEL_NAME and $MODEL_API_KEY; `options`
--- (optional) as for modelapi.new, without model, api_base and api_key.
function M.from_env(options)
  M.load()
  options = options or {}
  check_options(options, KNOWN)
  if options.model or options.api_base or options.api_key then
    bad_argument("from_env takes model, api_base and api_key from the environment")
  end
  return wrap_client(C.modelapi_from_env(), options)
end

local CALL_OPTIONS = { mock_response = true }

local function call_options(opts)
  if opts == nil then
    return nil
  end
  check_options(opts, CALL_OPTIONS)
  return optional_string(opts.mock_response, "mock_response")
end

--- One chat completion: the answer's text ("" when none) and the server's
--- chat.completion JSON. `opts`: {mock_response = "..."} (LiteLLM's).
function Client:complete(messages, opts)
  local h = client_handle(self)
  local json = request_json(messages)
  local mock = call_options(opts)
  local out_json = ffi.new("char*[1]")
  local out_content = ffi.new("char*[1]")
  local status = C.modelapi_complete_json(h, json, mock, out_json, out_content)
  if status ~= 0 then
    raise(status)
  end
  local text = take_string(out_content[0])
  return text, take_string(out_json[0])
end

--- A streamed answer, read blocking: `for ev in client:stream(m) do`.
--- The request is sent now (errors before the answer begins raise here).
function Client:stream(messages, opts)
  local h = client_handle(self)
  local json = request_json(messages)
  local mock = call_options(opts)
  local out = ffi.new("ModelApiStream*[1]")
  local status = C.modelapi_stream_open_json(h, json, mock, out)
  if status ~= 0 then
    raise(status)
  end
  return new_stream(out[0])
end

--- A streamed answer that never blocks: returns at once; the connection,
--- the request and the answer progress in stream:poll() calls.
function Client:stream_start(messages, opts)
  local h = client_handle(self)
  local json = request_json(messages)
  local mock = call_options(opts)
  local out = ffi.new("ModelApiStream*[1]")
  local status = C.modelapi_stream_start(h, json, mock, nil, out)
  if status ~= 0 then
    raise(status)
  end
  return new_stream(out[0])
end

--- Releases the connections and frees the client. Idempotent; later calls
--- raise MODELAPI_CLOSED; its streams go on.
function Client:close()
  local h = self.handle
  if h ~= nil then
    self.handle = nil
    ffi.gc(h, nil)
    C.modelapi_close(h)
  end
end
Client.free = Client.close

return M
