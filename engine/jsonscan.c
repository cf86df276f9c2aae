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
