/* jsonscan.h - finds repeated keys in JSON objects, which a decoder such as
 * lua-cjson silently resolves to the last value. A light scan of the text
 * (strings skipped, containers tracked), not a parser: the decoder still
 * decides whether the text is JSON.
 *
 *   json_dup_keys(text, n, "data", on_dup, ud);
 *
 * Records are the elements of the top-level array, or of the array under
 * the top-level object's key `wrapper` ({"data": [...]}); with wrapper
 * NULL and a top-level object (one JSON Lines record) the whole text is
 * record 1. For each record holding an object (at any depth) with a
 * repeated key, on_dup(ud, index, key, keylen) is called once, with the
 * 1-based record index and the first repeated key in text order of the
 * closing object. Keys compare as written (an escaped and a plain
 * spelling of one key are not seen as the same).
 */
#ifndef PRM_JSONSCAN_H
#define PRM_JSONSCAN_H

#include <stddef.h>

#include "error.h"

typedef void (*json_dup_fn)(void *ud, long index, const char *key, size_t keylen);

/* Returns the number of records reported, or -1 when out of memory. */
long json_dup_keys(const char *s, size_t n, const char *wrapper, json_dup_fn on_dup, void *ud);

/* ---- the page walker ---------------------------------------------------
 *
 * A strict JSON parser (RFC 8259; nesting to JSON_WALK_DEPTH) for API pages
 * whose records go to the store without a Lua table (prm.sync's declared
 * objects). The records are the elements of the array at the dotted path
 * `items` ("data.items"; "" for the document itself). Each record that is
 * an object is flattened to its leaves: every scalar at any depth of
 * nested objects, with its key path joined by '.' ("field_data.deal_type"),
 * and every array as its JSON text. The leaves outside the records (the
 * envelope: "data.has_more", "count") are kept and read with json_walk_get
 * after the walk.
 *
 *   json_walker *w = json_walker_new();
 *   if (json_walk(w, body, len, "data.items", on_record, ud, &err) < 0) ...
 *   const json_leaf *more = json_walk_get(w, "data.has_more");
 *
 * A nested object inside a record is a leaf too (kind JV_OBJECT, its JSON
 * text), besides its own leaves, so a field declared where an object
 * stands is seen. Inside a record a repeated key keeps both leaves;
 * readers take the last (as cjson does). In the envelope (outside the
 * records) a repeated key fails the walk: cjson would keep the last value
 * where the walk reads the first records array or paging fact, so such a
 * page is refused as ambiguous, never read two ways.
 * A key holding '.' or '\' has a backslash put before each in its path
 * (a literal key "data.has_more" is data\.has_more), so it can never be
 * taken for a nested key: not for the envelope's paging facts, not for a
 * declared field.
 */
enum { JSON_WALK_DEPTH = 200 };

typedef enum { JV_NULL, JV_FALSE, JV_TRUE, JV_NUMBER, JV_STRING, JV_ARRAY, JV_OBJECT,
               JV_MISSING } json_kind;

typedef struct json_leaf {
    const char *path;          /* keys joined by '.', NUL-terminated */
    size_t plen;
    json_kind kind;
    const char *v;             /* string: unescaped; number, array: as written; NUL-terminated */
    size_t n;
    int bad;                   /* string: invalid UTF-8 or an escaped NUL (the store refuses it) */
} json_leaf;

typedef struct json_walker json_walker;

/* index: 1-based position in the items array; kind: the element's kind
 * (leaves only for JV_OBJECT), valid during the call. Returns 0 to go on,
 * < 0 to stop the walk (json_walk returns that value, err untouched). */
typedef int (*json_record_fn)(void *ud, long index, json_kind kind, const json_leaf *leaves,
                              size_t n);

json_walker *json_walker_new(void);
void json_walker_free(json_walker *w);
/* Returns 0, -1 with err naming the byte offset and what is wrong with the
 * text (or out of memory), or the callback's negative value. The records
 * are reported as they are read, so a text that turns out malformed after
 * some records has already reported them: callers keep what a walk reported
 * only when it returned 0. */
int json_walk(json_walker *w, const char *s, size_t n, const char *items, json_record_fn fn,
              void *ud, prm_error *err);
/* With fn NULL json_walk only checks the records (faster); after such a
 * walk, json_walk_last hands the last record to fn as json_walk would
 * have (a paginator's cursor is the last record's key). Returns 0 when
 * there is none, or what fn returns. */
int json_walk_last(json_walker *w, json_record_fn fn, void *ud, prm_error *err);
/* One walk for a page read twice (prm.http's paginator facts, then prm.csv's
 * records): checks the whole text like json_walk and keeps every record's
 * leaves, reported afterwards by json_walk_records (and json_walk_last)
 * until the next walk. Nothing is reported from a text that turns out
 * malformed. Returns 0 or -1 with err. */
int json_walk_keep(json_walker *w, const char *s, size_t n, const char *items, prm_error *err);
/* The records kept by the last json_walk_keep, in order, to fn as json_walk
 * would have reported them. Returns 0 or fn's negative value. */
int json_walk_records(json_walker *w, json_record_fn fn, void *ud);
/* After json_walk: the kind of the value at `items` (JV_MISSING when the
 * document has none) and how many elements it had. */
json_kind json_walk_items(const json_walker *w, long *nitems);
/* After json_walk: the envelope leaf at a dotted path (the last one when
 * repeated), or NULL. */
const json_leaf *json_walk_get(const json_walker *w, const char *path);

#endif
