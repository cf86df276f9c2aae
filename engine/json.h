/* json.h - the engine's one JSON writer: an escaping, growing buffer.
 *
 *   json j;
 *   json_init(&j);
 *   json_obj(&j);                       // {
 *   json_key(&j, "deal"); json_str(&j, "D1");
 *   json_key(&j, "p");    json_num(&j, 0.42);
 *   json_key(&j, "flags"); json_arr(&j); json_end(&j);   // "flags":[]
 *   json_end(&j);                       // }
 *   if (json_failed(&j)) ...out of memory...
 *   puts(json_cstr(&j));
 *   json_free(&j);
 *
 * Commas are placed by the writer (it tracks nesting), strings are escaped
 * (quotes, backslash, control characters as \uXXXX; invalid UTF-8 bytes
 * become U+FFFD so the output is always valid JSON text), non-finite
 * numbers are null. An empty array stays [] and an empty object {} - the
 * distinction lua-cjson loses. Allocation failure is sticky: later calls
 * do nothing and json_failed() says so; the text stays valid up to it.
 */
#ifndef PRM_JSON_H
#define PRM_JSON_H

#include <stddef.h>
#include <stdint.h>

enum { JSON_MAX_DEPTH = 32 };

typedef struct json {
    char *s;
    size_t n, cap;
    int depth, failed;
    unsigned char first[JSON_MAX_DEPTH];   /* no member written yet at this depth */
    char closer[JSON_MAX_DEPTH];           /* '}' or ']' of each open level */
    int after_key;
} json;

void json_init(json *j);
void json_free(json *j);
void json_reset(json *j);                  /* empty it, keep the memory */
const char *json_cstr(const json *j);      /* "" when nothing was written */
int json_failed(const json *j);

void json_obj(json *j);                    /* { */
void json_arr(json *j);                    /* [ */
void json_end(json *j);                    /* } or ] */
void json_key(json *j, const char *k);
void json_str(json *j, const char *s);     /* NULL writes null */
void json_strn(json *j, const char *s, size_t n);
void json_num(json *j, double x);          /* %.15g; NaN/inf -> null */
void json_num_fmt(json *j, double x, const char *fmt);  /* e.g. "%.6g" */
void json_int(json *j, int64_t x);
void json_bool(json *j, int b);
void json_null(json *j);
/* Inserts already-valid JSON text (another writer's output) as a value. */
void json_raw(json *j, const char *text);

/* Escapes s into a static-free caller buffer: writes at most cap bytes
 * (always NUL-terminated) and returns the length the full escape needs. */
size_t json_escape(const char *s, char *out, size_t cap);
/* The same for n bytes that may hold NULs (escaped as \u0000). */
size_t json_escape_n(const char *s, size_t n, char *out, size_t cap);

/* 1 when s (length n) is valid UTF-8; *bad gets the offset of the first
 * invalid byte. */
int utf8_valid(const char *s, size_t n, size_t *bad);

#endif
