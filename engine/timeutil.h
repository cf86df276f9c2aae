/* timeutil.h - calendar arithmetic and date parsing, plain C.
 *
 * Dates are days since 1970-01-01 (UTC, proleptic Gregorian) in an int64;
 * the store keeps them as ISO text: "YYYY-MM-DD" for dates and
 * "YYYY-MM-DDTHH:MM:SSZ" for instants, so text order is time order.
 * Fiscal periods: a fiscal year named by the calendar year in which it ENDS
 * (FY2026 with start month 2 runs 2025-02-01 .. 2026-01-31), as most
 * vendors name them; with start month 1 fiscal equals calendar.
 */
#ifndef PRM_TIMEUTIL_H
#define PRM_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum { DATE_AUTO, DATE_ISO, DATE_US, DATE_EU, DATE_EPOCH_MS, DATE_EPOCH_S } date_format;

int64_t days_from_civil(int y, int m, int d);
void civil_from_days(int64_t z, int *y, int *m, int *d);

/* Parses s in the given format (DATE_AUTO: ISO date or instant, then epoch
 * seconds/milliseconds by magnitude, then US month/day/year) into seconds
 * since the epoch. Returns 0, or -1 with err naming the text. */
int date_parse(const char *s, date_format fmt, int64_t *secs, prm_error *err);
int date_format_parse(const char *name, date_format *fmt);

void date_iso(int64_t secs, char out[11]);      /* "YYYY-MM-DD" */
void instant_iso(int64_t secs, char out[21]);   /* "YYYY-MM-DDTHH:MM:SSZ" */

/* Fiscal quarter of a date: *fy (named by its end year) and *q (1..4). */
void fiscal_quarter(int64_t days, int start_month, int *fy, int *q);
/* First day (days since epoch) of fiscal quarter fy/q and of the next one. */
int64_t fiscal_quarter_start(int fy, int q, int start_month);
/* Reads a quarter label as PRM exports write it ("2026-Q1", "FY2026 Q1",
 * "2026Q1", "Q1 2026", "Q1-FY2026"; spaces around) into "YYYY-Qn".
 * Returns 0, or -1 when s is not one. */
int quarter_label_parse(const char *s, size_t n, char out[8]);

/* ---- the engine's one clock ------------------------------------------
 * Every "now" the engine uses or writes (as-of of train/score/rules,
 * scored_at, jobs, runs, outbox, sync state, audit) comes from here, so a
 * run pinned to an instant is reproducible byte for byte. The instant is,
 * in order: what clock_pin set (the CLI's --as-of), $PRMCAST_NOW, the wall
 * clock. A bare date means the END of that day (23:59:59Z) in both. */
int64_t clock_now(void);
/* Parses an as-of text (ISO/US/EU date or instant, epoch): a bare date is
 * the end of its day. Returns 0, or -1 with err naming the text. */
int clock_parse(const char *text, int64_t *secs, prm_error *err);
/* Pins the clock (0 unpins); clock_pin_text parses with clock_parse. */
void clock_pin(int64_t secs);
int clock_pin_text(const char *text, prm_error *err);
/* 1 when the clock is pinned (clock_pin or $PRMCAST_NOW). */
int clock_pinned(void);

#endif
