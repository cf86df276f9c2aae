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
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "currency.h"
#include "json.h"
#include "numparse.h"
#include "store.h"
#include "timeutil.h"
#include "jsonscan.h"
#include "lprm.h"

#define CSV_MT "prm.csv.reader"

enum { PK_TEXT, PK_MONEY, PK_NUMBER, PK_DATE, PK_INSTANT, PK_PERCENT, PK_BOOL, PK_LOOKUP,
       PK_CURRENCY, PK_COMPLETENESS, PK_QUARTER };
static const char *const plan_kinds[] = { "text", "money", "number", "date", "instant", "percent",
                                          "bool", "lookup", "currency", "completeness", "quarter",
                                          NULL };

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
    int *cols, ncols;          /* completeness: the columns counted */
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
} load_ctx;

/* A row of line `line` for r:load: counted, then stored or rejected. */
static void load_reject(lua_State *L, load_ctx *lc, long line, const char *msg)
{
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
        if (rc == 1 && (it->kind == PK_DATE || it->kind == PK_INSTANT) && it->sfield < 32)
            iso_made |= 1u << it->sfield;
    }
    prm_error err;
    int written = 0;
    if (store_upsert_iso(lc->s, lc->o, v, iso_made, &written, &err) < 0) {
        load_reject(L, lc, r->row_start, err.msg);
        return;
    }
    if (written) lc->nwritten++;
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
 * conversion, completeness is computed over several columns. [-0, +0, m] */
static int convert(lua_State *L, lcsv *r, struct plan_item *it, store_value *out, prm_error *pe)
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
 * share present), "quarter" (a quarter label, as "2026-Q1"). A bad value makes the row `false, line, "<column>:
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
        if (it->kind == PK_COMPLETENESS) {
            luaL_argcheck(L, lua_istable(L, -1), 2, "completeness needs a list of columns");
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
        lua_pop(L, 2);
    }
    lua_setiuservalue(L, 1, 3);
    return 0;
}

static void begin_parse(lua_State *L, lcsv *r);
static void end_parse(lua_State *L, lcsv *r);

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
    begin_parse(L, r);
    r->load = &lc;
    int more = 1;
    while (lc.nread < max) {
        int rc = feed(r);
        /* errors found outside a row (quotes, malformed lines) wait in the queue */
        while (r->qhead < r->qtail) {
            int k = r->qhead++;
            char *e = r->qerr[k];
            r->qerr[k] = NULL;
            if (e && load_begin_row(L, &lc, r->qline[k])) load_reject(L, &lc, r->qline[k], e);
            free(e);
        }
        r->qhead = r->qtail = 0;
        if (rc < 0) { more = 0; break; }
    }
    r->load = NULL;
    end_parse(L, r);
    lua_pushboolean(L, more);
    lua_pushinteger(L, lc.nread);
    lua_pushinteger(L, lc.nwritten);
    lua_pushinteger(L, lc.nunchanged);
    lua_pushinteger(L, lc.last);
    lua_pushvalue(L, 8);
    return 6;
}

static lcsv *check_reader(lua_State *L)
{
    lcsv *r = luaL_checkudata(L, 1, CSV_MT);
    if (!r->f) luaL_error(L, "attempt to use a closed CSV reader");
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

int luaopen_prm_csv(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "read", l_reader_read }, { "header", l_reader_header }, { "line", l_reader_line },
        { "map", l_reader_map }, { "load", l_reader_load },
        { "close", l_reader_close }, { NULL, NULL },
    };
    static const luaL_Reg fns[] = { { "open", l_csv_open }, { "fingerprint", l_csv_fingerprint },
                                     { "json_dup_keys", l_csv_json_dup_keys },
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
