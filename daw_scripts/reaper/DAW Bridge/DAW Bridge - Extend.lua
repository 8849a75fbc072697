-- @noindex
-- @description DAW Bridge: Extend after the time selection's end (or the edit cursor)
-- @version 0.1.0
-- @author daw-bridge

-- Extend: continue the selected item's song after the time selection's end, or after the edit cursor when there
-- is no time selection. Packaged with "DAW Bridge - Inpaint time selection.lua".

local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
package.path = script_dir .. "?.lua;" .. package.path
local constants = require("bridge_util").load_constants(script_dir)

require("bridge_command").run("extend", constants)
