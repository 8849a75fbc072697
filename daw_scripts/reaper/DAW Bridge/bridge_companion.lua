-- @noindex
-- The companion's work: import each new manifest in the drop folder once, apply the producer's decisions on
-- delivered jobs (bridge_decisions.lua), and report job states.
--
-- Each manifest imported is recorded in the project (util.IMPORTED, project extended state), so a restart or a second
-- copy of the companion never imports one twice, while closing the project without saving forgets the import with
-- its takes and brings the result back. Results an older companion listed in <drop folder>/.reaper-imported count
-- as imported too (that list is read, no longer written).

local util = require("bridge_util")
local json = require("bridge_json")
local placement = require("bridge_placement")
local request = require("bridge_request")
local decisions = require("bridge_decisions")

local companion = {}

local LEGACY_LIST = ".reaper-imported" -- where an older companion listed its imports, one file name a line
local FINISHED = { delivered = true, failed = true, cancelled = true }

local report_once = util.report_once

--- The manifests imported into this project: file name -> true. The project's record, and the list an older
--- companion kept in the drop folder: a project from before this version records its imports there only, and its
--- results must not come again as duplicate takes.
local function imported(folder)
  local done = {}
  for _, line in ipairs(util.ledger_lines(folder, LEGACY_LIST)) do done[line] = true end
  for name in pairs(util.project_record(util.IMPORTED)) do done[name] = true end
  return done
end

local function number_at(t, a, b)
  local v = t[a]
  if type(v) ~= "table" then return nil end
  local n = v[b]
  if type(n) ~= "number" or n ~= n or n == math.huge or n == -math.huge then return nil end -- finite only
  return n
end

--- The manifest's problem for this importer, or nil when it can be imported.
function companion.check_manifest(manifest, constants)
  local expected = constants.MANIFEST_FORMAT or "daw-bridge.manifest/1"
  if type(manifest) ~= "table" then return "not a JSON object" end
  if manifest.format ~= expected then
    return string.format('format is "%s", this importer reads "%s"', tostring(manifest.format), expected)
  end
  local audio = manifest.audio
  if type(audio) ~= "string" or audio == "" or audio:find("[/\\]") or audio:match("^%.%.?$") then
    return "audio must be a file name in the manifest's folder, got " .. tostring(audio)
  end
  for _, field in ipairs({ { "timeline", "position" }, { "timeline", "length" }, { "source", "start" },
                           { "source", "span_start" }, { "source", "span_end" } }) do
    if not number_at(manifest, field[1], field[2]) then return field[1] .. "." .. field[2] .. " must be a finite number" end
  end
  if manifest.operation ~= "inpaint" and manifest.operation ~= "extend" then
    return "operation must be inpaint or extend, got " .. tostring(manifest.operation)
  end
  return nil
end

--- Whether the file at `path` starts as a WAV does (RIFF, or RF64 / BW64 for a large one); nil when it is missing.
local function wav_header(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local head = f:read(12) or ""
  f:close()
  local riff = head:sub(1, 4)
  return (riff == "RIFF" or riff == "RF64" or riff == "BW64") and head:sub(9, 12) == "WAVE"
end

--- How many whole frames the WAV file at `path` holds: its data chunk's size, cut to what the file holds (one being
--- written or copied holds less), over its frame size; 0 while the chunks before the data are not all there.
local function wav_frames(path)
  local f = io.open(path, "rb")
  if not f then return 0 end
  local size, at, frame_bytes, big_data = f:seek("end"), 12, nil, nil
  while at + 8 <= size do
    f:seek("set", at)
    local id, length = f:read(4), string.unpack("<I4", f:read(4))
    local whole = at + 8 + length <= size
    if id == "ds64" and length >= 24 and whole then -- RF64 / BW64: the sizes that do not fit in 32 bits
      big_data = string.unpack("<I8", f:read(24), 9)
    elseif id == "fmt " and length >= 16 and whole then
      frame_bytes = string.unpack("<I2", f:read(16), 13) -- nBlockAlign
    elseif id == "data" then
      f:close()
      if length == 0xFFFFFFFF and big_data then length = big_data end
      if not frame_bytes or frame_bytes == 0 then return 0 end
      return math.min(length, size - at - 8) // frame_bytes
    end
    at = at + 8 + length + length % 2
  end
  f:close()
  return 0
end

local function import_one(folder, name, constants)
  local text = util.read_file(util.join(folder, name))
  local manifest, err = json.try_decode(text or "")
  local problem = err or companion.check_manifest(manifest, constants)
  if problem then report_once(name, name .. " not imported: " .. problem) return false end
  local audio_path = util.join(folder, manifest.audio)
  local is_wav = wav_header(audio_path)
  if is_wav == nil then
    report_once(name, name .. " not imported: its audio " .. manifest.audio .. " is missing")
    return false
  elseif not is_wav then
    report_once(name, name .. " not imported: its audio " .. manifest.audio .. " is empty or not a WAV file")
    return false
  end
  local frames = json.value(manifest.frames)
  local holds = type(frames) == "number" and frames >= 1 and wav_frames(audio_path)
  if holds and holds < frames then -- not whole yet (copied in by something other than the daemon): wait for it
    report_once(name .. " partial", string.format("%s not imported yet: its audio %s holds %d of its %d frames "
      .. "(still being written or copied); it is imported once whole", name, manifest.audio, holds, frames))
    return false
  end
  local owner = placement.other_project(manifest)
  if owner then
    report_once(name .. " owner", string.format("%s left for %s, the project that sent it: its item is not in this "
      .. "one", name, util.basename(owner)))
    return false
  end
  -- recorded before it is placed, and taken off the record again when the placement fails (the next scan tries again)
  util.set_project_record(util.IMPORTED, name, "1")
  reaper.Undo_BeginBlock()
  reaper.PreventUIRefresh(1)
  local ok, item, at, how = pcall(placement.place, manifest, audio_path, name)
  reaper.PreventUIRefresh(-1)
  reaper.UpdateArrange()
  reaper.Undo_EndBlock("DAW Bridge: import " .. placement.take_name(manifest), -1)
  if not ok then
    util.set_project_record(util.IMPORTED, name, "")
    report_once(name, name .. " not imported: " .. tostring(item))
    return false
  end
  util.log(string.format("imported %s as %s (%s at %s)", manifest.audio, placement.take_name(manifest), how,
    util.seconds(at)))
  return true
end

--- Whether this project has a drop folder of its own: an unsaved one shares REAPER's default media folder with
--- every other unsaved project, so results found there may be another project's and are left alone.
local function unsaved_ok()
  if util.project_saved() then return true end
  util.report_once("unsaved", "nothing imported until the project is saved: results go beside the project file")
  return false
end

--- Import every manifest in the drop folder not imported before; returns how many were imported.
function companion.import_new(constants)
  if not unsaved_ok() then return 0 end
  local folder = util.drop_folder()
  local done = imported(folder)
  local count = 0
  for _, name in ipairs(util.list_files(folder)) do
    if name:sub(1, 1) ~= "." and name:sub(-5) == ".json" and not done[name] then
      if import_one(folder, name, constants) then count = count + 1 end
    end
  end
  return count
end

--- Apply each decision newer than the one applied last for its job; returns how many were applied.
function companion.apply_decisions(constants)
  if not unsaved_ok() then return 0 end
  local folder = util.drop_folder()
  return decisions.apply_new(constants, folder, imported(folder))
end

local last_seen = {} -- request id -> last state line shown

local function describe(status)
  local state = tostring(status.state)
  local line = state
  if type(status.progress) == "number" and status.progress > 0 and not FINISHED[state]
    and state ~= "submission_unknown" then
    line = line .. string.format(" %d%%", math.floor(status.progress * 100 + 0.5))
  end
  local err = json.value(status.error)
  if state == "failed" and type(err) == "table" then
    line = line .. string.format(": %s (%s)", tostring(err.message), tostring(err.code))
  elseif state == "delivered" and type(status.manifests) == "table" then
    line = line .. string.format(": %d variant(s), importing", #status.manifests)
  elseif state == "submission_unknown" then
    line = line .. ": a paid submission may or may not have reached the service; resolve it with the daemon"
  end
  local message = json.value(status.message)
  if type(message) == "string" and message ~= "" and state ~= "failed" then line = line .. " - " .. message end
  return line
end

--- Show each waiting job's state when it changes; forget jobs that finished.
function companion.show_jobs()
  local status_folder = util.join(util.inbox(), "status")
  local still = {}
  for _, id in ipairs(request.pending()) do
    local text = util.read_file(util.join(status_folder, id .. ".json"))
    local status = text and json.try_decode(text)
    if type(status) == "table" then
      local line = describe(status)
      if last_seen[id] ~= line then
        last_seen[id] = line
        util.log(id .. ": " .. line)
      end
      if not FINISHED[tostring(status.state)] then still[#still + 1] = id end
    else
      still[#still + 1] = id -- not picked up yet
    end
  end
  request.set_pending(still)
end

return companion
