/* store.c - see store.h. The only includer of <sqlite3.h>. */
#include "store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hash.h"
#include "timeutil.h"

/* ---- schema ----------------------------------------------------------- */

/* Each entry moves the schema from version i to i+1. Never edit a shipped
 * step: add a new one. Steps run inside one transaction each. */
static const char *const migrations[] = {
/* 0 -> 1: the core tables */
"CREATE TABLE partners ("
"  id INTEGER PRIMARY KEY, source TEXT NOT NULL, external_id TEXT NOT NULL,"
"  name TEXT, tier TEXT, region TEXT, country TEXT,"
"  type TEXT CHECK (type = 'distributor' OR type = 'reseller' OR type = 'referral' OR type = 'msp'),"
"  parent_external_id TEXT, currency TEXT, status TEXT, joined_at TEXT, updated_at TEXT,"
"  UNIQUE (source, external_id));"
"CREATE TABLE deals ("
"  id INTEGER PRIMARY KEY, source TEXT NOT NULL, external_id TEXT NOT NULL,"
"  partner_id INTEGER NOT NULL REFERENCES partners(id),"
"  account TEXT, contact_name TEXT, contact_email TEXT,"
"  amount REAL, currency TEXT, product_family TEXT,"
"  stage TEXT NOT NULL CHECK (stage = 'registered' OR stage = 'qualified' OR stage = 'solution' OR stage = 'proposal' OR stage = 'negotiation' OR stage = 'closed_won' OR stage = 'closed_lost'),"
"  status TEXT NOT NULL CHECK (status = 'open' OR status = 'won' OR status = 'lost'),"
"  created_at TEXT NOT NULL, expected_close TEXT, closed_at TEXT,"
"  partner_probability REAL CHECK (partner_probability BETWEEN 0 AND 1),"
"  budget_confirmed INTEGER, competitor TEXT, completeness REAL, notes TEXT, updated_at TEXT,"
"  UNIQUE (source, external_id));"
"CREATE TABLE deal_history ("
"  id INTEGER PRIMARY KEY, deal_id INTEGER NOT NULL REFERENCES deals(id),"
"  observed_at TEXT NOT NULL, stage TEXT, amount REAL, expected_close TEXT, status TEXT,"
"  partner_probability REAL, UNIQUE (deal_id, observed_at));"
"CREATE TABLE commits ("
"  id INTEGER PRIMARY KEY, source TEXT NOT NULL, partner_id INTEGER NOT NULL REFERENCES partners(id),"
"  period TEXT NOT NULL, category TEXT NOT NULL CHECK (category = 'commit' OR category = 'best_case' OR category = 'pipeline'),"
"  amount REAL NOT NULL, currency TEXT, submitted_at TEXT NOT NULL,"
"  UNIQUE (partner_id, period, category, submitted_at));"
"CREATE TABLE quotas ("
"  id INTEGER PRIMARY KEY, source TEXT NOT NULL, partner_id INTEGER NOT NULL REFERENCES partners(id),"
"  period TEXT NOT NULL, amount REAL NOT NULL, currency TEXT, set_at TEXT NOT NULL,"
"  UNIQUE (partner_id, period, set_at));"
"CREATE TABLE transactions ("
"  id INTEGER PRIMARY KEY, source TEXT NOT NULL, external_id TEXT NOT NULL,"
"  partner_id INTEGER NOT NULL REFERENCES partners(id), deal_external_id TEXT, account TEXT,"
"  amount REAL NOT NULL, currency TEXT, booked_at TEXT NOT NULL, UNIQUE (source, external_id));"
"CREATE TABLE payouts ("
"  id INTEGER PRIMARY KEY, source TEXT NOT NULL, external_id TEXT NOT NULL,"
"  partner_id INTEGER NOT NULL REFERENCES partners(id),"
"  kind TEXT NOT NULL CHECK (kind = 'commission' OR kind = 'mdf' OR kind = 'rebate' OR kind = 'spiff'),"
"  amount REAL NOT NULL, currency TEXT, paid_at TEXT NOT NULL, deal_external_id TEXT,"
"  UNIQUE (source, external_id));"
"CREATE TABLE signals ("
"  id INTEGER PRIMARY KEY, source TEXT NOT NULL, entity_type TEXT NOT NULL, entity TEXT NOT NULL,"
"  name TEXT NOT NULL, date TEXT NOT NULL, value REAL NOT NULL,"
"  UNIQUE (entity_type, entity, name, date));"
"CREATE TABLE fx_rates ("
"  currency TEXT NOT NULL, date TEXT NOT NULL, rate REAL NOT NULL CHECK (rate > 0), source TEXT,"
"  PRIMARY KEY (currency, date));"
"CREATE TABLE sync_state ("
"  source TEXT NOT NULL, object TEXT NOT NULL, watermark TEXT, cursor INTEGER NOT NULL DEFAULT 0,"
"  updated_at TEXT, PRIMARY KEY (source, object));"
"CREATE TABLE jobs ("
"  id INTEGER PRIMARY KEY, script TEXT NOT NULL, args TEXT, started_at TEXT NOT NULL,"
"  ended_at TEXT, status TEXT NOT NULL, counts TEXT, error TEXT);"
"CREATE TABLE audit_log ("
"  id INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,"
"  subject TEXT, detail TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
"CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log"
"  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;"
"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log"
"  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;",

/* 1 -> 2: rejected input rows, and the indexes the pipeline queries use */
"CREATE TABLE ingest_rejects ("
"  source TEXT NOT NULL, file TEXT NOT NULL, line INTEGER NOT NULL, reason TEXT NOT NULL,"
"  job_id INTEGER, PRIMARY KEY (source, file, line));"
"CREATE INDEX deals_partner ON deals (partner_id);"
"CREATE INDEX deals_status_close ON deals (status, expected_close);"
"CREATE INDEX commits_partner_period ON commits (partner_id, period, submitted_at);",

/* 2 -> 3: settings (fiscal year start, base currency) */
"CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
"INSERT INTO settings VALUES ('fiscal_start_month', '1'), ('base_currency', 'USD');",

/* 3 -> 4: the model registry, score runs, per-deal scores, the write-back outbox */
"CREATE TABLE models ("
"  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, version TEXT NOT NULL, created_at TEXT NOT NULL,"
"  features TEXT NOT NULL, params TEXT, train_from TEXT, train_to TEXT, eval_to TEXT,"
"  data_hash TEXT NOT NULL, metrics TEXT, blob TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 0);"
"CREATE TABLE score_runs ("
"  id INTEGER PRIMARY KEY, model_id INTEGER REFERENCES models(id), as_of TEXT NOT NULL,"
"  started_at TEXT NOT NULL, finished_at TEXT, deals INTEGER, flagged INTEGER,"
"  rule_errors INTEGER, status TEXT NOT NULL);"
"CREATE TABLE scores ("
"  run_id INTEGER NOT NULL REFERENCES score_runs(id), deal_id INTEGER NOT NULL REFERENCES deals(id),"
"  probability REAL NOT NULL, score REAL NOT NULL, drivers TEXT, flags TEXT,"
"  model_id INTEGER, scored_at TEXT NOT NULL, PRIMARY KEY (run_id, deal_id));"
"CREATE INDEX scores_deal ON scores (deal_id, run_id);"
"CREATE TABLE writeback_outbox ("
"  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, deal_id INTEGER NOT NULL, target TEXT NOT NULL,"
"  payload TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', created_at TEXT NOT NULL,"
"  UNIQUE (run_id, deal_id, target));",
};

/* ---- objects ---------------------------------------------------------- */

static const char *const partner_types[] = { "distributor", "reseller", "referral", "msp", NULL };
static const char *const stages[] = { "registered", "qualified", "solution", "proposal",
                                      "negotiation", "closed_won", "closed_lost", NULL };
static const char *const statuses[] = { "open", "won", "lost", NULL };
static const char *const categories[] = { "commit", "best_case", "pipeline", NULL };
static const char *const payout_kinds[] = { "commission", "mdf", "rebate", "spiff", NULL };

#define F(n, t, r) { n, t, r, NULL }
#define FA(n, t, r, a) { n, t, r, a }
#define NF(a) ((int)(sizeof(a) / sizeof(a[0])))

static const store_field partner_f[] = {
    F("source", FT_TEXT, 1), F("external_id", FT_TEXT, 1), F("name", FT_TEXT, 0),
    F("tier", FT_TEXT, 0), F("region", FT_TEXT, 0), F("country", FT_TEXT, 0),
    FA("type", FT_TEXT, 0, partner_types), F("parent_id", FT_TEXT, 0),
    F("currency", FT_TEXT, 0), F("status", FT_TEXT, 0), F("joined_at", FT_DATE, 0),
    F("updated_at", FT_INSTANT, 0),
};
static const store_field deal_f[] = {
    F("source", FT_TEXT, 1), F("external_id", FT_TEXT, 1), F("partner_id", FT_TEXT, 1),
    F("account", FT_TEXT, 0), F("contact_name", FT_TEXT, 0), F("contact_email", FT_TEXT, 0),
    F("amount", FT_REAL, 0), F("currency", FT_TEXT, 0), F("product_family", FT_TEXT, 0),
    FA("stage", FT_TEXT, 1, stages), FA("status", FT_TEXT, 1, statuses),
    F("created_at", FT_DATE, 1), F("expected_close", FT_DATE, 0), F("closed_at", FT_DATE, 0),
    F("partner_probability", FT_REAL, 0), F("budget_confirmed", FT_INT, 0),
    F("competitor", FT_TEXT, 0), F("completeness", FT_REAL, 0), F("notes", FT_TEXT, 0),
    F("updated_at", FT_INSTANT, 0),
};
static const store_field change_f[] = {
    F("source", FT_TEXT, 1), F("deal_id", FT_TEXT, 1), F("observed_at", FT_INSTANT, 1),
    FA("stage", FT_TEXT, 0, stages), F("amount", FT_REAL, 0), F("expected_close", FT_DATE, 0),
    FA("status", FT_TEXT, 0, statuses), F("partner_probability", FT_REAL, 0),
};
static const store_field commit_f[] = {
    F("source", FT_TEXT, 1), F("partner_id", FT_TEXT, 1), F("period", FT_TEXT, 1),
    FA("category", FT_TEXT, 1, categories), F("amount", FT_REAL, 1), F("currency", FT_TEXT, 0),
    F("submitted_at", FT_INSTANT, 1),
};
static const store_field quota_f[] = {
    F("source", FT_TEXT, 1), F("partner_id", FT_TEXT, 1), F("period", FT_TEXT, 1),
    F("amount", FT_REAL, 1), F("currency", FT_TEXT, 0), F("set_at", FT_INSTANT, 1),
};
static const store_field transaction_f[] = {
    F("source", FT_TEXT, 1), F("external_id", FT_TEXT, 1), F("partner_id", FT_TEXT, 1),
    F("deal_id", FT_TEXT, 0), F("account", FT_TEXT, 0), F("amount", FT_REAL, 1),
    F("currency", FT_TEXT, 0), F("booked_at", FT_DATE, 1),
};
static const store_field payout_f[] = {
    F("source", FT_TEXT, 1), F("external_id", FT_TEXT, 1), F("partner_id", FT_TEXT, 1),
    FA("kind", FT_TEXT, 1, payout_kinds), F("amount", FT_REAL, 1), F("currency", FT_TEXT, 0),
    F("paid_at", FT_DATE, 1), F("deal_id", FT_TEXT, 0),
};
static const store_field signal_f[] = {
    F("source", FT_TEXT, 1), F("entity_type", FT_TEXT, 1), F("entity", FT_TEXT, 1),
    F("name", FT_TEXT, 1), F("date", FT_DATE, 1), F("value", FT_REAL, 1),
};
static const store_field fx_f[] = {
    F("source", FT_TEXT, 1), F("currency", FT_TEXT, 1), F("date", FT_DATE, 1),
    F("rate", FT_REAL, 1),
};

static const store_object objects[] = {
    { "partner", "partners", partner_f, NF(partner_f) },
    { "deal", "deals", deal_f, NF(deal_f) },
    { "deal_change", "deal_history", change_f, NF(change_f) },
    { "commit", "commits", commit_f, NF(commit_f) },
    { "quota", "quotas", quota_f, NF(quota_f) },
    { "transaction", "transactions", transaction_f, NF(transaction_f) },
    { "payout", "payouts", payout_f, NF(payout_f) },
    { "signal", "signals", signal_f, NF(signal_f) },
    { "fx", "fx_rates", fx_f, NF(fx_f) },
};
enum { NOBJ = NF(objects) };

/* How each object is stored. `cols` names the column of each field in
 * field order (NULL: not stored; deal_change's source only resolves the
 * deal). `key` lists the fields of the natural key. A reference field holds
 * the referenced record's external id and is stored as its rowid. */
enum { REF_NONE, REF_PARTNER, REF_DEAL };
typedef struct objspec {
    const char *cols[24];
    int key[4], nkey;
    int ref, ref_kind;            /* field index of the reference, or -1 */
} objspec;

static const objspec specs[NOBJ] = {
    { { "source", "external_id", "name", "tier", "region", "country", "type", "parent_external_id",
        "currency", "status", "joined_at", "updated_at" }, { 0, 1 }, 2, -1, REF_NONE },
    { { "source", "external_id", "partner_id", "account", "contact_name", "contact_email", "amount",
        "currency", "product_family", "stage", "status", "created_at", "expected_close", "closed_at",
        "partner_probability", "budget_confirmed", "competitor", "completeness", "notes",
        "updated_at" }, { 0, 1 }, 2, 2, REF_PARTNER },
    { { NULL, "deal_id", "observed_at", "stage", "amount", "expected_close", "status",
        "partner_probability" }, { 1, 2 }, 2, 1, REF_DEAL },
    { { "source", "partner_id", "period", "category", "amount", "currency", "submitted_at" },
      { 1, 2, 3, 6 }, 4, 1, REF_PARTNER },
    { { "source", "partner_id", "period", "amount", "currency", "set_at" }, { 1, 2, 5 }, 3, 1, REF_PARTNER },
    { { "source", "external_id", "partner_id", "deal_external_id", "account", "amount", "currency",
        "booked_at" }, { 0, 1 }, 2, 2, REF_PARTNER },
    { { "source", "external_id", "partner_id", "kind", "amount", "currency", "paid_at",
        "deal_external_id" }, { 0, 1 }, 2, 2, REF_PARTNER },
    { { "source", "entity_type", "entity", "name", "date", "value" }, { 1, 2, 3, 4 }, 4, -1, REF_NONE },
    { { "source", "currency", "date", "rate" }, { 1, 2 }, 2, -1, REF_NONE },
};

/* Deal fields whose change writes a deal_history row. */
static const char *const tracked[] = { "stage", "amount", "expected_close", "status",
                                       "partner_probability", NULL };

/* ---- the handle ------------------------------------------------------- */

typedef struct objstmts {
    sqlite3_stmt *sel, *ins, *upd, *ins_new;
} objstmts;

/* Partner rowids by (source, external id): deals, commits, quotas and
 * payouts resolve one per row. Cleared when a partner is inserted. */
typedef struct refcache {
    char **key;
    int64_t *id;
    size_t cap, n;
} refcache;

static void cache_clear(refcache *c);

struct store {
    sqlite3 *db;
    char *path;
    objstmts obj[NOBJ];
    sqlite3_stmt *find_partner, *find_deal, *hist_ins, *hist_upd;
    refcache partners;
    char last_deal[256];           /* history rows come grouped by deal */
    int64_t last_deal_id;
};

struct store_stmt {
    sqlite3_stmt *st;
    store *s;
};

static int db_error(store *s, prm_error *err, const char *what)
{
    return prm_error_set(err, "%s: %s", what, sqlite3_errmsg(s->db));
}

int store_exec(store *s, const char *sql, prm_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        prm_error_set(err, "store %s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int store_open_raw(const char *path, store **out, prm_error *err)
{
    store *s = calloc(1, sizeof *s);
    if (!s) return prm_error_set(err, "out of memory");
    s->path = strdup(path);
    /* NOMUTEX: a store handle belongs to one thread (STYLE.md: one state per
     * worker), so the per-call mutexes of serialized mode are pure cost. */
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        prm_error_set(err, "cannot open store %s: %s", path,
                      s->db ? sqlite3_errmsg(s->db) : "out of memory");
        store_close(s);
        return -1;
    }
    sqlite3_busy_timeout(s->db, 10000);
    /* WAL lets readers (the report, the API) run beside a sync; NORMAL
     * synchronous is durable at each checkpoint and safe against a process
     * kill, which is the failure the resume logic is written for. */
    if (store_exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                      "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;"
                      "PRAGMA cache_size=-65536;", err) < 0) {
        store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

int store_version(store *s)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    return v;
}

int store_migrate(store *s, int version, prm_error *err)
{
    int cur = store_version(s);
    if (cur < 0) return db_error(s, err, "reading schema version");
    if (cur > STORE_VERSION)
        return prm_error_set(err, "store %s has schema version %d, newer than this prmcast (%d)",
                             s->path, cur, STORE_VERSION);
    for (int v = cur; v < version && v < STORE_VERSION; v++) {
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d", v + 1);
        if (store_exec(s, "BEGIN IMMEDIATE", err) < 0) return -1;
        if (store_exec(s, migrations[v], err) < 0 || store_exec(s, pragma, err) < 0) {
            store_rollback(s);
            return prm_error_prefix(err, "migration %d -> %d: ", v, v + 1);
        }
        if (store_exec(s, "COMMIT", err) < 0) return -1;
    }
    return 0;
}

int store_open(const char *path, store **out, prm_error *err)
{
    if (store_open_raw(path, out, err) < 0) return -1;
    if (store_migrate(*out, STORE_VERSION, err) < 0) {
        store_close(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

void store_close(store *s)
{
    if (!s) return;
    for (int i = 0; i < NOBJ; i++) {
        sqlite3_finalize(s->obj[i].sel);
        sqlite3_finalize(s->obj[i].ins);
        sqlite3_finalize(s->obj[i].upd);
        sqlite3_finalize(s->obj[i].ins_new);
    }
    sqlite3_finalize(s->find_partner);
    sqlite3_finalize(s->find_deal);
    sqlite3_finalize(s->hist_ins);
    sqlite3_finalize(s->hist_upd);
    cache_clear(&s->partners);
    free(s->partners.key);
    free(s->partners.id);
    sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

const char *store_path(const store *s) { return s->path; }

int store_begin(store *s, prm_error *err) { return store_exec(s, "BEGIN IMMEDIATE", err); }
int store_commit(store *s, prm_error *err) { return store_exec(s, "COMMIT", err); }
void store_rollback(store *s)
{
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- upserts ---------------------------------------------------------- */

const store_object *store_objects(int *n)
{
    *n = NOBJ;
    return objects;
}

const store_object *store_object_find(const char *name)
{
    for (int i = 0; i < NOBJ; i++)
        if (strcmp(objects[i].name, name) == 0) return &objects[i];
    return NULL;
}

int store_field_index(const store_object *o, const char *name)
{
    for (int i = 0; i < o->nfields; i++)
        if (strcmp(o->fields[i].name, name) == 0) return i;
    return -1;
}

static int check_value(const store_field *f, const store_value *v, prm_error *err)
{
    if (v->kind == SV_NULL) {
        if (f->required) return prm_error_set(err, "missing required field '%s'", f->name);
        return 0;
    }
    switch (f->type) {
    case FT_REAL:
        if (v->kind == SV_TEXT) return prm_error_set(err, "field '%s' must be a number", f->name);
        if (v->kind == SV_REAL && !(v->r == v->r && v->r - v->r == 0))
            return prm_error_set(err, "field '%s' is not finite", f->name);
        break;
    case FT_INT:
        if (v->kind != SV_INT) return prm_error_set(err, "field '%s' must be an integer", f->name);
        break;
    case FT_DATE:
    case FT_INSTANT: {
        /* Dates reach the store already normalised (prm.date in the
         * mapping); this guards the format so text order stays time order. */
        int64_t t;
        size_t len = v->kind == SV_TEXT ? strlen(v->s) : 0;
        if (v->kind != SV_TEXT || (len != 10 && len != 20) || date_parse(v->s, DATE_ISO, &t, NULL) < 0)
            return prm_error_set(err, "field '%s' must be an ISO %s (YYYY-MM-DD%s)", f->name,
                                 f->type == FT_DATE ? "date" : "instant",
                                 f->type == FT_DATE ? "" : "THH:MM:SSZ");
        break;
    }
    case FT_TEXT:
        if (v->kind != SV_TEXT) return prm_error_set(err, "field '%s' must be text", f->name);
        if (f->allowed) {
            for (const char *const *a = f->allowed; *a; a++)
                if (strcmp(*a, v->s) == 0) return 0;
            return prm_error_set(err, "field '%s' has unknown value \"%.40s\"", f->name, v->s);
        }
        break;
    }
    return 0;
}

static int bind_value(sqlite3_stmt *st, int idx, const store_value *v)
{
    switch (v->kind) {
    case SV_NULL: return sqlite3_bind_null(st, idx);
    case SV_TEXT: return sqlite3_bind_text(st, idx, v->s, -1, SQLITE_STATIC);
    case SV_REAL: return sqlite3_bind_double(st, idx, v->r);
    case SV_INT: return sqlite3_bind_int64(st, idx, v->i);
    }
    return SQLITE_MISUSE;
}

/* ---- reference cache -------------------------------------------------- */

/* The same hash over a stored key "source\x1fext". */
static uint64_t fnv_key(const char *k)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = k; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

static uint64_t fnv(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *a; a++) h = (h ^ (unsigned char)*a) * 1099511628211ULL;
    h = (h ^ 0x1f) * 1099511628211ULL;
    for (; *b; b++) h = (h ^ (unsigned char)*b) * 1099511628211ULL;
    return h;
}

static void cache_clear(refcache *c)
{
    for (size_t i = 0; i < c->cap; i++) free(c->key[i]);
    if (c->key) memset(c->key, 0, sizeof *c->key * c->cap);
    c->n = 0;
}

/* Slot for (source, ext): its index, with *found telling whether it holds it. */
static size_t cache_slot(const refcache *c, const char *source, const char *ext, int *found)
{
    size_t m = c->cap - 1, i = (size_t)fnv(source, ext) & m;
    size_t sl = strlen(source);
    for (;; i = (i + 1) & m) {
        const char *k = c->key[i];
        if (!k) { *found = 0; return i; }
        if (strncmp(k, source, sl) == 0 && k[sl] == 0x1f && strcmp(k + sl + 1, ext) == 0) {
            *found = 1;
            return i;
        }
    }
}

static void cache_put(refcache *c, const char *source, const char *ext, int64_t id)
{
    if (2 * (c->n + 1) > c->cap) {
        refcache g = { 0 };
        g.cap = c->cap ? c->cap * 2 : 1024;
        g.key = calloc(g.cap, sizeof *g.key);
        g.id = calloc(g.cap, sizeof *g.id);
        if (!g.key || !g.id) { free(g.key); free(g.id); return; }
        for (size_t i = 0; i < c->cap; i++)
            if (c->key[i]) {
                size_t j = (size_t)fnv_key(c->key[i]) & (g.cap - 1);
                while (g.key[j]) j = (j + 1) & (g.cap - 1);
                g.key[j] = c->key[i];
                g.id[j] = c->id[i];
            }
        free(c->key);
        free(c->id);
        g.n = c->n;
        *c = g;
    }
    int found;
    size_t i = cache_slot(c, source, ext, &found);
    if (found) { c->id[i] = id; return; }
    size_t sl = strlen(source), el = strlen(ext);
    char *k = malloc(sl + el + 2);
    if (!k) return;
    memcpy(k, source, sl);
    k[sl] = 0x1f;
    memcpy(k + sl + 1, ext, el + 1);
    c->key[i] = k;
    c->id[i] = id;
    c->n++;
}

/* ---- upserts ---------------------------------------------------------- */

static int prepare_obj(store *s, int k, prm_error *err)
{
    const store_object *o = &objects[k];
    const objspec *sp = &specs[k];
    char sel[2048], ins[2048], upd[2048];
    int a = snprintf(sel, sizeof sel, "SELECT rowid");
    int b = snprintf(ins, sizeof ins, "INSERT INTO %s (", o->table);
    int c = snprintf(upd, sizeof upd, "UPDATE %s SET ", o->table);
    int first = 1, n = 0;
    for (int i = 0; i < o->nfields; i++) {
        if (!sp->cols[i]) continue;
        a += snprintf(sel + a, sizeof sel - (size_t)a, ", %s", sp->cols[i]);
        b += snprintf(ins + b, sizeof ins - (size_t)b, "%s%s", first ? "" : ", ", sp->cols[i]);
        c += snprintf(upd + c, sizeof upd - (size_t)c, "%s%s = ?%d", first ? "" : ", ", sp->cols[i], i + 1);
        first = 0;
        n++;
    }
    a += snprintf(sel + a, sizeof sel - (size_t)a, " FROM %s WHERE ", o->table);
    for (int j = 0; j < sp->nkey; j++)
        a += snprintf(sel + a, sizeof sel - (size_t)a, "%s%s = ?%d", j ? " AND " : "",
                      sp->cols[sp->key[j]], sp->key[j] + 1);
    b += snprintf(ins + b, sizeof ins - (size_t)b, ") VALUES (");
    first = 1;
    for (int i = 0; i < o->nfields; i++) {
        if (!sp->cols[i]) continue;
        b += snprintf(ins + b, sizeof ins - (size_t)b, "%s?%d", first ? "" : ", ", i + 1);
        first = 0;
    }
    snprintf(ins + b, sizeof ins - (size_t)b, ")");
    snprintf(upd + c, sizeof upd - (size_t)c, " WHERE rowid = ?%d", o->nfields + 1);
    (void)n;
    objstmts *os = &s->obj[k];
    if (sqlite3_prepare_v3(s->db, sel, -1, SQLITE_PREPARE_PERSISTENT, &os->sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->db, ins, -1, SQLITE_PREPARE_PERSISTENT, &os->ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->db, upd, -1, SQLITE_PREPARE_PERSISTENT, &os->upd, NULL) != SQLITE_OK)
        return db_error(s, err, "preparing upsert");
    return 0;
}

static int prep(store *s, sqlite3_stmt **st, const char *sql, prm_error *err)
{
    if (!*st && sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
        return db_error(s, err, "preparing statement");
    return 0;
}

/* Resolves (source, external id) of a partner or deal to its rowid; 0 when
 * there is none. */
static int resolve(store *s, int kind, const char *source, const char *ext, int64_t *id, prm_error *err)
{
    sqlite3_stmt *st;
    if (kind == REF_PARTNER) {
        if (s->partners.cap) {
            int found;
            size_t i = cache_slot(&s->partners, source, ext, &found);
            if (found) { *id = s->partners.id[i]; return 0; }
        }
        if (prep(s, &s->find_partner, "SELECT id FROM partners WHERE source = ?1 AND external_id = ?2", err) < 0)
            return -1;
        st = s->find_partner;
    } else {
        size_t sl = strlen(source);
        if (s->last_deal_id && strncmp(s->last_deal, source, sl) == 0 && s->last_deal[sl] == 0x1f &&
            strcmp(s->last_deal + sl + 1, ext) == 0) {
            *id = s->last_deal_id;
            return 0;
        }
        if (prep(s, &s->find_deal, "SELECT id FROM deals WHERE source = ?1 AND external_id = ?2", err) < 0)
            return -1;
        st = s->find_deal;
    }
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ext, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_error(s, err, "resolving a reference");
    if (*id && kind == REF_PARTNER) cache_put(&s->partners, source, ext, *id);
    size_t sl = strlen(source), el = strlen(ext);
    if (*id && kind == REF_DEAL && sl + el + 2 <= sizeof s->last_deal) {
        memcpy(s->last_deal, source, sl);
        s->last_deal[sl] = 0x1f;
        memcpy(s->last_deal + sl + 1, ext, el + 1);
        s->last_deal_id = *id;
    }
    return 0;
}

static int same_value(sqlite3_stmt *st, int col, const store_value *v)
{
    int t = sqlite3_column_type(st, col);
    switch (v->kind) {
    case SV_NULL: return t == SQLITE_NULL;
    case SV_INT: return t == SQLITE_INTEGER && sqlite3_column_int64(st, col) == v->i;
    case SV_REAL: return t == SQLITE_FLOAT && sqlite3_column_double(st, col) == v->r;
    case SV_TEXT:
        return t == SQLITE_TEXT && strcmp((const char *)sqlite3_column_text(st, col), v->s) == 0;
    }
    return 0;
}

/* One deal_history row for the deal's state at its updated_at (or
 * created_at): inserted, or updated when a row at that instant exists. */
static int write_history(store *s, int64_t deal, const store_object *o, const store_value *v,
                         prm_error *err)
{
    if (prep(s, &s->hist_ins, "INSERT OR IGNORE INTO deal_history (deal_id, observed_at, stage,"
                              " amount, expected_close, status, partner_probability)"
                              " VALUES (?1,?2,?3,?4,?5,?6,?7)", err) < 0 ||
        prep(s, &s->hist_upd, "UPDATE deal_history SET stage = ?3, amount = ?4, expected_close = ?5,"
                              " status = ?6, partner_probability = ?7"
                              " WHERE deal_id = ?1 AND observed_at = ?2", err) < 0)
        return -1;
    int at = store_field_index(o, "updated_at");
    if (v[at].kind == SV_NULL) at = store_field_index(o, "created_at");
    const char *f[] = { "stage", "amount", "expected_close", "status", "partner_probability" };
    for (int pass = 0; pass < 2; pass++) {
        sqlite3_stmt *st = pass ? s->hist_upd : s->hist_ins;
        sqlite3_bind_int64(st, 1, deal);
        bind_value(st, 2, &v[at]);
        for (int i = 0; i < 5; i++) bind_value(st, i + 3, &v[store_field_index(o, f[i])]);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) return db_error(s, err, "writing deal history");
        if (pass == 0 && sqlite3_changes(s->db) > 0) break;
    }
    return 0;
}

int store_upsert(store *s, const store_object *o, const store_value *v, int *written,
                 prm_error *err)
{
    int k = (int)(o - objects);
    const objspec *sp = &specs[k];
    for (int i = 0; i < o->nfields; i++)
        if (check_value(&o->fields[i], &v[i], err) < 0) return -1;
    if (!s->obj[k].sel && prepare_obj(s, k, err) < 0) return -1;

    /* Values as stored: references resolved, FT_REAL given as an integer
     * stored as a real (so "100" and 100.0 are not a change). */
    store_value b[32];
    for (int i = 0; i < o->nfields; i++) {
        b[i] = v[i];
        if (o->fields[i].type == FT_REAL && b[i].kind == SV_INT) {
            b[i].kind = SV_REAL;
            b[i].r = (double)b[i].i;
        }
    }
    if (sp->ref >= 0) {
        int64_t id;
        if (resolve(s, sp->ref_kind, v[0].s, v[sp->ref].s, &id, err) < 0) return -1;
        if (!id)
            return prm_error_set(err, "unknown %s '%s'", sp->ref_kind == REF_PARTNER ? "partner" : "deal",
                                 v[sp->ref].s);
        b[sp->ref].kind = SV_INT;
        b[sp->ref].i = id;
    }

    objstmts *os = &s->obj[k];
    if (k == 2) {
        /* History rows are almost always new: one INSERT OR IGNORE (no
         * statement journal, one index probe) settles them, and only a row
         * already there at that instant takes the compare-and-update path.
         * IGNORE is safe here: deal_history has no CHECK or NOT NULL
         * constraint that check_value has not already enforced. */
        if (!os->ins_new) {
            const char *sql = sqlite3_sql(os->ins);
            char buf[2048];
            snprintf(buf, sizeof buf, "INSERT OR IGNORE%s", sql + strlen("INSERT"));
            if (sqlite3_prepare_v3(s->db, buf, -1, SQLITE_PREPARE_PERSISTENT, &os->ins_new, NULL) != SQLITE_OK)
                return db_error(s, err, "preparing history insert");
        }
        for (int i = 0; i < o->nfields; i++)
            if (sp->cols[i]) bind_value(os->ins_new, i + 1, &b[i]);
        int rc0 = sqlite3_step(os->ins_new);
        sqlite3_reset(os->ins_new);
        if (rc0 != SQLITE_DONE) return prm_error_set(err, "%s", sqlite3_errmsg(s->db));
        if (sqlite3_changes(s->db) > 0) {
            if (written) *written = 1;
            return 0;
        }
    }
    for (int j = 0; j < sp->nkey; j++) bind_value(os->sel, sp->key[j] + 1, &b[sp->key[j]]);
    int rc = sqlite3_step(os->sel);
    int64_t rowid = 0;
    int same = 1, track = 0;
    if (rc == SQLITE_ROW) {
        rowid = sqlite3_column_int64(os->sel, 0);
        for (int i = 0, col = 1; i < o->nfields; i++) {
            if (!sp->cols[i]) continue;
            if (!same_value(os->sel, col++, &b[i])) {
                same = 0;
                if (k == 1)
                    for (const char *const *t = tracked; *t; t++)
                        track |= strcmp(*t, o->fields[i].name) == 0;
            }
        }
    }
    sqlite3_reset(os->sel);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_error(s, err, "upsert lookup");
    if (rowid && same) {
        if (written) *written = 0;
        return 0;
    }
    sqlite3_stmt *st = rowid ? os->upd : os->ins;
    for (int i = 0; i < o->nfields; i++)
        if (sp->cols[i]) bind_value(st, i + 1, &b[i]);
    if (rowid) sqlite3_bind_int64(st, o->nfields + 1, rowid);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) return prm_error_set(err, "%s", sqlite3_errmsg(s->db));
    if (!rowid) rowid = sqlite3_last_insert_rowid(s->db);
    /* History: a new deal's first state, and every change of a tracked value. */
    if (k == 1 && (st == os->ins || track) && write_history(s, rowid, o, b, err) < 0) return -1;
    if (written) *written = 1;
    return 0;
}

/* ---- sync state, rejects, jobs ---------------------------------------- */

static void now_iso(char out[21])
{
    instant_iso((int64_t)time(NULL), out);
}

int store_run(store *s, const char *sql, int n, const store_value *v, int64_t *rowid,
              prm_error *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_error(s, err, "preparing statement");
    for (int i = 0; i < n; i++) bind_value(st, i + 1, &v[i]);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return db_error(s, err, "store");
    if (rowid) *rowid = sqlite3_last_insert_rowid(s->db);
    return 0;
}


static store_value T(const char *s) { store_value v = { s ? SV_TEXT : SV_NULL, s, 0, 0 }; return v; }
static store_value I(int64_t i) { store_value v = { SV_INT, NULL, 0, i }; return v; }

int store_sync_get(store *s, const char *source, const char *object, char *watermark,
                   size_t wlen, int64_t *cursor, prm_error *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT watermark, cursor FROM sync_state"
                           " WHERE source = ?1 AND object = ?2", -1, &st, NULL) != SQLITE_OK)
        return db_error(s, err, "reading sync state");
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, object, -1, SQLITE_STATIC);
    if (watermark && wlen) watermark[0] = 0;
    *cursor = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *w = sqlite3_column_text(st, 0);
        if (w && watermark && wlen) snprintf(watermark, wlen, "%s", (const char *)w);
        *cursor = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return 0;
}

int store_sync_set(store *s, const char *source, const char *object, const char *watermark,
                   int64_t cursor, prm_error *err)
{
    char now[21];
    now_iso(now);
    store_value v[] = { T(source), T(object), T(watermark), I(cursor), T(now) };
    return store_run(s, "INSERT INTO sync_state (source, object, watermark, cursor, updated_at)"
                  " VALUES (?1,?2,?3,?4,?5) ON CONFLICT (source, object) DO UPDATE SET"
                  " watermark=excluded.watermark, cursor=excluded.cursor,"
                  " updated_at=excluded.updated_at", 5, v, NULL, err);
}

int store_reject(store *s, const char *source, const char *file, int64_t line,
                 const char *reason, int64_t job, prm_error *err)
{
    store_value v[] = { T(source), T(file), I(line), T(reason), job ? I(job) : T(NULL) };
    return store_run(s, "INSERT INTO ingest_rejects (source, file, line, reason, job_id)"
                  " VALUES (?1,?2,?3,?4,?5) ON CONFLICT (source, file, line) DO UPDATE SET"
                  " reason=excluded.reason, job_id=excluded.job_id", 5, v, NULL, err);
}

int store_job_start(store *s, const char *script, const char *args, int64_t *id, prm_error *err)
{
    char now[21];
    now_iso(now);
    store_value v[] = { T(script), T(args), T(now) };
    return store_run(s, "INSERT INTO jobs (script, args, started_at, status) VALUES (?1,?2,?3,'running')",
                     3, v, id, err);
}

int store_job_end(store *s, int64_t id, const char *status, const char *counts_json,
                  const char *error, prm_error *err)
{
    char now[21];
    now_iso(now);
    store_value v[] = { T(now), T(status), T(counts_json), T(error), I(id) };
    return store_run(s, "UPDATE jobs SET ended_at=?1, status=?2, counts=?3, error=?4 WHERE id=?5",
                     5, v, NULL, err);
}

/* ---- audit chain ------------------------------------------------------ */

/* The hash covers every column but itself, each length-prefixed so that no
 * two different rows can serialise to the same bytes. */
static void row_hash(int64_t id, const char *at, const char *actor, const char *action,
                     const char *subject, const char *detail, const char *prev, char out[65])
{
    const char *parts[] = { at, actor, action, subject, detail, prev };
    hash_sha256 *h = hash_sha256_new();
    char buf[48];
    int len = snprintf(buf, sizeof buf, "%lld;", (long long)id);
    hash_sha256_update(h, buf, (size_t)len);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        const char *p = parts[i] ? parts[i] : "";
        len = snprintf(buf, sizeof buf, "%zu%c", strlen(p), parts[i] ? ':' : '~');
        hash_sha256_update(h, buf, (size_t)len);
        hash_sha256_update(h, p, strlen(p));
    }
    hash_sha256_hex(h, out);
}

static const char genesis[] = "0000000000000000000000000000000000000000000000000000000000000000";

int store_audit(store *s, const char *actor, const char *action, const char *subject,
                const char *detail_json, prm_error *err)
{
    /* The read of the head and the append must be one transaction, or two
     * writers could both chain onto the same head. A SAVEPOINT nests inside
     * a caller's transaction and starts one otherwise. */
    if (store_exec(s, "SAVEPOINT audit", err) < 0) return -1;
    sqlite3_stmt *st;
    char prev[65];
    int64_t id = 1;
    snprintf(prev, sizeof prev, "%s", genesis);
    if (sqlite3_prepare_v2(s->db, "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        store_exec(s, "ROLLBACK TO audit; RELEASE audit", NULL);
        return db_error(s, err, "audit");
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        id = sqlite3_column_int64(st, 0) + 1;
        snprintf(prev, sizeof prev, "%s", (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    char now[21], hash[65];
    if (!actor) actor = getenv("PRMCAST_ACTOR");
    if (!actor) actor = getenv("USER");
    if (!actor) actor = "prmcast";
    now_iso(now);
    row_hash(id, now, actor, action, subject, detail_json, prev, hash);
    store_value v[] = { I(id), T(now), T(actor), T(action), T(subject), T(detail_json),
                        T(prev), T(hash) };
    if (store_run(s, "INSERT INTO audit_log (id, at, actor, action, subject, detail, prev_hash, hash)"
               " VALUES (?1,?2,?3,?4,?5,?6,?7,?8)", 8, v, NULL, err) < 0) {
        store_exec(s, "ROLLBACK TO audit; RELEASE audit", NULL);
        return -1;
    }
    return store_exec(s, "RELEASE audit", err);
}

int store_audit_verify(store *s, int64_t *rows, char head[65], prm_error *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT id, at, actor, action, subject, detail, prev_hash, hash"
                           " FROM audit_log ORDER BY id", -1, &st, NULL) != SQLITE_OK)
        return db_error(s, err, "audit verify");
    char prev[65];
    snprintf(prev, sizeof prev, "%s", genesis);
    int64_t n = 0, expect = 1;
    int bad = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *c[7];
        for (int i = 0; i < 7; i++) c[i] = (const char *)sqlite3_column_text(st, i + 1);
        char h[65];
        row_hash(id, c[0], c[1], c[2], c[3], c[4], c[5] ? c[5] : "", h);
        n++;
        if (id != expect) {
            bad = prm_error_set(err, "audit row %lld missing (next row is %lld)",
                                (long long)expect, (long long)id);
            break;
        }
        if (!c[5] || strcmp(c[5], prev) != 0) {
            bad = prm_error_set(err, "audit row %lld: prev_hash does not match row %lld",
                                (long long)id, (long long)id - 1);
            break;
        }
        if (!c[6] || strcmp(c[6], h) != 0) {
            bad = prm_error_set(err, "audit row %lld: content does not match its hash", (long long)id);
            break;
        }
        snprintf(prev, sizeof prev, "%s", h);
        expect = id + 1;
    }
    sqlite3_finalize(st);
    *rows = n;
    if (head) snprintf(head, 65, "%s", prev);
    return bad ? 1 : 0;
}

/* ---- statements for scripts ------------------------------------------- */

int store_prepare(store *s, const char *sql, store_stmt **out, prm_error *err)
{
    sqlite3_stmt *st;
    const char *tail = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, &tail) != SQLITE_OK)
        return db_error(s, err, "SQL");
    if (!st) return prm_error_set(err, "SQL: empty statement");
    while (tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == ';')) tail++;
    if (tail && *tail) {
        sqlite3_finalize(st);
        return prm_error_set(err, "SQL: one statement at a time (extra text: \"%.40s\")", tail);
    }
    store_stmt *h = malloc(sizeof *h);
    if (!h) {
        sqlite3_finalize(st);
        return prm_error_set(err, "out of memory");
    }
    h->st = st;
    h->s = s;
    *out = h;
    return 0;
}

int store_bind(store_stmt *h, int idx, const store_value *v, prm_error *err)
{
    if (bind_value(h->st, idx, v) != SQLITE_OK)
        return prm_error_set(err, "bind parameter %d: %s", idx, sqlite3_errmsg(h->s->db));
    return 0;
}

int store_step(store_stmt *h, prm_error *err)
{
    int rc = sqlite3_step(h->st);
    if (rc == SQLITE_ROW) return 1;
    if (rc == SQLITE_DONE) return 0;
    return db_error(h->s, err, "SQL");
}

int store_reset(store_stmt *h)
{
    sqlite3_reset(h->st);
    return sqlite3_clear_bindings(h->st) == SQLITE_OK ? 0 : -1;
}

int store_ncols(store_stmt *h) { return sqlite3_column_count(h->st); }
int store_nparams(store_stmt *h) { return sqlite3_bind_parameter_count(h->st); }
const char *store_colname(store_stmt *h, int i) { return sqlite3_column_name(h->st, i); }

store_value store_column(store_stmt *h, int i)
{
    store_value v = { SV_NULL, NULL, 0, 0 };
    switch (sqlite3_column_type(h->st, i)) {
    case SQLITE_INTEGER: v.kind = SV_INT; v.i = sqlite3_column_int64(h->st, i); break;
    case SQLITE_FLOAT: v.kind = SV_REAL; v.r = sqlite3_column_double(h->st, i); break;
    case SQLITE_TEXT:
    case SQLITE_BLOB: v.kind = SV_TEXT; v.s = (const char *)sqlite3_column_text(h->st, i); break;
    default: break;
    }
    return v;
}

void store_finalize(store_stmt *h)
{
    if (!h) return;
    sqlite3_finalize(h->st);
    free(h);
}
