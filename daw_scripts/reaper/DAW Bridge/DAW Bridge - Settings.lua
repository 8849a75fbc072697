-- @noindex
-- @description DAW Bridge: Settings (inbox folder, transport, render context, backend, delivery)
-- @version 0.1.0
-- @author daw-bridge

-- Where requests go and how: stored in REAPER's persistent ExtState section "daw_bridge".

local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
package.path = script_dir .. "?.lua;" .. package.path
local constants = require("bridge_util").load_constants(script_dir)

local util = require("bridge_util")

local function one_of(choices, text)
  for _, choice in ipairs(choices) do if choice == text then return true end end
  return false
end

local SETTINGS = {
  { key = "inbox", caption = "Daemon inbox folder", default = util.DEFAULT_INBOX,
    check = function(text) if text == "" then return "must not be empty" end end },
  { key = "transport", caption = "Transport: file or osc", default = "file",
    check = function(text) if not one_of({ "file", "osc" }, text) then return "must be file or osc" end end },
  { key = "osc_port", caption = "Daemon OSC port", default = tostring(constants.DEFAULT_OSC_PORT or ""),
    check = function(text)
      local port = math.tointeger(tonumber(text))
      if not port or port < 1 or port > 65535 then return "must be a whole number in 1..65535" end
    end },
  { key = "render_context", caption = "Seconds of mix around a render", default = "10",
    check = function(text)
      local seconds = tonumber(text)
      if not seconds or seconds < 0 or seconds > 120 then return "must be a number in 0..120" end
    end },
  { key = "backend", caption = "Backend (blank: daemon's choice)", default = "",
    check = function(text)
      local choices = (constants.ENUMS or {}).backend or {}
      if text ~= "" and not one_of(choices, text) then return "must be blank or one of " .. table.concat(choices, ", ") end
    end },
  { key = "delivery", caption = "Delivery (blank: daemon's choice)", default = "",
    check = function(text)
      local choices = (constants.ENUMS or {}).delivery or {}
      if text ~= "" and not one_of(choices, text) then return "must be blank or one of " .. table.concat(choices, ", ") end
    end },
}

local captions, typed = {}, {}
for i, s in ipairs(SETTINGS) do
  captions[i] = s.caption
  typed[i] = util.setting(s.key, s.default)
end

while true do
  local ok, answer = reaper.GetUserInputs("DAW Bridge: Settings", #SETTINGS,
    table.concat(captions, ",") .. ",separator=\n,extrawidth=320", table.concat(typed, "\n"))
  if not ok then return end
  local i = 0
  for text in (answer .. "\n"):gmatch("(.-)\n") do
    i = i + 1
    if SETTINGS[i] then typed[i] = text:match("^%s*(.-)%s*$") end
  end
  local problems = {}
  for j, s in ipairs(SETTINGS) do
    local why = s.check(typed[j])
    if why then problems[#problems + 1] = string.format('%s: "%s" %s', s.key, typed[j], why) end
  end
  if #problems == 0 then
    -- blank choices are stored as blank, which means "leave it to the daemon"
    for j, s in ipairs(SETTINGS) do reaper.SetExtState(util.SECTION, s.key, typed[j], true) end
    util.log("settings saved; requests go to " .. util.inbox())
    return
  end
  util.tell("Please correct:\n" .. table.concat(problems, "\n"))
end
