-- prm.http's Lua face: option checking, results of failures, redaction,
-- Retry-After parsing; and prm.sync's connector checks and formats. (The
-- client against servers: tests/unit/test_http.c and tests/e2e/test_sync_*.)
local t = require "tests.lua.tap"
local http = require "prm.http"
local sync = require "prm.sync"

t.raises(function() http.client{ base_url = "http://x", retrys = 3 } end,
  "http.client: unknown option 'retrys'", "unknown client option named")
t.raises(function() http.client{ throttle = { "429" } } end,
  "rule 1 must be a status", "throttle rule shape checked")
t.raises(function() http.client{ throttle = { { status = 403, bodyy = "x" } } } end,
  "throttle rule: unknown option 'bodyy'", "unknown throttle rule key named")
t.raises(function() http.client{ basic = { "user" } } end, "option 'basic'", "basic needs user and password")
local lines = {}
local c = http.client{ base_url = "http://127.0.0.1:1", retries = 0, budget = 0,
                       headers = { Authorization = "Bearer tok_abcdef123" },
                       log = function(l) lines[#lines + 1] = l end }
t.raises(function() c:request{ path = "/", methd = "GET" } end, "request: unknown option 'methd'",
  "unknown request option named")
t.raises(function() c:pages{ path = "/", paginator = "cursr" } end, "invalid option 'cursr'",
  "unknown paginator named")
local r, err, status = c:request{ path = "/x", query = { token = "tok_abcdef123", n = 1 } }
t.ok(r == nil and err:find("Couldn't connect", 1, true) and status == 0,
  "a refused connection is nil, msg, 0", err)
t.ok(err:find("token=***", 1, true) and not err:find("tok_abcdef123", 1, true),
  "the error hides the token", err)
t.ok(#lines == 1 and not lines[1]:find("tok_abcdef123", 1, true), "one log line, redacted", lines[1])
local it = c:pages{ path = "/p", paginator = "cursor", limit = 5, items = "data.items",
                    has_more = "data.has_more", object = "deal" }
local page, perr = it()
t.ok(page == false and perr:find("deal: page 1: GET http://127.0.0.1:1/p?limit=5", 1, true),
  "a failed page is false, msg naming object, page and URL", perr)
t.eq(it(), nil, "and the iteration ends")
t.eq(c:stats().requests, 2, "stats count attempts")
t.eq(c:redact("x tok_abcdef123 y"), "x [REDACTED] y", "client redacts its header secret")
c:close()
t.raises(function() c:request{ path = "/" } end, "closed HTTP client", "a closed client raises")
t.eq(http.redact_url("https://u:p@h/x?api_key=k&a=1"), "https://***@h/x?api_key=***&a=1",
  "redact_url")
t.eq(http.retry_after("7"), 7000, "Retry-After seconds")
t.eq(http.retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 40), 60000, "Retry-After date")
t.eq(http.retry_after("later"), nil, "Retry-After garbage")

t.eq(sync.formats.epoch_ms("2024-07-18T08:58:00Z"), 1721293080000, "epoch_ms format")
t.eq(sync.formats.iso("2024-07-18T08:58:00Z"), "2024-07-18T08:58:00", "ISO without zone")
t.eq(sync.formats.soql("2024-07-18T08:58:00Z"), "2024-07-18T08:58:00Z", "SOQL datetime")
t.raises(function() sync.check_connector({ name = "x", client = function() end,
  objects = { { object = "dael", path = "/d", map = function() end } } }, "c.lua") end,
  "c.lua: field 'objects[1].object' must be a store object", "unknown object named")
t.raises(function() sync.check_connector({ name = "x", client = function() end,
  objects = { { object = "deal", path = "/d", map = function() end,
                watermark = { field = "u", format = "epoch_us" } } } }, "c.lua") end,
  "watermark.format' must be one of", "unknown watermark format named")
local e = sync.env({ name = "ps", env = { a = { "PRMTEST_UNSET_A", "HOME" },
                                          b = { "PRMTEST_UNSET_B", default = "d" } } })
t.ok(e.a == os.getenv("HOME") and e.b == "d", "env: first variable set, then the default")
t.raises(function() sync.env({ name = "ps", env = { k = { "PRMTEST_UNSET_K", required = true } } }) end,
  "ps: environment variable PRMTEST_UNSET_K is not set", "a missing required variable named")
for _, f in ipairs { "partnerstack", "salesforce", "impartner", "allbound" } do
  local ok, res = pcall(sync.load_connector, "connectors/" .. f .. ".lua")
  t.ok(ok, "connectors/" .. f .. ".lua passes the checks", res)
end
t.done()
