/* error.c - see error.h. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int prm_error_set(prm_error *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int prm_error_prefix(prm_error *err, const char *fmt, ...)
{
    if (err) {
        char head[512], old[sizeof err->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(head, sizeof head, fmt, ap);
        va_end(ap);
        memcpy(old, err->msg, sizeof old);
        size_t h = strlen(head), o = strnlen(old, sizeof old - 1);
        if (h > sizeof err->msg - 1) h = sizeof err->msg - 1;
        if (o > sizeof err->msg - 1 - h) o = sizeof err->msg - 1 - h;
        memcpy(err->msg, head, h);
        memcpy(err->msg + h, old, o);
        err->msg[h + o] = 0;
    }
    return -1;
}
