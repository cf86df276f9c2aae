/* http.h - the HTTP client the connectors talk through. The only file that
 * includes <curl/curl.h> is http.c.
 *
 * One client per remote API (per sync): it owns one CURL easy handle, so
 * connections are reused; TLS peers are verified unless told otherwise (the
 * CA bundle is configurable); the proxy environment variables apply
 * (libcurl reads them); responses may come gzip/deflate-encoded.
 *
 * Retries: timeouts, connection errors, 5xx and the client's throttling
 * statuses are retried with exponential backoff and jitter, a throttled
 * response after its Retry-After (seconds or an HTTP date). Every retry
 * spends one unit of the client's budget; an empty budget fails the request
 * with "retry budget exhausted".
 *
 * Secrets: the values of credential headers (Authorization, X-API-KEY,
 * prm-key ...), the basic-auth password, the client's extra secrets and
 * every *_TOKEN/_KEY/_SECRET/_PASSWORD environment value are masked in
 * every log line and error message; URLs are logged with their userinfo
 * and secret-looking query parameters (api_key, token, secret, ...)
 * replaced by "***".
 */
#ifndef PRM_HTTP_H
#define PRM_HTTP_H

#include <stddef.h>

#include "error.h"

typedef struct http_client http_client;

/* A throttling rule: `status`, and when `body` is set, only responses whose
 * body contains it (Salesforce's 403 REQUEST_LIMIT_EXCEEDED). */
typedef struct http_throttle {
    long status;
    const char *body;
} http_throttle;

/* One log line per attempt, already redacted:
 * "GET https://host/api/v2/deals?limit=250 200 5120 B 12 ms" */
typedef void (*http_log_fn)(void *ud, const char *line);

typedef struct http_opts {
    const char *base_url;             /* prefixed to relative paths */
    const char *const *headers;       /* "Name: value", NULL-terminated; may be NULL */
    const char *user, *password;      /* HTTP basic auth; may be NULL */
    const http_throttle *throttle;    /* NULL: { 429 } */
    int nthrottle;
    int retries;                      /* per request, for errors (not throttling); < 0: 4 */
    int budget;                       /* retries per client lifetime; < 0: 50 */
    long timeout_ms;                  /* whole request; 0: 60000 */
    long connect_timeout_ms;          /* 0: 10000 */
    long backoff_ms;                  /* first backoff; 0: 500 */
    long backoff_max_ms;              /* 0: 30000 */
    long retry_after_max_ms;          /* a longer Retry-After fails; 0: 300000 */
    size_t max_body;                  /* 0: 256 MiB */
    const char *ca_file;              /* CA bundle; NULL: the system's */
    int insecure;                     /* 1: skip TLS verification (tests only) */
    const char *const *secrets;       /* more values to mask; NULL-terminated */
    http_log_fn log;
    void *log_ud;
} http_opts;

typedef struct http_request {
    const char *method;               /* NULL: GET */
    const char *path;                 /* relative to base_url, or an absolute URL */
    const char *const *query;         /* name, value, name, value, ..., NULL */
    const char *const *headers;       /* "Name: value", NULL-terminated */
    const char *body;
    size_t body_len;
} http_request;

typedef struct http_header {
    char *name;                       /* lower case */
    char *value;
} http_header;

typedef struct http_response {
    long status;
    http_header *headers;
    int nheaders;
    char *body;                       /* NUL-terminated */
    size_t body_len;
    int attempts;
    double ms;                        /* the last attempt */
    char url[2048];                   /* the final URL, redacted */
} http_response;

int http_client_new(const http_opts *o, http_client **out, prm_error *err);
void http_client_free(http_client *c);

/* Sends the request with retries. Returns 0 with any final HTTP status in
 * resp (a 404 is a response, not an error); -1 when no response came or
 * retries ran out, with err saying why (redacted) and resp->status the
 * last status seen (0 when none). Free resp with http_response_free. */
int http_request_send(http_client *c, const http_request *r, http_response *resp,
                      prm_error *err);
void http_response_free(http_response *resp);
const char *http_response_header(const http_response *resp, const char *name);

typedef struct http_stats {
    long requests;                    /* attempts sent */
    long retries;
    long throttled;
    long bytes;                       /* response bytes (decoded) */
    int budget_left;
} http_stats;
void http_client_stats(const http_client *c, http_stats *st);

/* Copies s into out with the client's secrets masked as "[REDACTED]" (c may
 * be NULL: environment secrets only). Always NUL-terminates. */
void http_redact(const http_client *c, const char *s, char *out, size_t outlen);
/* Copies url with userinfo and secret query parameters masked. */
void http_redact_url(const http_client *c, const char *url, char *out, size_t outlen);

/* Parses a Retry-After value: seconds, or an HTTP date relative to `now`
 * (epoch seconds). Returns milliseconds, or -1 when unparseable. */
long http_retry_after_ms(const char *v, long now);

#endif
