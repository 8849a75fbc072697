-- @noindex
-- JSON for request files (written), status files and manifests (read).
-- REAPER's Lua has no JSON library, and the scripts must run without installing anything.

local json = {}

local escapes = {
  ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
}

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format('\\u%04x', c:byte())
  end) .. '"'
end

local function encode_number(n)
  if n ~= n or n == math.huge or n == -math.huge then
    error("JSON cannot carry the number " .. tostring(n))
  end
  if math.type(n) == "integer" then return tostring(n) end
  -- shortest text that reads back as the same double, so source times survive exactly
  local text = string.format("%.15g", n)
  if tonumber(text) ~= n then text = string.format("%.17g", n) end
  if text:match("^-?%d+$") then text = text .. ".0" end -- stays a float for readers that check types
  return text
end

local function is_array(t)
  local mt = getmetatable(t)
  if mt and mt.__json_array then return true end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count > 0 and count == #t
end

local encode_value

local function encode_table(t, seen)
  if seen[t] then error("JSON cannot carry a table that contains itself") end
  seen[t] = true
  local parts = {}
  if is_array(t) then
    for i = 1, #t do parts[i] = encode_value(t[i], seen) end
    seen[t] = nil
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then error("JSON object keys must be strings, got " .. type(k)) end
    keys[#keys + 1] = k
  end
  table.sort(keys) -- stable files are easier to read and to compare
  for i, k in ipairs(keys) do parts[i] = encode_string(k) .. ":" .. encode_value(t[k], seen) end
  seen[t] = nil
  return "{" .. table.concat(parts, ",") .. "}"
end

encode_value = function(v, seen)
  local kind = type(v)
  if v == nil or v == json.null then return "null" end
  if kind == "boolean" then return tostring(v) end
  if kind == "number" then return encode_number(v) end
  if kind == "string" then return encode_string(v) end
  if kind == "table" then return encode_table(v, seen) end
  error("JSON cannot carry a " .. kind)
end

--- The JSON text of a Lua value (tables with keys 1..n become arrays).
function json.encode(value)
  return encode_value(value, {})
end

--- Mark a table as a JSON array (so an empty one encodes as []).
function json.array(t)
  return setmetatable(t or {}, { __json_array = true })
end

--- Stands for JSON null inside decoded arrays and objects where nil would lose the key.
json.null = setmetatable({}, { __tostring = function() return "null" end })

-- Decoding ------------------------------------------------------------------------------------------

local function decode_error(text, pos, what)
  local line = select(2, text:sub(1, pos):gsub("\n", "")) + 1
  error(string.format("JSON: %s at line %d, character %d", what, line, pos), 0)
end

local function skip_space(text, pos)
  return text:find("[^ \t\r\n]", pos) or #text + 1
end

local function utf8_of(code)
  return utf8.char(code)
end

local decode_value

local function decode_string(text, pos)
  local parts, i = {}, pos + 1
  while true do
    local stop = text:find('["\\]', i)
    if not stop then decode_error(text, pos, "unterminated string") end
    parts[#parts + 1] = text:sub(i, stop - 1)
    if text:sub(stop, stop) == '"' then return table.concat(parts), stop + 1 end
    local esc = text:sub(stop + 1, stop + 1)
    local simple = ({ b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/" })[esc]
    if simple then
      parts[#parts + 1] = simple
      i = stop + 2
    elseif esc == "u" then
      local hex = text:match("^%x%x%x%x", stop + 2)
      if not hex then decode_error(text, stop, "bad \\u escape") end
      local code = tonumber(hex, 16)
      i = stop + 6
      if code >= 0xD800 and code <= 0xDBFF then
        local low = text:match("^\\u(%x%x%x%x)", i)
        if low then
          code = 0x10000 + (code - 0xD800) * 0x400 + (tonumber(low, 16) - 0xDC00)
          i = i + 6
        end
      end
      parts[#parts + 1] = utf8_of(code)
    else
      decode_error(text, stop, "bad escape \\" .. esc)
    end
  end
end

local function decode_number(text, pos)
  local literal = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
  local n = literal and tonumber(literal)
  if not n then decode_error(text, pos, "bad number") end
  return n, pos + #literal
end

local function decode_array(text, pos)
  local out = json.array({})
  pos = skip_space(text, pos + 1)
  if text:sub(pos, pos) == "]" then return out, pos + 1 end
  while true do
    local value
    value, pos = decode_value(text, pos)
    out[#out + 1] = value
    pos = skip_space(text, pos)
    local c = text:sub(pos, pos)
    if c == "]" then return out, pos + 1 end
    if c ~= "," then decode_error(text, pos, "expected , or ]") end
    pos = skip_space(text, pos + 1)
  end
end

local function decode_object(text, pos)
  local out = {}
  pos = skip_space(text, pos + 1)
  if text:sub(pos, pos) == "}" then return out, pos + 1 end
  while true do
    if text:sub(pos, pos) ~= '"' then decode_error(text, pos, "expected a key") end
    local key
    key, pos = decode_string(text, pos)
    pos = skip_space(text, pos)
    if text:sub(pos, pos) ~= ":" then decode_error(text, pos, "expected :") end
    local value
    value, pos = decode_value(text, skip_space(text, pos + 1))
    out[key] = value
    pos = skip_space(text, pos)
    local c = text:sub(pos, pos)
    if c == "}" then return out, pos + 1 end
    if c ~= "," then decode_error(text, pos, "expected , or }") end
    pos = skip_space(text, pos + 1)
  end
end

-- what Python's json writes for a float that is no number (a daemon before manifests were strict JSON, a backend's
-- figure): read as null, the number that is none, so one such figure refuses only a field that needs a number
-- instead of the whole manifest. "-Infinity" before the numbers' "-".
local NOT_A_NUMBER = { "NaN", "Infinity", "-Infinity" }

decode_value = function(text, pos)
  pos = skip_space(text, pos)
  local c = text:sub(pos, pos)
  if c == "{" then return decode_object(text, pos) end
  if c == "[" then return decode_array(text, pos) end
  if c == '"' then return decode_string(text, pos) end
  for _, literal in ipairs(NOT_A_NUMBER) do
    if text:sub(pos, pos + #literal - 1) == literal then return json.null, pos + #literal end
  end
  if c == "-" or c:match("%d") then return decode_number(text, pos) end
  if text:sub(pos, pos + 3) == "true" then return true, pos + 4 end
  if text:sub(pos, pos + 4) == "false" then return false, pos + 5 end
  if text:sub(pos, pos + 3) == "null" then return json.null, pos + 4 end
  decode_error(text, pos, "unexpected " .. (c == "" and "end of text" or "'" .. c .. "'"))
end

--- The Lua value of a JSON text; raises an error naming line and character when the text is not JSON.
function json.decode(text)
  local value, pos = decode_value(text, 1)
  pos = skip_space(text, pos)
  if pos <= #text then decode_error(text, pos, "trailing text") end
  return value
end

--- The decoded value, or nil and the reason.
function json.try_decode(text)
  local ok, value = pcall(json.decode, text)
  if ok then return value end
  return nil, value
end

--- nil for JSON null, else the value itself (manifest fields such as gender may be null).
function json.value(v)
  if v == json.null then return nil end
  return v
end

return json
