-- prm.info/warn/error/debug/log write one line each to stderr at their
-- level (they crashed with SIGSEGV in do_log, issue 8); the level filter
-- PRMCAST_LOG; secrets masked; prm.safe escapes control characters.
local t = require "tests.lua.tap"

-- In this process: a crash here fails the suite.
prm.info("info %d", 1)
prm.warn("warn %s", "x")
prm.error("error")
prm.debug("debug")
prm.log("warn", "log %s", "y")
t.ok(true, "logging in-process returns")
t.raises(function() prm.log("loud", "x") end, "invalid option 'loud'", "an unknown level raises")

-- In a child, to read its stderr.
local job = t.tmpfile([[
prm.debug("dbg %d", 7)
prm.info("hello %s", "world")
prm.warn("careful %.1f", 2.5)
prm.error("bad %q", "thing")
prm.log("info", "via log %d", 42)
prm.info("token is %s", os.getenv("PRMTEST_API_TOKEN"))
return 1
]])
local function child(env)
  local p = assert(io.popen(("%s ./prmcast --db build/test-out/log-child.db run %s 2>&1 >/dev/null; echo rc=$?"):format(env, job)))
  local out = p:read("a")
  p:close()
  return out
end
local out = child("PRMTEST_API_TOKEN=s3cr3t-value")
t.ok(out:find("rc=0", 1, true), "the job exits 0", out)
t.ok(out:find("INFO  hello world", 1, true), "prm.info line", out)
t.ok(out:find("WARN  careful 2.5", 1, true), "prm.warn line", out)
t.ok(out:find('ERROR bad "thing"', 1, true), "prm.error line", out)
t.ok(out:find("INFO  via log 42", 1, true), "prm.log with a level", out)
t.ok(not out:find("dbg 7", 1, true), "debug is below the default level", out)
t.ok(out:find("token is [REDACTED]", 1, true) and not out:find("s3cr3t", 1, true),
  "a secret from the environment is masked", out)
t.ok(out:find("^%d%d%d%d%-%d%d%-%d%dT"), "lines start with a timestamp", out)

out = child("PRMCAST_LOG=debug")
t.ok(out:find("DEBUG dbg 7", 1, true), "PRMCAST_LOG=debug shows debug", out)
out = child("PRMCAST_LOG=error")
t.ok(out:find('ERROR bad "thing"', 1, true) and not out:find("hello world", 1, true)
  and not out:find("careful", 1, true), "PRMCAST_LOG=error keeps errors only", out)
os.remove(job)

-- A 4 MiB message with secrets in the environment: redaction is linear and
-- the line is cut at 16 KiB with the size.
job = t.tmpfile([[
local s = ("x"):rep(4 << 20) .. "s3cr3t-value"
prm.info("%s", s)
return 1
]])
local t0 = os.time()
out = child("PRMTEST_API_TOKEN=s3cr3t-value A_KEY=abcdefgh B_SECRET=12345678")
t.ok(out:find("... (4194316 bytes)", 1, true), "a long message is cut, with its size", out:sub(-200))
t.ok(#out < 20000, "to about 16 KiB", #out)
t.ok(os.time() - t0 < 5, "in bounded time")
os.remove(job)
os.remove("build/test-out/log-child.db")

t.eq(prm.safe("a\27[31mb\rc"), "a\\x1b[31mb\\x0dc", "prm.safe escapes ESC and CR")
t.eq(prm.safe("plain ünïcode"), "plain ünïcode", "prm.safe keeps printable text and UTF-8")
t.eq(prm.safe(nil), "nil", "prm.safe of nil")
t.eq(prm.safe("nul\0x"), "nul\\x00x", "prm.safe escapes NUL")
t.done()
