-- @noindex
-- OSC messages over UDP, for when a LuaSocket module is installed (ReaScript itself has no sockets).
-- Request files stay the default: they need nothing installed and survive a daemon that is not running yet.

local osc = {}

local function padded(s)
  s = s .. "\0"
  return s .. string.rep("\0", (4 - #s % 4) % 4)
end

--- The bytes of one OSC message; integers go as i, other numbers as d (float64 keeps source times exact),
--- strings as s, booleans as T/F.
function osc.encode(address, args)
  local tags, data = { "," }, {}
  for _, value in ipairs(args) do
    local kind = type(value)
    if kind == "number" and math.type(value) == "integer" and value >= -2^31 and value < 2^31 then
      tags[#tags + 1] = "i"; data[#data + 1] = string.pack(">i4", value)
    elseif kind == "number" then
      tags[#tags + 1] = "d"; data[#data + 1] = string.pack(">d", value)
    elseif kind == "string" then
      tags[#tags + 1] = "s"; data[#data + 1] = padded(value)
    elseif kind == "boolean" then
      tags[#tags + 1] = value and "T" or "F"
    else
      error("OSC cannot carry a " .. kind)
    end
  end
  return padded(address) .. padded(table.concat(tags)) .. table.concat(data)
end

-- The daemon's OSC convention (docs/osc.md): the required arguments in this order, then a `key, value` pair for
-- each optional argument given. The order is part of the address space; tests check it against osc_schema.
local POSITIONAL = {
  inpaint = { "source", "start", "end", "prompt" },
  extend = { "source", "extend_after" },
}

--- The OSC address and arguments for a request table (as written to a request file).
function osc.message_for(request, constants)
  local address = (constants.ADDRESS or {})[request.command]
  local order = POSITIONAL[request.command]
  if not address or not order then return nil end
  local args, positional = {}, {}
  for i, name in ipairs(order) do
    args[i] = request[name]
    positional[name] = true
  end
  local keys = {}
  for key in pairs(request) do
    if key ~= "command" and not positional[key] then keys[#keys + 1] = key end
  end
  table.sort(keys)
  for _, key in ipairs(keys) do
    args[#args + 1] = key
    args[#args + 1] = request[key]
  end
  return address, args
end

--- Send a request as OSC to the daemon on 127.0.0.1; true when sent, or nil and the reason.
function osc.send(request, constants, port)
  local have_socket, socket = pcall(require, "socket")
  if not have_socket or type(socket) ~= "table" or not socket.udp then return nil, "no LuaSocket module" end
  local address, args = osc.message_for(request, constants)
  if not address then return nil, "no OSC address for " .. request.command end
  local udp = socket.udp()
  local sent, err = udp:sendto(osc.encode(address, args), "127.0.0.1", port)
  udp:close()
  if not sent then return nil, "OSC send failed: " .. tostring(err) end
  return true
end

return osc
