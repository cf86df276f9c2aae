/* test_timeutil.c - date parsing in the formats PRM exports use, calendar
 * arithmetic and fiscal quarters. */
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "timeutil.h"

static const char *iso(const char *s, date_format f)
{
    static char out[21];
    int64_t t;
    if (date_parse(s, f, &t, NULL) < 0) return "ERR";
    instant_iso(t, out);
    return out;
}

int main(void)
{
    T_EQ_STR(iso("2025-03-07", DATE_AUTO), "2025-03-07T00:00:00Z", "ISO date");
    T_EQ_STR(iso("2025-03-07T14:05:09Z", DATE_AUTO), "2025-03-07T14:05:09Z", "ISO instant Z");
    T_EQ_STR(iso("2025-03-07T14:05:09.123Z", DATE_AUTO), "2025-03-07T14:05:09Z", "fractional seconds dropped");
    T_EQ_STR(iso("2025-03-07T14:05:09+02:00", DATE_AUTO), "2025-03-07T12:05:09Z", "offset applied");
    T_EQ_STR(iso("2025-03-07 14:05", DATE_AUTO), "2025-03-07T14:05:00Z", "space separator, no seconds");
    T_EQ_STR(iso("03/07/2025", DATE_AUTO), "2025-03-07T00:00:00Z", "US m/d/y by default");
    T_EQ_STR(iso("3/7/2025", DATE_US), "2025-03-07T00:00:00Z", "US single digits");
    T_EQ_STR(iso("07.03.2025", DATE_EU), "2025-03-07T00:00:00Z", "EU d.m.y");
    T_EQ_STR(iso("1741356309000", DATE_AUTO), "2025-03-07T14:05:09Z", "epoch ms by magnitude");
    T_EQ_STR(iso("1741356309", DATE_AUTO), "2025-03-07T14:05:09Z", "epoch s by magnitude");
    T_EQ_STR(iso("1741356309000", DATE_EPOCH_MS), "2025-03-07T14:05:09Z", "epoch ms explicit");
    T_EQ_STR(iso("2024-02-29", DATE_ISO), "2024-02-29T00:00:00Z", "leap day");
    T_EQ_STR(iso("2025-02-29", DATE_ISO), "ERR", "not a leap year");
    T_EQ_STR(iso("13/45/2025", DATE_AUTO), "ERR", "impossible US date");
    T_EQ_STR(iso("2025-13-01", DATE_AUTO), "ERR", "month 13");
    T_EQ_STR(iso("", DATE_AUTO), "ERR", "empty");
    T_EQ_STR(iso("next tuesday", DATE_AUTO), "ERR", "words");
    T_EQ_STR(iso("2025-03-07junk", DATE_AUTO), "ERR", "trailing junk");
    T_EQ_STR(iso("5551234", DATE_AUTO), "ERR", "a phone number is not a date");

    prm_error err;
    int64_t t;
    T_OK(date_parse("31/31/2025", DATE_US, &t, &err) < 0 && strstr(err.msg, "31/31/2025"),
         "error names the text");

    int y, m, d;
    civil_from_days(days_from_civil(2000, 2, 29), &y, &m, &d);
    T_OK(y == 2000 && m == 2 && d == 29, "days round trip");
    T_EQ_INT(days_from_civil(1970, 1, 1), 0, "epoch is day 0");
    T_EQ_INT(days_from_civil(1969, 12, 31), -1, "before the epoch");

    int fy, q;
    fiscal_quarter(days_from_civil(2025, 3, 31), 1, &fy, &q);
    T_OK(fy == 2025 && q == 1, "calendar Q1");
    fiscal_quarter(days_from_civil(2025, 12, 1), 1, &fy, &q);
    T_OK(fy == 2025 && q == 4, "calendar Q4");
    fiscal_quarter(days_from_civil(2025, 2, 1), 2, &fy, &q);
    T_OK(fy == 2026 && q == 1, "FY starting February: Feb 2025 is FY2026 Q1");
    fiscal_quarter(days_from_civil(2026, 1, 31), 2, &fy, &q);
    T_OK(fy == 2026 && q == 4, "FY starting February: Jan 2026 is FY2026 Q4");
    fiscal_quarter(days_from_civil(2025, 7, 15), 7, &fy, &q);
    T_OK(fy == 2026 && q == 1, "FY starting July");
    T_EQ_INT(fiscal_quarter_start(2026, 1, 2), days_from_civil(2025, 2, 1), "FY2026 Q1 starts 2025-02-01");
    T_EQ_INT(fiscal_quarter_start(2025, 4, 1), days_from_civil(2025, 10, 1), "2025 Q4 starts Oct 1");

    /* Quarter labels as exports write them (the "quarter" field kind). */
    static const char *const good[][2] = { { "2026-Q1", "2026-Q1" }, { " FY2026 Q4 ", "2026-Q4" },
        { "2026Q2", "2026-Q2" }, { "Q3 2026", "2026-Q3" }, { "Q1-FY2026", "2026-Q1" },
        { "Q1\t2026", "2026-Q1" } };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char out[8] = "";
        int rc = quarter_label_parse(good[i][0], strlen(good[i][0]), out);
        T_OK(rc == 0 && strcmp(out, good[i][1]) == 0, good[i][0]);
    }
    static const char *const bad[] = { "2026-Q5", "Q0 2026", "26-Q1", "2026-Q1x", "", "FY 2026 Q1", "2026-" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[8];
        T_OK(quarter_label_parse(bad[i], strlen(bad[i]), out) < 0, bad[i]);
    }
    /* the length bounds the text: "2026-Q1" inside a longer buffer */
    char out[8];
    T_OK(quarter_label_parse("2026-Q1,rest", 7, out) == 0 && strcmp(out, "2026-Q1") == 0, "length-bounded");
    return t_done();
}
