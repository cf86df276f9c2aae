-- tests/e2e/sync.lua - `prmcast run tests/e2e/sync.lua CONNECTOR [options]`:
-- prm.sync's command line until `prmcast ingest connectors/<prm>.lua` is
-- wired to it. Fails the job (exit status 1) with the sync's message.
local ok, res, text = require("prm.sync").cli({ ... })
if not ok then error(res, 0) end
if text then io.stdout:write(text) end
return { read = res.read, written = res.written, rejected = res.rejected, pages = res.pages,
         requests = res.requests, retries = res.retries, throttled = res.throttled }
