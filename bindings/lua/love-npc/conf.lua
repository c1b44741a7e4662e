-- LÖVE 11.4 configuration: no window, graphics or sound, so the example
-- runs headless (a real game would keep them; nothing else changes).
function love.conf(t)
  t.version = "11.4"
  t.console = false
  t.window = false
  t.modules.audio = false
  t.modules.data = false
  t.modules.font = false
  t.modules.graphics = false
  t.modules.image = false
  t.modules.joystick = false
  t.modules.keyboard = false
  t.modules.math = false
  t.modules.mouse = false
  t.modules.physics = false
  t.modules.sound = false
  t.modules.system = false
  t.modules.thread = false
  t.modules.touch = false
  t.modules.video = false
  t.modules.window = false
  -- kept: event (love.event.quit), timer (the frame clock)
end
