ardour {
	["type"]    = "EditorHook",
	name        = "DAW Bridge: Import results as they arrive",
	license     = "MIT",
	author      = "daw-bridge",
	description = [[Each second, bring new results the daw-bridge daemon delivered into <session folder>/daw-bridge/
onto the timeline, and apply the producer's keep or discard decisions, as "DAW Bridge: Import results" does, without
a message (what it did is in the log window). Not while recording. Needs daw_bridge_import.lua in the same scripts
folder: `daw-bridge install ardour` puts both there.]]
}

function signals ()
	local s = LuaSignal.Set()
	s:add({ [LuaSignal.LuaTimerS] = true })
	return s
end

function factory ()
	local core, busy, told = nil, false, {}

	local function tell(line)  -- each note once, not every second
		if not told[line] then
			told[line] = true
			print("DAW Bridge: " .. line)
		end
	end

	-- The import script's core (its functions, no dialog), from the scripts folder it was installed into.
	local function load_core()
		local path = ARDOUR.user_config_directory(-1) .. "/scripts/daw_bridge_import.lua"
		DAW_BRIDGE_HEADLESS = true
		local chunk, err = loadfile(path)  -- Ardour's Lua has no dofile
		local ok = chunk ~= nil
		if ok then ok, err = pcall(chunk) end
		DAW_BRIDGE_HEADLESS = nil
		if not ok then return tell("cannot load " .. path .. " (run `daw-bridge install ardour`): " .. tostring(err)) end
		return DAW_BRIDGE
	end

	return function ()
		-- Ardour's import runs the main loop, whose timer can call this again before it returns: that call waits.
		if busy or Session:actively_recording() then return end
		core = core or load_core()
		if not core then return end
		-- the action importing (in its own Lua state, where `busy` does not reach): this second is left alone
		local running = core.running_import(Session)
		if running then return tell(running) end
		busy = true
		local ok, imported, notes, drop_folder = pcall(core.import_open_session)
		local decided_ok, decided, decision_notes = ok, {}, {}
		if ok then decided_ok, decided, decision_notes = pcall(core.apply_decisions, Session, drop_folder) end
		busy = false
		if not ok then return tell("import failed: " .. tostring(imported)) end
		for _, name in ipairs(imported) do print("DAW Bridge: imported " .. name) end
		for _, note in ipairs(notes) do tell("not imported: " .. note) end
		if not decided_ok then return tell("applying a decision failed: " .. tostring(decided)) end
		for _, applied in ipairs(decided) do print("DAW Bridge: applied " .. applied.text) end
		for _, note in ipairs(decision_notes) do tell("not applied: " .. note) end
	end
end
