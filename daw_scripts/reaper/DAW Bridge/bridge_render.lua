-- @noindex
-- The render path: render what you hear (the master mix) over the range plus context into the drop folder,
-- for takes that cannot be mapped to a file, or when the producer wants the mix rather than one item.
-- The project's render settings are saved first and put back exactly afterwards, also when the render fails.
-- The render keeps the source's format: its sample rate and channel count (a mono stem stays mono, a 48 kHz song
-- stays 48 kHz), so the daemon gets what the item plays, not the project's last render format.

local util = require("bridge_util")

local render = {}

local RENDER_ACTION = 42230 -- File: Render project, using the most recent render settings, auto-close render dialog

-- Every setting this module changes, with the value it needs during our render.
local NUMBER_SETTINGS = {
  { "RENDER_SETTINGS", 0 },   -- master mix only
  { "RENDER_BOUNDSFLAG", 0 }, -- custom time bounds
  { "RENDER_STARTPOS", nil }, -- set per render
  { "RENDER_ENDPOS", nil },
  { "RENDER_TAILFLAG", 0 },   -- no tail: the file must end where the range plus context ends
  { "RENDER_ADDTOPROJ", 0 },  -- do not add the render to the project
  { "RENDER_NORMALIZE", 0 },  -- levels as heard, so the result splices back at the same loudness
  { "RENDER_SRATE", nil },    -- the source's sample rate, per render (left alone when no source is known)
  { "RENDER_CHANNELS", nil }, -- the source's channel count, likewise
}
local STRING_SETTINGS = {
  { "RENDER_FILE", nil },     -- folder, set per render
  { "RENDER_PATTERN", nil },  -- file name, set per render
  { "RENDER_FORMAT", "evaw" }, -- WAV with default settings
  { "RENDER_FORMAT2", "" },   -- no secondary render
}

--- The current values of every render setting this module touches.
function render.save_settings()
  local saved = { numbers = {}, strings = {} }
  for _, entry in ipairs(NUMBER_SETTINGS) do
    saved.numbers[entry[1]] = reaper.GetSetProjectInfo(0, entry[1], 0, false)
  end
  for _, entry in ipairs(STRING_SETTINGS) do
    local _, value = reaper.GetSetProjectInfo_String(0, entry[1], "", false)
    saved.strings[entry[1]] = value
  end
  return saved
end

--- Put saved render settings back.
function render.restore_settings(saved)
  for _, entry in ipairs(NUMBER_SETTINGS) do
    reaper.GetSetProjectInfo(0, entry[1], saved.numbers[entry[1]], true)
  end
  for _, entry in ipairs(STRING_SETTINGS) do
    reaper.GetSetProjectInfo_String(0, entry[1], saved.strings[entry[1]], true)
  end
end

local function apply(folder, name, first, last, format)
  format = format or {}
  local per_render = { RENDER_STARTPOS = first, RENDER_ENDPOS = last, RENDER_FILE = folder, RENDER_PATTERN = name,
                       RENDER_SRATE = format.srate, RENDER_CHANNELS = format.channels }
  for _, entry in ipairs(NUMBER_SETTINGS) do
    local value = entry[2]
    if value == nil then value = per_render[entry[1]] end
    if value ~= nil then reaper.GetSetProjectInfo(0, entry[1], value, true) end
  end
  for _, entry in ipairs(STRING_SETTINGS) do
    local value = entry[2]
    if value == nil then value = per_render[entry[1]] end
    reaper.GetSetProjectInfo_String(0, entry[1], value, true)
  end
end

--- Render the mix from `first` to `last` (timeline seconds) into `folder`/`name`.wav, at `format` ({srate,
--- channels}, from render.source_format) when given. Returns the rendered file's path, or nil and the reason.
function render.mix(folder, name, first, last, format)
  util.make_folder(folder)
  local saved = render.save_settings()
  local ok, err = pcall(function()
    apply(folder, name, first, last, format)
    reaper.Main_OnCommand(RENDER_ACTION, 0)
  end)
  local _, targets = reaper.GetSetProjectInfo_String(0, "RENDER_TARGETS", "", false)
  render.restore_settings(saved)
  if not ok then return nil, "the render failed: " .. tostring(err) end
  local path = (targets or ""):match("^([^;]+)") or util.join(folder, name .. ".wav")
  if not util.file_exists(path) then return nil, "the render produced no file at " .. path end
  return path
end

--- The sample rate and channel count of the audio the producer points at: the active take of the selected item
--- holding t0..t1 (else the first selected item), through sections to the file itself. nil when there is none
--- (no item selected, a MIDI take): the render then keeps the project's own render format.
function render.source_format(t0, t1)
  local chosen
  for i = 0, reaper.CountSelectedMediaItems(0) - 1 do
    local item = reaper.GetSelectedMediaItem(0, i)
    local first = reaper.GetMediaItemInfo_Value(item, "D_POSITION")
    local last = first + reaper.GetMediaItemInfo_Value(item, "D_LENGTH")
    if t0 >= first and t1 <= last then chosen = item break end
    chosen = chosen or item
  end
  local take = chosen and reaper.GetActiveTake(chosen)
  if not take or reaper.TakeIsMIDI(take) then return nil end
  local source = reaper.GetMediaItemTake_Source(take)
  while source and reaper.GetMediaSourceParent(source) do source = reaper.GetMediaSourceParent(source) end
  if not source then return nil end
  local srate, channels = reaper.GetMediaSourceSampleRate(source), reaper.GetMediaSourceNumChannels(source)
  if not srate or srate <= 0 or not channels or channels <= 0 then return nil end
  return { srate = math.floor(srate + 0.5), channels = channels }
end

--- Render the range with context around it and describe it in source terms for a request:
--- returns {file, start, end, position} where start/end are seconds in the rendered file, or nil and the reason.
function render.range(request_id, t0, t1, context_before, context_after)
  local first = math.max(0, t0 - context_before)
  local last = t1 + context_after
  local file, err = render.mix(util.join(util.drop_folder(), "renders"), "mix_" .. request_id, first, last,
                               render.source_format(t0, t1))
  if not file then return nil, err end
  return { file = file, start = t0 - first, ["end"] = t1 - first, position = first }
end

return render
