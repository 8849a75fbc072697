-- @noindex
-- Paths, files and settings shared by the DAW Bridge scripts.

local util = {}

util.TITLE = "DAW Bridge"
util.SECTION = "daw_bridge" -- ExtState section for settings and remembered dialog values

--- Folder separator used by a path (REAPER hands Windows paths with backslashes).
function util.separator_of(path)
  if path:find("\\", 1, true) and not path:find("/", 1, true) then return "\\" end
  return "/"
end

--- `folder` and `name` joined with the folder's own separator.
function util.join(folder, name)
  local sep = util.separator_of(folder)
  if folder:sub(-1) == "/" or folder:sub(-1) == "\\" then return folder .. name end
  return folder .. sep .. name
end

--- The folder part of a path.
function util.dirname(path)
  return path:match("^(.*)[/\\][^/\\]*$") or "."
end

--- The file name part of a path.
function util.basename(path)
  return path:match("([^/\\]+)$") or path
end

--- `~` at the start of a path expanded to the home folder.
function util.expand_home(path)
  if path:sub(1, 1) ~= "~" then return path end
  local home = os.getenv("HOME") or os.getenv("USERPROFILE") or ""
  return home .. path:sub(2)
end

--- Whole contents of a file, or nil and the reason.
function util.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  return text
end

function util.file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

--- Write `text` so that a reader never sees half of it: a dot-named temporary file renamed into place.
function util.write_atomic(path, text)
  local folder, name = util.dirname(path), util.basename(path)
  local temp = util.join(folder, string.format(".%s.%d%04d.part", name:gsub("%.json$", ""), os.time(), math.random(0, 9999)))
  local f, err = io.open(temp, "wb")
  if not f then return nil, "cannot write " .. temp .. ": " .. tostring(err) end
  local written, werr = f:write(text)
  local closed, cerr = f:close() -- a full disk shows here, when the text is flushed
  if not (written and closed) then os.remove(temp) return nil, "cannot write " .. temp .. ": " .. tostring(werr or cerr) end
  local renamed, rerr = os.rename(temp, path)
  if not renamed then os.remove(temp) return nil, "cannot rename " .. temp .. " to " .. path .. ": " .. tostring(rerr) end
  return true
end

--- Make a folder and its parents (a failure shows up when a file is written there).
function util.make_folder(path)
  reaper.RecursiveCreateDirectory(path, 0)
end

--- File names in a folder, freshly read (REAPER caches folder listings until told to re-read).
function util.list_files(folder)
  local names = {}
  reaper.EnumerateFiles(folder, -1)
  local i = 0
  while true do
    local name = reaper.EnumerateFiles(folder, i)
    if not name then break end
    names[#names + 1] = name
    i = i + 1
  end
  table.sort(names)
  return names
end

-- Ledgers: lists beside the results, one line each, that every project in the folder (and the daemon) reads ----------

util.PLAYRATES = ".reaper-playrates" -- "<request id> <playrate>" for each request from an item not at rate 1
util.SENT = ".reaper-sent" -- "<request id> <project file>" for each request sent: projects saved in one folder share it
-- It keeps every line, unlike the project's own record of what it sent (SENT_FROM_HERE): results stay in the folder
-- (their audio plays in the takes), and another project there, or one saved there next year, asks it of each result
-- it has not imported; a line gone puts that result on the other project's results track. It is read once a scan
-- (bridge_placement.senders), and only for a result this project has not imported.

--- The lines of the list file `name` in `folder`; {} when there is none yet.
function util.ledger_lines(folder, name)
  local lines = {}
  for line in (util.read_file(util.join(folder, name)) or ""):gmatch("[^\r\n]+") do lines[#lines + 1] = line end
  return lines
end

--- Add one line to the list file `name` in `folder`; nil and the reason when it cannot be written.
function util.add_ledger_line(folder, name, line)
  local f, err = io.open(util.join(folder, name), "ab")
  if not f then return nil, "cannot record it in " .. util.join(folder, name) .. ": " .. tostring(err) end
  local written, werr = f:write(line, "\n")
  local closed, cerr = f:close() -- a full disk shows here, when the line is flushed
  if not (written and closed) then
    return nil, "cannot record it in " .. util.join(folder, name) .. ": " .. tostring(werr or cerr)
  end
  return true
end

-- Records in the project ----------------------------------------------------------------------------------
-- What the companion did to this project (the results it imported, the decisions it applied) is recorded in the
-- project itself, as project extended state: saved in the .RPP with the takes it describes, so closing the project
-- without saving (or a crash before a save) forgets the takes and their record together, and the next scan brings
-- them back. It is not part of undo: undoing an import leaves the result recorded, so it does not come back.

util.IMPORTED = "daw_bridge_imported" -- manifest file name -> "1"
-- It keeps every name: the manifest stays in the drop folder (its audio plays in the takes, or did until a discard),
-- and a name off this record is a new result to the next scan, imported again; it grows as the folder does.
util.DECIDED = "daw_bridge_decided" -- job id -> the seq of the decision applied last
util.SENT_FROM_HERE = "daw_bridge_sent" -- request id -> the drop folder the request named (Save As may move the project)
-- That record keeps a request until a result of it is imported (a copy saved elsewhere looks for it there), then, for
-- decisions on it (the daemon publishes them in that folder too), only among the newest SENT_IMPORTED_KEPT imported;
-- it grew by one line per request for good. A result never imported (a failed job) waits among the newest
-- SENT_WAITING_KEPT.
util.SENT_IMPORTED_KEPT = 32
util.SENT_WAITING_KEPT = 256
local IMPORTED_MARK = "imported " -- before the folder once a result was imported (no absolute path starts so)

-- keys are file names and job ids made safe for the project file: anything but letters, digits, '.', '_' and '-' is
-- written %XX
local function record_key(name)
  return (name:gsub("[^%w._-]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function record_name(key)
  return (key:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

--- The record `section` of the current project: name -> value; {} when there is none.
function util.project_record(section)
  local record, i = {}, 0
  while true do
    local found, key, value = reaper.EnumProjExtState(0, section, i)
    if not found then break end
    record[record_name(key)] = value
    i = i + 1
  end
  return record
end

--- Record `value` for `name` in the current project's record `section` ("" takes `name` off it).
function util.set_project_record(section, name, value)
  reaper.SetProjExtState(0, section, record_key(name), value)
end

--- The requests this project sent that it still records: request id -> {folder = the drop folder the request named,
--- imported = whether a result of it was imported}.
function util.sent_requests()
  local sent = {}
  for id, value in pairs(util.project_record(util.SENT_FROM_HERE)) do
    local imported = value:sub(1, #IMPORTED_MARK) == IMPORTED_MARK
    sent[id] = { folder = imported and value:sub(#IMPORTED_MARK + 1) or value, imported = imported }
  end
  return sent
end

-- "reaper-<unix time>-<counter>" in the order sent; any other id (none is sent so) before them
local function sent_before(a, b)
  local ta, ca = a:match("^reaper%-(%d+)%-(%d+)$")
  local tb, cb = b:match("^reaper%-(%d+)%-(%d+)$")
  ta, ca, tb, cb = tonumber(ta) or -1, tonumber(ca) or -1, tonumber(tb) or -1, tonumber(cb) or -1
  if ta ~= tb then return ta < tb end
  if ca ~= cb then return ca < cb end
  return a < b
end

local function prune_sent()
  local lists = { [true] = {}, [false] = {} }
  for id, entry in pairs(util.sent_requests()) do table.insert(lists[entry.imported], id) end
  for imported, kept in pairs({ [true] = util.SENT_IMPORTED_KEPT, [false] = util.SENT_WAITING_KEPT }) do
    local ids = lists[imported]
    table.sort(ids, sent_before)
    for n = 1, #ids - kept do util.set_project_record(util.SENT_FROM_HERE, ids[n], "") end
  end
end

--- Record in the project that it sent `request_id`, naming the drop folder `folder`.
function util.note_sent(request_id, folder)
  util.set_project_record(util.SENT_FROM_HERE, request_id, folder)
  prune_sent()
end

--- Record that a result of the request `request_id` was imported (nothing when this project did not send it).
function util.note_sent_imported(request_id)
  local entry = type(request_id) == "string" and util.sent_requests()[request_id]
  if not entry or entry.imported then return end
  util.set_project_record(util.SENT_FROM_HERE, request_id, IMPORTED_MARK .. entry.folder)
  prune_sent()
end

-- Settings --------------------------------------------------------------------------------------------

util.DEFAULT_INBOX = "~/daw-bridge/inbox"

--- A persistent setting, or `default` when unset.
function util.setting(key, default)
  local value = reaper.GetExtState(util.SECTION, key)
  if value == nil or value == "" then return default end
  return value
end

function util.set_setting(key, value)
  reaper.SetExtState(util.SECTION, key, tostring(value), true)
end

--- The daemon's inbox folder (ExtState daw_bridge/inbox, default ~/daw-bridge/inbox).
function util.inbox()
  return util.expand_home(util.setting("inbox", util.DEFAULT_INBOX))
end

--- Whether the current project has been saved to a file. An unsaved project's "project path" is REAPER's default
--- media folder, which every unsaved project shares, so it cannot hold one project's results.
function util.project_saved()
  local _, file = reaper.EnumProjects(-1)
  return file ~= nil and file ~= ""
end

util.UNSAVED = "Save the project first: daw-bridge delivers its results into a folder beside the project file, "
  .. "and this project has none yet."

--- This project's drop folder: <project path>/daw-bridge.
function util.drop_folder()
  return util.join(reaper.GetProjectPath(), "daw-bridge")
end

--- Whether two paths name the same folder as the scripts write them (Windows paths may mix separators).
function util.same_folder(a, b)
  local function plain(path) return (path:gsub("\\", "/"):gsub("/+$", "")) end
  return plain(a) == plain(b)
end

-- Messages ---------------------------------------------------------------------------------------------

--- A modal message to the producer.
function util.tell(message)
  reaper.ShowMessageBox(message, util.TITLE, 0)
end

--- A yes/no question; true for yes.
function util.ask(message)
  return reaper.ShowMessageBox(message, util.TITLE, 4) == 6
end

--- A line in REAPER's console.
function util.log(message)
  reaper.ShowConsoleMsg(util.TITLE .. ": " .. message .. "\n")
end

local reported = {} -- problems already shown by this script, by key

--- A console line shown once per session for `key`: a background script names a bad file once, not every second.
function util.report_once(key, message)
  if reported[key] then return end
  reported[key] = true
  util.log(message)
end

--- Seconds as the producer reads them on the ruler.
function util.seconds(t)
  return string.format("%.2f s", t)
end

-- Project ------------------------------------------------------------------------------------------------

--- An item's GUID string, the id the request and the manifest carry.
function util.item_guid(item)
  local _, guid = reaper.GetSetMediaItemInfo_String(item, "GUID", "", false)
  return guid
end

-- Constants --------------------------------------------------------------------------------------------

--- The generated constants module shipped beside the scripts (osc_schema is its source of truth).
function util.load_constants(script_dir)
  local path = script_dir .. "bridge_constants.lua"
  local ok, constants = pcall(dofile, path)
  if not ok or type(constants) ~= "table" then
    error("DAW Bridge: cannot load " .. path .. " (reinstall the package): " .. tostring(constants), 0)
  end
  return constants
end

return util
