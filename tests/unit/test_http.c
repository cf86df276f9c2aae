/* test_http.c - the HTTP client against a tiny scripted server in a thread
 * on 127.0.0.1: retries, backoff, Retry-After, throttle rules, the retry
 * budget, timeouts, connection reuse, redaction; and the paginators. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "paginate.h"
#include "tap.h"

/* ---- the scripted server ---------------------------------------------- */

typedef struct reply {
    const char *raw;          /* the whole response */
    int stall_ms;             /* wait before answering */
} reply;

static struct {
    int fd, port;
    const reply *script;
    int next, n;
    int connections;
    char last_request[4096];
    int stop;
    pthread_mutex_t mu;
} srv = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void msleep(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Reads one request (headers and Content-Length body); 0 at EOF. */
static int read_request(int c, char *out, size_t cap)
{
    size_t n = 0;
    char *end = NULL;
    while (!(end = strstr(out, "\r\n\r\n"))) {
        if (n + 1 >= cap) return 0;
        ssize_t r = recv(c, out + n, cap - 1 - n, 0);
        if (r <= 0) return 0;
        n += (size_t)r;
        out[n] = 0;
    }
    const char *cl = strcasestr(out, "content-length:");
    size_t want = (size_t)(end + 4 - out) + (cl && cl < end ? (size_t)atol(cl + 15) : 0);
    while (n < want && n + 1 < cap) {
        ssize_t r = recv(c, out + n, cap - 1 - n, 0);
        if (r <= 0) return 0;
        n += (size_t)r;
        out[n] = 0;
    }
    return 1;
}

/* One thread per connection, so a stalled answer does not hold up the
 * client's retry on a new connection. */
static void *conn(void *arg)
{
    int c = (int)(intptr_t)arg;
    char req[4096];
    for (;;) {
        memset(req, 0, sizeof req);
        if (!read_request(c, req, sizeof req)) break;
        pthread_mutex_lock(&srv.mu);
        snprintf(srv.last_request, sizeof srv.last_request, "%s", req);
        const reply *r = srv.next < srv.n ? &srv.script[srv.next++] : NULL;
        pthread_mutex_unlock(&srv.mu);
        if (!r) break;
        if (r->stall_ms) msleep(r->stall_ms);
        if (send(c, r->raw, strlen(r->raw), MSG_NOSIGNAL) < 0) break;
    }
    close(c);
    return NULL;
}

static void *serve(void *arg)
{
    (void)arg;
    while (!srv.stop) {
        int c = accept(srv.fd, NULL, NULL);
        if (c < 0) continue;
        if (srv.stop) { close(c); break; }
        pthread_mutex_lock(&srv.mu);
        srv.connections++;
        pthread_mutex_unlock(&srv.mu);
        pthread_t t;
        pthread_create(&t, NULL, conn, (void *)(intptr_t)c);
        pthread_detach(t);
    }
    return NULL;
}

static void script(const reply *r, int n)
{
    pthread_mutex_lock(&srv.mu);
    srv.script = r;
    srv.n = n;
    srv.next = 0;
    srv.connections = 0;
    pthread_mutex_unlock(&srv.mu);
}

static pthread_t start_server(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    srv.fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(srv.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(srv.fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(srv.fd, 16) < 0) {
        perror("bind");
        exit(1);
    }
    getsockname(srv.fd, (struct sockaddr *)&a, &len);
    srv.port = ntohs(a.sin_port);
    pthread_t t;
    pthread_create(&t, NULL, serve, NULL);
    return t;
}

#define OK200(body) "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " \
    #body "\r\n\r\n"

static const char *const ok_hello =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Thing: 1\r\nContent-Length: 11\r\n\r\n"
    "{\"a\":\"hi\"}\n";
static const char *const s503 =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown";
static const char *const s429 =
    "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 4\r\n\r\nslow";
static const char *const s403_limit =
    "HTTP/1.1 403 Forbidden\r\nContent-Length: 48\r\n\r\n"
    "[{\"errorCode\":\"REQUEST_LIMIT_EXCEEDED\",\"m\":\"x\"}]";
static const char *const s403 =
    "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno";

/* ---- helpers ---------------------------------------------------------- */

static char logbuf[16384];
static int loglines;

static void collect(void *ud, const char *line)
{
    (void)ud;
    size_t n = strlen(logbuf);
    snprintf(logbuf + n, sizeof logbuf - n, "%s\n", line);
    loglines++;
}

static http_client *client(http_opts *o)
{
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", srv.port);
    o->base_url = base;
    o->log = collect;
    if (!o->backoff_ms) o->backoff_ms = 2;
    http_client *c = NULL;
    prm_error err;
    if (http_client_new(o, &c, &err) < 0) {
        printf("# %s\n", err.msg);
        exit(1);
    }
    logbuf[0] = 0;
    loglines = 0;
    return c;
}

static double now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec * 1000.0 + tv.tv_usec / 1000.0;
}

int main(void)
{
    pthread_t th = start_server();
    http_response r;
    prm_error err;

    {   /* a plain GET; query escaped and in order; connection reused */
        reply s[] = { { ok_hello, 0 }, { ok_hello, 0 }, { ok_hello, 0 } };
        script(s, 3);
        http_opts o = { .retries = -1, .budget = -1 };
        http_client *c = client(&o);
        const char *q[] = { "q", "a b&c", "limit", "5", NULL };
        http_request rq = { "GET", "/api/x", q, NULL, NULL, 0 };
        int rc = http_request_send(c, &rq, &r, &err);
        T_EQ_INT(rc, 0, "GET succeeds");
        T_EQ_INT(r.status, 200, "status 200");
        T_EQ_STR(r.body, "{\"a\":\"hi\"}\n", "body");
        T_EQ_STR(http_response_header(&r, "X-THING"), "1", "headers case-insensitive");
        T_OK(strstr(srv.last_request, "GET /api/x?q=a%20b%26c&limit=5 HTTP/1.1") != NULL,
             "query values escaped, in the given order");
        T_OK(strstr(srv.last_request, "Accept-Encoding:") != NULL, "gzip accepted");
        http_response_free(&r);
        http_request_send(c, &rq, &r, &err);
        http_response_free(&r);
        http_request_send(c, &rq, &r, &err);
        http_response_free(&r);
        T_EQ_INT(srv.connections, 1, "three requests over one connection");
        T_EQ_INT(loglines, 3, "every request logged");
        T_OK(strstr(logbuf, "GET http://127.0.0.1:") && strstr(logbuf, " 200 11 B "),
             "log line has method, URL, status, bytes");
        http_client_free(c);
    }

    {   /* 5xx twice, then 200: retried with backoff, the budget spent */
        reply s[] = { { s503, 0 }, { s503, 0 }, { ok_hello, 0 } };
        script(s, 3);
        http_opts o = { .retries = 4, .budget = 10 };
        http_client *c = client(&o);
        http_request rq = { NULL, "/y", NULL, NULL, NULL, 0 };
        int rc = http_request_send(c, &rq, &r, &err);
        http_stats st;
        http_client_stats(c, &st);
        T_EQ_INT(rc, 0, "5xx retried until 200");
        T_EQ_INT(r.attempts, 3, "three attempts");
        T_EQ_INT(st.retries, 2, "two retries counted");
        T_EQ_INT(st.budget_left, 8, "budget spent by the retries");
        T_OK(strstr(logbuf, " 503 ") && strstr(logbuf, "[attempt 3]"), "retries logged");
        http_response_free(&r);
        http_client_free(c);
    }

    {   /* backoff doubles: 100, 200, 400 ms steps, each at least half its step */
        reply s[] = { { s503, 0 }, { s503, 0 }, { s503, 0 }, { ok_hello, 0 } };
        script(s, 4);
        http_opts o = { .retries = 4, .budget = 10, .backoff_ms = 100, .backoff_max_ms = 10000 };
        http_client *c = client(&o);
        http_request rq = { NULL, "/backoff", NULL, NULL, NULL, 0 };
        double t0 = now_ms();
        int rc = http_request_send(c, &rq, &r, &err);
        double dt = now_ms() - t0;
        T_OK(rc == 0 && r.attempts == 4, "three 503s then 200");
        T_OK(dt >= 350, "exponential backoff: waited >= 50 + 100 + 200 ms");
        http_response_free(&r);
        http_client_free(c);
    }

    {   /* 429 with Retry-After: 1 waits about a second, not the 2 ms backoff */
        reply s[] = { { s429, 0 }, { ok_hello, 0 } };
        script(s, 2);
        http_opts o = { .retries = 4, .budget = 10 };
        http_client *c = client(&o);
        http_request rq = { NULL, "/z", NULL, NULL, NULL, 0 };
        double t0 = now_ms();
        int rc = http_request_send(c, &rq, &r, &err);
        double dt = now_ms() - t0;
        http_stats st;
        http_client_stats(c, &st);
        T_EQ_INT(rc, 0, "throttled request succeeds after Retry-After");
        T_OK(dt >= 950, "Retry-After: 1 honoured (waited >= 0.95 s)");
        T_EQ_INT(st.throttled, 1, "throttle counted");
        T_OK(strstr(logbuf, " throttled") != NULL, "throttle logged");
        http_response_free(&r);
        http_client_free(c);
    }

    {   /* a body-qualified throttle rule: 403 REQUEST_LIMIT_EXCEEDED retries, plain 403 not */
        reply s[] = { { s403_limit, 0 }, { ok_hello, 0 }, { s403, 0 } };
        script(s, 3);
        http_throttle thr[] = { { 429, NULL }, { 403, "REQUEST_LIMIT_EXCEEDED" } };
        http_opts o = { .retries = 4, .budget = 10, .throttle = thr, .nthrottle = 2 };
        http_client *c = client(&o);
        http_request rq = { NULL, "/sf", NULL, NULL, NULL, 0 };
        int rc = http_request_send(c, &rq, &r, &err);
        T_OK(rc == 0 && r.status == 200 && r.attempts == 2, "403 REQUEST_LIMIT_EXCEEDED retried");
        http_response_free(&r);
        rc = http_request_send(c, &rq, &r, &err);
        T_OK(rc == 0 && r.status == 403 && r.attempts == 1, "a plain 403 is a final answer");
        http_response_free(&r);
        http_client_free(c);
    }

    {   /* throttling past the per-request retries is bounded by the budget only */
        static const char *const t0 =
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n";
        reply s[] = { { t0, 0 }, { t0, 0 }, { t0, 0 }, { t0, 0 }, { ok_hello, 0 } };
        script(s, 5);
        http_opts o = { .retries = 1, .budget = 10 };
        http_client *c = client(&o);
        http_request rq = { NULL, "/storm", NULL, NULL, NULL, 0 };
        int rc = http_request_send(c, &rq, &r, &err);
        T_OK(rc == 0 && r.attempts == 5, "a storm of 4 throttles ridden out with retries = 1");
        http_response_free(&r);
        http_client_free(c);
    }

    {   /* the budget runs out before the per-request retries do */
        reply s[] = { { s503, 0 }, { s503, 0 }, { s503, 0 }, { s503, 0 }, { s503, 0 } };
        script(s, 5);
        http_opts o = { .retries = 4, .budget = 2 };
        http_client *c = client(&o);
        http_request rq = { NULL, "/b", NULL, NULL, NULL, 0 };
        int rc = http_request_send(c, &rq, &r, &err);
        T_EQ_INT(rc, -1, "budget exhausted fails the request");
        T_OK(strstr(err.msg, "retry budget exhausted") != NULL, err.msg);
        T_EQ_INT(r.status, 503, "last status reported");
        T_EQ_INT(r.attempts, 3, "one try plus the two retries the budget allowed");
        http_response_free(&r);
        http_client_free(c);
    }

    {   /* per-request retries run out */
        reply s[] = { { s503, 0 }, { s503, 0 } };
        script(s, 2);
        http_opts o = { .retries = 1, .budget = 10 };
        http_client *c = client(&o);
        http_request rq = { NULL, "/g", NULL, NULL, NULL, 0 };
        int rc = http_request_send(c, &rq, &r, &err);
        T_OK(rc == -1 && strstr(err.msg, "giving up after 2 attempts: HTTP 503"), err.msg);
        http_response_free(&r);
        http_client_free(c);
    }

    {   /* a timeout is retried on a new connection */
        reply s[] = { { ok_hello, 1500 }, { ok_hello, 0 } };
        script(s, 2);
        http_opts o = { .retries = 2, .budget = 10, .timeout_ms = 300 };
        http_client *c = client(&o);
        http_request rq = { NULL, "/slow", NULL, NULL, NULL, 0 };
        int rc = http_request_send(c, &rq, &r, &err);
        T_OK(rc == 0 && r.status == 200 && r.attempts == 2, "timed-out request retried");
        T_OK(strstr(logbuf, "failed (") != NULL, "the timeout is logged");
        http_response_free(&r);
        http_client_free(c);
    }

    {   /* PATCH with a body; credentials and secrets never in logs or errors */
        reply s[] = { { ok_hello, 0 } };
        script(s, 1);
        setenv("PRMTEST_API_TOKEN", "envsecret-123456", 1);
        const char *hdr[] = { "X-API-KEY: hdrsecret-abcdef", "X-Tenant: t1", NULL };
        http_opts o = { .retries = 0, .budget = 0, .headers = hdr, .user = "pub",
                        .password = "basicsecret-xyz" };
        http_client *c = client(&o);
        const char *q[] = { "api_key", "qsecret-777", "x", "1", NULL };
        http_request rq = { "PATCH", "/d/envsecret-123456", q, NULL, "{\"v\":1}", 7 };
        int rc = http_request_send(c, &rq, &r, &err);
        T_OK(rc == 0 && strstr(srv.last_request, "PATCH /d/") &&
             strstr(srv.last_request, "{\"v\":1}"), "PATCH sends its body");
        T_OK(strstr(srv.last_request, "Authorization: Basic ") != NULL, "basic auth sent");
        T_OK(strstr(logbuf, "api_key=***&x=1") != NULL, "secret query parameter masked in the log");
        T_OK(!strstr(logbuf, "qsecret") && !strstr(logbuf, "envsecret") &&
             !strstr(logbuf, "hdrsecret") && !strstr(logbuf, "basicsecret"),
             "no secret in the log line");
        T_OK(strstr(logbuf, "/d/[REDACTED]") != NULL, "environment secret masked in the URL");
        http_response_free(&r);
        char out[256];
        http_redact(c, "key hdrsecret-abcdef pw basicsecret-xyz", out, sizeof out);
        T_EQ_STR(out, "key [REDACTED] pw [REDACTED]", "header and password values masked");
        http_redact_url(c, "https://u:pw@h.example/p?token=abc&page=2&client_secret=s", out,
                        sizeof out);
        T_EQ_STR(out, "https://***@h.example/p?token=***&page=2&client_secret=***",
                 "userinfo and secret parameters masked");
        http_client_free(c);
        /* A connection error names the URL without its secrets. */
        http_opts o2 = { .retries = 0, .budget = 0, .base_url = "http://127.0.0.1:1" };
        http_client *c2;
        http_client_new(&o2, &c2, &err);
        rc = http_request_send(c2, &rq, &r, &err);
        T_OK(rc == -1 && r.status == 0 && strstr(err.msg, "api_key=***") &&
             !strstr(err.msg, "qsecret") && !strstr(err.msg, "envsecret"),
             "connection error redacted");
        http_response_free(&r);
        http_client_free(c2);
        unsetenv("PRMTEST_API_TOKEN");
    }

    /* Retry-After forms */
    T_EQ_INT(http_retry_after_ms("3", 0), 3000, "Retry-After seconds");
    T_EQ_INT(http_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470), 10000,
             "Retry-After HTTP date");
    T_EQ_INT(http_retry_after_ms("soon", 0), -1, "Retry-After garbage");

    {   /* paginators */
        paginator *p;
        const char *path, *q[9];
        pg_spec cs = { .kind = PG_CURSOR, .limit = 250 };
        pg_new(&cs, NULL, &p, &err);
        pg_next(p, &path, q);
        T_OK(!path && strcmp(q[0], "limit") == 0 && strcmp(q[1], "250") == 0 && !q[2],
             "cursor: first page has only the limit");
        pg_facts f = { 250, 1, "key_250", -1, -1, NULL };
        T_EQ_INT(pg_advance(p, &f, &err), 0, "cursor: page advanced");
        pg_next(p, &path, q);
        T_OK(q[2] && strcmp(q[2], "starting_after") == 0 && strcmp(q[3], "key_250") == 0,
             "cursor: starting_after the last key");
        char *state = strdup(pg_state(p));
        pg_facts bad = { 10, -1, "k", -1, -1, NULL };
        T_EQ_INT(pg_advance(p, &bad, &err), -1, "cursor: a page without has_more is malformed");
        T_OK(strstr(err.msg, "has_more") != NULL, err.msg);
        pg_free(p);
        pg_new(&cs, state, &p, &err);
        pg_next(p, &path, q);
        T_OK(pg_pages(p) == 1 && q[3] && strcmp(q[3], "key_250") == 0, "cursor: resumes from state");
        pg_facts last = { 3, 0, "k3", -1, -1, NULL };
        pg_advance(p, &last, &err);
        T_OK(!pg_has_next(p), "cursor: has_more false ends");
        pg_free(p);
        free(state);

        pg_spec os = { .kind = PG_OFFSET, .limit = 100 };
        pg_new(&os, NULL, &p, &err);
        pg_facts o1 = { 100, -1, NULL, 250, -1, NULL };
        pg_advance(p, &o1, &err);
        pg_advance(p, &o1, &err);
        pg_next(p, &path, q);
        T_OK(strcmp(q[0], "take") == 0 && strcmp(q[2], "skip") == 0 && strcmp(q[3], "200") == 0,
             "offset: skip grows by the items seen");
        pg_facts o2 = { 50, -1, NULL, 250, -1, NULL };
        pg_advance(p, &o2, &err);
        T_OK(!pg_has_next(p), "offset: ends at count");
        pg_free(p);

        pg_spec ns = { .kind = PG_NEXT_URL };
        pg_new(&ns, NULL, &p, &err);
        pg_facts n1 = { 2000, -1, NULL, -1, 0, "/services/data/v59.0/query/01g-2000" };
        pg_advance(p, &n1, &err);
        pg_next(p, &path, q);
        T_OK(path && strcmp(path, "/services/data/v59.0/query/01g-2000") == 0 && !q[0],
             "next-url: follows nextRecordsUrl");
        pg_facts n2 = { 10, -1, NULL, -1, 0, NULL };
        T_EQ_INT(pg_advance(p, &n2, &err), -1, "next-url: done false without a URL is malformed");
        pg_free(p);

        pg_spec ps = { .kind = PG_PAGE, .limit = 50 };
        pg_new(&ps, NULL, &p, &err);
        pg_facts p1 = { 50, -1, NULL, -1, -1, NULL };
        pg_advance(p, &p1, &err);
        pg_next(p, &path, q);
        T_OK(strcmp(q[0], "per_page") == 0 && strcmp(q[3], "2") == 0, "page: page 2 next");
        pg_facts p2 = { 7, -1, NULL, -1, -1, NULL };
        pg_advance(p, &p2, &err);
        T_OK(!pg_has_next(p), "page: a short page ends");
        pg_free(p);
    }

    srv.stop = 1;
    shutdown(srv.fd, SHUT_RDWR);
    close(srv.fd);
    pthread_join(th, NULL);
    return t_done();
}
