/* fuzz_parse.c - libFuzzer target: the value parsers every ingested row
 * goes through: date_parse in each format (engine/timeutil.c),
 * money_parse and percent_parse (engine/numparse.c). Checks: an accepted
 * date prints as ISO and reads back to the same instant; an amount is
 * finite; a percentage is a fraction in 0..1; decimal_value (the amounts'
 * fast path) gives the very bits strtod gives, on the input as it is and
 * on the input read as digits and points (byte % 12: '0'-'9', '.', and a
 * '0' run, so long, short, zero-padded and multi-point strings all come). */
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
    char dg[600];
    size_t k = 0;
    for (size_t i = 0; i < size && k + 40 < sizeof dg; i++) {
        int b = data[i] % 12;
        if (b < 10) dg[k++] = (char)('0' + b);
        else if (b == 10) dg[k++] = '.';
        else for (int z = 0; z < data[i] % 31; z++) dg[k++] = '0';
    }
    dg[k] = 0;
    const char *const cases[] = { s, dg };
    for (size_t i = 0; i < 2; i++) {
        double a = decimal_value(cases[i]), b = strtod(cases[i], NULL);
        if (memcmp(&a, &b, sizeof a) != 0) abort();
    }
    double x;
    if (money_parse((const char *)data, size, &x, &err) == 0 && !isfinite(x)) abort();
    static const int scales[] = { 0, 1, 100 };
    for (size_t i = 0; i < 3; i++)
        if (percent_parse((const char *)data, size, scales[i], &x, &err) == 0 && !(x >= 0 && x <= 1))
            abort();
    return 0;
}
