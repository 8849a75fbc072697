-- @noindex
-- What each decision (choose, keep, discard) changes in the project. A plan looks at the job's takes (`groups`,
-- from bridge_job_takes.find), adds to `notes` what it cannot do ("variant 2's take is no longer in the project"),
-- and returns the changes to make, so that bridge_decisions.lua makes them in one undo block, and a decision with
-- nothing left to change makes no empty undo point.
--
-- REAPER's API has no call that removes a take, so takes go through the actions "Take: Delete active take from
-- items" and "Take: Crop to active take in items", run on exactly the job's items with the producer's item
-- selection put back afterwards.

local util = require("bridge_util")
local job_takes = require("bridge_job_takes")

local plans = {}

local DELETE_ACTIVE_TAKE = 40129 -- Take: Delete active take from items
local CROP_TO_ACTIVE_TAKE = 40131 -- Take: Crop to active take in items
local EPSILON = 1e-6

--- Run a take action on `items` alone; the producer's item selection is the same afterwards.
local function on_items_alone(items, action)
  local selected = {}
  for i = 0, reaper.CountMediaItems(0) - 1 do
    local item = reaper.GetMediaItem(0, i)
    if reaper.IsMediaItemSelected(item) then selected[#selected + 1] = item end
    reaper.SetMediaItemSelected(item, false)
  end
  for _, item in ipairs(items) do reaper.SetMediaItemSelected(item, true) end
  reaper.Main_OnCommand(action, 0)
  for _, item in ipairs(items) do reaper.SetMediaItemSelected(item, false) end
  for _, item in ipairs(selected) do reaper.SetMediaItemSelected(item, true) end
end

local function where(group)
  return "the item at " .. util.seconds(reaper.GetMediaItemInfo_Value(group.item, "D_POSITION"))
end

local function span(item)
  local position = reaper.GetMediaItemInfo_Value(item, "D_POSITION")
  return position, position + reaper.GetMediaItemInfo_Value(item, "D_LENGTH")
end

local function source_file(take)
  local source = reaper.GetMediaItemTake_Source(take)
  return source and reaper.GetMediaSourceFileName(source) or ""
end

--- Whether `right` plays on exactly where `left` stops, as the two halves of a split do: touching, the same takes
--- active, each take the same file at the same rate with its offset running on.
local function continues(left, right)
  local left_start, left_end = span(left)
  if math.abs(left_end - span(right)) > EPSILON or reaper.CountTakes(left) ~= reaper.CountTakes(right) then
    return false
  end
  for i = 0, reaper.CountTakes(left) - 1 do
    local a, b = reaper.GetMediaItemTake(left, i), reaper.GetMediaItemTake(right, i)
    local rate = reaper.GetMediaItemTakeInfo_Value(a, "D_PLAYRATE")
    local offset_on = reaper.GetMediaItemTakeInfo_Value(a, "D_STARTOFFS") + (left_end - left_start) * rate
    if (a == reaper.GetActiveTake(left)) ~= (b == reaper.GetActiveTake(right))
      or rate ~= reaper.GetMediaItemTakeInfo_Value(b, "D_PLAYRATE") or source_file(a) ~= source_file(b)
      or math.abs(offset_on - reaper.GetMediaItemTakeInfo_Value(b, "D_STARTOFFS")) > EPSILON then
      return false
    end
  end
  return true
end

--- Join each piece the job split off `track` to the one before it again, where it plays on exactly as before.
local function heal_splits(track, job_id)
  local previous
  local i = 0
  while i < reaper.GetTrackNumMediaItems(track) do
    local item = reaper.GetTrackMediaItem(track, i)
    if previous and job_takes.split_off(item, job_id) and continues(previous, item) then
      local start = span(previous)
      reaper.SetMediaItemLength(previous, select(2, span(item)) - start, false)
      reaper.DeleteTrackMediaItem(track, item)
    else
      previous, i = item, i + 1
    end
  end
end

--- The variant (0: the original) whose take is active on the first item holding the job's takes, or nil.
local function active_choice(groups)
  for _, group in ipairs(groups) do
    local active = reaper.GetActiveTake(group.item)
    if active and active == group.original then return 0 end
    for n, take in pairs(group.variants) do
      if take == active then return n end
    end
  end
end


-- Where another job's take is active on an item the job shares with it (one job's handle meets the other's range),
-- that take goes on sounding whatever this job's decision: choosing, keeping or discarding this job's variant changes
-- which of this job's takes stay there, never what the other job's sounds.

function plans.choose(groups, choice, notes)
  local changes, found = {}, false
  for _, group in ipairs(groups) do
    local take = choice == 0 and group.original or group.variants[choice]
    found = found or take ~= nil
    if take and not group.above then changes[#changes + 1] = function() reaper.SetActiveTake(take) end end
  end
  if not found then
    notes[#notes + 1] = (choice == 0 and "the original take" or "variant " .. choice .. "'s take")
      .. " is no longer in the project; nothing changed"
  end
  return changes
end

function plans.discard(groups, _, notes)
  local changes, tracks = {}, {}
  for _, group in ipairs(groups) do
    local item = group.item
    if #group.takes == reaper.CountTakes(item) then
      if group.created then
        changes[#changes + 1] = function() reaper.DeleteTrackMediaItem(reaper.GetMediaItem_Track(item), item) end
      else
        notes[#notes + 1] = where(group) .. " keeps the job's take: its original take is gone, and removing the "
          .. "last take would leave a hole"
      end
    else
      if not group.original then notes[#notes + 1] = where(group) .. " has lost its original take" end
      tracks[reaper.GetMediaItem_Track(item)] = true
      changes[#changes + 1] = function()
        for _, take in ipairs(group.takes) do
          reaper.SetActiveTake(take)
          on_items_alone({ item }, DELETE_ACTIVE_TAKE)
        end
        -- another job's take sounding there (a neighbour's, or the same range asked for again) goes on sounding
        if group.others_active or group.original then reaper.SetActiveTake(group.others_active or group.original) end
        if group.length_before then
          reaper.SetMediaItemLength(item, group.length_before, false)
          job_takes.forget_length(item, group.job_id)
        end
      end
    end
  end
  for track in pairs(tracks) do
    changes[#changes + 1] = function() heal_splits(track, groups[1].job_id) end
  end
  return changes
end

function plans.keep(groups, choice, notes)
  if choice == nil then choice = active_choice(groups) end
  if choice == nil then
    notes[#notes + 1] = "the active take is none of the job's; nothing kept"
    return {}
  end
  if choice == 0 then return plans.discard(groups, 0, notes) end
  local items, elsewhere = {}, {}
  for _, group in ipairs(groups) do
    if group.variants[choice] then items[#items + 1] = group
    elseif #group.takes > 0 then elsewhere[#elsewhere + 1] = where(group) end
  end
  if #items == 0 then
    notes[#notes + 1] = "variant " .. choice .. "'s take is no longer in the project; nothing kept"
    return {}
  end
  for _, place in ipairs(elsewhere) do
    notes[#notes + 1] = place .. " does not hold variant " .. choice .. "; left as it is"
  end
  return { function()
    local cropped = {}
    for _, group in ipairs(items) do
      if group.above then -- only the job's other takes go; the other job's take sounds on
        for _, take in ipairs(group.takes) do
          if take ~= group.variants[choice] then
            reaper.SetActiveTake(take)
            on_items_alone({ group.item }, DELETE_ACTIVE_TAKE)
          end
        end
        reaper.SetActiveTake(group.above)
      else
        reaper.SetActiveTake(group.variants[choice])
        cropped[#cropped + 1] = group.item
      end
    end
    if #cropped > 0 then on_items_alone(cropped, CROP_TO_ACTIVE_TAKE) end
  end }
end

return plans
