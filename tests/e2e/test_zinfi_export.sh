#!/bin/sh
# ZINFI: the sample export renamed to the ZINFI report layout of
# connectors/zinfi.lua ingests to the same partners and deals as the
# generic export through connectors/file.lua.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$P" sample --out "$T/x" --partners 20 --deals 600 --seed 21 >/dev/null
ok $? "sample written"
mkdir -p "$T/z"
"$PY" - "$T/x" "$T/z" <<'PY'
import csv, sys
src, dst = sys.argv[1], sys.argv[2]
ren = {
  "partners": ("zinfi_partners", {"Partner ID": "Partner Company ID", "Partner Name": "Partner Company Name",
    "Tier": "Partner Level", "Status": "Partner Status", "Join Date": "Onboarded On",
    "Last Modified": "Last Updated On"}),
  "deals": ("zinfi_deal_registrations", {"Deal ID": "Deal Registration ID", "Partner ID": "Partner Company ID",
    "Account Name": "End Customer Company", "Contact Name": "Customer Contact Name",
    "Contact Email": "Customer Contact Email", "Deal Amount": "Deal Value", "Product": "Product Line",
    "Stage": "Deal Status", "Created Date": "Registered On", "Closed Date": "Closed On",
    "Partner Probability": "Win Probability (%)", "Budget Confirmed": "Budget Approved",
    "Notes": "Comments", "Last Modified": "Last Updated On"}),
}
for name, (out, m) in ren.items():
    with open("%s/%s.csv" % (src, name), newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    rows[0] = [m.get(h, h) for h in rows[0]]
    with open("%s/%s.csv" % (dst, out), "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
PY
ok $? "export renamed to the ZINFI layout"
"$P" --db "$T/z.db" ingest "$T/z" --connector connectors/zinfi.lua --quiet >/dev/null 2>&1
ok $? "ZINFI export ingested"
rm -rf "$T/y" && mkdir -p "$T/y" && cp "$T/x/partners.csv" "$T/x/deals.csv" "$T/y/"
"$P" --db "$T/f.db" ingest "$T/y" --quiet >/dev/null 2>&1
dump() {
  sqlite3 "$1" "SELECT external_id, name, tier, region, country, type, parent_external_id, currency, status, joined_at, updated_at FROM partners ORDER BY 1;
    SELECT d.external_id, p.external_id, account, contact_name, contact_email, amount, d.currency, product_family, stage, d.status, created_at, expected_close, closed_at, partner_probability, budget_confirmed, competitor, completeness, notes, d.updated_at FROM deals d JOIN partners p ON p.id = d.partner_id ORDER BY 1;"
}
dump "$T/z.db" >"$T/z.dump"; dump "$T/f.db" >"$T/f.dump"
cmp -s "$T/z.dump" "$T/f.dump"
ok $? "same partners and deals as the generic export" "$(diff "$T/z.dump" "$T/f.dump" | head -4)"
ok "$(test "$(wc -l <"$T/z.dump")" -gt 500; echo $?)" "not trivially small"
ok "$(test "$(q "$T/z.db" "SELECT count(DISTINCT source) || source FROM deals")" = 1zinfi; echo $?)" "stored under source zinfi"
done_testing
