-- prm.pipeline: the train / score steps as the CLI and the nightly job run
-- them, with their printed summaries, and the write-back outbox.
--
--   local pipeline = require "prm.pipeline"
--   local t = pipeline.train{ as_of = nil }             -- prints the candidates
--   local s = pipeline.score{ connector = "connectors/file.lua" }
local scoring = require "prm.scoring"
local store = require "prm.store"

local M = {}

local function fmt(x, f) return x and (f or "%.4f"):format(x) or "-" end

function M.print_train(t, out)
  out = out or io.stdout
  out:write(("train as of %s: fit %s..%s (%d rows), calibrate %s..%s (%d), evaluate %s..%s (%d)\n")
    :format(t.as_of, t.train_from, t.calib_from, t.n_fit, t.calib_from, t.eval_from, t.n_calib,
      t.eval_from, t.eval_to, t.n_eval))
  if t.cold_start then
    out:write(("  cold start: %d closed deals in the fit window, base rates only\n"):format(t.closed_deals))
  end
  out:write(("  %-10s %6s %9s %9s %9s %9s\n"):format("model", "id", "AUC", "log loss", "Brier", "ECE"))
  for _, c in ipairs(t.candidates) do
    out:write(("  %-10s %6d %9s %9s %9s %9s%s\n"):format(c.kind, c.model_id, fmt(c.eval_auc),
      fmt(c.eval_logloss), fmt(c.eval_brier), fmt(c.eval_ece),
      c == t.best and (t.activated and "  <- best, now active" or "  <- best") or ""))
  end
  if t.note then out:write("  not activated: ", t.note, "\n") end
  out:write(("  %-10s %6s %9s %9s %9s    (partner-submitted probability, %s)\n"):format(
    "partner", "", fmt(t.partner_auc), fmt(t.partner_logloss), fmt(t.partner_brier),
    t.partner_brier and t.best and ("Brier %.0f%% lower with the model"):format(
      100 * (1 - t.best.eval_brier / t.partner_brier)) or "n/a"))
end

-- Reliability of the active model and of the partner-submitted
-- probability on the evaluation window: predicted vs observed win rate.
function M.print_reliability(t, out)
  out = out or io.stdout
  out:write(("  reliability on the evaluation window (%s model vs partner-submitted)\n"):format(t.best.kind))
  out:write(("  %-11s %8s %9s %9s   %8s %9s %9s\n"):format("bin", "n", "model p", "won", "n", "partner p", "won"))
  for i, b in ipairs(t.best.reliability) do
    local q = t.partner_reliability[i]
    out:write(("  %4.1f-%-4.1f  %8d %9s %9s   %8d %9s %9s\n"):format(b.lo, b.hi, b.n, fmt(b.mean_p, "%.3f"),
      fmt(b.mean_y, "%.3f"), q.n, fmt(q.mean_p, "%.3f"), fmt(q.mean_y, "%.3f")))
  end
end

-- A writer that collects text (the CLI prints what the drivers render).
local function collector()
  local buf = {}
  return { write = function(_, ...) for _, x in ipairs { ... } do buf[#buf + 1] = x end end,
           text = function() return table.concat(buf) end }
end

function M.train(opts)
  opts = opts or {}
  local t, err = scoring.train { as_of = opts.as_of, kind = opts.kind, activate = opts.activate,
                                 force_activate = opts.force_activate,
                                 train_quarters = opts.train_quarters, step_days = opts.step_days }
  if not t then return nil, err end
  if not opts.quiet then
    M.print_train(t, opts.out)
    if opts.reliability then M.print_reliability(t, opts.out) end
  end
  return t
end

-- The score run is C's (scoring.score): scores, drivers, flags and the
-- connector's write-back payloads commit together. This renders it.
function M.format_score(s)
  local out = collector()
  if s.warnings and s.warnings ~= "" then out:write(s.warnings) end
  if s.conflicts and s.conflicts > 0 then
    out:write(("note: %d deal(s) had a current row that disagreed with their history (e.g. %s);"
      .. " the current row was taken as the newest state\n"):format(s.conflicts, s.conflict_example or "?"))
  end
  out:write(("score run %d as of %s with model %d (%s): %d open deals, %d flagged,"
    .. " mean probability %.3f, %d write-back payloads queued%s\n"):format(s.run_id, s.as_of,
    s.model_id, s.model_kind, s.deals, s.flagged, s.mean_probability or 0, s.queued,
    s.unchanged > 0 and (" (%d unchanged since the last delivery)"):format(s.unchanged) or ""))
  out:write(("  time: features %.2f s, model %.2f s, drivers/flags/store %.2f s\n"):format(
    s.seconds_features, s.seconds_model, s.seconds_store))
  return out.text()
end

function M.score(opts)
  opts = opts or {}
  local s, err = scoring.score { as_of = opts.as_of, model_id = opts.model_id, flags = opts.flags,
                                 connector = opts.connector or "connectors/file.lua" }
  if not s then return nil, err end
  if not opts.quiet then (opts.out or io.stdout):write(M.format_score(s)) end
  return s
end

local function parse(args, spec)
  local o, i = {}, 1
  while i <= #args do
    local a = args[i]
    local key = a:match("^%-%-([%w%-]+)$")
    local kind = key and spec[key]
    if not kind then return nil, "unknown argument " .. a end
    local name = key:gsub("%-", "_")
    if kind == "flag" then
      o[name], i = true, i + 1
    else
      local v = args[i + 1]
      if not v then return nil, a .. " needs a value" end
      if kind == "int" then
        v = math.tointeger(tonumber(v))
        if not v then return nil, a .. " needs an integer" end
      end
      o[name], i = v, i + 2
    end
  end
  return o
end

-- `prmcast train [--as-of D] [--kind K] [--train-quarters N] [--step-days N] [--no-activate]
--  [--force-activate]`
function M.train_cli(args)
  local o, err = parse(args, { ["as-of"] = "str", kind = "str", ["train-quarters"] = "int",
                               ["step-days"] = "int", ["no-activate"] = "flag", quiet = "flag",
                               reliability = "flag", ["force-activate"] = "flag" })
  if not o then return false, err end
  local out = collector()
  local t, terr = M.train { as_of = o.as_of, kind = o.kind, train_quarters = o.train_quarters,
                            step_days = o.step_days, activate = not o.no_activate, quiet = o.quiet,
                            force_activate = o.force_activate,
                            reliability = o.reliability, out = out }
  if not t then return false, terr end
  return true, { model = t.best.model_id, kind = t.best.kind, eval_logloss = t.best.eval_logloss,
                 eval_auc = t.best.eval_auc, eval_brier = t.best.eval_brier,
                 partner_brier = t.partner_brier }, out.text()
end

-- `prmcast score [--as-of D] [--model ID] [--connector F] [--no-flags]`
function M.score_cli(args)
  local o, err = parse(args, { ["as-of"] = "str", model = "int", connector = "str",
                               ["no-flags"] = "flag", quiet = "flag" })
  if not o then return false, err end
  local out = collector()
  local s, serr = M.score { as_of = o.as_of, model_id = o.model, connector = o.connector,
                            flags = not o.no_flags, quiet = o.quiet, out = out }
  if not s then return false, serr end
  return true, { run = s.run_id, deals = s.deals, flagged = s.flagged, queued = s.queued,
                 rule_errors = s.rule_errors, rule_problems = s.rule_problems,
                 conflicts = s.conflicts }, out.text()
end

return M
