--[[
The Lua binding's test suite (bindings/lua/modelapi.lua), run inside LÖVE's
LuaJIT by tests/lua.rs: `love tests/lua` with
  MODELAPI_LIB        the built libmodelapi.so
  MODELAPI_TEST_URL   the scripted test server (routes by path prefix:
                      /complete, /events, /unauthorized, /drip, /broken)
  MODELAPI_TEST_DRIP  the text /drip streams, slowly
Prints "ok <name>" per test, "FAIL <name>: <error>" per failure, then
"lua tests: <passed> passed, <failed> failed"; exit status 1 on a failure.
]]

package.path = love.filesystem.getSource() .. "/../../bindings/lua/?.lua;" .. package.path
local modelapi = require("modelapi")
local ffi = require("ffi")

pcall(ffi.cdef, "int fcntl(int fd, int cmd, ...);")

local URL = assert(os.getenv("MODELAPI_TEST_URL"), "MODELAPI_TEST_URL")
local DRIP = assert(os.getenv("MODELAPI_TEST_DRIP"), "MODELAPI_TEST_DRIP")
local USER = { { role = "user", content = "Hi" } }

local tests = {}
local function test(name, fn)
  tests[#tests + 1] = { name = name, fn = fn }
end

local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %s, want %s", what or "value", tostring(got), tostring(want)), 2)
  end
end

local function has(text, piece, what)
  if type(text) ~= "string" or not text:find(piece, 1, true) then
    error(string.format("%s: %s does not contain %s", what or "text", tostring(text), piece), 2)
  end
end

local function client(path, extra)
  local options = { model = "test-model", api_base = URL .. path, mock_responses = {}, max_retries = 0 }
  for k, v in pairs(extra or {}) do
    options[k] = v
  end
  return modelapi.new(options)
end

-- The Lua error a call raises (fails when it raises none).
local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then
    error("no error raised", 2)
  end
  if not modelapi.is_error(err) then
    error("not a modelapi error: " .. tostring(err), 2)
  end
  return err
end

-- Open descriptors of this process (to see connections closed).
local function open_fds()
  local n = 0
  for fd = 0, 4095 do
    if ffi.C.fcntl(fd, 1) ~= -1 then -- F_GETFD
      n = n + 1
    end
  end
  return n
end

-- ---- complete ----------------------------------------------------------------

test("complete returns the text and the JSON", function()
  local c = client("/complete")
  local text, json = c:complete({
    { role = "system", content = "Be \"brief\"\n\tplease \\ ok" },
    { role = "user", content = "Grüße, 東京 🍣" },
  })
  eq(text, "Hello from the server: ¡olé!", "content")
  has(json, '"object":"chat.completion"', "json")
  has(json, '"id":"chatcmpl-9"', "json")
  c:close()
end)

test("complete takes a request object and a mock_response", function()
  local c = client("/complete")
  local text = c:complete({
    messages = USER,
    temperature = 0.5,
    tools = { { type = "function", ["function"] = { name = "get_weather",
      parameters = { type = "object", properties = { city = { type = "string" } } } } } },
  }, { mock_response = "as LiteLLM does" })
  eq(text, "Hello from the server: ¡olé!", "content")
end)

test("complete takes a JSON string", function()
  local c = client("/complete")
  local text = c:complete('[{"role":"user","content":"from JSON"}]')
  eq(text, "Hello from the server: ¡olé!", "content")
end)

-- ---- streams -------------------------------------------------------------------

test("stream events: reasoning, content, tool call pieces, refusal", function()
  local c = client("/events")
  local s = c:stream(USER)
  local got = {}
  for ev in s do
    got[#got + 1] = ev
  end
  eq(#got, 6, "events")
  eq(got[1].kind, "reasoning") eq(got[1].text, "Thinking")
  eq(got[2].kind, "reasoning") eq(got[2].text, " hard")
  eq(got[3].kind, "content") eq(got[3].text, "Let me check.")
  eq(got[4].kind, "tool_call") eq(got[4].index, 0) eq(got[4].id, "call_1")
  eq(got[4].name, "get_weather") eq(got[4].arguments, '{"city":')
  eq(got[5].kind, "tool_call") eq(got[5].index, 0) eq(got[5].id, nil)
  eq(got[5].name, nil) eq(got[5].arguments, '"Paris"}')
  eq(got[6].kind, "refusal") eq(got[6].text, "I can't")
  eq(s(), nil, "after the end")
  eq(s:finish_reason(), "tool_calls", "finish_reason")
  eq(s:id(), "chatcmpl-1", "id")
  eq(s:model(), "test-model", "model")
  local json = s:completion()
  has(json, '"object":"chat.completion"')
  has(json, '"reasoning_content":"Thinking hard"')
  has(json, '"content":"Let me check."')
  has(json, '"id":"call_1"')
  has(json, '"name":"get_weather"')
  has(json, '"arguments":"{\\"city\\":\\"Paris\\"}"')
  has(json, '"refusal":"I can\'t"')
  has(json, '"finish_reason":"tool_calls"')
  s:close()
end)

test("stream of a slow answer, read blocking", function()
  local c = client("/drip")
  local parts = {}
  for ev in c:stream(USER) do
    eq(ev.kind, "content")
    parts[#parts + 1] = ev.text
  end
  eq(table.concat(parts), DRIP, "text")
  if #parts < 5 then
    error("only " .. #parts .. " pieces")
  end
end)

-- ---- poll mode ---------------------------------------------------------------------

test("poll mode: nil while pending, events, false at the end", function()
  local c = client("/drip")
  local s = c:stream_start(USER)
  local parts, pending, polls = {}, 0, 0
  local deadline = love.timer.getTime() + 20
  while true do
    polls = polls + 1
    local t0 = love.timer.getTime()
    local ev = s:poll()
    local took = love.timer.getTime() - t0
    if took > 0.1 then
      error(string.format("a poll with wait 0 took %.3f s", took))
    end
    if ev == false then
      break
    elseif ev == nil then
      pending = pending + 1
      local fd = s:fd()
      eq(type(fd), "number", "fd")
      local wake = s:wake_ms()
      if wake < 0 then
        error("wake_ms " .. wake .. " while pending")
      end
      love.timer.sleep(0.005)
    else
      eq(ev.kind, "content")
      parts[#parts + 1] = ev.text
    end
    if love.timer.getTime() > deadline then
      error("the stream did not end within 20 s")
    end
  end
  eq(table.concat(parts), DRIP, "text")
  if pending < 5 then
    error("only " .. pending .. " polls were pending")
  end
  eq(s:poll(), false, "a poll after the end")
  eq(s:done(), true, "done")
  eq(s:wake_ms(), -1, "wake_ms at the end")
  eq(s:finish_reason(), "stop", "finish_reason")
  has(s:completion(), modelapi.json_encode(DRIP), "completion")
end)

test("poll mode with a wait", function()
  local c = client("/drip")
  local s = c:stream_start(USER)
  local parts = {}
  for _ = 1, 1000 do
    local ev = s:poll(50)
    if ev == false then
      break
    elseif ev then
      parts[#parts + 1] = ev.text
    end
  end
  eq(table.concat(parts), DRIP, "text")
end)

-- ---- errors ---------------------------------------------------------------------

local function check_401(err)
  eq(err.status, "MODELAPI_HTTP_ERROR", "status")
  eq(err.code, 3, "code")
  eq(err.http_status, 401, "http_status")
  has(err.message, "invalid api key", "message")
  local text = tostring(err)
  if not text:find("^MODELAPI_HTTP_ERROR %(401%): ") then
    error("tostring: " .. text)
  end
  has(text, "invalid api key", "tostring")
end

test("HTTP 401: complete raises the status, its name and the message", function()
  local c = client("/unauthorized", { api_key = "sk-wrong" })
  check_401(raises(c.complete, c, USER))
end)

test("HTTP 401: a blocking stream raises when it opens", function()
  local c = client("/unauthorized")
  check_401(raises(c.stream, c, USER))
end)

test("HTTP 401: poll mode raises at a poll, then says done", function()
  local c = client("/unauthorized")
  local s = c:stream_start(USER)
  local err
  for _ = 1, 2000 do
    local ok, ev = pcall(s.poll, s, 10)
    if not ok then
      err = ev
      break
    end
    if ev == false then
      error("done without an error")
    end
  end
  assert(err, "no error within 2000 polls")
  check_401(err)
  eq(s:poll(), false, "a poll after the error")
end)

test("an error inside the stream, after the text that arrived", function()
  local c = client("/broken")
  local s = c:stream(USER)
  local parts = {}
  local err = raises(function()
    for ev in s do
      parts[#parts + 1] = ev.text
    end
  end)
  eq(table.concat(parts), "partial answer", "text before the error")
  eq(err.status, "MODELAPI_SERVER_ERROR", "status")
  eq(err.code, 10, "code")
  eq(err.http_status, nil, "http_status")
  has(err.message, "the model crashed", "message")
  has(s:completion(), '"content":"partial answer"', "completion after the error")
  eq(s(), nil, "a read after the error")
end)

test("no server: a transport error", function()
  local c = modelapi.new{ model = "m", api_base = "http://127.0.0.1:1", mock_responses = {}, max_retries = 0 }
  local err = raises(c.complete, c, USER)
  eq(err.status, "MODELAPI_TRANSPORT_ERROR", "status")
  eq(err.code, 4, "code")
end)

test("a fallback serves when the client's own endpoint refuses", function()
  local c = modelapi.new{ model = "m", api_base = "http://127.0.0.1:1", mock_responses = {},
                          max_retries = 0, first_token_timeout_ms = 5000,
                          fallbacks = { { api_base = URL .. "/drip", model = "test-model" } } }
  local started = c:stream_start(USER)
  eq(started:endpoint(), nil, "no endpoint before the first event")
  eq(started:first_event_ms(), nil, "no first event yet")
  started:close()
  local s = c:stream(USER)
  local parts = {}
  for ev in s do
    parts[#parts + 1] = ev.text
  end
  eq(table.concat(parts), DRIP, "the fallback's text")
  eq(s:endpoint(), URL .. "/drip", "the endpoint that served")
  eq(type(s:first_event_ms()), "number", "the time to the first event")
  local bad = raises(modelapi.new, { model = "m", api_base = "http://127.0.0.1:1",
                                     fallbacks = { { api_base = "ftp://x", model = "m" } } })
  eq(bad.status, "MODELAPI_INVALID_ARGUMENT", "a bad fallback")
end)

test("bad arguments", function()
  local c = client("/complete")
  local err = raises(c.complete, c, 42)
  eq(err.status, "MODELAPI_INVALID_ARGUMENT") has(err.message, "messages")
  err = raises(c.complete, c, "not JSON at all")
  eq(err.status, "MODELAPI_INVALID_ARGUMENT") eq(err.code, 2)
  err = raises(c.complete, c, USER, { mock_reponse = "typo" })
  eq(err.status, "MODELAPI_INVALID_ARGUMENT") has(err.message, "mock_reponse")
  err = raises(c.complete, c, { { role = "user", content = function() end } })
  eq(err.status, "MODELAPI_INVALID_ARGUMENT") has(err.message, "function")
  err = raises(c.stream_start, c, USER, { mock_response = 5 })
  eq(err.status, "MODELAPI_INVALID_ARGUMENT")
  err = raises(modelapi.new, { model = "m" })
  eq(err.status, "MODELAPI_INVALID_ARGUMENT") has(err.message, "api_base")
  err = raises(modelapi.new, { model = "m", api_base = "ftp://example.com" })
  eq(err.status, "MODELAPI_INVALID_ARGUMENT") has(err.message, "ftp")
  err = raises(modelapi.new, { model = "m", api_base = URL, timeout_ms = 0 })
  eq(err.status, "MODELAPI_INVALID_ARGUMENT") has(err.message, "timeout")
  err = raises(modelapi.new, { model = "m", api_base = URL, colour = "blue" })
  has(err.message, "colour")
  err = raises(modelapi.new, { model = "m", api_base = URL, mock_responses = { 1 } })
  eq(err.status, "MODELAPI_INVALID_ARGUMENT")
  local s = c:stream_start(USER, { mock_response = nil })
  err = raises(s.poll, s, -1)
  eq(err.status, "MODELAPI_INVALID_ARGUMENT")
  s:close()
end)

test("closed clients and streams raise MODELAPI_CLOSED; close is idempotent", function()
  local c = client("/drip")
  local s = c:stream_start(USER)
  c:close()
  c:close()
  c:free()
  local err = raises(c.complete, c, USER)
  eq(err.status, "MODELAPI_CLOSED") eq(err.code, 7)
  -- a stream outlives its client
  local parts = {}
  for _ = 1, 1000 do
    local ev = s:poll(50)
    if ev == false then
      break
    elseif ev then
      parts[#parts + 1] = ev.text
    end
  end
  eq(table.concat(parts), DRIP, "the stream after its client closed")
  s:close()
  s:close()
  -- a closed stream is over: reads say so; asking it more raises
  eq(s:poll(), false, "a poll after close")
  eq(s(), nil, "a read after close")
  eq(s:done(), true)
  err = raises(s.completion, s)
  eq(err.status, "MODELAPI_CLOSED")
end)

-- ---- canned replies -------------------------------------------------------------

test("canned replies: one per call, then the server", function()
  local c = client("/complete", { mock_responses = { "first canned", "second canned reply, streamed" } })
  local text, json = c:complete(USER)
  eq(text, "first canned")
  has(json, '"model":"test-model"')
  local parts = {}
  local s = c:stream(USER)
  for ev in s do
    parts[#parts + 1] = ev.text
  end
  eq(table.concat(parts), "second canned reply, streamed")
  if #parts < 2 then
    error("a canned stream in " .. #parts .. " piece(s)")
  end
  eq(c:complete(USER), "Hello from the server: ¡olé!", "after the canned replies")
  eq(os.getenv("DEBUG_MOCK_RESPONSES"), nil, "the environment is left as it was")
end)

test("canned replies in poll mode, and one as a string", function()
  local c = client("/unauthorized", { mock_responses = "just one" })
  local s = c:stream_start(USER)
  local parts = {}
  for _ = 1, 100 do
    local ev = s:poll()
    if ev == false then
      break
    elseif ev then
      parts[#parts + 1] = ev.text
    end
  end
  eq(table.concat(parts), "just one")
end)

test("from_env: a client of MODEL_API_URL and MODEL_NAME", function()
  local err = raises(modelapi.from_env)
  has(err.message, "MODEL_API_URL")
  err = raises(modelapi.from_env, { model = "m" })
  eq(err.status, "MODELAPI_INVALID_ARGUMENT")
end)

-- ---- memory ---------------------------------------------------------------------

test("the garbage collector closes clients and their connections", function()
  collectgarbage("collect")
  local before = open_fds()
  for round = 1, 5 do
    local clients = {}
    for i = 1, 6 do
      clients[i] = client("/complete")
      eq(clients[i]:complete(USER), "Hello from the server: ¡olé!")
    end
    local held = open_fds()
    if held < before + 6 then
      error(string.format("round %d: %d descriptors with 6 pooled connections, %d before",
        round, held, before))
    end
    clients = nil -- luacheck: ignore
    collectgarbage("collect")
    collectgarbage("collect")
    local after = open_fds()
    if after > before then
      error(string.format("round %d: %d descriptors after collecting, %d before", round, after, before))
    end
  end
end)

test("the garbage collector frees streams mid-answer", function()
  collectgarbage("collect")
  local before = open_fds()
  local c = client("/drip")
  local streams = {}
  for i = 1, 4 do
    streams[i] = c:stream(USER)
    eq(streams[i]:next().kind, "content")
  end
  if open_fds() < before + 4 then
    error("4 open streams hold no descriptors?")
  end
  streams = nil -- luacheck: ignore
  collectgarbage("collect")
  collectgarbage("collect")
  local after = open_fds()
  if after > before then
    error(string.format("%d descriptors after collecting, %d before", after, before))
  end
end)

test("many clients and streams, never closed, collected as they go", function()
  for i = 1, 2000 do
    local c = client("/unauthorized", { mock_responses = { "canned " .. i, "again " .. i } })
    eq(c:complete(USER), "canned " .. i)
    local s = c:stream_start(USER)
    local parts = {}
    for _ = 1, 100 do
      local ev = s:poll()
      if ev == false then
        break
      elseif ev then
        parts[#parts + 1] = ev.text
      end
    end
    eq(table.concat(parts), "again " .. i)
    if i % 3 == 0 then
      s:close()
      c:close()
    end
    if i % 250 == 0 then
      collectgarbage("collect")
    end
  end
  collectgarbage("collect")
end)

-- ---- run ------------------------------------------------------------------------

function love.load()
  io.write("modelapi ", tostring(modelapi.VERSION or modelapi.load() and modelapi.VERSION),
    " from ", tostring(os.getenv("MODELAPI_LIB")), "; ", jit.version, "\n")
  local passed, failed = 0, 0
  for _, t in ipairs(tests) do
    local t0 = love.timer.getTime()
    local ok, err = xpcall(t.fn, function(e)
      return debug.traceback(tostring(e), 2)
    end)
    if ok then
      passed = passed + 1
      io.write(string.format("ok %s (%.2f s)\n", t.name, love.timer.getTime() - t0))
    else
      failed = failed + 1
      io.write("FAIL ", t.name, ": ", err, "\n")
    end
    io.flush()
  end
  io.write(string.format("lua tests: %d passed, %d failed\n", passed, failed))
  io.flush()
  love.event.quit(failed == 0 and 0 or 1)
end
