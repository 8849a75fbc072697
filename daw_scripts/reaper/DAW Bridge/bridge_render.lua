-- @noindex
-- The render path: render what you hear (the master mix) over the range plus context into the drop folder,
-- for takes that cannot be mapped to a file, or when the producer wants the mix rather than one item.
-- The project's render settings are saved first and put back exactly afterwards, also when the render fails.

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

local function apply(folder, name, first, last)
  local per_render = { RENDER_STARTPOS = first, RENDER_ENDPOS = last, RENDER_FILE = folder, RENDER_PATTERN = name }
  for _, entry in ipairs(NUMBER_SETTINGS) do
    local value = entry[2]
    if value == nil then value = per_render[entry[1]] end
    reaper.GetSetProjectInfo(0, entry[1], value, true)
  end
  for _, entry in ipairs(STRING_SETTINGS) do
    local value = entry[2]
    if value == nil then value = per_render[entry[1]] end
    reaper.GetSetProjectInfo_String(0, entry[1], value, true)
  end
end

--- Render the mix from `first` to `last` (timeline seconds) into `folder`/`name`.wav.
--- Returns the rendered file's path, or nil and the reason.
function render.mix(folder, name, first, last)
  util.make_folder(folder)
  local saved = render.save_settings()
  local ok, err = pcall(function()
    apply(folder, name, first, last)
    reaper.Main_OnCommand(RENDER_ACTION, 0)
  end)
  local _, targets = reaper.GetSetProjectInfo_String(0, "RENDER_TARGETS", "", false)
  render.restore_settings(saved)
  if not ok then return nil, "the render failed: " .. tostring(err) end
  local path = (targets or ""):match("^([^;]+)") or util.join(folder, name .. ".wav")
  if not util.file_exists(path) then return nil, "the render produced no file at " .. path end
  return path
end

--- Render the range with context around it and describe it in source terms for a request:
--- returns {file, start, end, position} where start/end are seconds in the rendered file, or nil and the reason.
function render.range(request_id, t0, t1, context_before, context_after)
  local first = math.max(0, t0 - context_before)
  local last = t1 + context_after
  local file, err = render.mix(util.join(util.drop_folder(), "renders"), "mix_" .. request_id, first, last)
  if not file then return nil, err end
  return { file = file, start = t0 - first, ["end"] = t1 - first, position = first }
end

return render
