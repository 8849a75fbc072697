-- @description DAW Bridge: inpaint or extend a range of a song with the daw-bridge daemon
-- @version 0.1.0
-- @author daw-bridge
-- @links
--   Website https://github.com/daw-bridge/daw-bridge
-- @about
--   # DAW Bridge
--   Sends the time selection of the selected item to the daw-bridge daemon to be inpainted (replaced) or
--   extended, and imports the results as takes. Needs the daw-bridge daemon running on this computer.
--   Start "DAW Bridge - Companion" once per session to import results as they arrive.
-- @provides
--   [main] DAW Bridge - Extend.lua
--   [main] DAW Bridge - Companion.lua
--   [main] DAW Bridge - Import results now.lua
--   [main] DAW Bridge - Settings.lua
--   [main] DAW Bridge - Show result picture.lua
--   [nomain] bridge_*.lua
-- @changelog
--   First release: inpaint, extend, render path, companion importer, settings.

-- Inpaint: replace the time selection of the selected item (or of the mix, rendered) with generated material.

local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
package.path = script_dir .. "?.lua;" .. package.path
local constants = require("bridge_util").load_constants(script_dir)

require("bridge_command").run("inpaint", constants)
