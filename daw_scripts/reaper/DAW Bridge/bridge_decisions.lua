-- @noindex
-- The producer's decisions on delivered jobs (from a pad, OSC or the voice, through the daemon), applied to the
-- takes the companion imported:
--
--   choose n   variant n's take becomes the active take (0: the original, the take active before the job's came)
--   keep n     the same, then the item is cropped to it, as REAPER's "Crop to active take" (keep 0 is a discard)
--   discard    the job's takes go and the original is active again; the pieces the job split the item into are
--              joined again, an item it lengthened gets its length back, an item it made is deleted
--
-- The daemon publishes each job's latest decision as <drop folder>/.daw-bridge-decisions/<job_id>.json (format in
-- osc_schema/spec.py, constants DECISION_FORMAT and DECISIONS_FOLDER). Each decision applied is one undo point and
-- is recorded in the project (util.DECIDED, job id -> seq), so a restart or a second companion never applies it
-- again, while closing the project without saving forgets it with what it changed and applies it again. It is also
-- noted as a line "<job_id><TAB><seq>" in <drop folder>/.reaper-decided, where the daemon reads what was applied to
-- number the next decision; lines "<job_id> <seq>" there are an older companion's record and count as applied. A
-- decision whose results are not imported yet waits for them. What each decision changes is planned in
-- bridge_decision_plans.lua.

local util = require("bridge_util")
local json = require("bridge_json")
local job_takes = require("bridge_job_takes")
local plans = require("bridge_decision_plans")

local decisions = {}

local function is_file_name(name)
  return type(name) == "string" and name ~= "" and name ~= ".." and not name:find("[/\\]")
end

--- The decision's problem for this companion, or nil when it can be applied. `name` is its file's name.
function decisions.check(decision, name, constants)
  if type(decision) ~= "table" then return "not a JSON object" end
  if decision.format ~= constants.DECISION_FORMAT then
    return string.format('format is "%s", this companion reads "%s"', tostring(json.value(decision.format)),
      constants.DECISION_FORMAT)
  end
  if not is_file_name(decision.job_id) or decision.job_id .. ".json" ~= name then
    return "job_id " .. tostring(json.value(decision.job_id)) .. " does not match the file name"
  end
  local seq = type(decision.seq) == "number" and math.tointeger(decision.seq)
  if not seq or seq < 1 then return "seq must be a whole number from 1, got " .. tostring(json.value(decision.seq)) end
  local known = false
  for _, kind in ipairs(constants.ENUMS.decision) do known = known or decision.decision == kind end
  if not known then
    return "decision must be choose, keep or discard, got " .. tostring(json.value(decision.decision))
  end
  local manifests = decision.manifests
  if type(manifests) ~= "table" or #manifests == 0 then return "manifests must list the job's manifest files" end
  for _, manifest in ipairs(manifests) do
    if not is_file_name(manifest) then return "manifests must be file names, got " .. tostring(manifest) end
  end
  local choice = json.value(decision.choice)
  if choice == nil then
    if decision.decision == "choose" then return "choose needs a choice" end
  elseif type(choice) ~= "number" or math.tointeger(choice) == nil or choice < 0 or choice > #manifests then
    return string.format("choice must be 0 (the original) to %d, got %s", #manifests, tostring(choice))
  end
  return nil
end

--- What a decision does, in the producer's words: "keep variant 2", "choose the original", "discard the variants".
local function describe(kind, choice)
  if kind == "discard" then return "discard the variants" end
  if choice == nil then return kind .. " the active take" end
  return kind .. (choice == 0 and " the original" or " variant " .. choice)
end

--- The variant number of each manifest's audio file, for takes imported before they were marked; and the job's
--- replaced range in seconds of its variants' files ({from, to}, nil when no manifest says), for job_takes.find.
local function audio_variants(folder, manifests)
  local audio, replaced = {}, nil
  for n, name in ipairs(manifests) do
    local manifest = json.try_decode(util.read_file(util.join(folder, name)) or "")
    if type(manifest) == "table" and is_file_name(manifest.audio) then audio[manifest.audio] = n end
    local source = type(manifest) == "table" and json.value(manifest.source)
    if type(source) == "table" and type(source.start) == "number" and type(source["end"]) == "number"
      and type(source.span_start) == "number" then
      replaced = replaced or { from = source.start - source.span_start, to = source["end"] - source.span_start }
    end
  end
  return audio, replaced
end

--- Apply one decision as one undo point; returns the console line saying what it did.
local function apply_one(decision, folder)
  local job_id, choice = decision.job_id, decision.choice
  local what = describe(decision.decision, choice)
  local audio, replaced = audio_variants(folder, decision.manifests)
  local groups = job_takes.find(job_id, decision.manifests, audio, replaced)
  if #groups == 0 then
    return string.format("%s: %s: none of its takes is in the project any more (deleted, or the project was not "
      .. "saved after the import); nothing changed", job_id, what)
  end
  local notes = {}
  local changes = plans[decision.decision](groups, choice, notes)
  if #changes > 0 then
    reaper.Undo_BeginBlock()
    reaper.PreventUIRefresh(1)
    local ok, err = pcall(function() for _, change in ipairs(changes) do change() end end)
    reaper.PreventUIRefresh(-1)
    reaper.UpdateArrange()
    reaper.Undo_EndBlock("DAW Bridge: " .. what .. " of job " .. job_id, -1)
    if not ok then notes[#notes + 1] = "failed: " .. tostring(err) end
  end
  return string.format("%s: %s%s", job_id, what, #notes > 0 and " (" .. table.concat(notes, "; ") .. ")" or "")
end

--- The seq applied last for each job: the project's record, and the lines an older companion wrote (a space between
--- job and seq; this one writes a tab, for the daemon only).
local function read_applied(constants, folder)
  local applied = {}
  for _, line in ipairs(util.ledger_lines(folder, constants.DECIDED_LEDGERS.reaper)) do
    local job_id, seq = line:match("^(%S+) (%d+)$")
    if job_id then applied[job_id] = math.max(applied[job_id] or 0, tonumber(seq)) end
  end
  for job_id, seq in pairs(util.project_record(util.DECIDED)) do
    seq = math.tointeger(tonumber(seq))
    if seq then applied[job_id] = math.max(applied[job_id] or 0, seq) end
  end
  return applied
end

-- decision files read while the companion runs: path -> {text = the file's text, decision = what read_decision made of
-- it (false: bad)}. Every scan reads each decision file again, one for every job ever decided, as the daemon replaces
-- a job's file with its next decision; a text as read before is not decoded and checked again.
local read_before = {}

--- The decision in the file `name`, checked, its numbers made whole; nil when it is bad (named once).
local function read_decision(decided, name, constants)
  local path = util.join(decided, name)
  local text = util.read_file(path) or ""
  local before = read_before[path]
  if before and before.text == text then return before.decision or nil end
  local decision, problem = json.try_decode(text)
  problem = decision and decisions.check(decision, name, constants) or problem
  if problem then
    util.report_once("decision " .. name .. problem, "decision " .. name .. " not applied: " .. problem)
    decision = nil
  else
    decision.seq = math.tointeger(decision.seq) -- a JSON 2.0 is seq 2
    decision.choice = json.value(decision.choice) and math.tointeger(decision.choice)
  end
  read_before[path] = { text = text, decision = decision or false }
  return decision
end

--- Apply every decision in the drop folder newer than the one applied last for its job, once its results are all
--- imported (`imported`: manifest file name -> true); with `belongs`, only the decisions it says are this project's.
--- Returns how many were applied.
function decisions.apply_new(constants, folder, imported, belongs)
  local decided = util.join(folder, constants.DECISIONS_FOLDER)
  local applied = read_applied(constants, folder)
  local count = 0
  for _, name in ipairs(util.list_files(decided)) do
    local decision = name:sub(1, 1) ~= "." and name:sub(-5) == ".json" and read_decision(decided, name, constants)
    if decision and decision.seq > (applied[decision.job_id] or 0) and (not belongs or belongs(decision)) then
      local waiting = {}
      for _, manifest in ipairs(decision.manifests) do
        if not imported[manifest] then waiting[#waiting + 1] = manifest end
      end
      if #waiting > 0 then
        local what = describe(decision.decision, decision.choice)
        util.report_once("decision " .. name .. decision.seq, string.format(
          "%s: %s waits for its results to be imported (%s)", decision.job_id, what, table.concat(waiting, ", ")))
      else
        util.set_project_record(util.DECIDED, decision.job_id, tostring(decision.seq))
        util.log(apply_one(decision, folder))
        local line = decision.job_id .. "\t" .. decision.seq
        local ok, err = util.add_ledger_line(folder, constants.DECIDED_LEDGERS.reaper, line)
        if not ok then util.report_once("decision ledger", "decisions applied not noted for the daemon: " .. err) end
        applied[decision.job_id] = decision.seq
        count = count + 1
      end
    end
  end
  return count
end

return decisions
