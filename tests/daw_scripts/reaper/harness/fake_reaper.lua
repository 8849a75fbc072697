-- A stand-in for REAPER's `reaper.*` API over a project state set up by a test.
--
-- It provides exactly the functions the DAW Bridge scripts call, with REAPER's documented semantics: argument order,
-- multiple return values, GUID strings, "returns NULL/nil when ..." cases, SplitMediaItem keeping the original as
-- the left-hand piece. Item, take, track and source handles are the state's own tables, so the test can read the
-- project afterwards. Anything the harness does not know raises an error, so a script calling an unfaked function
-- (or a misspelt parameter name) fails loudly instead of silently reading 0.

local fake = {}

local function fail(fmt, ...) error("fake REAPER: " .. string.format(fmt, ...), 2) end

local function guid_maker(state)
  return function()
    state.guid_counter = (state.guid_counter or 0) + 1
    return string.format("{00000000-0000-4000-8000-%012d}", state.guid_counter)
  end
end

--- Link items to their tracks and takes to their items (the state file stores only the tree).
local function link(state)
  for _, track in ipairs(state.tracks) do
    track.items = track.items or {}
    for _, item in ipairs(track.items) do
      item._track = track
      item.takes = item.takes or {}
      for _, take in ipairs(item.takes) do take._item = item end
    end
  end
end

local function sort_items(track)
  table.sort(track.items, function(a, b) return a.position < b.position end)
end

local function all_items(state)
  local out = {}
  for _, track in ipairs(state.tracks) do
    for _, item in ipairs(track.items) do out[#out + 1] = item end
  end
  return out
end

local function copy_source(source)
  if source == nil then return nil end
  local out = {}
  for k, v in pairs(source) do out[k] = (type(v) == "table" and k == "parent") and copy_source(v) or v end
  return out
end

local function copy_ext(ext)
  if ext == nil then return nil end
  local out = {}
  for k, v in pairs(ext) do out[k] = v end
  return out
end

--- P_EXT:<key> of an item or take, as GetSetMedia*Info_String reads and writes it: REAPER keeps the value in the
--- project (and copies it when the item is split); setting "" removes the key; reading a missing key gives false, "".
local function extension_data(object, parm, value, set)
  local key = parm:sub(7)
  if key == "" then fail("%s needs a key after P_EXT:", parm) end
  if set then
    object.ext = object.ext or {}
    object.ext[key] = value ~= "" and value or nil
  end
  local stored = object.ext and object.ext[key]
  return stored ~= nil, stored or ""
end

local ITEM_NUMBERS = { D_POSITION = "position", D_LENGTH = "length" }
local TAKE_NUMBERS = { D_STARTOFFS = "startoffs", D_PLAYRATE = "playrate", B_PPITCH = "ppitch", D_PITCH = "pitch",
                       I_PITCHMODE = "pitchmode", D_VOL = "vol", D_PAN = "pan", I_CHANMODE = "chanmode" }
local TAKE_DEFAULTS = { startoffs = 0, playrate = 1, ppitch = 0, pitch = 0, pitchmode = -1, vol = 1, pan = 0,
                        chanmode = 0 }

--- Make a global `reaper` table bound to `state`; `record` collects what the scripts showed and did.
function fake.install(state, record)
  link(state)
  local new_guid = guid_maker(state)
  state.extstate = state.extstate or {}
  state.projext = state.projext or {}
  state.project_info = state.project_info or {}
  state.project_info_strings = state.project_info_strings or {}
  -- REAPER always has a render sample rate and channel count (a new project: 44100 Hz, stereo)
  if state.project_info.RENDER_SRATE == nil then state.project_info.RENDER_SRATE = 44100 end
  if state.project_info.RENDER_CHANNELS == nil then state.project_info.RENDER_CHANNELS = 2 end
  local answers = state.message_answers or {}
  local dialogs = state.dialog_answers or {}
  local listing_cache = {}
  local ui_refresh = 0
  local undo_depth = 0

  -- A call that changes the project outside Undo_BeginBlock/EndBlock would make an undo point of its own (or none):
  -- the scripts keep each import and each decision to one, so such calls are listed for the tests to see.
  local function changes(what)
    if undo_depth == 0 then record.outside_undo[#record.outside_undo + 1] = what end
  end

  local function live(item)
    if item == nil or item._deleted then fail("an item handle that was deleted (or nil) was used") end
    return item
  end

  local r = {}

  -- messages and dialogs ---------------------------------------------------------------------------------------
  function r.ShowConsoleMsg(msg) record.console = record.console .. msg end

  function r.ShowMessageBox(msg, title, kind)
    record.messages[#record.messages + 1] = { text = msg, title = title, type = kind }
    if kind == 0 then return 1 end -- OK
    local answer = table.remove(answers, 1)
    if answer == nil then fail("a message box of type %d asked %q but the test gave no answer", kind, msg) end
    return answer
  end

  function r.GetUserInputs(title, num_inputs, captions_csv, retvals_csv)
    local captions, separator = {}, ","
    for entry in (captions_csv .. ","):gmatch("(.-),") do
      local sep = entry:match("^separator=(.)$")
      if sep then separator = sep
      elseif not entry:match("^extrawidth=%d+$") then captions[#captions + 1] = entry end
    end
    if #captions ~= num_inputs then fail("GetUserInputs: %d captions for %d inputs", #captions, num_inputs) end
    local defaults = {}
    for value in (retvals_csv .. separator):gmatch("(.-)" .. (separator == "\n" and "\n" or "%" .. separator)) do
      defaults[#defaults + 1] = value
    end
    record.dialogs[#record.dialogs + 1] = { title = title, captions = captions, defaults = defaults }
    local answer = table.remove(dialogs, 1)
    if answer == nil or answer == "cancel" then return false, "" end
    local values = {}
    for i, caption in ipairs(captions) do
      values[i] = defaults[i] or ""
      for prefix, typed in pairs(answer) do
        if caption:sub(1, #prefix) == prefix then values[i] = typed end
      end
    end
    return true, table.concat(values, separator)
  end

  -- settings ---------------------------------------------------------------------------------------------------
  function r.GetExtState(section, key) return state.extstate[section .. "/" .. key] or "" end

  function r.SetExtState(section, key, value, persist)
    if type(value) ~= "string" then fail("SetExtState value must be a string, got %s", type(value)) end
    state.extstate[section .. "/" .. key] = value
    if not persist then state.extstate_volatile = state.extstate_volatile or {}; state.extstate_volatile[key] = true end
  end

  -- Project extended state: per project and saved in its .RPP (state.projext, "extname/key" -> value, which the
  -- test's save / close-without-saving keep or throw away with the tracks); not part of undo (Undo_BeginBlock's
  -- snapshot holds the tracks only). An empty key clears the whole extname, an empty value deletes the key.
  local function current_project(proj, fn)
    if proj ~= 0 then fail("%s: the scripts address the current project as 0, got %s", fn, tostring(proj)) end
  end

  local enumerating = {} -- see EnumProjExtState

  function r.SetProjExtState(proj, extname, key, value)
    current_project(proj, "SetProjExtState")
    if type(extname) ~= "string" or extname == "" then fail("SetProjExtState needs an extname") end
    if type(key) ~= "string" or type(value) ~= "string" then fail("SetProjExtState key and value must be strings") end
    local prefix = extname .. "/"
    enumerating = {}
    if key == "" then
      for k in pairs(state.projext) do if k:sub(1, #prefix) == prefix then state.projext[k] = nil end end
    else
      state.projext[prefix .. key] = value ~= "" and value or nil
    end
    local size = 0
    for k, v in pairs(state.projext) do if k:sub(1, #prefix) == prefix then size = size + #k - #prefix + #v end end
    return size
  end

  -- the sorted keys of the extname enumerated last, reused while the enumeration goes on index by index with nothing
  -- set in between (sorting them again at each index cost a record of n keys n^2 log n, which is the stand-in's, not
  -- REAPER's, and hid the scripts' own costs in bench/reaper_records.py); record.enumerated counts the enumerations
  function r.EnumProjExtState(proj, extname, idx)
    current_project(proj, "EnumProjExtState")
    local prefix, keys = extname .. "/", nil
    local e = enumerating
    if idx > 0 and e.extname == extname and e.projext == state.projext and e.idx == idx - 1 then keys = e.keys end
    if not keys then
      record.enumerated[extname] = (record.enumerated[extname] or 0) + 1
      keys = {}
      for k in pairs(state.projext) do if k:sub(1, #prefix) == prefix then keys[#keys + 1] = k end end
      table.sort(keys)
    end
    enumerating = { extname = extname, projext = state.projext, idx = idx, keys = keys }
    local k = keys[idx + 1]
    if not k then return false end
    return true, k:sub(#prefix + 1), state.projext[k]
  end

  function r.GetProjectPath() return state.project_path end
  -- the current project and its file; a project never saved has none (state.project_file = "")
  function r.EnumProjects(idx)
    if idx ~= -1 and idx ~= 0 then return nil, "" end
    local file = state.project_file
    if file == nil then file = state.project_path .. "/song.RPP" end
    return { current = true }, file
  end
  function r.time_precise() return state.now end

  -- timeline ---------------------------------------------------------------------------------------------------
  function r.GetSet_LoopTimeRange(is_set, is_loop, start, stop, allowautoseek)
    if is_loop then fail("the scripts read the time selection, not the loop points") end
    if is_set then state.time_selection = { start, stop } end
    local ts = state.time_selection
    if not ts then return 0, 0 end
    return ts[1], ts[2]
  end

  function r.GetCursorPosition() return state.cursor or 0 end

  -- tracks and items ---------------------------------------------------------------------------------------------
  function r.CountTracks(proj) return #state.tracks end
  function r.GetTrack(proj, i) return state.tracks[i + 1] end
  function r.GetTrackGUID(track) return track.guid end
  function r.IsTrackSelected(track) return track.selected == true end

  function r.InsertTrackAtIndex(idx, want_defaults)
    idx = math.max(0, math.min(idx, #state.tracks))
    table.insert(state.tracks, idx + 1, { guid = new_guid(), name = "", items = {} })
  end

  function r.GetSetMediaTrackInfo_String(track, parm, value, set)
    if parm ~= "P_NAME" then fail("GetSetMediaTrackInfo_String: unknown %s", parm) end
    if set then track.name = value end
    return true, track.name or ""
  end

  function r.CountMediaItems(proj) return #all_items(state) end
  function r.GetMediaItem(proj, i) return all_items(state)[i + 1] end
  function r.GetTrackNumMediaItems(track) return #track.items end
  function r.GetTrackMediaItem(track, i) return track.items[i + 1] end
  function r.GetMediaItem_Track(item) return item._track end

  local function selected_items()
    local out = {}
    for _, item in ipairs(all_items(state)) do if item.selected then out[#out + 1] = item end end
    return out
  end
  function r.CountSelectedMediaItems(proj) return #selected_items() end
  function r.GetSelectedMediaItem(proj, i) return selected_items()[i + 1] end

  function r.GetMediaItemInfo_Value(item, parm)
    local field = ITEM_NUMBERS[parm] or fail("GetMediaItemInfo_Value: unfaked parameter %s", parm)
    return live(item)[field]
  end

  function r.SetMediaItemPosition(item, position, refresh)
    changes("SetMediaItemPosition")
    live(item).position = position
    sort_items(item._track)
    return true
  end

  function r.SetMediaItemLength(item, length, refresh)
    changes("SetMediaItemLength")
    live(item).length = length
    return true
  end

  function r.GetSetMediaItemInfo_String(item, parm, value, set)
    live(item)
    if set then changes("GetSetMediaItemInfo_String " .. parm) end
    if parm:sub(1, 6) == "P_EXT:" then return extension_data(item, parm, value, set) end
    if parm ~= "GUID" then fail("GetSetMediaItemInfo_String: unfaked parameter %s", parm) end
    if set then item.guid = value end
    return true, item.guid
  end

  function r.IsMediaItemSelected(item) return live(item).selected == true end

  function r.SetMediaItemSelected(item, selected)
    live(item).selected = selected
  end

  function r.DeleteTrackMediaItem(track, item)
    changes("DeleteTrackMediaItem")
    for i, other in ipairs(track.items) do
      if other == item then
        table.remove(track.items, i)
        item._deleted = true
        return true
      end
    end
    return false -- not on that track
  end

  function r.AddMediaItemToTrack(track)
    changes("AddMediaItemToTrack")
    local item = { guid = new_guid(), position = 0, length = 0, takes = {}, _track = track }
    track.items[#track.items + 1] = item
    sort_items(track)
    return item
  end

  function r.SplitMediaItem(item, position)
    changes("SplitMediaItem")
    live(item)
    -- the original becomes the left-hand piece; the right-hand piece is returned (nil when outside the item)
    if position <= item.position or position >= item.position + item.length then return nil end
    local cut = position - item.position
    local right = { guid = new_guid(), position = position, length = item.length - cut, selected = item.selected,
                    active_take = item.active_take, takes = {}, ext = copy_ext(item.ext), _track = item._track }
    for i, take in ipairs(item.takes) do
      local copy = {}
      for k, v in pairs(take) do copy[k] = v end
      copy.guid = new_guid()
      copy.source = copy_source(take.source)
      copy.ext = copy_ext(take.ext)
      copy.startoffs = (take.startoffs or 0) + cut * (take.playrate or 1)
      copy._item = right
      right.takes[i] = copy
    end
    item.length = cut
    table.insert(item._track.items, right)
    sort_items(item._track)
    record.splits[#record.splits + 1] = position
    return right
  end

  -- takes ---------------------------------------------------------------------------------------------------------
  function r.CountTakes(item) return #live(item).takes end
  function r.GetMediaItemTake(item, i) return live(item).takes[i + 1] end
  function r.GetActiveTake(item) return live(item).takes[item.active_take or 1] end
  function r.GetMediaItemTake_Item(take) return take._item end

  function r.SetActiveTake(take)
    changes("SetActiveTake")
    for i, t in ipairs(live(take._item).takes) do if t == take then take._item.active_take = i end end
  end

  function r.AddTakeToMediaItem(item)
    changes("AddTakeToMediaItem")
    live(item)
    local take = { guid = new_guid(), name = "", startoffs = 0, playrate = 1, ppitch = 0, _item = item }
    item.takes[#item.takes + 1] = take
    if #item.takes == 1 then item.active_take = 1 end
    return take
  end

  function r.GetMediaItemTakeInfo_Value(take, parm)
    local field = TAKE_NUMBERS[parm] or fail("GetMediaItemTakeInfo_Value: unfaked parameter %s", parm)
    local value = take[field]
    if value == nil then value = TAKE_DEFAULTS[field] end
    return value
  end

  function r.SetMediaItemTakeInfo_Value(take, parm, value)
    local field = TAKE_NUMBERS[parm] or fail("SetMediaItemTakeInfo_Value: unfaked parameter %s", parm)
    take[field] = value
    return true
  end

  function r.GetSetMediaItemTakeInfo_String(take, parm, value, set)
    if set then changes("GetSetMediaItemTakeInfo_String " .. parm) end
    if parm:sub(1, 6) == "P_EXT:" then return extension_data(take, parm, value, set) end
    local field = ({ P_NAME = "name", GUID = "guid" })[parm]
    if not field then fail("GetSetMediaItemTakeInfo_String: unfaked parameter %s", parm) end
    if set then take[field] = value end
    return true, take[field] or ""
  end

  function r.TakeIsMIDI(take) return take.source ~= nil and take.source.midi == true end
  function r.GetTakeNumStretchMarkers(take) return take.stretch_markers or 0 end
  function r.GetMediaItemTake_Source(take) return take.source end

  -- sources ---------------------------------------------------------------------------------------------------------
  function r.GetMediaSourceFileName(source) return source.file or "" end
  function r.GetMediaSourceParent(source) return source.parent end
  function r.GetMediaSourceLength(source) return source.length or 0, source.midi == true end
  -- a file's rate and channels (a test's source table may set them; 44.1 kHz stereo otherwise); MIDI has none
  function r.GetMediaSourceSampleRate(source)
    if source.midi then return 0 end
    return source.srate or 44100
  end
  function r.GetMediaSourceNumChannels(source)
    if source.midi then return 0 end
    return source.channels or 2
  end

  function r.PCM_Source_GetSectionInfo(source)
    local s = source.section
    if not s then return false, 0, 0, false end
    return true, s.offset, s.length, s.reversed == true
  end

  function r.PCM_Source_CreateFromFile(path) return { file = path, type = "WAVE" } end

  function r.SetMediaItemTake_Source(take, source)
    take.source = source
    return true
  end

  -- project info and rendering -------------------------------------------------------------------------------------
  function r.GetSetProjectInfo(proj, desc, value, is_set)
    if not desc:match("^RENDER_") then fail("GetSetProjectInfo: unfaked %s", desc) end
    if is_set then state.project_info[desc] = value end
    return state.project_info[desc] or 0
  end

  local function render_target()
    local folder, pattern = state.project_info_strings.RENDER_FILE or "", state.project_info_strings.RENDER_PATTERN or ""
    return folder .. "/" .. pattern .. ".wav"
  end

  function r.GetSetProjectInfo_String(proj, desc, value, is_set)
    if desc == "RENDER_TARGETS" then return true, render_target() end
    if not desc:match("^RENDER_") then fail("GetSetProjectInfo_String: unfaked %s", desc) end
    if is_set then state.project_info_strings[desc] = value end
    return true, state.project_info_strings[desc] or ""
  end

  -- Take actions work on the selected items, as in REAPER's Actions list.
  local TAKE_ACTIONS = {
    [40129] = function(item) -- Take: Delete active take from items
      if #item.takes < 2 then fail("40129 on an item with one take would leave an empty item; delete the item") end
      table.remove(item.takes, item.active_take or 1)
      item.active_take = math.min(item.active_take or 1, #item.takes)
    end,
    [40131] = function(item) -- Take: Crop to active take in items
      item.takes = { item.takes[item.active_take or 1] }
      item.active_take = 1
    end,
  }

  function r.Main_OnCommand(command, flag)
    if TAKE_ACTIONS[command] then
      changes("Main_OnCommand " .. command)
      record.actions[#record.actions + 1] = command
      for _, item in ipairs(selected_items()) do TAKE_ACTIONS[command](item) end
      return
    end
    if command ~= 42230 then fail("Main_OnCommand: unfaked action %d", command) end
    local snapshot = { numbers = {}, strings = {}, target = render_target() }
    for k, v in pairs(state.project_info) do snapshot.numbers[k] = v end
    for k, v in pairs(state.project_info_strings) do snapshot.strings[k] = v end
    record.renders[#record.renders + 1] = snapshot
    if state.render_writes_file ~= false then
      local f = assert(io.open(snapshot.target, "wb"))
      f:write("RIFF fake render")
      f:close()
    end
  end

  -- files ------------------------------------------------------------------------------------------------------------
  local function read_listing(path)
    local names = {}
    local pipe = io.popen("find '" .. path:gsub("'", "'\\''") .. "' -mindepth 1 -maxdepth 1 -type f -printf '%f\\n' 2>/dev/null")
    for line in pipe:lines() do names[#names + 1] = line end
    pipe:close()
    return names
  end

  function r.EnumerateFiles(path, index)
    -- REAPER caches a folder's listing; index -1 forces a re-read
    if index == -1 or not listing_cache[path] then listing_cache[path] = read_listing(path) end
    if index < 0 then return nil end
    return listing_cache[path][index + 1]
  end

  function r.RecursiveCreateDirectory(path, ignored)
    os.execute("mkdir -p '" .. path:gsub("'", "'\\''") .. "'")
    return 1
  end

  -- housekeeping -------------------------------------------------------------------------------------------------------
  function r.defer(fn) record.deferred[#record.deferred + 1] = fn end
  function r.UpdateArrange() end
  function r.PreventUIRefresh(n) ui_refresh = ui_refresh + n end
  -- the project's tracks as the outermost block began, so that a test can undo the last block (Project.undo)
  local before_block
  local function snapshot(value)
    if type(value) ~= "table" then return value end
    local out = {}
    for k, v in pairs(value) do
      if type(k) ~= "string" or k:sub(1, 1) ~= "_" then out[k] = snapshot(v) end
    end
    return out
  end

  function r.Undo_BeginBlock()
    if undo_depth == 0 then before_block = snapshot(state.tracks) end
    undo_depth = undo_depth + 1
  end

  function r.Undo_EndBlock(description, flags)
    undo_depth = undo_depth - 1
    record.undo[#record.undo + 1] = description
    if undo_depth == 0 then state.undo_last = { description = description, tracks = before_block } end
  end

  function fake.balance_problems()
    local problems = {}
    if ui_refresh ~= 0 then problems[#problems + 1] = "PreventUIRefresh left at " .. ui_refresh end
    if undo_depth ~= 0 then problems[#problems + 1] = "undo blocks left open: " .. undo_depth end
    return problems
  end

  setmetatable(r, { __index = function(_, name) fail("reaper.%s is not faked", name) end })
  _G.reaper = r
  _G.gfx = fake.gfx(state, record.gfx)
  return r
end

--- REAPER's gfx window, as far as a script showing a PNG uses it: loadimg reads the file's PNG header for its size
--- (-1 for anything that is not a PNG), the window stays open for `state.gfx_frames` frames (default 3), then
--- getchar answers -1 as when the producer closes it. What was loaded, opened and blitted goes into `seen`.
function fake.gfx(state, seen)
  local g = { w = 0, h = 0, x = 0, y = 0 }
  local images = {}
  local frames_left = state.gfx_frames or 3
  seen.blits = 0
  function g.loadimg(index, path)
    local f = io.open(path, "rb")
    local data = f and f:read("a")
    if f then f:close() end
    if not data or data:sub(1, 8) ~= "\137PNG\r\n\26\n" or data:sub(13, 16) ~= "IHDR" then return -1 end
    local width, height = string.unpack(">I4I4", data, 17)
    images[index] = { width, height }
    seen.loaded = path
    return index
  end
  function g.getimgdim(index)
    local dims = images[index] or { 0, 0 }
    return dims[1], dims[2]
  end
  function g.init(title, width, height)
    seen.window = { title = title, w = width, h = height }
    g.w, g.h = width, height
  end
  function g.getchar()
    if seen.window == nil or seen.closed then return -1 end
    frames_left = frames_left - 1
    if frames_left < 0 then return -1 end
    return 0
  end
  function g.blit(index, scale, rotation)
    if images[index] == nil then fail("gfx.blit of image %d, which was never loaded", index) end
    seen.blits = seen.blits + 1
    seen.scale = scale
  end
  function g.update() end
  function g.quit() seen.closed = true end
  return setmetatable(g, { __index = function(_, name) fail("gfx.%s is not faked", name) end })
end

return fake
