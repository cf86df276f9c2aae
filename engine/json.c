/* json.c - see json.h. */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void json_init(json *j)
{
    memset(j, 0, sizeof *j);
    j->first[0] = 1;
}

void json_free(json *j)
{
    free(j->s);
    json_init(j);
}

void json_reset(json *j)
{
    char *s = j->s;
    size_t cap = j->cap;
    json_init(j);
    j->s = s;
    j->cap = cap;
    if (s) s[0] = 0;
}

const char *json_cstr(const json *j) { return j->s ? j->s : ""; }
int json_failed(const json *j) { return j->failed; }

static int grow(json *j, size_t more)
{
    if (j->failed) return -1;
    if (j->n + more + 1 <= j->cap) return 0;
    size_t cap = j->cap ? j->cap : 256;
    while (cap < j->n + more + 1) cap *= 2;
    char *p = realloc(j->s, cap);
    if (!p) {
        j->failed = 1;
        return -1;
    }
    j->s = p;
    j->cap = cap;
    return 0;
}

static void put(json *j, const char *s, size_t n)
{
    if (grow(j, n) < 0) return;
    memcpy(j->s + j->n, s, n);
    j->n += n;
    j->s[j->n] = 0;
}

static void putc1(json *j, char c) { put(j, &c, 1); }

/* Before a value: the comma between members, unless a key just came. */
static void sep(json *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    if (!j->first[j->depth]) putc1(j, ',');
    j->first[j->depth] = 0;
}

static void open_(json *j, char c)
{
    sep(j);
    putc1(j, c);
    if (j->depth + 1 >= JSON_MAX_DEPTH) {
        j->failed = 1;
        return;
    }
    j->depth++;
    j->first[j->depth] = 1;
    j->closer[j->depth] = c == '{' ? '}' : ']';
}

void json_obj(json *j) { open_(j, '{'); }
void json_arr(json *j) { open_(j, '['); }

void json_end(json *j)
{
    if (j->depth == 0) return;
    putc1(j, j->closer[j->depth]);
    j->depth--;
    j->after_key = 0;
}

size_t json_escape(const char *s, char *out, size_t cap)
{
    return json_escape_n(s, strlen(s), out, cap);
}

/* Bytes copied as they are: printable ASCII other than '"' and '\\'. */
static int plain(unsigned char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; }

/* The length of the run of plain bytes at p. */
static size_t plain_run(const unsigned char *p, size_t len)
{
    size_t i = 0;
    while (i < len && plain(p[i])) i++;
    return i;
}

size_t json_escape_n(const char *s, size_t len, char *out, size_t cap)
{
    size_t need = 0;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
#define EMIT(str, k) do { for (size_t q_ = 0; q_ < (size_t)(k); q_++) { \
        if (need + 1 < cap) { out[need] = (str)[q_]; } need++; } } while (0)
    while (i < len) {
        unsigned char c = p[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            EMIT(esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            int k = c == '\n' ? snprintf(esc, sizeof esc, "\\n")
                  : c == '\t' ? snprintf(esc, sizeof esc, "\\t")
                  : c == '\r' ? snprintf(esc, sizeof esc, "\\r")
                  : snprintf(esc, sizeof esc, "\\u%04x", c);
            EMIT(esc, k);
            i++;
        } else if (c < 0x80) {
            /* A run of plain bytes in one copy: most text is nothing else. */
            size_t k = plain_run(p + i, len - i);
            if (need + k < cap) {
                memcpy(out + need, p + i, k);
                need += k;
            } else {
                EMIT((const char *)&p[i], k);
            }
            i += k;
        } else {
            /* One whole valid sequence, or U+FFFD for each bad byte. */
            size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            if (n > 1 && i + n <= len && utf8_valid((const char *)p + i, n, NULL)) {
                EMIT((const char *)&p[i], n);
                i += n;
            } else {
                EMIT("\xEF\xBF\xBD", 3);
                i++;
            }
        }
    }
#undef EMIT
    if (cap) out[need < cap ? need : cap - 1] = 0;
    return need;
}

void json_strn(json *j, const char *s, size_t n)
{
    sep(j);
    if (!s) {
        put(j, "null", 4);
        return;
    }
    /* Plain text (keys, ids, stage names) needs no measuring pass. */
    size_t need = plain_run((const unsigned char *)s, n) == n ? n : json_escape_n(s, n, NULL, 0);
    if (grow(j, need + 2) < 0) return;
    j->s[j->n++] = '"';
    json_escape_n(s, n, j->s + j->n, need + 1);
    j->n += need;
    j->s[j->n++] = '"';
    j->s[j->n] = 0;
}

void json_str(json *j, const char *s) { json_strn(j, s, s ? strlen(s) : 0); }

void json_key(json *j, const char *k)
{
    json_str(j, k);
    putc1(j, ':');
    j->after_key = 1;
}

void json_num_fmt(json *j, double x, const char *fmt)
{
    sep(j);
    if (!isfinite(x)) {
        put(j, "null", 4);
        return;
    }
    char buf[40];
    int k = snprintf(buf, sizeof buf, fmt, x);
    if (k > 0) put(j, buf, (size_t)k);
}

void json_num(json *j, double x) { json_num_fmt(j, x, "%.15g"); }

void json_int(json *j, int64_t x)
{
    sep(j);
    char buf[24];
    int k = snprintf(buf, sizeof buf, "%lld", (long long)x);
    put(j, buf, (size_t)k);
}

void json_bool(json *j, int b)
{
    sep(j);
    if (b) put(j, "true", 4);
    else put(j, "false", 5);
}

void json_null(json *j)
{
    sep(j);
    put(j, "null", 4);
}

void json_raw(json *j, const char *text)
{
    sep(j);
    if (!text || !*text) put(j, "null", 4);
    else put(j, text, strlen(text));
}

int utf8_valid(const char *s, size_t n, size_t *bad)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* ASCII eight bytes at a time: nearly all of an export */
        uint64_t w;
        while (i + 8 <= n && (memcpy(&w, p + i, 8), (w & 0x8080808080808080ULL) == 0)) i += 8;
        if (i >= n) break;
        unsigned char c = p[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1Fu; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0Fu; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07u; }
        else goto fail;
        if (i + k >= n) goto fail;
        for (size_t q = 1; q <= k; q++) {
            if ((p[i + q] & 0xC0) != 0x80) goto fail;
            cp = (cp << 6) | (p[i + q] & 0x3Fu);
        }
        /* overlong forms, surrogates, past U+10FFFF */
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            goto fail;
        i += k + 1;
    }
    return 1;
fail:
    if (bad) *bad = i;
    return 0;
}
