-- @noindex
-- From what the producer selected (time selection, edit cursor, selected item) to seconds in the source file.
--
-- A take plays its source linearly: timeline time t sounds source time  offset + (t - item position) * playrate.
-- Whatever breaks that line (MIDI, reversed or section sources, stretch markers, a range outside the item or past
-- the end of the file) is refused with the reason, and the caller may offer to render the mix instead.

local util = require("bridge_util")

local map = {}

local EPSILON = 1e-6 -- seconds; REAPER positions are doubles that drift by far less than a sample

--- The time selection as start, end, or nil when there is none.
function map.time_selection()
  local start, stop = reaper.GetSet_LoopTimeRange(false, false, 0, 0, false)
  if stop - start <= EPSILON then return nil end
  return start, stop
end

--- Where an extension starts: the time selection's end, else the edit cursor; and which one it was.
function map.extend_point()
  local _, stop = map.time_selection()
  if stop then return stop, "the time selection's end" end
  return reaper.GetCursorPosition(), "the edit cursor"
end

local function item_bounds(item)
  local position = reaper.GetMediaItemInfo_Value(item, "D_POSITION")
  return position, position + reaper.GetMediaItemInfo_Value(item, "D_LENGTH")
end

local function refusal(reason, renderable)
  return { reason = reason, renderable = renderable ~= false }
end

--- An item as the producer knows it: "mix.wav on 'Mix'" ("on an unnamed track" where the track has no name).
local function item_words(item)
  local take = reaper.GetActiveTake(item)
  local file = take and not reaper.TakeIsMIDI(take)
    and reaper.GetMediaSourceFileName(reaper.GetMediaItemTake_Source(take))
  local _, track = reaper.GetSetMediaTrackInfo_String(reaper.GetMediaItem_Track(item), "P_NAME", "", false)
  return string.format("%s on %s", (file and file ~= "") and util.basename(file) or "an item",
    (track and track ~= "") and ("'" .. track .. "'") or "an unnamed track")
end

--- The selected item that holds the range t0..t1 (for an extension, t0 == t1), or nil and a refusal. Of several
--- selected items holding it (a marquee over many tracks; grouped items, which REAPER selects together), the one on
--- the only selected track among theirs is meant; else they are refused by name: which one to replace is the
--- producer's to say.
function map.selected_item(t0, t1)
  local count = reaper.CountSelectedMediaItems(0)
  if count == 0 then return nil, refusal("No item is selected. Select the item whose audio should be used.") end
  local nearest, holding = nil, {}
  for i = 0, count - 1 do
    local item = reaper.GetSelectedMediaItem(0, i)
    local first, last = item_bounds(item)
    if t0 >= first - EPSILON and t1 <= last + EPSILON then holding[#holding + 1] = item end
    nearest = nearest or { first, last }
  end
  if #holding > 1 and t0 == t1 then
    -- an extension continues what plays up to the point: at a split, the piece that ends there, not the next one
    local before = {}
    for _, item in ipairs(holding) do
      if t0 > item_bounds(item) + EPSILON then before[#before + 1] = item end
    end
    if #before > 0 then holding = before end
  end
  if #holding > 1 then
    local on_selected_track = {}
    for _, item in ipairs(holding) do
      if reaper.IsTrackSelected(reaper.GetMediaItem_Track(item)) then
        on_selected_track[#on_selected_track + 1] = item
      end
    end
    if #on_selected_track == 1 then holding = on_selected_track end
  end
  if #holding == 1 then return holding[1] end
  if #holding > 1 then
    local names = {}
    for _, item in ipairs(holding) do names[#names + 1] = item_words(item) end
    local range = t0 == t1 and util.seconds(t0) or ("the range " .. util.seconds(t0) .. " to " .. util.seconds(t1))
    return nil, refusal(string.format("%d selected items hold %s (%s). Select only the one to send, or select "
      .. "its track as well (grouped items are selected together).", #holding, range, table.concat(names, ", ")))
  end
  return nil, refusal(string.format(
    "The range %s to %s is not inside the selected item (%s to %s). Select the item that holds the whole range.",
    util.seconds(t0), util.seconds(t1), util.seconds(nearest[1]), util.seconds(nearest[2])))
end

--- Why this take cannot be read linearly from its file, or nil when it can.
local function take_refusal(take)
  if not take then return refusal("The selected item has no take to read.") end
  if reaper.TakeIsMIDI(take) then
    return refusal("The selected item is MIDI: it has no audio file to send.")
  end
  local source = reaper.GetMediaItemTake_Source(take)
  if reaper.GetMediaSourceParent(source) then
    local _, _, _, reversed = reaper.PCM_Source_GetSectionInfo(source)
    if reversed then return refusal("The take plays its source reversed, so its times do not map to the file.") end
    return refusal("The take plays a section of its source, so its times do not map to the file.")
  end
  if reaper.GetTakeNumStretchMarkers(take) > 0 then
    return refusal("The take has stretch markers, so its times do not map to the file.")
  end
  if reaper.GetMediaSourceFileName(source) == "" then
    return refusal("The take's source has no file on disk.")
  end
  return nil
end

--- The source-file view of timeline range t0..t1 on `item`: a table with file, start, end (source seconds),
--- position (timeline time of source time 0), playrate, item_id, track_id; or nil and a refusal.
function map.source_range(item, t0, t1)
  local take = reaper.GetActiveTake(item)
  local refused = take_refusal(take)
  if refused then return nil, refused end
  local source = reaper.GetMediaItemTake_Source(take)
  local position = reaper.GetMediaItemInfo_Value(item, "D_POSITION")
  local offset = reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS")
  local playrate = reaper.GetMediaItemTakeInfo_Value(take, "D_PLAYRATE")
  local function source_time(t) return offset + (t - position) * playrate end
  local start, stop = source_time(t0), source_time(t1)
  if start < -EPSILON then
    return nil, refusal(string.format("The range starts %s before the source file begins.", util.seconds(-start)))
  end
  local length, in_beats = reaper.GetMediaSourceLength(source)
  if not in_beats and stop > length + EPSILON then
    return nil, refusal(string.format(
      "The range reaches %s into the source file, which is only %s long (the item loops its source).",
      util.seconds(stop), util.seconds(length)))
  end
  return {
    item = item,
    take = take,
    file = reaper.GetMediaSourceFileName(source),
    start = math.max(start, 0),
    ["end"] = stop,
    position = position - offset / playrate,
    playrate = playrate,
    item_id = util.item_guid(item),
    take_id = select(2, reaper.GetSetMediaItemTakeInfo_String(take, "GUID", "", false)),
    track_id = reaper.GetTrackGUID(reaper.GetMediaItem_Track(item)),
  }
end

--- Selected item and source mapping in one step, or nil and a refusal.
function map.resolve(t0, t1)
  local item, refused = map.selected_item(t0, t1)
  if not item then return nil, refused end
  return map.source_range(item, t0, t1)
end

map.refusal = refusal
map.EPSILON = EPSILON

return map
