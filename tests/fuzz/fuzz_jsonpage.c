/* fuzz_jsonpage.c - libFuzzer target: jsonscan.h's page walker (the
 * declared sync path's parser) on arbitrary text, with the items at "",
 * "data.items" and "items". Checks: records numbered 1, 2, ... once each;
 * every leaf NUL-terminated at its length, a number leaf a whole strtod
 * number, a string leaf not marked bad valid UTF-8; a walk that only
 * checks records (fn NULL) accepts exactly the texts a full walk accepts,
 * with the same record count, and json_walk_last gives the full walk's
 * last record leaf for leaf; a kept walk (json_walk_keep) accepts the same
 * texts and replays the same records; the envelope leaves are well formed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "jsonscan.h"

typedef struct seen {
    long last;
    char sig[4096];            /* the last record's leaves, as text */
    size_t siglen;
} seen;

static void leaf_ok(const json_leaf *l)
{
    if (l->path[l->plen] != 0 || l->v[l->n] != 0) abort();
    if (l->kind == JV_NUMBER) {
        char *end;
        (void)strtod(l->v, &end);
        if ((size_t)(end - l->v) != l->n) abort();
    }
    if (l->kind == JV_STRING && !l->bad && !utf8_valid(l->v, l->n, NULL)) abort();
    if (l->kind == JV_TRUE && strcmp(l->v, "true") != 0) abort();
    if (l->kind == JV_ARRAY && (l->n < 2 || l->v[0] != '[' || l->v[l->n - 1] != ']')) abort();
    if (l->kind == JV_OBJECT && (l->n < 2 || l->v[0] != '{' || l->v[l->n - 1] != '}')) abort();
}

static int on_rec(void *ud, long index, json_kind kind, const json_leaf *l, size_t n)
{
    seen *s = ud;
    if (index != s->last + 1) abort();
    s->last = index;
    if (kind != JV_OBJECT && n) abort();
    s->siglen = 0;
    s->siglen += (size_t)snprintf(s->sig, sizeof s->sig, "%d:", (int)kind);
    for (size_t k = 0; k < n; k++) {
        leaf_ok(&l[k]);
        if (s->siglen < sizeof s->sig)
            s->siglen += (size_t)snprintf(s->sig + s->siglen, sizeof s->sig - s->siglen, "%zu %zu %d;",
                                          l[k].plen, l[k].n, (int)l[k].kind);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const items[] = { "", "data.items", "items" };
    json_walker *w = json_walker_new();
    if (!w) return 0;
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        seen full = { 0, "", 0 }, last = { 0, "", 0 };
        prm_error err;
        int a = json_walk(w, (const char *)data, size, items[i], on_rec, &full, &err);
        long na = 0;
        json_kind ka = json_walk_items(w, &na);
        if (a == 0 && ka == JV_ARRAY && na != full.last) abort();
        if (a == 0) {
            const json_leaf *e = json_walk_get(w, "data.has_more");
            if (e) leaf_ok(e);
        }
        int b = json_walk(w, (const char *)data, size, items[i], NULL, NULL, &err);
        if ((a == 0) != (b == 0)) abort();
        if (b == 0) {
            long nb = 0;
            if (json_walk_items(w, &nb) != ka || nb != na) abort();
            last.last = nb - 1;
            if (json_walk_last(w, on_rec, &last, &err) < 0) abort();
            if (nb > 0 && (last.siglen != full.siglen || memcmp(last.sig, full.sig, full.siglen) != 0))
                abort();
        }
        /* One kept walk: the same verdict, then the same records replayed. */
        seen kept = { 0, "", 0 };
        int c = json_walk_keep(w, (const char *)data, size, items[i], &err);
        if ((a == 0) != (c == 0)) abort();
        if (c == 0) {
            if (json_walk_records(w, on_rec, &kept) != 0) abort();
            if (ka == JV_ARRAY && kept.last != na) abort();
            if (kept.siglen != full.siglen || memcmp(kept.sig, full.sig, full.siglen) != 0) abort();
        }
    }
    json_walker_free(w);
    return 0;
}
