/* fuzz_parse.c - libFuzzer target: the value parsers every ingested row
 * goes through: date_parse in each format (engine/timeutil.c),
 * money_parse and percent_parse (engine/numparse.c). Checks: an accepted
 * date prints as ISO and reads back to the same instant; an amount is
 * finite; a percentage is a fraction in 0..1. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "numparse.h"
#include "timeutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256) return 0;
    char s[257];
    memcpy(s, data, size);
    s[size] = 0;
    static const date_format fmts[] = { DATE_AUTO, DATE_ISO, DATE_US, DATE_EU, DATE_EPOCH_MS,
                                        DATE_EPOCH_S };
    prm_error err;
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        int64_t t, back;
        if (date_parse(s, fmts[i], &t, &err) == 0) {
            char iso[21];
            instant_iso(t, iso);
            if (date_parse(iso, DATE_ISO, &back, &err) != 0 || back != t) abort();
        }
    }
    int64_t c;
    clock_parse(s, &c, &err);
    double x;
    if (money_parse((const char *)data, size, &x, &err) == 0 && !isfinite(x)) abort();
    static const int scales[] = { 0, 1, 100 };
    for (size_t i = 0; i < 3; i++)
        if (percent_parse((const char *)data, size, scales[i], &x, &err) == 0 && !(x >= 0 && x <= 1))
            abort();
    return 0;
}
