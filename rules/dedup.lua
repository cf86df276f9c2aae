-- rules/dedup.lua - when a distributor's registration is a copy of one of
-- its resellers' (two-tier programs register the same deal twice). The pair
-- is counted once, on the reseller's record; `prmcast duplicates` lists the
-- pairs this matched and why. Loaded sandboxed (a rule): return a table.
return {
  same_account = true,          -- the same end customer account (case and spaces ignored)
  same_product = true,          -- the same product family
  parent_relationship = true,   -- the distributor is the reseller's parent as of the date
  amount_within_pct = 5,        -- amounts within 5% of the larger
  days_within = 14,             -- registered within 14 days of each other
}
