/* lcsvlib.c - `prm.csv`: a streaming RFC 4180 reader over libcsv.
 *
 *   local csv = require "prm.csv"
 *   local r <close> = assert(csv.open("export/deals.csv"))
 *   print(table.concat(r:header(), ","))
 *   while true do
 *     local rec, line, msg = r:read()      -- rec keyed by header name
 *     if rec == nil then break end         -- end of file
 *     if rec == false then print(line, msg) else ... end
 *   end
 *
 * Quoted fields, embedded newlines, CRLF and a UTF-8 BOM are handled; empty
 * fields are absent (nil) from the record. Memory is bounded by the
 * longest record (max_record, 1 MiB by default), not the file size. Each
 * record carries the physical line it starts on, so errors point at it.
 */
#include <csv.h>
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "currency.h"
#include "json.h"
#include "numparse.h"
#include "store.h"
#include "textbuf.h"
#include "timeutil.h"
#include "jsonscan.h"
#include "lprm.h"

#define CSV_MT "prm.csv.reader"

enum { PK_TEXT, PK_MONEY, PK_NUMBER, PK_DATE, PK_INSTANT, PK_PERCENT, PK_BOOL, PK_LOOKUP,
       PK_CURRENCY, PK_COMPLETENESS, PK_QUARTER, PK_JOIN };
static const char *const plan_kinds[] = { "text", "money", "number", "date", "instant", "percent",
                                          "bool", "lookup", "currency", "completeness", "quarter",
                                          "join", NULL };

/* Values a plan item remembers: a lookup or yes/no column has a handful of
 * labels, so 8 answer nearly every row (the 20k export: with one value
 * remembered 213k lookups went to the table, with eight 38 do);
 * the other kinds keep one, since their result lives in the item's buffer
 * or their values rarely come back after another. */
enum { PLAN_MEMO = 8 };

/* One field of a declared mapping, compiled to a column index. */
typedef struct plan_item {
    char *field;               /* the store's field name */
    int col;                   /* header column, -1: the file has none */
    int kind;
    double num;                /* money scale; percent scale */
    date_format fmt;
    int lookup;                /* index of its table in uservalue 3 */
    struct {                   /* values converted last: as read (n bytes; 0: none) and */
        char raw[48];          /* what each became (text in buf or a lookup table) */
        size_t n;
        store_value v;
    } memo[PLAN_MEMO];
    int memo_next;             /* the slot the next new value takes */
    int keep;                  /* lookup: a value the table lacks passes as it is */
    int *cols, ncols;          /* completeness: the columns counted; join: joined */
    char *sep;                 /* join: the separator */
    char *dflt;                /* the value when the record has none (text), or NULL */
    char *jbuf;                /* join: the joined text */
    size_t jcap;
    int sfield;                /* index in the store object's fields (r:load) */
    char buf[24];              /* a converted date, instant or currency */
} plan_item;

/* libcsv's parser states (libcsv.c): before a row's first character, and
 * inside a field (with p.quoted: inside a quoted field). */
#define CSV_ROW_NOT_BEGUN 0
#define CSV_FIELD_BEGUN 2

typedef struct lcsv {
    FILE *f;
    struct csv_parser p;
    int parser_live;
    char *line;
    size_t cap;
    long lineno, row_start;
    off_t line_off;            /* file offset of the line read last */
    int in_quote;              /* a quoted field is open at the end of the line */
    int line_suspect;          /* the line being parsed has a NUL or invalid UTF-8 */
    int row_suspect;           /* so has a line of the row being read: check its fields */
    long quote_line;           /* the line on which that quote opened */
    off_t quote_off;           /* and that line's offset */
    char row_err[200];         /* the row's first bad field, "" when none */
    size_t max_record, record_bytes;
    char **hnames;             /* header names, for the field callback */
    int nheader;
    int in_header;
    unsigned char delim;
    /* parse-time state, valid during one read() */
    lua_State *L;
    int rec_idx;               /* stack index of the record being filled */
    int nfields;
    /* the row being read: its fields' bytes, NUL-terminated, in one arena */
    char *arena;
    size_t alen, acap;
    size_t *foff, *flen;       /* per header column; flen 0: absent */
    int fcap;
    /* r:map(spec): records come out mapped to the store's fields */
    struct plan_item *plan;
    int nplan;
    struct load_ctx *load;     /* r:load in progress: rows go to the store */
    struct chunk *chunks;      /* r:load's writer chunks, kept between calls (each is
                                  ~0.7 MB: fresh ones per call cost page faults) */
    /* csv.json_reader: records of JSON pages, the header their leaf paths */
    json_walker *jw;
    int *jhash, jhcap;         /* header path -> column + 1, open addressing */
    int *jkind;                /* per column: the JSON kind of the record's value */
    /* completed records waiting to be returned */
    long *qline;
    char **qerr;
    int qhead, qtail, qcap;
    int eof;
    char path[512];
} lcsv;

/* Keeps field i of the row being read (NUL-terminated for the parsers). */
static int arena_put(lcsv *r, int i, const void *s, size_t len)
{
    if (i >= r->fcap) {
        int n = r->nheader > i ? r->nheader : i + 1;
        size_t *fo = realloc(r->foff, sizeof *fo * (size_t)n);
        if (!fo) return -1;
        r->foff = fo;
        size_t *fl = realloc(r->flen, sizeof *fl * (size_t)n);
        if (!fl) return -1;
        r->flen = fl;
        for (int k = r->fcap; k < n; k++) r->flen[k] = 0;
        r->fcap = n;
    }
    if (r->alen + len + 1 > r->acap) {
        size_t n = r->acap ? r->acap : 4096;
        while (n < r->alen + len + 1) n *= 2;
        char *a = realloc(r->arena, n);
        if (!a) return -1;
        r->arena = a;
        r->acap = n;
    }
    memcpy(r->arena + r->alen, s, len);
    r->arena[r->alen + len] = 0;
    r->foff[i] = r->alen;
    r->flen[i] = len;
    r->alen += len + 1;
    return 0;
}

static void arena_clear(lcsv *r)
{
    for (int k = 0; k < r->fcap; k++) r->flen[k] = 0;
    r->alen = 0;
}

static int apply_plan(lua_State *L, lcsv *r, char *err, size_t errcap);
struct plan_item;
static int convert(lua_State *L, lcsv *r, struct plan_item *it, store_value *out, prm_error *pe);
static int convert_value(lua_State *L, lcsv *r, struct plan_item *it, store_value *out, prm_error *pe);

/* The row as a record: keyed by header name, or mapped by r:map's plan.
 * Returns 0 with the record pushed, or -1 with err set (nothing pushed).
 * [-0, +(0|1), m] */
static int push_record(lua_State *L, lcsv *r, char *err, size_t errcap)
{
    if (r->plan) return apply_plan(L, r, err, errcap);
    lua_createtable(L, 0, r->nheader);
    for (int k = 0; k < r->nheader && k < r->fcap; k++)
        if (r->flen[k]) {
            lua_pushlstring(L, r->arena + r->foff[k], r->flen[k]);
            lua_setfield(L, -2, r->hnames[k]);
        }
    return 0;
}

static void cb_field(void *s, size_t len, void *data)
{
    lcsv *r = data;
    lua_State *L = r->L;
    int i = r->nfields++;
    if (r->in_header) {
        /* Header names are trimmed: exports often pad them. */
        const char *p = s ? s : "";
        while (len && (*p == ' ' || *p == '\t')) { p++; len--; }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        if (i < r->nheader) {            /* a header line read again: replace */
            free(r->hnames[i]);
            r->hnames[i] = strndup(p, len);
            if (!r->hnames[i]) luaL_error(L, "out of memory");
            return;
        }
        char **h = realloc(r->hnames, sizeof *h * (size_t)(i + 1));
        if (!h) { luaL_error(L, "out of memory"); return; }
        r->hnames = h;
        h[i] = strndup(p, len);
        if (!h[i]) luaL_error(L, "out of memory");
        r->nheader = i + 1;
        return;
    }
    if (i < r->nheader && s && len) {
        if (arena_put(r, i, s, len) < 0) { luaL_error(L, "out of memory"); return; }
        /* A NUL would truncate the value where it is stored, and invalid
         * UTF-8 would break every JSON output later: the row is refused.
         * feed checked each line whole (the delimiters, quotes and line
         * ends are ASCII, so a clean line has only clean fields); only a
         * row with a suspect line looks field by field, to name the column. */
        size_t bad;
        if (!r->row_suspect) return;
        if (!r->row_err[0] && memchr(s, 0, len))
            snprintf(r->row_err, sizeof r->row_err, "NUL byte in column '%.60s' (byte %zu of the value)",
                     r->hnames[i], (size_t)((const char *)memchr(s, 0, len) - (const char *)s) + 1);
        else if (!r->row_err[0] && !utf8_valid(s, len, &bad))
            snprintf(r->row_err, sizeof r->row_err, "invalid UTF-8 in column '%.60s' (byte %zu of the value)",
                     r->hnames[i], bad + 1);
    }
}

/* may raise (memory) */
static void enqueue(lcsv *r, long line, char *err)
{
    if (r->qtail == r->qcap) {
        int n = r->qcap ? r->qcap * 2 : 8;
        long *ql = realloc(r->qline, sizeof *r->qline * (size_t)n);
        if (ql) r->qline = ql;
        char **qe = ql ? realloc(r->qerr, sizeof *r->qerr * (size_t)n) : NULL;
        if (qe) r->qerr = qe;
        if (!ql || !qe) {
            free(err);
            luaL_error(r->L, "out of memory");
        }
        r->qcap = n;
    }
    r->qline[r->qtail] = line;
    r->qerr[r->qtail] = err;
    r->qtail++;
}

/* r:load's state for one call. */
typedef struct load_ctx {
    store *s;
    const store_object *o;
    const char *source;
    lua_Integer start;
    int fault;                 /* stack index of the fault hook, 0: none */
    int rej;                   /* stack index of the rejects list */
    lua_Integer nrej, nread, nwritten, nunchanged, last;
    lua_Integer npending;      /* history rows waiting for store_history_flush */
    lua_Integer max;           /* rows to read in this call */
    struct wpipe *pipe;         /* the writer thread's queue, NULL: rows upserted here */
} load_ctx;

/* ---- r:load's writer thread -------------------------------------------- */

/* With two threads (PRMCAST_THREADS=2) r:load parses and
 * converts rows on the calling thread and upserts them on a writer thread,
 * which owns the store for the call: the calling thread touches neither
 * the store nor SQLite until the writer is joined. Rows travel in chunks
 * of CHUNK_ROWS with their text copied, through a bounded queue
 * (PIPE_DEPTH chunks), in file order; a row the parser refuses travels as
 * its reject, so the writer records every reject in line order. On the
 * 20k export the upserts are ~2/3 of r:load's instructions and parsing
 * and conversion the rest (bench/RESULTS.md, Ingest), so the two could
 * overlap on two cores; measured, they hardly do (load_threads), so this
 * runs only with PRMCAST_THREADS=2. */
enum { CHUNK_ROWS = 1024, PIPE_DEPTH = 3 };

typedef struct chunk {
    int n, nf;
    long line[CHUNK_ROWS];
    uint32_t iso[CHUNK_ROWS];
    ptrdiff_t msg[CHUNK_ROWS];     /* a parse-side reject's text offset, -1: a row to upsert */
    store_value *v;                /* CHUNK_ROWS x nf values */
    ptrdiff_t *toff;               /* each value's text offset, -1: none */
    char *text;
    size_t tlen, tcap;
    struct chunk *next;
} chunk;

typedef struct wpipe {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t can_take, can_put;
    chunk *head, *tail;            /* filled, in order */
    chunk *spare;                  /* emptied by the writer */
    int queued, done;
    int nf;
    chunk *cur;                    /* being filled by the parser */
    load_ctx *lc;
    struct chunk **keep;           /* where the chunks go after the call (lcsv.chunks) */
    long *rline;                   /* rejects, in line order (the writer's) */
    char **rmsg;
    size_t nrej, rcap;
    int oom;
    char *failed;                  /* a history flush failed: the call fails */
} wpipe;

static void chunk_free(chunk *c)
{
    if (!c) return;
    free(c->v);
    free(c->toff);
    free(c->text);
    free(c);
}

static chunk *chunk_new(int nf)
{
    chunk *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->v = malloc(sizeof *c->v * (size_t)(CHUNK_ROWS * nf));
    c->toff = malloc(sizeof *c->toff * (size_t)(CHUNK_ROWS * nf));
    if (!c->v || !c->toff) { chunk_free(c); return NULL; }
    c->nf = nf;
    return c;
}

static ptrdiff_t chunk_text(chunk *c, const char *s)
{
    return textbuf_add(&c->text, &c->tlen, &c->tcap, 1 << 15, s);
}

static void pipe_reject(wpipe *p, long line, const char *msg)
{
    if (p->nrej == p->rcap) {
        size_t cap = p->rcap ? p->rcap * 2 : 64;
        long *l = realloc(p->rline, sizeof *l * cap);
        if (l) p->rline = l;
        char **m = l ? realloc(p->rmsg, sizeof *m * cap) : NULL;
        if (m) p->rmsg = m;
        if (!l || !m) { p->oom = 1; return; }
        p->rcap = cap;
    }
    char *d = strdup(msg);
    if (!d) { p->oom = 1; return; }
    p->rline[p->nrej] = line;
    p->rmsg[p->nrej++] = d;
}

/* The writer: upserts each chunk's rows in order. */
static void *pipe_writer(void *arg)
{
    wpipe *p = arg;
    load_ctx *lc = p->lc;
    store_value v[32];
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->done) pthread_cond_wait(&p->can_take, &p->mu);
        chunk *c = p->head;
        if (c) {
            p->head = c->next;
            if (!p->head) p->tail = NULL;
            p->queued--;
        }
        pthread_mutex_unlock(&p->mu);
        if (!c) return NULL;
        for (int i = 0; i < c->n; i++) {
            if (c->msg[i] >= 0) {
                pipe_reject(p, c->line[i], c->text + c->msg[i]);
                continue;
            }
            const store_value *src = c->v + (size_t)i * (size_t)p->nf;
            const ptrdiff_t *off = c->toff + (size_t)i * (size_t)p->nf;
            for (int k = 0; k < p->nf; k++) {
                v[k] = src[k];
                if (off[k] >= 0) v[k].s = c->text + off[k];
            }
            prm_error err;
            int written = 0;
            if (store_upsert_iso(lc->s, lc->o, v, c->iso[i], &written, &err) < 0)
                pipe_reject(p, c->line[i], err.msg);
            else if (written == STORE_PENDING) lc->npending++;
            else if (written) lc->nwritten++;
            else lc->nunchanged++;
        }
        /* The chunk's history rows are written here too, not after the
         * join on the parsing thread. */
        int64_t changed = 0;
        prm_error ferr;
        if (!p->failed && lc->npending) {
            if (store_history_flush(lc->s, &changed, &ferr) < 0) p->failed = strdup(ferr.msg);
            lc->nwritten += changed;
            lc->nunchanged += lc->npending - changed;
            lc->npending = 0;
        }
        c->n = 0;
        c->tlen = 0;
        pthread_mutex_lock(&p->mu);
        c->next = p->spare;
        p->spare = c;
        pthread_cond_signal(&p->can_put);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Hands the parser's chunk to the writer and takes an empty one (waiting
 * while PIPE_DEPTH chunks are queued). 0, or -1 out of memory. */
static int pipe_submit(wpipe *p)
{
    chunk *c = p->cur;
    pthread_mutex_lock(&p->mu);
    while (p->queued >= PIPE_DEPTH) pthread_cond_wait(&p->can_put, &p->mu);
    c->next = NULL;
    if (p->tail) p->tail->next = c;
    else p->head = c;
    p->tail = c;
    p->queued++;
    pthread_cond_signal(&p->can_take);
    chunk *n = p->spare;
    if (n) p->spare = n->next;
    pthread_mutex_unlock(&p->mu);
    p->cur = n ? n : chunk_new(p->nf);
    return p->cur ? 0 : -1;
}

/* A row (values borrowed from the parser's buffers) or, with msg, a
 * reject, appended in order. may raise (memory) */
static void pipe_put(lua_State *L, wpipe *p, long line, const store_value *v, uint32_t iso, const char *msg)
{
    chunk *c = p->cur;
    int i = c->n;
    c->line[i] = line;
    c->iso[i] = iso;
    c->msg[i] = -1;
    if (msg) {
        if ((c->msg[i] = chunk_text(c, msg)) < 0) luaL_error(L, "out of memory");
    } else {
        store_value *d = c->v + (size_t)i * (size_t)p->nf;
        ptrdiff_t *off = c->toff + (size_t)i * (size_t)p->nf;
        for (int k = 0; k < p->nf; k++) {
            d[k] = v[k];
            off[k] = -1;
            if (v[k].kind == SV_TEXT && (off[k] = chunk_text(c, v[k].s)) < 0) luaL_error(L, "out of memory");
        }
    }
    c->n++;
    if (c->n == CHUNK_ROWS && pipe_submit(p) < 0) luaL_error(L, "out of memory");
}

/* PRMCAST_THREADS: 2 (or more) runs r:load's writer thread; unset or 1,
 * one thread. One is the default because two did not pay: on an idle
 * machine (2026-12-02, the 100k export) two threads took 2.7-2.95 s wall
 * and 3.0 CPU s against one thread's 2.45-2.6 s wall and 2.25 CPU s
 * (1.1 CPUs used: the per-batch join and commit, the index build and the
 * WAL writes stay serial; bench/RESULTS.md, Ingest). */
static int load_threads(void)
{
    const char *e = getenv("PRMCAST_THREADS");
    return e && *e && atoi(e) >= 2 ? 2 : 1;
}

/* Starts the writer; 0, or -1 (then the caller upserts on its own thread). */
static int pipe_start(wpipe *p, load_ctx *lc, struct chunk **keep)
{
    memset(p, 0, sizeof *p);
    p->lc = lc;
    p->nf = lc->o->nfields;
    p->keep = keep;
    /* chunks of an earlier call, if made for as many fields */
    while (*keep) {
        chunk *c = *keep;
        *keep = c->next;
        if (c->nf == p->nf) { c->next = p->spare; p->spare = c; }
        else chunk_free(c);
    }
    if (p->spare) { p->cur = p->spare; p->spare = p->cur->next; }
    else p->cur = chunk_new(p->nf);
    if (!p->cur) return -1;
    p->cur->n = 0;
    p->cur->tlen = 0;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->can_take, NULL);
    pthread_cond_init(&p->can_put, NULL);
    /* Signals stay with the calling thread (the sandbox's deadline signal
     * targets it; SIGINT should too). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&p->th, NULL, pipe_writer, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        chunk_free(p->cur);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->can_take);
        pthread_cond_destroy(&p->can_put);
        return -1;
    }
    return 0;
}

/* Queues what the parser holds, lets the writer finish and joins it. */
static void pipe_finish(wpipe *p)
{
    pthread_mutex_lock(&p->mu);
    if (p->cur && p->cur->n) {
        chunk *c = p->cur;
        c->next = NULL;
        if (p->tail) p->tail->next = c;
        else p->head = c;
        p->tail = c;
        p->queued++;
        p->cur = NULL;
    }
    p->done = 1;
    pthread_cond_signal(&p->can_take);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
}

static void pipe_free(wpipe *p)
{
    if (p->cur) { p->cur->next = p->spare; p->spare = p->cur; p->cur = NULL; }
    for (chunk *c = p->head, *n; c; c = n) { n = c->next; chunk_free(c); }
    for (chunk *c = p->spare, *n; c; c = n) {     /* kept for the next call */
        n = c->next;
        c->n = 0;
        c->tlen = 0;
        c->next = *p->keep;
        *p->keep = c;
    }
    for (size_t i = 0; i < p->nrej; i++) free(p->rmsg[i]);
    free(p->rline);
    free(p->rmsg);
    free(p->failed);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->can_take);
    pthread_cond_destroy(&p->can_put);
}

/* A row of line `line` for r:load: counted, then stored or rejected. */
static void load_reject(lua_State *L, load_ctx *lc, long line, const char *msg)
{
    if (lc->pipe) {                        /* in line order with the writer's */
        pipe_put(L, lc->pipe, line, NULL, 0, msg);
        return;
    }
    lua_pushinteger(L, line);
    lua_rawseti(L, lc->rej, ++lc->nrej);
    lua_pushstring(L, msg);
    lua_rawseti(L, lc->rej, ++lc->nrej);
}

static int load_begin_row(lua_State *L, load_ctx *lc, long line)
{
    if (line <= lc->start) return 0;       /* committed by an earlier run */
    if (lc->fault) {
        lua_pushvalue(L, lc->fault);
        lua_pushliteral(L, "ingest.row");
        lua_call(L, 1, 0);
    }
    lc->nread++;
    lc->last = line;
    return 1;
}

/* The bit of store_upsert_iso's iso_made for a converted value: set when
 * the converter wrote the date or instant text itself (date_iso /
 * instant_iso into the item's buffer), not for a declared default. */
static uint32_t iso_bit(const plan_item *it, const store_value *out, int rc)
{
    if (rc != 1 || (it->kind != PK_DATE && it->kind != PK_INSTANT) || it->sfield >= 32) return 0;
    return out->kind == SV_TEXT && out->s == it->buf ? 1u << it->sfield : 0;
}

/* The current row, mapped by the plan, upserted. may raise (memory) */
static void load_row(lua_State *L, lcsv *r, load_ctx *lc)
{
    if (!load_begin_row(L, lc, r->row_start)) return;
    char buf[300];
    if (r->row_err[0]) { load_reject(L, lc, r->row_start, r->row_err); return; }
    if (r->nfields != r->nheader) {
        snprintf(buf, sizeof buf, "expected %d fields, found %d", r->nheader, r->nfields);
        load_reject(L, lc, r->row_start, buf);
        return;
    }
    store_value v[32];
    for (int i = 0; i < lc->o->nfields; i++) v[i] = (store_value){ SV_NULL, NULL, 0, 0 };
    v[0].kind = SV_TEXT;
    v[0].s = lc->source;
    uint32_t iso_made = 0;         /* fields date_iso / instant_iso wrote */
    for (int k = 0; k < r->nplan; k++) {
        plan_item *it = &r->plan[k];
        prm_error pe;
        int rc = convert(L, r, it, &v[it->sfield], &pe);
        if (rc < 0) {
            snprintf(buf, sizeof buf, "%.100s: %.180s", it->col >= 0 ? r->hnames[it->col] : "", pe.msg);
            load_reject(L, lc, r->row_start, buf);
            return;
        }
        iso_made |= iso_bit(it, &v[it->sfield], rc);
    }
    if (lc->pipe) {
        pipe_put(L, lc->pipe, r->row_start, v, iso_made, NULL);
        return;
    }
    prm_error err;
    int written = 0;
    if (store_upsert_iso(lc->s, lc->o, v, iso_made, &written, &err) < 0) {
        load_reject(L, lc, r->row_start, err.msg);
        return;
    }
    if (written == STORE_PENDING) lc->npending++;
    else if (written) lc->nwritten++;
    else lc->nunchanged++;
}

static void cb_row(int c, void *data)
{
    lcsv *r = data;
    lua_State *L = r->L;
    (void)c;
    if (r->load && !r->in_header) {
        load_row(L, r, r->load);
        r->nfields = 0;
        r->record_bytes = 0;
        r->row_err[0] = 0;
        r->in_quote = 0;
        r->row_suspect = r->line_suspect;
        arena_clear(r);
        return;
    }
    if (r->in_header) {
        r->nheader = r->nfields;
        r->in_header = 0;
    } else {
        char *err = NULL;
        char buf[300];
        int pushed = 0;
        if (r->row_err[0]) {
            err = strdup(r->row_err);
        } else if (r->nfields != r->nheader) {
            snprintf(buf, sizeof buf, "expected %d fields, found %d", r->nheader, r->nfields);
            err = strdup(buf);
        } else if (push_record(L, r, buf, sizeof buf) < 0) {
            err = strdup(buf);
        } else {
            pushed = 1;
        }
        if (!pushed && !err) luaL_error(L, "out of memory");
        if (pushed) {
            /* queue[tail] = record (uservalue 1 is the queue of records) */
            lua_getiuservalue(L, 1, 1);
            lua_insert(L, -2);
            lua_rawseti(L, -2, r->qtail + 1);
            lua_pop(L, 1);
        }
        enqueue(r, r->row_start, err);
    }
    r->nfields = 0;
    r->record_bytes = 0;
    r->row_err[0] = 0;
    r->in_quote = 0;
    r->row_suspect = r->line_suspect;
    arena_clear(r);
}

static void reset_parser(lcsv *r)
{
    if (r->parser_live) csv_free(&r->p);
    csv_init(&r->p, CSV_STRICT | CSV_STRICT_FINI | CSV_EMPTY_IS_NULL);
    r->parser_live = 1;
    r->nfields = 0;
    r->record_bytes = 0;
    r->row_err[0] = 0;
    r->in_quote = 0;
    r->row_suspect = 0;
    arena_clear(r);
}

/* A quote opened on line q never closed (the file ended, or the record
 * outgrew max_record): without care everything after it would be one
 * field. The row is rejected naming the line and what it swallowed, and
 * reading starts again on the line after the quote's, so the rows that
 * follow are read as rows. Each recovery moves past a later line than the
 * one before, so this ends. may raise (memory) */
static void recover_quote(lcsv *r, const char *why)
{
    char buf[300];
    long q = r->in_quote ? r->quote_line : r->row_start;
    off_t qoff = r->in_quote ? r->quote_off : r->line_off;
    if (q == r->row_start)
        snprintf(buf, sizeof buf, "unclosed quote opened on line %ld: %s, taking lines %ld-%ld into"
                 " one field; the row is rejected and reading resumes on line %ld",
                 q, why, q, r->lineno, q + 1);
    else
        snprintf(buf, sizeof buf, "unclosed quote opened on line %ld (row from line %ld): %s, taking"
                 " lines %ld-%ld into one field; the row is rejected and reading resumes on line %ld",
                 q, r->row_start, why, q, r->lineno, q + 1);
    char *e = strdup(buf);
    if (!e) luaL_error(r->L, "out of memory");
    enqueue(r, r->row_start, e);
    lua_newtable(r->L);
    lua_replace(r->L, r->rec_idx);
    reset_parser(r);
    csv_set_delim(&r->p, r->delim);
    r->eof = 0;
    clearerr(r->f);
    if (fseeko(r->f, qoff, SEEK_SET) != 0 || getline(&r->line, &r->cap, r->f) < 0) {
        r->eof = 1;
        return;
    }
    r->lineno = q;
}

/* Feeds one more physical line; at end of file flushes the last record.
 * Returns 0, or -1 at end of input. may raise (memory) */
static int feed(lcsv *r)
{
    off_t off = ftello(r->f);
    ssize_t n = getline(&r->line, &r->cap, r->f);
    if (n < 0) {
        if (!r->eof) {
            r->eof = 1;
            if (r->in_quote && !r->in_header) {
                recover_quote(r, "the file ended inside it");
                return 0;
            }
            if (csv_fini(&r->p, cb_field, cb_row, r) != 0 && !r->in_header) {
                char *e = strdup("malformed last row");
                if (!e) luaL_error(r->L, "out of memory");
                enqueue(r, r->row_start, e);
            }
        }
        return -1;
    }
    r->line_off = off;
    r->lineno++;
    const char *s = r->line;
    if (r->lineno == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) { s += 3; n -= 3; }
    if (r->p.pstate == CSV_ROW_NOT_BEGUN) r->row_start = r->lineno;
    r->line_suspect = memchr(s, 0, (size_t)n) || !utf8_valid(s, (size_t)n, NULL);
    r->row_suspect |= r->line_suspect;
    r->record_bytes += (size_t)n;
    if (r->record_bytes > r->max_record && !r->in_header) {
        /* Only an open quote lets a record span lines. */
        char why[80];
        snprintf(why, sizeof why, "the record outgrew %zu bytes", r->max_record);
        recover_quote(r, why);
        return 0;
    }
    if (csv_parse(&r->p, s, (size_t)n, cb_field, cb_row, r) != (size_t)n) {
        char buf[200];
        if (csv_error(&r->p) == CSV_EPARSE)
            snprintf(buf, sizeof buf, "malformed CSV on line %ld: a quote inside a field (quote the"
                     " field and double the quote); the rest of the row is rejected", r->lineno);
        else
            snprintf(buf, sizeof buf, "malformed CSV on line %ld: %s", r->lineno,
                     csv_strerror(csv_error(&r->p)));
        char *e = strdup(buf);
        if (!e) luaL_error(r->L, "out of memory");
        enqueue(r, r->row_start, e);
        if (r->in_header) return -1;      /* csv.open refuses the file */
        lua_newtable(r->L);
        lua_replace(r->L, r->rec_idx);
        reset_parser(r);
        csv_set_delim(&r->p, r->delim);
        return 0;
    }
    if (r->p.pstate == CSV_FIELD_BEGUN && r->p.quoted) {
        if (!r->in_quote) {
            r->in_quote = 1;
            r->quote_line = r->lineno;
            r->quote_off = r->line_off;
        }
    } else {
        r->in_quote = 0;
    }
    return 0;
}

/* ---- declared mappings (r:map) ---------------------------------------- */

/* The key map.lookup compares: lower case, runs of spaces, '_' and '-' as
 * one space, no space at either end (prm.map's norm). */
static size_t norm_key(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    int sp = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '_' || c == '-' || (c >= '\t' && c <= '\r')) { sp = 1; continue; }
        if (sp && k) out[k++] = ' ';
        sp = 0;
        if (k + 1 < cap) out[k++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    out[k] = 0;
    return k;
}

/* Trimmed copy of a value for the date parsers (prm.date trims spaces). */
static const char *trimmed(const char *s, char *buf, size_t cap)
{
    while (*s == ' ') s++;
    size_t n = strlen(s);
    if (n >= cap) n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = 0;
    while (n && buf[n - 1] == ' ') buf[--n] = 0;
    return buf;
}

/* Converts item it of the current row into *out (text borrowed from the
 * row's arena, the item's buffer or a lookup table, all alive until the
 * next row). Returns 1, 0 when the value is absent, or -1 with pe set to
 * the reason (without the column). [-0, +0, m] */
static int convert_value(lua_State *L, lcsv *r, struct plan_item *it, store_value *out, prm_error *pe)
{
    *out = (store_value){ SV_NULL, NULL, 0, 0 };
    if (it->kind == PK_COMPLETENESS) {
        int have = 0;
        for (int j = 0; j < it->ncols; j++)
            have += it->cols[j] >= 0 && it->cols[j] < r->fcap && r->flen[it->cols[j]] > 0;
        out->kind = SV_REAL;
        out->r = it->ncols ? (double)have / it->ncols : 0;
        return 1;
    }
    if (it->kind == PK_JOIN) {
        /* The first column's value, then each further one present after the
         * separator; absent without the first (a contact's first name). */
        size_t o = 0, sl = strlen(it->sep);
        for (int j = 0; j < it->ncols; j++) {
            int c = it->cols[j];
            if (c < 0 || c >= r->fcap || !r->flen[c]) {
                if (j == 0) return 0;
                continue;
            }
            size_t need = o + (j ? sl : 0) + r->flen[c] + 1;
            if (need > it->jcap) {
                size_t nc = need * 2;
                char *b = realloc(it->jbuf, nc);
                if (!b) { snprintf(pe->msg, sizeof pe->msg, "out of memory"); return -1; }
                it->jbuf = b;
                it->jcap = nc;
            }
            if (j) { memcpy(it->jbuf + o, it->sep, sl); o += sl; }
            memcpy(it->jbuf + o, r->arena + r->foff[c], r->flen[c]);
            o += r->flen[c];
        }
        it->jbuf[o] = 0;
        out->kind = SV_TEXT;
        out->s = it->jbuf;
        return 1;
    }
    if (it->col < 0 || it->col >= r->fcap || !r->flen[it->col]) return 0;   /* absent */
    const char *v = r->arena + r->foff[it->col];
    size_t n = r->flen[it->col];
    char *buf = it->buf;
    int64_t secs;
    switch (it->kind) {
    case PK_TEXT:
        out->kind = SV_TEXT;
        out->s = v;
        return 1;
    case PK_MONEY:
        if (money_parse(v, n, &out->r, pe) < 0) return -1;
        out->kind = SV_REAL;
        out->r *= it->num;
        return 1;
    case PK_NUMBER: {
        char *end;
        out->r = strtod(v, &end);
        if (end == v || *end || out->r != out->r || out->r - out->r != 0 || strpbrk(v, "xXnN")) {
            snprintf(pe->msg, sizeof pe->msg, "not a number: \"%.60s\"", v);
            return -1;
        }
        out->kind = SV_REAL;
        return 1;
    }
    case PK_DATE:
    case PK_INSTANT: {
        char tb[96];
        if (date_parse(trimmed(v, tb, sizeof tb), it->fmt, &secs, pe) < 0) return -1;
        if (it->kind == PK_DATE) date_iso(secs, buf);
        else instant_iso(secs, buf);
        out->kind = SV_TEXT;
        out->s = buf;
        return 1;
    }
    case PK_PERCENT:
        if (percent_parse(v, n, (int)it->num, &out->r, pe) < 0) return -1;
        out->kind = SV_REAL;
        return 1;
    case PK_BOOL: {
        static const char *const yes[] = { "yes", "y", "true", "1", NULL };
        static const char *const no[] = { "no", "n", "false", "0", NULL };
        char nb[16];
        norm_key(v, n, nb, sizeof nb);
        int b = -1;
        for (int j = 0; yes[j]; j++) if (strcmp(nb, yes[j]) == 0) b = 1;
        for (int j = 0; no[j]; j++) if (strcmp(nb, no[j]) == 0) b = 0;
        if (b < 0) { snprintf(pe->msg, sizeof pe->msg, "not yes/no: \"%.60s\"", v); return -1; }
        out->kind = SV_INT;
        out->i = b;
        return 1;
    }
    case PK_LOOKUP: {
        char kb[128];
        size_t kn = norm_key(v, n, kb, sizeof kb);
        lua_getiuservalue(L, 1, 3);
        lua_rawgeti(L, -1, it->lookup);
        lua_pushlstring(L, kb, kn);
        int ty = lua_rawget(L, -2);
        /* the string stays alive in the lookup table */
        out->s = ty == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        lua_pop(L, 3);
        if (!out->s && it->keep) out->s = v;     /* the row's own text, alive until the next row */
        if (!out->s) {
            snprintf(pe->msg, sizeof pe->msg, "unknown value \"%.60s\"", v);
            return -1;
        }
        out->kind = SV_TEXT;
        return 1;
    }
    case PK_CURRENCY: {
        const char *s = v;
        size_t m = n;
        while (m && *s == ' ') { s++; m--; }
        while (m && s[m - 1] == ' ') m--;
        memset(buf, 0, 4);
        for (size_t j = 0; j < m && j < 3; j++)
            buf[j] = (char)(s[j] >= 'a' && s[j] <= 'z' ? s[j] - 32 : s[j]);
        if (!currency_valid_n(buf, m)) {
            snprintf(pe->msg, sizeof pe->msg, "not an ISO 4217 currency code: \"%.60s\"", v);
            return -1;
        }
        out->kind = SV_TEXT;
        out->s = buf;
        return 1;
    }
    case PK_QUARTER:
        if (quarter_label_parse(v, n, buf) < 0) {
            snprintf(pe->msg, sizeof pe->msg, "not a quarter: \"%.60s\"", v);
            return -1;
        }
        out->kind = SV_TEXT;
        out->s = buf;
        return 1;
    }
    return 0;
}

/* convert_value, remembering each item's last values (PLAN_MEMO): exports
 * repeat values row after row (a stage label, a deal's amount and close
 * date over its history rows), and a repeat is answered without parsing it
 * again or asking a lookup table (with the line-wise UTF-8 check, -5%
 * instructions of a first load, bench/RESULTS.md). Plain text needs no
 * conversion, completeness and join are computed over several columns.
 * [-0, +0, m] */
static int convert_memo(lua_State *L, lcsv *r, struct plan_item *it, store_value *out, prm_error *pe)
{
    if (it->kind == PK_TEXT || it->kind == PK_COMPLETENESS || it->col < 0 || it->col >= r->fcap)
        return convert_value(L, r, it, out, pe);
    const char *v = r->arena + r->foff[it->col];
    size_t n = r->flen[it->col];
    /* Lookups and yes/no give text of the lookup table or a number, so
     * several can be kept; the rest convert into it->buf: one. */
    int slots = it->kind == PK_LOOKUP || it->kind == PK_BOOL ? PLAN_MEMO : 1;
    for (int j = 0; n && j < slots; j++)
        if (n == it->memo[j].n && memcmp(v, it->memo[j].raw, n) == 0) {
            *out = it->memo[j].v;
            return 1;
        }
    int rc = convert_value(L, r, it, out, pe);
    if (slots == 1) it->memo[0].n = 0;     /* a failed conversion may have changed buf */
    /* A lookup's pass-through (keep) points into this row's arena, which
     * the next row overwrites: not remembered. */
    int in_row = out->kind == SV_TEXT && out->s == v;
    if (rc == 1 && !in_row && n < sizeof it->memo[0].raw) {
        int j = slots == 1 ? 0 : it->memo_next++ % PLAN_MEMO;
        memcpy(it->memo[j].raw, v, n);
        it->memo[j].n = n;
        it->memo[j].v = *out;
    }
    return rc;
}

/* convert_memo, and an item's default (`default` in its declaration) when
 * the record has no value. [-0, +0, m] */
static int convert(lua_State *L, lcsv *r, struct plan_item *it, store_value *out, prm_error *pe)
{
    int rc = convert_memo(L, r, it, out, pe);
    if (rc == 0 && it->dflt) {
        out->kind = SV_TEXT;
        out->s = it->dflt;
        return 1;
    }
    return rc;
}

/* Builds the mapped record of the row: [-0, +1, m] on success; on a bad
 * value returns -1 with "<column>: <why>" in err and nothing pushed. */
static int apply_plan(lua_State *L, lcsv *r, char *err, size_t errcap)
{
    lua_createtable(L, 0, r->nplan + 2);   /* room for the source and a derived field */
    for (int k = 0; k < r->nplan; k++) {
        plan_item *it = &r->plan[k];
        store_value v;
        prm_error pe;
        int rc = convert(L, r, it, &v, &pe);
        if (rc < 0) {
            lua_pop(L, 1);
            snprintf(err, errcap, "%.100s: %.180s", it->col >= 0 ? r->hnames[it->col] : "", pe.msg);
            return -1;
        }
        if (rc == 0) continue;
        switch (v.kind) {
        case SV_TEXT: lua_pushstring(L, v.s); break;
        case SV_REAL: lua_pushnumber(L, v.r); break;
        case SV_INT: lua_pushinteger(L, v.i); break;
        case SV_NULL: lua_pushnil(L); break;
        }
        lua_setfield(L, -2, it->field);
    }
    return 0;
}

static void free_plan(lcsv *r)
{
    for (int k = 0; k < r->nplan; k++) {
        free(r->plan[k].field);
        free(r->plan[k].cols);
        free(r->plan[k].sep);
        free(r->plan[k].dflt);
        free(r->plan[k].jbuf);
    }
    free(r->plan);
    r->plan = NULL;
    r->nplan = 0;
}

static int column_of(const lcsv *r, const char *name)
{
    for (int i = 0; i < r->nheader; i++)
        if (strcmp(r->hnames[i], name) == 0) return i;
    return -1;
}

static lcsv *check_reader(lua_State *L);

/* r:map({ {field, column, kind [, arg]}, ... })
 * From now on r:read() returns records mapped to the store's fields, each
 * value converted in C: kind "text" (as is), "money" (arg: scale),
 * "number", "date"/"instant" (arg: format), "percent" (arg: 1 or 100),
 * "bool", "lookup" (arg: table of normalised keys, as prm.map's norm;
 * with `keep = true` in the item a value the table lacks passes as it is),
 * "currency" (ISO 4217), "completeness" (column: a list of columns; the
 * share present), "quarter" (a quarter label, as "2026-Q1"), "join" (column: a
 * list of columns; arg: the separator, " " by default; the first column's
 * value and each further one present, absent without the first); with
 * `default = "text"` in the item an absent value becomes that text. A bad value makes the row `false, line, "<column>:
 * <why>"`, worded as prm.map's helpers word it. A column the file lacks is
 * an absent value. Misuse raises. */
static int l_reader_map(lua_State *L)
{
    lcsv *r = check_reader(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    free_plan(r);
    plan_item *plan = calloc((size_t)(n ? n : 1), sizeof *plan);
    if (!plan) return luaL_error(L, "out of memory");
    r->plan = plan;
    lua_newtable(L);                          /* lookup tables: uservalue 3 */
    int nlook = 0;
    for (lua_Integer k = 1; k <= n; k++) {
        lua_geti(L, 2, k);
        luaL_argcheck(L, lua_istable(L, -1), 2, "each item must be {field, column, kind [, arg]}");
        plan_item *it = &plan[r->nplan];
        lua_geti(L, -1, 1);
        it->field = strdup(luaL_checkstring(L, -1));
        lua_pop(L, 1);
        r->nplan++;
        if (!it->field) return luaL_error(L, "out of memory");
        lua_geti(L, -1, 3);
        it->kind = luaL_checkoption(L, -1, NULL, plan_kinds);
        lua_pop(L, 1);
        lua_geti(L, -1, 2);
        it->col = -1;
        if (it->kind == PK_COMPLETENESS || it->kind == PK_JOIN) {
            luaL_argcheck(L, lua_istable(L, -1), 2, "completeness and join need a list of columns");
            int nc = (int)luaL_len(L, -1);
            it->cols = calloc((size_t)(nc ? nc : 1), sizeof *it->cols);
            if (!it->cols) return luaL_error(L, "out of memory");
            for (int j = 0; j < nc; j++) {
                lua_geti(L, -1, j + 1);
                it->cols[j] = column_of(r, luaL_checkstring(L, -1));
                lua_pop(L, 1);
            }
            it->ncols = nc;
        } else {
            it->col = column_of(r, luaL_checkstring(L, -1));
        }
        lua_pop(L, 1);
        lua_geti(L, -1, 4);
        switch (it->kind) {
        case PK_MONEY: it->num = luaL_optnumber(L, -1, 1.0); break;
        case PK_PERCENT:
            it->num = (double)luaL_checkinteger(L, -1);
            luaL_argcheck(L, it->num == 1 || it->num == 100, 2, "percent scale must be 1 or 100");
            break;
        case PK_DATE:
        case PK_INSTANT:
            if (date_format_parse(luaL_optstring(L, -1, "auto"), &it->fmt) < 0)
                return luaL_error(L, "unknown date format '%s'", lua_tostring(L, -1));
            break;
        case PK_JOIN:
            it->sep = strdup(luaL_optstring(L, -1, " "));
            if (!it->sep) return luaL_error(L, "out of memory");
            break;
        case PK_LOOKUP:
            luaL_argcheck(L, lua_istable(L, -1), 2, "lookup needs a table");
            lua_pushvalue(L, -1);
            lua_rawseti(L, -4, ++nlook);
            it->lookup = nlook;
            lua_getfield(L, -2, "keep");
            it->keep = lua_toboolean(L, -1);
            lua_pop(L, 1);
            break;
        default: break;
        }
        lua_getfield(L, -2, "default");
        if (!lua_isnil(L, -1)) {
            luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 2, "a default must be a string");
            it->dflt = strdup(lua_tostring(L, -1));
            if (!it->dflt) return luaL_error(L, "out of memory");
        }
        lua_pop(L, 3);
    }
    lua_setiuservalue(L, 1, 3);
    return 0;
}

static void begin_parse(lua_State *L, lcsv *r);
static void end_parse(lua_State *L, lcsv *r);
static int load_rows(lua_State *L);

/* r:load(db, object, source, max, start [, fault]) -> more, read, written,
 *   unchanged, last_line, rejects
 * Reads rows (after r:map) and upserts each into the store in C, without a
 * Lua record: about `max` rows (whole lines), skipping rows on lines up to
 * `start` (committed by an earlier run). `rejects` lists line, message,
 * line, message... for the caller to record; `more` is false at the end of
 * the file. The caller owns the transaction. `fault` (the test build's
 * hook) is called with "ingest.row" before each row, as the Lua loop does.
 * may raise */
static int l_reader_load(lua_State *L)
{
    lcsv *r = luaL_checkudata(L, 1, CSV_MT);
    if (!r->f) return luaL_error(L, "attempt to use a closed CSV reader");
    load_ctx lc = { 0 };
    lc.s = lstore_check(L, 2);
    const char *object = luaL_checkstring(L, 3);
    lc.source = luaL_checkstring(L, 4);
    lua_Integer max = luaL_checkinteger(L, 5);
    lc.start = luaL_checkinteger(L, 6);
    luaL_argcheck(L, r->plan != NULL, 1, "r:load needs a plan (r:map)");
    lc.o = store_object_find(object);
    if (!lc.o) return luaL_argerror(L, 3, "unknown object");
    for (int k = 0; k < r->nplan; k++) {
        r->plan[k].sfield = store_field_index(lc.o, r->plan[k].field);
        if (r->plan[k].sfield <= 0)
            return luaL_error(L, "%s has no field '%s'", object, r->plan[k].field);
    }
    lua_settop(L, 7);
    lc.fault = lua_isnil(L, 7) ? 0 : 7;
    lua_newtable(L);
    lc.rej = 8;
    lc.last = -1;
    /* History rows go to the store one statement per call (store.h). */
    prm_error berr;
    if (store_history_batch(lc.s, 1, &berr) < 0) return luaL_error(L, "%s", berr.msg);
    lc.max = max;
    wpipe p;
    if (load_threads() > 1 && pipe_start(&p, &lc, &r->chunks) == 0) lc.pipe = &p;
    /* The parse runs protected, so the writer is joined before any error
     * goes on (the caller then rolls back on this thread). Same stack
     * layout inside: the reader at 1, the fault hook at 7, rejects at 8. */
    lua_pushlightuserdata(L, &lc);
    lua_pushcclosure(L, load_rows, 1);
    for (int i = 1; i <= 8; i++) lua_pushvalue(L, i);
    int prc = lua_pcall(L, 8, 1, 0);
    r->load = NULL;
    if (lc.pipe) {
        pipe_finish(&p);
        if (prc == LUA_OK && (p.oom || p.failed)) {
            lua_pop(L, 1);
            lua_pushstring(L, p.failed ? p.failed : "out of memory");
            prc = LUA_ERRRUN;
        }
        for (size_t i = 0; prc == LUA_OK && i < p.nrej; i++) {
            lua_pushinteger(L, p.rline[i]);
            lua_rawseti(L, 8, ++lc.nrej);
            lua_pushstring(L, p.rmsg[i]);
            lua_rawseti(L, 8, ++lc.nrej);
        }
        pipe_free(&p);
    }
    if (prc != LUA_OK) return lua_error(L);
    int more = lua_toboolean(L, -1);
    lua_pop(L, 1);
    int64_t changed = 0;
    if (store_history_flush(lc.s, &changed, &berr) < 0 || store_history_batch(lc.s, 0, &berr) < 0)
        return luaL_error(L, "%s", berr.msg);
    lc.nwritten += changed;
    lc.nunchanged += lc.npending - changed;
    lua_pushboolean(L, more);
    lua_pushinteger(L, lc.nread);
    lua_pushinteger(L, lc.nwritten);
    lua_pushinteger(L, lc.nunchanged);
    lua_pushinteger(L, lc.last);
    lua_pushvalue(L, 8);
    return 6;
}

/* r:load's parse loop, protected (its upvalue: the load_ctx); the stack
 * as r:load's. -> more. may raise */
static int load_rows(lua_State *L)
{
    load_ctx *lc = lua_touserdata(L, lua_upvalueindex(1));
    lcsv *r = luaL_checkudata(L, 1, CSV_MT);
    begin_parse(L, r);
    r->load = lc;
    int more = 1;
    while (lc->nread < lc->max) {
        int rc = feed(r);
        /* errors found outside a row (quotes, malformed lines) wait in the queue */
        while (r->qhead < r->qtail) {
            int k = r->qhead++;
            char *e = r->qerr[k];
            r->qerr[k] = NULL;
            if (e && load_begin_row(L, lc, r->qline[k])) load_reject(L, lc, r->qline[k], e);
            free(e);
        }
        r->qhead = r->qtail = 0;
        if (rc < 0) { more = 0; break; }
    }
    r->load = NULL;
    end_parse(L, r);
    lua_pushboolean(L, more);
    return 1;
}

static lcsv *check_reader(lua_State *L)
{
    lcsv *r = luaL_checkudata(L, 1, CSV_MT);
    if (!r->f && !r->jw) luaL_error(L, "attempt to use a closed CSV reader");
    return r;
}

/* Prepares the parse-time stack: record table at a known index. */
static void begin_parse(lua_State *L, lcsv *r)
{
    r->L = L;
    lua_getiuservalue(L, 1, 2);
    r->rec_idx = lua_gettop(L);
}

static void end_parse(lua_State *L, lcsv *r)
{
    lua_pushvalue(L, r->rec_idx);
    lua_setiuservalue(L, 1, 2);
    r->L = NULL;
}

/* r:read() -> record, line | false, line, msg | nil (end of file) */
static int l_reader_read(lua_State *L)
{
    lcsv *r = check_reader(L);
    if (!r->f) return luaL_error(L, "a JSON reader has no rows to read (r:load_json)");
    lua_settop(L, 1);
    begin_parse(L, r);
    while (r->qhead == r->qtail && feed(r) == 0) {}
    end_parse(L, r);
    if (r->qhead == r->qtail) {
        r->qhead = r->qtail = 0;
        return 0;
    }
    int k = r->qhead++;
    lua_getiuservalue(L, 1, 1);
    lua_rawgeti(L, -1, k + 1);
    lua_pushnil(L);
    lua_rawseti(L, -3, k + 1);
    char *err = r->qerr[k];
    if (err) {
        lua_pushboolean(L, 0);
        lua_pushinteger(L, r->qline[k]);
        lua_pushstring(L, err);
        free(err);
    } else {
        lua_pushinteger(L, r->qline[k]);
    }
    if (r->qhead == r->qtail) r->qhead = r->qtail = 0;
    return err ? 3 : 2;
}

/* r:header() -> { name, ... } */
static int l_reader_header(lua_State *L)
{
    lcsv *r = check_reader(L);
    lua_createtable(L, r->nheader, 0);
    for (int i = 0; i < r->nheader; i++) {
        lua_pushstring(L, r->hnames[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* r:line() -> physical lines read so far */
static int l_reader_line(lua_State *L)
{
    lua_pushinteger(L, check_reader(L)->lineno);
    return 1;
}

static int l_reader_close(lua_State *L)
{
    lcsv *r = luaL_checkudata(L, 1, CSV_MT);
    if (r->f) fclose(r->f);
    r->f = NULL;
    if (r->parser_live) csv_free(&r->p);
    r->parser_live = 0;
    for (int i = 0; i < r->nheader; i++) free(r->hnames[i]);
    free(r->hnames);
    r->hnames = NULL;
    r->nheader = 0;
    for (int i = r->qhead; i < r->qtail; i++) free(r->qerr[i]);
    free(r->qline);
    free(r->qerr);
    r->qline = NULL;
    r->qerr = NULL;
    r->qhead = r->qtail = r->qcap = 0;
    free(r->line);
    r->line = NULL;
    free(r->arena);
    free(r->foff);
    free(r->flen);
    r->arena = NULL;
    r->foff = r->flen = NULL;
    r->alen = r->acap = 0;
    r->fcap = 0;
    free_plan(r);
    for (chunk *c = r->chunks, *n; c; c = n) { n = c->next; chunk_free(c); }
    r->chunks = NULL;
    json_walker_free(r->jw);
    r->jw = NULL;
    free(r->jhash);
    free(r->jkind);
    r->jhash = r->jkind = NULL;
    return 0;
}

static int fail(lua_State *L, const char *fmt, const char *path)
{
    luaL_pushfail(L);
    lua_pushfstring(L, fmt, path);
    return 2;
}

/* csv.open(path [, {delimiter=",", max_record=1048576}]) -> reader | nil, msg
 * Fails (nil, msg) on a missing file, binary content, or no header. */
static int l_csv_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int delim = ',';
    lua_Integer max_record = 1 << 20;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            const char *k = lua_tostring(L, -2);
            if (k && strcmp(k, "delimiter") == 0) {
                size_t len;
                const char *d = luaL_checklstring(L, -1, &len);
                luaL_argcheck(L, len == 1, 2, "delimiter must be one character");
                delim = (unsigned char)d[0];
            } else if (k && strcmp(k, "max_record") == 0) {
                max_record = luaL_checkinteger(L, -1);
            } else {
                return luaL_error(L, "csv.open: unknown option '%s'", k ? k : "?");
            }
            lua_pop(L, 1);
        }
    }
    FILE *f = fopen(path, "rb");
    if (!f) return fail(L, "cannot open %s", path);
    /* Binary content (NUL bytes) in the first block: not a CSV export. */
    char probe[4096];
    size_t got = fread(probe, 1, sizeof probe, f);
    if (got == 0) {
        fclose(f);
        return fail(L, "%s: empty file (no header line)", path);
    }
    if (memchr(probe, 0, got)) {
        fclose(f);
        return fail(L, "%s: not a CSV file (binary content)", path);
    }
    rewind(f);
    lua_settop(L, 1);
    lcsv *r = lua_newuserdatauv(L, sizeof *r, 3);
    memset(r, 0, sizeof *r);
    luaL_setmetatable(L, CSV_MT);
    lua_replace(L, 1);
    r->f = f;
    r->max_record = (size_t)max_record;
    r->in_header = 1;
    snprintf(r->path, sizeof r->path, "%s", path);
    lua_newtable(L);
    lua_setiuservalue(L, 1, 1);
    lua_newtable(L);
    lua_setiuservalue(L, 1, 2);
    reset_parser(r);
    r->delim = (unsigned char)delim;
    csv_set_delim(&r->p, r->delim);
    begin_parse(L, r);
    while (r->in_header && feed(r) == 0) {}
    end_parse(L, r);
    if (r->in_header || r->nheader == 0 || r->qtail > 0) {
        /* a malformed header lands in the queue as an error */
        l_reader_close(L);
        return fail(L, "%s: no readable CSV header line", path);
    }
    for (int i = 0; i < r->nheader; i++) {
        if (!r->hnames[i] || !r->hnames[i][0]) {
            l_reader_close(L);
            return fail(L, "%s: empty column name in header", path);
        }
        if (!utf8_valid(r->hnames[i], strlen(r->hnames[i]), NULL)) {
            l_reader_close(L);
            return fail(L, "%s: header is not valid UTF-8", path);
        }
        /* Two columns of one name would silently mix in the record. */
        for (int j = 0; j < i; j++)
            if (strcmp(r->hnames[i], r->hnames[j]) == 0) {
                luaL_pushfail(L);
                lua_pushfstring(L, "%s: duplicate column '%s' in header (columns %d and %d)", path,
                                r->hnames[i], j + 1, i + 1);
                l_reader_close(L);
                return 2;
            }
    }
    lua_settop(L, 1);
    return 1;
}

/* csv.fingerprint(path) -> "size:mtime:hash" | nil, msg
 * Identifies a file version for resumable ingest: size, modification time
 * and an FNV-1a hash of its first and last 64 KiB. */
static int l_csv_fingerprint(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &st) < 0) {
        if (f) fclose(f);
        return fail(L, "cannot open %s", path);
    }
    uint64_t h = 1469598103934665603ULL;
    char buf[65536];
    for (int part = 0; part < 2; part++) {
        if (part == 1) {
            if (st.st_size <= (off_t)sizeof buf) break;
            fseeko(f, st.st_size - (off_t)sizeof buf, SEEK_SET);
        }
        size_t n = fread(buf, 1, sizeof buf, f);
        for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)buf[i]) * 1099511628211ULL;
    }
    fclose(f);
    lua_pushfstring(L, "%I:%I:%s", (lua_Integer)st.st_size, (lua_Integer)st.st_mtime, "");
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    lua_pushstring(L, hex);
    lua_concat(L, 2);
    return 1;
}

static void on_dup(void *ud, long index, const char *key, size_t keylen)
{
    lua_State *L = ud;
    lua_pushlstring(L, key, keylen);
    lua_rawseti(L, -2, index);
}

/* csv.json_dup_keys(text [, wrapper]) -> { [record index] = repeated key }
 * The records of a JSON document (its top-level array, the array under
 * key `wrapper`, or with no wrapper and an object the whole text) whose
 * objects repeat a key, which cjson would silently resolve to the last
 * value (jsonscan.h). may raise (memory) */
static int l_csv_json_dup_keys(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *wrapper = luaL_optstring(L, 2, NULL);
    lua_newtable(L);
    if (json_dup_keys(s, n, wrapper, on_dup, L) < 0) return luaL_error(L, "out of memory");
    return 1;
}

/* ---- JSON pages (csv.json_reader, r:load_json) ------------------------- */

/* A JSON reader is a reader without a file whose header is a list of leaf
 * paths ("key", "field_data.deal_type"): r:map compiles a declared mapping
 * against those paths exactly as against a CSV header, and r:load_json
 * walks a page (jsonscan.h), fills each record's row from its leaves and
 * converts and upserts it with the same plan, without a Lua table. */

static unsigned path_hash(const char *s, size_t n)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int jcol(const lcsv *r, const char *path, size_t n)
{
    unsigned m = (unsigned)r->jhcap - 1;
    for (unsigned k = path_hash(path, n) & m;; k = (k + 1) & m) {
        int c = r->jhash[k];
        if (!c) return -1;
        const char *h = r->hnames[c - 1];
        if (strlen(h) == n && memcmp(h, path, n) == 0) return c - 1;
    }
}

/* csv.json_reader({ path, ... }) -> reader
 * A reader for r:map and r:load_json whose columns are JSON leaf paths
 * (keys joined by '.'); repeated paths are one column. may raise */
static int l_csv_json_reader(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)luaL_len(L, 1);
    lcsv *r = lua_newuserdatauv(L, sizeof *r, 3);
    memset(r, 0, sizeof *r);
    luaL_setmetatable(L, CSV_MT);
    lua_newtable(L);
    lua_setiuservalue(L, -2, 1);
    lua_newtable(L);
    lua_setiuservalue(L, -2, 2);
    r->jw = json_walker_new();
    int cap = 16;
    while (cap < 2 * (n + 1)) cap *= 2;
    r->jhash = calloc((size_t)cap, sizeof *r->jhash);
    r->jkind = calloc((size_t)(n ? n : 1), sizeof *r->jkind);
    r->hnames = calloc((size_t)(n ? n : 1), sizeof *r->hnames);
    if (!r->jw || !r->jhash || !r->jkind || !r->hnames) return luaL_error(L, "out of memory");
    r->jhcap = cap;
    snprintf(r->path, sizeof r->path, "%s", "(JSON page)");
    for (int i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        size_t len;
        const char *p = lua_tolstring(L, -1, &len);
        if (!p) return luaL_argerror(L, 1, "each path must be a string");
        if (jcol(r, p, len) < 0) {
            char *d = strdup(p);
            if (!d) return luaL_error(L, "out of memory");
            r->hnames[r->nheader] = d;
            unsigned m = (unsigned)cap - 1, k = path_hash(p, len) & m;
            while (r->jhash[k]) k = (k + 1) & m;
            r->jhash[k] = ++r->nheader;
        }
        lua_pop(L, 1);
    }
    return 1;
}

/* r:load_json's state for one page. */
typedef struct jload {
    lua_State *L;
    lcsv *r;
    load_ctx lc;
    const char *label;         /* the object's name in messages ("deal") */
    int finish, ctx;           /* stack indexes; 0: none */
    int when[4], nwhen;        /* finish only where one of these columns is true; 0: always */
    int i_upd, i_cre, i_ext;   /* the object's updated_at, created_at, external_id */
    int f_deal, f_obs, f_field, f_value, f_type;   /* deal_field's fields */
    int *in_col, nin;          /* finish's raw inputs: columns */
    const char **in_path;
    struct tfield { const char *name, *type, *from; int col, kind; } *tf;
    int ntf;
    const store_object *fo;    /* deal_field, for the tenant fields */
    int wcol, epoch;           /* the watermark's column; numbers compared as numbers */
    double lo, hi, wmax;
    int have_wmax, wlist;
    lua_Integer nw, nskipped;
    int idcol[3];
} jload;

static void jreject(jload *j, long index, const char *why)
{
    char buf[400];
    const char *id = NULL;
    for (int k = 0; k < 3 && !id; k++) {
        int c = j->idcol[k];
        if (c >= 0 && j->r->flen[c]) id = j->r->arena + j->r->foff[c];
    }
    if (id) snprintf(buf, sizeof buf, "%s %.80s: %.300s", j->label, id, why);
    else snprintf(buf, sizeof buf, "%.390s", why);
    load_reject(j->L, &j->lc, index, buf);
}

/* A declared tenant field's text (prm.sync's field_types, in C): 1 with
 * *out, 0 absent, -1 when the value is not of the type. */
static int tenant_text(const struct tfield *t, const char *v, int jk, char *buf, size_t cap,
                       const char **out)
{
    *out = buf;
    if (strcmp(t->type, "category") == 0) {
        if (jk == JV_ARRAY || jk == JV_OBJECT) return -1;
        *out = v;
        return 1;
    }
    if (strcmp(t->type, "number") == 0) {
        if (jk == JV_TRUE || jk == JV_FALSE || jk == JV_ARRAY) return -1;
        char *end;
        double d = strtod(v, &end);
        while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r') end++;
        if (end == v || *end || d != d || d - d != 0) return -1;
        snprintf(buf, cap, "%.17g", d);
        return 1;
    }
    if (strcmp(t->type, "yesno") == 0) {
        if (jk == JV_TRUE || jk == JV_FALSE) { *out = jk == JV_TRUE ? "1" : "0"; return 1; }
        if (jk == JV_NUMBER) {
            double d = strtod(v, NULL);
            if (d == 1 || d == 0) { *out = d == 1 ? "1" : "0"; return 1; }
            return -1;
        }
        if (jk != JV_STRING) return -1;
        static const char *const yes[] = { "yes", "true", "y", "1", NULL };
        static const char *const no[] = { "no", "false", "n", "0", NULL };
        char lb[8];
        size_t n = strlen(v);
        if (n >= sizeof lb) return -1;
        for (size_t i = 0; i <= n; i++) lb[i] = (char)(v[i] >= 'A' && v[i] <= 'Z' ? v[i] + 32 : v[i]);
        for (int k = 0; yes[k]; k++) if (strcmp(lb, yes[k]) == 0) { *out = "1"; return 1; }
        for (int k = 0; no[k]; k++) if (strcmp(lb, no[k]) == 0) { *out = "0"; return 1; }
        return -1;
    }
    /* date */
    if (jk != JV_STRING && jk != JV_NUMBER) return -1;
    int64_t secs;
    prm_error pe;
    if (date_parse(v, DATE_AUTO, &secs, &pe) < 0 || cap < 11) return -1;
    date_iso(secs, buf);
    return 1;
}

/* [-0, +1, m] a raw input's value with its JSON type (nil when absent). */
static void push_input(lua_State *L, lcsv *r, int col)
{
    if (col < 0 || !r->flen[col]) { lua_pushnil(L); return; }
    const char *v = r->arena + r->foff[col];
    switch (r->jkind[col]) {
    case JV_TRUE: lua_pushboolean(L, 1); break;
    case JV_FALSE: lua_pushboolean(L, 0); break;
    case JV_NUMBER: if (!lua_stringtonumber(L, v)) lua_pushnil(L); break;
    default: lua_pushlstring(L, v, r->flen[col]); break;
    }
}

/* finish(rec, raw, ctx) on the declared record in v: its result replaces
 * v (strings alive in the result, left on the stack). 1 go on, 0 skipped,
 * -1 rejected (why in buf). [-0, +1, m] */
static int run_finish(jload *j, store_value *v, char *buf, size_t cap)
{
    lua_State *L = j->L;
    const store_object *o = j->lc.o;
    lua_pushvalue(L, j->finish);
    lua_createtable(L, 0, o->nfields);
    for (int i = 1; i < o->nfields; i++) {
        switch (v[i].kind) {
        case SV_TEXT: lua_pushstring(L, v[i].s); break;
        case SV_REAL: lua_pushnumber(L, v[i].r); break;
        case SV_INT: lua_pushinteger(L, v[i].i); break;
        case SV_NULL: continue;
        }
        lua_setfield(L, -2, o->fields[i].name);
    }
    lua_createtable(L, 0, j->nin);
    for (int k = 0; k < j->nin; k++) {
        push_input(L, j->r, j->in_col[k]);
        lua_setfield(L, -2, j->in_path[k]);
    }
    lua_pushvalue(L, j->ctx);
    if (lua_pcall(L, 3, 2, 0) != LUA_OK) {
        snprintf(buf, cap, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error in finish");
        lua_pop(L, 1);
        lua_pushnil(L);
        return -1;
    }
    if (lua_type(L, -2) == LUA_TBOOLEAN && !lua_toboolean(L, -2)) { lua_pop(L, 1); return 0; }
    if (!lua_istable(L, -2)) {
        snprintf(buf, cap, "%s", lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                                 : "rejected by the mapping");
        lua_pop(L, 1);
        return -1;
    }
    lua_pop(L, 1);
    int t = lua_gettop(L), found = 0, keys = 0;
    for (int i = 0; i < o->nfields; i++) {
        lua_getfield(L, t, o->fields[i].name);
        store_value x = { SV_NULL, NULL, 0, 0 };
        switch (lua_type(L, -1)) {
        case LUA_TNUMBER:
            if (lua_isinteger(L, -1)) { x.kind = SV_INT; x.i = lua_tointeger(L, -1); }
            else { x.kind = SV_REAL; x.r = lua_tonumber(L, -1); }
            break;
        case LUA_TSTRING: x.kind = SV_TEXT; x.s = lua_tostring(L, -1); break;
        case LUA_TBOOLEAN: x.kind = SV_INT; x.i = lua_toboolean(L, -1); break;
        case LUA_TNIL: break;
        default:
            snprintf(buf, cap, "%s field '%s' has a %s value", o->name, o->fields[i].name,
                     luaL_typename(L, -1));
            lua_pop(L, 1);
            return -1;
        }
        found += x.kind != SV_NULL;
        if (i > 0 || x.kind != SV_NULL) v[i] = x;
        lua_pop(L, 1);                  /* strings stay alive in the result table */
    }
    lua_pushnil(L);
    while (lua_next(L, t)) {
        keys++;
        if (lua_type(L, -2) != LUA_TSTRING || store_field_index(o, lua_tostring(L, -2)) < 0) {
            snprintf(buf, cap, "%s has no field '%s'", o->name,
                     lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?");
            lua_pop(L, 2);
            return -1;
        }
        lua_pop(L, 1);
    }
    (void)keys;
    (void)found;
    return 1;
}

/* A declared item's JSON value of a kind it cannot take, in buf: a list or
 * an object where one value is declared (refused, as the Lua path's upsert
 * refuses a table; never read as absent), or true/false where text is
 * (text, join, currency: a flag is not a name or a code). Numbers stand for
 * text as written (ids); bool, lookup and the typed kinds read
 * "true"/"false" by their own rules. NULL when it fits. */
static const char *json_misfit(const lcsv *r, const plan_item *it, char *buf, size_t cap)
{
    if (it->kind == PK_COMPLETENESS) return NULL;          /* counts presence only */
    int one = it->col, n = it->kind == PK_JOIN ? it->ncols : 1;
    for (int k = 0; k < n; k++) {
        int c = it->kind == PK_JOIN ? it->cols[k] : one;
        if (c < 0 || c >= r->fcap || !r->flen[c]) continue;
        int jk = r->jkind[c];
        const char *what = jk == JV_ARRAY ? "a JSON array where one value is expected" :
                           jk == JV_OBJECT ? "a JSON object where one value is expected" : NULL;
        if (!what && (jk == JV_TRUE || jk == JV_FALSE) &&
            (it->kind == PK_TEXT || it->kind == PK_JOIN || it->kind == PK_CURRENCY))
            what = jk == JV_TRUE ? "JSON true where text is expected"
                                 : "JSON false where text is expected";
        if (what) {
            snprintf(buf, cap, "%.100s: %s", r->hnames[c], what);
            return buf;
        }
    }
    return NULL;
}

/* One record of the page: its row filled from the leaves, converted by
 * the plan (and finish), upserted with its tenant fields. may raise (memory) */
static int on_json_record(void *ud, long index, json_kind kind, const json_leaf *l, size_t n)
{
    jload *j = ud;
    lcsv *r = j->r;
    lua_State *L = j->L;
    int top = lua_gettop(L);
    char buf[400];
    arena_clear(r);
    j->lc.nread++;
    if (kind != JV_OBJECT) { jreject(j, index, "record is not a JSON object"); return 0; }
    const char *bad = NULL;
    for (size_t k = 0; k < n; k++) {
        int c = jcol(r, l[k].path, l[k].plen);
        if (c < 0) continue;
        if (l[k].kind == JV_NULL || (l[k].kind == JV_STRING && l[k].n == 0)) {
            r->flen[c] = 0;                           /* absent (the last of repeats wins) */
            continue;
        }
        if (l[k].bad && !bad) bad = l[k].path;
        if (arena_put(r, c, l[k].v, l[k].n) < 0) return luaL_error(L, "out of memory");
        r->jkind[c] = l[k].kind;
    }
    /* The newest update seen, also of a record refused below. */
    if (j->wcol >= 0 && r->flen[j->wcol]) {
        const char *t = r->arena + r->foff[j->wcol];
        if (j->epoch && r->jkind[j->wcol] == JV_NUMBER) {
            double x = strtod(t, NULL);
            if (x >= j->lo && x <= j->hi && (!j->have_wmax || x > j->wmax)) {
                j->wmax = x;
                j->have_wmax = 1;
            }
        } else {
            lua_pushstring(L, t);
            lua_rawseti(L, j->wlist, ++j->nw);
        }
    }
    if (bad) {
        snprintf(buf, sizeof buf, "invalid UTF-8 or a NUL in '%.100s'", bad);
        jreject(j, index, buf);
        return 0;
    }
    const store_object *o = j->lc.o;
    store_value v[32];
    for (int i = 0; i < o->nfields; i++) v[i] = (store_value){ SV_NULL, NULL, 0, 0 };
    v[0].kind = SV_TEXT;
    v[0].s = j->lc.source;
    uint32_t iso_made = 0;         /* fields date_iso / instant_iso wrote */
    for (int k = 0; k < r->nplan; k++) {
        plan_item *it = &r->plan[k];
        prm_error pe;
        const char *why = json_misfit(r, it, buf, sizeof buf);
        if (why) {
            jreject(j, index, why);
            return 0;
        }
        int rc = convert(L, r, it, &v[it->sfield], &pe);
        if (rc < 0) {
            snprintf(buf, sizeof buf, "%.100s: %.180s", it->col >= 0 ? r->hnames[it->col] : "", pe.msg);
            jreject(j, index, buf);
            return 0;
        }
        iso_made |= iso_bit(it, &v[it->sfield], rc);
    }
    int due = j->nwhen == 0;
    for (int k = 0; k < j->nwhen && !due; k++)
        due = r->flen[j->when[k]] && r->jkind[j->when[k]] == JV_TRUE;
    if (j->finish && due) {
        int rc = run_finish(j, v, buf, sizeof buf);
        if (rc < 0) { jreject(j, index, buf); lua_settop(L, top); return 0; }
        if (rc == 0) { j->nskipped++; lua_settop(L, top); return 0; }
    }
    /* Tenant fields are checked before anything of the record is written. */
    const char *tv[16];
    char tb[16][32];
    for (int k = 0; k < j->ntf; k++) {
        const struct tfield *t = &j->tf[k];
        tv[k] = NULL;
        if (t->col < 0 || !r->flen[t->col]) continue;
        const char *x = r->arena + r->foff[t->col];
        if (tenant_text(t, x, r->jkind[t->col], tb[k], sizeof tb[k], &tv[k]) < 0) {
            snprintf(buf, sizeof buf, "%.100s (%.60s): not a %s: \"%.80s\"", t->from, t->name, t->type,
                     r->jkind[t->col] == JV_TRUE ? "true" : r->jkind[t->col] == JV_FALSE ? "false" : x);
            jreject(j, index, buf);
            lua_settop(L, top);
            return 0;
        }
    }
    if (j->lc.fault) {
        lua_pushvalue(L, j->lc.fault);
        lua_pushliteral(L, "sync.record");
        lua_call(L, 1, 0);
    }
    prm_error err;
    int written = 0;
    /* A finish may have replaced a value the converter wrote. */
    if (store_upsert_iso(j->lc.s, o, v, j->finish && due ? 0 : iso_made, &written, &err) < 0) {
        jreject(j, index, err.msg);
        lua_settop(L, top);
        return 0;
    }
    if (written == STORE_PENDING) {
        /* A history row waiting for the flush: counted there (r:load_json). */
        j->lc.npending++;
        lua_settop(L, top);
        return 0;
    }
    if (j->ntf) {
        /* As prm.sync's store_tenant_fields: as of the deal's own update. */
        int iu = j->i_upd, ic = j->i_cre, ie = j->i_ext;
        char at[32];
        const char *obs = NULL;
        if (iu >= 0 && v[iu].kind == SV_TEXT) obs = v[iu].s;
        else if (ic >= 0 && v[ic].kind == SV_TEXT) {
            snprintf(at, sizeof at, "%.10sT00:00:00Z", v[ic].s);
            obs = at;
        }
        store_value f[8];
        for (int i = 0; i < j->fo->nfields && i < 8; i++) f[i] = (store_value){ SV_NULL, NULL, 0, 0 };
        f[0] = v[0];
        f[j->f_deal] = v[ie];
        if (obs) f[j->f_obs] = (store_value){ SV_TEXT, obs, 0, 0 };
        int fi = j->f_field, vi = j->f_value, ti = j->f_type;
        for (int k = 0; k < j->ntf; k++) {
            f[fi] = (store_value){ SV_TEXT, j->tf[k].name, 0, 0 };
            f[vi] = tv[k] ? (store_value){ SV_TEXT, tv[k], 0, 0 } : (store_value){ SV_NULL, NULL, 0, 0 };
            f[ti] = (store_value){ SV_TEXT, j->tf[k].type, 0, 0 };
            int w2 = 0;
            if (store_upsert(j->lc.s, j->fo, f, &w2, &err) < 0) {
                jreject(j, index, err.msg);
                lua_settop(L, top);
                return 0;
            }
            written |= w2;
        }
    }
    if (written) j->lc.nwritten++;
    else j->lc.nunchanged++;
    lua_settop(L, top);
    return 0;
}

static const char *opt_field_str(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);                      /* alive in the options table */
    return s;
}

/* r:load_json(db, object, source, body, items, opts)
 *   -> read, written, unchanged, skipped, rejects, newest_epoch|nil, newest_texts
 * Walks one page (after r:map on a csv.json_reader) and upserts each record
 * of the array at `items` in C; `body` is the page's text, or a page
 * prm.http has walked already (page.walked: its records, not walked again). opts: label (the object's name in
 * messages), finish (function(rec, raw, ctx) -> rec | false | nil, why:
 * what a declaration cannot say), finish_when (a leaf path, or a list of up
 * to 4: finish runs only for the records where one is JSON true), inputs (the leaf paths raw gets, with
 * their JSON types), ctx, tenant ({ {name=, type=, from=}, ... }: the
 * deal's declared tenant fields, stored as deal_field rows), watermark (a
 * leaf path), epoch (its scale, 1000 or 1: numbers compared as numbers;
 * others and text listed in newest_texts), fault (the test build's hook).
 * `rejects` lists index, message, ... The caller owns the transaction;
 * malformed text raises before any record is upserted.
 * may raise */
static int l_reader_load_json(lua_State *L)
{
    lcsv *r = luaL_checkudata(L, 1, CSV_MT);
    luaL_argcheck(L, r->jw != NULL, 1, "r:load_json needs a csv.json_reader");
    luaL_argcheck(L, r->plan != NULL, 1, "r:load_json needs a plan (r:map)");
    jload j;
    memset(&j, 0, sizeof j);
    j.L = L;
    j.r = r;
    j.lc.s = lstore_check(L, 2);
    const char *object = luaL_checkstring(L, 3);
    j.lc.source = luaL_checkstring(L, 4);
    size_t blen = 0;
    json_walker *walked = lhttp_walked(L, 5);   /* prm.http walked it: its records */
    const char *body = walked ? NULL : luaL_checklstring(L, 5, &blen);
    const char *items = luaL_checkstring(L, 6);
    luaL_checktype(L, 7, LUA_TTABLE);
    lua_settop(L, 7);
    j.lc.o = store_object_find(object);
    if (!j.lc.o) return luaL_argerror(L, 3, "unknown object");
    if (j.lc.o->nfields > 32) return luaL_argerror(L, 3, "too many fields");
    for (int k = 0; k < r->nplan; k++) {
        r->plan[k].sfield = store_field_index(j.lc.o, r->plan[k].field);
        if (r->plan[k].sfield <= 0)
            return luaL_error(L, "%s has no field '%s'", object, r->plan[k].field);
    }
    j.label = opt_field_str(L, 7, "label");
    if (!j.label) j.label = object;
    lua_getfield(L, 7, "finish");          /* 8 */
    j.finish = lua_isnil(L, 8) ? 0 : 8;
    lua_getfield(L, 7, "ctx");             /* 9 */
    j.ctx = 9;
    lua_getfield(L, 7, "fault");           /* 10 */
    j.lc.fault = lua_isnil(L, 10) ? 0 : 10;
    lua_newtable(L);                       /* 11: rejects */
    j.lc.rej = 11;
    lua_newtable(L);                       /* 12: newest texts */
    j.wlist = 12;
    lua_getfield(L, 7, "inputs");          /* 13 */
    int nin = lua_istable(L, 13) ? (int)luaL_len(L, 13) : 0;
    lua_getfield(L, 7, "tenant");          /* 14 */
    int ntf = lua_istable(L, 14) ? (int)luaL_len(L, 14) : 0;
    if (ntf > 16) return luaL_error(L, "at most 16 declared tenant fields");
    /* Scratch for the input and tenant-field lists, freed with the userdata. */
    void *scratch = lua_newuserdatauv(L, sizeof(int) * (size_t)(nin + 1) +
                                         sizeof(char *) * (size_t)(nin + 1) +
                                         sizeof(struct tfield) * (size_t)(ntf + 1), 0);   /* 15 */
    j.tf = scratch;
    j.in_path = (const char **)(void *)(j.tf + ntf + 1);
    j.in_col = (int *)(void *)(j.in_path + nin + 1);
    for (int k = 0; k < nin; k++) {
        lua_geti(L, 13, k + 1);
        j.in_path[k] = luaL_checkstring(L, -1);     /* alive in the inputs table */
        j.in_col[k] = jcol(r, j.in_path[k], strlen(j.in_path[k]));
        lua_pop(L, 1);
    }
    j.nin = nin;
    for (int k = 0; k < ntf; k++) {
        lua_geti(L, 14, k + 1);
        int t = lua_gettop(L);
        j.tf[k].name = opt_field_str(L, t, "name");
        j.tf[k].type = opt_field_str(L, t, "type");
        j.tf[k].from = opt_field_str(L, t, "from");
        if (!j.tf[k].name || !j.tf[k].type || !j.tf[k].from)
            return luaL_error(L, "tenant[%d] needs name, type and from", k + 1);
        j.tf[k].col = jcol(r, j.tf[k].from, strlen(j.tf[k].from));
        lua_pop(L, 1);
    }
    j.ntf = ntf;
    if (ntf) {
        j.fo = store_object_find("deal_field");
        j.i_upd = store_field_index(j.lc.o, "updated_at");
        j.i_cre = store_field_index(j.lc.o, "created_at");
        j.i_ext = store_field_index(j.lc.o, "external_id");
        j.f_deal = store_field_index(j.fo, "deal_id");
        j.f_obs = store_field_index(j.fo, "observed_at");
        j.f_field = store_field_index(j.fo, "field");
        j.f_value = store_field_index(j.fo, "value");
        j.f_type = store_field_index(j.fo, "type");
        if (j.i_ext < 0 || j.f_deal < 0 || j.f_obs < 0 || j.f_field < 0 || j.f_value < 0 || j.f_type < 0)
            return luaL_error(L, "tenant fields need a deal object");
    }
    lua_getfield(L, 7, "finish_when");     /* a path or a list of up to 4 (any true) */
    int nw = lua_istable(L, -1) ? (int)luaL_len(L, -1) : !lua_isnil(L, -1);
    if (nw > 4) return luaL_error(L, "finish_when: at most 4 paths");
    for (int k = 0; k < nw; k++) {
        if (lua_istable(L, -1)) lua_geti(L, -1, k + 1);
        else lua_pushvalue(L, -1);
        const char *when = lua_tostring(L, -1);
        if (!when) return luaL_error(L, "finish_when: a path or a list of paths");
        j.when[k] = jcol(r, when, strlen(when));
        if (j.when[k] < 0) return luaL_error(L, "finish_when '%s' is not a column", when);
        lua_pop(L, 1);
    }
    j.nwhen = nw;
    lua_pop(L, 1);
    const char *wpath = opt_field_str(L, 7, "watermark");
    j.wcol = wpath ? jcol(r, wpath, strlen(wpath)) : -1;
    lua_getfield(L, 7, "epoch");
    double scale = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (scale > 0) {
        /* The instants prm.instant accepts (years 0001..9999), as prm.sync. */
        j.epoch = 1;
        j.lo = -62135596800.0 * scale;
        j.hi = 253402300799.0 * scale + (scale - 1);
    }
    static const char *const ids[] = { "key", "id", "Id" };
    for (int k = 0; k < 3; k++) j.idcol[k] = jcol(r, ids[k], strlen(ids[k]));
    if (r->fcap < r->nheader && arena_put(r, r->nheader - 1, "", 0) < 0)
        return luaL_error(L, "out of memory");
    prm_error err;
    if (!walked) {
        if (json_walk_keep(r->jw, body, blen, items, &err) < 0) return luaL_error(L, "%s", err.msg);
        walked = r->jw;
    }
    /* History rows (a changed deal's state, a history object's rows) wait
     * and reach the store in one statement at the end of the page (store.h);
     * rows already waiting from an earlier call stay waiting. */
    if (store_history_batch(j.lc.s, 1, &err) < 0) return luaL_error(L, "%s", err.msg);
    json_walk_records(walked, on_json_record, &j);
    int64_t changed = 0;
    if (store_history_flush(j.lc.s, &changed, &err) < 0 || store_history_batch(j.lc.s, 0, &err) < 0)
        return luaL_error(L, "%s", err.msg);
    j.lc.nwritten += changed;
    j.lc.nunchanged += j.lc.npending - changed;
    lua_pushinteger(L, j.lc.nread);
    lua_pushinteger(L, j.lc.nwritten);
    lua_pushinteger(L, j.lc.nunchanged);
    lua_pushinteger(L, j.nskipped);
    lua_pushvalue(L, 11);
    if (j.have_wmax) lua_pushnumber(L, j.wmax);
    else lua_pushnil(L);
    lua_pushvalue(L, 12);
    return 7;
}

int luaopen_prm_csv(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "read", l_reader_read }, { "header", l_reader_header }, { "line", l_reader_line },
        { "map", l_reader_map }, { "load", l_reader_load }, { "load_json", l_reader_load_json },
        { "close", l_reader_close }, { NULL, NULL },
    };
    static const luaL_Reg fns[] = { { "open", l_csv_open }, { "fingerprint", l_csv_fingerprint },
                                     { "json_dup_keys", l_csv_json_dup_keys },
                                     { "json_reader", l_csv_json_reader },
                                     { NULL, NULL } };
    if (luaL_newmetatable(L, CSV_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_reader_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_reader_close);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
