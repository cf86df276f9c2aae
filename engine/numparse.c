/* numparse.c - amounts and percentages (numparse.h). */
#include "numparse.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "currency.h"

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_upper(char c) { return c >= 'A' && c <= 'Z'; }

/* Skips a currency symbol ('$' or a UTF-8 sequence such as € £ ¥) or an
 * ISO 4217 code at p; returns how many bytes, 0 when there is none. */
static size_t currency_at(const char *p, const char *end)
{
    if (p < end && *p == '$') return 1;
    if (p < end && (unsigned char)*p >= 0xC2 && (unsigned char)*p < 0xF5) {
        size_t k = 1;
        while (p + k < end && ((unsigned char)p[k] & 0xC0) == 0x80) k++;
        return k;
    }
    if (end - p >= 3 && is_upper(p[0]) && is_upper(p[1]) && is_upper(p[2]) &&
        (end - p == 3 || !is_upper(p[3])) && currency_valid_n(p, 3))
        return 3;
    return 0;
}

static const char *skip_spaces(const char *p, const char *end)
{
    while (p < end && *p == ' ') p++;
    return p;
}

/* Digits with optional thousands separators and a decimal part into buf
 * (separators dropped). Returns the end of the number, or NULL. */
static const char *number_body(const char *p, const char *end, char *buf, size_t cap)
{
    size_t n = 0;
    char sep = 0;
    int group = 0, first = 1, digits = 0;
    while (p < end) {
        char c = *p;
        if (is_digit(c)) {
            if (n + 1 >= cap) return NULL;
            buf[n++] = c;
            group++;
            digits++;
            if (first && group > 3 && sep) return NULL;
            if (!first && group > 3) return NULL;
            p++;
        } else if ((c == ',' || c == '\'' || c == ' ') && digits) {
            /* a separator only between digit groups, one kind throughout */
            if (p + 1 >= end || !is_digit(p[1])) break;   /* "12 EUR": the number ended */
            if (sep && c != sep) return NULL;
            if (first ? group > 3 : group != 3) return NULL;
            sep = c;
            first = 0;
            group = 0;
            p++;
        } else {
            break;
        }
    }
    if (sep && group != 3) return NULL;
    if (p < end && *p == '.') {
        if (n + 1 >= cap) return NULL;
        buf[n++] = '.';
        p++;
        int frac = 0;
        while (p < end && is_digit(*p)) {
            if (n + 1 >= cap) return NULL;
            buf[n++] = *p++;
            frac++;
        }
        if (!frac && !digits) return NULL;
        digits += frac;
    }
    if (!digits) return NULL;
    buf[n] = 0;
    return p;
}

/* Powers of ten that a double holds exactly (10^22 is the last). */
static const double exact_pow10[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                      1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };

double decimal_value(const char *digits)
{
    /* Clinger's fast path: with at most 2^53 as the digits' integer and
     * at most 22 decimals, both m and 10^k are exact doubles, and IEEE
     * division rounds m / 10^k correctly - which is what strtod returns
     * (in the default rounding mode). Anything longer goes to strtod. */
    uint64_t m = 0;
    int sig = 0, frac = -1;
    const char *p = digits;
    for (; *p; p++) {
        if (*p == '.') {
            if (frac >= 0) return strtod(digits, NULL);
            frac = 0;
            continue;
        }
        if (*p < '0' || *p > '9') return strtod(digits, NULL);
        if (m || *p != '0') sig++;
        if (sig > 19) return strtod(digits, NULL);
        m = m * 10 + (uint64_t)(*p - '0');
        if (frac >= 0) frac++;
    }
    if (frac < 0) frac = 0;
    if (p == digits || m > (1ULL << 53) || frac > 22) return strtod(digits, NULL);
    return (double)m / exact_pow10[frac];
}

int money_parse(const char *s, size_t n, double *out, prm_error *err)
{
    const char *p = s, *end = s + n;
    while (end > p && end[-1] == ' ') end--;
    p = skip_spaces(p, end);
    int neg = 0, paren = 0;
    if (p < end && *p == '(') { paren = 1; p = skip_spaces(p + 1, end); }
    if (p < end && *p == '-') { neg = 1; p++; }
    size_t k = currency_at(p, end);
    if (k) p = skip_spaces(p + k, end);
    if (!neg && !paren && p < end && *p == '-') { neg = 1; p++; }   /* "$-3" */
    char buf[64];
    const char *q = number_body(p, end, buf, sizeof buf);
    if (!q) goto bad;
    p = skip_spaces(q, end);
    if (!k && (k = currency_at(p, end)) != 0) p = skip_spaces(p + k, end);
    if (paren) {
        if (p >= end || *p != ')' || neg) goto bad;
        p = skip_spaces(p + 1, end);
        neg = 1;
    }
    if (p != end) goto bad;
    double v = decimal_value(buf);
    if (!isfinite(v)) goto bad;
    *out = neg ? -v : v;
    return 0;
bad:
    return prm_error_set(err, "not an amount: \"%.*s\"", n > 60 ? 60 : (int)n, s);
}

int percent_parse(const char *s, size_t n, int scale, double *out, prm_error *err)
{
    const char *p = s, *end = s + n;
    while (end > p && end[-1] == ' ') end--;
    p = skip_spaces(p, end);
    int pct = end > p && end[-1] == '%';
    if (pct) {
        end--;
        while (end > p && end[-1] == ' ') end--;
    }
    int neg = p < end && *p == '-';
    if (neg) p++;
    char buf[64];
    const char *q = number_body(p, end, buf, sizeof buf);
    if (!q || q != end || strchr(buf, ',')) goto bad;
    double v = decimal_value(buf);
    if (neg) v = -v;
    if (pct) {
        v /= 100;
    } else if (scale == 100) {
        v /= 100;
    } else if (scale != 1) {
        return prm_error_set(err, "bare number \"%.*s\" in a column of undeclared scale"
                                  " (declare 0-1 or 0-100, or write a %%)", n > 40 ? 40 : (int)n, s);
    }
    if (!(v >= 0 && v <= 1))
        return prm_error_set(err, "out of range: \"%.*s\"", n > 40 ? 40 : (int)n, s);
    *out = v;
    return 0;
bad:
    return prm_error_set(err, "not a percentage: \"%.*s\"", n > 40 ? 40 : (int)n, s);
}
