/* fuzz_json.c - libFuzzer target: the JSON ingest's record scan
 * (engine/jsonscan.c: repeated keys per record) on arbitrary text, as a
 * JSON array, a {"data": [...]} document and one JSON Lines record. The
 * records it reports are numbered from 1 and each at most once. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"

typedef struct seen { long last; long n; } seen;

static void on_dup(void *ud, long index, const char *key, size_t keylen)
{
    seen *s = ud;
    if (index < 1 || index <= s->last) abort();     /* increasing, once each */
    if (keylen && !key) abort();
    s->last = index;
    s->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const wrappers[] = { NULL, "data", "items" };
    for (size_t w = 0; w < sizeof wrappers / sizeof wrappers[0]; w++) {
        seen s = { 0, 0 };
        long n = json_dup_keys((const char *)data, size, wrappers[w], on_dup, &s);
        if (n != s.n) abort();
    }
    return 0;
}
