-- tests/e2e/pages_probe.lua BASE_URL PUBLIC SECRET WALK: pages through the
-- PartnerStack peer's deals with prm.http (walk = "walk": checked and read
-- in C; else decoded with cjson) and prints "ok <pages> <items>", or the
-- failed page's message: both paths must read (or refuse) a page alike.
local http = require "prm.http"
local base, pub, secret, walk = ...
local c <close> = http.client{ base_url = base, basic = { pub, secret }, log = false, retries = 0 }
local pages, items = 0, 0
for page, err in c:pages{ path = "/api/v2/deals", paginator = "cursor", limit = 250,
                          items = "data.items", has_more = "data.has_more", key = "key",
                          object = "deal", walk = walk == "walk" } do
  if not page then print(err) return end
  pages = pages + 1
  items = items + (page.count or #page.items)
end
print(("ok %d %d"):format(pages, items))
