/* error.h - the engine's error record.
 *
 * Every C function that can fail takes a `prm_error *err` last and returns 0
 * on success, or -1 with err->msg saying what failed, where and why (SQLite's
 * sticky errmsg, Neovim's Error *err). err may be NULL when the caller does
 * not care. The numeric core uses it too, so this header includes nothing
 * beyond the C library.
 */
#ifndef PRM_ERROR_H
#define PRM_ERROR_H

#include <stddef.h>

typedef struct prm_error {
    char msg[1024];
} prm_error;

/* Formats into err->msg (when err is not NULL) and returns -1, so that
 * `return prm_error_set(err, "...")` reads as one statement. */
int prm_error_set(prm_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefixes err->msg with more context: "ingest deals.csv: " + old message. */
int prm_error_prefix(prm_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
