/* test_numparse.c - the amounts' fast decimal path (decimal_value) gives
 * strtod's bits, and money_parse / percent_parse read what they did. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numparse.h"
#include "tap.h"

static int same_bits(const char *s)
{
    double a = decimal_value(s), b = strtod(s, NULL);
    return memcmp(&a, &b, sizeof a) == 0;
}

int main(void)
{
    /* Hard cases: halfway points of binary rounding, the fast path's
     * bounds (2^53, 19 digits, 22 decimals) and just past them. */
    static const char *const hard[] = {
        "0", "0.0", "000.000", ".5", "5.", "0.1", "0.3", "1234.50", "230650.00", "99999999.99",
        "9007199254740992", "9007199254740993", "9007199254740993.5", "1234567890123456789",
        "12345678901234567890", "0.0000000000000000000001", "0.00000000000000000000001",
        "1.0000000000000000000000", "4503599627370496.5", "4503599627370497.5",
        "2.2250738585072011", "123456789012345.678", "0.1234567890123456789", "17976931348623157",
        "1.2.3", "", "7",
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof hard / sizeof hard[0]; i++)
        if (!same_bits(hard[i])) {
            printf("# differs from strtod: \"%s\"\n", hard[i]);
            bad++;
        }
    T_OK(bad == 0, "decimal_value equals strtod bit for bit on the hard cases");

    /* A sweep of amounts as exports write them: 1-19 digits, 0-6 decimals
     * (deterministic generator). */
    uint64_t x = 88172645463325252ULL;
    bad = 0;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int nd = 1 + (int)(x % 19), nf = (int)((x >> 8) % 7);
        char s[40];
        size_t k = 0;
        uint64_t y = x;
        for (int j = 0; j < nd + nf; j++) {
            if (j == nd) s[k++] = '.';
            s[k++] = (char)('0' + (y % 10));
            y = y / 10 ? y / 10 : x * 2654435761u + (uint64_t)j;
        }
        s[k] = 0;
        if (!same_bits(s) && bad++ < 5) printf("# differs from strtod: \"%s\"\n", s);
    }
    T_OK(bad == 0, "decimal_value equals strtod bit for bit on 200,000 generated amounts");

    prm_error err;
    double v;
    T_OK(money_parse("$1,234.50", 9, &v, &err) == 0 && v == 1234.5, "money with symbol and separator");
    T_OK(money_parse("(12.10)", 7, &v, &err) == 0 && v == -12.1, "accounting negative");
    T_OK(money_parse("1,2,3", 5, &v, &err) < 0, "bad grouping refused");
    T_OK(percent_parse("35", 2, 100, &v, &err) == 0 && v == 0.35, "bare percent in a 0-100 column");
    T_OK(percent_parse("0.5%", 4, 0, &v, &err) == 0 && v == 0.005, "a percent sign");
    return t_done();
}
