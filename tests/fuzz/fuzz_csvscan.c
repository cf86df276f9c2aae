/* fuzz_csvscan.c - libFuzzer target: engine/csvscan.c against libcsv 3.0
 * (CSV_STRICT | CSV_STRICT_FINI | CSV_EMPTY_IS_NULL), the library it
 * replaces in prm.csv. The first input byte picks the delimiter and how the
 * rest is cut into calls (one block, physical lines as lcsvlib feeds them,
 * or pieces of 1..16 bytes); both tokenizers get the same calls, and their
 * streams of events must be identical: every field's bytes and whether it
 * came as NULL, every row end with its terminator, the offset of a strict
 * error, and what the end of input reports. */
#include <csv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csvscan.h"

typedef struct events {
    unsigned char *b;
    size_t n, cap;
} events;

static void put(events *e, const void *s, size_t n)
{
    if (e->n + n > e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 1024;
        while (cap < e->n + n) cap *= 2;
        e->b = realloc(e->b, cap);
        if (!e->b) abort();
        e->cap = cap;
    }
    memcpy(e->b + e->n, s, n);
    e->n += n;
}

static void on_field(void *s, size_t len, void *ud)
{
    events *e = ud;
    unsigned char tag = s ? 'F' : 'N';
    put(e, &tag, 1);
    put(e, &len, sizeof len);
    if (s) put(e, s, len);
}

static void on_row(int c, void *ud)
{
    events *e = ud;
    unsigned char tag = 'R';
    put(e, &tag, 1);
    put(e, &c, sizeof c);
}

static void note(events *e, char tag, size_t v)
{
    put(e, &tag, 1);
    put(e, &v, sizeof v);
}

/* The call boundaries: offsets where each call ends. */
static size_t cut(const uint8_t *d, size_t n, unsigned mode, size_t at)
{
    if (mode == 0) return n;
    if (mode == 1) {                          /* lines, as getline */
        const uint8_t *nl = memchr(d + at, '\n', n - at);
        return nl ? (size_t)(nl - d) + 1 : n;
    }
    size_t step = 1 + (d[at] * 7u + at) % 16;
    return at + step < n ? at + step : n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const unsigned char delims[] = { ',', ';', '\t', '|' };
    unsigned char delim = delims[data[0] & 3];
    unsigned mode = (data[0] >> 2) % 3;
    const uint8_t *d = data + 1;
    size_t n = size - 1;

    events a = { 0 }, b = { 0 };
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_EMPTY_IS_NULL) != 0) abort();
    csv_set_delim(&p, delim);
    csvscan c;
    csvscan_init(&c, delim);

    int failed_a = 0, failed_b = 0;
    for (size_t at = 0; at < n;) {
        size_t end = cut(d, n, mode, at);
        if (!failed_a) {
            size_t got = csv_parse(&p, d + at, end - at, on_field, on_row, &a);
            if (got != end - at) {
                note(&a, 'E', at + got);
                failed_a = 1;
            }
        }
        if (!failed_b) {
            size_t got = csvscan_feed(&c, (const char *)d + at, end - at, on_field, on_row, &b);
            if (got != end - at) {
                if (c.err != CSVS_EPARSE) abort();
                note(&b, 'E', at + got);
                failed_b = 1;
            }
        }
        at = end;
    }
    if (!failed_a) note(&a, 'Z', (size_t)(csv_fini(&p, on_field, on_row, &a) != 0));
    if (!failed_b) note(&b, 'Z', (size_t)(csvscan_finish(&c, on_field, on_row, &b) != 0));
    if (a.n != b.n || memcmp(a.b, b.b, a.n) != 0) {
        fprintf(stderr, "fuzz_csvscan: csvscan and libcsv differ (delimiter %d, mode %u):"
                " %zu vs %zu bytes of events\n", delim, mode, b.n, a.n);
        for (size_t i = 0; i < a.n && i < b.n; i++)
            if (a.b[i] != b.b[i]) { fprintf(stderr, "first difference at event byte %zu\n", i); break; }
        abort();
    }
    csv_free(&p);
    csvscan_free(&c);
    free(a.b);
    free(b.b);
    return 0;
}
