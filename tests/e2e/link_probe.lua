-- tests/e2e/link_probe.lua BASE_URL: pages through the peers' generic
-- Link-header list (GET /__peer/linked) with the `link` paginator and prints
-- "<pages> <items> <first key> <last key>".
local http = require "prm.http"
local c <close> = http.client{ base_url = ..., log = false }
local pages, items, first, last = 0, 0, nil, nil
for page, err in c:pages{ path = "/__peer/linked", query = { total = 25 }, paginator = "link",
                          limit = 10, limit_param = "per_page", object = "linked" } do
  if not page then error(err, 0) end
  pages, items = pages + 1, items + #page.items
  first = first or page.items[1].key
  last = page.items[#page.items].key
end
print(pages, items, first, last)
