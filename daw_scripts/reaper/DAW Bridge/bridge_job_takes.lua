-- @noindex
-- Which takes and items a job put into the project, written on them as REAPER extension data (P_EXT), which is
-- saved with the project and copied when an item is split, so a decision on the job finds them wherever the
-- producer moved or split them:
--
--   take  P_EXT:daw_bridge_job               the job's id, on each variant's take
--   take  P_EXT:daw_bridge_manifest          the manifest file name the take was imported from
--   take  P_EXT:daw_bridge_original:<job>    on the take that was active before the job's first take came (choice 0)
--   item  P_EXT:daw_bridge_created:<job>     on an item the job made (nothing held the range: results track, an
--                                            extension right after the item)
--   item  P_EXT:daw_bridge_length:<job>      the item's length before the job lengthened it (an extension)
--   item  P_EXT:daw_bridge_split:<job>       on an item whose start is a split the job made (a discard heals it)
--
-- Takes imported before these marks existed are recognised by their source file, the manifest's audio.

local util = require("bridge_util")

local job_takes = {}

local function get(object, is_take, key)
  local read = is_take and reaper.GetSetMediaItemTakeInfo_String or reaper.GetSetMediaItemInfo_String
  local _, value = read(object, "P_EXT:" .. key, "", false)
  return value or ""
end

local function set(object, is_take, key, value)
  local write = is_take and reaper.GetSetMediaItemTakeInfo_String or reaper.GetSetMediaItemInfo_String
  write(object, "P_EXT:" .. key, value, true)
end

local function holds_job(item, job_id)
  for i = 0, reaper.CountTakes(item) - 1 do
    if get(reaper.GetMediaItemTake(item, i), true, "daw_bridge_job") == job_id then return true end
  end
  return false
end

--- A new take on `item` for the manifest `name`, marked as the job's; the first one of the job on this item marks
--- the take that was active until then as the job's original.
function job_takes.add_take(item, manifest, name)
  local job_id = type(manifest.job_id) == "string" and manifest.job_id or ""
  if job_id ~= "" and not holds_job(item, job_id) then
    local original = reaper.GetActiveTake(item)
    if original then set(original, true, "daw_bridge_original:" .. job_id, "1")
    else set(item, false, "daw_bridge_created:" .. job_id, "1") end
  end
  local take = reaper.AddTakeToMediaItem(item)
  if job_id ~= "" then
    set(take, true, "daw_bridge_job", job_id)
    set(take, true, "daw_bridge_manifest", name or "")
  end
  return take
end

--- Call before the job lengthens `item`: its length is kept, once, for a discard to give back.
function job_takes.lengthening(item, manifest)
  local key = "daw_bridge_length:" .. tostring(manifest.job_id)
  if type(manifest.job_id) == "string" and get(item, false, key) == "" then
    set(item, false, key, string.format("%.17g", reaper.GetMediaItemInfo_Value(item, "D_LENGTH")))
  end
end

--- Split `item` at `position` for the job (SplitMediaItem): the right-hand piece, marked, or nil.
function job_takes.split(item, position, manifest)
  local right = reaper.SplitMediaItem(item, position)
  if right and type(manifest.job_id) == "string" then set(right, false, "daw_bridge_split:" .. manifest.job_id, "1") end
  return right
end

--- Whether the job split `item` off the item before it.
function job_takes.split_off(item, job_id)
  return get(item, false, "daw_bridge_split:" .. job_id) ~= ""
end

--- Whether one of `takes` on `item` plays part of the range from..to (seconds of its file) there.
local function plays_within(item, takes, range)
  local length = reaper.GetMediaItemInfo_Value(item, "D_LENGTH")
  for _, take in ipairs(takes) do
    local first = reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS")
    local last = first + length * reaper.GetMediaItemTakeInfo_Value(take, "D_PLAYRATE")
    if first < range.to - 1e-6 and last > range.from + 1e-6 then return true end
  end
  return false
end

--- The job's takes, item by item: a list of {item, job_id, takes (all of the job's on it), variants ([n] = take of
--- manifests[n]), original (or nil), created (the job made the item), length_before (or nil), others_active (another
--- job's take, active on the item), above (that take, on a piece two jobs share where one's handle meets the other's
--- range)}. `audio` maps a
--- manifest's audio file name to its variant number, for takes imported before the marks existed. `replaced` (or
--- nil) is the job's replaced range in seconds of its variants' files: a piece whose job takes play part of it is
--- no handle, and another job's take active there (the same range asked for again) is not `above` it.
function job_takes.find(job_id, manifests, audio, replaced)
  local variant_of = {}
  for n, name in ipairs(manifests) do variant_of[name] = n end
  local found = {}
  for i = 0, reaper.CountMediaItems(0) - 1 do
    local item = reaper.GetMediaItem(0, i)
    local group = { item = item, job_id = job_id, takes = {}, variants = {} }
    local unmarked -- the first take that is not the job's, the original of takes imported without marks
    local active = reaper.GetActiveTake(item)
    for t = 0, reaper.CountTakes(item) - 1 do
      local take = reaper.GetMediaItemTake(item, t)
      local job, n = get(take, true, "daw_bridge_job"), nil
      if take == active and job ~= "" and job ~= job_id then group.above, group.others_active = take, take end
      if job == job_id then
        n = variant_of[get(take, true, "daw_bridge_manifest")]
      elseif job == "" then
        local source = reaper.GetMediaItemTake_Source(take)
        n = source and audio[util.basename(reaper.GetMediaSourceFileName(source))]
        group.legacy = group.legacy or n ~= nil
      end
      if job == job_id or n then
        group.takes[#group.takes + 1] = take
        if n and not group.variants[n] then group.variants[n] = take end
      else
        unmarked = unmarked or take
        if get(take, true, "daw_bridge_original:" .. job_id) ~= "" then group.original = take end
      end
    end
    if group.legacy and not group.original then group.original = unmarked end
    if group.above and replaced and plays_within(item, group.takes, replaced) then group.above = nil end
    if #group.takes > 0 or group.original then
      group.created = get(item, false, "daw_bridge_created:" .. job_id) ~= ""
      group.length_before = tonumber(get(item, false, "daw_bridge_length:" .. job_id))
      found[#found + 1] = group
    end
  end
  return found
end

--- Forget the length kept for the job (it was given back).
function job_takes.forget_length(item, job_id)
  set(item, false, "daw_bridge_length:" .. job_id, "")
end

return job_takes
