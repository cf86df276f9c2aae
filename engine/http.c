/* http.c - see http.h. The only includer of <curl/curl.h>. */
#include "http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum { MAX_SECRETS = 32 };

struct http_client {
    CURL *h;
    char *base_url;
    struct curl_slist *headers;
    char *user, *password;
    http_throttle *throttle;
    int nthrottle;
    int retries, budget_left;
    long timeout_ms, connect_timeout_ms, backoff_ms, backoff_max_ms, retry_after_max_ms;
    size_t max_body;
    char *ca_file;
    int insecure;
    char *secrets[MAX_SECRETS];
    int nsecrets;
    http_log_fn log;
    void *log_ud;
    uint64_t rng;
    http_stats st;
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static char *sdup(const char *s) { return s ? strdup(s) : NULL; }

/* ---- secrets ---------------------------------------------------------- */

/* Header names whose values are credentials. Anything with key, token,
 * secret, auth or password in its name counts too. */
static int secret_header(const char *name, size_t n)
{
    static const char *const parts[] = { "key", "token", "secret", "auth", "password",
                                         "cookie", "session", NULL };
    char low[64];
    if (n >= sizeof low) n = sizeof low - 1;
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)name[i]);
    low[n] = 0;
    for (const char *const *p = parts; *p; p++)
        if (strstr(low, *p)) return 1;
    return 0;
}

static void add_secret(http_client *c, const char *v, size_t n)
{
    while (n && isspace((unsigned char)*v)) v++, n--;
    while (n && isspace((unsigned char)v[n - 1])) n--;
    if (n < 4 || c->nsecrets >= MAX_SECRETS) return;
    char *s = strndup(v, n);
    if (s) c->secrets[c->nsecrets++] = s;
}

/* A credential header's whole value, and its token after a scheme word
 * ("Basic xxx", "Bearer xxx", "prm-key xxx"). */
static void add_header_secret(http_client *c, const char *line)
{
    const char *colon = strchr(line, ':');
    if (!colon || !secret_header(line, (size_t)(colon - line))) return;
    const char *v = colon + 1;
    while (*v == ' ') v++;
    add_secret(c, v, strlen(v));
    const char *sp = strchr(v, ' ');
    if (sp) add_secret(c, sp + 1, strlen(sp + 1));
}

static int is_env_secret(const char *kv, const char **val)
{
    static const char *const sfx[] = { "_TOKEN", "_KEY", "_SECRET", "_PASSWORD", NULL };
    const char *eq = strchr(kv, '=');
    if (!eq || strlen(eq + 1) < 4) return 0;
    size_t klen = (size_t)(eq - kv);
    for (const char *const *s = sfx; *s; s++) {
        size_t sl = strlen(*s);
        if (klen >= sl && strncmp(kv + klen - sl, *s, sl) == 0) {
            *val = eq + 1;
            return 1;
        }
    }
    return 0;
}

void http_redact(const http_client *c, const char *s, char *out, size_t outlen)
{
    size_t o = 0;
    if (!outlen) return;
    /* The secrets gathered once per call, not per character (a request's
     * log line used to scan the whole environment at each of its bytes:
     * ~4% of a sync's CPU). More than 64 is unheard of; the rest are
     * still checked, the slow way. */
    enum { NSEC = 64 };
    const char *sv[NSEC];
    size_t sn[NSEC];
    int ns = 0, more = 0;
    for (int i = 0; c && i < c->nsecrets; i++) {
        if (ns < NSEC) { sv[ns] = c->secrets[i]; sn[ns++] = strlen(c->secrets[i]); }
        else more = 1;
    }
    for (char **e = environ; *e; e++) {
        const char *v;
        if (is_env_secret(*e, &v)) {
            if (ns < NSEC) { sv[ns] = v; sn[ns++] = strlen(v); }
            else more = 1;
        }
    }
    while (*s && o + 1 < outlen) {
        size_t best = 0;
        for (int i = 0; i < ns; i++)
            if (sn[i] > best && sv[i][0] == *s && strncmp(s, sv[i], sn[i]) == 0) best = sn[i];
        if (more) {
            for (int i = 0; c && i < c->nsecrets; i++) {
                size_t n = strlen(c->secrets[i]);
                if (n > best && strncmp(s, c->secrets[i], n) == 0) best = n;
            }
            for (char **e = environ; *e; e++) {
                const char *v;
                if (is_env_secret(*e, &v)) {
                    size_t n = strlen(v);
                    if (n > best && strncmp(s, v, n) == 0) best = n;
                }
            }
        }
        if (best) {
            const char *m = "[REDACTED]";
            while (*m && o + 1 < outlen) out[o++] = *m++;
            s += best;
        } else {
            out[o++] = *s++;
        }
    }
    out[o] = 0;
}

static int secret_param(const char *name, size_t n)
{
    static const char *const parts[] = { "key", "token", "secret", "password", "passwd",
                                         "signature", "sig", "auth", "session", NULL };
    char low[64];
    if (n >= sizeof low) n = sizeof low - 1;
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)name[i]);
    low[n] = 0;
    for (const char *const *p = parts; *p; p++)
        if (strcmp(low, *p) == 0 || strstr(low, *p)) return 1;
    return 0;
}

void http_redact_url(const http_client *c, const char *url, char *out, size_t outlen)
{
    char tmp[4096];
    size_t o = 0;
    const char *p = url, *scheme = strstr(url, "://");
    if (scheme) {
        const char *host = scheme + 3, *end = host + strcspn(host, "/?#"), *at = NULL;
        for (const char *q = host; q < end; q++)
            if (*q == '@') at = q;
        size_t n = (size_t)(host - url);
        if (n >= sizeof tmp) n = sizeof tmp - 1;
        memcpy(tmp, url, n);
        o = n;
        if (at) {
            o += (size_t)snprintf(tmp + o, sizeof tmp - o, "***@");
            p = at + 1;
        } else {
            p = host;
        }
    }
    const char *qm = strchr(p, '?');
    size_t n = qm ? (size_t)(qm - p) : strlen(p);
    if (o + n >= sizeof tmp) n = sizeof tmp - 1 - o;
    memcpy(tmp + o, p, n);
    o += n;
    if (qm) {
        const char *q = qm + 1;
        tmp[o < sizeof tmp - 1 ? o++ : o] = '?';
        while (*q && o + 1 < sizeof tmp) {
            size_t plen = strcspn(q, "&#"), nlen = strcspn(q, "=&#");
            int masked = nlen < plen && secret_param(q, nlen);
            size_t copy = masked ? nlen + 1 : plen;
            if (o + copy >= sizeof tmp) copy = sizeof tmp - 1 - o;
            memcpy(tmp + o, q, copy);
            o += copy;
            if (masked) o += (size_t)snprintf(tmp + o, sizeof tmp - o, "***");
            q += plen;
            if (*q == '&' && o + 1 < sizeof tmp) tmp[o++] = *q++;
            else break;
        }
    }
    tmp[o < sizeof tmp ? o : sizeof tmp - 1] = 0;
    http_redact(c, tmp, out, outlen);
}

/* ---- the client ------------------------------------------------------- */

int http_client_new(const http_opts *o, http_client **out, prm_error *err)
{
    pthread_once(&global_once, global_init);
    http_client *c = calloc(1, sizeof *c);
    if (!c) return prm_error_set(err, "out of memory");
    c->h = curl_easy_init();
    if (!c->h) {
        free(c);
        return prm_error_set(err, "cannot create an HTTP handle");
    }
    c->base_url = sdup(o->base_url ? o->base_url : "");
    for (const char *const *h = o->headers; h && *h; h++) {
        struct curl_slist *n = curl_slist_append(c->headers, *h);
        if (!n) goto oom;
        c->headers = n;
        add_header_secret(c, *h);
    }
    c->user = sdup(o->user);
    c->password = sdup(o->password);
    if (o->password) add_secret(c, o->password, strlen(o->password));
    for (const char *const *s = o->secrets; s && *s; s++) add_secret(c, *s, strlen(*s));
    c->nthrottle = o->throttle ? o->nthrottle : 1;
    c->throttle = calloc((size_t)c->nthrottle, sizeof *c->throttle);
    if (!c->throttle) goto oom;
    for (int i = 0; i < c->nthrottle; i++) {
        c->throttle[i].status = o->throttle ? o->throttle[i].status : 429;
        c->throttle[i].body = o->throttle ? sdup(o->throttle[i].body) : NULL;
    }
    c->retries = o->retries < 0 ? 4 : o->retries;
    c->budget_left = o->budget < 0 ? 50 : o->budget;
    c->timeout_ms = o->timeout_ms ? o->timeout_ms : 60000;
    c->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 10000;
    c->backoff_ms = o->backoff_ms ? o->backoff_ms : 500;
    c->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 30000;
    c->retry_after_max_ms = o->retry_after_max_ms ? o->retry_after_max_ms : 300000;
    c->max_body = o->max_body ? o->max_body : (size_t)256 << 20;
    c->ca_file = sdup(o->ca_file);
    c->insecure = o->insecure;
    c->log = o->log;
    c->log_ud = o->log_ud;
    c->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
    *out = c;
    return 0;
oom:
    http_client_free(c);
    return prm_error_set(err, "out of memory");
}

void http_client_free(http_client *c)
{
    if (!c) return;
    curl_easy_cleanup(c->h);
    curl_slist_free_all(c->headers);
    for (int i = 0; i < c->nthrottle && c->throttle; i++) free((char *)c->throttle[i].body);
    free(c->throttle);
    for (int i = 0; i < c->nsecrets; i++) free(c->secrets[i]);
    free(c->base_url);
    free(c->user);
    free(c->password);
    free(c->ca_file);
    free(c);
}

void http_client_stats(const http_client *c, http_stats *st)
{
    *st = c->st;
    st->budget_left = c->budget_left;
}

/* ---- one attempt ------------------------------------------------------ */

typedef struct buf {
    char *p;
    size_t n, cap, max;
    int overflow;
} buf;

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    buf *b = ud;
    size_t n = size * nmemb;
    if (b->n + n > b->max) {
        b->overflow = 1;
        return 0;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = 0;
    return n;
}

static void free_headers(http_response *r)
{
    for (int i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    r->headers = NULL;
    r->nheaders = 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    http_response *r = ud;
    size_t n = size * nmemb, len = n;
    /* A new status line (after a 100 Continue or a proxy's 200) starts over. */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        free_headers(r);
        return n;
    }
    while (len && (data[len - 1] == '\r' || data[len - 1] == '\n')) len--;
    char *colon = memchr(data, ':', len);
    if (!colon) return n;
    http_header *h = realloc(r->headers, sizeof *h * (size_t)(r->nheaders + 1));
    if (!h) return 0;
    r->headers = h;
    size_t nl = (size_t)(colon - data);
    const char *v = colon + 1;
    while (v < data + len && (*v == ' ' || *v == '\t')) v++;
    char *name = strndup(data, nl), *value = strndup(v, (size_t)(data + len - v));
    if (!name || !value) {
        free(name);
        free(value);
        return 0;
    }
    for (char *q = name; *q; q++) *q = (char)tolower((unsigned char)*q);
    h[r->nheaders].name = name;
    h[r->nheaders].value = value;
    r->nheaders++;
    return n;
}

const char *http_response_header(const http_response *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
    return NULL;
}

void http_response_free(http_response *r)
{
    if (!r) return;
    free_headers(r);
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

/* base_url + path + ?query, with query values escaped. */
static char *build_url(http_client *c, const http_request *r)
{
    const char *path = r->path ? r->path : "";
    int absolute = strncmp(path, "http://", 7) == 0 || strncmp(path, "https://", 8) == 0;
    size_t cap = strlen(c->base_url) + strlen(path) + 2;
    for (const char *const *q = r->query; q && q[0] && q[1]; q += 2)
        cap += strlen(q[0]) * 3 + strlen(q[1]) * 3 + 2;
    char *url = malloc(cap);
    if (!url) return NULL;
    size_t o = (size_t)snprintf(url, cap, "%s%s", absolute ? "" : c->base_url, path);
    int has_q = strchr(url, '?') != NULL;
    for (const char *const *q = r->query; q && q[0] && q[1]; q += 2) {
        char *k = curl_easy_escape(c->h, q[0], 0), *v = curl_easy_escape(c->h, q[1], 0);
        if (!k || !v) {
            curl_free(k);
            curl_free(v);
            free(url);
            return NULL;
        }
        o += (size_t)snprintf(url + o, cap - o, "%c%s=%s", has_q ? '&' : '?', k, v);
        has_q = 1;
        curl_free(k);
        curl_free(v);
    }
    return url;
}

static void setup_handle(http_client *c, const http_request *r, const char *url,
                         struct curl_slist *hdrs, buf *body, http_response *resp)
{
    CURL *h = c->h;
    curl_easy_reset(h);        /* keeps the connection cache */
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "prmcast");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->insecure ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->insecure ? 0L : 2L);
    if (c->ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    if (c->user) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, c->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->password ? c->password : "");
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    const char *m = r->method ? r->method : "GET";
    if (r->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        if (strcmp(m, "POST") != 0) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
    } else if (strcmp(m, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
}

static int is_throttle(const http_client *c, long status, const char *body)
{
    for (int i = 0; i < c->nthrottle; i++)
        if (c->throttle[i].status == status &&
            (!c->throttle[i].body || (body && strstr(body, c->throttle[i].body))))
            return 1;
    return 0;
}

long http_retry_after_ms(const char *v, long now)
{
    if (!v) return -1;
    while (*v == ' ') v++;
    char *end;
    long s = strtol(v, &end, 10);
    /* A server's value, so bounded: past a day it is a day (the caller caps
     * it lower still); found by tests/fuzz/fuzz_http.c, it overflowed. */
    enum { DAY_S = 86400 };
    if (end != v) {
        while (*end == ' ') end++;
        if (*end == 0) return s < 0 ? 0 : s > DAY_S ? DAY_S * 1000L : s * 1000;
    }
    time_t t = curl_getdate(v, NULL);
    if (t < 0) return -1;
    long d = t > now ? (long)(t - now) : 0;
    return (d > DAY_S ? DAY_S : d) * 1000L;
}

static uint64_t next_rand(http_client *c)
{
    uint64_t x = c->rng;                 /* xorshift64: jitter needs no quality */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return c->rng = x ? x : 0x9e3779b97f4a7c15ULL;
}

/* Exponential backoff with jitter: half the step, plus a random part of
 * the other half, so clients that failed together do not retry together. */
static long backoff(http_client *c, int attempt)
{
    long d = c->backoff_ms;
    for (int i = 0; i < attempt && d < c->backoff_max_ms; i++) d *= 2;
    if (d > c->backoff_max_ms) d = c->backoff_max_ms;
    return d / 2 + (long)(next_rand(c) % (uint64_t)(d / 2 + 1));
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0) {}
}

static void log_attempt(http_client *c, const char *method, const char *url, long status,
                        const char *what, size_t bytes, double ms, int attempt)
{
    if (!c->log) return;
    char u[2048], line[2400];
    http_redact_url(c, url, u, sizeof u);
    if (status)
        snprintf(line, sizeof line, "%s %s %ld %zu B %.0f ms%s", method, u, status, bytes, ms,
                 what ? what : "");
    else
        snprintf(line, sizeof line, "%s %s failed (%s) %.0f ms", method, u, what, ms);
    if (attempt > 0) {
        size_t n = strlen(line);
        snprintf(line + n, sizeof line - n, " [attempt %d]", attempt + 1);
    }
    char red[2400];
    http_redact(c, line, red, sizeof red);
    c->log(c->log_ud, red);
}

/* Transient transport failures worth another try. */
static int transient(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_CONNECT: case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR: case CURLE_RECV_ERROR: case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

int http_request_send(http_client *c, const http_request *r, http_response *resp,
                      prm_error *err)
{
    memset(resp, 0, sizeof *resp);
    const char *method = r->method ? r->method : "GET";
    char *url = build_url(c, r);
    if (!url) return prm_error_set(err, "out of memory");
    http_redact_url(c, url, resp->url, sizeof resp->url);
    struct curl_slist *hdrs = NULL;
    for (struct curl_slist *h = c->headers; h; h = h->next)
        hdrs = curl_slist_append(hdrs, h->data);
    for (const char *const *h = r->headers; h && *h; h++) {
        hdrs = curl_slist_append(hdrs, *h);
        add_header_secret(c, *h);
    }
    /* libcurl would send "Expect: 100-continue" for large bodies. */
    if (r->body) hdrs = curl_slist_append(hdrs, "Expect:");
    int rc = -1, errors = 0;
    char last[512] = "";
    for (int attempt = 0;; attempt++) {
        int thr = 0;
        buf body = { NULL, 0, 0, c->max_body, 0 };
        free_headers(resp);
        free(resp->body);
        resp->body = NULL;
        c->errbuf[0] = 0;
        setup_handle(c, r, url, hdrs, &body, resp);
        CURLcode cr = curl_easy_perform(c->h);
        double secs = 0;
        curl_easy_getinfo(c->h, CURLINFO_TOTAL_TIME, &secs);
        resp->ms = secs * 1000;
        resp->attempts = attempt + 1;
        c->st.requests++;
        long wait = -1;
        if (cr != CURLE_OK) {
            if (body.overflow) {
                free(body.p);
                prm_error_set(err, "%s %s: response larger than %zu bytes", method, resp->url,
                              c->max_body);
                break;
            }
            snprintf(last, sizeof last, "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(cr));
            log_attempt(c, method, url, 0, last, 0, resp->ms, attempt);
            free(body.p);
            resp->status = 0;
            if (!transient(cr)) {
                char red[600];
                http_redact(c, last, red, sizeof red);
                prm_error_set(err, "%s %s: %s", method, resp->url, red);
                break;
            }
        } else {
            curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &resp->status);
            if (!body.p) body.p = calloc(1, 1);
            resp->body = body.p;
            resp->body_len = body.n;
            c->st.bytes += (long)body.n;
            thr = is_throttle(c, resp->status, resp->body);
            log_attempt(c, method, url, resp->status, thr ? " throttled" : NULL, body.n,
                        resp->ms, attempt);
            if (!thr && resp->status < 500) {
                rc = 0;
                break;
            }
            if (thr) {
                c->st.throttled++;
                wait = http_retry_after_ms(http_response_header(resp, "retry-after"),
                                           (long)time(NULL));
                if (wait > c->retry_after_max_ms) {
                    prm_error_set(err, "%s %s: throttled (HTTP %ld) with Retry-After %ld s, "
                                  "more than the %ld s allowed", method, resp->url, resp->status,
                                  wait / 1000, c->retry_after_max_ms / 1000);
                    break;
                }
            } else if (resp->status == 503) {
                wait = http_retry_after_ms(http_response_header(resp, "retry-after"),
                                           (long)time(NULL));
                if (wait > c->retry_after_max_ms) wait = -1;
            }
            snprintf(last, sizeof last, "HTTP %ld%s", resp->status, thr ? " (throttled)" : "");
        }
        /* Throttling is the API asking for patience, not failing: it is
         * bounded by the budget (and Retry-After's cap), not the per-request
         * retries, so a storm can be ridden out. */
        if (!thr && errors++ >= c->retries) {
            prm_error_set(err, "%s %s: giving up after %d attempt%s: %s", method, resp->url,
                          attempt + 1, attempt ? "s" : "", last);
            break;
        }
        if (c->budget_left <= 0) {
            prm_error_set(err, "%s %s: retry budget exhausted (%ld retries spent): %s", method,
                          resp->url, c->st.retries, last);
            break;
        }
        c->budget_left--;
        c->st.retries++;
        sleep_ms(wait >= 0 ? wait : backoff(c, attempt));
    }
    if (rc < 0 && err) {
        char red[sizeof err->msg];
        http_redact(c, err->msg, red, sizeof red);
        memcpy(err->msg, red, sizeof red);
    }
    curl_slist_free_all(hdrs);
    free(url);
    return rc;
}
