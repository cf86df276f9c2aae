/* csvscan.h - the CSV tokenizer under prm.csv (engine/lcsvlib.c): bytes in,
 * field and row callbacks out, incremental (a record may span any number of
 * calls). It reproduces libcsv 3.0's strict mode (CSV_STRICT |
 * CSV_STRICT_FINI | CSV_EMPTY_IS_NULL) callback for callback, which
 * tests/fuzz/fuzz_csvscan.c checks against libcsv itself on arbitrary input
 * cut at arbitrary points; it exists because libcsv's per-byte state machine
 * was 11% of a first load's instructions (bench/RESULTS.md, Ingest).
 *
 *   csvscan c;
 *   csvscan_init(&c, ',');
 *   if (csvscan_feed(&c, buf, n, on_field, on_row, ud) != n) ...error at that byte...
 *   if (csvscan_finish(&c, on_field, on_row, ud) < 0) ...the input ended inside quotes...
 *   csvscan_free(&c);
 *
 * The rules (RFC 4180 plus libcsv's leniencies):
 *   - a field is quoted when its first character after spaces/tabs is '"';
 *     inside quotes the delimiter, CR and LF are data and "" is one quote;
 *     spaces/tabs between the closing quote and the delimiter are dropped;
 *   - an unquoted field loses its leading and trailing spaces/tabs (unless
 *     the delimiter is one of them); an empty unquoted field is reported as
 *     (NULL, 0), an empty quoted one as ("", 0);
 *   - CR, LF or CRLF ends a row; empty lines are no rows;
 *   - errors (strict): a quote inside an unquoted field, and after a closing
 *     quote anything but spaces/tabs followed by a delimiter or a line end.
 * Field bytes passed to on_field are valid only during the call. The
 * callbacks may longjmp out (a Lua error); the scanner stays usable for
 * csvscan_free only. */
#ifndef PRM_CSVSCAN_H
#define PRM_CSVSCAN_H

#include <stddef.h>

typedef void (*csvscan_field_fn)(void *s, size_t len, void *ud);
typedef void (*csvscan_row_fn)(int c, void *ud);

enum { CSVS_ROW_NOT_BEGUN, CSVS_FIELD_NOT_BEGUN, CSVS_FIELD_BEGUN, CSVS_FIELD_MIGHT_HAVE_ENDED };
enum { CSVS_EPARSE = 1, CSVS_ENOMEM = 2 };    /* csvscan.err */

typedef struct csvscan {
    int state;                 /* CSVS_* */
    int quoted;                /* the field being read is quoted */
    size_t spaces;             /* trailing spaces/tabs seen (dropped if the field ends) */
    unsigned char delim;
    unsigned char cls[256];    /* per byte: 0 data, 1 delimiter/quote/CR/LF, 2 space/tab */
    char *buf;                 /* the field so far when it spans calls or has "" */
    size_t len, cap;
    int err;                   /* CSVS_EPARSE / CSVS_ENOMEM after an error, until csvscan_init */
} csvscan;

void csvscan_init(csvscan *c, unsigned char delim);
void csvscan_free(csvscan *c);
/* Returns n, or the number of bytes consumed before an error (c->err says
 * which; for CSVS_EPARSE the byte at that offset is the offending one).
 * After an error nothing more is read until csvscan_free + csvscan_init. */
size_t csvscan_feed(csvscan *c, const char *s, size_t n, csvscan_field_fn on_field,
                    csvscan_row_fn on_row, void *ud);
/* The end of the input: reports the last field and row if the input did not
 * end with a line end, and makes the scanner ready for a row's start.
 * Returns 0, or -1 (CSVS_EPARSE, nothing reported) when the input ended
 * inside a quoted field. */
int csvscan_finish(csvscan *c, csvscan_field_fn on_field, csvscan_row_fn on_row, void *ud);
/* A quoted field is open (the record continues on the next line). */
static inline int csvscan_in_quote(const csvscan *c)
{
    return c->state == CSVS_FIELD_BEGUN && c->quoted;
}

#endif
