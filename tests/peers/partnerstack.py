#!/usr/bin/env python3
"""PartnerStack Vendor API v2 test peer (see peerlib.py for faults and logs).

  python3 tests/peers/partnerstack.py --data DIR [--log FILE] [--port-file F]
  credentials: PEER_PUBLIC_KEY / PEER_SECRET_KEY (default pk_test / sk_test)

Faithful to the public reference (docs.partnerstack.com, "Partner API" and
"Update a deal"): HTTP Basic auth with public:secret key; list endpoints
under /api/v2/ answer {"data": {"items": [...], "has_more": bool},
"message": ..., "status": 200}, newest first, `limit` 1..250 (default 10),
`starting_after` / `ending_before` item-key cursors (mutually exclusive),
times in epoch milliseconds (`created_at`, `updated_at`, and the
`min_updated` / `max_updated` / `min_created` filters), money in integer
cents; errors are {"message": ..., "status": "4xx"}; 429 when throttled.
PATCH /api/v2/deals/{key} takes the documented body keys only (any other
key is a 400) and `fields: [{api_name, value}]` for the company's deal
fields (an undeclared api_name is a 400).
Partnerships carry the tier as `group`, custom data in `m_data`; deals
their custom values in `field_data`.
"""
import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib as pl  # noqa: E402

DEAL_PATCH_KEYS = {"account_name", "amount", "close_date", "contact_first_name",
                   "contact_last_name", "customer_key", "external_key", "field_data", "fields",
                   "group_key", "lost_reason", "meta", "partner_key", "source", "stage", "team",
                   "team_member"}
# The company's deal fields: partner-entered ones and the vendor's AI fields.
PARTNER_FIELDS = {"product", "partner_probability", "budget_confirmed", "competitor", "notes",
                  "contact_email", "currency", "closed_date"}
VENDOR_FIELDS = {"ai_forecast_score", "ai_risk_flags", "ai_last_scored_at",
                 "ai_close_probability", "ai_model_version", "ai_drivers"}
DEAL_FIELDS = PARTNER_FIELDS | VENDOR_FIELDS


def slug(s):
    return s.lower().replace(" ", "-") if s else None


class PartnerStack:
    def __init__(self, data):
        self.peer = None
        self.pub = os.environ.get("PEER_PUBLIC_KEY", "pk_test")
        self.secret = os.environ.get("PEER_SECRET_KEY", "sk_test")
        self.lists = {"partnerships": [], "deals": [], "transactions": [], "rewards": [],
                      "customers": []}
        for r in pl.read_csv(os.path.join(data, "partners.csv")):
            self.lists["partnerships"].append({
                "key": "pshp_" + r["Partner ID"], "partner_key": r["Partner ID"],
                "created_at": pl.ms_of_iso(r.get("Join Date")),
                "updated_at": pl.ms_of_iso(r.get("Last Modified")),
                "status": (r.get("Status") or "").lower() or None,
                "group": {"key": slug(r.get("Tier")), "name": r.get("Tier")},
                "company": {"name": r.get("Partner Name")},
                "m_data": {"region": r.get("Region"), "country": r.get("Country"),
                           "partner_type": r.get("Partner Type"),
                           "parent_partner_key": r.get("Parent Partner ID"),
                           "currency": r.get("Currency")},
            })
        for r in pl.read_csv(os.path.join(data, "deals.csv")):
            name = r.get("Contact Name")
            first, _, last = (name or "").partition(" ")
            self.lists["deals"].append({
                "key": r["Deal ID"], "partner_key": r.get("Partner ID"),
                "account_name": r.get("Account Name"),
                "contact_first_name": first or None, "contact_last_name": last or None,
                "amount": pl.cents(r.get("Deal Amount")), "stage": r.get("Stage"),
                "close_date": pl.us_to_iso(r.get("Expected Close Date")),
                "created_at": pl.ms_of_iso(r.get("Created Date")),
                "updated_at": pl.ms_of_iso(r.get("Last Modified")),
                "archived": False,
                "field_data": {
                    "contact_email": r.get("Contact Email"), "currency": r.get("Currency"),
                    "product": r.get("Product"),
                    "partner_probability": (int(r["Partner Probability"])
                                            if r.get("Partner Probability") else None),
                    "budget_confirmed": ({"Yes": True, "No": False}.get(r.get("Budget Confirmed"))),
                    "competitor": r.get("Competitor"), "notes": r.get("Notes"),
                    "closed_date": r.get("Closed Date"),
                },
            })
        customers = {}
        for r in pl.read_csv(os.path.join(data, "transactions.csv")):
            ck = "cus_" + r["Transaction ID"]
            customers[ck] = {"key": ck, "name": r.get("Account Name"),
                             "partner_key": r.get("Partner ID"),
                             "created_at": pl.ms_of_iso(r.get("Booked Date")),
                             "updated_at": pl.ms_of_iso(r.get("Booked Date"))}
            self.lists["transactions"].append({
                "key": r["Transaction ID"], "customer_key": ck,
                "customer": {"key": ck, "name": r.get("Account Name"),
                             "partner_key": r.get("Partner ID")},
                "amount": pl.cents(r.get("Amount")), "currency": r.get("Currency"),
                "metadata": {"deal_key": r.get("Deal ID")},
                "created_at": pl.ms_of_iso(r.get("Booked Date")),
                "updated_at": pl.ms_of_iso(r.get("Booked Date")),
            })
        self.lists["customers"] = list(customers.values())
        for r in pl.read_csv(os.path.join(data, "payouts.csv")):
            self.lists["rewards"].append({
                "key": r["Payout ID"], "partner_key": r.get("Partner ID"),
                "amount": int(r["Amount (cents)"]) if r.get("Amount (cents)") else None,
                "currency": r.get("Currency"), "reward_status": "paid",
                "trigger": {"key": r.get("Type")},
                "deal_key": r.get("Deal ID"),
                "created_at": pl.ms_of_iso(r.get("Paid Date")),
                "updated_at": pl.ms_of_iso(r.get("Paid Date")),
            })
        for items in self.lists.values():
            items.sort(key=lambda x: (x.get("created_at") or 0, x["key"]), reverse=True)
        self.by_key = {name: {x["key"]: x for x in items} for name, items in self.lists.items()}
        # Pages are served from caches so a benchmark measures the client,
        # not this peer: each record's JSON encoding (dropped when the record
        # changes) and the filtered list of the last filter asked for (dropped
        # on any change). The bytes served are the same as encoding afresh.
        self.enc = {}
        self.version = 0
        self._filtered = {}
        # Encoded before the peer listens (the first sync would otherwise
        # pay for it: ~45 CPU-s of the peer's at 1M deals).
        for name, items in self.lists.items():
            for x in items:
                self.encoded(name, x)

    def encoded(self, name, x):
        e = self.enc.get((name, x["key"]))
        if e is None:
            e = self.enc[(name, x["key"])] = json.dumps(x).encode()
        return e

    def changed(self, obj, key):
        self.enc.pop((obj, key), None)
        self.version += 1

    def position(self, name):
        """key -> place in the list's order (rebuilt when a record was added)."""
        cache = getattr(self, "_pos", {})
        if len(cache.get(name, {})) != len(self.lists[name]):
            cache[name] = {x["key"]: i for i, x in enumerate(self.lists[name])}
            self._pos = cache
        return cache[name]

    # -- peer hooks ----------------------------------------------------------
    def throttle(self, h, retry_after):
        h.reply(429, {"message": "Too many requests", "status": "429"},
                headers={"Retry-After": retry_after})

    def update(self, obj, key, values, updated_ms):
        rec = self.by_key.get(obj, {}).get(key)
        if not rec:
            return False
        for k, v in values.items():
            if k == "field_data":
                rec["field_data"].update(v)
            else:
                rec[k] = v
        rec["updated_at"] = updated_ms
        self.changed(obj, key)
        return True

    def records(self, obj):
        return VENDOR_FIELDS, self.by_key.get(obj, {})

    def delete(self, obj, key, deleted_ms=None):
        rec = self.by_key.get(obj, {}).pop(key, None)
        if rec is None:
            return False
        self.lists[obj].remove(rec)
        self._pos = {}
        self.changed(obj, key)
        return True

    def error(self, h, status, msg):
        h.reply(status, {"message": msg, "status": str(status)})

    def auth(self, h):
        a = h.headers.get("Authorization") or ""
        if not a.startswith("Basic "):
            h.auth_state = "none"
            return False
        try:
            user, _, pw = base64.b64decode(a[6:]).decode().partition(":")
        except ValueError:
            user, pw = "", ""
        h.auth_state = "ok" if (user == self.pub and pw == self.secret) else "bad"
        return h.auth_state == "ok"

    def route(self, h):
        if not self.auth(h):
            return self.error(h, 401, "Unauthorized: invalid API key")
        parts = h.route_path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "api" or parts[1] != "v2":
            return self.error(h, 404, "Not found")
        name = parts[2]
        if name not in self.lists:
            return self.error(h, 404, "Not found")
        if len(parts) == 3 and h.method == "GET":
            return self.list(h, name)
        if len(parts) == 4 and h.method == "GET":
            rec = self.by_key[name].get(parts[3])
            if not rec:
                return self.error(h, 404, "%s not found" % name[:-1])
            return h.reply(200, {"data": rec, "message": "Retrieved", "status": 200})
        if len(parts) == 4 and name == "deals" and h.method == "PATCH":
            return self.patch_deal(h, parts[3])
        return self.error(h, 405, "Method not allowed")

    def list(self, h, name):
        q, peer = h.query, self.peer
        try:
            limit = int(q.get("limit", "10"))
        except ValueError:
            return self.error(h, 400, "limit must be an integer")
        if not 1 <= limit <= 250:
            return self.error(h, 400, "limit must be between 1 and 250")
        if "starting_after" in q and "ending_before" in q:
            return self.error(h, 400, "starting_after and ending_before are mutually exclusive")
        items = self.lists[name]
        fkey = (name, self.version, len(items)) + \
            tuple(q.get(p) for p in ("min_updated", "max_updated", "min_created"))
        cached = self._filtered.get(name)
        if cached and cached[0] == fkey:
            filters = ()
            items = cached[1]
        else:
            filters = (("min_updated", "updated_at", "ge"), ("max_updated", "updated_at", "le"),
                       ("min_created", "created_at", "ge"))
        for param, field, op in filters:
            if param in q:
                try:
                    t = int(q[param])
                except ValueError:
                    return self.error(h, 400, "%s must be epoch milliseconds" % param)
                items = [x for x in items if (x.get(field) or 0) >= t] if op == "ge" else \
                        [x for x in items if (x.get(field) or 0) <= t]
        if filters:
            self._filtered[name] = (fkey, items)
        start = 0
        if "starting_after" in q:
            if q["starting_after"] not in self.by_key[name]:
                return self.error(h, 400, "starting_after: no such key")
            pos = self.position(name)[q["starting_after"]]
            if items is self.lists[name]:
                start = pos + 1
            else:
                # A key filtered out since: continue after its place in the full order.
                order = self.position(name)
                start = next((i for i, x in enumerate(items) if order[x["key"]] > pos), len(items))
        page_items = items[start:start + limit]
        page = start // limit + 1
        out = []
        for i, x in enumerate(page_items):
            if start + i < peer.faults.get("bad_records", 0) and \
                    peer.faults.get("object", name) == name:
                out.append(json.dumps(dict(x, amount="not-a-number", created_at="yesterday")).encode())
            elif start + i < peer.faults.get("huge_updated", 0) and \
                    peer.faults.get("object", name) == name:
                out.append(json.dumps(dict(x, updated_at=1e300)).encode())   # a number, not an instant
            else:
                out.append(self.encoded(name, x))
        more = start + limit < len(items)
        if peer.page_fault("wrong_type_page", name, page):
            data = json.dumps({"data": {"items": {"unexpected": True}, "has_more": more},
                               "message": "Page returned successfully", "status": 200}).encode()
        else:
            # json.dumps of {"data": {"items": out, "has_more": more}, ...}, byte for byte
            data = (b'{"data": {"items": [' + b", ".join(out) + b'], "has_more": ' +
                    (b"true" if more else b"false") +
                    b'}, "message": "Page returned successfully", "status": 200}')
        if peer.page_fault("repeated_items_page", name, page):
            # The records key twice in the envelope (cjson keeps the last).
            data = data.replace(b'{"data": {"items": [', b'{"data": {"items": [], "items": [', 1)
        if peer.page_fault("html_page", name, page):
            return h.reply(200, "<!DOCTYPE html><html><head><title>Maintenance</title></head>"
                           "<body>We'll be right back</body></html>", "text/html; charset=utf-8")
        if peer.page_fault("truncate_page", name, page):
            data = data[: len(data) // 2]
        h.reply(200, data)

    def patch_deal(self, h, key):
        rec = self.by_key["deals"].get(key)
        b = h.body_json()
        h.write_body = b if b is not ValueError else h.raw_body.decode("utf-8", "replace")
        if not rec:
            return self.error(h, 404, "deal not found")
        if b is ValueError or not isinstance(b, dict):
            return self.error(h, 400, "request body must be a JSON object")
        bad = sorted(set(b) - DEAL_PATCH_KEYS)
        if bad:
            return self.error(h, 400, "Unknown field(s): %s" % ", ".join(bad))
        fields = b.get("fields", [])
        if not isinstance(fields, list):
            return self.error(h, 400, "fields must be a list")
        for f in fields:
            if not isinstance(f, dict) or set(f) != {"api_name", "value"}:
                return self.error(h, 400, "fields items must be {api_name, value}")
            if f["api_name"] not in DEAL_FIELDS:
                return self.error(h, 400, "Unknown deal field: %s" % f["api_name"])
        if "stage" in b and not isinstance(b["stage"], str):
            return self.error(h, 400, "stage must be a string")
        with self.peer.lock:
            self.peer.stats["writes"] += 1
        for f in fields:
            rec["field_data"][f["api_name"]] = f["value"]
        for k, v in b.items():
            if k not in ("fields", "field_data"):
                rec[k] = v
        self.changed("deals", key)
        h.reply(200, {"data": rec, "message": "Deal updated", "status": 200})


if __name__ == "__main__":
    args = pl.parse_args("PartnerStack")
    pl.serve(PartnerStack(args.data), args)
