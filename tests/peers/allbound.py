#!/usr/bin/env python3
"""Allbound Open API test peer (see peerlib.py for faults and logs).

  python3 tests/peers/allbound.py --data DIR [--log FILE] [--port-file F]
  credentials: PEER_API_KEY (default ab_test_key), PEER_INSTANCE (default acme)

The shape issue 10 gives for Allbound's Open API: `X-API-KEY` and
`X-API-INSTANCE` headers; every answer is {"status": "success"|"error",
"result": ...}; writes carry {"input": [...]}; 406 (not 429) when throttled,
with Retry-After. Lists: GET /api/v1/partners and /api/v1/deals with
`page` (from 1), `limit` (1..200) and `updated_since` (ISO 8601, UTC);
snake_case fields. Write: POST /api/v1/deals/update {"input": [{"id": ...,
<field>: <value>, ...}]}; an unknown field or key is a 400 and nothing of
the request is applied.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib as pl  # noqa: E402

VENDOR_FIELDS = {"ai_forecast_score", "ai_risk_flags", "ai_last_scored_at",
                 "ai_close_probability", "ai_model_version", "ai_drivers"}


def iso(ms):
    return None if ms is None else pl.iso_of_ms(ms)


class Allbound:
    def __init__(self, data):
        self.peer = None
        self.key = os.environ.get("PEER_API_KEY", "ab_test_key")
        self.instance = os.environ.get("PEER_INSTANCE", "acme")
        self.objects = {"partners": {}, "deals": {}}
        for r in pl.read_csv(os.path.join(data, "partners.csv")):
            self.objects["partners"][r["Partner ID"]] = {
                "id": r["Partner ID"], "company_name": r.get("Partner Name"),
                "tier": r.get("Tier"), "region": r.get("Region"), "country": r.get("Country"),
                "partner_type": r.get("Partner Type"), "parent_id": r.get("Parent Partner ID"),
                "currency": r.get("Currency"), "status": r.get("Status"),
                "joined_on": r.get("Join Date"),
                "updated_at": iso(pl.ms_of_iso(r.get("Last Modified"))),
            }
        for r in pl.read_csv(os.path.join(data, "deals.csv")):
            rec = {
                "id": r["Deal ID"], "partner_id": r.get("Partner ID"),
                "customer_company": r.get("Account Name"), "contact_name": r.get("Contact Name"),
                "contact_email": r.get("Contact Email"), "amount": r.get("Deal Amount"),
                "currency": r.get("Currency"), "product": r.get("Product"),
                "stage": r.get("Stage"), "expected_close": r.get("Expected Close Date"),
                "closed_on": r.get("Closed Date"),
                "partner_probability": r.get("Partner Probability"),
                "budget_confirmed": r.get("Budget Confirmed"), "competitor": r.get("Competitor"),
                "notes": r.get("Notes"), "created_on": r.get("Created Date"),
                "updated_at": iso(pl.ms_of_iso(r.get("Last Modified"))),
            }
            for f in VENDOR_FIELDS:
                rec[f] = None
            self.objects["deals"][r["Deal ID"]] = rec

    def throttle(self, h, retry_after):
        h.reply(406, {"status": "error", "result": {"message": "API request limit reached"}},
                headers={"Retry-After": retry_after})

    def update(self, obj, key, values, updated_ms):
        rec = self.objects.get(obj, {}).get(key)
        if not rec:
            return False
        rec.update(values)
        rec["updated_at"] = iso(updated_ms)
        return True

    def records(self, obj):
        return VENDOR_FIELDS, self.objects.get(obj, {})

    def delete(self, obj, key, deleted_ms=None):
        # A deleted record leaves every listing; the API offers no list of
        # deleted records and no GET by id (see connectors/allbound.lua).
        return self.objects.get(obj, {}).pop(key, None) is not None

    def error(self, h, status, msg):
        h.reply(status, {"status": "error", "result": {"message": msg}})

    def route(self, h):
        k, i = h.headers.get("X-API-KEY"), h.headers.get("X-API-INSTANCE")
        h.auth_state = "none" if not k else ("ok" if k == self.key and i == self.instance
                                            else "bad")
        if h.auth_state != "ok":
            return self.error(h, 401, "Invalid API key or instance")
        parts = h.route_path.strip("/").split("/")
        if len(parts) >= 3 and parts[:2] == ["api", "v1"] and parts[2] in self.objects:
            if len(parts) == 3 and h.method == "GET":
                return self.list(h, parts[2])
            if len(parts) == 4 and parts[3] == "update" and h.method == "POST" and \
                    parts[2] == "deals":
                return self.write(h)
        return self.error(h, 404, "Unknown endpoint")

    def list(self, h, name):
        q, peer = h.query, self.peer
        for k in q:
            if k not in ("page", "limit", "updated_since"):
                return self.error(h, 400, "Unknown parameter '%s'" % k)
        try:
            page, limit = int(q.get("page", "1")), int(q.get("limit", "50"))
        except ValueError:
            return self.error(h, 400, "page and limit must be integers")
        if page < 1 or not 1 <= limit <= 200:
            return self.error(h, 400, "limit must be between 1 and 200")
        recs = sorted(self.objects[name].values(), key=lambda r: r["id"])
        if "updated_since" in q:
            v = q["updated_since"]
            try:
                pl.ms_of_iso(v)
            except ValueError:
                return self.error(h, 400, "updated_since must be ISO 8601")
            recs = [r for r in recs if (r.get("updated_at") or "") >= v]
        hide = peer.faults.get("unlisted")
        if hide and name == "deals" and "updated_since" not in q and hide.get("passes", 0) > 0:
            # {"unlisted": {"ids": [...], "passes": N}}: left out of the next N
            # whole listings (a page shift), a pass ending at its short page.
            recs = [r for r in recs if r["id"] not in hide["ids"]]
        part = recs[(page - 1) * limit: page * limit]
        if hide and name == "deals" and "updated_since" not in q and len(part) < limit and \
                hide.get("passes", 0) > 0:
            hide["passes"] -= 1
        out = []
        for j, r in enumerate(part):
            if (page - 1) * limit + j < peer.faults.get("bad_records", 0) and \
                    peer.faults.get("object", name) == name:
                r = dict(r, amount={"value": "?"}, created_on=12)
            out.append(r)
        body = {"status": "success", "result": out}
        if peer.page_fault("html_page", name, page):
            return h.reply(200, "<html><body>Allbound is down for maintenance</body></html>",
                           "text/html")
        if peer.page_fault("wrong_type_page", name, page):
            body["result"] = {"items": out}
        data = json.dumps(body).encode()
        if peer.page_fault("truncate_page", name, page):
            data = data[: len(data) // 2]
        h.reply(200, data)

    def write(self, h):
        b = h.body_json()
        h.write_body = b if b is not ValueError else h.raw_body.decode("utf-8", "replace")
        if not isinstance(b, dict) or set(b) != {"input"} or not isinstance(b["input"], list):
            return self.error(h, 400, 'The body must be {"input": [...]}')
        allowed = VENDOR_FIELDS | {"id"}
        for item in b["input"]:
            if not isinstance(item, dict) or "id" not in item:
                return self.error(h, 400, "Each input needs an id")
            bad = sorted(set(item) - allowed)
            if bad:
                return self.error(h, 400, "Unknown or read-only field(s): %s" % ", ".join(bad))
            if item["id"] not in self.objects["deals"]:
                return self.error(h, 400, "Unknown deal %s" % item["id"])
        with self.peer.lock:
            self.peer.stats["writes"] += 1
        for item in b["input"]:
            self.objects["deals"][item["id"]].update(item)
        h.reply(200, {"status": "success", "result": {"updated": len(b["input"])}})


if __name__ == "__main__":
    args = pl.parse_args("Allbound")
    pl.serve(Allbound(args.data), args)
