/* jsonscan.c - repeated keys in JSON objects (jsonscan.h). */
#include "jsonscan.h"

#include <stdlib.h>
#include <string.h>

typedef struct key { const char *s; size_t n; } key;

typedef struct frame {
    char kind;                 /* '{' or '[' */
    int want_key;              /* object: the next string is a key */
    size_t keys0;              /* object: its first key on the key stack */
    const char *last_key;      /* object: the key of the value being read */
    size_t last_n;
} frame;

static int keycmp(const void *a, const void *b)
{
    const key *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, m);
    if (c) return c;
    return x->n < y->n ? -1 : x->n > y->n;
}

/* The repeated key of keys[0..n) with the lowest text position, or NULL. */
static const key *first_dup(key *k, size_t n)
{
    if (n < 2) return NULL;
    qsort(k, n, sizeof *k, keycmp);
    const key *best = NULL;
    for (size_t i = 1; i < n; i++)
        if (keycmp(&k[i - 1], &k[i]) == 0) {
            const key *d = k[i - 1].s < k[i].s ? &k[i] : &k[i - 1];   /* the later spelling */
            if (!best || d->s < best->s) best = d;
        }
    return best;
}

long json_dup_keys(const char *s, size_t n, const char *wrapper, json_dup_fn on_dup, void *ud)
{
    frame *st = NULL;
    key *keys = NULL;
    size_t depth = 0, stcap = 0, nkeys = 0, keycap = 0;
    size_t rec_depth = 0;       /* depth of the records array; 0: none yet */
    long index = 0, reported = 0, last_reported = 0;
    int whole = 0;              /* the whole text is record 1 */
    int started = 0;            /* the top-level value has begun */
    size_t wlen = wrapper ? strlen(wrapper) : 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < n && s[j] != '"') j += s[j] == '\\' ? 2 : 1;
            if (j >= n) break;                       /* unterminated: the decoder says so */
            frame *f = depth ? &st[depth - 1] : NULL;
            if (f && f->kind == '{' && f->want_key) {
                if (nkeys == keycap) {
                    size_t nc = keycap ? keycap * 2 : 64;
                    key *g = realloc(keys, nc * sizeof *g);
                    if (!g) { reported = -1; break; }
                    keys = g;
                    keycap = nc;
                }
                keys[nkeys++] = (key){ s + i + 1, j - i - 1 };
                f->want_key = 0;
                f->last_key = s + i + 1;
                f->last_n = j - i - 1;
            }
            i = j;
        } else if (c == '{' || c == '[') {
            if (depth == stcap) {
                size_t nc = stcap ? stcap * 2 : 16;
                frame *g = realloc(st, nc * sizeof *g);
                if (!g) { reported = -1; break; }
                st = g;
                stcap = nc;
            }
            if (depth == 0) {
                if (started) break;      /* a second top-level value: not JSON */
                started = 1;
                if (c == '{' && !wrapper) { whole = 1; index = 1; }
            }
            if (!rec_depth && c == '[') {
                frame *p = depth ? &st[depth - 1] : NULL;
                if ((depth == 0 && !whole) ||
                    (depth == 1 && p->kind == '{' && wrapper && p->last_key && p->last_n == wlen &&
                     memcmp(p->last_key, wrapper, wlen) == 0)) {
                    rec_depth = depth + 1;
                    index = 1;
                }
            }
            st[depth++] = (frame){ c, c == '{', nkeys, NULL, 0 };
        } else if (c == '}' || c == ']') {
            if (!depth) break;
            frame *f = &st[--depth];
            if (f->kind == '{') {
                const key *d = nkeys > f->keys0 ? first_dup(keys + f->keys0, nkeys - f->keys0) : NULL;
                int in_record = whole || (rec_depth && depth >= rec_depth);
                if (d && in_record && index != last_reported) {
                    on_dup(ud, index, d->s, d->n);
                    last_reported = index;
                    reported++;
                }
                nkeys = f->keys0;
            }
            if (rec_depth && depth + 1 == rec_depth) rec_depth = (size_t)-1;   /* records ended */
        } else if (c == ',') {
            if (depth && st[depth - 1].kind == '{') st[depth - 1].want_key = 1;
            if (rec_depth && depth == rec_depth) index++;
        }
    }
    free(st);
    free(keys);
    return reported;
}

/* ---- the page walker (jsonscan.h) ------------------------------------------ */

#include <stdint.h>

#include "json.h"

typedef struct buf { char *p; size_t n, cap; } buf;

/* A leaf while its set grows: offsets into the set's arena. */
typedef struct lraw { size_t p, plen, v, n; json_kind kind; int bad; } lraw;

typedef struct leafset {
    lraw *l;
    size_t n, cap;
    buf a;                     /* paths and values, each NUL-terminated */
    json_leaf *out;            /* the leaves with pointers, made for readers */
    size_t outcap;
} leafset;

/* A kept record (json_walk_keep): its leaves in the record set. */
typedef struct span { size_t l0, nl; long index; json_kind kind; } span;

/* An envelope object's key: its bytes in the walker's ekb. */
typedef struct ekey { size_t off, n; } ekey;

struct json_walker {
    leafset rec, doc;
    int keep;                  /* json_walk_keep: every record's leaves kept */
    int kept;                  /* the last walk kept them (json_walk_records) */
    span *spans;
    size_t nspans, spancap;
    ekey *ek;                  /* keys of the envelope objects being read */
    size_t nek, ekcap;
    buf ekb;
    key *ktmp;                 /* scratch for the repeated-key check */
    size_t ktcap;
    buf path;                  /* the key path being read */
    size_t base;               /* inside a record: where its own path starts */
    buf tmp;                   /* a string's unescaped bytes */
    const char *s;
    size_t n, i;
    const char *items;
    json_kind items_kind;
    long nitems;
    json_record_fn fn;
    void *ud;
    size_t last_start;         /* the last record's first byte */
    int stop;                  /* the callback's stop value */
    prm_error *err;
};

enum { CTX_DOC, CTX_REC, CTX_SKIP };

static int buf_put(buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        char *p = realloc(b->p, c);
        if (!p) return -1;
        b->p = p;
        b->cap = c;
    }
    if (n && s) memcpy(b->p + b->n, s, n);   /* s NULL: n bytes of room, filled by the caller */
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

json_walker *json_walker_new(void)
{
    return calloc(1, sizeof(json_walker));
}

static void set_free(leafset *s)
{
    free(s->l);
    free(s->a.p);
    free(s->out);
}

void json_walker_free(json_walker *w)
{
    if (!w) return;
    set_free(&w->rec);
    set_free(&w->doc);
    free(w->spans);
    free(w->ek);
    free(w->ekb.p);
    free(w->ktmp);
    free(w->path.p);
    free(w->tmp.p);
    free(w);
}

static int oom(json_walker *w)
{
    return prm_error_set(w->err, "out of memory");
}

static int bad_at(json_walker *w, const char *what)
{
    if (w->i >= w->n) return prm_error_set(w->err, "%s: the text ends at byte %zu", what, w->n);
    return prm_error_set(w->err, "%s at byte %zu", what, w->i + 1);
}

static void ws(json_walker *w)
{
    while (w->i < w->n) {
        char c = w->s[w->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
        w->i++;
    }
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* The string at s[i] (its opening quote): into b unescaped when b is not
 * NULL, else only checked; *nul set when it holds an escaped NUL. */
/* Nonzero when one of the 8 bytes of x is '"', '\\' or below 0x20 (the
 * bytes a string's plain run stops at): the classic has-zero-byte test on
 * x ^ '"', x ^ '\\' and x itself against 0x20. Strings are the walker's
 * largest cost (callgrind, a 20k-deal sync: 6.5% of all instructions). */
static int stops8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
    return (((q - ones) & ~q) | ((bs - ones) & ~bs) | ((x - ones * 0x20) & ~x)) & high ? 1 : 0;
}

static int string(json_walker *w, buf *b, int *nul)
{
    w->i++;
    for (;;) {
        size_t j = w->i;
        for (uint64_t x; j + 8 <= w->n && (memcpy(&x, w->s + j, 8), !stops8(x));) j += 8;
        while (j < w->n) {
            unsigned char c = (unsigned char)w->s[j];
            if (c == '"' || c == '\\' || c < 0x20) break;
            j++;
        }
        if (b && j > w->i && buf_put(b, w->s + w->i, j - w->i) < 0) return oom(w);
        w->i = j;
        if (j >= w->n) return bad_at(w, "unterminated string");
        char c = w->s[j];
        if (c == '"') { w->i++; return 0; }
        if (c != '\\') return bad_at(w, "control character in a string");
        if (j + 1 >= w->n) { w->i = w->n; return bad_at(w, "unterminated string"); }
        char e = w->s[j + 1], out[4];
        size_t on = 1;
        w->i = j + 2;
        switch (e) {
        case '"': out[0] = '"'; break;
        case '\\': out[0] = '\\'; break;
        case '/': out[0] = '/'; break;
        case 'b': out[0] = '\b'; break;
        case 'f': out[0] = '\f'; break;
        case 'n': out[0] = '\n'; break;
        case 'r': out[0] = '\r'; break;
        case 't': out[0] = '\t'; break;
        case 'u': {
            unsigned u, lo;
            if (w->i + 4 > w->n || hex4(w->s + w->i, &u) < 0) return bad_at(w, "bad \\u escape");
            w->i += 4;
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (w->i + 6 > w->n || w->s[w->i] != '\\' || w->s[w->i + 1] != 'u' ||
                    hex4(w->s + w->i + 2, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return bad_at(w, "unpaired surrogate in a \\u escape");
                w->i += 6;
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                return bad_at(w, "unpaired surrogate in a \\u escape");
            }
            if (u == 0 && nul) *nul = 1;
            if (u < 0x80) out[0] = (char)u;
            else if (u < 0x800) {
                out[0] = (char)(0xC0 | (u >> 6));
                out[1] = (char)(0x80 | (u & 0x3F));
                on = 2;
            } else if (u < 0x10000) {
                out[0] = (char)(0xE0 | (u >> 12));
                out[1] = (char)(0x80 | ((u >> 6) & 0x3F));
                out[2] = (char)(0x80 | (u & 0x3F));
                on = 3;
            } else {
                out[0] = (char)(0xF0 | (u >> 18));
                out[1] = (char)(0x80 | ((u >> 12) & 0x3F));
                out[2] = (char)(0x80 | ((u >> 6) & 0x3F));
                out[3] = (char)(0x80 | (u & 0x3F));
                on = 4;
            }
            break;
        }
        default:
            w->i = j + 1;
            return bad_at(w, "bad escape in a string");
        }
        if (b && buf_put(b, out, on) < 0) return oom(w);
    }
}

static int digits(json_walker *w)
{
    size_t j = w->i;
    while (w->i < w->n && w->s[w->i] >= '0' && w->s[w->i] <= '9') w->i++;
    return w->i > j;
}

static int number(json_walker *w)
{
    if (w->i < w->n && w->s[w->i] == '-') w->i++;
    if (w->i < w->n && w->s[w->i] == '0') w->i++;
    else if (!digits(w)) return bad_at(w, "bad number");
    if (w->i < w->n && w->s[w->i] == '.') {
        w->i++;
        if (!digits(w)) return bad_at(w, "bad number");
    }
    if (w->i < w->n && (w->s[w->i] == 'e' || w->s[w->i] == 'E')) {
        w->i++;
        if (w->i < w->n && (w->s[w->i] == '+' || w->s[w->i] == '-')) w->i++;
        if (!digits(w)) return bad_at(w, "bad number");
    }
    return 0;
}

/* p with room for one more of n elements of size sz (capacity *cap,
 * doubled from first): p itself, a larger block, or NULL when out of
 * memory (p still valid). */
static void *grown(void *p, size_t *cap, size_t n, size_t sz, size_t first)
{
    if (n < *cap) return p;
    size_t c = *cap ? *cap * 2 : first;
    void *g = realloc(p, c * sz);
    if (g) *cap = c;
    return g;
}

static int add_leaf(json_walker *w, leafset *set, json_kind kind, const char *v, size_t n, int bad)
{
    lraw *l = grown(set->l, &set->cap, set->n, sizeof *l, 32);
    if (!l) return oom(w);
    set->l = l;
    lraw *r = &set->l[set->n];
    r->plen = w->path.n - w->base;
    r->p = set->a.n;
    if (buf_put(&set->a, w->path.p ? w->path.p + w->base : "", r->plen) < 0) return oom(w);
    set->a.n++;                                   /* keep the NUL */
    r->v = set->a.n;
    if (buf_put(&set->a, v, n) < 0) return oom(w);
    set->a.n++;
    r->n = n;
    r->kind = kind;
    r->bad = bad;
    set->n++;
    return 0;
}

/* The set's leaves with pointers (valid until the set changes). */
static const json_leaf *leaves_of(json_walker *w, leafset *set)
{
    if (set->n > set->outcap) {
        json_leaf *o = realloc(set->out, set->n * sizeof *o);
        if (!o) return NULL;
        set->out = o;
        set->outcap = set->n;
    }
    for (size_t k = 0; k < set->n; k++) {
        lraw *r = &set->l[k];
        set->out[k] = (json_leaf){ set->a.p + r->p, r->plen, r->kind, set->a.p + r->v, r->n, r->bad };
    }
    (void)w;
    return set->out ? set->out : (const json_leaf *)"";
}

static int value(json_walker *w, int ctx, int depth);

static int at_items(const json_walker *w)
{
    return w->items && w->path.n == strlen(w->items) &&
           (w->path.n == 0 || memcmp(w->path.p, w->items, w->path.n) == 0);
}

/* The records array: each element flattened and handed to the callback. */
static int records(json_walker *w, int depth)
{
    w->items_kind = JV_ARRAY;
    w->i++;
    ws(w);
    if (w->i < w->n && w->s[w->i] == ']') { w->i++; return 0; }
    size_t base0 = w->base;
    for (;;) {
        ws(w);
        if (w->i >= w->n) return bad_at(w, "unterminated array");
        long index = ++w->nitems;
        char c = w->s[w->i];
        json_kind kind = JV_MISSING;
        size_t l0 = w->keep ? w->rec.n : 0;
        if (!w->keep) {
            w->rec.n = 0;
            w->rec.a.n = 0;
        }
        w->last_start = w->i;
        if (!w->fn && !w->keep) {
            /* Records only checked (json_walk_last reads the last one). */
            if (value(w, CTX_SKIP, depth + 1) < 0) return -1;
        } else if (c == '{') {
            w->base = w->path.n;
            int rc = value(w, CTX_REC, depth + 1);
            w->base = base0;
            if (rc < 0) return rc;
            kind = JV_OBJECT;
        } else {
            kind = c == '[' ? JV_ARRAY : c == '"' ? JV_STRING : c == 't' ? JV_TRUE :
                   c == 'f' ? JV_FALSE : c == 'n' ? JV_NULL : JV_NUMBER;
            if (value(w, CTX_SKIP, depth + 1) < 0) return -1;
        }
        if (w->keep) {
            span *sp = grown(w->spans, &w->spancap, w->nspans, sizeof *sp, 256);
            if (!sp) return oom(w);
            w->spans = sp;
            w->spans[w->nspans++] = (span){ l0, w->rec.n - l0, index, kind };
            goto next;
        }
        if (!w->fn) goto next;
        const json_leaf *l = kind == JV_OBJECT ? leaves_of(w, &w->rec) : NULL;
        if (kind == JV_OBJECT && !l) return oom(w);
        int rc = w->fn ? w->fn(w->ud, index, kind, l, kind == JV_OBJECT ? w->rec.n : 0) : 0;
        if (rc < 0) { w->stop = rc; return -1; }
    next:
        ws(w);
        if (w->i < w->n && w->s[w->i] == ',') { w->i++; continue; }
        if (w->i < w->n && w->s[w->i] == ']') { w->i++; return 0; }
        return bad_at(w, "expected ',' or ']' in an array");
    }
}

/* A key holding '.' or '\\' is written with a backslash before each, so
 * a literal key "data.has_more" (path data\.has_more) is never taken for
 * the nested data.has_more: a page could otherwise end its own pagination
 * or feed a record's field from another key. Declared paths name plain
 * keys, so they match only nested ones. b's bytes from k0 are the key. */
static int escape_key(buf *b, size_t k0)
{
    size_t extra = 0;
    for (size_t i = k0; i < b->n; i++)
        if (b->p[i] == '.' || b->p[i] == '\\') extra++;
    if (!extra) return 0;
    size_t n = b->n;
    if (buf_put(b, NULL, extra) < 0) return -1;       /* room: b->n becomes n + extra */
    for (size_t i = n, o = n + extra; i > k0; ) {
        char c = b->p[--i];
        b->p[--o] = c;
        if (c == '.' || c == '\\') b->p[--o] = '\\';
    }
    return 0;
}

/* An envelope object's keys, checked at its end: a repeated one makes the
 * page ambiguous (cjson keeps the last value, a walk would have read the
 * first: a second records array, a paging fact), so the page is refused.
 * Records' own repeated keys are left to the readers (the last wins). */
static int envelope_key(json_walker *w, size_t k0)
{
    ekey *ek = grown(w->ek, &w->ekcap, w->nek, sizeof *ek, 32);
    if (!ek) return oom(w);
    w->ek = ek;
    size_t off = w->ekb.n;
    if (buf_put(&w->ekb, w->path.p + k0, w->path.n - k0) < 0) return oom(w);
    w->ek[w->nek++] = (ekey){ off, w->path.n - k0 };
    return 0;
}

static int envelope_end(json_walker *w, size_t e0)
{
    size_t n = w->nek - e0;
    int rc = 0;
    if (n > 1) {
        while (w->ktcap < n) {
            key *kt = grown(w->ktmp, &w->ktcap, w->ktcap, sizeof *kt, n);
            if (!kt) return oom(w);
            w->ktmp = kt;
        }
        for (size_t k = 0; k < n; k++)
            w->ktmp[k] = (key){ w->ekb.p + w->ek[e0 + k].off, w->ek[e0 + k].n };
        const key *d = first_dup(w->ktmp, n);
        if (d)
            rc = prm_error_set(w->err, "repeated key '%.*s' in the page's envelope (the object "
                               "ending at byte %zu): the page is ambiguous", (int)(d->n < 100 ? d->n : 100),
                               d->s, w->i);
    }
    if (n) w->ekb.n = w->ek[e0].off;
    w->nek = e0;
    return rc;
}

static int object(json_walker *w, int ctx, int depth)
{
    w->i++;
    ws(w);
    if (w->i < w->n && w->s[w->i] == '}') { w->i++; return 0; }
    size_t e0 = w->nek;
    for (;;) {
        ws(w);
        if (w->i >= w->n || w->s[w->i] != '"') return bad_at(w, "expected a key string");
        size_t plen = w->path.n;
        if (ctx != CTX_SKIP) {
            if (plen > w->base && buf_put(&w->path, ".", 1) < 0) return oom(w);
            size_t k0 = w->path.n;
            if (string(w, &w->path, NULL) < 0) return -1;
            if (escape_key(&w->path, k0) < 0) return oom(w);
            if (ctx == CTX_DOC && envelope_key(w, k0) < 0) return -1;
        } else if (string(w, NULL, NULL) < 0) {
            return -1;
        }
        ws(w);
        if (w->i >= w->n || w->s[w->i] != ':') return bad_at(w, "expected ':' after a key");
        w->i++;
        ws(w);
        int rc = value(w, ctx, depth + 1);
        w->path.n = plen;
        if (w->path.p) w->path.p[plen] = 0;
        if (rc < 0) return rc;
        ws(w);
        if (w->i < w->n && w->s[w->i] == ',') { w->i++; continue; }
        if (w->i < w->n && w->s[w->i] == '}') {
            w->i++;
            return ctx == CTX_DOC ? envelope_end(w, e0) : 0;
        }
        return bad_at(w, "expected ',' or '}' in an object");
    }
}

static int array(json_walker *w, int depth)
{
    w->i++;
    ws(w);
    if (w->i < w->n && w->s[w->i] == ']') { w->i++; return 0; }
    for (;;) {
        ws(w);
        if (value(w, CTX_SKIP, depth + 1) < 0) return -1;
        ws(w);
        if (w->i < w->n && w->s[w->i] == ',') { w->i++; continue; }
        if (w->i < w->n && w->s[w->i] == ']') { w->i++; return 0; }
        return bad_at(w, "expected ',' or ']' in an array");
    }
}

static int literal(json_walker *w, const char *word)
{
    size_t k = strlen(word);
    if (w->i + k > w->n || memcmp(w->s + w->i, word, k) != 0) return bad_at(w, "unexpected character");
    w->i += k;
    return 0;
}

/* One value at s[i]: kept as leaves (ctx DOC, REC) or only checked. */
static int value(json_walker *w, int ctx, int depth)
{
    if (depth > JSON_WALK_DEPTH) return bad_at(w, "nested too deep");
    ws(w);
    if (w->i >= w->n) return bad_at(w, "expected a value");
    leafset *set = ctx == CTX_REC ? &w->rec : &w->doc;
    char c = w->s[w->i];
    size_t start = w->i;
    int items = ctx == CTX_DOC && at_items(w);
    if (c == '[' && items) return records(w, depth);
    if (items) w->items_kind = c == '{' ? JV_OBJECT : c == '"' ? JV_STRING : c == 't' ? JV_TRUE :
                               c == 'f' ? JV_FALSE : c == 'n' ? JV_NULL : JV_NUMBER;
    switch (c) {
    case '{': {
        int nested = ctx == CTX_REC && w->path.n > w->base;
        int rc = object(w, ctx, depth);
        if (rc == 0 && nested)
            /* A record's nested object is a leaf too (its JSON text), besides
             * its own leaves: a field declared where an object stands is
             * then refused by name, never read as absent. */
            return add_leaf(w, set, JV_OBJECT, w->s + start, w->i - start, 0);
        if (rc == 0 && items) {
            /* An empty object reads as an empty list (cjson decodes both
             * to an empty table); a member makes it an object. */
            const char *p = w->s + start + 1;
            while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
            if (*p == '}') w->items_kind = JV_ARRAY;
        }
        return rc;
    }
    case '[':
        if (array(w, depth) < 0) return -1;
        if (ctx == CTX_REC) return add_leaf(w, set, JV_ARRAY, w->s + start, w->i - start, 0);
        return 0;
    case '"': {
        if (ctx == CTX_SKIP) return string(w, NULL, NULL);
        int nul = 0;
        w->tmp.n = 0;
        if (buf_put(&w->tmp, "", 0) < 0) return oom(w);
        if (string(w, &w->tmp, &nul) < 0) return -1;
        int bad = nul || !utf8_valid(w->tmp.p, w->tmp.n, NULL);
        return add_leaf(w, set, JV_STRING, w->tmp.p, w->tmp.n, bad);
    }
    case 't': case 'f': case 'n': {
        json_kind k = c == 't' ? JV_TRUE : c == 'f' ? JV_FALSE : JV_NULL;
        if (literal(w, c == 't' ? "true" : c == 'f' ? "false" : "null") < 0) return -1;
        if (ctx == CTX_SKIP) return 0;
        return add_leaf(w, set, k, w->s + start, w->i - start, 0);
    }
    default:
        if (c != '-' && (c < '0' || c > '9')) return bad_at(w, "unexpected character");
        if (number(w) < 0) return -1;
        if (ctx == CTX_SKIP) return 0;
        return add_leaf(w, set, JV_NUMBER, w->s + start, w->i - start, 0);
    }
}

int json_walk(json_walker *w, const char *s, size_t n, const char *items, json_record_fn fn,
              void *ud, prm_error *err)
{
    w->s = s;
    w->n = n;
    w->i = 0;
    w->items = items;
    w->items_kind = JV_MISSING;
    w->nitems = 0;
    w->fn = fn;
    w->ud = ud;
    w->stop = 0;
    w->err = err;
    w->base = 0;
    w->path.n = 0;
    w->doc.n = 0;
    w->doc.a.n = 0;
    free(w->doc.out);
    w->doc.out = NULL;
    w->doc.outcap = 0;
    w->rec.n = 0;
    w->rec.a.n = 0;
    w->nspans = 0;
    w->kept = 0;
    w->nek = 0;
    w->ekb.n = 0;
    if (buf_put(&w->path, "", 0) < 0) return oom(w);
    int rc = value(w, CTX_DOC, 1);
    if (rc < 0) return w->stop ? w->stop : -1;
    ws(w);
    if (w->i < w->n) return bad_at(w, "text after the JSON value");
    if (w->doc.n && !leaves_of(w, &w->doc)) return oom(w);
    if (w->keep && w->rec.n && !leaves_of(w, &w->rec)) return oom(w);
    return 0;
}

int json_walk_keep(json_walker *w, const char *s, size_t n, const char *items, prm_error *err)
{
    w->keep = 1;
    int rc = json_walk(w, s, n, items, NULL, NULL, err);
    w->keep = 0;
    if (rc < 0) w->nspans = 0;
    else w->kept = 1;
    return rc;
}

static const json_leaf no_leaf;

/* A kept record's leaves (a valid pointer also when it has none). */
static const json_leaf *span_leaves(const json_walker *w, const span *p)
{
    if (p->kind != JV_OBJECT) return NULL;
    return w->rec.out && p->nl ? w->rec.out + p->l0 : &no_leaf;
}

int json_walk_records(json_walker *w, json_record_fn fn, void *ud)
{
    for (size_t k = 0; k < w->nspans; k++) {
        const span *p = &w->spans[k];
        int rc = fn(ud, p->index, p->kind, span_leaves(w, p), p->kind == JV_OBJECT ? p->nl : 0);
        if (rc < 0) return rc;
    }
    return 0;
}

int json_walk_last(json_walker *w, json_record_fn fn, void *ud, prm_error *err)
{
    if (w->items_kind != JV_ARRAY || w->nitems == 0) return 0;
    if (w->kept) {
        if (!w->nspans) return 0;
        const span *p = &w->spans[w->nspans - 1];
        return fn(ud, p->index, p->kind, span_leaves(w, p), p->kind == JV_OBJECT ? p->nl : 0);
    }
    size_t end = w->i;
    w->err = err;
    w->i = w->last_start;
    w->base = 0;
    w->path.n = 0;
    w->path.p[0] = 0;
    w->rec.n = 0;
    w->rec.a.n = 0;
    json_kind kind = JV_OBJECT;
    char c = w->s[w->i];
    int rc;
    if (c == '{') {
        rc = value(w, CTX_REC, 2);
    } else {
        kind = c == '[' ? JV_ARRAY : c == '"' ? JV_STRING : c == 't' ? JV_TRUE :
               c == 'f' ? JV_FALSE : c == 'n' ? JV_NULL : JV_NUMBER;
        rc = 0;
    }
    w->i = end;
    if (rc < 0) return -1;
    const json_leaf *l = kind == JV_OBJECT ? leaves_of(w, &w->rec) : NULL;
    if (kind == JV_OBJECT && !l) return oom(w);
    return fn(ud, w->nitems, kind, l, kind == JV_OBJECT ? w->rec.n : 0);
}

json_kind json_walk_items(const json_walker *w, long *nitems)
{
    if (nitems) *nitems = w->nitems;
    return w->items_kind;
}

const json_leaf *json_walk_get(const json_walker *w, const char *path)
{
    size_t pl = strlen(path);
    const leafset *d = &w->doc;
    if (!d->out) return NULL;
    for (size_t k = d->n; k-- > 0;)
        if (d->out[k].plen == pl && memcmp(d->out[k].path, path, pl) == 0) return &d->out[k];
    return NULL;
}
