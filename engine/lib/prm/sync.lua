-- prm.sync: the sync driver. Pulls a PRM's objects over HTTP through a
-- connector (connectors/<prm>.lua) into the store, incrementally and
-- kill-safely.
--
--   local sync = require "prm.sync"
--   local summary = sync.run{ connector = "connectors/partnerstack.lua" }
--   sync.run{ connector = ..., full = true }           -- ignore watermarks
--   sync.run{ connector = ..., since = "2026-01-01" }  -- from this instant
--
-- Per object: the request carries an updated-since filter in the
-- connector's format (epoch ms, ISO without zone, SOQL datetime), taken from
-- the stored watermark minus the connector's overlap window; pages are
-- mapped and upserted, `batch` records per transaction; each transaction
-- also stores where the run is (paginator state, newest update seen), and
-- the last one moves the watermark. A kill -9 at any point, then a rerun,
-- resumes after the last committed batch and ends in the state of an
-- uninterrupted run. A malformed page stops that object with an error that
-- names the object, the URL (without secrets) and the page; nothing past
-- the last good page is marked synced, so the next run retries it.
local prm = require "prm"
local http = require "prm.http"
local store = require "prm.store"
local cjson = require "cjson"

local M = {}

-- Records per transaction (whole pages: a batch ends after the page that
-- reaches it). Chosen on a tuning sample (100k deals, generator seed 7,
-- not the reported one; /tmp/sync5-batch.sh, 2 rounds, load ~5): prmcast
-- CPU 3.29 s at 1000, 2.83 s at 2500, 2.72 s at 5000 (fewer WAL frames
-- written for pages dirtied again batch after batch), the export ingest's
-- batch too; a kill loses at most one batch of work.
M.batch = 5000
M.overlap = 300          -- seconds, when the connector does not say

local known = {}
for _, o in ipairs(store.objects()) do known[o] = true end

-- ---- connectors -----------------------------------------------------------

-- A list of declared tenant fields ({name=, type=, from=}, as a
-- connector's deal `fields`); bad(field, what) raises, naming the field.
function M.check_tenant_fields(list, where, bad, from_is)
  if type(list) ~= "table" then bad(where, "a list of {name=, type=, from=}") end
  for j, x in ipairs(list) do
    local g = ("%s[%d]"):format(where, j)
    if type(x) ~= "table" or type(x.name) ~= "string" or not x.name:match("^[%w_]+$") then
      bad(g .. ".name", "a name of letters, digits and _")
    end
    if not M.field_types[x.type] then bad(g .. ".type", "category, number, yesno or date") end
    if type(x.from) ~= "string" then bad(g .. ".from", from_is) end
  end
end

function M.check_connector(c, path)
  local function bad(field, what)
    error(("%s: field '%s' must be %s"):format(path, field, what), 0)
  end
  if type(c) ~= "table" then error(path .. ": a connector must return a table", 0) end
  if type(c.name) ~= "string" then bad("name", "a string") end
  if type(c.objects) ~= "table" or #c.objects == 0 then bad("objects", "a non-empty list") end
  if type(c.client) ~= "function" then bad("client", "a function(env) returning client options") end
  if c.env ~= nil and type(c.env) ~= "table" then bad("env", "a table") end
  for i, o in ipairs(c.objects) do
    local f = ("objects[%d]"):format(i)
    if type(o) ~= "table" then bad(f, "a table") end
    if not known[o.object] then
      bad(f .. ".object", "a store object (" .. table.concat(store.objects(), ", ") .. ")")
    end
    if o.document ~= nil then
      if o.document ~= "csv" and o.document ~= "json" then bad(f .. ".document", '"csv" or "json"') end
      if type(o.url) ~= "string" then bad(f .. ".url", "the name of the variable holding its URL") end
    elseif type(o.path) ~= "string" and type(o.request) ~= "function" then
      bad(f .. ".path", "a string (or .request a function)")
    end
    if o.declare ~= nil then
      -- Declared fields (as an export connector's fields.<object>), walked
      -- and stored in C; `finish` says what a declaration cannot.
      if type(o.declare) ~= "table" then bad(f .. ".declare", "a table of store field = path or {path, kind [, arg]}") end
      if o.document ~= nil then bad(f .. ".declare", "absent on a document object") end
      if o.map ~= nil then bad(f .. ".map", "absent when .declare declares the fields (use .finish)") end
      if o.finish ~= nil and type(o.finish) ~= "function" then bad(f .. ".finish", "a function(rec, raw, ctx)") end
      local fw = o.finish_when
      local fw_ok = type(fw) == "string"
      if type(fw) == "table" then
        fw_ok = #fw >= 1 and #fw <= 4
        for _, p in ipairs(fw) do fw_ok = fw_ok and type(p) == "string" end
      end
      if fw ~= nil and (not fw_ok or o.finish == nil) then
        bad(f .. ".finish_when", "a path or a list of up to 4 (with .finish): finish runs for the records where one is true")
      end
      if o.inputs ~= nil then
        if type(o.inputs) ~= "table" then bad(f .. ".inputs", "a list of paths") end
        for j, x in ipairs(o.inputs) do
          if type(x) ~= "string" then bad(("%s.inputs[%d]"):format(f, j), "a path (a.b for nested)") end
        end
      end
    else
      if type(o.map) ~= "function" then bad(f .. ".map", "a function (or .declare the fields)") end
      if o.finish ~= nil or o.inputs ~= nil or o.finish_when ~= nil then
        bad(f .. ".finish", "absent without .declare")
      end
    end
    if o.pages ~= nil and type(o.pages) ~= "table" then bad(f .. ".pages", "a table") end
    local dl = o.deletes
    if dl ~= nil then
      if o.object ~= "deal" then bad(f .. ".deletes", "declared on a deal object only") end
      if type(dl) ~= "table" or (dl.feed == true) == (dl.absent == true) then
        bad(f .. ".deletes", "a table with feed = true or absent = true")
      end
      if type(dl.id) ~= "string" then bad(f .. ".deletes.id", "the name of the id field") end
      if dl.feed and (type(dl.request) ~= "function" or type(dl.items) ~= "string") then
        bad(f .. ".deletes", "a feed with request = function(start, stop) and items =")
      end
      if dl.absent and type(dl.path) ~= "string" and type(dl.request) ~= "function" then
        bad(f .. ".deletes.path", "a string (or .request a function)")
      end
      if dl.full_only ~= nil and type(dl.full_only) ~= "boolean" then
        bad(f .. ".deletes.full_only", "a boolean")
      end
    end
    if o.fields ~= nil then
      if o.object ~= "deal" then bad(f .. ".fields", "declared on a deal object only") end
      M.check_tenant_fields(o.fields, f .. ".fields", bad, "the record's field (a.b for nested)")
    end
    local w = o.watermark
    if w ~= nil then
      if type(w) ~= "table" or type(w.field) ~= "string" then
        bad(f .. ".watermark", "a table with field=, format= and param= or query=")
      end
      if not M.formats[w.format or "iso_z"] then
        bad(f .. ".watermark.format", "one of epoch_ms, epoch_s, iso, iso_z, soql, date")
      end
    end
  end
  c.path = path
  return c
end

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

-- Connectors load at the connector trust kind (no io, no os) where the
-- engine offers it (prm.engine.load, issue 7); otherwise as a plain chunk.
local has_engine, engine = pcall(require, "prm.engine")
-- The test build's kill switch (build/prmcast-fault only): SIGKILL at the
-- N-th record with PRMCAST_FAULT_KILL_AFTER=N, so kill tests need no timing.
local fault = has_engine and type(engine) == "table" and engine.fault or nil
function M.load_connector(path)
  if not exists(path) and prm.root and exists(prm.root .. "/" .. path) then
    path = prm.root .. "/" .. path
  end
  local shown = path
  if prm.root and path:sub(1, #prm.root + 1) == prm.root .. "/" then
    shown = path:sub(#prm.root + 2)
  end
  if has_engine and type(engine) == "table" and engine.load then
    local c, err = engine.load(path, "connector", "@" .. shown)
    if c == nil and err then error(err, 0) end
    return M.check_connector(c, shown)
  end
  local chunk, err = loadfile(path, "t")
  if not chunk then error(err, 0) end
  return M.check_connector(chunk(), shown)
end

-- The connector's environment variables -> { name = value }.
function M.env(c, getenv)
  getenv = getenv or os.getenv
  local e, secrets = {}, {}
  for name, spec in pairs(c.env or {}) do
    -- The first variable set of those listed wins (SALESFORCE_INSTANCE_URL,
    -- then SALESFORCE_BASE_URL), then the default.
    local v
    for _, var in ipairs(spec) do
      v = getenv(var)
      if v == "" then v = nil end
      if v then break end
    end
    if v == nil then v = spec.default end
    if v == nil and spec.required then
      error(("%s: environment variable %s is not set"):format(c.name,
        table.concat(spec, " or ")), 0)
    end
    e[name] = v
    if spec.secret and v then secrets[#secrets + 1] = v end
  end
  return e, secrets
end

-- ---- time formats ----------------------------------------------------------

local function epoch_s(iso)
  local d, h, mi, s = iso:match("^(%d%d%d%d%-%d%d%-%d%d)T(%d%d):(%d%d):(%d%d)")
  return prm.days(d) * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
end

local function iso_of(secs)
  local days = secs // 86400
  local r = secs - days * 86400
  return ("%sT%02d:%02d:%02dZ"):format(prm.from_days(days), r // 3600, r % 3600 // 60, r % 60)
end

-- Canonical instants ("YYYY-MM-DDTHH:MM:SSZ") into a connector's format.
M.formats = {
  epoch_ms = function(t) return math.tointeger(epoch_s(t) * 1000) end,
  epoch_s = function(t) return math.tointeger(epoch_s(t)) end,
  iso = function(t) return t:sub(1, 19) end,
  iso_z = function(t) return t end,
  soql = function(t) return t end,
  date = function(t) return t:sub(1, 10) end,
}
local parse_fmt = { epoch_ms = "epoch_ms", epoch_s = "epoch_s", iso = "auto", iso_z = "auto",
                    soql = "auto", date = "auto" }

-- ---- records ---------------------------------------------------------------

-- Declared tenant deal fields (a deal object's `fields`): each value is
-- read from the raw record at `from` (dots for nested keys), checked against
-- its type and stored as text; nil when absent. A value of the wrong type
-- rejects the record with the field named.
local function yesno(v)
  if type(v) == "boolean" then return v and "1" or "0" end
  if v == 1 or v == 0 then return tostring(math.tointeger(v)) end
  local t = type(v) == "string" and v:lower() or nil
  if t == "yes" or t == "true" or t == "y" or t == "1" then return "1" end
  if t == "no" or t == "false" or t == "n" or t == "0" then return "0" end
  return nil
end
M.field_types = {
  category = function(v)
    if type(v) == "string" or type(v) == "number" then return tostring(v) end
    if type(v) == "boolean" then return v and "true" or "false" end
  end,
  number = function(v)
    local n = tonumber(v)
    if n and n == n and n - n == 0 then return ("%.17g"):format(n) end
  end,
  yesno = yesno,
  date = function(v) return prm.date and (prm.date(v, "auto")) or nil end,
}
-- A `from` path split once per declaration ("a.b" -> {"a", "b"}); a flat
-- record (a CSV row, keyed by column names that may hold dots) keeps the
-- whole name as one step.
local steps_of = { [true] = setmetatable({}, { __mode = "k" }), [false] = setmetatable({}, { __mode = "k" }) }
local function steps(x, flat)
  local cache = steps_of[not not flat]
  local s = cache[x]
  if s == nil then
    s = {}
    if flat then s[1] = x.from
    else for part in x.from:gmatch("[^.]+") do s[#s + 1] = part end end
    cache[x] = s
  end
  return s
end
local function pick(raw, path)
  local v = raw
  for i = 1, #path do
    if type(v) ~= "table" then return nil end
    v = v[path[i]]
  end
  return v
end
-- decl: a connector's `fields`; raw: the record; flat: `from` names a key
-- of raw as it is (a CSV column). -> { {name, text|nil, type}, ... } | nil, why
function M.tenant_fields(decl, raw, flat)
  local out = {}
  for i, x in ipairs(decl) do
    local v = pick(raw, steps(x, flat))
    if v ~= nil then
      local t = M.field_types[x.type](v)
      if t == nil then
        return nil, ("%s (%s): not a %s: %q"):format(x.from, x.name, x.type, tostring(v))
      end
      out[i] = { x.name, t, x.type }
    else
      out[i] = { x.name, nil, x.type }
    end
  end
  return out
end

-- Stores a record's declared tenant fields (from M.tenant_fields) as
-- attribute history of its deal, as of the deal's own update time (a row
-- only on change). -> written (true when a value changed) | nil, why
function M.store_tenant_fields(db, rec, xf)
  local at = rec.updated_at or (rec.created_at .. "T00:00:00Z")
  local row = { source = rec.source, deal_id = rec.external_id, observed_at = at }
  local any = false
  for _, kv in ipairs(xf) do
    row.field, row.value, row.type = kv[1], kv[2], kv[3]
    local w, err = db:upsert("deal_field", row)
    if w == nil then return nil, err end
    if w then any = true end
  end
  return any
end

-- cjson.null -> nil, all the way down (a mapping sees absent values as nil).
local function clean(t)
  for k, v in pairs(t) do
    if v == cjson.null then t[k] = nil
    elseif type(v) == "table" then clean(v) end
  end
  return t
end

-- ---- declared objects ---------------------------------------------------------

-- An object's `declare` compiled once per sync: the plan (prm.ingest's
-- compile_fields, the declared mapping's one owner) on a JSON reader whose
-- columns are every leaf path the object reads, and r:load_json's options.
local csv = require "prm.csv"
function M.compile_declared(db, o, key, path, ctx, wfield, scale)
  local plan = require("prm.ingest").compile_fields(db, o.object, o.declare, path or "(connector)")
  local paths, seen = {}, {}
  local function add(p)
    if p and not seen[p] then seen[p] = true; paths[#paths + 1] = p end
  end
  for _, it in ipairs(plan) do
    if type(it[2]) == "table" then for _, c in ipairs(it[2]) do add(c) end else add(it[2]) end
  end
  for _, p in ipairs(o.inputs or {}) do add(p) end
  if type(o.finish_when) == "table" then
    for _, p in ipairs(o.finish_when) do add(p) end
  else
    add(o.finish_when)
  end
  for _, x in ipairs(o.fields or {}) do add(x.from) end
  add(wfield)
  add("key") add("id") add("Id")
  local reader = csv.json_reader(paths)
  reader:map(plan)
  return reader, { label = key, finish = o.finish, finish_when = o.finish_when, inputs = o.inputs,
                   ctx = ctx, tenant = o.fields,
                   watermark = wfield, epoch = scale, fault = fault }
end

-- ---- one object --------------------------------------------------------------

-- A record the mapping or the store refused, kept in ingest_rejects with
-- its place (page and position) and id.
local function reject_record(db, st, source, o, key, raw, i, page, limit, why)
  st.rejected = st.rejected + 1
  local line = (page.page - 1) * (limit > 0 and limit or 100000) + i
  local id = type(raw) == "table" and (raw.key or raw.id or raw.Id) or nil
  db:reject(source, o.path or key, line, id and ("%s %s: %s"):format(key, tostring(id), why) or why)
end

local function sync_object(db, client, conn, o, opts, st)
  local source = opts.source
  local key = o.name or o.object
  local run_key = key .. "#run"
  local wm = db:sync_get(source, key)
  local run_json = db:sync_get(source, run_key)
  local run = run_json and cjson.decode(run_json) or nil
  if run then
    st.resumed = run.pages
  else
    local since = nil
    if opts.since then
      since = opts.since
    elseif not opts.full and wm then
      since = iso_of(epoch_s(wm) - (conn.overlap or M.overlap))
    end
    run = { since = since, state = nil, max = nil, pages = 0 }
  end
  st.since = run.since

  local w = o.watermark
  local fmt = w and (w.format or "iso_z")
  local query = {}
  for k, v in pairs(o.query or {}) do query[k] = v end
  local req = { path = o.path, method = o.method, headers = o.headers, body = o.body }
  if o.request then
    -- A connector that builds its own request (a SOQL query, a filter).
    local r = o.request(run.since and M.formats[fmt](run.since), run.since)
    for k, v in pairs(r.query or {}) do query[k] = v end
    req.path = r.path or req.path
    req.method = r.method or req.method
    req.body = r.body or req.body
  elseif w and run.since and w.param then
    query[w.param] = M.formats[fmt](run.since)
  end

  local spec = { path = req.path, method = req.method, headers = req.headers, body = req.body,
                 query = query, object = key, resume = run.state }
  for k, v in pairs(o.pages or { paginator = "none" }) do spec[k] = v end
  local reader, lopts
  if o.declare then
    reader, lopts = M.compile_declared(db, o, key, conn.path, { source = source, object = o.object },
      w and w.field, (fmt == "epoch_ms" and 1000) or (fmt == "epoch_s" and 1) or nil)
    spec.walk = true
  end
  local limit = spec.limit or 0
  local mapfn = o.map
  local ctx = { source = source, object = o.object }
  local batch = opts.batch or M.batch
  local n = 0
  -- Epoch watermarks (numbers in the records) are compared as numbers.
  local epoch = fmt == "epoch_ms" or fmt == "epoch_s"
  local max_epoch
  -- The instants prm.instant accepts (years 0001..9999): a number outside
  -- them, or NaN, is ignored like an unreadable watermark, not kept as the
  -- maximum (which would lose the whole batch's advance at save).
  local scale = fmt == "epoch_ms" and 1000 or 1
  local epoch_lo, epoch_hi = -62135596800 * scale, 253402300799 * scale + (scale - 1)

  local function save(state, done)
    if max_epoch then
      local inst = prm.instant(max_epoch, parse_fmt[fmt])
      if inst and (not run.max or inst > run.max) then run.max = inst end
      max_epoch = nil
    end
    if done then
      if run.max and (not wm or run.max > wm) then wm = run.max end
      db:sync_set(source, key, wm, 0)
      db:sync_set(source, run_key, nil, 0)
    else
      db:sync_set(source, run_key, cjson.encode { since = run.since, state = state,
                                                   max = run.max, pages = run.pages },
                  run.pages)
    end
    db:commit()
    db:begin()
    n = 0
  end

  db:begin()
  local failure, status
  local ok, err = pcall(function()
    local last_state = run.state
    local fresh = true           -- no page fetched yet by this process
    local iter = client:pages(spec)
    while true do
      local page, perr, pstatus = iter()
      if page == nil then break end
      if not page and fresh and spec.resume and (pstatus == 400 or pstatus == 404
                                                 or pstatus == 410) then
        -- The saved cursor is gone (a deleted record's key, an expired
        -- Salesforce query locator): restart this run's pages from the top.
        -- Its since is kept, so nothing is missed; records seen again are
        -- unchanged upserts.
        prm.warn("%s: cannot resume after page %d (%s); restarting the run's pages",
                 key, run.pages, perr)
        spec.resume, run.state, last_state = nil, nil, nil
        iter = client:pages(spec)
        fresh = false
        goto continue
      end
      if not page then
        failure, status = perr, pstatus
        break
      end
      fresh = false
      st.pages = st.pages + 1
      run.pages = run.pages + 1
      for _, hname in ipairs(conn.log_headers or {}) do
        local v = page.headers[hname]
        if v then prm.info("%s page %d: %s: %s", key, page.page, hname, v) end
      end
      if reader then
        -- Declared: the page's records converted and upserted in C.
        local nr, nw, nu, ns, rej, newest, texts = reader:load_json(db, o.object, source, page.walked,
                                                                     spec.items or "", lopts)
        st.read, st.written, st.unchanged = st.read + nr, st.written + nw, st.unchanged + nu
        st.skipped = st.skipped + ns
        for i = 1, #rej, 2 do
          st.rejected = st.rejected + 1
          db:reject(source, o.path or key, (page.page - 1) * (limit > 0 and limit or 100000) + rej[i],
                    rej[i + 1])
        end
        if newest and (not max_epoch or newest > max_epoch) then max_epoch = newest end
        for _, t in ipairs(texts) do
          local inst = prm.instant(t, parse_fmt[fmt])
          if inst and (not run.max or inst > run.max) then run.max = inst end
        end
        n = n + nr
      end
      for i, raw in ipairs(page.items or {}) do
        st.read = st.read + 1
        if type(raw) ~= "table" then
          reject_record(db, st, source, o, key, raw, i, page, limit, "record is not a JSON object")
        else
          clean(raw)
          local okm, rec, why = pcall(mapfn, raw, ctx)
          if not okm then
            reject_record(db, st, source, o, key, raw, i, page, limit, tostring(rec))
          elseif rec == false then
            st.skipped = st.skipped + 1
          elseif rec == nil then
            reject_record(db, st, source, o, key, raw, i, page, limit, why or "rejected by the mapping")
          else
            if rec.source == nil then rec.source = source end
            if fault then fault("sync.record") end
            local xf, xerr
            if o.fields then xf, xerr = M.tenant_fields(o.fields, raw) end
            local written, uerr
            if xerr then written, uerr = nil, xerr
            else written, uerr = db:upsert(o.object, rec) end
            if written ~= nil and xf then
              local w2, ferr = M.store_tenant_fields(db, rec, xf)
              if w2 == nil then written, uerr = nil, ferr
              elseif w2 then written = true end
            end
            if written == nil then
              reject_record(db, st, source, o, key, raw, i, page, limit, uerr)
            elseif written then st.written = st.written + 1
            else st.unchanged = st.unchanged + 1 end
          end
          local t = w and raw[w.field]
          if t ~= nil then
            if epoch and type(t) == "number" then
              -- Compared as numbers; made an instant once, when saved.
              if t >= epoch_lo and t <= epoch_hi and (not max_epoch or t > max_epoch) then max_epoch = t end
            else
              local inst = prm.instant(t, parse_fmt[fmt])
              if inst and (not run.max or inst > run.max) then run.max = inst end
            end
          end
        end
        n = n + 1
      end
      last_state = page.state
      if page.last then
        save(nil, true)
        st.status = "synced"
      elseif n >= batch then
        save(page.state, false)
      end
      ::continue::
    end
    if failure then
      -- Keep the good pages before the failure; the failed one is retried.
      if n > 0 then save(last_state, false) end
    end
  end)
  db:rollback()
  if not ok then error(("%s: %s"):format(key, tostring(err)), 0) end
  if failure then
    st.status = "failed"
    st.error = failure
    st.http_status = status
  end
  st.watermark = wm
  return st
end

-- ---- deletes ------------------------------------------------------------------

-- A deal the PRM deleted at instant `at`: closed as lost on its delete day
-- when it was open (nobody works it any more); a won or lost one keeps its
-- outcome. The close is an ordinary upsert stamped `at` (or the deal's own
-- last update, when later), so its history row is honest about when.
-- -> true (closed) | false (not stored, or already closed) | nil, err
function M.close_deleted(db, source, id, at)
  local d = db:query([[SELECT d.*, p.external_id AS partner_ext FROM deals d
                       JOIN partners p ON p.id = d.partner_id
                       WHERE d.source = ? AND d.external_id = ?]], source, id)[1]
  if not d or d.status ~= "open" then return false end
  if d.updated_at and d.updated_at > at then at = d.updated_at end
  local rec = { source = source, external_id = id, partner_id = d.partner_ext,
                stage = "closed_lost", status = "lost", closed_at = at:sub(1, 10),
                updated_at = at }
  for _, f in ipairs { "account", "contact_name", "contact_email", "amount", "currency",
                       "product_family", "created_at", "expected_close", "partner_probability",
                       "budget_confirmed", "competitor", "completeness", "notes" } do
    rec[f] = d[f]
  end
  local w, err = db:upsert("deal", rec)
  if w == nil then return nil, err end
  return true
end

-- Closes each {id, at} of `list` and runs after() (the feed's mark) in one
-- transaction; st.deleted counts the deals closed.
local function close_all(db, source, list, st, after)
  db:begin()
  local ok, err = pcall(function()
    for _, c in ipairs(list) do
      local w, e = M.close_deleted(db, source, c[1], c[2])
      if w == nil then error(e, 0) end
      if w then st.deleted = st.deleted + 1 end
    end
    if after then after() end
  end)
  if not ok then
    db:rollback()
    error(("%s deletes: %s"):format(st.object, tostring(err)), 0)
  end
  db:commit()
  return st
end

-- The deletes of a deal object, after its records synced (o.deletes):
--   { feed = true, request = function(start, stop) -> {path=, query=},
--     items =, id =, at =, covered =, earliest =, days = }
--     an API's list of deleted ids in [start, stop) (Salesforce getDeleted):
--     each id is closed as of its own delete instant; the next run starts
--     where this one's list was covered (`covered`, else stop), less the
--     overlap, and no further back than `days`; a log that starts after
--     `start` (`earliest`) is warned about. The first run only marks where the feed starts: what was
--     deleted before the first sync was never stored.
--   { absent = true, path =, query = | request = function() -> {...}, pages =, id =,
--     confirm = function(id) -> {path=} }
--     an API that deletes records outright and offers no such list
--     (Impartner's DELETE): every live id is listed (ids only), and an open
--     stored deal of this source that is not among them was deleted, as of
--     now, once `confirm`'s request for it answers 404 (offset paging shifts
--     when a record goes mid-listing, so an unlisted id may still be
--     there: a 200 keeps it open). A listing that fails part-way closes
--     nothing; an empty one while deals are open is taken for an API fault,
--     not for every deal deleted. Without `confirm` (an API with no GET by
--     id: Allbound) the ids are listed twice and a deal is closed only when
--     absent from both listings, so one shift of the pages does not close a
--     live deal. `full_only = true`: only on a --full sync (a listing that
--     costs too many requests to run every night).
-- Closing is idempotent, so a kill -9 at any point and a rerun end alike.
local function sync_deletes(db, client, conn, o, opts, st)
  local dl = o.deletes
  local source = opts.source
  local key = (o.name or o.object) .. "#deleted"
  local now = prm.now()
  local at_of = function(v) return v and prm.instant(v, "auto") or nil end
  st.deleted = 0
  if dl.feed then
    local wm = db:sync_get(source, key)
    if not wm then
      -- From the newest update the records showed (a soft delete moves it):
      -- the same for every run over the same data, so a killed and rerun
      -- first sync ends as an uninterrupted one.
      db:begin()
      db:sync_set(source, key, st.watermark or now, 0)
      db:commit()
      return st
    end
    local start = iso_of(epoch_s(wm) - (conn.overlap or M.overlap))
    if dl.days and epoch_s(now) - epoch_s(start) > dl.days * 86400 then
      -- The API answers no further back (Salesforce: 15 days); what its log
      -- no longer holds is warned about below (earliest).
      start = iso_of(epoch_s(now) - dl.days * 86400)
      prm.warn("%s: the last delete log read was more than %d days ago; reading from %s",
               st.object, dl.days, start)
    end
    local req = dl.request(start, now)
    local r, err, status = client:request { path = req.path, query = req.query,
                                            method = req.method }
    if not r or r.status ~= 200 then
      st.status, st.http_status = "failed", status or (r and r.status)
      st.error = ("%s deletes: %s"):format(st.object, err or ("HTTP %d from %s"):format(r.status, r.url))
      return st
    end
    local ok, doc = pcall(cjson.decode, r.body)
    local list, closed = ok and type(doc) == "table" and doc[dl.items], {}
    if type(list) ~= "table" then
      st.status = "failed"
      st.error = ("%s deletes: %s is not a list of deleted records (%s)"):format(st.object,
        client:redact(r.url), dl.items)
      return st
    end
    for _, x in ipairs(list) do
      local id, at = type(x) == "table" and x[dl.id], type(x) == "table" and at_of(x[dl.at])
      if type(id) == "string" then closed[#closed + 1] = { id, at or now } end
    end
    local covered = dl.covered and at_of(doc[dl.covered]) or now
    local earliest = dl.earliest and at_of(doc[dl.earliest])
    if earliest and earliest > start then
      prm.warn("%s: the PRM's delete log starts at %s, after this run's start %s: deals deleted "
               .. "in between are not seen as deleted", st.object, earliest, start)
    end
    return close_all(db, source, closed, st, function() db:sync_set(source, key, covered, 0) end)
  end
  -- absent: list every live id (twice without a confirm request).
  if dl.full_only and not opts.full then return st end
  local live, n = {}, 0
  local req = dl.request and dl.request() or { path = dl.path, query = dl.query }
  local spec = { path = req.path or dl.path, query = req.query or dl.query or {},
                 object = key }
  for k, v in pairs(dl.pages or o.pages or { paginator = "none" }) do spec[k] = v end
  for _ = 1, dl.confirm and 1 or 2 do
    for page, perr, pstatus in client:pages(spec) do
      if not page then
        st.status, st.http_status = "failed", pstatus
        st.error = ("%s deletes: %s"):format(st.object, perr)
        return st
      end
      for _, x in ipairs(page.items) do
        local id = type(x) == "table" and x[dl.id]
        if id ~= nil and id ~= cjson.null then
          live[tostring(id)] = true
          n = n + 1
        end
      end
    end
  end
  local open = db:query([[SELECT external_id FROM deals WHERE source = ? AND status = 'open']],
                        source)
  if n == 0 and #open > 0 then
    prm.warn("%s: the API lists no %s at all while %d are open here; closing none",
             st.object, st.object, #open)
    return st
  end
  local closed = {}
  for _, r in ipairs(open) do
    local id = r.external_id
    if not live[id] then
      local gone = true
      if dl.confirm then
        local c = dl.confirm(id)
        local res, err, status = client:request { path = c.path, query = c.query }
        status = res and res.status or status
        if status ~= 404 and status ~= 200 then
          st.status, st.http_status = "failed", status
          st.error = ("%s deletes: confirming %s: %s"):format(st.object, id,
            err or ("HTTP %d from %s"):format(res.status, res.url))
          return st
        end
        gone = status == 404
      end
      if gone then closed[#closed + 1] = { id, now } end
    end
  end
  return close_all(db, source, closed, st)
end

-- ---- documents ----------------------------------------------------------------

-- An object that is one CSV or JSON document at a URL (an FX-rate feed, a
-- finance team's published sheet): fetched whole through a client of its
-- own, without the PRM's credentials, and mapped like an export file. The
-- URL comes from the environment variable `o.url` names; unset, the object
-- is skipped. Upserts are idempotent, so a refetch writes only what changed.
local function sync_document(db, o, opts, st, log)
  local url = os.getenv(o.url)
  if not url or url == "" then
    st.status = "skipped (" .. o.url .. " not set)"
    return st
  end
  local c <close> = http.client{ log = log, backoff = opts.backoff, budget = opts.budget }
  local r, err, status = c:request{ path = url }
  st.pages = 1
  if not r or r.status ~= 200 then
    st.error = ("%s: %s"):format(st.object, err or ("HTTP %d from %s"):format(r.status, r.url))
    st.http_status = status or (r and r.status)
    return st
  end
  local rows, close = {}, function() end
  if o.document == "csv" then
    local tmp = os.tmpname()
    local f = assert(io.open(tmp, "wb"))
    f:write(r.body)
    f:close()
    local reader, cerr = require("prm.csv").open(tmp)
    os.remove(tmp)         -- the reader keeps the open file
    if not reader then
      st.error = ("%s: %s is not CSV: %s"):format(st.object, r.url, cerr)
      return st
    end
    rows, close = function() return reader:read() end, function() reader:close() end
  else
    local ok, doc = pcall(cjson.decode, r.body)
    if not ok then
      st.error = ("%s: %s is not JSON: %s"):format(st.object, r.url, doc)
      return st
    end
    local arr = o.items and doc[o.items] or doc
    local i = 0
    rows = function()
      i = i + 1
      if arr[i] == nil then return nil end
      return type(arr[i]) == "table" and clean(arr[i]) or false, i, "record is not an object"
    end
  end
  local source, batch, n = opts.source, opts.batch or M.batch, 0
  local ctx = { source = source, object = o.object, url = r.url }
  db:begin()
  local ok, perr = pcall(function()
    while true do
      local rec, line, why = rows()
      if rec == nil then break end
      st.read = st.read + 1
      local out, okm
      if rec == false then okm, out = false, why
      else okm, out, why = pcall(o.map, rec, ctx) end
      if not okm or out == nil then
        st.rejected = st.rejected + 1
        db:reject(source, o.url, line, tostring(okm and (why or "rejected by the mapping") or out))
      elseif out == false then
        st.skipped = st.skipped + 1
      else
        if out.source == nil then out.source = source end
        local w, uerr = db:upsert(o.object, out)
        if w == nil then
          st.rejected = st.rejected + 1
          db:reject(source, o.url, line, uerr)
        elseif w then st.written = st.written + 1
        else st.unchanged = st.unchanged + 1 end
      end
      n = n + 1
      if n >= batch then db:commit() db:begin() n = 0 end
    end
  end)
  close()
  if not ok then
    db:rollback()
    error(("%s: %s"):format(st.object, tostring(perr)), 0)
  end
  db:commit()
  st.status = "synced"
  return st
end

-- ---- the run -------------------------------------------------------------------

-- The connector's objects in order, each one's counts added to the summary.
local function sync_objects(db, client, conn, opts, copts, summary)
  for _, o in ipairs(conn.objects) do
    if not opts.only or opts.only[o.name or o.object] then
      local st = { object = o.name or o.object, path = o.path, pages = 0, read = 0, written = 0,
                   unchanged = 0, rejected = 0, skipped = 0, deleted = 0, status = "failed" }
      if o.document then sync_document(db, o, opts, st, copts.log)
      else
        sync_object(db, client, conn, o, opts, st)
        if o.deletes and st.status == "synced" then sync_deletes(db, client, conn, o, opts, st) end
      end
      summary.objects[#summary.objects + 1] = st
      for _, k in ipairs { "pages", "read", "written", "unchanged", "rejected", "skipped", "deleted" } do
        summary[k] = summary[k] + st[k]
      end
      if st.status == "failed" then
        summary.failed = summary.failed + 1
        if st.http_status == 0 then
          -- No answer at all (refused, unresolvable, retries spent on
          -- timeouts): the other objects would only wait for the same.
          summary.error = st.error
          break
        elseif st.http_status == 401 or st.http_status == 403 then
          -- Wrong credentials fail every object alike: say so once, plainly.
          local vars = {}
          for _, spec in pairs(conn.env or {}) do
            if spec.required then vars[#vars + 1] = spec[1] end
          end
          table.sort(vars)
          summary.error = ("%s: authentication failed (HTTP %d); check %s: %s"):format(conn.name,
            st.http_status, table.concat(vars, ", "), st.error)
          break
        end
        summary.error = summary.error or st.error
      end
    end
  end
end

-- sync.run{ connector = path|table, full =, since =, batch =, source =, only = {object...},
--           quiet =, budget =, backoff =, db = } -> summary
function M.run(opts)
  assert(type(opts) == "table" and opts.connector, "sync.run{connector=...} expected")
  local db = opts.db or store.default()
  local conn = opts.connector
  local path = type(conn) == "string" and conn or "(connector table)"
  if type(conn) == "string" then conn = M.load_connector(conn)
  else M.check_connector(conn, path) end
  opts.source = opts.source or conn.source or conn.name
  if opts.since then
    local t, err = prm.instant(opts.since)
    if not t then error("--since: " .. tostring(err), 0) end
    opts.since = t
  end
  local env, secrets = M.env(conn)
  local copts = conn.client(env)
  copts.secrets = copts.secrets or secrets
  if opts.budget then copts.budget = opts.budget end
  if opts.backoff then copts.backoff = opts.backoff end
  if copts.log == nil then
    copts.log = function(line) prm.info("http %s", line) end
  end
  local client <close> = http.client(copts)
  local summary = { connector = conn.name, source = opts.source, objects = {}, pages = 0,
                    read = 0, written = 0, unchanged = 0, rejected = 0, skipped = 0, deleted = 0,
                    failed = 0 }
  local t0 = os.clock()
  -- A sync into an empty store is a first load: the store's bulk path
  -- (store_bulk_begin/end, as the export ingest takes) drops the secondary
  -- indexes of deals and commits and builds them once at the end. Batches,
  -- cursors and watermarks commit as before, so kill-safety is unchanged; a
  -- killed first load leaves the indexes out and the next store_open builds
  -- them. The sync deletes nothing and every reference was resolved by the
  -- upsert, so SQLite's own foreign-key probe per insert is off for it too.
  local bulk = db:bulk_begin()
  if bulk then db:exec("PRAGMA foreign_keys = OFF") end
  local okr, rerr = pcall(sync_objects, db, client, conn, opts, copts, summary)
  if bulk then
    db:exec("PRAGMA foreign_keys = ON")
    db:bulk_end()
  end
  if not okr then error(rerr, 0) end
  local hs = client:stats()
  summary.requests, summary.retries, summary.throttled = hs.requests, hs.retries, hs.throttled
  summary.budget_left = hs.budget_left
  summary.cpu_seconds = os.clock() - t0
  if summary.error then summary.error = client:redact(summary.error) end
  db:audit("sync", conn.name, cjson.encode { source = opts.source, read = summary.read,
    written = summary.written, rejected = summary.rejected, failed = summary.failed,
    deleted = summary.deleted,
    requests = summary.requests, retries = summary.retries })
  return summary
end

function M.print_summary(s, out)
  out = out or io.stdout
  out:write(("sync %s (source %s): %d requests, %d retries (%d throttled), budget left %d\n")
    :format(s.connector, s.source, s.requests, s.retries, s.throttled, s.budget_left))
  out:write(("  %-14s %6s %8s %8s %9s %8s %8s  %s\n"):format("object", "pages", "read", "written",
    "unchanged", "rejected", "skipped", "status"))
  for _, o in ipairs(s.objects) do
    out:write(("  %-14s %6d %8d %8d %9d %8d %8d  %s%s%s%s\n"):format(o.object, o.pages, o.read,
      o.written, o.unchanged, o.rejected, o.skipped, o.status,
      o.since and (" since " .. o.since) or "",
      o.resumed and (" (resumed after page %d)"):format(o.resumed) or "",
      (o.deleted or 0) > 0 and (", %d deleted in the PRM closed"):format(o.deleted) or ""))
  end
  out:write(("  %-14s %6d %8d %8d %9d %8d %8d  %.1f s CPU\n"):format("total", s.pages, s.read,
    s.written, s.unchanged, s.rejected, s.skipped, s.cpu_seconds))
end

-- The command line of a connector command (ingest, writeback): one
-- CONNECTOR path and options. option(a, args, i, opts) handles the option
-- at args[i] and returns the next index, or nil and a message; it returns
-- false for an option it does not know. Then run(opts) in a pcall, its
-- error with secret values masked -> true, result | false, message.
function M.connector_cli(args, option, run)
  local opts, i = {}, 1
  while i <= #args do
    local a = args[i]
    if a:sub(1, 2) == "--" then
      local ni, err = option(a, args, i, opts)
      if ni == nil then return false, err end
      if ni == false then return false, "unknown option " .. a end
      i = ni
    elseif opts.connector then
      return false, "unexpected argument " .. a
    else
      opts.connector, i = a, i + 1
    end
  end
  if not opts.connector then return false, "CONNECTOR is required" end
  local ok, res = pcall(run, opts)
  if not ok then return false, prm.redact(tostring(res)) end
  return true, res, opts
end

local function ingest_option(a, args, i, opts)
  if a == "--since" or a == "--batch" or a == "--budget" or a == "--object" or a == "--source"
     or a == "--backoff" then
    local v = args[i + 1]
    if not v then return nil, a .. " needs a value" end
    if a == "--backoff" then
      opts.backoff = tonumber(v)
      if not opts.backoff or opts.backoff <= 0 then return nil, "--backoff needs seconds > 0" end
    elseif a == "--batch" or a == "--budget" then
      local nv = math.tointeger(tonumber(v))
      if not nv or nv < (a == "--batch" and 1 or 0) then
        return nil, a .. " needs a " .. (a == "--batch" and "positive" or "non-negative")
          .. " integer"
      end
      opts[a:sub(3)] = nv
    elseif a == "--object" then
      opts.only = opts.only or {}
      opts.only[v] = true
    else
      opts[a:sub(3)] = v
    end
    return i + 2
  elseif a == "--full" then
    opts.full = true
    return i + 1
  elseif a == "--quiet" then
    opts.quiet = true
    return i + 1
  end
  return false
end

-- `prmcast ingest connectors/<prm>.lua [--full] [--since T] [--batch N] [--budget N]
-- [--backoff SECONDS] [--object NAME]... [--quiet]` -> true, summary | false, message
function M.cli(args)
  local ok, res, opts = M.connector_cli(args, ingest_option, M.run)
  if not ok then return false, res end
  local text
  if not opts.quiet then
    local buf = {}
    M.print_summary(res, { write = function(_, ...) for _, x in ipairs { ... } do buf[#buf + 1] = x end end })
    text = table.concat(buf)
  end
  if res.failed > 0 then
    if text then io.stderr:write(text) end
    return false, res.error
  end
  return true, res, text
end

return M
