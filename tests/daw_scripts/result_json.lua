-- JSON for the harnesses' result files (REAPER's and Ardour's). Separate from the scripts' own JSON module on purpose: the scripts' encoder
-- is checked by Python reading their request files, and must not also be the thing reporting on itself.
-- Keys starting with "_" (back-links from items to tracks, takes to items) are left out; empty tables become [].

local function encode(value, depth)
  depth = depth or 0
  if depth > 40 then error("result too deep (a cycle?)") end
  local kind = type(value)
  if value == nil then return "null" end
  if kind == "boolean" then return tostring(value) end
  if kind == "number" then
    if math.type(value) == "integer" then return tostring(value) end
    return string.format("%.17g", value)
  end
  if kind == "string" then
    return '"' .. value:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
  end
  if kind == "function" then return '"<function>"' end
  if kind ~= "table" then error("cannot encode " .. kind) end
  if next(value) == nil then return "[]" end
  if #value > 0 then
    local parts = {}
    for i = 1, #value do parts[i] = encode(value[i], depth + 1) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local parts = {}
  for k, v in pairs(value) do
    if type(k) ~= "string" or k:sub(1, 1) ~= "_" then
      parts[#parts + 1] = encode(tostring(k)) .. ":" .. encode(v, depth + 1)
    end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

return encode
