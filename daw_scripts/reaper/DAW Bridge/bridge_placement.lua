-- @noindex
-- Where a delivered variant goes in the project.
--
-- patch: the audio covers source time span_start..span_end (the edited range plus handles). The item that plays
--        the source is split at the span's edges and the result becomes a new take on the middle piece (start
--        offset 0, the source take's playrate), so the rest of the item stays untouched and the producer can flip
--        between the original and each variant with the take selector. A second variant lands on the same piece;
--        a span crossing another job's split gets a take on each piece. Handles stop halfway to another job's
--        replaced range sounding beneath them.
-- full:  the audio is the whole song; it becomes a take on the item with the source take's own start offset and
--        playrate, so every moment lines up with the original.
-- Either way the new take plays its file as the source take plays the song: same pitch shift, volume, pan and
-- channel mode, so flipping takes changes the music and nothing else.
-- The timeline placement is computed through the item's current position, offset and playrate, so it stays right
-- when the item was moved after the request; it equals the manifest's timeline.position for an unmoved item at
-- playrate 1. Results whose item is gone (or that came from a render of the mix) go to a "DAW Bridge results" track
-- at timeline.position (a full delivery: its range and handles only, not the whole song again).
-- Each take, and each item the job made or lengthened, is marked as the job's (bridge_job_takes.lua), so that the
-- producer's decision on the job (bridge_decisions.lua) finds them.

local util = require("bridge_util")
local json = require("bridge_json")
local job_takes = require("bridge_job_takes")

local placement = {}

local EPSILON = 1e-6
placement.RESULTS_TRACK = "DAW Bridge results"

local function finite(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end

local function same_path(a, b)
  return a ~= nil and b ~= nil and a:gsub("\\", "/") == b:gsub("\\", "/")
end

local function find_item(guid)
  if not guid or guid == "" then return nil end
  for i = 0, reaper.CountMediaItems(0) - 1 do
    local item = reaper.GetMediaItem(0, i)
    if util.item_guid(item) == guid then return item end
  end
end

local function find_track(guid)
  if not guid or guid == "" then return nil end
  for i = 0, reaper.CountTracks(0) - 1 do
    local track = reaper.GetTrack(0, i)
    if reaper.GetTrackGUID(track) == guid then return track end
  end
end

--- The takes of `item` that may have played the request's source, best first: the take itself (by GUID), then
--- those playing the same path, then those playing a file of the same name (the daemon reports the path with
--- symlinks resolved). The GUID goes first across all takes: an item may hold the same file twice (slipped apart),
--- and the one the request came from is the one to line up with.
local function source_takes(item, path, take_id)
  local by_guid, by_path, by_name = {}, {}, {}
  for i = 0, reaper.CountTakes(item) - 1 do
    local take = reaper.GetMediaItemTake(item, i)
    if take and not reaper.TakeIsMIDI(take) then
      local _, guid = reaper.GetSetMediaItemTakeInfo_String(take, "GUID", "", false)
      local source = reaper.GetMediaItemTake_Source(take) -- none on an empty take
      local file = source and reaper.GetMediaSourceFileName(source) or ""
      if take_id ~= nil and guid == take_id then by_guid[#by_guid + 1] = take
      elseif same_path(file, path) then by_path[#by_path + 1] = take
      elseif file ~= "" and util.basename(file) == util.basename(path) then by_name[#by_name + 1] = take end
    end
  end
  for _, list in ipairs({ by_path, by_name }) do
    for _, take in ipairs(list) do by_guid[#by_guid + 1] = take end
  end
  return by_guid
end

--- How an item maps source time to the timeline: position, length, offset, playrate of its source take.
local function mapping(item, take)
  local m = {
    item = item,
    take = take,
    position = reaper.GetMediaItemInfo_Value(item, "D_POSITION"),
    length = reaper.GetMediaItemInfo_Value(item, "D_LENGTH"),
    offset = reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS"),
    playrate = reaper.GetMediaItemTakeInfo_Value(take, "D_PLAYRATE"),
  }
  function m.timeline(source_time) return m.position + (source_time - m.offset) / m.playrate end
  return m
end

-- how far apart two pieces may place source second 0 and still count as halves of one split (timeline seconds)
local LINED_UP = 1e-3

--- The item (and its source take) that plays source time `edit_start` of `path`: the item the request came
--- from, else another piece of it on the same track (an earlier variant or the producer may have split it). A piece
--- counts only when it plays the source where the request's item did (source second 0 at the same timeline time),
--- as a split's halves do: another item playing the same file elsewhere (a copy earlier in the song) is no piece of
--- it. nil and why when there is none: the item is gone, or what is left of it no longer plays `edit_start`.
local function item_for(manifest, edit_start)
  local path, ids = manifest.source.path, json.value(manifest.ids) or {}
  local take_id = json.value(ids.take)
  -- where the request's item places source second 0 now (moved since, its pieces moved with it), else where the
  -- request said it was
  local origin, rate
  local function holds(item, lined_up)
    for _, take in ipairs(source_takes(item, path, take_id)) do
      local m = mapping(item, take)
      local t = m.timeline(edit_start)
      if (not lined_up or lined_up(m)) and t >= m.position - EPSILON and t <= m.position + m.length + EPSILON then
        return m
      end
    end
  end
  local item = find_item(json.value(ids.item))
  if item then
    local m = holds(item)
    if m then return m end
    local take = source_takes(item, path, take_id)[1]
    if take then
      local own = mapping(item, take)
      origin, rate = own.timeline(0), own.playrate
    end
  end
  if not origin then
    local source = manifest.source
    origin = json.value(source.position)
    if not finite(origin) then origin = manifest.timeline.position - source.span_start end
  end
  local function piece_of_it(m)
    return math.abs(m.timeline(0) - origin) <= LINED_UP and (not rate or math.abs(m.playrate - rate) <= EPSILON)
  end
  local track = item and reaper.GetMediaItem_Track(item) or find_track(json.value(ids.track))
  if track then
    for i = 0, reaper.GetTrackNumMediaItems(track) - 1 do
      local m = holds(reaper.GetTrackMediaItem(track, i), piece_of_it)
      if m then return m end
    end
  end
  return nil, item and "its item no longer plays the range" or "its item is gone"
end

--- manifest.splice when it is an object, else an empty one (an outsider's manifest may say anything there).
local function splice_of(manifest)
  local splice = json.value(manifest.splice)
  return type(splice) == "table" and splice or {}
end

--- The engine's confidence in a variant, 0..1: splice.confidence, else that of its weakest join (the embedded
--- engine's confidence is its weakest join's; MusicGPT results carry only the joins'); nil when neither is given.
function placement.confidence(manifest)
  local splice = splice_of(manifest)
  if type(json.value(splice.confidence)) == "number" then return splice.confidence end
  local joins = json.value(splice.joins)
  local weakest
  for _, join in ipairs(type(joins) == "table" and joins or {}) do
    local c = type(join) == "table" and json.value(join.confidence)
    if type(c) == "number" then weakest = math.min(weakest or 1, c) end
  end
  return weakest
end

--- `text` on one line: a newline in a take name would split the log and undo lines, and a control character (a NUL
--- from "\u0000") would cut or garble the name where REAPER shows it.
local function one_line(text)
  return (text:gsub("[%s%c]+", " "))
end

--- The take's name: operation, variant, confidence and prompt: "inpaint v1 (conf 0.82): soft guitar solo". An
--- extension that plays the song's own continuation after the point (splice.plays_on, delivered only when nothing
--- else fits) says so, as the producer already has that music: "extend v1 (conf 0.30, the song as it goes on): ...".
function placement.take_name(manifest)
  local request = json.value(manifest.request)
  local prompt = type(request) == "table" and type(request.prompt) == "string" and one_line(request.prompt) or ""
  if (utf8.len(prompt) or #prompt) > 60 then -- cut between characters, never inside one
    prompt = (utf8.len(prompt) and prompt:sub(1, utf8.offset(prompt, 58) - 1) or prompt:sub(1, 57)) .. "..."
  end
  local name = manifest.operation
  local variant = json.value(manifest.variant)
  if type(variant) == "number" or type(variant) == "string" then name = name .. " v" .. one_line(tostring(variant)) end
  local notes = {}
  local confidence = placement.confidence(manifest)
  if confidence then notes[#notes + 1] = string.format("conf %.2f", confidence) end
  if json.value(splice_of(manifest).plays_on) == true then notes[#notes + 1] = "the song as it goes on" end
  if #notes > 0 then name = name .. " (" .. table.concat(notes, ", ") .. ")" end
  if prompt ~= "" then name = name .. ": " .. prompt end
  return name
end

-- How a take plays its file besides where and how fast: a variant of the source take plays its own file the same way
-- (pitch shift, volume, pan, channels), so it sounds in the key and at the level of the original it stands in for.
local PLAYED_LIKE = { "B_PPITCH", "D_PITCH", "I_PITCHMODE", "D_VOL", "D_PAN", "I_CHANMODE" }

--- A new take of the job on `item` playing `audio_path` from `offset` at `playrate`, played like `like` (a take),
--- else preserving pitch as `ppitch` (B_PPITCH) says.
local function add_take(item, audio_path, manifest, name, offset, playrate, like, ppitch)
  local take = job_takes.add_take(item, manifest, name)
  reaper.SetMediaItemTake_Source(take, reaper.PCM_Source_CreateFromFile(audio_path))
  reaper.SetMediaItemTakeInfo_Value(take, "D_STARTOFFS", offset)
  reaper.SetMediaItemTakeInfo_Value(take, "D_PLAYRATE", playrate)
  if like then
    for _, key in ipairs(PLAYED_LIKE) do
      reaper.SetMediaItemTakeInfo_Value(take, key, reaper.GetMediaItemTakeInfo_Value(like, key))
    end
  else
    reaper.SetMediaItemTakeInfo_Value(take, "B_PPITCH", ppitch or 0)
  end
  reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", placement.take_name(manifest), true)
  reaper.SetActiveTake(take)
  return take
end

--- m and the pieces after it on its track that play on from it as the halves of a split do (touching, their source
--- take mapped alike), until one reaches timeline time `stop`: another job's import may have split the item inside
--- this variant's span, and the variant must not stop at that split.
local function run_from(m, manifest, stop)
  local run = { m }
  local track = reaper.GetMediaItem_Track(m.item)
  local path, take_id = manifest.source.path, json.value((json.value(manifest.ids) or {}).take)
  local tail = m
  while tail.position + tail.length < stop - EPSILON do
    local next_m
    for i = 0, reaper.GetTrackNumMediaItems(track) - 1 do
      local item = reaper.GetTrackMediaItem(track, i)
      if item ~= tail.item
        and math.abs(reaper.GetMediaItemInfo_Value(item, "D_POSITION") - (tail.position + tail.length)) <= EPSILON then
        for _, take in ipairs(source_takes(item, path, take_id)) do
          local candidate = mapping(item, take)
          if candidate.playrate == m.playrate and math.abs(candidate.timeline(0) - m.timeline(0)) <= EPSILON then
            next_m = candidate
            break
          end
        end
        if next_m then break end
      end
    end
    if not next_m then break end
    run[#run + 1], tail = next_m, next_m
  end
  return run
end

--- The variant's take on piece `pm` over timeline from..to (split off it, or lengthening it past its end, or next to
--- it when `from` is its end); the variant's file starts at timeline t0. Returns the item the take went on.
local function take_on_piece(pm, from, to, t0, manifest, audio_path, name)
  local piece, piece_end = pm.item, pm.position + pm.length
  if from > pm.position + EPSILON then piece = job_takes.split(pm.item, from, manifest) end
  if not piece then
    -- an extension without handle starts right at the item's end: it gets an item of its own next to it
    piece = reaper.AddMediaItemToTrack(reaper.GetMediaItem_Track(pm.item))
    reaper.SetMediaItemPosition(piece, from, false)
    reaper.SetMediaItemLength(piece, to - from, false)
  elseif to < piece_end - EPSILON then
    job_takes.split(piece, to, manifest)
  elseif to > piece_end + EPSILON then
    job_takes.lengthening(piece, manifest)
    reaper.SetMediaItemLength(piece, to - from, false) -- an extension runs past the original's end
  end
  add_take(piece, audio_path, manifest, name, (from - t0) * pm.playrate, pm.playrate, pm.take)
  return piece
end

--- The replaced range of another job's variant that sounds on `item` (its active take), in source seconds of
--- `path`; nil when the active take is no other job's variant of that file.
local function other_jobs_range(item, manifest)
  local take = reaper.GetActiveTake(item)
  if not take then return nil end
  local _, job = reaper.GetSetMediaItemTakeInfo_String(take, "P_EXT:daw_bridge_job", "", false)
  local _, name = reaper.GetSetMediaItemTakeInfo_String(take, "P_EXT:daw_bridge_manifest", "", false)
  if job == "" or job == manifest.job_id or name == "" then return nil end
  -- the manifest lies beside the take's audio: a result imported from the drop folder the project had before a Save
  -- As is there, not in this one
  local file = reaper.GetMediaSourceFileName(reaper.GetMediaItemTake_Source(take))
  local text = file ~= "" and util.read_file(util.join(util.dirname(file), name))
  local other = json.try_decode(text or util.read_file(util.join(util.drop_folder(), name)) or "")
  local source = type(other) == "table" and json.value(other.source)
  if type(source) ~= "table" or not same_path(json.value(source.path), manifest.source.path)
    or not finite(source.start) or not finite(source["end"]) then return nil end
  return source.start, source["end"]
end

--- first..last (timeline) narrowed so that the variant's handles do not lie over another job's replaced range
--- sounding beneath them (two jobs on neighbouring ranges). A handle is the source as it was, there to hide the
--- join; over another job's variant it would cut that variant's last (or first) moments off with a jump back to the
--- original. The variant starts (or stops) halfway between the two ranges instead, where both files play the source.
local function clear_of_other_jobs(m, manifest, first, last)
  local own_start, own_end = m.timeline(manifest.source.start), m.timeline(manifest.source["end"])
  local track = reaper.GetMediaItem_Track(m.item)
  for i = 0, reaper.GetTrackNumMediaItems(track) - 1 do
    local item = reaper.GetTrackMediaItem(track, i)
    local position = reaper.GetMediaItemInfo_Value(item, "D_POSITION")
    if position < last - EPSILON and position + reaper.GetMediaItemInfo_Value(item, "D_LENGTH") > first + EPSILON then
      local start, stop = other_jobs_range(item, manifest)
      if start then
        local other_start, other_end = m.timeline(start), m.timeline(stop)
        if other_end <= own_start + EPSILON then first = math.max(first, (other_end + own_start) / 2)
        elseif other_start >= own_end - EPSILON then last = math.min(last, (own_end + other_start) / 2) end
      end
    end
  end
  return first, last
end

local function place_patch(m, manifest, audio_path, name)
  local source = manifest.source
  local t0, t1 = m.timeline(source.span_start), m.timeline(source.span_end)
  local first = math.max(t0, m.position) -- handles reaching before the item stay outside it
  local run = run_from(m, manifest, t1)
  local tail = run[#run]
  local last = manifest.operation == "extend" and t1 or math.min(t1, tail.position + tail.length)
  if finite(source["end"]) then first, last = clear_of_other_jobs(m, manifest, first, last) end
  if last <= first + EPSILON then return nil end
  local placed
  for _, pm in ipairs(run) do
    local from, to = math.max(first, pm.position), pm == tail and last or math.min(last, pm.position + pm.length)
    if to > from + EPSILON then
      local piece = take_on_piece(pm, from, to, t0, manifest, audio_path, name)
      placed = placed or piece
    end
  end
  return placed, first
end

local function place_full(m, manifest, audio_path, name)
  -- the piece holding the range's start and those playing on from it up to the range's end (split since by the
  -- producer or another job's import) each get the take, lined up by its own offset
  local source_end = manifest.source["end"]
  local run = finite(source_end) and run_from(m, manifest, m.timeline(source_end)) or { m }
  local tail = run[#run]
  if manifest.operation == "extend" and finite(source_end) then
    local new_end = tail.timeline(source_end)
    if new_end > tail.position + tail.length + EPSILON then
      job_takes.lengthening(tail.item, manifest)
      reaper.SetMediaItemLength(tail.item, new_end - tail.position, false)
    end
  end
  for _, pm in ipairs(run) do add_take(pm.item, audio_path, manifest, name, pm.offset, pm.playrate, pm.take) end
  return m.item, m.position
end

local function results_track()
  for i = 0, reaper.CountTracks(0) - 1 do
    local track = reaper.GetTrack(0, i)
    local _, name = reaper.GetSetMediaTrackInfo_String(track, "P_NAME", "", false)
    if name == placement.RESULTS_TRACK then return track end
  end
  local index = reaper.CountTracks(0)
  reaper.InsertTrackAtIndex(index, false)
  local track = reaper.GetTrack(0, index)
  reaper.GetSetMediaTrackInfo_String(track, "P_NAME", placement.RESULTS_TRACK, true)
  return track
end

--- The playrate the request's item played its source at and whether it preserved pitch (B_PPITCH), kept beside the
--- results when the rate was not 1 (bridge_command: in the drop folder the request named, the one `audio_path` lies
--- in); else 1, 0.
local function sent_playrate(manifest, audio_path)
  local id = json.value(manifest.request_id)
  if type(id) ~= "string" or id == "" then return 1, 0 end
  for _, line in ipairs(util.ledger_lines(util.dirname(audio_path), util.PLAYRATES)) do
    local request_id, rate, ppitch = line:match("^(%S+) (%S+) ?(%S*)$")
    rate = tonumber(rate)
    if request_id == id and rate and rate > 0 then return rate, tonumber(ppitch) == 1 and 1 or 0 end
  end
  return 1, 0
end

--- The part of a `full` delivery's file (the whole song) to place where its item is gone: the range and its handles,
--- in file seconds; nil for a patch, or when the manifest says no range. The whole song on the results track would
--- double the song over the whole arrangement, while only the range is new.
local function full_span(manifest)
  local source = manifest.source
  if manifest.delivery ~= "full" or not finite(source.start) or not finite(source["end"]) then return nil end
  local handle = json.value(splice_of(manifest).handle)
  handle = finite(handle) and handle > 0 and handle or 0
  local first = math.max(source.span_start, source.start - handle)
  local last = math.min(source.span_end, source["end"] + (manifest.operation == "inpaint" and handle or 0))
  if last <= first + EPSILON then return nil end
  return first, last
end

local function place_on_results_track(manifest, audio_path, name)
  local track = results_track()
  local position, length = manifest.timeline.position, manifest.timeline.length
  local playrate, ppitch = sent_playrate(manifest, audio_path)
  local source = manifest.source
  local offset = 0
  local first, last = full_span(manifest)
  if first then
    -- the file starts at span_start, which lies at timeline.position
    offset, position, length = first - source.span_start, position + (first - source.span_start), last - first
  end
  if playrate ~= 1 and finite(json.value(source.position)) then
    -- timeline.position counts source seconds from source.position as timeline seconds, true at rate 1 only
    position, length = source.position + (source.span_start + offset) / playrate, length / playrate
  end
  for i = 0, reaper.GetTrackNumMediaItems(track) - 1 do
    local item = reaper.GetTrackMediaItem(track, i)
    -- another variant of the same range: offer it as a take of the same item
    if math.abs(reaper.GetMediaItemInfo_Value(item, "D_POSITION") - position) < EPSILON
      and math.abs(reaper.GetMediaItemInfo_Value(item, "D_LENGTH") - length) < EPSILON then
      add_take(item, audio_path, manifest, name, offset, playrate, nil, ppitch)
      return item, position
    end
  end
  local item = reaper.AddMediaItemToTrack(track)
  reaper.SetMediaItemPosition(item, position, false)
  reaper.SetMediaItemLength(item, length, false)
  add_take(item, audio_path, manifest, name, offset, playrate, nil, ppitch)
  return item, position
end

--- Who sent the requests whose results lie in `folder`, as a function of the request id: nil for one this project
--- records as its own (a copy saved under another name holds the record), else the project file the folder's
--- ledger names (util.SENT; the last line for the id), or nil. Both are read at the first question and once only: a
--- scan asks it for every result not imported, and another project's results in a shared folder are never imported
--- here, so reading the ledger once for each of them made every scan read it thousands of times over.
function placement.senders(folder)
  local ours, ledger
  return function(id)
    ours = ours or util.project_record(util.SENT_FROM_HERE)
    if ours[id] then return nil end
    if not ledger then
      ledger = {}
      for _, line in ipairs(util.ledger_lines(folder, util.SENT)) do
        local request_id, file = line:match("^(%S+) (.+)$")
        if request_id then ledger[request_id] = file end
      end
    end
    return ledger[id]
  end
end

--- The project file that sent the request, when it is another one than this and the request's item is not here
--- (projects saved in one folder share a drop folder, `folder`); nil when the result is this project's or nothing
--- says whose. `sender_of` is placement.senders(folder)'s, shared by the results of one scan.
function placement.other_project(manifest, folder, sender_of)
  local id = json.value(manifest.request_id)
  if type(id) ~= "string" or id == "" then return nil end
  local sender = (sender_of or placement.senders(folder))(id)
  local _, current = reaper.EnumProjects(-1)
  if not sender or sender == current or item_for(manifest, manifest.source.start) then return nil end
  return sender
end

--- Put one delivered variant (the manifest file `name`) into the project; returns the item it went on, the
--- timeline time where the new take starts, how it was placed ("take on source item" or "results track") and, on
--- the results track, why (the producer looks for it on the item first).
function placement.place(manifest, audio_path, name)
  local source = manifest.source
  local edit_start = source.start
  local m, why = item_for(manifest, edit_start)
  if m then
    local item, at
    if manifest.delivery == "full" then item, at = place_full(m, manifest, audio_path, name)
    else item, at = place_patch(m, manifest, audio_path, name) end
    if item then return item, at, "take on source item" end
    why = "its item was trimmed off the range"
  elseif json.value((json.value(manifest.ids) or {}).item) == nil then
    why = "it came from a render of the mix"
  end
  local item, at = place_on_results_track(manifest, audio_path, name)
  return item, at, "results track", why
end

return placement
