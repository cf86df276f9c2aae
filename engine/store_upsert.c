/* store_upsert.c - the objects the store keeps and store_upsert: validate
 * a record against its field list, resolve references, look it up by its
 * natural key, compare, then insert, update or write nothing; history rows
 * for deals (deal_history) and attribute history (attr_history) for deal
 * and partner attributes, written only on change. */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "currency.h"
#include "domain.h"
#include "textbuf.h"
#include "timeutil.h"

/* ---- objects ---------------------------------------------------------- */

#define partner_types domain_partner_types
#define stages domain_stage_names
#define statuses domain_status_names
#define categories domain_commit_categories
#define payout_kinds domain_payout_kinds

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
    F("changed", FT_TEXT, 0),
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
    F("paid_at", FT_DATE, 0), F("deal_id", FT_TEXT, 0), F("kind_raw", FT_TEXT, 0),
    F("status", FT_TEXT, 0),
};
static const store_field signal_f[] = {
    F("source", FT_TEXT, 1), F("entity_type", FT_TEXT, 1), F("entity", FT_TEXT, 1),
    F("name", FT_TEXT, 1), F("date", FT_DATE, 1), F("value", FT_REAL, 1),
};
static const store_field fx_f[] = {
    F("source", FT_TEXT, 1), F("currency", FT_TEXT, 1), F("date", FT_DATE, 1),
    F("rate", FT_REAL, 1),
};

/* A tenant's own deal field (issue 10 item 6: PartnerStack fields[],
 * Impartner ...__cf, Salesforce ...__c), declared by the connector: kept in
 * attr_history as field "x.<name>", a row only when the value changes,
 * observed at the deal's updated_at, so it can be read as of any date. Its
 * declared `type` (category, number, yesno, date) is kept in settings as
 * "field_type.x.<name>" (world.c reads it to make the field a feature). */
static const store_field dealfield_f[] = {
    F("source", FT_TEXT, 1), F("deal_id", FT_TEXT, 1), F("field", FT_TEXT, 1),
    F("value", FT_TEXT, 0), F("observed_at", FT_INSTANT, 1), F("type", FT_TEXT, 0),
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
    { "deal_field", "attr_history", dealfield_f, NF(dealfield_f) },
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
        "partner_probability", NULL }, { 1, 2 }, 2, 1, REF_DEAL },
    { { "source", "partner_id", "period", "category", "amount", "currency", "submitted_at" },
      { 1, 2, 3, 6 }, 4, 1, REF_PARTNER },
    { { "source", "partner_id", "period", "amount", "currency", "set_at" }, { 1, 2, 5 }, 3, 1, REF_PARTNER },
    { { "source", "external_id", "partner_id", "deal_external_id", "account", "amount", "currency",
        "booked_at" }, { 0, 1 }, 2, 2, REF_PARTNER },
    { { "source", "external_id", "partner_id", "kind", "amount", "currency", "paid_at",
        "deal_external_id", "kind_raw", "status" }, { 0, 1 }, 2, 2, REF_PARTNER },
    { { "source", "entity_type", "entity", "name", "date", "value" }, { 1, 2, 3, 4 }, 4, -1, REF_NONE },
    { { "source", "currency", "date", "rate" }, { 1, 2 }, 2, -1, REF_NONE },
    { { NULL }, { 1, 2, 4 }, 3, 1, REF_DEAL },   /* written by upsert_deal_field */
};

/* Deal fields whose change writes a deal_history row. */
/* Attributes whose changes are kept in attr_history, per object index
 * (0 partner, 1 deal): what features, rules, roll-up and segments read
 * besides the pipeline fields above. */
static const char *const attr_tracked[2][8] = {
    { "tier", "type", "region", "parent_id", "status", "currency", NULL },
    { "product_family", "currency", "budget_confirmed", "competitor", "completeness", NULL },
};

static const char *const tracked[] = { "stage", "amount", "expected_close", "status",
                                       "partner_probability", NULL };


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

struct upsert_state {
    objstmts obj[NOBJ];
    sqlite3_stmt *find_partner, *find_deal, *hist_put, *attr_ins, *attr_any;
    sqlite3_stmt *hist_before, *hist_after;   /* a partial change's other fields */
    sqlite3_stmt *xfield_at;                  /* a tenant field's value as of an instant */
    refcache partners;
    char last_deal[256];           /* history rows come grouped by deal */
    int64_t last_deal_id;
    char xtypes[1024];             /* "\nname=type" already saved by this handle */
    int bulk;                      /* a first load: rows are tried as new first */
    int64_t fresh_deal;            /* the deal the last deal upsert inserted, 0: none */
    struct histbuf *hb;            /* deal_history rows waiting (store_history_batch) */
};

static void histbuf_free(struct histbuf *h);

static void cache_clear(refcache *c);

void store_upsert_free(struct upsert_state *u)
{
    if (!u) return;
    for (int i = 0; i < NOBJ; i++) {
        sqlite3_finalize(u->obj[i].sel);
        sqlite3_finalize(u->obj[i].ins);
        sqlite3_finalize(u->obj[i].upd);
        sqlite3_finalize(u->obj[i].ins_new);
    }
    sqlite3_finalize(u->find_partner);
    sqlite3_finalize(u->find_deal);
    sqlite3_finalize(u->hist_put);
    sqlite3_finalize(u->attr_ins);
    sqlite3_finalize(u->attr_any);
    sqlite3_finalize(u->hist_before);
    sqlite3_finalize(u->hist_after);
    sqlite3_finalize(u->xfield_at);
    histbuf_free(u->hb);
    cache_clear(&u->partners);
    free(u->partners.key);
    free(u->partners.id);
    free(u);
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

/* made: the value is date_iso / instant_iso output (store_upsert_iso). */
static int check_value(const store_field *f, const store_value *v, int made, prm_error *err)
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
        /* Text made by date_iso / instant_iso has a valid month, day and
         * time by construction; what parse_iso would still refuse is a
         * year outside 1900..2200 (an offset can carry an instant there). */
        if (made && (len == 10 || len == 20) && memcmp(v->s, "1900", 4) >= 0 &&
            memcmp(v->s, "2200", 4) <= 0)
            break;
        if (v->kind != SV_TEXT || (len != 10 && len != 20) || date_parse(v->s, DATE_ISO, &t, NULL) < 0)
            return prm_error_set(err, "field '%s' must be an ISO %s (YYYY-MM-DD%s)", f->name,
                                 f->type == FT_DATE ? "date" : "instant",
                                 f->type == FT_DATE ? "" : "THH:MM:SSZ");
        break;
    }
    case FT_TEXT:
        if (v->kind != SV_TEXT) return prm_error_set(err, "field '%s' must be text", f->name);
        if (f->name[0] == 'c' && strcmp(f->name, "currency") == 0 && !currency_valid(v->s))
            return prm_error_set(err, "field '%s' is not an ISO 4217 currency code: \"%.40s\"", f->name, v->s);
        if (f->allowed) {
            for (const char *const *a = f->allowed; *a; a++)
                if (strcmp(*a, v->s) == 0) return 0;
            return prm_error_set(err, "field '%s' has unknown value \"%.40s\"", f->name, v->s);
        }
        break;
    }
    return 0;
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
    objstmts *os = &s->up->obj[k];
    if (sqlite3_prepare_v3(s->db, sel, -1, SQLITE_PREPARE_PERSISTENT, &os->sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->db, ins, -1, SQLITE_PREPARE_PERSISTENT, &os->ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->db, upd, -1, SQLITE_PREPARE_PERSISTENT, &os->upd, NULL) != SQLITE_OK)
        return store_db_error(s, err, "preparing upsert");
    return 0;
}


/* Resolves (source, external id) of a partner or deal to its rowid; 0 when
 * there is none. */
static int resolve(store *s, int kind, const char *source, const char *ext, int64_t *id, prm_error *err)
{
    sqlite3_stmt *st;
    if (kind == REF_PARTNER) {
        if (s->up->partners.cap) {
            int found;
            size_t i = cache_slot(&s->up->partners, source, ext, &found);
            if (found) { *id = s->up->partners.id[i]; return 0; }
        }
        if (store_prep(s, &s->up->find_partner, "SELECT id FROM partners WHERE source = ?1 AND external_id = ?2", err) < 0)
            return -1;
        st = s->up->find_partner;
    } else {
        size_t sl = strlen(source);
        if (s->up->last_deal_id && strncmp(s->up->last_deal, source, sl) == 0 && s->up->last_deal[sl] == 0x1f &&
            strcmp(s->up->last_deal + sl + 1, ext) == 0) {
            *id = s->up->last_deal_id;
            return 0;
        }
        if (store_prep(s, &s->up->find_deal, "SELECT id FROM deals WHERE source = ?1 AND external_id = ?2", err) < 0)
            return -1;
        st = s->up->find_deal;
    }
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ext, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_db_error(s, err, "resolving a reference");
    if (*id && kind == REF_PARTNER) cache_put(&s->up->partners, source, ext, *id);
    size_t sl = strlen(source), el = strlen(ext);
    if (*id && kind == REF_DEAL && sl + el + 2 <= sizeof s->up->last_deal) {
        memcpy(s->up->last_deal, source, sl);
        s->up->last_deal[sl] = 0x1f;
        memcpy(s->up->last_deal + sl + 1, ext, el + 1);
        s->up->last_deal_id = *id;
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

/* Writes one deal_history row (deal, at, stage, amount, expected_close,
 * status, partner_probability): a new row, or the row already at that
 * instant updated when a value differs. One statement (an UPSERT on the
 * table's key), so a row identical to the stored one - the export's copy of
 * the first state the deal's own upsert wrote - costs one key probe and a
 * compare, and writes nothing. *changed: 1 when a row was written. */
/* A history row's write (single or batched): a new row, or the row at its
 * instant updated where a value differs. */
#define HIST_UPSERT \
    " ON CONFLICT (deal_id, observed_at) DO UPDATE SET stage = excluded.stage," \
    " amount = excluded.amount, expected_close = excluded.expected_close," \
    " status = excluded.status, partner_probability = excluded.partner_probability" \
    " WHERE stage IS NOT excluded.stage OR amount IS NOT excluded.amount OR" \
    " expected_close IS NOT excluded.expected_close OR status IS NOT excluded.status OR" \
    " partner_probability IS NOT excluded.partner_probability"

static int hist_buffer(store *s, int64_t deal, const store_value *at, const store_value *const vals[5],
                       int counted, prm_error *err);
static int hist_batching(const store *s, int counted);
static int hist_waiting(const store *s);

static int history_put(store *s, int64_t deal, const store_value *at, const store_value *const vals[5],
                       int *changed, prm_error *err)
{
    if (hist_batching(s, changed != NULL)) {
        if (changed) *changed = STORE_PENDING;
        return hist_buffer(s, deal, at, vals, changed != NULL, err);
    }
    /* Rows waiting go first: a row written now must land after them. */
    if (hist_waiting(s) && store_history_flush(s, NULL, err) < 0) return -1;
    if (store_prep(s, &s->up->hist_put, "INSERT INTO deal_history (deal_id, observed_at, stage,"
                   " amount, expected_close, status, partner_probability) VALUES (?1,?2,?3,?4,?5,?6,?7)"
                   HIST_UPSERT, err) < 0)
        return -1;
    sqlite3_stmt *st = s->up->hist_put;
    sqlite3_bind_int64(st, 1, deal);
    store_bind_value(st, 2, at);
    for (int i = 0; i < 5; i++) store_bind_value(st, i + 3, vals[i]);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return prm_error_set(err, "%s", sqlite3_errmsg(s->db));
    if (changed) *changed = sqlite3_changes(s->db) > 0;
    return 0;
}

/* One deal_history row for the deal's state at its updated_at (or
 * created_at). */
static int write_history(store *s, int64_t deal, const store_object *o, const store_value *v,
                         prm_error *err)
{
    /* Field indexes looked up once (this runs for every new deal). */
    static int fi[7] = { -1 };
    if (fi[0] < 0) {
        const char *f[] = { "updated_at", "created_at", "stage", "amount", "expected_close", "status",
                            "partner_probability" };
        for (int i = 0; i < 7; i++) fi[i] = store_field_index(o, f[i]);
    }
    int at = v[fi[0]].kind == SV_NULL ? fi[1] : fi[0];
    const store_value *vals[5] = { &v[fi[2]], &v[fi[3]], &v[fi[4]], &v[fi[5]], &v[fi[6]] };
    if (history_put(s, deal, &v[at], vals, NULL, err) < 0)
        return prm_error_prefix(err, "writing deal history: ");
    return 0;
}

/* ---- batched history rows --------------------------------------------- */

/* With store_history_batch on, history_put keeps its rows here and
 * store_history_flush writes them with one INSERT ... SELECT over them
 * (the same UPSERT, row by row in order, so a duplicate instant inside a
 * batch ends as it would one statement at a time). A history row costs
 * ~8.6k instructions as its own statement (binds, VDBE program start,
 * halt, reset: bench/RESULTS.md, Ingest); read from this table inside one
 * statement it costs the seek, record and insert alone. The rows are read
 * by SQLite through an eponymous virtual table (prm_history_rows) whose
 * cells point into the buffer. */
typedef struct hcell {
    int kind;                      /* SV_* */
    double r;
    int64_t i;
    size_t off;                    /* SV_TEXT: offset in text */
} hcell;

enum { HCOLS = 7, HB_MAX = 16384 };   /* deal, at, stage, amount, close, status, probability */

typedef struct histbuf {
    int on;                        /* store_history_batch */
    int firsts;                    /* a first load: deals' own states wait */
    hcell (*row)[HCOLS];
    size_t n, cap;
    char *text;
    size_t tlen, tcap;
    int counted;                   /* the rows waiting report STORE_PENDING */
    int64_t changed;               /* rows of such flushes that changed the store */
    char *failed;                  /* a flush failed: its rows are lost, so every later
                                      flush and commit fails until a rollback */
    sqlite3_stmt *flush;
    int registered;
} histbuf;

static int hist_write(store *s, histbuf *h, prm_error *err);

/* Rows wait only inside a transaction (its commit writes them): with
 * store_history_batch every history row, during a first load
 * (store_bulk_begin) a deal's own state, which no caller counts. */
static int hist_batching(const store *s, int counted)
{
    const histbuf *h = s->up->hb;
    return h && (h->on || (h->firsts && !counted)) && !sqlite3_get_autocommit(s->db);
}
static int hist_waiting(const store *s) { return s->up->hb && s->up->hb->n; }

static void histbuf_free(histbuf *h)
{
    if (!h) return;
    free(h->failed);
    sqlite3_finalize(h->flush);
    free(h->row);
    free(h->text);
    free(h);
}

static int cell_put(histbuf *h, hcell *c, const store_value *v)
{
    c->kind = v->kind;
    c->r = v->r;
    c->i = v->i;
    if (v->kind != SV_TEXT) return 0;
    ptrdiff_t off = textbuf_add(&h->text, &h->tlen, &h->tcap, 1 << 16, v->s);
    if (off < 0) return -1;
    c->off = (size_t)off;
    return 0;
}

/* Rows that report STORE_PENDING (counted) and rows that do not (a deal's
 * own state) are not flushed together, so the flush can count the former. */
static int hist_buffer(store *s, int64_t deal, const store_value *at, const store_value *const vals[5],
                       int counted, prm_error *err)
{
    histbuf *h = s->up->hb;
    if ((h->n == HB_MAX || (h->n && h->counted != counted)) && hist_write(s, h, err) < 0) return -1;
    h->counted = counted;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 1024;
        void *r = realloc(h->row, sizeof *h->row * cap);
        if (!r) return prm_error_set(err, "out of memory");
        h->row = r;
        h->cap = cap;
    }
    hcell *c = h->row[h->n];
    store_value d = { SV_INT, NULL, 0, deal };
    if (cell_put(h, &c[0], &d) < 0 || cell_put(h, &c[1], at) < 0)
        return prm_error_set(err, "out of memory");
    for (int i = 0; i < 5; i++)
        if (cell_put(h, &c[i + 2], vals[i]) < 0) return prm_error_set(err, "out of memory");
    h->n++;
    return 0;
}

/* The virtual table: one scan over the buffer, in order. */
typedef struct hcursor {
    sqlite3_vtab_cursor base;
    size_t i;
} hcursor;

typedef struct hvtab {
    sqlite3_vtab base;
    histbuf *h;                    /* the connection's buffer (the module's aux) */
} hvtab;

static int hv_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
                      char **errmsg)
{
    (void)argc; (void)argv; (void)errmsg;
    int rc = sqlite3_declare_vtab(db, "CREATE TABLE x (deal_id, observed_at, stage, amount,"
                                      " expected_close, status, partner_probability)");
    if (rc != SQLITE_OK) return rc;
    hvtab *v = sqlite3_malloc(sizeof *v);
    if (!v) return SQLITE_NOMEM;
    memset(v, 0, sizeof *v);
    v->h = aux;
    *out = &v->base;
    return SQLITE_OK;
}

static int hv_disconnect(sqlite3_vtab *v) { sqlite3_free(v); return SQLITE_OK; }

static int hv_best(sqlite3_vtab *v, sqlite3_index_info *info)
{
    (void)v;
    info->estimatedCost = 1000;
    info->estimatedRows = 1000;
    return SQLITE_OK;
}

static int hv_open(sqlite3_vtab *v, sqlite3_vtab_cursor **out)
{
    (void)v;
    hcursor *c = sqlite3_malloc(sizeof *c);
    if (!c) return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
    *out = &c->base;
    return SQLITE_OK;
}

static int hv_close(sqlite3_vtab_cursor *c) { sqlite3_free(c); return SQLITE_OK; }

static int hv_filter(sqlite3_vtab_cursor *c, int idx, const char *idxs, int argc, sqlite3_value **argv)
{
    (void)idx; (void)idxs; (void)argc; (void)argv;
    ((hcursor *)c)->i = 0;
    return SQLITE_OK;
}

static int hv_next(sqlite3_vtab_cursor *c) { ((hcursor *)c)->i++; return SQLITE_OK; }

static histbuf *hv_buf(sqlite3_vtab_cursor *c) { return ((hvtab *)c->pVtab)->h; }

static int hv_eof(sqlite3_vtab_cursor *c) { return ((hcursor *)c)->i >= hv_buf(c)->n; }

static int hv_column(sqlite3_vtab_cursor *c, sqlite3_context *ctx, int col)
{
    histbuf *h = hv_buf(c);
    const hcell *x = &h->row[((hcursor *)c)->i][col];
    switch (x->kind) {
    case SV_INT: sqlite3_result_int64(ctx, x->i); break;
    case SV_REAL: sqlite3_result_double(ctx, x->r); break;
    case SV_TEXT: sqlite3_result_text(ctx, h->text + x->off, -1, SQLITE_STATIC); break;
    default: sqlite3_result_null(ctx); break;
    }
    return SQLITE_OK;
}

static int hv_rowid(sqlite3_vtab_cursor *c, sqlite3_int64 *id)
{
    *id = (sqlite3_int64)((hcursor *)c)->i;
    return SQLITE_OK;
}

static const sqlite3_module hist_module = {
    .iVersion = 0, .xCreate = NULL, .xConnect = hv_connect, .xBestIndex = hv_best,
    .xDisconnect = hv_disconnect, .xDestroy = hv_disconnect, .xOpen = hv_open, .xClose = hv_close,
    .xFilter = hv_filter, .xNext = hv_next, .xEof = hv_eof, .xColumn = hv_column,
    .xRowid = hv_rowid,
};

/* The buffer and its virtual table, made once per handle. */
static int hist_ready(store *s, prm_error *err)
{
    if (!s->up->hb && !(s->up->hb = calloc(1, sizeof *s->up->hb))) return prm_error_set(err, "out of memory");
    histbuf *h = s->up->hb;
    if (!h->registered) {
        if (sqlite3_create_module_v2(s->db, "prm_history_rows", &hist_module, h, NULL) != SQLITE_OK)
            return store_db_error(s, err, "history batch");
        h->registered = 1;
    }
    return 0;
}

int store_history_batch(store *s, int on, prm_error *err)
{
    if (!s->up && !(s->up = calloc(1, sizeof *s->up))) return prm_error_set(err, "out of memory");
    if (!on) {
        if (s->up->hb && s->up->hb->n && hist_write(s, s->up->hb, err) < 0) return -1;
        if (s->up->hb) s->up->hb->on = 0;
        return 0;
    }
    if (hist_ready(s, err) < 0) return -1;
    s->up->hb->on = 1;
    return 0;
}

/* store_rollback: rows of the transaction rolled back are dropped. */
void store_history_drop(store *s)
{
    if (s->up && s->up->hb) {
        s->up->hb->n = s->up->hb->tlen = 0;
        s->up->hb->changed = 0;
        free(s->up->hb->failed);
        s->up->hb->failed = NULL;
    }
}

int store_history_flush(store *s, int64_t *written, prm_error *err)
{
    if (written) *written = 0;
    histbuf *h = s->up ? s->up->hb : NULL;
    if (!h) return 0;
    if ((h->n || h->failed) && hist_write(s, h, err) < 0) return -1;
    if (written) {                 /* the count goes to the caller who takes it */
        *written = h->changed;
        h->changed = 0;
    }
    return 0;
}

static int hist_write(store *s, histbuf *h, prm_error *err)
{
    if (h->failed) return prm_error_set(err, "%s", h->failed);
    if (store_prep(s, &h->flush, "INSERT INTO deal_history (deal_id, observed_at, stage, amount,"
                   " expected_close, status, partner_probability) SELECT deal_id, observed_at, stage,"
                   " amount, expected_close, status, partner_probability FROM prm_history_rows WHERE 1"
                   HIST_UPSERT, err) < 0)
        return -1;
    int rc = sqlite3_step(h->flush);
    sqlite3_reset(h->flush);
    h->n = 0;
    h->tlen = 0;
    if (rc != SQLITE_DONE) {
        prm_error_set(err, "writing deal history (the transaction must be rolled back): %s",
                      sqlite3_errmsg(s->db));
        free(h->failed);
        h->failed = strdup(err->msg);
        return -1;
    }
    if (h->counted) h->changed += sqlite3_changes64(s->db);
    return 0;
}

/* ---- first loads ------------------------------------------------------ */

/* The secondary indexes a first load builds after its rows (created by the
 * schema's step 1 -> 2 in store.c; the same definitions). */
static const char *const bulk_indexes[][2] = {
    { "deals_partner", "CREATE INDEX IF NOT EXISTS deals_partner ON deals (partner_id)" },
    { "deals_status_close", "CREATE INDEX IF NOT EXISTS deals_status_close ON deals (status, expected_close)" },
    { "commits_partner_period",
      "CREATE INDEX IF NOT EXISTS commits_partner_period ON commits (partner_id, period, submitted_at)" },
};
enum { NBULK = NF(bulk_indexes) };

static int bulk_ddl(store *s, int drop, prm_error *err)
{
    if (store_begin(s, err) < 0) return -1;
    for (int i = 0; i < NBULK; i++) {
        char sql[160];
        if (drop) snprintf(sql, sizeof sql, "DROP INDEX IF EXISTS %s", bulk_indexes[i][0]);
        if (store_run(s, drop ? sql : bulk_indexes[i][1], 0, NULL, NULL, err) < 0) {
            store_rollback(s);
            return -1;
        }
    }
    return store_commit(s, err);
}

int store_bulk_begin(store *s, int *bulk, prm_error *err)
{
    *bulk = 0;
    if (store_in_transaction(s)) return 0;    /* the caller's transaction: no DDL inside it */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT EXISTS (SELECT 1 FROM deals) OR EXISTS (SELECT 1 FROM commits)",
                           -1, &st, NULL) != SQLITE_OK)
        return store_db_error(s, err, "first-load check");
    int rc = sqlite3_step(st), any = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 1;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return store_db_error(s, err, "first-load check");
    if (any) return 0;
    if (!s->up && !(s->up = calloc(1, sizeof *s->up))) return prm_error_set(err, "out of memory");
    if (bulk_ddl(s, 1, err) < 0 || hist_ready(s, err) < 0) return -1;
    s->up->bulk = *bulk = 1;
    s->up->hb->firsts = 1;
    return 0;
}

int store_bulk_end(store *s, prm_error *err)
{
    if (store_in_transaction(s)) return 0;
    if (s->up) s->up->bulk = 0;
    if (s->up && s->up->hb) s->up->hb->firsts = 0;
    return bulk_ddl(s, 0, err);
}

/* store_open: 1 when a secondary index is missing (a killed first load). */
int store_bulk_missing(store *s)
{
    sqlite3_stmt *st;
    int have = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN"
                           " ('deals_partner', 'deals_status_close', 'commits_partner_period')",
                           -1, &st, NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_step(st) == SQLITE_ROW) have = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return have < NBULK;
}

/* ---- attribute history ------------------------------------------------ */

typedef struct attr_change {
    int field;
    char old[256];
    int old_null;
} attr_change;

/* Column c as text into out ("" and *null = 1 for NULL). */
static void column_text(sqlite3_stmt *st, int c, char *out, size_t cap, int *null)
{
    *null = 0;
    switch (sqlite3_column_type(st, c)) {
    case SQLITE_NULL: *null = 1; out[0] = 0; break;
    case SQLITE_INTEGER: snprintf(out, cap, "%lld", (long long)sqlite3_column_int64(st, c)); break;
    case SQLITE_FLOAT: snprintf(out, cap, "%.17g", sqlite3_column_double(st, c)); break;
    default: snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, c)); break;
    }
}

static void value_text(const store_value *v, char *out, size_t cap, int *null)
{
    *null = 0;
    switch (v->kind) {
    case SV_NULL: *null = 1; out[0] = 0; break;
    case SV_INT: snprintf(out, cap, "%lld", (long long)v->i); break;
    case SV_REAL: snprintf(out, cap, "%.17g", v->r); break;
    case SV_TEXT: snprintf(out, cap, "%s", v->s); break;
    }
}

static int attr_put(store *s, const char *entity, int64_t id, const char *field, const char *at,
                    const char *val, int null, prm_error *err)
{
    if (store_prep(s, &s->up->attr_ins, "INSERT OR REPLACE INTO attr_history (entity, entity_id,"
                   " field, observed_at, value) VALUES (?1, ?2, ?3, ?4, ?5)", err) < 0)
        return -1;
    sqlite3_stmt *st = s->up->attr_ins;
    sqlite3_bind_text(st, 1, entity, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_text(st, 3, field, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, at, -1, SQLITE_STATIC);
    if (null) sqlite3_bind_null(st, 5);
    else sqlite3_bind_text(st, 5, val, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_db_error(s, err, "writing attribute history");
}

/* A record's attributes changed: keep the change. The first change of an
 * attribute also records the value it had before, observed at the old
 * record's updated_at (or since ever), so the value as of any past instant
 * can be rebuilt; attributes that never change cost no rows (the current
 * row is their whole history). */
static int write_attrs(store *s, int k, int64_t id, const store_object *o, const store_value *b,
                       const attr_change *ch, int nch, const char *old_at, prm_error *err)
{
    const char *entity = k == 0 ? "partner" : "deal";
    int at_i = store_field_index(o, "updated_at");
    char now[21];
    const char *at = b[at_i].kind == SV_TEXT ? b[at_i].s : (store_now_iso(now), now);
    if (store_prep(s, &s->up->attr_any, "SELECT 1 FROM attr_history WHERE entity = ?1 AND"
                   " entity_id = ?2 AND field = ?3 LIMIT 1", err) < 0)
        return -1;
    for (int c = 0; c < nch; c++) {
        const char *field = o->fields[ch[c].field].name;
        sqlite3_stmt *q = s->up->attr_any;
        sqlite3_bind_text(q, 1, entity, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, id);
        sqlite3_bind_text(q, 3, field, -1, SQLITE_STATIC);
        int rc = sqlite3_step(q);
        sqlite3_reset(q);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_db_error(s, err, "attribute history");
        if (rc == SQLITE_DONE &&
            attr_put(s, entity, id, field, old_at[0] ? old_at : "1970-01-01T00:00:00Z", ch[c].old,
                     ch[c].old_null, err) < 0)
            return -1;
        char val[256];
        int null;
        value_text(&b[ch[c].field], val, sizeof val, &null);
        if (attr_put(s, entity, id, field, at, val, null, err) < 0) return -1;
    }
    return 0;
}

/* A partial deal change (an API's own field history: one field changed at
 * an instant, e.g. Salesforce OpportunityFieldHistory) names the fields it
 * sets in `changed` ("stage,status", "amount", "expected_close"); its
 * other fields are the deal's state at that instant - the latest history
 * row at or before it, else (a change older than anything stored) the
 * earliest row after it, but for the partner's probability, then unknown.
 * Nothing later than the next known state is read. */
static int fill_change(store *s, const store_object *o, store_value *b, char text[][256],
                       prm_error *err)
{
    static const char *const hf[] = { "stage", "amount", "expected_close", "status",
                                      "partner_probability" };
    int ci = store_field_index(o, "changed");
    const char *list = b[ci].s;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ", ");
        int known = 0;
        for (int i = 0; i < 5; i++)
            known |= n == strlen(hf[i]) && strncmp(p, hf[i], n) == 0;
        if (n && !known)
            return prm_error_set(err, "field 'changed' names '%.*s', not one of stage, amount,"
                                 " expected_close, status, partner_probability", (int)n, p);
        p += n;
        p += strspn(p, ", ");
    }
    /* It reads deal_history: rows still waiting are written first. */
    if (hist_waiting(s) && hist_write(s, s->up->hb, err) < 0) return -1;
    if (store_prep(s, &s->up->hist_before, "SELECT stage, amount, expected_close, status,"
                   " partner_probability FROM deal_history WHERE deal_id = ?1 AND observed_at <= ?2"
                   " ORDER BY observed_at DESC LIMIT 1", err) < 0 ||
        store_prep(s, &s->up->hist_after, "SELECT stage, amount, expected_close, status,"
                   " partner_probability FROM deal_history WHERE deal_id = ?1 AND observed_at > ?2"
                   " ORDER BY observed_at LIMIT 1", err) < 0)
        return -1;
    int rc = SQLITE_DONE;
    sqlite3_stmt *q = NULL;
    for (int pass = 0; pass < 2 && rc != SQLITE_ROW; pass++) {
        q = pass ? s->up->hist_after : s->up->hist_before;
        sqlite3_bind_int64(q, 1, b[store_field_index(o, "deal_id")].i);
        store_bind_value(q, 2, &b[store_field_index(o, "observed_at")]);
        rc = sqlite3_step(q);
        if (rc != SQLITE_ROW) sqlite3_reset(q);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_db_error(s, err, "reading deal history");
    for (int i = 0; i < 5 && rc == SQLITE_ROW; i++) {
        size_t n = strlen(hf[i]);
        const char *m = strstr(list, hf[i]);
        while (m && ((m > list && m[-1] != ',' && m[-1] != ' ') || (m[n] && m[n] != ',' && m[n] != ' ')))
            m = strstr(m + 1, hf[i]);
        if (m) continue;                    /* set by the change itself */
        store_value *x = &b[store_field_index(o, hf[i])];
        if (q == s->up->hist_after && i == 4) {
            /* Taken from a later state, the partner's probability would be
             * the one it ended with (0 or 100 once closed): no field
             * history a PRM serves tracks it, so before any state at or
             * before this change it is unknown, not the later value. */
            x->kind = SV_NULL;
            continue;
        }
        switch (sqlite3_column_type(q, i)) {
        case SQLITE_NULL: x->kind = SV_NULL; break;
        case SQLITE_FLOAT: case SQLITE_INTEGER:
            x->kind = SV_REAL;
            x->r = sqlite3_column_double(q, i);
            break;
        default:
            snprintf(text[i], 256, "%s", (const char *)sqlite3_column_text(q, i));
            x->kind = SV_TEXT;
            x->s = text[i];
            break;
        }
    }
    if (rc == SQLITE_ROW) sqlite3_reset(q);
    return 0;
}

/* A payout kind the store does not know is mapped, not rejected: stored as
 * "other" with the raw value in kind_raw (unless the record gives one). A
 * payout needs a paid date or a status (one not paid yet has no date). */
static const store_value *map_payout(const store_object *o, const store_value *v,
                                     store_value *pv, prm_error *err)
{
    int kind = store_field_index(o, "kind"), raw = store_field_index(o, "kind_raw");
    int paid = store_field_index(o, "paid_at"), status = store_field_index(o, "status");
    if (v[paid].kind == SV_NULL && v[status].kind == SV_NULL)
        return prm_error_set(err, "a payout needs paid_at or a status"), NULL;
    if (v[kind].kind != SV_TEXT) return v;
    for (const char *const *t = payout_kinds; *t; t++)
        if (strcmp(*t, v[kind].s) == 0) return v;
    memcpy(pv, v, sizeof *pv * (size_t)o->nfields);
    if (pv[raw].kind == SV_NULL) pv[raw] = v[kind];
    pv[kind].kind = SV_TEXT;
    pv[kind].s = "other";
    return pv;
}

/* A tenant field's value at observed_at: written only when it differs from
 * its value as of that instant (so an unchanged field costs nothing). */
static int upsert_deal_field(store *s, const store_value *b, int *written, prm_error *err)
{
    char field[160];
    if (strlen(b[2].s) > sizeof field - 3 || !b[2].s[0])
        return prm_error_set(err, "field 'field' must be a name of 1..157 bytes");
    snprintf(field, sizeof field, "x.%s", b[2].s);
    if (b[5].kind == SV_TEXT) {
        if (store_field_type_index(b[5].s) < 0) return prm_error_set(err, "field 'type' must be category, number, yesno or date");
        char seen[200], key[180];
        snprintf(seen, sizeof seen, "\n%s=%s\n", field, b[5].s);
        if (!strstr(s->up->xtypes, seen)) {
            snprintf(key, sizeof key, "field_type.%s", field);
            if (store_setting_set(s, key, b[5].s, err) < 0) return -1;
            size_t n = strlen(s->up->xtypes);
            if (n + strlen(seen) < sizeof s->up->xtypes)
                memcpy(s->up->xtypes + (n ? n - 1 : 0), seen, strlen(seen) + 1);
        }
    }
    /* An absent field of a deal just inserted (no x.* row written for it
     * since) has no row to differ from: nothing to look up or write (a
     * first sync's absent values). Only until the deal's first present
     * field is written: absent fields declared after it are looked up (a
     * record of which fields were written would lift that). */
    if (b[3].kind == SV_NULL && b[1].i == s->up->fresh_deal) {
        if (written) *written = 0;
        return 0;
    }
    if (store_prep(s, &s->up->xfield_at, "SELECT value FROM attr_history WHERE entity = 'deal' AND"
                   " entity_id = ?1 AND field = ?2 AND observed_at <= ?3"
                   " ORDER BY observed_at DESC LIMIT 1", err) < 0)
        return -1;
    sqlite3_stmt *q = s->up->xfield_at;
    sqlite3_bind_int64(q, 1, b[1].i);
    sqlite3_bind_text(q, 2, field, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, b[4].s, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    int same = 0;
    if (rc == SQLITE_ROW)
        same = b[3].kind == SV_NULL ? sqlite3_column_type(q, 0) == SQLITE_NULL
                                    : same_value(q, 0, &b[3]);
    else if (rc == SQLITE_DONE)
        same = b[3].kind == SV_NULL;       /* never set, still not set */
    sqlite3_reset(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_db_error(s, err, "reading a deal field");
    if (written) *written = !same;
    if (same) return 0;
    if (b[1].i == s->up->fresh_deal) s->up->fresh_deal = 0;
    return attr_put(s, "deal", b[1].i, field, b[4].s, b[3].kind == SV_NULL ? NULL : b[3].s,
                    b[3].kind == SV_NULL, err);
}

int store_upsert(store *s, const store_object *o, const store_value *v, int *written,
                 prm_error *err)
{
    return store_upsert_iso(s, o, v, 0, written, err);
}

int store_upsert_iso(store *s, const store_object *o, const store_value *v, uint32_t iso_made,
                     int *written, prm_error *err)
{
    int k = (int)(o - objects);
    const objspec *sp = &specs[k];
    store_value pv[NF(payout_f)];
    if (o->fields == payout_f) {
        if ((v = map_payout(o, v, pv, err)) == NULL) return -1;
    }
    for (int i = 0; i < o->nfields; i++)
        if (check_value(&o->fields[i], &v[i], i < 32 && (iso_made >> i & 1), err) < 0) return -1;
    if (!s->up && !(s->up = calloc(1, sizeof *s->up))) return prm_error_set(err, "out of memory");
    if (o->fields != dealfield_f && o->fields != change_f && !s->up->obj[k].sel &&
        prepare_obj(s, k, err) < 0)
        return -1;

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

    if (o->fields == dealfield_f) return upsert_deal_field(s, b, written, err);
    if (k == 1) s->up->fresh_deal = 0;
    char filled[5][256];
    if (k == 2 && b[o->nfields - 1].kind == SV_TEXT && fill_change(s, o, b, filled, err) < 0)
        return -1;
    if (k == 2) {
        /* deal_history has no rowid (keyed by deal and instant): its rows
         * are put by key. Fields in change_f order after source. */
        const store_value *vals[5] = { &b[3], &b[4], &b[5], &b[6], &b[7] };
        int changed;
        if (history_put(s, b[1].i, &b[2], vals, &changed, err) < 0) return -1;
        if (written) *written = changed;
        return 0;
    }
    objstmts *os = &s->up->obj[k];
    if (s->up->bulk) {
        /* Every row of a first load is almost always new: one INSERT OR
         * IGNORE (no statement journal, one index probe) settles it, and
         * only a row already there takes the lookup-compare-write path
         * below. IGNORE loses nothing: a row it
         * ignores for a CHECK or NOT NULL failure rather than a key
         * conflict finds no row below and its plain INSERT reports it. */
        if (!os->ins_new) {
            const char *sql = sqlite3_sql(os->ins);
            char buf[2048];
            snprintf(buf, sizeof buf, "INSERT OR IGNORE%s", sql + strlen("INSERT"));
            if (sqlite3_prepare_v3(s->db, buf, -1, SQLITE_PREPARE_PERSISTENT, &os->ins_new, NULL) != SQLITE_OK)
                return store_db_error(s, err, "preparing history insert");
        }
        for (int i = 0; i < o->nfields; i++)
            if (sp->cols[i]) store_bind_value(os->ins_new, i + 1, &b[i]);
        int rc0 = sqlite3_step(os->ins_new);
        sqlite3_reset(os->ins_new);
        if (rc0 != SQLITE_DONE) return prm_error_set(err, "%s", sqlite3_errmsg(s->db));
        if (sqlite3_changes(s->db) > 0) {
            /* a new deal's first state */
            if (k == 1) s->up->fresh_deal = sqlite3_last_insert_rowid(s->db);
            if (k == 1 && write_history(s, sqlite3_last_insert_rowid(s->db), o, b, err) < 0) return -1;
            if (written) *written = 1;
            return 0;
        }
    }
    for (int j = 0; j < sp->nkey; j++) store_bind_value(os->sel, sp->key[j] + 1, &b[sp->key[j]]);
    int rc = sqlite3_step(os->sel);
    int64_t rowid = 0;
    int same = 1, track = 0;
    /* Old values of changed attributes, copied before the statement resets. */
    attr_change ch[8];
    int nch = 0;
    char old_at[24] = "";
    if (rc == SQLITE_ROW) {
        rowid = sqlite3_column_int64(os->sel, 0);
        for (int i = 0, col = 1; i < o->nfields; i++) {
            if (!sp->cols[i]) continue;
            int c = col++;
            if (k <= 1 && strcmp(o->fields[i].name, "updated_at") == 0 &&
                sqlite3_column_type(os->sel, c) == SQLITE_TEXT)
                snprintf(old_at, sizeof old_at, "%s", (const char *)sqlite3_column_text(os->sel, c));
            if (!same_value(os->sel, c, &b[i])) {
                same = 0;
                if (k == 1)
                    for (const char *const *t = tracked; *t; t++)
                        track |= strcmp(*t, o->fields[i].name) == 0;
                if (k <= 1 && nch < 8)
                    for (const char *const *t = attr_tracked[k]; *t; t++)
                        if (strcmp(*t, o->fields[i].name) == 0) {
                            ch[nch].field = i;
                            column_text(os->sel, c, ch[nch].old, sizeof ch[nch].old, &ch[nch].old_null);
                            nch++;
                        }
            }
        }
    }
    sqlite3_reset(os->sel);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_db_error(s, err, "upsert lookup");
    if (rowid && same) {
        if (written) *written = 0;
        return 0;
    }
    sqlite3_stmt *st = rowid ? os->upd : os->ins;
    for (int i = 0; i < o->nfields; i++)
        if (sp->cols[i]) store_bind_value(st, i + 1, &b[i]);
    if (rowid) sqlite3_bind_int64(st, o->nfields + 1, rowid);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) return prm_error_set(err, "%s", sqlite3_errmsg(s->db));
    if (!rowid) {
        rowid = sqlite3_last_insert_rowid(s->db);
        if (k == 1) s->up->fresh_deal = rowid;
    }
    /* History: a new deal's first state, and every change of a tracked value. */
    if (k == 1 && (st == os->ins || track) && write_history(s, rowid, o, b, err) < 0) return -1;
    if (nch && write_attrs(s, k, rowid, o, b, ch, nch, old_at, err) < 0) return -1;
    if (written) *written = 1;
    return 0;
}

