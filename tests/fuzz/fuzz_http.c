/* fuzz_http.c - libFuzzer target: what prm.http parses out of a server's
 * response and what it writes into logs: Retry-After values (seconds or an
 * HTTP date) and URL / message redaction. Checks: a Retry-After is -1 or a
 * non-negative delay; redacted text is NUL-terminated inside its buffer
 * and never longer than it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    long ms = http_retry_after_ms(s, 1764633600L);
    if (ms < -1) abort();
    char out[256];
    memset(out, 'x', sizeof out);
    http_redact_url(NULL, s, out, sizeof out);
    if (!memchr(out, 0, sizeof out)) abort();
    memset(out, 'x', sizeof out);
    http_redact(NULL, s, out, sizeof out);
    if (!memchr(out, 0, sizeof out)) abort();
    char tiny[1];
    http_redact_url(NULL, s, tiny, sizeof tiny);
    if (tiny[0] != 0) abort();
    free(s);
    return 0;
}
