#!/usr/bin/env python3
"""Salesforce REST API test peer (see peerlib.py for faults and logs).

  python3 tests/peers/salesforce.py --data DIR [--log FILE] [--port-file F]
  token: PEER_ACCESS_TOKEN (default 00Dtest!token)

Faithful to the public REST API reference: `Authorization: Bearer <token>`
(a wrong one: 401 [{"message": "Session expired or invalid", "errorCode":
"INVALID_SESSION_ID"}]); GET /services/data/vNN.N/query?q=<SOQL> answers
{totalSize, done, records: [{attributes: {type, url}, ...}], nextRecordsUrl}
in batches of 2000 (the `Sforce-Query-Options: batchSize=N` header, 200..2000,
asks for fewer), the next batch at GET nextRecordsUrl; an unknown field in
the SOQL is 400 INVALID_FIELD; datetimes are "2024-07-21T15:10:18.000+0000";
every response carries `Sforce-Limit-Info: api-usage=N/15000`; throttled:
403 [{"errorCode": "REQUEST_LIMIT_EXCEEDED"}]; PATCH
/services/data/vNN.N/sobjects/Opportunity/{Id} with a JSON object of fields
answers 204 (unknown field: 400 INVALID_FIELD; read-only: 400
INVALID_FIELD_FOR_INSERT_UPDATE).
GET /services/data/vNN.N/queryAll?q=<SOQL> is the same query including
soft-deleted records (IsDeleted = true; /query leaves them out), its further
batches at a nextRecordsUrl under /query/ as the reference says. A delete
(`/__peer/update` setting IsDeleted) moves SystemModstamp like Salesforce's.
`/__peer/delete` (with `deleted_at`, ms) is a delete purged from the Recycle
Bin: the record is gone from query and queryAll alike, and only the sObject
Get Deleted resource, GET /services/data/vNN.N/sobjects/Opportunity/deleted/
?start=<ISO 8601>&end=<ISO 8601>, lists it: {deletedRecords: [{id,
deletedDate}], earliestDateAvailable, latestDateCovered}, seconds of start
and end ignored (the reference's "ignores the seconds portion"), start after
end or either missing or unreadable a 400; earliestDateAvailable is the
fault `delete_log_from` (ms) when set (an older log purged), else 2000-01-01.
OpportunityFieldHistory (Id, OpportunityId, Field, OldValue, NewValue,
CreatedDate, IsDeleted) holds one row per change of a tracked field
(StageName, Amount, CloseDate), seeded from the export's deal_history.csv
and appended by every `/__peer/update` that changes one, stamped with the
change's time.
The SOQL understood is what connectors/salesforce.lua sends: SELECT fields
(relationship fields like Account.Name) FROM Account|Opportunity|
OpportunityFieldHistory [WHERE <cond> [AND <cond>]...] [ORDER BY ...], a
<cond> being <Field> > <datetime>, <Field> = true|false, <Field> IN ('a', 'b'),
<Field> != null, Opportunity.PartnerAccountId != null or (history)
Opportunity.CreatedDate > <datetime>; ORDER BY ... DESC reverses the order.
Partner accounts are Accounts with IsPartner; deal registrations are
Opportunities with PartnerAccountId. Ids are the export's own IDs.
"""
import itertools
import json
import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib as pl  # noqa: E402

VENDOR_FIELDS = {"AI_Forecast_Score__c", "AI_Risk_Flags__c", "AI_Last_Scored_At__c",
                 "AI_Close_Probability__c", "AI_Model_Version__c", "AI_Drivers__c"}
READ_ONLY = {"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsClosed", "IsWon",
             "IsDeleted"}
TRACKED = ("StageName", "Amount", "CloseDate")   # OpportunityFieldHistory's fields


def sf_time(ms):
    return None if ms is None else pl.iso_of_ms(ms, zone=False) + ".000+0000"


class Salesforce:
    def __init__(self, data):
        self.peer = None
        self.token = os.environ.get("PEER_ACCESS_TOKEN", "00Dtest!token")
        self.usage = 0
        self.locators = {}
        self.seq = itertools.count(1)
        self.objects = {"Account": {}, "Opportunity": {}, "OpportunityFieldHistory": {}}
        self.deleted = {"Opportunity": []}   # the delete log: (id, deleted ms)
        for r in pl.read_csv(os.path.join(data, "partners.csv")):
            ms = pl.ms_of_iso(r.get("Last Modified"))
            self.objects["Account"][r["Partner ID"]] = {
                "Id": r["Partner ID"], "Name": r.get("Partner Name"), "IsPartner": True,
                "Partner_Tier__c": r.get("Tier"), "Region__c": r.get("Region"),
                "BillingCountry": r.get("Country"), "Partner_Type__c": r.get("Partner Type"),
                "ParentId": r.get("Parent Partner ID"), "CurrencyIsoCode": r.get("Currency"),
                "Partner_Status__c": r.get("Status"),
                "Partner_Since__c": r.get("Join Date"),
                "CreatedDate": sf_time(pl.ms_of_iso(r.get("Join Date"))),
                "LastModifiedDate": sf_time(ms), "SystemModstamp": sf_time(ms),
            }
        for r in pl.read_csv(os.path.join(data, "deals.csv")):
            ms = pl.ms_of_iso(r.get("Last Modified"))
            stage = r.get("Stage")
            self.objects["Opportunity"][r["Deal ID"]] = {
                "Id": r["Deal ID"], "Name": "%s - %s" % (r.get("Account Name"), r["Deal ID"]),
                "PartnerAccountId": r.get("Partner ID"),
                "Account": {"attributes": {"type": "Account"}, "Name": r.get("Account Name")}
                if r.get("Account Name") else None,
                "Contact_Name__c": r.get("Contact Name"), "Contact_Email__c": r.get("Contact Email"),
                "Amount": float(r["Deal Amount"]) if r.get("Deal Amount") else None,
                "CurrencyIsoCode": r.get("Currency"), "Product_Family__c": r.get("Product"),
                "StageName": stage, "IsClosed": stage in ("Closed Won", "Closed Lost"),
                "IsWon": stage == "Closed Won",
                "ForecastCategoryName": {"Closed Won": "Closed", "Closed Lost": "Omitted"}.get(
                    stage, "Pipeline"),
                "CloseDate": pl.us_to_iso(r.get("Expected Close Date")),
                "Closed_Date__c": r.get("Closed Date"),
                "Partner_Probability__c": float(r["Partner Probability"])
                if r.get("Partner Probability") else None,
                "Budget_Confirmed__c": {"Yes": True, "No": False}.get(r.get("Budget Confirmed")),
                "Competitor__c": r.get("Competitor"), "Description": r.get("Notes"),
                "CreatedDate": sf_time(pl.ms_of_iso(r.get("Created Date"))),
                "LastModifiedDate": sf_time(ms), "SystemModstamp": sf_time(ms),
                "IsDeleted": False,
                # The tenant's own fields (connectors/salesforce.lua DEAL_FIELDS).
                "Type": None, "Decision_Maker_Identified__c": None, "Use_Case__c": None,
            }
            for f in VENDOR_FIELDS:
                self.objects["Opportunity"][r["Deal ID"]][f] = None
        prev = {}
        hist = os.path.join(data, "deal_history.csv")
        for r in pl.read_csv(hist) if os.path.exists(hist) else []:
            d = r["Deal ID"]
            now = {"StageName": r.get("Stage"),
                   "Amount": float(r["Deal Amount"]) if r.get("Deal Amount") else None,
                   "CloseDate": pl.us_to_iso(r.get("Expected Close Date"))}
            if d in prev and d in self.objects["Opportunity"]:
                self.history(d, prev[d], now, int(r["Changed At"]))
            prev[d] = now
        self.fields = {o: set().union(*[set(x) for x in recs.values()]) | {"Account.Name"}
                       for o, recs in self.objects.items() if recs}
        self.fields["OpportunityFieldHistory"] = {"Id", "OpportunityId", "Field", "OldValue",
                                                  "NewValue", "CreatedDate", "IsDeleted",
                                                  "Opportunity.CreatedDate"}

    def history(self, opp, old, new, ms):
        """One OpportunityFieldHistory row per tracked field that changed."""
        for f in TRACKED:
            if f in new and old.get(f) != new[f]:
                hid = "017PEER%09d" % next(self.seq)
                self.objects["OpportunityFieldHistory"][hid] = {
                    "Id": hid, "OpportunityId": opp, "Field": f, "OldValue": old.get(f),
                    "NewValue": new[f], "CreatedDate": sf_time(ms), "IsDeleted": False}

    def throttle(self, h, retry_after):
        self.error(h, 403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")

    def update(self, obj, key, values, updated_ms):
        rec = self.objects.get(obj, {}).get(key)
        if not rec:
            return False
        if obj == "Opportunity":
            self.history(key, rec, values, updated_ms)
        rec.update(values)
        rec["LastModifiedDate"] = rec["SystemModstamp"] = sf_time(updated_ms)
        return True

    def records(self, obj):
        return VENDOR_FIELDS, self.objects.get(obj, {})

    def delete(self, obj, key, deleted_ms):
        """A hard delete (purged from the Recycle Bin): only getDeleted lists it."""
        if key not in self.objects.get(obj, {}) or obj not in self.deleted:
            return False
        del self.objects[obj][key]
        self.deleted[obj].append((key, deleted_ms))
        return True

    def get_deleted(self, h, obj):
        def minute(v):
            if not v or not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?"
                                     r"(Z|[+-]\d\d:?\d\d)$", v):
                return None
            return pl.ms_of_iso(v[:16] + ":00Z") - self.offset_ms(v)
        start, end = minute(h.query.get("start")), minute(h.query.get("end"))
        if start is None or end is None:
            return self.error(h, 400, "INVALID_REPLICATION_DATE",
                              "start and end must be dateTime values in ISO 8601 format")
        if start > end:
            return self.error(h, 400, "INVALID_REPLICATION_DATE",
                              "startDate must chronologically precede endDate")
        recs = [{"id": k, "deletedDate": sf_time(ms)} for k, ms in self.deleted.get(obj, [])
                if start <= ms < end]
        earliest = self.peer.faults.get("delete_log_from") or pl.ms_of_iso("2000-01-01T00:00:00Z")
        h.reply(200, {"deletedRecords": recs, "earliestDateAvailable": sf_time(earliest),
                      "latestDateCovered": sf_time(end)}, headers=self.headers())

    @staticmethod
    def offset_ms(v):
        m = re.search(r"([+-])(\d\d):?(\d\d)$", v)
        if not m:
            return 0
        sign = 1 if m.group(1) == "+" else -1
        return sign * (int(m.group(2)) * 3600 + int(m.group(3)) * 60) * 1000

    def headers(self):
        return {"Sforce-Limit-Info": "api-usage=%d/15000" % self.usage}

    def error(self, h, status, code, msg):
        h.reply(status, [{"message": msg, "errorCode": code}], headers=self.headers())

    def route(self, h):
        self.usage += 1
        a = h.headers.get("Authorization") or ""
        h.auth_state = "none" if not a else ("ok" if a == "Bearer " + self.token else "bad")
        if h.auth_state != "ok":
            return self.error(h, 401, "INVALID_SESSION_ID", "Session expired or invalid")
        m = re.match(r"^/services/data/v\d+\.\d/(query|queryAll|sobjects)(?:/(.*))?$",
                     h.route_path)
        if not m:
            return self.error(h, 404, "NOT_FOUND", "The requested resource does not exist")
        if m.group(1) in ("query", "queryAll") and h.method == "GET":
            if m.group(2):
                return self.next_batch(h, m.group(2))
            return self.query(h, deleted=m.group(1) == "queryAll")
        if m.group(1) == "sobjects" and h.method == "GET":
            parts = (m.group(2) or "").split("/")
            if len(parts) >= 2 and parts[1] == "deleted" and parts[0] in self.objects:
                return self.get_deleted(h, parts[0])
        if m.group(1) == "sobjects" and h.method == "PATCH":
            parts = (m.group(2) or "").split("/")
            if len(parts) == 2:
                return self.patch(h, parts[0], parts[1])
        return self.error(h, 405, "METHOD_NOT_ALLOWED", "HTTP Method not allowed")

    def query(self, h, deleted=False):
        soql = h.query.get("q", "")
        m = re.match(r"^\s*SELECT\s+(.+?)\s+FROM\s+(\w+)(?:\s+WHERE\s+(.+?))?"
                     r"(?:\s+ORDER\s+BY\s+(.+?))?\s*$", soql, re.I | re.S)
        if not m:
            return self.error(h, 400, "MALFORMED_QUERY", "unexpected token in: %s" % soql[:60])
        fields = [f.strip() for f in m.group(1).split(",")]
        obj = m.group(2)
        if obj not in self.objects:
            return self.error(h, 400, "INVALID_TYPE", "sObject type '%s' is not supported." % obj)
        for f in fields:
            if f not in self.fields[obj]:
                return self.error(h, 400, "INVALID_FIELD",
                                  "No such column '%s' on entity '%s'." % (f, obj))
        recs = [r for r in self.objects[obj].values() if deleted or not r.get("IsDeleted")]
        for cond in re.split(r"\s+AND\s+", m.group(3) or "", flags=re.I):
            if not cond:
                continue
            if re.match(r"^Opportunity\.PartnerAccountId\s*!=\s*null$", cond.strip(), re.I) \
                    and obj == "OpportunityFieldHistory":
                opps = self.objects["Opportunity"]
                recs = [r for r in recs if (opps.get(r["OpportunityId"]) or {}).get(
                    "PartnerAccountId")]
                continue
            c = re.match(r"^Opportunity\.CreatedDate\s*>\s*(\S+)$", cond.strip())
            if c and obj == "OpportunityFieldHistory":
                opps = self.objects["Opportunity"]
                t = pl.ms_of_iso(c.group(1)[:19] + "Z")
                recs = [r for r in recs if (opps.get(r["OpportunityId"]) or {}).get("CreatedDate")
                        and pl.ms_of_iso(opps[r["OpportunityId"]]["CreatedDate"][:19] + "Z") > t]
                continue
            c = re.match(r"^(\w+)\s*!=\s*null$", cond.strip(), re.I)
            if c and c.group(1) in self.fields[obj]:
                recs = [r for r in recs if r.get(c.group(1)) is not None]
                continue
            c = re.match(r"^(\w+)\s+IN\s*\((.*)\)$", cond.strip(), re.I)
            if c and c.group(1) in self.fields[obj]:
                vals = re.findall(r"'([^']*)'", c.group(2))
                recs = [r for r in recs if r.get(c.group(1)) in vals]
                continue
            c = re.match(r"^(\w+)\s*(>=|>|=)\s*(\S+)$", cond.strip())
            if not c or c.group(1) not in self.fields[obj]:
                return self.error(h, 400, "MALFORMED_QUERY", "unexpected condition: %s" % cond)
            f, op, v = c.groups()
            if v in ("true", "false"):
                recs = [r for r in recs if r.get(f) == (v == "true")]
                continue
            if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$", v):
                return self.error(h, 400, "MALFORMED_QUERY",
                                  "value of filter criterion for field '%s' must be of type "
                                  "dateTime and should not be enclosed in quotes" % f)
            t = pl.ms_of_iso(v[:19] + "Z")
            key = lambda r: pl.ms_of_iso(r[f][:19] + "Z") if r.get(f) else 0  # noqa: E731
            recs = [r for r in recs if (key(r) > t if op == ">" else key(r) >= t)]
        recs.sort(key=lambda r: (r.get("SystemModstamp") or r.get("CreatedDate") or "", r["Id"]),
                  reverse=bool(re.search(r"\bDESC\b", m.group(4) or "", re.I)))
        size = 2000
        opt = h.headers.get("Sforce-Query-Options") or ""
        bm = re.search(r"batchSize=(\d+)", opt)
        if bm:
            size = max(200, min(2000, int(bm.group(1))))
        rows = []
        for r in recs:
            row = {"attributes": {"type": obj,
                                  "url": "/services/data/v59.0/sobjects/%s/%s" % (obj, r["Id"])}}
            for f in fields:
                if f == "Account.Name":
                    row["Account"] = r.get("Account")
                elif f == "Opportunity.CreatedDate":
                    o = self.objects["Opportunity"].get(r["OpportunityId"]) or {}
                    row["Opportunity"] = {"attributes": {"type": "Opportunity"},
                                          "CreatedDate": o.get("CreatedDate")}
                else:
                    row[f] = r.get(f)
            rows.append(row)
        loc = "01gPEER%06d" % next(self.seq)
        self.locators[loc] = (rows, size)
        self.batch(h, loc, 0)

    def next_batch(self, h, tail):
        loc, _, off = tail.partition("-")
        if loc not in self.locators or not off.isdigit():
            return self.error(h, 400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        self.batch(h, loc, int(off))

    def batch(self, h, loc, off):
        rows, size = self.locators[loc]
        part = rows[off:off + size]
        page = off // size + 1
        peer = self.peer
        for i in range(len(part)):
            if off + i < peer.faults.get("bad_records", 0) and \
                    peer.faults.get("object", "Opportunity") == part[i]["attributes"]["type"]:
                part[i] = dict(part[i], Amount="lots", CreatedDate="yesterday")
        done = off + size >= len(rows)
        body = {"totalSize": len(rows), "done": done, "records": part}
        if not done:
            body["nextRecordsUrl"] = "/services/data/v59.0/query/%s-%d" % (loc, off + size)
        obj = part[0]["attributes"]["type"] if part else None
        if peer.page_fault("html_page", obj, page):
            return h.reply(200, "<html><body>Down for maintenance</body></html>",
                           "text/html;charset=UTF-8")
        if peer.page_fault("wrong_type_page", obj, page):
            body["records"] = {"oops": 1}
        data = json.dumps(body).encode()
        if peer.page_fault("truncate_page", obj, page):
            data = data[: len(data) // 2]
        h.reply(200, data, headers=self.headers())

    def patch(self, h, obj, rid):
        b = h.body_json()
        h.write_body = b if b is not ValueError else h.raw_body.decode("utf-8", "replace")
        rec = self.objects.get(obj, {}).get(rid)
        if rec is None:
            return self.error(h, 404, "NOT_FOUND", "Provided external ID field does not exist "
                              "or is not accessible: %s" % rid)
        if b is ValueError or not isinstance(b, dict):
            return self.error(h, 400, "JSON_PARSER_ERROR", "request body is not a JSON object")
        for k in b:
            if k not in self.fields[obj] or k == "Account.Name":
                return self.error(h, 400, "INVALID_FIELD",
                                  "No such column '%s' on sobject of type %s" % (k, obj))
            if k in READ_ONLY:
                return self.error(h, 400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                                  "Unable to create/update fields: %s." % k)
        with self.peer.lock:
            self.peer.stats["writes"] += 1
        rec.update(b)
        h.reply(204, b"", headers=self.headers())


if __name__ == "__main__":
    args = pl.parse_args("Salesforce")
    pl.serve(Salesforce(args.data), args)
