-- @noindex
-- @description DAW Bridge: Show the picture of the selected item's active take (original against result)
-- @version 0.1.0
-- @author daw-bridge

-- The daemon draws a PNG beside each result's manifest: the original and the result over the span (waveform and
-- spectrogram), the replaced range, each join with its confidence, and the levels before and after. This action
-- finds the active take's manifest (the take's WAV with .json for .wav), reads which picture it names, and shows
-- it in a window scaled to fit; Escape or closing the window ends it.

local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
package.path = script_dir .. "?.lua;" .. package.path
local util = require("bridge_util")
local json = require("bridge_json")

local ESCAPE = 27

--- The picture's path for a take, or nil and what the producer should hear instead.
local function picture_of(take)
  local audio = reaper.GetMediaSourceFileName(reaper.GetMediaItemTake_Source(take), "")
  local manifest_path = audio:gsub("%.[Ww][Aa][Vv]$", ".json")
  if manifest_path == audio then return nil, "The active take is not a DAW Bridge result (" .. audio .. ")." end
  local text = util.read_file(manifest_path)
  if not text then return nil, "The active take is not a DAW Bridge result: no manifest beside " .. audio .. "." end
  local manifest = json.try_decode(text)
  local name = type(manifest) == "table" and json.value(manifest.picture) or nil
  if type(name) ~= "string" or name == "" then
    return nil, "This result has no picture yet (it is drawn a moment after the result lands), or the daemon could not draw it (its log says why)."
  end
  return util.join(util.dirname(manifest_path), name)
end

local item = reaper.GetSelectedMediaItem(0, 0)
local take = item and reaper.GetActiveTake(item)
if not take then
  util.tell("Select an item whose active take is a DAW Bridge result.")
  return
end
local path, why = picture_of(take)
if not path then
  util.tell(why)
  return
end
local image = 0
if gfx.loadimg(image, path) < 0 then
  util.tell("The picture could not be loaded: " .. path)
  return
end
local width, height = gfx.getimgdim(image)
gfx.init("DAW Bridge - " .. util.basename(path), width, height)

local function frame()
  local key = gfx.getchar()
  if key < 0 or key == ESCAPE then
    gfx.quit()
    return
  end
  gfx.x, gfx.y = 0, 0
  gfx.blit(image, math.min(gfx.w / width, gfx.h / height), 0)
  gfx.update()
  reaper.defer(frame)
end

frame()
