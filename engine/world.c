/* world.c - see world.h. Reads the store once (through store.h, never
 * sqlite3.h) into arrays with as-of indices: history slices per deal in
 * time order, attribute changes per deal and partner, FX and signal
 * curves by day, commit and quota revisions per partner. */
#include "world_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "domain.h"
#include "store.h"
#include "timeutil.h"

int world_intern(strtab *t, const char *s)
{
    if (!s) return -1;
    if (t->last < t->n && strcmp(t->s[t->last], s) == 0) return t->last;
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->s[i], s) == 0) return t->last = i;
    if (t->n == t->cap) {
        int nc = t->cap ? t->cap * 2 : 16;
        char **ns = realloc(t->s, sizeof *t->s * (size_t)nc);
        if (!ns) return -1;
        t->s = ns;
        t->cap = nc;
    }
    char *copy = strdup(s);
    if (!copy) return -1;
    t->s[t->n] = copy;
    return t->n++;
}

/* A copy of s in the pool; NULL when out of memory. */
static char *pool_dup(strpool *p, const char *s)
{
    enum { BLOCK = 1 << 20 };
    size_t n = strlen(s) + 1;
    if (!p->nb || p->used + n > p->room) {
        if (p->nb == p->capb) {
            size_t nc = p->capb ? p->capb * 2 : 16;
            char **nbk = realloc(p->blocks, sizeof *nbk * nc);
            if (!nbk) return NULL;
            p->blocks = nbk;
            p->capb = nc;
        }
        size_t room = n > BLOCK ? n : BLOCK;
        if (!(p->blocks[p->nb] = malloc(room))) return NULL;
        p->nb++;
        p->used = 0;
        p->room = room;
    }
    char *d = p->blocks[p->nb - 1] + p->used;
    memcpy(d, s, n);
    p->used += n;
    return d;
}

static void pool_free(strpool *p)
{
    for (size_t i = 0; i < p->nb; i++) free(p->blocks[i]);
    free(p->blocks);
}

static void strtab_free(strtab *t)
{
    for (int i = 0; i < t->n; i++) free(t->s[i]);
    free(t->s);
}

/* The store keeps dates as "YYYY-MM-DD" and instants as
 * "YYYY-MM-DDTHH:MM:SSZ" (store_upsert checks it), so the millions of
 * history rows a world reads take a fixed-position fast path; anything
 * else goes through date_parse. */
static int dig2(const char *p) { return (p[0] - '0') * 10 + (p[1] - '0'); }
static int all_digits(const char *p, int n)
{
    for (int i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9') return 0;
    return 1;
}

static int fast_iso(const char *s, int64_t *t)
{
    size_t n = strlen(s);
    if ((n != 10 && n != 20) || !all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2) || s[7] != '-' ||
        !all_digits(s + 8, 2))
        return -1;
    int y = dig2(s) * 100 + dig2(s + 2), m = dig2(s + 5), d = dig2(s + 8);
    if (m < 1 || m > 12 || d < 1 || d > 31) return -1;
    int64_t secs = days_from_civil(y, m, d) * DAY;
    if (n == 20) {
        if (s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z' || !all_digits(s + 11, 2) ||
            !all_digits(s + 14, 2) || !all_digits(s + 17, 2))
            return -1;
        int hh = dig2(s + 11), mi = dig2(s + 14), ss = dig2(s + 17);
        if (hh > 23 || mi > 59 || ss > 60) return -1;
        secs += hh * 3600 + mi * 60 + ss;
    }
    *t = secs;
    return 0;
}

static int32_t day_of(const char *iso)
{
    int64_t t;
    if (!iso || (fast_iso(iso, &t) < 0 && date_parse(iso, DATE_ISO, &t, NULL) < 0)) return INT32_MIN;
    return (int32_t)(t / DAY - (t % DAY < 0));
}

static int64_t instant_of(const char *iso)
{
    int64_t t;
    if (!iso || (fast_iso(iso, &t) < 0 && date_parse(iso, DATE_ISO, &t, NULL) < 0)) return INT64_MIN;
    return t;
}


static void series_add(series *s, int32_t day, double v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->day = realloc(s->day, sizeof *s->day * s->cap);
        s->v = realloc(s->v, sizeof *s->v * s->cap);
    }
    s->day[s->n] = day;
    s->v[s->n++] = v;
}

double world_series_at(const series *s, int32_t day)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->day[mid] <= day) lo = mid + 1; else hi = mid;
    }
    return lo ? s->v[lo - 1] : NAN;
}

static const char *txt(store_stmt *st, int i)
{
    store_value v = store_column(st, i);
    return v.kind == SV_TEXT ? v.s : NULL;
}

static double num(store_stmt *st, int i)
{
    store_value v = store_column(st, i);
    return v.kind == SV_REAL ? v.r : v.kind == SV_INT ? (double)v.i : NAN;
}

static int64_t integer(store_stmt *st, int i)
{
    store_value v = store_column(st, i);
    return v.kind == SV_INT ? v.i : v.kind == SV_REAL ? (int64_t)v.r : 0;
}

static int query(store *s, const char *sql, store_stmt **st, prm_error *err)
{
    return store_prepare(s, sql, st, err);
}

/* The largest rowid of a table (O(log n) on a rowid table): an upper bound
 * of its row count, so the big arrays are sized once instead of grown by
 * doubling (each growth copied and faulted in the whole array again). */
static int64_t table_max_id(store *s, const char *sql, prm_error *err)
{
    store_stmt *st;
    if (query(s, sql, &st, err) < 0) return -1;
    int rc = store_step(st, err);
    int64_t n = rc == 1 ? integer(st, 0) : 0;
    store_finalize(st);
    return rc < 0 ? -1 : n < 0 ? 0 : n;
}

/* An array of the 1M-deal scale: asked for transparent huge pages, so
 * first touching it costs one page fault per 2 MiB instead of per 4 KiB
 * (on the benchmark VM the faults were ~17% of a score run's CPU). */
static void *big_alloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
#ifdef MADV_HUGEPAGE
    enum { HUGE = 2u << 20 };
    if (p && bytes >= 4 * (size_t)HUGE) {
        uintptr_t a = ((uintptr_t)p + HUGE - 1) & ~(uintptr_t)(HUGE - 1);
        uintptr_t e = ((uintptr_t)p + bytes) & ~(uintptr_t)(HUGE - 1);
        if (e > a) (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
    }
#endif
    return p;
}

static int partner_index(const world *w, int64_t rowid)
{
    if (rowid < 1 || rowid > w->max_prow) return -1;
    return (int)w->prow[rowid] - 1;
}

static int cmp_created(const void *a, const void *b, void *ctx)
{
    const world *w = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const wdeal *x = &w->d[i], *y = &w->d[j];
    /* Ties in load order: a total order, whatever qsort's algorithm. */
    if (x->created != y->created) return (x->created > y->created) - (x->created < y->created);
    return (i > j) - (i < j);
}

int world_quarter_key(const world *w, int64_t day)
{
    int fy, q;
    fiscal_quarter(day, w->fiscal_start, &fy, &q);
    return fy * 4 + q - 1;
}


static int partner_by_ext(const world *w, const char *ext)
{
    for (size_t i = 0; i < w->np; i++)
        if (strcmp(w->p[i].ext, ext) == 0) return (int)i;
    return -1;
}

static int cmp_hist_t(const void *a, const void *b);

/* The current row is authoritative for now:
 *  - a current row that says won/lost while the newest history row says
 *    open is a conflict (history stamped after the close: a slip recorded
 *    at 10:00 of a deal closed at 08:00). The current row becomes the
 *    newest observation, so the deal is closed now, and the conflict is
 *    counted and reported, not guessed away;
 *  - a current row newer than every history row that differs from the
 *    newest is simply a newer observation and is added at its updated_at;
 *  - an older current row (history written after it) adds nothing.
 * The slice has room for one more row (load_history reserves it). */
static void reconcile(world *w, wdeal *d, const whist *cur)
{
    if (cur->stage < 0 || cur->status < 0) return;
    whist *h = w->h + d->h0;
    if (!d->hn) {
        whist add = *cur;
        if (add.t == INT64_MIN) add.t = d->created != INT32_MIN ? (int64_t)d->created * DAY : 0;
        h[d->hn++] = add;
        return;
    }
    const whist *last = &h[d->hn - 1];
    int same = last->stage == cur->stage && last->status == cur->status &&
               (last->amount == cur->amount || (last->amount != last->amount && cur->amount != cur->amount)) &&
               last->close_day == cur->close_day;
    if (same) return;
    whist add = *cur;
    if (cur->status != STATUS_OPEN && last->status == STATUS_OPEN) {
        add.t = last->t > cur->t || cur->t == INT64_MIN ? last->t : cur->t;
        if (w->conflicts < 3)
            snprintf(w->conflict_ex[w->conflicts], sizeof w->conflict_ex[0], "%s", d->ext);
        w->conflicts++;
        d->conflict = 1;
        h[d->hn++] = add;
    } else if (cur->t != INT64_MIN && cur->t > last->t) {
        h[d->hn++] = add;
    }
}

static int load_partners(store *s, world *w, prm_error *err)
{
    store_stmt *st;
    if (query(s, "SELECT id, external_id, tier, type, region, status, currency, parent_external_id"
                 " FROM partners ORDER BY id", &st, err) < 0)
        return -1;
    char **parent_ext = NULL;
    size_t cap = 0;
    int rc;
    while ((rc = store_step(st, err)) == 1) {
        if (w->np == cap) {
            size_t nc = cap ? cap * 2 : 256;
            wpartner *np = realloc(w->p, sizeof *w->p * nc);
            char **pe = realloc(parent_ext, sizeof *pe * nc);
            if (np) w->p = np;
            if (pe) parent_ext = pe;
            if (!np || !pe) {
                rc = prm_error_set(err, "out of memory loading partners");
                break;
            }
            cap = nc;
        }
        wpartner *p = &w->p[w->np];
        parent_ext[w->np++] = txt(st, 7) ? strdup(txt(st, 7)) : NULL;
        memset(p, 0, sizeof *p);
        p->rowid = integer(st, 0);
        p->ext = strdup(txt(st, 1) ? txt(st, 1) : "");
        p->tier = world_intern(&w->tiers, txt(st, 2));
        p->type = world_intern(&w->types, txt(st, 3));
        p->region = world_intern(&w->regions, txt(st, 4));
        p->status = world_intern(&w->pstatuses, txt(st, 5));
        p->currency = world_intern(&w->currencies, txt(st, 6));
        p->parent = -1;
        if (p->rowid > w->max_prow) w->max_prow = p->rowid;
    }
    store_finalize(st);
    if (rc >= 0) {
        w->prow = calloc((size_t)w->max_prow + 1, sizeof *w->prow);
        if (!w->prow) rc = prm_error_set(err, "out of memory loading partners");
    }
    if (rc >= 0) {
        for (size_t i = 0; i < w->np; i++) w->prow[w->p[i].rowid] = (int64_t)i + 1;
        for (size_t i = 0; i < w->np; i++)
            if (parent_ext[i]) w->p[i].parent = partner_by_ext(w, parent_ext[i]);
    }
    for (size_t i = 0; i < w->np; i++) free(parent_ext[i]);
    free(parent_ext);
    return rc < 0 ? -1 : 0;
}

/* A deals row in two parts. DEAL_BRIEF is what a world as of T reads of
 * every deal: for a deal settled by T (as_of_needs) that is all the
 * features at T read - its partner, registration day, outcome and its
 * instant, amount and currency. DEAL_REST is read for the other deals
 * only (load_rest); a full world reads both at once. */
#define DEAL_BRIEF "id, external_id, partner_id, created_at, stage, status, amount, updated_at, currency"
#define DEAL_REST                                                                                        \
    "source, product_family, budget_confirmed, competitor, completeness, account IS NOT NULL,"           \
    " contact_name IS NOT NULL, contact_email IS NOT NULL, expected_close, partner_probability, closed_at"
enum { DEAL_BRIEF_N = 9 };

/* The DEAL_BRIEF columns of a row into d and its current row c; the rest
 * unknown until deal_rest. -1 when out of memory. */
static int deal_brief(store_stmt *st, world *w, wdeal *d, whist *c)
{
    memset(d, 0, sizeof *d);
    d->rowid = integer(st, 0);
    d->ext = pool_dup(&w->ids, txt(st, 1) ? txt(st, 1) : "");
    if (!d->ext) return -1;
    d->partner = partner_index(w, integer(st, 2));
    d->created = day_of(txt(st, 3));
    c->stage = (int8_t)domain_stage(txt(st, 4));
    c->status = (int8_t)domain_status(txt(st, 5));
    c->amount = num(st, 6);
    c->t = instant_of(txt(st, 7));
    d->currency = world_intern(&w->currencies, txt(st, 8));
    d->source = d->product = d->competitor = -1;
    d->budget = -1;
    d->completeness = NAN;
    d->closed_day = INT32_MIN;
    c->close_day = INT32_MIN;
    c->prob = NAN;
    d->outcome = -1;
    d->outcome_t = INT64_MAX;
    d->last_open_prob = NAN;
    return 0;
}

/* The DEAL_REST columns, from column c0 on. */
static void deal_rest(store_stmt *st, int c0, world *w, wdeal *d, whist *c)
{
    d->source = world_intern(&w->sources, txt(st, c0));
    d->product = world_intern(&w->products, txt(st, c0 + 1));
    store_value b = store_column(st, c0 + 2);
    d->budget = b.kind == SV_INT ? (b.i ? 1 : 0) : -1;
    d->competitor = world_intern(&w->competitors, txt(st, c0 + 3));
    d->completeness = num(st, c0 + 4);
    d->present = (uint8_t)((integer(st, c0 + 5) ? 1 : 0) | (integer(st, c0 + 6) ? 2 : 0) |
                           (integer(st, c0 + 7) ? 4 : 0));
    c->close_day = day_of(txt(st, c0 + 8));
    c->prob = (float)num(st, c0 + 9);
    d->closed_day = day_of(txt(st, c0 + 10));
}

/* Room for k more rows at the end of w->h (capacity *cap). The array is
 * large: realloc moves its pages (mremap) rather than copying them. */
static int h_room(world *w, size_t *cap, size_t k)
{
    if (w->nh + k <= *cap) return 0;
    size_t nc = *cap * 2 > w->nh + k ? *cap * 2 : w->nh + k;
    if (w->nh + k > UINT32_MAX) return -1;     /* wdeal's slices are 32-bit */
    if (nc > UINT32_MAX) nc = UINT32_MAX;
    whist *nh = realloc(w->h, sizeof *w->h * nc);
    if (!nh) return -1;
    w->h = nh;
    *cap = nc;
    return 0;
}

/* Every deal in id order; deal i's current row goes to w->h[i], kept
 * there to reconcile with history (load_history). `brief`: the
 * DEAL_BRIEF columns only. *hcap: the capacity of w->h. */
static int load_deals(store *s, world *w, int brief, size_t *hcap, prm_error *err)
{
    int64_t hint = table_max_id(s, "SELECT max(id) FROM deals", err);
    if (hint < 0) return -1;
    size_t cap = 0;
    /* A hint that cannot be had (ids far beyond the row count) falls back
     * to growing the arrays as rows come. w->h gets room for the history
     * of a world as of T too: untouched room costs address space only. */
    if (hint > 0) {
        w->d = big_alloc(sizeof *w->d * (size_t)hint);
        w->h = big_alloc(sizeof *w->h * (size_t)hint * 3);
        if (w->d && w->h) {
            cap = (size_t)hint;
            *hcap = (size_t)hint * 3;
        } else {
            free(w->d);
            free(w->h);
            w->d = NULL;
            w->h = NULL;
        }
    }
    store_stmt *st;
    if (query(s, brief ? "SELECT " DEAL_BRIEF " FROM deals ORDER BY id"
                       : "SELECT " DEAL_BRIEF ", " DEAL_REST " FROM deals ORDER BY id",
              &st, err) < 0)
        return -1;
    int rc;
    while ((rc = store_step(st, err)) == 1) {
        if (w->nd == cap) {
            size_t nc = cap ? cap * 2 : 4096;
            wdeal *nd = realloc(w->d, sizeof *w->d * nc);
            if (nd) w->d = nd;
            if (!nd || h_room(w, hcap, nc - w->nh) < 0) {
                rc = prm_error_set(err, "out of memory loading deals");
                break;
            }
            cap = nc;
        }
        wdeal *d = &w->d[w->nd];
        whist *c = &w->h[w->nd];
        if (deal_brief(st, w, d, c) < 0) {
            rc = prm_error_set(err, "out of memory loading deals");
            break;
        }
        if (!brief) deal_rest(st, DEAL_BRIEF_N, w, d, c);
        w->nd++;
        w->nh = w->nd;
    }
    store_finalize(st);
    return rc < 0 ? -1 : 0;
}

/* The DEAL_REST columns of a world loaded brief: of the deals marked in
 * `need`, one rowid probe each; with no `need` (a full world after all),
 * of every deal, in one scan (the same rows: one read transaction). */
static int load_rest(store *s, world *w, const uint8_t *need, prm_error *err)
{
    store_stmt *st;
    if (query(s, need ? "SELECT " DEAL_REST " FROM deals WHERE id = ?1"
                      : "SELECT id, " DEAL_REST " FROM deals ORDER BY id",
              &st, err) < 0)
        return -1;
    int rc = 0;
    if (need) {
        for (size_t i = 0; i < w->nd && rc >= 0; i++) {
            if (!need[i]) continue;
            store_value id = { .kind = SV_INT, .i = w->d[i].rowid };
            store_reset(st);
            if (store_bind(st, 1, &id, err) < 0) rc = -1;
            else if ((rc = store_step(st, err)) == 1) deal_rest(st, 0, w, &w->d[i], &w->h[i]);
        }
    } else {
        size_t i = 0;
        while ((rc = store_step(st, err)) == 1) {
            int64_t id = integer(st, 0);
            while (i < w->nd && w->d[i].rowid < id) i++;
            if (i < w->nd && w->d[i].rowid == id) deal_rest(st, 1, w, &w->d[i], &w->h[i]);
        }
    }
    store_finalize(st);
    return rc < 0 ? -1 : 0;
}

static int cmp_hist_t(const void *a, const void *b)
{
    int64_t x = ((const whist *)a)->t, y = ((const whist *)b)->t;
    return (x > y) - (x < y);
}

/* One deal_history row into h; 0 when its instant cannot be read. */
static int hist_row(store_stmt *st, int c0, whist *h)
{
    h->t = instant_of(txt(st, c0));
    if (h->t == INT64_MIN) return 0;
    h->stage = (int8_t)domain_stage(txt(st, c0 + 1));
    h->amount = num(st, c0 + 2);
    h->close_day = day_of(txt(st, c0 + 3));
    h->status = (int8_t)domain_status(txt(st, c0 + 4));
    h->prob = (float)num(st, c0 + 5);
    return 1;
}

/* History into w->h. Slot i holds deal i's current row (load_deals).
 * Each deal whose history is read gets a slice after the nd slots: its
 * rows in time order, then room for one reconciling observation; every
 * other deal's slice is its slot alone - its current row is all its
 * history, which is what a world as of T keeps of a deal settled by then.
 * The rows are written where they stay: no copy to group them, as
 * deal_history is keyed by (deal_id, observed_at) (schema 8), so rows come
 * grouped by deal in time order, from one key-range query per deal marked
 * in `need` or, with no `need`, from one scan of the table. */
static int load_history(store *s, world *w, const uint8_t *need, size_t *hcap, prm_error *err)
{
    for (size_t i = 0; i < w->nd; i++) {
        w->d[i].h0 = i;
        w->d[i].hn = 0;
    }
    store_stmt *st;
    int rc = 0;
    if (need) {
        if (query(s, "SELECT observed_at, stage, amount, expected_close, status, partner_probability"
                     " FROM deal_history WHERE deal_id = ?1", &st, err) < 0)
            return -1;
        for (size_t i = 0; i < w->nd && rc >= 0; i++) {
            if (!need[i]) continue;
            wdeal *d = &w->d[i];
            store_value id = { .kind = SV_INT, .i = d->rowid };
            store_reset(st);
            if (store_bind(st, 1, &id, err) < 0) { rc = -1; break; }
            d->h0 = w->nh;
            while ((rc = store_step(st, err)) == 1) {
                if (h_room(w, hcap, 2) < 0) { rc = prm_error_set(err, "out of memory loading history"); break; }
                if (hist_row(st, 0, &w->h[w->nh])) w->nh++, d->hn++;
            }
            if (rc >= 0 && h_room(w, hcap, 1) < 0) rc = prm_error_set(err, "out of memory loading history");
            if (rc >= 0) w->nh++;                      /* the reconciling slot */
        }
        store_finalize(st);
    } else {
        int64_t max_rowid = w->nd ? w->d[w->nd - 1].rowid : 0;
        int32_t *idx = malloc(sizeof *idx * (size_t)(max_rowid + 1));
        if (!idx) return prm_error_set(err, "out of memory");
        for (int64_t i = 0; i <= max_rowid; i++) idx[i] = -1;
        for (size_t i = 0; i < w->nd; i++) idx[w->d[i].rowid] = (int32_t)i;
        /* The table has no rowid to bound its size: its count (SQLite
         * counts cells per page without decoding rows). */
        int64_t hint = table_max_id(s, "SELECT count(*) FROM deal_history", err);
        if (hint < 0 || query(s, "SELECT deal_id, observed_at, stage, amount, expected_close, status,"
                                 " partner_probability FROM deal_history", &st, err) < 0) {
            free(idx);
            return -1;
        }
        if (h_room(w, hcap, (size_t)hint + w->nd + 1) < 0) rc = prm_error_set(err, "out of memory loading history");
        long last = -1;
        while (rc >= 0 && (rc = store_step(st, err)) == 1) {
            int64_t rowid = integer(st, 0);
            if (rowid < 1 || rowid > max_rowid || idx[rowid] < 0) continue;
            wdeal *d = &w->d[idx[rowid]];
            if (idx[rowid] != last) {
                if (d->h0 != (size_t)idx[rowid]) {
                    rc = prm_error_set(err, "deal_history rows of deal %lld out of key order", (long long)rowid);
                    break;
                }
                if (last >= 0) w->nh++;               /* the previous deal's reconciling slot */
                d->h0 = w->nh;
                last = idx[rowid];
            }
            if (h_room(w, hcap, 2) < 0) { rc = prm_error_set(err, "out of memory loading history"); break; }
            if (hist_row(st, 1, &w->h[w->nh])) w->nh++, d->hn++;
        }
        if (rc >= 0 && last >= 0) w->nh++;
        store_finalize(st);
        free(idx);
    }
    if (rc < 0) return -1;
    for (size_t i = 0; i < w->nd; i++) {
        wdeal *d = &w->d[i];
        whist *h = w->h + d->h0;
        int sorted = 1;
        for (size_t j = 1; j < d->hn && sorted; j++) sorted = h[j - 1].t <= h[j].t;
        if (!sorted) qsort(h, d->hn, sizeof *h, cmp_hist_t);
        reconcile(w, d, &w->h[i]);
        for (size_t j = 0; j < d->hn; j++) {
            if (h[j].status > STATUS_OPEN && d->outcome_t == INT64_MAX) d->outcome_t = h[j].t;
            if (h[j].status == STATUS_OPEN) d->last_open_prob = h[j].prob;
            if (h[j].status >= 0) d->outcome = h[j].status;
            if (h[j].t > w->last_t) w->last_t = h[j].t;
        }
        /* An outcome later reopened is not an outcome. */
        if (d->outcome == STATUS_OPEN || d->outcome < 0) d->outcome_t = INT64_MAX;
    }
    return 0;
}

static int load_series(store *s, world *w, prm_error *err)
{
    store_stmt *st;
    /* Every currency the fx table names, so the base currency has a series. */
    if (query(s, "SELECT DISTINCT currency FROM fx_rates", &st, err) < 0) return -1;
    while (store_step(st, NULL) == 1) world_intern(&w->currencies, txt(st, 0));
    store_finalize(st);
    world_intern(&w->currencies, w->base);
    w->base_ccy = world_intern(&w->currencies, w->base);
    w->fx = calloc((size_t)w->currencies.n + 1, sizeof *w->fx);
    if (!w->fx) return prm_error_set(err, "out of memory loading FX rates");
    if (query(s, "SELECT currency, date, rate FROM fx_rates ORDER BY currency, date", &st, err) < 0)
        return -1;
    int rc;
    while ((rc = store_step(st, err)) == 1) {
        const char *c = txt(st, 0);
        for (int i = 0; i < w->currencies.n; i++)
            if (c && strcmp(w->currencies.s[i], c) == 0) series_add(&w->fx[i], day_of(txt(st, 1)), num(st, 2));
    }
    store_finalize(st);
    if (rc < 0) return -1;

    /* Every region- and partner-level signal becomes a feature. */
    if (query(s, "SELECT DISTINCT entity_type, name FROM signals WHERE entity_type IN"
                 " ('region', 'partner') ORDER BY 1, 2", &st, err) < 0)
        return -1;
    while ((rc = store_step(st, err)) == 1 && w->sig_names.n < MAX_SIGNALS) {
        char key[160];
        snprintf(key, sizeof key, "signal_%s_%s", txt(st, 0), txt(st, 1));
        w->sig_kind[w->sig_names.n] = strcmp(txt(st, 0), "partner") == 0;
        world_intern(&w->sig_names, key);
    }
    store_finalize(st);
    if (rc < 0) return -1;
    size_t per = (size_t)(w->regions.n > (int)w->np ? w->regions.n : (int)w->np) + 1;
    w->sig = calloc((size_t)w->sig_names.n * per + 1, sizeof *w->sig);
    if (query(s, "SELECT entity_type, entity, name, date, value FROM signals"
                 " WHERE entity_type IN ('region', 'partner') ORDER BY entity_type, entity, name, date",
              &st, err) < 0)
        return -1;
    const char *last_ent = NULL;
    int ent = -1;
    char entbuf[128] = "";
    while ((rc = store_step(st, err)) == 1) {
        char key[160];
        const char *et = txt(st, 0), *e = txt(st, 1);
        snprintf(key, sizeof key, "signal_%s_%s", et, txt(st, 2));
        int k = -1;
        for (int i = 0; i < w->sig_names.n; i++)
            if (strcmp(w->sig_names.s[i], key) == 0) k = i;
        if (k < 0 || !e) continue;
        if (!last_ent || strcmp(entbuf, e) != 0) {
            snprintf(entbuf, sizeof entbuf, "%s", e);
            last_ent = entbuf;
            ent = -1;
            if (strcmp(et, "region") == 0) {
                for (int i = 0; i < w->regions.n; i++)
                    if (strcmp(w->regions.s[i], e) == 0) ent = i;
            } else {
                for (size_t i = 0; i < w->np; i++)
                    if (strcmp(w->p[i].ext, e) == 0) { ent = (int)i; break; }
            }
        }
        if (ent >= 0) series_add(&w->sig[(size_t)k * per + (size_t)ent], day_of(txt(st, 3)), num(st, 4));
    }
    store_finalize(st);
    return rc < 0 ? -1 : 0;
}

/* A partner's revisions of one quarter figure (commits or quotas): the
 * quarter index, amount and instant of each, in the query's order. */
typedef struct revs {
    int32_t **q;
    double **amt;
    int64_t **t;
    size_t *n;
} revs;

static revs commit_revs(wpartner *p) { return (revs){ &p->cq, &p->camt, &p->ct, &p->nc }; }
static revs quota_revs(wpartner *p) { return (revs){ &p->qq, &p->qamt, &p->qt, &p->nq }; }

/* Loads rows (partner_id, period 'YYYY-Qn', amount, instant) into each
 * partner's revisions; rows for unknown partners or periods are skipped. */
static int load_revisions(store *s, world *w, const char *sql, revs (*of)(wpartner *),
                          const char *what, prm_error *err)
{
    store_stmt *st;
    if (query(s, sql, &st, err) < 0) return -1;
    int rc;
    size_t *cap = calloc(w->np + 1, sizeof *cap);
    if (!cap) {
        store_finalize(st);
        return prm_error_set(err, "out of memory loading %s", what);
    }
    while ((rc = store_step(st, err)) == 1) {
        int pi = partner_index(w, integer(st, 0));
        int fy, q;
        const char *per = txt(st, 1);
        if (pi < 0 || !per || sscanf(per, "%d-Q%d", &fy, &q) != 2) continue;
        revs r = of(&w->p[pi]);
        if (*r.n == cap[pi]) {
            size_t nc = cap[pi] ? cap[pi] * 2 : 16;
            int32_t *nq = realloc(*r.q, sizeof **r.q * nc);
            if (nq) *r.q = nq;
            double *na = realloc(*r.amt, sizeof **r.amt * nc);
            if (na) *r.amt = na;
            int64_t *nt = realloc(*r.t, sizeof **r.t * nc);
            if (nt) *r.t = nt;
            if (!nq || !na || !nt) {
                rc = prm_error_set(err, "out of memory loading %s", what);
                break;
            }
            cap[pi] = nc;
        }
        (*r.q)[*r.n] = fy * 4 + q - 1;
        (*r.amt)[*r.n] = num(st, 2);
        (*r.t)[*r.n] = instant_of(txt(st, 3));
        (*r.n)++;
    }
    free(cap);
    store_finalize(st);
    return rc < 0 ? -1 : 0;
}

static int load_commits(store *s, world *w, prm_error *err)
{
    return load_revisions(s, w, "SELECT partner_id, period, amount, submitted_at FROM commits"
                                " WHERE category = 'commit' ORDER BY partner_id, period, submitted_at",
                          commit_revs, "commits", err);
}

static int load_quotas(store *s, world *w, prm_error *err)
{
    return load_revisions(s, w, "SELECT partner_id, period, amount, set_at FROM quotas"
                                " ORDER BY partner_id, period, set_at",
                          quota_revs, "quotas", err);
}


/* The tenant deal fields whose type the sync saved (store_upsert.c's
 * deal_field): only these become features; a field stored without a type
 * (synced before types were kept) is not read. */
const char *world_field_type(const world *w, const char *name)
{
    for (int k = 0; k < w->nx; k++)
        if (strcmp(w->xname[k], name) == 0) return store_field_types[w->xtype[k]];
    return NULL;
}

static int add_xtype(void *ud, const char *name, int type)
{
    world *w = ud;
    if (w->nx == w->xcap) {
        int cap = w->xcap ? w->xcap * 2 : 8;
        char **nn = realloc(w->xname, sizeof *nn * (size_t)cap);
        if (nn) w->xname = nn;
        int *nt = realloc(w->xtype, sizeof *nt * (size_t)cap);
        if (nt) w->xtype = nt;
        strtab *nv = realloc(w->xvals, sizeof *nv * (size_t)cap);
        if (nv) w->xvals = nv;
        if (!nn || !nt || !nv) return -1;
        w->xcap = cap;
    }
    w->xname[w->nx] = strdup(name);
    if (!w->xname[w->nx]) return -1;
    w->xtype[w->nx] = type;
    memset(&w->xvals[w->nx], 0, sizeof w->xvals[w->nx]);
    w->nx++;
    return 0;
}

static int load_xtypes(store *s, world *w, prm_error *err)
{
    return store_field_types_each(s, add_xtype, w, err);
}

/* Attribute changes: attr_history rows of deals and partners, by entity in
 * time order. Values are interned like the current rows' (or parsed); a
 * tenant field ("x.<name>", load_xtypes) by its declared type. */
static int load_attrs(store *s, world *w, prm_error *err)
{
    static const char *const names[A_COUNT] = {
        "tier", "type", "region", "parent_id", "status", "currency",
        "product_family", "currency", "budget_confirmed", "competitor", "completeness",
    };
    store_stmt *st;
    if (query(s, "SELECT entity, entity_id, field, observed_at, value FROM attr_history"
                 " ORDER BY entity, entity_id, observed_at", &st, err) < 0)
        return -1;
    int64_t *drow = NULL;          /* deal rowid -> index, built on first use */
    int64_t max_drow = w->nd ? w->d[w->nd - 1].rowid : 0;
    size_t cap = 0;
    int rc;
    int64_t last_ent = -1, last_kind = -1;
    while ((rc = store_step(st, err)) == 1) {
        const char *ent = txt(st, 0), *field = txt(st, 2), *val = txt(st, 4);
        int64_t id = integer(st, 1);
        int deal = ent && strcmp(ent, "deal") == 0;
        int f = -1;
        for (int k = deal ? A_PRODUCT : A_TIER; k < (deal ? A_COUNT : A_PRODUCT); k++)
            if (field && strcmp(names[k], field) == 0) f = k;
        if (deal && f < 0 && field && field[0] == 'x' && field[1] == '.')
            for (int k = 0; k < w->nx; k++)
                if (strcmp(w->xname[k], field) == 0) f = A_COUNT + k;
        if (f < 0) continue;
        long idx;
        if (deal) {
            if (!drow) {
                drow = malloc(sizeof *drow * (size_t)(max_drow + 1));
                if (!drow) { rc = prm_error_set(err, "out of memory"); break; }
                for (int64_t i = 0; i <= max_drow; i++) drow[i] = -1;
                for (size_t i = 0; i < w->nd; i++) drow[w->d[i].rowid] = (int64_t)i;
            }
            idx = id >= 1 && id <= max_drow ? (long)drow[id] : -1;
        } else {
            idx = partner_index(w, id);
        }
        if (idx < 0) continue;
        if (w->na == cap) {
            size_t nc = cap ? cap * 2 : 1024;
            wattr *na = w->na < UINT32_MAX ? realloc(w->a, sizeof *w->a * nc) : NULL;   /* 32-bit slices */
            if (!na) { rc = prm_error_set(err, "out of memory loading attribute history"); break; }
            w->a = na;
            cap = nc;
        }
        wattr *a = &w->a[w->na];
        a->t = instant_of(txt(st, 3));
        a->field = f;
        a->dv = NAN;
        a->iv = -1;
        switch (f) {
        case A_TIER: a->iv = world_intern(&w->tiers, val); break;
        case A_TYPE: a->iv = world_intern(&w->types, val); break;
        case A_REGION: a->iv = world_intern(&w->regions, val); break;
        case A_PARENT: a->iv = val ? partner_by_ext(w, val) : -1; break;
        case A_PSTATUS: a->iv = world_intern(&w->pstatuses, val); break;
        case A_PCURRENCY: case A_CURRENCY: a->iv = world_intern(&w->currencies, val); break;
        case A_PRODUCT: a->iv = world_intern(&w->products, val); break;
        case A_BUDGET: a->iv = val ? atoi(val) != 0 : -1; break;
        case A_COMPETITOR: a->iv = world_intern(&w->competitors, val); break;
        case A_COMPLETENESS: a->dv = val ? strtod(val, NULL) : NAN; break;
        default:                  /* tenant field */
            switch (w->xtype[f - A_COUNT]) {
            case XT_CATEGORY: a->iv = world_intern(&w->xvals[f - A_COUNT], val); break;
            case XT_DATE: { int32_t dd = day_of(val); a->dv = dd == INT32_MIN ? NAN : dd; break; }
            default: {
                char *end = NULL;
                a->dv = val ? strtod(val, &end) : NAN;
                if (val && (end == val || *end)) a->dv = NAN;
            }
            }
        }
        /* rows arrive grouped by entity: open a new slice on a change */
        int64_t kind = deal ? 1 : 0;
        if (idx != last_ent || kind != last_kind) {
            if (deal) { w->d[idx].a0 = w->na; w->d[idx].an = 0; }
            else { w->p[idx].a0 = w->na; w->p[idx].an = 0; }
            last_ent = idx;
            last_kind = kind;
        }
        if (deal) w->d[idx].an++;
        else w->p[idx].an++;
        w->na++;
    }
    store_finalize(st);
    free(drow);
    return rc < 0 ? -1 : 0;
}


/* Each partner's deals by creation day (created day, load order): for
 * trailing medians and the recent deals of a world as of T. */
static int partner_lists(world *w, prm_error *err)
{
    size_t *cnt = calloc(w->np + 1, sizeof *cnt);
    if (!cnt) return prm_error_set(err, "out of memory");
    for (size_t i = 0; i < w->nd; i++)
        if (w->d[i].partner >= 0) cnt[w->d[i].partner]++;
    for (size_t i = 0; i < w->np; i++) {
        w->p[i].deals = malloc(sizeof(size_t) * (cnt[i] + 1));
        if (!w->p[i].deals) {
            free(cnt);
            return prm_error_set(err, "out of memory");
        }
    }
    free(cnt);
    /* Deals visited in (created day, load order) - a counting sort by day
     * when the days span less than ~30 years, else qsort - so every
     * partner's list comes out in that order without sorting it. */
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    for (size_t i = 0; i < w->nd; i++) {
        if (w->d[i].created < lo) lo = w->d[i].created;
        if (w->d[i].created > hi) hi = w->d[i].created;
    }
    size_t span = w->nd ? (size_t)((int64_t)hi - lo + 1) : 0;
    size_t *order = malloc(sizeof *order * (w->nd + 1));
    if (!order) return prm_error_set(err, "out of memory");
    size_t *bucket = span <= 11000 ? calloc(span + 1, sizeof *bucket) : NULL;
    if (bucket) {
        for (size_t i = 0; i < w->nd; i++) bucket[w->d[i].created - lo + 1]++;
        for (size_t k = 1; k <= span; k++) bucket[k] += bucket[k - 1];
        for (size_t i = 0; i < w->nd; i++) order[bucket[w->d[i].created - lo]++] = i;
        free(bucket);
    } else {
        for (size_t i = 0; i < w->nd; i++) order[i] = i;
        qsort_r(order, w->nd, sizeof *order, cmp_created, w);
    }
    for (size_t k = 0; k < w->nd; k++) {
        size_t i = order[k];
        if (w->d[i].partner >= 0) {
            wpartner *p = &w->p[w->d[i].partner];
            p->deals[p->nd++] = i;
        }
    }
    free(order);
    return 0;
}

typedef struct resolved_at {
    int64_t t;
    size_t i;
} resolved_at;

/* a before b: newer first; ties: the later-loaded deal first */
static int newer(const resolved_at *a, const resolved_at *b)
{
    return a->t != b->t ? a->t > b->t : a->i > b->i;
}

/* Marks (ORs `bit` into) the k newest of buf[0..n) (reordered): a
 * quickselect, O(n). */
static void mark_newest(resolved_at *buf, size_t n, size_t k, uint8_t *mark, uint8_t bit)
{
    if (k >= n) {
        for (size_t j = 0; j < n; j++) mark[buf[j].i] |= bit;
        return;
    }
    size_t lo = 0, hi = n;                       /* the k-th newest lies in [lo, hi) */
    while (hi - lo > 1) {
        resolved_at piv = buf[lo + (hi - lo) / 2];
        size_t a = lo, b = hi;                   /* [lo,a) newer than piv, [b,hi) not */
        for (size_t j = lo; j < b;) {
            if (newer(&buf[j], &piv)) {
                resolved_at x = buf[a]; buf[a] = buf[j]; buf[j] = x;
                a++, j++;
            } else if (newer(&piv, &buf[j])) {
                b--;
                resolved_at x = buf[b]; buf[b] = buf[j]; buf[j] = x;
            } else {
                j++;
            }
        }
        /* [a, b) equal to piv (one element: the keys are unique) */
        if (k < a) hi = a;
        else if (k >= b) lo = b;
        else break;
    }
    for (size_t j = 0; j < k; j++) mark[buf[j].i] |= bit;
}

/* The k newest deals resolved by `at` of the whole store: a heap of k
 * whose top is the oldest kept (O(n log k), and k entries of memory
 * instead of one per deal). */
static int mark_newest_all(const world *w, int64_t at, size_t k, uint8_t *mark, uint8_t bit)
{
    resolved_at *heap = malloc(sizeof *heap * (k + 1));
    if (!heap) return -1;
    size_t n = 0;
    for (size_t i = 0; i < w->nd; i++) {
        if (w->d[i].outcome_t > at) continue;
        resolved_at x = { w->d[i].outcome_t, i };
        size_t j;
        if (n < k) {                             /* sift up */
            for (j = n++; j > 0 && newer(&heap[(j - 1) / 2], &x); j = (j - 1) / 2) heap[j] = heap[(j - 1) / 2];
        } else if (newer(&x, &heap[0])) {        /* replace the oldest, sift down */
            for (j = 0;;) {
                size_t c = 2 * j + 1;
                if (c >= n) break;
                if (c + 1 < n && newer(&heap[c], &heap[c + 1])) c++;
                if (!newer(&x, &heap[c])) break;
                heap[j] = heap[c];
                j = c;
            }
        } else {
            continue;
        }
        heap[j] = x;
    }
    for (size_t j = 0; j < n; j++) mark[heap[j].i] |= bit;
    free(heap);
    return 0;
}

/* world_recent_resolved's marks as bits: `bp` for the partner windows,
 * `ba` for the store-wide one. */
static int recent_marks(const world *w, int64_t at, size_t k_partner, size_t k_all, uint8_t *mark, uint8_t bp,
                        uint8_t ba)
{
    size_t most = 0, none = 0;
    for (size_t g = 0; g < w->np; g++) most = w->p[g].nd > most ? w->p[g].nd : most;
    for (size_t i = 0; k_partner && i < w->nd; i++) none += w->d[i].partner < 0;
    resolved_at *buf = malloc(sizeof *buf * ((most > none ? most : none) + 1));
    if (!buf) return -1;
    for (size_t g = 0; k_partner && g <= w->np; g++) {   /* g == np: deals without a partner */
        size_t n = 0;
        if (g < w->np) {
            const wpartner *p = &w->p[g];
            for (size_t j = 0; j < p->nd; j++)
                if (w->d[p->deals[j]].outcome_t <= at) buf[n++] = (resolved_at){ w->d[p->deals[j]].outcome_t, p->deals[j] };
        } else {
            for (size_t i = 0; i < w->nd; i++)
                if (w->d[i].partner < 0 && w->d[i].outcome_t <= at) buf[n++] = (resolved_at){ w->d[i].outcome_t, i };
        }
        mark_newest(buf, n, k_partner, mark, bp);
    }
    free(buf);
    return k_all ? mark_newest_all(w, at, k_all, mark, ba) : 0;
}

int world_recent_resolved(const world *w, int64_t at, size_t k_partner, size_t k_all, uint8_t *mark)
{
    /* A world as of T kept both windows at T (world_load_window). */
    if (w->recent && at == w->as_of && (!k_partner || k_partner == WORLD_RECENT) &&
        (!k_all || k_all == w->recent_all)) {
        uint8_t want = (uint8_t)((k_partner ? 1 : 0) | (k_all ? 2 : 0));
        for (size_t i = 0; i < w->nd; i++) mark[i] = (w->recent[i] & want) != 0;
        return 0;
    }
    memset(mark, 0, w->nd);
    return recent_marks(w, at, k_partner, k_all, mark, 1, 1);
}

/* The deals a world as of t reads the full history of (world.h): every
 * deal not settled by t by its current row (open now, or changed after t:
 * possibly open at t; or with no amount in its current row), each
 * partner's last WORLD_RECENT deals created by t
 * and last WORLD_RECENT settled by t, and the store's last
 * w->recent_all (WORLD_RECENT_ALL) settled by t. NULL in *out when that is more
 * than a third of the store: one scan of all history is then cheaper
 * than the indexed reads, and the world is a full one. */
static int as_of_needs(world *w, const whist *cur, int64_t t, uint8_t **out, prm_error *err)
{
    *out = NULL;
    uint8_t *need = calloc(w->nd + 1, 1), *mark = malloc(w->nd + 1);
    if (!need || !mark) {
        free(need);
        free(mark);
        return prm_error_set(err, "out of memory");
    }
    for (size_t i = 0; i < w->nd; i++) {
        const whist *c = &cur[i];
        /* A current row without an amount (history may have it: the
         * amount booked counts) is read in full too. */
        int settled = c->status > STATUS_OPEN && c->stage >= 0 && c->t != INT64_MIN && c->t <= t &&
                      c->amount == c->amount;
        if (settled) w->d[i].outcome_t = c->t;   /* what reconcile will make of it */
        else need[i] = 1;
    }
    int rc = world_recent_resolved(w, t, WORLD_RECENT, w->recent_all, mark);
    for (size_t i = 0; i < w->nd; i++) {
        need[i] |= mark[i];
        w->d[i].outcome_t = INT64_MAX;           /* group_history finds it */
    }
    int32_t today = (int32_t)(t / DAY);
    for (size_t g = 0; g < w->np; g++) {
        const wpartner *p = &w->p[g];
        size_t j = p->nd, took = 0;
        while (j > 0 && w->d[p->deals[j - 1]].created > today) j--;
        for (; j > 0 && took < WORLD_RECENT; j--, took++) need[p->deals[j - 1]] = 1;
    }
    free(mark);
    size_t n = 0;
    for (size_t i = 0; i < w->nd; i++) n += need[i];
    if (rc < 0) {
        free(need);
        return prm_error_set(err, "out of memory");
    }
    if (n * 3 > w->nd) free(need);
    else *out = need;
    return 0;
}

int world_load_window(store *s, int64_t as_of, size_t recent_all, world **out, prm_error *err)
{
    world *w = calloc(1, sizeof *w);
    if (!w) return prm_error_set(err, "out of memory");
    w->recent_all = recent_all;
    size_t hcap = 0;
    uint8_t *need = NULL;
    w->as_of = INT64_MAX;
    if (store_fiscal_start(s, &w->fiscal_start, err) < 0 ||
        store_base_currency(s, w->base, err) < 0) {
        free(w);
        return -1;
    }
    w->base_ccy = -1;
    /* One snapshot of the store (no commit of a concurrent sync between
     * two tables), and one lock for every statement; inside a caller's
     * transaction, that one. */
    int own = !store_in_transaction(s);
    if (store_scan_cache(s, 1, err) < 0 || (own && store_begin_read(s, err) < 0)) {
        store_scan_cache(s, 0, NULL);
        free(w);
        return prm_error_prefix(err, "loading the store: ");
    }
    int brief = as_of != INT64_MAX;
    if (load_partners(s, w, err) < 0 || load_deals(s, w, brief, &hcap, err) < 0 || partner_lists(w, err) < 0 ||
        (brief && (as_of_needs(w, w->h, as_of, &need, err) < 0 || load_rest(s, w, need, err) < 0)) ||
        load_history(s, w, need, &hcap, err) < 0 || load_series(s, w, err) < 0 ||
        load_commits(s, w, err) < 0 || load_quotas(s, w, err) < 0 || load_xtypes(s, w, err) < 0 ||
        load_attrs(s, w, err) < 0 || (own && store_commit(s, err) < 0) || store_scan_cache(s, 0, err) < 0) {
        if (own) store_rollback(s);
        store_scan_cache(s, 0, NULL);
        free(need);
        world_free(w);
        return prm_error_prefix(err, "loading the store: ");
    }
    if (need) {
        w->as_of = as_of;
        for (size_t i = 0; i < w->nd; i++) w->d[i].brief = !need[i];
        /* The recent deals at T, which the features at T ask for twice
         * (feat.c: stage medians, partner statistics). */
        w->recent = calloc(w->nd + 1, 1);
        if (w->recent && recent_marks(w, as_of, WORLD_RECENT, w->recent_all, w->recent, 1, 2) < 0) {
            free(w->recent);
            w->recent = NULL;                    /* out of memory: computed when asked */
        }
    }
    free(need);
    *out = w;
    return 0;
}

int world_load(store *s, world **out, prm_error *err)
{
    return world_load_window(s, INT64_MAX, WORLD_RECENT_ALL, out, err);
}

int world_load_as_of(store *s, int64_t t, world **out, prm_error *err)
{
    return world_load_window(s, t == INT64_MAX ? t - 1 : t, WORLD_RECENT_ALL, out, err);
}

int64_t world_as_of(const world *w) { return w->as_of; }

void world_free(world *w)
{
    if (!w) return;
    if (w->feat_cache && w->feat_cache_free) w->feat_cache_free(w->feat_cache);
    pool_free(&w->ids);
    for (size_t i = 0; i < w->np; i++) {
        free(w->p[i].ext);
        free(w->p[i].deals);
        free(w->p[i].cq);
        free(w->p[i].camt);
        free(w->p[i].ct);
        free(w->p[i].qq);
        free(w->p[i].qamt);
        free(w->p[i].qt);
    }
    if (w->fx)
        for (int i = 0; i <= w->currencies.n; i++) { free(w->fx[i].day); free(w->fx[i].v); }
    if (w->sig) {
        size_t per = (size_t)(w->regions.n > (int)w->np ? w->regions.n : (int)w->np) + 1;
        for (size_t i = 0; i < (size_t)w->sig_names.n * per; i++) { free(w->sig[i].day); free(w->sig[i].v); }
    }
    free(w->fx);
    free(w->sig);
    free(w->d);
    free(w->h);
    free(w->a);
    free(w->p);
    free(w->prow);
    free(w->recent);
    strtab *tabs[] = { &w->tiers, &w->types, &w->regions, &w->products, &w->currencies,
                       &w->sources, &w->competitors, &w->sig_names, &w->pstatuses };
    for (size_t i = 0; i < sizeof tabs / sizeof tabs[0]; i++) strtab_free(tabs[i]);
    for (int k = 0; k < w->nx; k++) {
        free(w->xname[k]);
        strtab_free(&w->xvals[k]);
    }
    free(w->xname);
    free(w->xtype);
    free(w->xvals);
    free(w);
}

int32_t world_attr_i(const world *w, size_t a0, size_t an, int field, int64_t t, int32_t cur)
{
    const wattr *a = w->a + a0;
    int found = 0;
    int32_t first = cur, best = cur;
    for (size_t i = 0; i < an; i++) {
        if (a[i].field != field) continue;
        if (!found) first = a[i].iv;
        found = 1;
        if (a[i].t <= t) best = a[i].iv;
        else break;
    }
    if (!found) return cur;
    /* before the first value: the first stands in */
    for (size_t i = 0; i < an; i++)
        if (a[i].field == field) return a[i].t <= t ? best : first;
    return cur;
}

double world_attr_d(const world *w, size_t a0, size_t an, int field, int64_t t, double cur)
{
    const wattr *a = w->a + a0;
    int found = 0;
    double first = cur, best = cur;
    int64_t t0 = 0;
    for (size_t i = 0; i < an; i++) {
        if (a[i].field != field) continue;
        if (!found) {
            first = a[i].dv;
            t0 = a[i].t;
        }
        found = 1;
        if (a[i].t <= t) best = a[i].dv;
        else break;
    }
    if (!found) return cur;
    return t0 <= t ? best : first;
}

int world_state_at(const world *w, const wdeal *d, int64_t t, wstate *s)
{
    const whist *h = w->h + d->h0;
    size_t lo = 0, hi = d->hn;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (h[mid].t <= t) lo = mid + 1; else hi = mid;
    }
    if (lo == 0) return 0;
    memset(s, 0, sizeof *s);
    s->now = &h[lo - 1];
    s->stage_since = h[0].t;
    for (size_t i = 1; i < lo; i++) {
        if (h[i].stage != h[i - 1].stage) {
            s->stage_since = h[i].t;
            if (h[i].stage >= 0 && h[i].stage < STAGE_OPEN_COUNT && h[i - 1].stage >= 0 &&
                h[i].stage < h[i - 1].stage)
                s->regressions++;
        }
        if (h[i].close_day != INT32_MIN && h[i - 1].close_day != INT32_MIN &&
            h[i].close_day > h[i - 1].close_day) {
            s->slips++;
            s->slipped_days += h[i].close_day - h[i - 1].close_day;
        }
    }
    return 1;
}

int world_open_at(const world *w, const wdeal *d, int64_t t, wstate *s)
{
    if (d->created != INT32_MIN && (int64_t)d->created * DAY > t) return 0;
    if (!world_state_at(w, d, t, s)) return 0;
    return s->now->status == STATUS_OPEN && s->now->stage >= 0 && s->now->stage < STAGE_OPEN_COUNT;
}


double world_amount_base(const world *w, const wdeal *d, double amount, int32_t day)
{
    if (!(amount == amount)) return NAN;
    int c = wd_currency(w, d, (int64_t)day * DAY);
    if (c < 0 || c == w->base_ccy) return amount;
    double to_usd = world_series_at(&w->fx[c], day);
    if (w->base_ccy < 0 || strcmp(w->base, "USD") == 0) return amount * to_usd;
    double base_usd = world_series_at(&w->fx[w->base_ccy], day);
    return amount * to_usd / base_usd;
}

double world_fx(const world *w, const char *currency, int64_t day)
{
    if (!currency || strcmp(currency, w->base) == 0) return 1;
    for (int i = 0; i < w->currencies.n; i++)
        if (strcmp(w->currencies.s[i], currency) == 0) {
            double to_usd = i == w->base_ccy ? 1 : world_series_at(&w->fx[i], (int32_t)day);
            if (strcmp(w->base, "USD") == 0) return strcmp(currency, "USD") == 0 ? 1 : to_usd;
            double base_usd = world_series_at(&w->fx[w->base_ccy], (int32_t)day);
            return (strcmp(currency, "USD") == 0 ? 1 : to_usd) / base_usd;
        }
    return NAN;
}

size_t world_n_deals(const world *w) { return w->nd; }
size_t world_n_partners(const world *w) { return w->np; }
int64_t world_last_observed(const world *w) { return w->last_t; }

int64_t world_first_created(const world *w)
{
    int32_t first = INT32_MAX;
    for (size_t i = 0; i < w->nd; i++)
        if (w->d[i].created != INT32_MIN && w->d[i].created < first) first = w->d[i].created;
    return first == INT32_MAX ? INT64_MIN : (int64_t)first * DAY;
}
int world_fiscal_start(const world *w) { return w->fiscal_start; }
const char *world_base_currency(const world *w) { return w->base; }
const char *world_deal_id(const world *w, size_t i) { return w->d[i].ext; }
const char *world_deal_source(const world *w, size_t i)
{
    return w->d[i].source >= 0 ? w->sources.s[w->d[i].source] : "";
}
int64_t world_deal_rowid(const world *w, size_t i) { return w->d[i].rowid; }

size_t world_conflicts(const world *w, const char **example)
{
    if (example) *example = w->conflicts ? w->conflict_ex[0] : NULL;
    return w->conflicts;
}

long world_find_deal(const world *w, const char *id)
{
    for (size_t i = 0; i < w->nd; i++)
        if (strcmp(w->d[i].ext, id) == 0) return (long)i;
    return -1;
}

int world_deal_open(const world *w, size_t d, int64_t t)
{
    wstate s;
    return world_open_at(w, &w->d[d], t, &s);
}

void deal_view_init(deal_view *v)
{
    memset(v, 0, sizeof *v);
    v->amount = v->amount_base = v->partner_probability = v->completeness = NAN;
    v->partner_win_rate = v->partner_median_amount = v->tier_median_amount = NAN;
    v->budget_confirmed = -1;
    v->stage_index = -1;
}

static const char *name_of(const strtab *t, int i) { return i >= 0 && i < t->n ? t->s[i] : NULL; }

void world_view(const world *w, size_t di, int64_t at, deal_view *v)
{
    static const char provided[] = "(provided)";
    const wdeal *d = &w->d[di];
    const wpartner *p = d->partner >= 0 ? &w->p[d->partner] : NULL;
    deal_view_init(v);
    v->external_id = d->ext;
    v->partner_id = p ? p->ext : NULL;
    if (p) {
        v->tier = name_of(&w->tiers, wp_tier(w, p, at));
        v->partner_type = name_of(&w->types, wp_type(w, p, at));
        v->region = name_of(&w->regions, wp_region(w, p, at));
        int parent = wp_parent(w, p, at);
        v->parent_id = parent >= 0 ? w->p[parent].ext : NULL;
    }
    /* Names and emails are not kept in memory (PII, and size); rules see
     * whether they were provided. */
    v->account = d->present & 1 ? provided : NULL;
    v->contact_name = d->present & 2 ? provided : NULL;
    v->contact_email = d->present & 4 ? provided : NULL;
    v->product_family = name_of(&w->products, wd_product(w, d, at));
    v->currency = name_of(&w->currencies, wd_currency(w, d, at));
    v->competitor = name_of(&w->competitors, wd_competitor(w, d, at));
    v->budget_confirmed = wd_budget(w, d, at);
    v->completeness = wd_completeness(w, d, at);
    if (d->created != INT32_MIN) date_iso((int64_t)d->created * DAY, v->created_at);
    wstate s;
    if (!world_state_at(w, d, at, &s)) return;
    v->known = 1;
    const whist *h = s.now;
    int32_t today = (int32_t)(at / DAY);
    v->stage = h->stage >= 0 ? domain_stage_names[h->stage] : NULL;
    v->stage_index = h->stage;
    v->status = h->status >= 0 ? domain_status_names[h->status] : NULL;
    v->amount = h->amount;
    v->amount_base = world_amount_base(w, d, h->amount, today);
    v->partner_probability = h->prob;
    if (h->close_day != INT32_MIN) {
        date_iso((int64_t)h->close_day * DAY, v->expected_close);
        v->has_close = 1;
    }
    if (h->status > STATUS_OPEN) date_iso(h->t, v->closed_at);
    instant_iso(s.stage_since, v->stage_changed_at);
    instant_iso(h->t, v->updated_at);
    v->age_days = d->created != INT32_MIN ? today - d->created : 0;
    v->days_in_stage = (int)((at - s.stage_since) / DAY);
    v->close_date_slips = s.slips;
    v->days_slipped = s.slipped_days;
    v->stage_regressions = s.regressions;
}

int world_pipeline(const world *w, int64_t t, pipeline_cell **cells, size_t *n, prm_error *err)
{
    size_t cap = 64, k = 0;
    pipeline_cell *c = calloc(cap, sizeof *c);
    if (!c) return prm_error_set(err, "out of memory");
    for (size_t i = 0; i < w->nd; i++) {
        wstate s;
        if (!world_open_at(w, &w->d[i], t, &s)) continue;
        const whist *h = s.now;
        int fy = 0, q = 0;
        if (h->close_day != INT32_MIN) fiscal_quarter(h->close_day, w->fiscal_start, &fy, &q);
        size_t j = 0;
        while (j < k && !(c[j].stage == h->stage && c[j].fy == fy && c[j].q == q)) j++;
        if (j == k) {
            if (k == cap) {
                pipeline_cell *nc = realloc(c, sizeof *c * cap * 2);
                if (!nc) {
                    free(c);
                    return prm_error_set(err, "out of memory");
                }
                c = nc;
                cap *= 2;
            }
            memset(&c[k], 0, sizeof c[k]);
            c[k].stage = h->stage;
            c[k].fy = fy;
            c[k].q = q;
            k++;
        }
        c[j].deals++;
        double a = world_amount_base(w, &w->d[i], h->amount, (int32_t)(t / DAY));
        if (h->amount == h->amount && a != a) c[j].no_rate++;
        else if (a == a) c[j].amount += a;
    }
    *cells = c;
    *n = k;
    return 0;
}
