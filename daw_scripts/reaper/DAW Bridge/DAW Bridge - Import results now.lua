-- @noindex
-- @description DAW Bridge: Import results now (one pass over the drop folder)
-- @version 0.1.0
-- @author daw-bridge

-- One pass of the companion: import new results, apply new decisions and show job states, then stop. The daemon can run this action
-- through REAPER's OSC control surface the moment it delivers (see README.md, "Import at once").

local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
package.path = script_dir .. "?.lua;" .. package.path
local constants = require("bridge_util").load_constants(script_dir)

local companion = require("bridge_companion")
local _, imported = companion.import_new(constants)
companion.apply_decisions(constants, imported)
companion.show_jobs()
