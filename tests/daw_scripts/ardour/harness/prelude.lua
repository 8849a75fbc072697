-- Loaded first by every headless run: the scripts' cores, a session helper, and a way to report back to pytest.
-- The test appends its own steps after this file. SEND_SCRIPT, IMPORT_SCRIPT and the JSON encoder's path come
-- from the environment, so a run needs nothing but ardour7-lua and these files.

DAW_BRIDGE_HEADLESS = true
dofile(os.getenv("DAW_BRIDGE_SEND_SCRIPT"))
SEND = DAW_BRIDGE
dofile(os.getenv("DAW_BRIDGE_IMPORT_SCRIPT"))
IMPORT = DAW_BRIDGE
local encode = dofile(os.getenv("DAW_BRIDGE_RESULT_JSON"))

-- One line per report; pytest reads the lines that start with the marker, whatever else Ardour prints.
function report(value)
	print("DAW_BRIDGE_RESULT " .. encode(value))
	io.stdout:flush()
end

AudioEngine:set_backend("None (Dummy)", "", "")

-- Put `audio` (a WAV at the session's rate) on `track` as a region at `position` samples, trimmed by `trim`
-- samples at its start, `length` samples long: the way a producer's session looks after an import and a trim.
-- The session is saved, closed, written and left closed; returns the track's id and the new region's id.
function place_audio(session_file, track_name, audio, channels, frames, position, trim, length, name)
	local track = Session:route_by_name(track_name):to_track()
	local track_id = track:to_stateful():id():to_s()
	local placement = {
		file = IMPORT.copy_into_session(Session, audio), channels = channels, frames = frames, name = name,
		playlist_id = track:playlist():to_stateful():id():to_s(), position = position, trim = trim, length = length,
	}
	local superclock = Temporal.superclock_ticks_per_second() // Session:nominal_sample_rate()
	Session:save_state("")
	close_session()
	local xml, placed = IMPORT.add_regions(assert(IMPORT.read_file(session_file, "rb")), { placement }, superclock)
	IMPORT.write_file(session_file, assert(xml))
	return { track_id = track_id, region_id = placed[1] }
end

-- Every region of every track, as plain data.
function regions_of_session()
	local found = {}
	for route in Session:get_tracks():iter() do
		local track = route:to_track()
		for region in track:playlist():region_list():iter() do
			local info = SEND.describe_region(region)
			info.track = track:name()
			info.track_id = track:to_stateful():id():to_s()
			info.layer = region:layer()
			info.muted = region:muted()
			found[#found + 1] = info
		end
	end
	return found
end
