#!/usr/bin/env python3
"""Impartner PRM Objects API test peer (see peerlib.py for faults and logs).

  python3 tests/peers/impartner.py --data DIR [--log FILE] [--port-file F]
  credentials: PEER_API_KEY (default imp_test_key), PEER_TENANT_ID (default 1001)

The shape issue 10 gives for Impartner's Objects API: GET
/api/objects/v1/{Object}?fields=A,B&filter=...&orderby=...&skip=K&take=N with
`Authorization: prm-key <key>` and `X-PRM-TenantId: <id>`; the answer is
{"data": {"count": <total matching>, "entity": <Object>, "results": [...]},
"success": true}; field names are PascalCase in requests and come back with
the first letter lower-cased; tenant custom fields end in __cf; the filter is
SQL-like (`Updated > '2026-01-01T00:00:00'`, ISO without zone); errors are
{"success": false, "message": ...}; 429 with Retry-After when throttled.
PATCH /api/objects/v1/{Object}/{id} takes a JSON object of PascalCase
fields; an unknown field is a 400. Objects served: Account (partners) and
Opportunity (deal registrations).
Deletes are outright, as the Objects API's DELETE /api/objects/v1/{Object}/{id}
(a public Impartner client, Syncari's connector, deletes this way and reads a
deleted record's GET /api/objects/v1/{Object}/{id} as a 404 "Record not
found: <id>"); no list of deleted records and no archived flag is published,
so a deleted record simply leaves every listing. `/__peer/delete` does the
same as that DELETE.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib as pl  # noqa: E402

VENDOR_FIELDS = {"AiForecastScore__cf", "AiRiskFlags__cf", "AiLastScoredAt__cf",
                 "AiCloseProbability__cf", "AiModelVersion__cf", "AiDrivers__cf"}
READ_ONLY = {"Id", "Created", "Updated"}


def iso(ms):
    return None if ms is None else pl.iso_of_ms(ms, zone=False)


def lower_first(k):
    return k[:1].lower() + k[1:]


class Impartner:
    def __init__(self, data):
        self.peer = None
        self.key = os.environ.get("PEER_API_KEY", "imp_test_key")
        self.tenant = os.environ.get("PEER_TENANT_ID", "1001")
        self.objects = {"Account": {}, "Opportunity": {}}
        for r in pl.read_csv(os.path.join(data, "partners.csv")):
            self.objects["Account"][r["Partner ID"]] = {
                "Id": r["Partner ID"], "Name": r.get("Partner Name"),
                "PartnerTier": r.get("Tier"), "Region": r.get("Region"),
                "Country": r.get("Country"), "PartnerType__cf": r.get("Partner Type"),
                "ParentAccountId": r.get("Parent Partner ID"), "Currency": r.get("Currency"),
                "Status": r.get("Status"), "JoinDate__cf": r.get("Join Date"),
                "Created": iso(pl.ms_of_iso(r.get("Join Date"))),
                "Updated": iso(pl.ms_of_iso(r.get("Last Modified"))),
            }
        for r in pl.read_csv(os.path.join(data, "deals.csv")):
            rec = {
                "Id": r["Deal ID"], "AccountId": r.get("Partner ID"),
                "CustomerName": r.get("Account Name"), "ContactName": r.get("Contact Name"),
                "ContactEmail": r.get("Contact Email"),
                "Amount": float(r["Deal Amount"]) if r.get("Deal Amount") else None,
                "Currency": r.get("Currency"), "ProductFamily__cf": r.get("Product"),
                "Stage": r.get("Stage"), "CloseDate": pl.us_to_iso(r.get("Expected Close Date")),
                "ClosedDate__cf": r.get("Closed Date"),
                "PartnerProbability__cf": int(r["Partner Probability"])
                if r.get("Partner Probability") else None,
                "BudgetConfirmed__cf": {"Yes": True, "No": False}.get(r.get("Budget Confirmed")),
                "Competitor__cf": r.get("Competitor"), "Notes": r.get("Notes"),
                "Created": iso(pl.ms_of_iso(r.get("Created Date"))),
                "Updated": iso(pl.ms_of_iso(r.get("Last Modified"))),
            }
            for f in VENDOR_FIELDS:
                rec[f] = None
            # The tenant's own fields (connectors/impartner.lua DEAL_FIELDS).
            for f in ("DealType__cf", "DecisionMakerIdentified__cf", "UseCase__cf"):
                rec[f] = None
            self.objects["Opportunity"][r["Deal ID"]] = rec
        self.fields = {o: set().union(*[set(x) for x in recs.values()])
                       for o, recs in self.objects.items()}

    def throttle(self, h, retry_after):
        h.reply(429, {"success": False, "message": "Rate limit exceeded"},
                headers={"Retry-After": retry_after})

    def update(self, obj, key, values, updated_ms):
        rec = self.objects.get(obj, {}).get(key)
        if not rec:
            return False
        rec.update(values)
        rec["Updated"] = iso(updated_ms)
        return True

    def records(self, obj):
        return VENDOR_FIELDS, self.objects.get(obj, {})

    def delete(self, obj, key, deleted_ms=None):
        return self.objects.get(obj, {}).pop(key, None) is not None

    def error(self, h, status, msg):
        h.reply(status, {"success": False, "message": msg})

    def route(self, h):
        a = h.headers.get("Authorization") or ""
        t = h.headers.get("X-PRM-TenantId")
        h.auth_state = "none" if not a else (
            "ok" if a == "prm-key " + self.key and t == self.tenant else "bad")
        if h.auth_state != "ok":
            return self.error(h, 401, "Authorization has been denied for this request.")
        m = re.match(r"^/api/objects/v1/(\w+)(?:/([^/]+))?/?$", h.route_path)
        if not m or m.group(1) not in self.objects:
            return self.error(h, 404, "Unknown object")
        obj, rid = m.group(1), m.group(2)
        if h.method == "GET" and not rid:
            return self.list(h, obj)
        if h.method == "PATCH" and rid:
            return self.patch(h, obj, rid)
        if h.method == "GET" and rid:
            rec = self.objects[obj].get(rid)
            if rec is None:
                return self.error(h, 404, "Record not found: %s" % rid)
            return h.reply(200, {"data": {lower_first(k): v for k, v in rec.items()},
                                 "success": True})
        if h.method == "DELETE" and rid:
            if not self.delete(obj, rid):
                return self.error(h, 404, "Record not found: %s" % rid)
            return h.reply(200, {"success": True})
        return self.error(h, 405, "The requested resource does not support this method")

    def list(self, h, obj):
        q, peer = h.query, self.peer
        for k in q:
            if k not in ("fields", "filter", "orderby", "skip", "take"):
                return self.error(h, 400, "Unknown query parameter '%s'" % k)
        fields = [f.strip() for f in q.get("fields", "Id").split(",") if f.strip()]
        for f in fields:
            if f not in self.fields[obj]:
                return self.error(h, 400, "Invalid field '%s' for %s" % (f, obj))
        try:
            skip, take = int(q.get("skip", "0")), int(q.get("take", "25"))
        except ValueError:
            return self.error(h, 400, "skip and take must be integers")
        if skip < 0 or not 1 <= take <= 500:
            return self.error(h, 400, "take must be between 1 and 500")
        recs = list(self.objects[obj].values())
        # Fault `unlisted`: ids a listing leaves out although they exist (what
        # offset paging does to a record when one before it goes mid-listing).
        hide = set(peer.faults.get("unlisted") or [])
        if hide:
            recs = [r for r in recs if r["Id"] not in hide]
        flt = q.get("filter")
        if flt:
            m = re.match(r"^(\w+)\s*(>=|>)\s*'(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)'$", flt.strip())
            if not m or m.group(1) not in self.fields[obj]:
                return self.error(h, 400, "Invalid filter: %s" % flt)
            f, op, v = m.groups()
            recs = [r for r in recs if r.get(f) and (r[f] > v if op == ">" else r[f] >= v)]
        ob = (q.get("orderby") or "Id").split()
        if ob[0] not in self.fields[obj]:
            return self.error(h, 400, "Invalid orderby field '%s'" % ob[0])
        recs.sort(key=lambda r: (r.get(ob[0]) is None, r.get(ob[0]) or "", r["Id"]),
                  reverse=len(ob) > 1 and ob[1].lower() == "desc")
        part = recs[skip:skip + take]
        page = skip // take + 1
        out = []
        for i, r in enumerate(part):
            row = {lower_first(f): r.get(f) for f in fields}
            if skip + i < peer.faults.get("bad_records", 0) and \
                    peer.faults.get("object", obj) == obj:
                row["amount"] = "n/a"
                row["created"] = "sometime"
            out.append(row)
        body = {"data": {"count": len(recs), "entity": obj, "results": out}, "success": True}
        if peer.page_fault("html_page", obj, page):
            return h.reply(200, "<html><body><h1>Scheduled maintenance</h1></body></html>",
                           "text/html")
        if peer.page_fault("wrong_type_page", obj, page):
            body["data"]["count"] = "many"
        if peer.page_fault("bad_count_page", obj, page):
            # {"bad_count_page": P, "count": X}: a count that is a JSON number
            # but no count (1e300, -1, 2.5): never read as one.
            body["data"]["count"] = peer.faults.get("count", 1e300)
        data = json.dumps(body).encode()
        if peer.page_fault("truncate_page", obj, page):
            data = data[: len(data) // 2]
        h.reply(200, data)

    def patch(self, h, obj, rid):
        b = h.body_json()
        h.write_body = b if b is not ValueError else h.raw_body.decode("utf-8", "replace")
        rec = self.objects[obj].get(rid)
        if rec is None:
            return self.error(h, 404, "%s %s not found" % (obj, rid))
        if b is ValueError or not isinstance(b, dict):
            return self.error(h, 400, "The request body is not a JSON object")
        for k in b:
            if k not in self.fields[obj]:
                return self.error(h, 400, "Unknown field '%s' for %s" % (k, obj))
            if k in READ_ONLY:
                return self.error(h, 400, "Field '%s' is read-only" % k)
        with self.peer.lock:
            self.peer.stats["writes"] += 1
        rec.update(b)
        h.reply(200, {"data": {lower_first(k): v for k, v in rec.items()}, "success": True})


if __name__ == "__main__":
    args = pl.parse_args("Impartner")
    pl.serve(Impartner(args.data), args)
