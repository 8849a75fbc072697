-- @noindex
-- What Inpaint and Extend share: find the range, map it to the source file (or render the mix), ask, send.

local util = require("bridge_util")
local map = require("bridge_source_map")
local dialog = require("bridge_dialog")
local render = require("bridge_render")
local request = require("bridge_request")

local command = {}

local DEFAULT_CONTEXT = 10 -- seconds of mix rendered around the range, so the generator hears where it sits

--- The timeline range of the operation: t0, t1 (equal for an extension), or nil after telling the producer why.
local function timeline_range(operation)
  if operation == "inpaint" then
    local t0, t1 = map.time_selection()
    if not t0 then
      util.tell("There is no time selection. Select the range to inpaint on the timeline, select its item, and run this again.")
      return nil
    end
    return t0, t1
  end
  local at = map.extend_point()
  return at, at
end

local function companion_running()
  local beat = tonumber(reaper.GetExtState(util.SECTION, "companion_beat")) or -math.huge
  return reaper.time_precise() - beat < 5
end

--- Run Inpaint ("inpaint") or Extend ("extend") on the current selection.
function command.run(operation, constants)
  if not util.project_saved() then util.tell(util.UNSAVED) return end
  local t0, t1 = timeline_range(operation)
  if not t0 then return end

  local range, refused = map.resolve(t0, t1)
  local force_render = false
  if not range then
    if not refused.renderable then util.tell(refused.reason) return end
    if not util.ask(refused.reason .. "\n\nRender what you hear over this range instead, and send that?") then return end
    force_render = true
  end

  local values = dialog.ask(operation, constants, force_render)
  if not values then return end
  if not values.render and not range then util.tell(refused.reason) return end

  local request_id = request.new_id()
  if values.render then
    local context = tonumber(util.setting("render_context", tostring(DEFAULT_CONTEXT))) or DEFAULT_CONTEXT
    local rendered, err = render.range(request_id, t0, t1, context, operation == "extend" and 0 or context)
    if not rendered then util.tell("Could not render the mix: " .. err) return end
    range = rendered
  end

  local req = request.build(operation, range, values, request_id)
  local sent_to, transport = request.send(req, constants)
  if not sent_to then util.tell("Could not send the request: " .. transport) return end
  -- the manifest places a result whose item is gone at rate 1 (the daemon is not told the playrate): keep it, and
  -- whether the take preserved pitch at that rate, beside the results, so that the project itself stays untouched
  if range.playrate and math.abs(range.playrate - 1) > 1e-9 then
    util.make_folder(util.drop_folder())
    local ppitch = reaper.GetMediaItemTakeInfo_Value(range.take, "B_PPITCH")
    local kept, why = util.add_ledger_line(util.drop_folder(), util.PLAYRATES,
      string.format("%s %s %d", request_id, range.playrate, ppitch))
    if not kept then util.log(why) end
  end
  -- which project sent it: projects saved in one folder share its drop folder, and a result whose item is not in the
  -- project open belongs to the project that sent it, not on this one's results track
  util.make_folder(util.drop_folder())
  local noted, unnoted = util.add_ledger_line(util.drop_folder(), util.SENT,
    request_id .. " " .. select(2, reaper.EnumProjects(-1)))
  if not noted then util.log(unnoted) end
  -- and in the project itself, with the drop folder the request named: saved with the project, a copy saved in
  -- another folder (Save As) still knows where its result goes, and looks there
  util.note_sent(request_id, req.drop_folder)
  -- the daemon keeps a status file for request files only; OSC replies would need a socket listening here
  if transport == "file" then request.add_pending(request_id) end

  local what = operation == "extend"
    and string.format("extend after %s", util.seconds(req.extend_after))
    or string.format("inpaint %s to %s", util.seconds(req.start), util.seconds(req["end"]))
  util.log(string.format("%s: %s of %s sent (%s)", request_id, what, util.basename(req.source), sent_to))
  if not companion_running() then
    util.log("run 'DAW Bridge - Companion' so the results are imported when they arrive")
  end
end

return command
