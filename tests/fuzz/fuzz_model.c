/* fuzz_model.c - libFuzzer target: model_load (engine/model.c), which
 * reads the registry's stored model text back. A text it accepts must
 * save and load again to the same text (the round trip the registry
 * relies on). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    model *m = NULL;
    prm_error err;
    if (model_load((const char *)data, size, &m, &err) != 0) return 0;
    char *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;
    if (model_save(m, &buf, &len, &err) != 0) abort();
    model *m2 = NULL;
    if (model_load(buf, len, &m2, &err) != 0) abort();
    if (model_save(m2, &buf2, &len2, &err) != 0) abort();
    if (len != len2 || memcmp(buf, buf2, len) != 0) abort();
    free(buf);
    free(buf2);
    model_free(m);
    model_free(m2);
    return 0;
}
