--[[
love-npc: a LÖVE game whose NPC speaks a line streamed from a model, while
the game keeps its 60 frames a second. Poll mode: stream_start returns at
once, and each love.update polls with wait 0 (never blocking) for whatever
has arrived.

  love bindings/lua/love-npc [frames]        (default 120; env NPC_FRAMES)

Asks MODEL_API_URL / MODEL_NAME (MODEL_API_KEY if needed); without
MODEL_API_URL the NPC speaks a canned line (the library's canned replies).
The library: $MODELAPI_LIB, else libmodelapi.so on the library path.

Runs the given number of frames, then prints a report on stdout and quits:
  frames: <N>
  longest frame: <A> ms of work, <B> ms between two frames (budget 16.667 ms)
  modelapi calls: <C> ms in all, <D> ms at most in one frame
  events: <E> (<Q> frames without one)
  text: <the NPC's line, as a JSON string>
  answer: <the whole answer, chat.completion JSON>
and, on failure, "error: <STATUS_NAME> (<http status>): <message>" (exit 1).
Exit status 0 when the line arrived whole within the frames.
]]

-- modelapi.lua: beside main.lua (ship it so), else one folder up (here).
package.path = package.path .. ";" .. love.filesystem.getSource() .. "/../?.lua"
local modelapi = require("modelapi")

local FRAME = 1 / 60
local CANNED = "Well met, traveller! The forge is hot and my hammer is ready: "
  .. "bring me iron, and I'll make you a blade worth its name."

local npc = {
  name = "Mira the blacksmith",
  x = 0,          -- she paces in front of her forge, every frame
  shown = 0,      -- characters of her line shown in the dialog box
  text = {},      -- the pieces of her line that arrived
}

local stats = {
  frames = 0, longest_work = 0, longest_gap = 0, api = 0, longest_api = 0,
  events = 0, quiet = 0,
}

local client, stream, failure, finished
local frames_wanted

local function make_client()
  local url = os.getenv("MODEL_API_URL")
  if url and url ~= "" then
    return modelapi.from_env{timeout_ms = 30000}
  end
  io.stderr:write("(MODEL_API_URL is not set: the NPC speaks a canned line)\n")
  local env = os.getenv("DEBUG_MOCK_RESPONSES")
  return modelapi.new{
    model = "canned",
    api_base = "http://localhost:8000",
    -- keep a DEBUG_MOCK_RESPONSES the user set
    mock_responses = (env == nil or env == "") and { CANNED } or nil,
  }
end

function love.load(args)
  frames_wanted = tonumber(args[1] or os.getenv("NPC_FRAMES") or "") or 120
  local request = {
    messages = {
      { role = "system", content = "You are " .. npc.name .. ", an NPC in a fantasy game. Answer in one or two short sentences." },
      { role = "user", content = os.getenv("NPC_PROMPT") or "Greet the traveller who just walked into your forge." },
    },
  }
  local max_tokens = tonumber(os.getenv("NPC_MAX_TOKENS") or "")
  if max_tokens then
    request.max_tokens = max_tokens
  end
  client = make_client()
  -- Returns at once: connecting, sending and reading happen in the polls.
  stream = client:stream_start(request)
end

-- Everything that arrived since the last frame, without ever waiting.
local function poll_model()
  if finished or failure then
    return
  end
  local t0 = love.timer.getTime()
  local got = 0
  local ok, err = pcall(function()
    while true do
      local ev = stream:poll(0)
      if ev == nil then
        return            -- nothing more this frame
      elseif ev == false then
        finished = true   -- the line is whole
        return
      end
      got = got + 1
      if ev.kind == "content" then
        npc.text[#npc.text + 1] = ev.text
      end
    end
  end)
  if not ok then
    failure = err
  end
  local took = love.timer.getTime() - t0
  stats.api = stats.api + took
  stats.longest_api = math.max(stats.longest_api, took)
  stats.events = stats.events + got
  if got == 0 then
    stats.quiet = stats.quiet + 1
  end
end

function love.update(dt)
  poll_model()
  -- the rest of the game: Mira paces, the dialog box types her line out
  npc.x = (npc.x + 60 * dt) % 200
  local line = table.concat(npc.text)
  npc.shown = math.min(#line, npc.shown + 2)
end

-- A fixed-step loop: love.update once per 1/60 s, paced with love.timer.sleep.
function love.run()
  love.load(love.arg.parseGameArguments(arg))
  love.timer.step()
  local next_frame = love.timer.getTime()
  local last_start
  return function()
    love.event.pump()
    for name, a in love.event.poll() do
      if name == "quit" then
        return a or 0
      end
    end
    local start = love.timer.getTime()
    if last_start then
      stats.longest_gap = math.max(stats.longest_gap, start - last_start)
    end
    last_start = start
    love.update(love.timer.step())
    stats.frames = stats.frames + 1
    stats.longest_work = math.max(stats.longest_work, love.timer.getTime() - start)
    if stats.frames >= frames_wanted then
      return love.quit_with_report()
    end
    next_frame = next_frame + FRAME
    local now = love.timer.getTime()
    if next_frame < now then
      next_frame = now   -- fell behind: start the next frame now
    else
      love.timer.sleep(next_frame - now)
    end
  end
end

local function ms(seconds)
  return string.format("%.3f", seconds * 1000)
end

function love.quit_with_report()
  print(string.format("frames: %d", stats.frames))
  print(string.format("longest frame: %s ms of work, %s ms between two frames (budget 16.667 ms)",
    ms(stats.longest_work), ms(stats.longest_gap)))
  print(string.format("modelapi calls: %s ms in all, %s ms at most in one frame",
    ms(stats.api), ms(stats.longest_api)))
  print(string.format("events: %d (%d frames without one)", stats.events, stats.quiet))
  print("text: " .. modelapi.json_encode(table.concat(npc.text)))
  local status = 0
  if failure then
    print("error: " .. tostring(failure))
    status = 1
  elseif not finished then
    print("error: the line was not whole after " .. stats.frames .. " frames")
    status = 1
  else
    print("answer: " .. stream:completion())
  end
  io.stdout:flush()
  stream:close()
  client:close()
  return status
end
