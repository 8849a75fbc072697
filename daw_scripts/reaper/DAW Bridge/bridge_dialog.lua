-- @noindex
-- The request dialog: prompt, lyrics, section lyrics, voice, variants (and, to extend, seconds of new material),
-- remembered between runs and checked against the daemon's own limits before anything is written.

local util = require("bridge_util")

local dialog = {}

local FIELDS = {
  { key = "prompt", caption = "Prompt (how it should sound)", kind = "text" },
  { key = "lyrics", caption = "Lyrics of the whole song", kind = "text" },
  { key = "lyrics_section_to_replace", caption = "Lyrics of this section", kind = "text", operation = "inpaint" },
  { key = "lyrics_section_to_extend", caption = "Lyrics of the new section", kind = "text", operation = "extend" },
  { key = "gender", caption = "Voice (male/female/neutral or blank)", kind = "enum" },
  { key = "num_outputs", caption = "Variants", kind = "integer" },
  { key = "duration", caption = "Seconds of new material", kind = "number", operation = "extend" },
  { key = "render", caption = "Render what you hear (y/n)", kind = "yesno" },
}

local FALLBACK_DEFAULTS = { num_outputs = 2, duration = 30, render = "n" }

local function fields_for(operation)
  local out = {}
  for _, field in ipairs(FIELDS) do
    if not field.operation or field.operation == operation then out[#out + 1] = field end
  end
  return out
end

local function default_of(constants, key)
  local defaults = constants.DEFAULTS or {}
  local value = defaults[key]
  if value == nil then value = FALLBACK_DEFAULTS[key] end
  if value == nil then return "" end
  return tostring(value)
end

--- Remembered (or default) text of every field.
local function remembered(fields, constants)
  local values = {}
  for _, field in ipairs(fields) do
    values[field.key] = util.setting("last_" .. field.key, default_of(constants, field.key))
  end
  return values
end

local function check_length(key, text, limit)
  local length = utf8.len(text) or #text
  if limit and limit.max_length and length > limit.max_length then
    return string.format("%s: %d characters is over the limit of %d", key, length, limit.max_length)
  end
  if limit and limit.min_length and length < limit.min_length then
    return string.format("%s: must not be empty", key)
  end
end

local function check_range(key, number, limit)
  if not limit then return end
  if limit.min and (number < limit.min or (limit.min_exclusive and number == limit.min)) then
    return string.format("%s: %s must be %s %s", key, tostring(number), limit.min_exclusive and "over" or "at least",
      tostring(limit.min))
  end
  if limit.max and number > limit.max then
    return string.format("%s: %s must be at most %s", key, tostring(number), tostring(limit.max))
  end
end

--- Turn the typed text of each field into request values; returns values or nil and the list of problems.
function dialog.validate(typed, fields, constants)
  local limits, enums = constants.LIMITS or {}, constants.ENUMS or {}
  local values, problems = {}, {}
  local function problem(text) if text then problems[#problems + 1] = text end end
  for _, field in ipairs(fields) do
    local text = (typed[field.key] or ""):match("^%s*(.-)%s*$")
    if field.kind == "text" then
      problem(check_length(field.key, text, limits[field.key]))
      values[field.key] = text
    elseif field.kind == "enum" then
      local allowed = enums[field.key] or {}
      if text ~= "" then
        local ok = false
        for _, choice in ipairs(allowed) do if choice == text:lower() then ok = true end end
        if ok then values[field.key] = text:lower()
        else problem(string.format('%s: "%s" is not one of %s (or blank)', field.key, text, table.concat(allowed, ", "))) end
      end
    elseif field.kind == "integer" or field.kind == "number" then
      local number = tonumber(text)
      if not number then
        problem(string.format('%s: "%s" is not a number', field.key, text))
      elseif field.kind == "integer" and math.type(number) ~= "integer" and number ~= math.floor(number) then
        problem(string.format("%s: %s is not a whole number", field.key, text))
      else
        if field.kind == "integer" then number = math.tointeger(number) or math.floor(number) end
        problem(check_range(field.key, number, limits[field.key]))
        values[field.key] = number
      end
    elseif field.kind == "yesno" then
      local answer = text:lower():sub(1, 1)
      if answer ~= "y" and answer ~= "n" then problem(string.format('%s: "%s" is not y or n', field.key, text))
      else values[field.key] = (answer == "y") end
    end
  end
  if #problems > 0 then return nil, problems end
  return values
end

local SEPARATOR = "\n" -- lyrics and prompts contain commas; a line break cannot be typed into a field

--- Ask for the request values. `force_render` presets the render answer (after a refused mapping).
--- Returns the values, or nil when the producer cancelled.
function dialog.ask(operation, constants, force_render)
  local fields = fields_for(operation)
  local typed = remembered(fields, constants)
  if force_render then typed.render = "y" end
  local captions = {}
  for i, field in ipairs(fields) do captions[i] = field.caption end
  local caption_csv = table.concat(captions, ",") .. ",separator=" .. SEPARATOR .. ",extrawidth=320"
  local title = operation == "extend" and "DAW Bridge: Extend" or "DAW Bridge: Inpaint"
  while true do
    local defaults = {}
    for i, field in ipairs(fields) do defaults[i] = typed[field.key] end
    local ok, answer = reaper.GetUserInputs(title, #fields, caption_csv, table.concat(defaults, SEPARATOR))
    if not ok then return nil end
    local i = 0
    for text in (answer .. SEPARATOR):gmatch("(.-)" .. SEPARATOR) do
      i = i + 1
      if fields[i] then typed[fields[i].key] = text end
    end
    local values, problems = dialog.validate(typed, fields, constants)
    if values then
      for _, field in ipairs(fields) do util.set_setting("last_" .. field.key, typed[field.key]) end
      return values
    end
    util.tell("Please correct:\n" .. table.concat(problems, "\n"))
  end
end

dialog.fields_for = fields_for

return dialog
