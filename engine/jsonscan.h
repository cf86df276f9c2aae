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

typedef void (*json_dup_fn)(void *ud, long index, const char *key, size_t keylen);

/* Returns the number of records reported, or -1 when out of memory. */
long json_dup_keys(const char *s, size_t n, const char *wrapper, json_dup_fn on_dup, void *ud);

#endif
