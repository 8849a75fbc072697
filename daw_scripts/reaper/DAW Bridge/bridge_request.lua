-- @noindex
-- Requests to the daemon: built from a source range and the dialog's values, dropped into the inbox as a JSON file
-- (temporary dot-name, then renamed), or sent as OSC when a LuaSocket module is present and chosen in Settings.

local util = require("bridge_util")
local json = require("bridge_json")
local osc = require("bridge_osc")

local request = {}

--- A new request id, "reaper-<unix time>-<counter>"; the counter survives restarts.
function request.new_id()
  local counter = (tonumber(util.setting("counter", "0")) or 0) + 1
  util.set_setting("counter", counter)
  return string.format("reaper-%d-%d", os.time(), counter)
end

--- The request table for `operation` over `range` ({file, start, end, position[, item_id, track_id]})
--- with the dialog's `values`.
function request.build(operation, range, values, request_id)
  local out = {
    command = operation,
    source = range.file,
    prompt = values.prompt or "",
    num_outputs = values.num_outputs,
    request_id = request_id,
    position = range.position,
    drop_folder = util.drop_folder(),
  }
  if operation == "extend" then
    out.extend_after = range["end"]
    out.duration = values.duration
  else
    out.start = range.start
    out["end"] = range["end"]
  end
  -- optional fields go only when they say something, so the daemon's defaults apply otherwise
  if values.lyrics and values.lyrics ~= "" then out.lyrics = values.lyrics end
  for _, key in ipairs({ "lyrics_section_to_replace", "lyrics_section_to_extend" }) do
    if values[key] and values[key] ~= "" then out[key] = values[key] end
  end
  if values.gender then out.gender = values.gender end
  for _, key in ipairs({ "item_id", "track_id", "take_id" }) do out[key] = range[key] end
  for _, key in ipairs({ "backend", "delivery" }) do
    local chosen = util.setting(key, "")
    if chosen ~= "" then out[key] = chosen end
  end
  return out
end

--- Write the request into the inbox; returns the file's path, or nil and the reason.
function request.write_file(req)
  local inbox = util.inbox()
  util.make_folder(inbox)
  local path = util.join(inbox, req.request_id .. ".json")
  local ok, err = util.write_atomic(path, json.encode(req))
  if not ok then return nil, err end
  return path
end

--- Deliver the request by the chosen transport; returns where it went and the transport ("file" or "osc"),
--- or nil and the reason.
function request.send(req, constants)
  if util.setting("transport", "file") == "osc" then
    local port = tonumber(util.setting("osc_port", tostring(constants.DEFAULT_OSC_PORT or 0)))
    local sent, why = osc.send(req, constants, port)
    if sent then return "OSC port " .. port, "osc" end
    util.log("OSC not used (" .. why .. "); writing a request file instead")
  end
  local path, err = request.write_file(req)
  if not path then return nil, err end
  return path, "file"
end

-- Jobs this REAPER is waiting for, so the companion can show their states ------------------------------------

--- Request ids sent and not yet finished.
function request.pending()
  local ids = {}
  for id in util.setting("pending", ""):gmatch("%S+") do ids[#ids + 1] = id end
  return ids
end

function request.set_pending(ids)
  util.set_setting("pending", table.concat(ids, " "))
end

function request.add_pending(id)
  local ids = request.pending()
  ids[#ids + 1] = id
  request.set_pending(ids)
end

return request
