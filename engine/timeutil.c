/* timeutil.c - see timeutil.h. Civil-date conversions follow Howard
 * Hinnant's days_from_civil / civil_from_days algorithms. */
#include "timeutil.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (unsigned)(m + (m > 2 ? -3 : 9)) + 2) / 5 + (unsigned)d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

static int days_in_month(int y, int m)
{
    static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 ? 28 + leap : dm[m - 1];
}

/* Reads exactly n digits; returns -1 when they are not all digits. */
static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    return v;
}

/* Reads 1 or 2 digits (US/EU dates write 3/7/2025 as often as 03/07/2025). */
static int digits12(const char **p)
{
    if (!isdigit((unsigned char)**p)) return -1;
    int v = *(*p)++ - '0';
    if (isdigit((unsigned char)**p)) v = v * 10 + (*(*p)++ - '0');
    return v;
}

/* Reads "HH:MM[:SS]" and adds it to *t; one-digit hours when loose
 * (US exports write 9:05). Returns -1 on anything else. */
static int clock_time(const char **p, int loose, int64_t *t)
{
    int hh = loose ? digits12(p) : digits(p, 2);
    if (hh < 0 || hh > 23 || *(*p)++ != ':') return -1;
    int mi = digits(p, 2);
    if (mi < 0 || mi > 59) return -1;
    int ss = 0;
    if (**p == ':') {
        (*p)++;
        if ((ss = digits(p, 2)) < 0 || ss > 60) return -1;
    }
    *t += hh * 3600 + mi * 60 + ss;
    return 0;
}

static int valid_ymd(int y, int m, int d)
{
    return y >= 1900 && y <= 2200 && m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
}

static int parse_iso(const char *s, int64_t *secs)
{
    const char *p = s;
    int y = digits(&p, 4);
    if (y < 0 || *p++ != '-') return -1;
    int m = digits(&p, 2);
    if (m < 0 || *p++ != '-') return -1;
    int d = digits(&p, 2);
    if (d < 0 || !valid_ymd(y, m, d)) return -1;
    int64_t t = days_from_civil(y, m, d) * 86400;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (clock_time(&p, 0, &t) < 0) return -1;
        if (*p == '.') {                 /* fractional seconds are dropped */
            p++;
            while (isdigit((unsigned char)*p)) p++;
        }
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '+' ? 1 : -1;
            int oh = digits(&p, 2);
            if (oh < 0) return -1;
            if (*p == ':') p++;
            int om = digits(&p, 2);
            if (om < 0) return -1;
            t -= sign * (oh * 3600 + om * 60);
        }
    }
    if (*p) return -1;
    *secs = t;
    return 0;
}

static int parse_slashed(const char *s, int us, int64_t *secs)
{
    const char *p = s;
    int a = digits12(&p);
    if (a < 0 || (*p != '/' && *p != '.' && *p != '-')) return -1;
    char sep = *p++;
    int b = digits12(&p);
    if (b < 0 || *p++ != sep) return -1;
    int y = digits(&p, 4);
    if (y < 0) return -1;
    int m = us ? a : b, d = us ? b : a;
    if (!valid_ymd(y, m, d)) return -1;
    int64_t t = days_from_civil(y, m, d) * 86400;
    if (*p == ' ') {                     /* "03/07/2025 14:05[:09]" */
        p++;
        if (clock_time(&p, 1, &t) < 0) return -1;
    }
    if (*p) return -1;
    *secs = t;
    return 0;
}

static int parse_epoch(const char *s, int ms, int64_t *secs)
{
    char *end;
    if (!*s) return -1;
    /* Plain digits (what exports write: one per history row) without
     * strtoll's locale and sign handling; anything else goes to it. */
    long long v = 0;
    const char *q = s;
    while (*q >= '0' && *q <= '9' && q - s < 18) v = v * 10 + (*q++ - '0');
    if (*q) v = strtoll(s, &end, 10);
    else end = (char *)q;
    if (*end == '.' && !ms) {            /* 1700000000.5 */
        while (isdigit((unsigned char)*++end)) {}
    }
    if (*end) return -1;
    *secs = ms ? v / 1000 - (v % 1000 < 0) : v;
    /* Reject values outside 1900..2200: a phone number is not a date. */
    if (*secs < -2208988800LL || *secs > 7258118400LL) return -1;
    return 0;
}

int date_format_parse(const char *name, date_format *fmt)
{
    static const struct { const char *n; date_format f; } t[] = {
        { "auto", DATE_AUTO }, { "iso", DATE_ISO }, { "us", DATE_US }, { "eu", DATE_EU },
        { "epoch_ms", DATE_EPOCH_MS }, { "epoch_s", DATE_EPOCH_S },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(name, t[i].n) == 0) { *fmt = t[i].f; return 0; }
    return -1;
}

int date_parse(const char *s, date_format fmt, int64_t *secs, prm_error *err)
{
    int rc = -1;
    switch (fmt) {
    case DATE_ISO: rc = parse_iso(s, secs); break;
    case DATE_US: rc = parse_slashed(s, 1, secs); break;
    case DATE_EU: rc = parse_slashed(s, 0, secs); break;
    case DATE_EPOCH_MS: rc = parse_epoch(s, 1, secs); break;
    case DATE_EPOCH_S: rc = parse_epoch(s, 0, secs); break;
    case DATE_AUTO: {
        size_t n = strspn(s, "0123456789");
        if (n == strlen(s) && n >= 11)      /* 13 digits today: milliseconds */
            rc = parse_epoch(s, 1, secs);
        else if (n == strlen(s) && n >= 9)
            rc = parse_epoch(s, 0, secs);
        else if (n == 4)
            rc = parse_iso(s, secs);
        else
            rc = parse_slashed(s, 1, secs);
        break;
    }
    }
    if (rc < 0)
        return prm_error_set(err, "not a date: \"%.60s\"", s);
    return 0;
}

/* Writes n digits of v, zero-padded (called per ingested row: no printf). */
static void put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void date_iso(int64_t secs, char out[11])
{
    int y, m, d;
    int64_t days = secs / 86400 - (secs % 86400 < 0);
    civil_from_days(days, &y, &m, &d);
    put_digits(out, (unsigned)y % 10000u, 4);
    out[4] = '-';
    put_digits(out + 5, (unsigned)m, 2);
    out[7] = '-';
    put_digits(out + 8, (unsigned)d, 2);
    out[10] = 0;
}

void instant_iso(int64_t secs, char out[21])
{
    int64_t days = secs / 86400 - (secs % 86400 < 0);
    int64_t rem = secs - days * 86400;
    date_iso(secs, out);
    out[10] = 'T';
    put_digits(out + 11, (unsigned)(rem / 3600), 2);
    out[13] = ':';
    put_digits(out + 14, (unsigned)(rem / 60 % 60), 2);
    out[16] = ':';
    put_digits(out + 17, (unsigned)(rem % 60), 2);
    out[19] = 'Z';
    out[20] = 0;
}

void fiscal_quarter(int64_t days, int start_month, int *fy, int *q)
{
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    int off = (m - start_month + 12) % 12;          /* months into the fiscal year */
    *q = off / 3 + 1;
    /* The fiscal year is named by the calendar year in which it ends. */
    *fy = (start_month == 1 || m < start_month) ? y : y + 1;
}

int64_t fiscal_quarter_start(int fy, int q, int start_month)
{
    int y = start_month == 1 ? fy : fy - 1;
    int m = start_month + (q - 1) * 3;
    while (m > 12) { m -= 12; y++; }
    return days_from_civil(y, m, 1);
}

/* ---- the clock --------------------------------------------------------- */

static int64_t pinned;
static int is_pinned;

static int is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* [F][Y]dddd at *p: the year, or -1. */
static int label_year(const char **p, const char *e)
{
    if (*p < e && **p == 'F') (*p)++;
    if (*p < e && **p == 'Y') (*p)++;
    int y = 0;
    for (int i = 0; i < 4; i++, (*p)++) {
        if (*p >= e || **p < '0' || **p > '9') return -1;
        y = y * 10 + (**p - '0');
    }
    return y;
}

/* Q[1-4] at *p: the quarter, or -1. */
static int label_q(const char **p, const char *e)
{
    if (*p + 1 >= e || **p != 'Q' || (*p)[1] < '1' || (*p)[1] > '4') return -1;
    int q = (*p)[1] - '0';
    *p += 2;
    return q;
}

/* Optional spaces, an optional '-', optional spaces. */
static void label_sep(const char **p, const char *e)
{
    while (*p < e && is_space(**p)) (*p)++;
    if (*p < e && **p == '-') (*p)++;
    while (*p < e && is_space(**p)) (*p)++;
}

int quarter_label_parse(const char *s, size_t n, char out[8])
{
    const char *p = s, *e = s + n;
    while (p < e && is_space(*p)) p++;
    while (e > p && is_space(e[-1])) e--;
    int y, q;
    if (p < e && *p == 'Q') {
        if ((q = label_q(&p, e)) < 0) return -1;
        label_sep(&p, e);
        if ((y = label_year(&p, e)) < 0) return -1;
    } else {
        if ((y = label_year(&p, e)) < 0) return -1;
        label_sep(&p, e);
        if ((q = label_q(&p, e)) < 0) return -1;
    }
    if (p != e) return -1;
    put_digits(out, (unsigned)y, 4);
    out[4] = '-';
    out[5] = 'Q';
    out[6] = (char)('0' + q);
    out[7] = 0;
    return 0;
}

int clock_parse(const char *text, int64_t *secs, prm_error *err)
{
    if (!text || !*text) return prm_error_set(err, "empty date");
    if (date_parse(text, DATE_AUTO, secs, err) < 0) return -1;
    /* A date without a time of day means its end: "as of 2026-11-20"
     * includes what happened on the 20th. */
    const char *p = text;
    while (*p == ' ') p++;
    if ((strchr(p, '-') || strchr(p, '/') || strchr(p, '.')) && !strchr(p, ':') && strlen(p) <= 10 &&
        *secs % 86400 == 0)
        *secs += 86399;
    return 0;
}

void clock_pin(int64_t secs)
{
    pinned = secs;
    is_pinned = secs != 0;
}

int clock_pin_text(const char *text, prm_error *err)
{
    int64_t t;
    if (clock_parse(text, &t, err) < 0) return -1;
    clock_pin(t);
    return 0;
}

int clock_pinned(void)
{
    const char *env = getenv("PRMCAST_NOW");
    return is_pinned || (env && *env);
}

int64_t clock_now(void)
{
    if (is_pinned) return pinned;
    const char *env = getenv("PRMCAST_NOW");
    int64_t t;
    if (env && *env && clock_parse(env, &t, NULL) == 0) return t;
    return (int64_t)time(NULL);
}
