/* csvscan.c - the CSV tokenizer (csvscan.h). Where libcsv looks at every
 * byte through its state machine and copies it into its field buffer, this
 * skips an unquoted field's bytes with one table lookup each and a quoted
 * field's with memchr, and hands a field that lies inside one call to the
 * callback in place, without a copy. Only a field spanning calls, or one
 * holding a doubled quote, is assembled in c->buf. */
#include "csvscan.h"

#include <stdlib.h>
#include <string.h>

enum { CL_DATA = 0, CL_SPECIAL = 1, CL_SPACE = 2 };

void csvscan_init(csvscan *c, unsigned char delim)
{
    memset(c, 0, sizeof *c);
    c->delim = delim;
    c->cls[' '] = CL_SPACE;
    c->cls['\t'] = CL_SPACE;
    c->cls['"'] = CL_SPECIAL;
    c->cls['\r'] = CL_SPECIAL;
    c->cls['\n'] = CL_SPECIAL;
    c->cls[delim] = CL_SPECIAL;
}

void csvscan_free(csvscan *c)
{
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

static int append(csvscan *c, const char *s, size_t n)
{
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (cap < c->len + n + 1) cap *= 2;
        char *b = realloc(c->buf, cap);
        if (!b) return -1;
        c->buf = b;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, s, n);
    c->len += n;
    return 0;
}

static int is_term(unsigned char ch) { return ch == '\r' || ch == '\n'; }

size_t csvscan_feed(csvscan *c, const char *s, size_t n, csvscan_field_fn on_field,
                    csvscan_row_fn on_row, void *ud)
{
    const unsigned char *u = (const unsigned char *)s;
    const unsigned char *cls = c->cls;
    size_t i = 0;
    if (c->err) return 0;
    while (i < n) {
        unsigned char ch = u[i];
        switch (c->state) {
        case CSVS_ROW_NOT_BEGUN:
        case CSVS_FIELD_NOT_BEGUN:
            if (cls[ch] == CL_SPACE && ch != c->delim) { i++; continue; }
            if (is_term(ch)) {
                if (c->state == CSVS_FIELD_NOT_BEGUN) {
                    c->state = CSVS_ROW_NOT_BEGUN;
                    on_field(NULL, 0, ud);
                    on_row(ch, ud);
                }
                i++;
                continue;
            }
            if (ch == c->delim) {
                c->state = CSVS_FIELD_NOT_BEGUN;
                on_field(NULL, 0, ud);
                i++;
                continue;
            }
            c->state = CSVS_FIELD_BEGUN;
            c->len = c->spaces = 0;
            c->quoted = ch == '"';
            if (c->quoted) i++;
            continue;
        case CSVS_FIELD_BEGUN:
            if (!c->quoted) {
                size_t j = i;
                while (j < n && cls[u[j]] != CL_SPECIAL) j++;
                size_t k = j;
                while (k > i && cls[u[k - 1]] == CL_SPACE && u[k - 1] != c->delim) k--;
                c->spaces = k > i ? j - k : c->spaces + (j - i);
                if (j == n) {                       /* continues in the next call */
                    if (append(c, s + i, j - i) < 0) { c->err = CSVS_ENOMEM; return i; }
                    return n;
                }
                ch = u[j];
                if (ch == '"' && ch != c->delim) { c->err = CSVS_EPARSE; return j; }
                const char *f = s + i;
                size_t flen = j - i;
                if (c->len) {
                    if (append(c, f, flen) < 0) { c->err = CSVS_ENOMEM; return j; }
                    f = c->buf;
                    flen = c->len;
                }
                flen -= c->spaces;
                c->len = c->spaces = 0;
                i = j + 1;
                if (ch == c->delim) {
                    c->state = CSVS_FIELD_NOT_BEGUN;
                    on_field(flen ? (void *)f : NULL, flen, ud);
                } else {
                    c->state = CSVS_ROW_NOT_BEGUN;
                    on_field(flen ? (void *)f : NULL, flen, ud);
                    on_row(ch, ud);
                }
                continue;
            } else {
                const unsigned char *q = memchr(u + i, '"', n - i);
                size_t j = q ? (size_t)(q - u) : n;
                if (append(c, s + i, j - i) < 0) { c->err = CSVS_ENOMEM; return i; }
                if (!q) return n;
                c->state = CSVS_FIELD_MIGHT_HAVE_ENDED;
                c->spaces = 0;
                i = j + 1;
                continue;
            }
        case CSVS_FIELD_MIGHT_HAVE_ENDED:
            if (ch == c->delim || is_term(ch)) {
                c->state = ch == c->delim ? CSVS_FIELD_NOT_BEGUN : CSVS_ROW_NOT_BEGUN;
                size_t flen = c->len;
                c->len = c->spaces = 0;
                c->quoted = 0;
                i++;
                on_field(c->buf ? c->buf : (char *)"", flen, ud);
                if (ch != c->delim) on_row(ch, ud);
                continue;
            }
            if (cls[ch] == CL_SPACE) { c->spaces++; i++; continue; }
            if (ch == '"' && !c->spaces) {          /* "" inside quotes: one quote */
                if (append(c, "\"", 1) < 0) { c->err = CSVS_ENOMEM; return i; }
                c->state = CSVS_FIELD_BEGUN;
                i++;
                continue;
            }
            c->err = CSVS_EPARSE;                   /* text after a closing quote */
            return i;
        }
    }
    return n;
}

int csvscan_finish(csvscan *c, csvscan_field_fn on_field, csvscan_row_fn on_row, void *ud)
{
    if (c->state == CSVS_FIELD_BEGUN && c->quoted) {
        c->err = CSVS_EPARSE;
        return -1;
    }
    int state = c->state;
    size_t flen = c->len - (state == CSVS_FIELD_BEGUN ? c->spaces : 0);
    c->state = CSVS_ROW_NOT_BEGUN;
    c->len = c->spaces = 0;
    c->quoted = 0;
    switch (state) {
    case CSVS_FIELD_MIGHT_HAVE_ENDED:
        on_field(c->buf ? c->buf : (char *)"", flen, ud);
        on_row(-1, ud);
        break;
    case CSVS_FIELD_NOT_BEGUN:
    case CSVS_FIELD_BEGUN:
        on_field(flen ? c->buf : NULL, flen, ud);
        on_row(-1, ud);
        break;
    default: break;
    }
    return 0;
}
