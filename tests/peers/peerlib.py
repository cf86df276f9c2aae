"""peerlib - what every PRM test peer shares (Python 3 stdlib only).

A peer is a small HTTP server on 127.0.0.1 (port 0: the kernel picks a free
one, printed as "PORT <n>" on start and written to --port-file) that serves
one PRM's API from the sample generator's CSV export (`prmcast sample`).

Faults are switched by the PEER_FAULTS environment variable (JSON) at start,
or at run time by POST /__peer/faults with the same JSON (replacing the set):
  {"throttle": N, "retry_after": "1"}    the next N API requests get the
                                          PRM's throttle response
  {"error5xx": N, "status": 503}          the next N API requests fail 5xx
  {"slow_ms": M}                          every API request waits M ms
  {"truncate_page": P, "object": "deals"} page P of that list is cut in half
  {"html_page": P, "object": "deals"}     page P is an HTML maintenance page, 200
  {"bad_records": N, "object": "deals"}   the first N records of the list get
                                          a mistyped field
  {"huge_updated": N, "object": "deals"}  (PartnerStack) the first N records'
                                          updated_at is 1e300, a number but no instant
  {"wrong_type_page": P, "object": ...}   page P's item list is an object
  {"repeated_items_page": P, ...}         (PartnerStack) page P has "items" twice:
                                          an empty list, then the records
Page numbers count from 1 by position in the list (item offset / limit), so a
fault stays on the same page across reruns until it is switched off.

POST /__peer/update {"object": "deals", "key": K, "set": {...}} changes a
record (and its update time: "updated_at" in epoch ms, default now).
POST /__peer/delete {"object": ..., "key": K[, "deleted_at": ms]} removes a record (peers that
implement it). GET /__peer/records?object=O returns {vendor: [...], records: {key: record}};
GET /__peer/stats returns counters; GET /__peer/feeds/<file>.csv serves that
file of the export (a document feed such as fx_rates.csv), without auth. Every request is appended to --log as
one JSON line: method, path, query, auth ("ok"/"bad"/"none"), status, and
for writes the parsed body and the Idempotency-Key. The log never holds the
credentials themselves.
"""
import argparse
import csv
import datetime as dt
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def ms_of_iso(s):
    """'2024-07-21T15:10:18Z' or '2024-07-18' -> epoch ms."""
    if s is None:
        return None
    if len(s) == 10:
        d = dt.datetime.strptime(s, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    else:
        d = dt.datetime.strptime(s.rstrip("Z"), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    return int(d.timestamp() * 1000)


def iso_of_ms(ms, zone=True):
    d = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if zone else "")


def us_to_iso(s):
    """'09/15/2024' -> '2024-09-15'."""
    if s is None:
        return None
    m, d, y = s.split("/")
    return "%04d-%02d-%02d" % (int(y), int(m), int(d))


def cents(s):
    return None if s is None else int(round(float(s) * 100))


class Peer:
    """State shared by the handler threads: data, faults, the request log."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.faults = json.loads(os.environ.get("PEER_FAULTS") or "{}")
        self.stats = {"requests": 0, "throttled": 0, "errors": 0, "writes": 0}
        self.log = open(args.log, "a", encoding="utf-8") if args.log else None

    def record(self, entry):
        if self.log:
            with self.lock:
                self.log.write(json.dumps(entry, sort_keys=True) + "\n")
                self.log.flush()

    def take(self, name):
        """Consumes one unit of a counted fault; True when it fired."""
        with self.lock:
            n = self.faults.get(name, 0)
            if n > 0:
                self.faults[name] = n - 1
                return True
        return False

    def page_fault(self, name, obj, page):
        f = self.faults
        return f.get(name) == page and f.get("object", obj) == obj


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    peer = None          # set by serve()
    api = None           # the PRM's routes: an object with .route(handler)

    def setup(self):
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle and
        # delayed ACKs add ~40 ms to every response on loopback.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *a):   # quiet: the JSON log is the record
        pass

    def reply(self, status, body, ctype="application/json", headers=None):
        data = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.status_sent = status

    def body_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        self.raw_body = raw
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return ValueError

    def handle_any(self, method):
        self.method = method
        u = urllib.parse.urlsplit(self.path)
        self.route_path = u.path
        self.query = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        self.status_sent = 0
        self.auth_state = "none"
        self.write_body = None
        peer = self.peer
        if u.path.startswith("/__peer/"):
            return self.control(u.path)
        with peer.lock:
            peer.stats["requests"] += 1
        slow = peer.faults.get("slow_ms")
        if slow:
            time.sleep(slow / 1000)
        try:
            if peer.take("throttle"):
                with peer.lock:
                    peer.stats["throttled"] += 1
                self.api.throttle(self, str(peer.faults.get("retry_after", "1")))
            elif peer.take("error5xx"):
                with peer.lock:
                    peer.stats["errors"] += 1
                self.reply(int(peer.faults.get("status", 503)),
                           "<html><body>Service Unavailable</body></html>", "text/html")
            else:
                self.api.route(self)
        finally:
            entry = {"method": method, "path": u.path, "query": self.query,
                     "auth": self.auth_state, "status": self.status_sent}
            if self.write_body is not None:
                entry["body"] = self.write_body
                entry["idempotency_key"] = self.headers.get("Idempotency-Key")
            peer.record(entry)

    def control(self, path):
        peer = self.peer
        if path == "/__peer/faults" and self.method == "POST":
            with peer.lock:
                peer.faults = self.body_json() or {}
            return self.reply(200, {"ok": True})
        if path == "/__peer/update" and self.method == "POST":
            b = self.body_json()
            ok = self.api.update(b["object"], b["key"], b.get("set", {}),
                                 b.get("updated_at") or int(time.time() * 1000))
            return self.reply(200 if ok else 404, {"ok": ok})
        if path.startswith("/__peer/feeds/") and self.method == "GET":
            # A document published beside the API (an FX-rate feed): the
            # export's file of that name, as text/csv.
            name = os.path.basename(path)
            f = os.path.join(peer.args.data, name)
            if not name.endswith(".csv") or not os.path.exists(f):
                return self.reply(404, {"message": "no such feed"})
            with open(f, "rb") as fh:
                return self.reply(200, fh.read(), "text/csv")
        if path == "/__peer/linked" and self.method == "GET":
            # A generic list paged by Link headers (GitHub style), for the
            # Link paginator: ?page=N&per_page=M over `total` items.
            page = int(self.query.get("page", "1"))
            per = int(self.query.get("per_page", "10"))
            total = int(self.query.get("total", "25"))
            items = [{"key": "L%03d" % i} for i in range((page - 1) * per,
                                                        min(page * per, total))]
            host = "http://%s:%d" % self.server.server_address[:2]
            links = []
            if page * per < total:
                links.append('<%s/__peer/linked?page=%d&per_page=%d&total=%d>; rel="next"'
                             % (host, page + 1, per, total))
            links.append('<%s/__peer/linked?page=1&per_page=%d&total=%d>; rel="first"'
                         % (host, per, total))
            return self.reply(200, items, headers={"Link": ", ".join(links)})
        if path == "/__peer/delete" and self.method == "POST":
            b = self.body_json()
            ok = self.api.delete(b["object"], b["key"],
                                 b.get("deleted_at") or int(time.time() * 1000))
            return self.reply(200 if ok else 404, {"ok": ok})
        if path == "/__peer/records" and self.method == "GET":
            # The peer's own records of an object, and the vendor-owned field
            # names a write-back may set: what a test checks a write-back
            # against ("a partner-entered field is never touched").
            vendor, recs = self.api.records(self.query.get("object", ""))
            return self.reply(200, {"vendor": sorted(vendor), "records": recs})
        if path == "/__peer/stats":
            return self.reply(200, peer.stats)
        return self.reply(404, {"message": "no such control"})

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")


def parse_args(name):
    ap = argparse.ArgumentParser(description="%s test peer" % name)
    ap.add_argument("--data", required=True, help="prmcast sample --out DIR")
    ap.add_argument("--log", help="request log (JSON lines)")
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--port", type=int, default=0)
    return ap.parse_args()


def serve(api, args):
    Handler.peer = Peer(args)
    Handler.api = api
    api.peer = Handler.peer
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    print("PORT %d" % port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)
