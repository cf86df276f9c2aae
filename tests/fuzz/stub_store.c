/* stub_store.c - the store functions prm.csv's r:load and r:load_json call (and prm.http's walked page), for
 * the CSV fuzz target, which exercises the reader only (neither is called). */
#include <lua.h>
#include <stdlib.h>

#include "lprm.h"
#include "store.h"

struct store *lstore_check(lua_State *L, int idx) { (void)L; (void)idx; abort(); }
struct json_walker *lhttp_walked(lua_State *L, int idx) { (void)L; (void)idx; abort(); }
const store_object *store_object_find(const char *name) { (void)name; abort(); }
int store_field_index(const store_object *o, const char *name) { (void)o; (void)name; abort(); }
int store_upsert_iso(store *s, const store_object *o, const store_value *v, uint32_t iso_made,
                     int *written, prm_error *err)
{
    (void)s; (void)o; (void)v; (void)iso_made; (void)written; (void)err;
    abort();
}
int store_upsert(store *s, const store_object *o, const store_value *v, int *written,
                 prm_error *err)
{
    (void)s; (void)o; (void)v; (void)written; (void)err;
    abort();
}
int store_history_batch(store *s, int on, prm_error *err) { (void)s; (void)on; (void)err; abort(); }
int store_history_flush(store *s, int64_t *written, prm_error *err) { (void)s; (void)written; (void)err; abort(); }
