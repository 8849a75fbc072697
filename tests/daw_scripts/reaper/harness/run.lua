-- Run DAW Bridge scripts against the fake REAPER: lua5.4 run.lua <scenario.lua> <result.json>
--
-- The scenario file (written by the pytest side) sets the global `scenario` = {state = ..., scripts = {paths},
-- ticks = n, tick_seconds = s, on_tick = {[n] = function(state) ... end}, fake_socket = bool}. The result file is
-- JSON: the project state afterwards, plus what the scripts showed (console, message boxes, dialogs), rendered,
-- split, undid, ran as actions, changed outside an undo block and deferred, and any error a script raised.

local harness_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
package.path = harness_dir .. "?.lua;" .. harness_dir .. "../../?.lua;" .. package.path  -- ../../: result_json
local fake = require("fake_reaper")
local encode = require("result_json")

local scenario_path, result_path = arg[1], arg[2]
dofile(scenario_path)
local state = scenario.state

local record = { console = "", messages = {}, dialogs = {}, renders = {}, splits = {}, undo = {}, deferred = {},
                 actions = {}, outside_undo = {},
                 datagrams = {}, errors = {}, gfx = {},
                 enumerated = {} } -- extname -> how often the scripts went through that record (EnumProjExtState)

if scenario.fake_socket then
  -- a LuaSocket stand-in that keeps each datagram, so pytest can parse it with python-osc
  package.preload["socket"] = function()
    return { udp = function()
      return {
        sendto = function(_, data, host, port)
          record.datagrams[#record.datagrams + 1] = { hex = (data:gsub(".", function(c) return string.format("%02x", c:byte()) end)),
                                                      host = host, port = port }
          return #data
        end,
        close = function() end,
      }
    end }
  end
end

fake.install(state, record)

-- how often the scripts opened each file, by name: a shared list read once per scan, not once per result
record.opened = {}
local real_open = io.open
io.open = function(path, ...)
  local name = tostring(path):match("([^/\\]+)$") or tostring(path)
  record.opened[name] = (record.opened[name] or 0) + 1
  return real_open(path, ...)
end

-- how often the scripts decoded each JSON text, by the text: a file read again unchanged is not decoded again
record.decoded = {}
local real_require = require
require = function(name)
  local fresh = package.loaded[name] == nil
  local module = real_require(name)
  if name == "bridge_json" and fresh then
    local try_decode = module.try_decode
    module.try_decode = function(text)
      record.decoded[text] = (record.decoded[text] or 0) + 1
      return try_decode(text)
    end
  end
  return module
end

local function protected(fn, ...)
  local ok, err = xpcall(fn, debug.traceback, ...)
  if not ok then record.errors[#record.errors + 1] = tostring(err) end
end

for _, script in ipairs(scenario.scripts) do
  -- each script runs in a fresh module table, as each ReaScript has its own Lua state in REAPER
  for name in pairs(package.loaded) do
    if name:match("^bridge_") then package.loaded[name] = nil end
  end
  protected(dofile, script)
end

local deferred_runs = 0
local tick_cpu = {} -- the CPU seconds of each tick's deferred calls (bench/reaper_records.py: a companion scan)
for tick = 1, scenario.ticks or 0 do
  state.now = state.now + (scenario.tick_seconds or 1)
  if scenario.on_tick and scenario.on_tick[tick] then protected(scenario.on_tick[tick], state) end
  local due, cpu = record.deferred, os.clock()
  record.deferred = {}
  for _, fn in ipairs(due) do
    deferred_runs = deferred_runs + 1
    protected(fn)
  end
  tick_cpu[tick] = os.clock() - cpu
end

for _, problem in ipairs(fake.balance_problems()) do record.errors[#record.errors + 1] = problem end

local out = {
  state = state,
  console = record.console,
  messages = record.messages,
  dialogs = record.dialogs,
  renders = record.renders,
  splits = record.splits,
  undo = record.undo,
  actions = record.actions,
  outside_undo = record.outside_undo,
  datagrams = record.datagrams,
  errors = record.errors,
  still_deferred = #record.deferred,
  deferred_runs = deferred_runs,
  gfx = record.gfx,
  opened = record.opened,
  decoded = record.decoded,
  enumerated = record.enumerated,
  tick_cpu = tick_cpu,
}
io.open, require = real_open, real_require
local f = assert(io.open(result_path, "wb"))
f:write(encode(out))
f:close()
