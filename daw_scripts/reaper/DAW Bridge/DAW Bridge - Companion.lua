-- @noindex
-- @description DAW Bridge: Companion (background: imports results, applies keep/discard, shows job states)
-- @version 0.1.0
-- @author daw-bridge

-- Runs in the background until stopped from the Actions list: every second it imports new manifests from this
-- project's drop folder as takes, applies the producer's new decisions on them (choose, keep, discard), and writes
-- job state changes to the console.

local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
package.path = script_dir .. "?.lua;" .. package.path
local constants = require("bridge_util").load_constants(script_dir)

local util = require("bridge_util")
local companion = require("bridge_companion")

local INTERVAL = 1.0 -- seconds between scans: results feel immediate, the disk barely notices
local last_scan = -math.huge

local function scan()
  local _, imported = companion.import_new(constants)
  companion.apply_decisions(constants, imported)
  companion.show_jobs()
end

local function tick()
  local now = reaper.time_precise()
  if now - last_scan >= INTERVAL then
    last_scan = now
    reaper.SetExtState(util.SECTION, "companion_beat", tostring(now), false)
    -- an error no check foresaw is said once and the companion goes on: ending the loop here would stop every
    -- later result from coming in, until the producer noticed and started it again
    local ok, err = pcall(scan)
    if not ok then util.report_once("scan " .. tostring(err), "companion: a scan stopped at an error; it goes on "
      .. "and scans again in a second: " .. tostring(err)) end
  end
  reaper.defer(tick)
end

util.log("companion started; watching "
  .. (util.project_saved() and util.drop_folder() or "the project once it is saved"))
tick()
