-- The DAW scripts' WAV frame counter, written once: `python -m osc_schema.generate` carries it into each script
-- between its lines "-- BEGIN daw-bridge wav_frames" and "-- END daw-bridge wav_frames" (Ardour's scripts cannot
-- require a sibling file, and REAPER's package keeps one copy with the companion). Edit it here, then generate.

--- How many whole frames the WAV file at `path` holds: its data chunk's size, cut to what the file holds (one being
--- written or copied holds less), over its frame size; 0 while the chunks before the data are not all there. Then
--- its channels and sample rate, as its format chunk says (an importer trusts the file, not what was said of it).
local function wav_frames(path)
  local f = io.open(path, "rb")
  if not f then return 0 end
  local size, at, frame_bytes, big_data, channels, rate = f:seek("end"), 12, nil, nil, nil, nil
  while at + 8 <= size do
    f:seek("set", at)
    local id, length = f:read(4), string.unpack("<I4", f:read(4))
    local whole = at + 8 + length <= size
    if id == "ds64" and length >= 24 and whole then -- RF64 / BW64: the sizes that do not fit in 32 bits
      big_data = string.unpack("<I8", f:read(24), 9)
    elseif id == "fmt " and length >= 16 and whole then
      local format = f:read(16)
      channels, rate = string.unpack("<I2I4", format, 3) -- nChannels, nSamplesPerSec
      frame_bytes = string.unpack("<I2", format, 13) -- nBlockAlign
    elseif id == "data" then
      f:close()
      if length == 0xFFFFFFFF and big_data then length = big_data end
      if not frame_bytes or frame_bytes == 0 then return 0 end
      return math.min(length, size - at - 8) // frame_bytes, channels, rate
    end
    at = at + 8 + length + length % 2
  end
  f:close()
  return 0
end
