/* A growing text arena: strings appended back to back, each referred to
 * by its offset (which stays valid when the arena moves). Used by the
 * batches that carry text between two places: lcsvlib's parse-to-writer
 * chunks and store_upsert's waiting history rows. */
#ifndef PRM_TEXTBUF_H
#define PRM_TEXTBUF_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Appends s with its NUL to *text (length *len, capacity *cap; the first
 * allocation is `first` bytes); returns its offset, -1 when out of memory
 * (the arena is unchanged). */
static inline ptrdiff_t textbuf_add(char **text, size_t *len, size_t *cap, size_t first, const char *s)
{
    size_t n = strlen(s) + 1;
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : first;
        while (c < *len + n) c *= 2;
        char *t = realloc(*text, c);
        if (!t) return -1;
        *text = t;
        *cap = c;
    }
    memcpy(*text + *len, s, n);
    *len += n;
    return (ptrdiff_t)(*len - n);
}

#endif
