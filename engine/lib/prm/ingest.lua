-- prm.ingest: the ingest driver. Reads a PRM export folder through a
-- connector's field mapping into the store, in batches, resumably.
--
--   local ingest = require "prm.ingest"
--   local summary = ingest.run{ dir = "export/", connector = "connectors/file.lua" }
--
-- Guarantees (issue 2): bad rows are reported with file, line and reason and
-- stored in ingest_rejects, good rows load; a file that is not CSV/JSON, or
-- lacks the connector's required columns, fails before anything of it is
-- written; each batch commits with its sync cursor, so after a kill a rerun
-- resumes from the last committed batch and ends in the same state as an
-- uninterrupted run; an unchanged file is skipped.
local prm = require "prm"
local csv = require "prm.csv"
local cjson = require "cjson"
local store = require "prm.store"

local M = {}

-- Objects load in dependency order: deals need partners, history needs deals.
M.order = { "partner", "deal", "deal_change", "commit", "quota", "transaction", "payout",
            "signal", "fx" }
local known = {}
for _, o in ipairs(M.order) do known[o] = true end

-- Rows per transaction. Measured on the 1M-deal sample: 1k -> 5k rows per
-- commit gains ~8%; past 20k nothing, and a kill loses more work.
M.batch = 5000

local function basename(p) return (p:match("[^/]+$")) end

-- Declared fields: `fields.<object>` maps the store's field names to the
-- export's columns as data, compiled once (here) and run in C for CSV
-- (prm.csv's r:map) or by the same rules in Lua for JSON:
--   external_id = "Deal ID"                       -- text, as is
--   amount = { "Deal Amount", "money", 1 }        -- money with a scale
--   created_at = { "Created Date", "date", "auto" }   -- date/instant + format
--   partner_probability = { "Partner Probability", "percent", 100 }
--   budget_confirmed = { "Budget Confirmed", "bool" }
--   stage = { "Stage", "lookup", { ["closed won"] = "closed_won", ... } }
--   currency = { "Currency", "currency" }         -- ISO 4217
--   completeness = { { "Account Name", ... }, "completeness" }
--   period = { "Period", "quarter" }              -- "FY2026 Q1" -> "2026-Q1"
--   contact_name = { { "First", "Last" }, "join", " " }   -- the first, then the others present
--   status = { "Status", "text", default = "open" }  -- text when the record has none
-- `finish.<object>(rec, ctx)` may then derive what a declaration cannot say
-- (a status from the stage) and returns rec, false (skip) or nil, why.
local kinds = { text = true, money = true, number = true, date = true, instant = true,
                percent = true, bool = true, lookup = true, currency = true, completeness = true,
                quarter = true, join = true }
local map = require "prm.map"
local sync = require "prm.sync"     -- the declared tenant fields' one owner

-- The date formats prm.date and the C plan read (timeutil.c's names).
local date_formats = { auto = true, iso = true, us = true, eu = true, epoch_ms = true,
                       epoch_s = true }

function M.compile_fields(db, obj, decl, path)
  local names, plan = {}, {}
  local have = {}
  for _, f in ipairs(db:fields(obj)) do have[f.name] = true end
  for field in pairs(decl) do names[#names + 1] = field end
  table.sort(names)
  for _, field in ipairs(names) do
    local d = decl[field]
    local where = ("%s: fields.%s.%s"):format(path, obj, tostring(field))
    if not have[field] then error(("%s: the store's %s has no field '%s'"):format(where, obj, field), 0) end
    local item
    if type(d) == "string" then
      item = { field, d, "text" }
    elseif type(d) == "table" then
      item = { field, d[1], d[2] or "text", d[3], keep = d.keep_unknown, default = d.default }
    else
      error(where .. ": must be a column name or {column, kind [, arg]}", 0)
    end
    if not kinds[item[3]] then error(("%s: unknown kind '%s'"):format(where, tostring(item[3])), 0) end
    if item.default ~= nil and (type(item.default) ~= "string" or
                                (item[3] ~= "text" and item[3] ~= "lookup")) then
      error(where .. ": a default is a string, for a text or lookup field", 0)
    end
    if item[3] == "completeness" or item[3] == "join" then
      if type(item[2]) ~= "table" then error(("%s: %s needs a list of columns"):format(where, item[3]), 0) end
      if item[3] == "join" then
        item[4] = item[4] or " "
        if type(item[4]) ~= "string" then error(where .. ": the join separator must be a string", 0) end
      end
    elseif type(item[2]) ~= "string" then
      error(where .. ": the column must be a string", 0)
    end
    if item[3] == "lookup" then
      if type(item[4]) ~= "table" then error(where .. ": lookup needs a table", 0) end
      local n = {}
      for k, v in pairs(item[4]) do n[map.norm(k)] = v end
      item.fn = map.lookup(item[4], item[2])
      item[4] = n
      if item.keep ~= nil and type(item.keep) ~= "boolean" then
        error(where .. ": keep_unknown must be true or false", 0)
      end
    elseif d.keep_unknown ~= nil then
      error(where .. ": keep_unknown is for a lookup", 0)
    elseif item[3] == "percent" then
      if item[4] == "0-100" then item[4] = 100 elseif item[4] == "0-1" then item[4] = 1 end
      if item[4] ~= 1 and item[4] ~= 100 then error(where .. ": percent needs its scale, 1 or 100", 0) end
    elseif item[3] == "money" then
      item[4] = item[4] or 1
      if type(item[4]) ~= "number" then error(where .. ": the money scale must be a number", 0) end
    elseif item[3] == "date" or item[3] == "instant" then
      item[4] = item[4] or "auto"
      if not date_formats[item[4]] then
        error(("%s: unknown date format '%s'"):format(where, tostring(item[4])), 0)
      end
    end
    plan[#plan + 1] = item
  end
  return plan
end

-- The same declared mapping in Lua, for records that are not CSV.
local function apply_plan(plan, raw)
  local rec = {}
  for i = 1, #plan do
    local it = plan[i]
    local field, col, kind, arg = it[1], it[2], it[3], it[4]
    if kind == "completeness" then
      rec[field] = map.completeness(raw, col)
    elseif kind == "join" then
      local v = raw[col[1]]
      if v ~= nil then
        for j = 2, #col do
          if raw[col[j]] ~= nil then v = v .. arg .. raw[col[j]] end
        end
      end
      rec[field] = v
    else
      local v = raw[col]
      if v ~= nil then
        if kind == "text" then rec[field] = v
        elseif kind == "money" then rec[field] = map.money(v, arg, col)
        elseif kind == "number" then rec[field] = map.number(v, col)
        elseif kind == "date" then rec[field] = map.date(v, arg, col)
        elseif kind == "instant" then rec[field] = map.instant(v, arg, col)
        elseif kind == "percent" then rec[field] = map.percent(v, arg, col)
        elseif kind == "bool" then rec[field] = map.bool(v, col)
        elseif kind == "lookup" then
          -- keep_unknown: a value the table lacks passes on as it is (a
          -- payout Type the store keeps as kind "other" + kind_raw).
          local r = it.keep and arg[map.norm(v)]
          rec[field] = r or (it.keep and v) or it.fn(v)
        elseif kind == "currency" then rec[field] = map.currency(v, col)
        elseif kind == "quarter" then rec[field] = map.quarter(v, col) end
      end
    end
    if rec[field] == nil and it.default then rec[field] = it.default end
  end
  return rec
end

-- Validates a connector table the way NSE checks a script's fields.
function M.check_connector(c, path)
  local function bad(field, what)
    error(("%s: field '%s' must be %s"):format(path, field, what), 0)
  end
  if type(c) ~= "table" then error(path .. ": a connector must return a table", 0) end
  if type(c.name) ~= "string" then bad("name", "a string") end
  if type(c.files) ~= "table" then bad("files", "a table") end
  if c.map ~= nil and type(c.map) ~= "table" then bad("map", "a table") end
  if c.fields ~= nil and type(c.fields) ~= "table" then bad("fields", "a table") end
  if c.finish ~= nil and type(c.finish) ~= "table" then bad("finish", "a table") end
  if c.columns ~= nil and type(c.columns) ~= "table" then bad("columns", "a table") end
  if c.tenant_fields ~= nil then
    if type(c.tenant_fields) ~= "table" then bad("tenant_fields", "a table") end
    for obj, list in pairs(c.tenant_fields) do
      if obj ~= "deal" then bad("tenant_fields." .. tostring(obj), "absent (deals only)") end
      sync.check_tenant_fields(list, "tenant_fields.deal", bad, "the export's column name")
    end
  end
  c.map, c.finish = c.map or {}, c.finish or {}
  c.path = path
  for obj in pairs(c.fields or {}) do
    if not known[obj] then
      error(("%s: fields.%s: unknown object (known: %s)"):format(path, tostring(obj),
        table.concat(M.order, ", ")), 0)
    end
  end
  for obj, base in pairs(c.files) do
    if not known[obj] then
      error(("%s: files.%s: unknown object (known: %s)"):format(path, tostring(obj),
        table.concat(M.order, ", ")), 0)
    end
    if type(base) ~= "string" then bad("files." .. obj, "a string") end
    local decl = c.fields and c.fields[obj]
    if decl ~= nil then
      if type(decl) ~= "table" then bad("fields." .. obj, "a table") end
      if c.map[obj] ~= nil then bad("map." .. obj, "absent when fields." .. obj .. " declares it") end
      if c.finish[obj] ~= nil and type(c.finish[obj]) ~= "function" then
        bad("finish." .. obj, "a function")
      end
    elseif type(c.map[obj]) ~= "function" then
      bad("map." .. obj, "a function (or declare fields." .. obj .. ")")
    end
    if c.columns and c.columns[obj] ~= nil and type(c.columns[obj]) ~= "table" then
      bad("columns." .. obj, "a list of column names")
    end
  end
  return c
end

-- Connectors load at the connector trust kind: a sandboxed environment
-- with the mapping helpers (prm, prm.map, cjson, prm.http) and no io/os.
local engine = require "prm.engine"
function M.load_connector(path)
  local shown = path
  if prm.root and path:sub(1, #prm.root + 1) == prm.root .. "/" then shown = path:sub(#prm.root + 2) end
  local c, err = engine.load(path, "connector", "@" .. shown)
  if c == nil and err then error(err, 0) end
  return M.check_connector(c, shown)
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- A JSON record made like a CSV one: an empty string or null is an absent
-- value; numbers and booleans become their text ("40", "true"), so one
-- mapping serves both; a nested object or array is kept as its JSON text
-- (a mapping may decode it); text must be valid UTF-8. Returns the record,
-- or nil and why it is refused.
local function number_text(x)
  if math.type(x) == "integer" then return tostring(x) end
  if x == math.floor(x) and x > -2^53 and x < 2^53 then return ("%d"):format(x) end
  local s = ("%.15g"):format(x)
  if tonumber(s) ~= x then s = ("%.17g"):format(x) end
  return s
end

local function clean(r)
  for k, v in pairs(r) do
    local t = type(v)
    if v == cjson.null or v == "" then
      r[k] = nil
    elseif t == "number" then
      r[k] = number_text(v)
    elseif t == "boolean" then
      r[k] = tostring(v)
    elseif t == "table" then
      local ok, text = pcall(cjson.encode, v)
      r[k] = ok and text or nil
    elseif t == "string" and not utf8.len(v) then
      return nil, ("invalid UTF-8 in column '%s'"):format(k)
    end
    if type(k) == "string" and not utf8.len(k) then
      return nil, "invalid UTF-8 in a key"
    end
  end
  return r
end

-- Record iterators: each returns rec, line | false, line, msg | nil at end.
-- The CSV reader behind each iterator, for r:map (weak: no lifetime of its own).
local reader_of = setmetatable({}, { __mode = "k" })

local function csv_records(path)
  local r, err = csv.open(path)
  if not r then return nil, err end
  local header = r:header()
  local function it() return r:read() end
  reader_of[it] = r
  return it, header, function() r:close() end
end

local wrappers = { "data", "items", "results", "records" }

local function json_records(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  local ok, doc = pcall(cjson.decode, text)
  if not ok then return nil, ("%s: not valid JSON (%s)"):format(path, doc) end
  local arr, wrapper = doc, nil
  -- cjson decodes [] and {} alike: the text says which it was.
  local is_array = text:match("^%s*(.)") == "["
  if type(doc) == "table" and not is_array then
    arr = nil
    for _, w in ipairs(wrappers) do
      if type(doc[w]) == "table" then arr, wrapper = doc[w], w break end
    end
  end
  if type(arr) ~= "table" then
    return nil, path .. ": expected a JSON array of records (or {\"data\": [...]})"
  end
  local dups = csv.json_dup_keys(text, wrapper)
  local i = 0
  return function()
    i = i + 1
    local rec = arr[i]
    if rec == nil then return nil end
    if type(rec) ~= "table" then return false, i, "record is not a JSON object" end
    if dups[i] then return false, i, ("duplicate key %q in the record"):format(dups[i]) end
    local r, why = clean(rec)
    if not r then return false, i, why end
    return r, i
  end, nil, function() end
end

local function jsonl_records(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local head = f:read(4096) or ""
  if head:find("\0", 1, true) then
    f:close()
    return nil, path .. ": not a JSON Lines file (binary content)"
  end
  f:seek("set", 0)
  local line = 0
  return function()
    while true do
      local l = f:read("l")
      if l == nil then return nil end
      line = line + 1
      if l:find("%S") then
        local ok, rec = pcall(cjson.decode, l)
        if not ok then return false, line, "not valid JSON: " .. tostring(rec) end
        if type(rec) ~= "table" or l:match("^%s*(.)") ~= "{" then
          return false, line, "record is not a JSON object"
        end
        local dup = csv.json_dup_keys(l)[1]
        if dup then return false, line, ("duplicate key %q in the record"):format(dup) end
        local r, why = clean(rec)
        if not r then return false, line, why end
        return r, line
      end
    end
  end, nil, function() f:close() end
end

local readers = { csv = csv_records, json = json_records, jsonl = jsonl_records,
                  ndjson = jsonl_records }

-- Finds <dir>/<base>.{csv,json,jsonl,ndjson}; returns path, kind, or
-- nil, nil, message when more than one exists (which one holds the truth
-- is not for the ingest to guess).
local function find_file(dir, base)
  local found = {}
  for _, ext in ipairs { "csv", "json", "jsonl", "ndjson" } do
    local p = ("%s/%s.%s"):format(dir, base, ext)
    if exists(p) then found[#found + 1] = { p, ext } end
  end
  if #found > 1 then
    local names = {}
    for i, f in ipairs(found) do names[i] = basename(f[1]) end
    return nil, nil, ("%s: %s all exist; keep one export per object (nothing of them was read)")
      :format(dir, table.concat(names, ", "))
  end
  if found[1] then return found[1][1], found[1][2] end
end

-- Fault injection for the kill-and-rerun test: only the test build
-- (build/prmcast-fault) has engine.fault; with PRMCAST_FAULT_KILL_AFTER=N
-- it SIGKILLs the process at the N-th row read (any file, mid-batch).
local fault = engine.fault

local function load_file(db, conn, object, path, kind, opts, summary)
  local source = opts.source
  local name = basename(path)
  local st = { file = name, object = object, read = 0, written = 0, unchanged = 0,
               rejected = 0, skipped = 0 }
  local fp = assert(csv.fingerprint(path))
  local key = object .. ":" .. name
  local wm, cursor = db:sync_get(source, key)
  if wm == fp and cursor < 0 then
    st.status = "unchanged"
    return st
  end
  local start = (wm == fp) and cursor or 0
  if start > 0 then st.resumed_after = start end

  local next_rec, header_or_err, close = readers[kind](path)
  if not next_rec then
    st.status = "failed"
    st.error = header_or_err
    return st
  end
  local need = conn.columns and conn.columns[object]
  if need and header_or_err then
    local have = {}
    for _, h in ipairs(header_or_err) do have[h] = true end
    local missing = {}
    for _, c in ipairs(need) do
      if not have[c] then missing[#missing + 1] = c end
    end
    if #missing > 0 then
      close()
      st.status = "failed"
      st.error = ("%s: not a %s export: missing column(s) %s"):format(name, object,
        table.concat(missing, ", "))
      return st
    end
  end

  local mapfn = conn.map[object]
  local plan = conn.plans[object]
  local loader                             -- the CSV reader, when rows go to the store in C
  -- Declared tenant columns are read from the raw row, so such a file's
  -- declared fields are converted by the Lua rules (apply_plan).
  local xdecl = conn.tenant_fields and conn.tenant_fields[object]
  if plan then
    local finish = conn.finish[object]
    if kind == "csv" and not opts.lua_plan and not xdecl then
      -- Declared fields convert in C as the rows are read; with nothing
      -- left for Lua to do, the rows go to the store in C too (r:load).
      reader_of[next_rec]:map(plan)
      mapfn = finish                       -- nil: the record is ready as read
      if not finish and not opts.lua_rows then loader = reader_of[next_rec] end
    elseif finish then
      mapfn = function(raw, c) return finish(apply_plan(plan, raw), c) end
    else
      mapfn = function(raw) return apply_plan(plan, raw) end
    end
  end
  local ctx = { source = source, file = name, object = object }
  local batch = opts.batch or conn.batch or M.batch
  local shown = 0
  local function reject(line, why)
    st.rejected = st.rejected + 1
    db:reject(source, name, line, why)
    if shown < (opts.show or 10) and not opts.quiet then
      io.stderr:write(("%s:%d: %s\n"):format(name, line, why))
      shown = shown + 1
    end
  end

  db:begin()
  local n, last = 0, start
  -- Counters are locals in the row loop (a table field per row costs).
  local nread, nwritten, nunchanged, nskipped = 0, 0, 0, 0
  local upsert = db.upsert
  local ok, err = pcall(function()
    while loader do
      local more, nr, nw, nu, lastl, rej = loader:load(db, object, source, batch - n, start, fault)
      for i = 1, #rej, 2 do reject(rej[i], rej[i + 1]) end
      nread, nwritten, nunchanged = nread + nr, nwritten + nw, nunchanged + nu
      n = n + nr
      if lastl > 0 then last = lastl end
      if n >= batch then
        db:sync_set(source, key, fp, last)
        db:commit()
        db:begin()
        n = 0
      end
      if not more then return end
    end
    while true do
      local rec, line, msg = next_rec()
      if rec == nil then break end
      if line > start then
        if fault then fault("ingest.row") end
        nread = nread + 1
        if rec == false then
          reject(line, msg)
        else
          local okm, out, why = true, rec, nil
          if mapfn then okm, out, why = pcall(mapfn, rec, ctx) end
          if not okm then
            reject(line, tostring(out))
          elseif out == false then
            nskipped = nskipped + 1
          elseif out == nil then
            reject(line, why or "rejected by the mapping")
          else
            if out.source == nil then out.source = source end
            local xf, w, uerr
            if xdecl then xf, uerr = sync.tenant_fields(xdecl, rec, true) end
            if not uerr then w, uerr = upsert(db, object, out) end
            if w ~= nil and xf then
              local w2, ferr = sync.store_tenant_fields(db, out, xf)
              if w2 == nil then w, uerr = nil, ferr elseif w2 then w = true end
            end
            if w == nil then reject(line, uerr)
            elseif w then nwritten = nwritten + 1
            else nunchanged = nunchanged + 1 end
          end
        end
        n, last = n + 1, line
        if n >= batch then
          db:sync_set(source, key, fp, last)
          db:commit()
          db:begin()
          n = 0
        end
      end
    end
  end)
  st.read, st.written, st.unchanged, st.skipped = nread, nwritten, nunchanged, nskipped
  close()
  if not ok then
    db:rollback()
    error(("%s: %s"):format(name, tostring(err)), 0)
  end
  db:sync_set(source, key, fp, -1)
  db:commit()
  if st.rejected > shown and not opts.quiet then
    io.stderr:write(("%s: %d more rejected row(s) not shown (see table ingest_rejects)\n")
      :format(name, st.rejected - shown))
  end
  st.status = "loaded"
  return st
end

-- ingest.run{dir=, connector=path|table, source=, batch=, quiet=, db=}
--   -> summary { files = {...}, read, written, unchanged, rejected, failed }
function M.run(opts)
  assert(type(opts) == "table" and type(opts.dir) == "string", "ingest.run{dir=...} expected")
  local db = opts.db or store.default()
  local conn = opts.connector or "connectors/file.lua"
  local conn_path = type(conn) == "string" and conn or "(connector table)"
  if type(conn) == "string" then
    if not exists(conn) and prm.root and exists(prm.root .. "/" .. conn) then
      conn = prm.root .. "/" .. conn
    end
    conn = M.load_connector(conn)
  else
    M.check_connector(conn, conn_path)
  end
  conn.plans = {}
  for _, obj in ipairs(M.order) do          -- in order: the first bad one is reported
    local decl = conn.fields and conn.fields[obj]
    if decl then conn.plans[obj] = M.compile_fields(db, obj, decl, conn.path or conn_path) end
  end
  opts.source = opts.source or conn.source or conn.name
  local summary = { dir = opts.dir, connector = conn.name, source = opts.source, files = {},
                    read = 0, written = 0, unchanged = 0, rejected = 0, failed = 0 }
  local t0 = os.clock()
  -- Every reference an ingested row holds was resolved to an existing row
  -- by the upsert itself (an unknown partner or deal rejects the row) and
  -- ingest deletes nothing, so SQLite's own foreign-key probe per insert
  -- is redundant here: off for the load, on again after (also on error).
  db:exec("PRAGMA foreign_keys = OFF")
  -- A first load builds the secondary indexes after its rows (store_bulk_*).
  local bulk = db:bulk_begin()
  local okr, rerr = pcall(M.load_all, db, conn, opts, summary)
  db:exec("PRAGMA foreign_keys = ON")
  if bulk then db:bulk_end() end
  if not okr then error(rerr, 0) end
  summary.cpu_seconds = os.clock() - t0
  if #summary.files == 0 then
    error(("%s: no export files found (expected e.g. %s.csv)"):format(opts.dir,
      conn.files.deal or conn.files.partner or "deals"), 0)
  end
  db:audit("ingest", opts.dir, cjson.encode { source = opts.source, read = summary.read,
    written = summary.written, rejected = summary.rejected, failed = summary.failed })
  return summary
end

function M.load_all(db, conn, opts, summary)
  for _, object in ipairs(M.order) do
    local base = conn.files[object]
    if base then
      local path, kind, ambiguous = find_file(opts.dir, base)
      if ambiguous then
        summary.files[#summary.files + 1] = { file = base .. ".*", object = object, read = 0,
          written = 0, unchanged = 0, rejected = 0, skipped = 0, status = "failed", error = ambiguous }
        summary.failed = summary.failed + 1
        io.stderr:write(ambiguous, "\n")
      elseif path then
        local st = load_file(db, conn, object, path, kind, opts, summary)
        summary.files[#summary.files + 1] = st
        for _, k in ipairs { "read", "written", "unchanged", "rejected" } do
          summary[k] = summary[k] + st[k]
        end
        if st.status == "failed" then
          summary.failed = summary.failed + 1
          io.stderr:write(st.error, "\n")
        end
      end
    end
  end
end

-- The summary as text (the caller prints it: library code does not).
function M.format_summary(s)
  local buf = {}
  local out = { write = function(_, ...) for _, x in ipairs { ... } do buf[#buf + 1] = x end end }
  out:write(("ingest %s via %s (source %s)\n"):format(s.dir, s.connector, s.source))
  out:write(("  %-22s %-12s %9s %9s %9s %9s  %s\n"):format("file", "object", "read", "written",
    "unchanged", "rejected", "status"))
  for _, f in ipairs(s.files) do
    out:write(("  %-22s %-12s %9d %9d %9d %9d  %s%s\n"):format(f.file, f.object, f.read, f.written,
      f.unchanged, f.rejected, f.status,
      f.resumed_after and (" (resumed after line %d)"):format(f.resumed_after) or ""))
  end
  out:write(("  %-22s %-12s %9d %9d %9d %9d  %.1f s CPU\n"):format("total", "", s.read, s.written,
    s.unchanged, s.rejected, s.cpu_seconds))
  return table.concat(buf)
end

-- The `prmcast ingest DIR [--connector F] [--source S] [--batch N] [--quiet]`
-- entry point: returns true, summary | false, message.
function M.cli(args)
  local opts, i = {}, 1
  while i <= #args do
    local a = args[i]
    if a == "--connector" or a == "--source" or a == "--batch" then
      if not args[i + 1] then return false, a .. " needs a value" end
      local key = a:sub(3)
      opts[key] = key == "batch" and math.tointeger(tonumber(args[i + 1])) or args[i + 1]
      if key == "batch" and (not opts.batch or opts.batch < 1) then
        return false, "--batch needs a positive integer"
      end
      i = i + 2
    elseif a == "--quiet" then
      opts.quiet, i = true, i + 1
    elseif a:sub(1, 2) == "--" then
      return false, "unknown option " .. a
    elseif opts.dir then
      return false, "unexpected argument " .. a
    else
      opts.dir, i = a, i + 1
    end
  end
  if not opts.dir then return false, "DIR is required" end
  local ok, res = pcall(M.run, opts)
  if not ok then return false, res end
  if res.failed > 0 then
    return false, ("%d file(s) could not be ingested"):format(res.failed)
  end
  return true, res, not opts.quiet and M.format_summary(res) or nil
end

return M
