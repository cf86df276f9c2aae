/* teststore.h - the unit tests' one way to write a record into a store:
 * put("deal", (const char *[]){ "external_id", "D1", ..., NULL }) upserts
 * the object with source "t", fields by name, NULL values left out, an
 * upsert error printed as a TAP comment. Header-only, like tap.h. */
#ifndef PRM_TESTSTORE_H
#define PRM_TESTSTORE_H

#include <stdio.h>
#include <stdlib.h>

#include "store.h"

static store *s;

static void put(const char *object, const char *const *kv)
{
    const store_object *o = store_object_find(object);
    store_value v[32];
    for (int i = 0; i < o->nfields; i++) v[i] = (store_value){ SV_NULL, NULL, 0, 0 };
    v[0] = (store_value){ SV_TEXT, "t", 0, 0 };
    for (; kv[0]; kv += 2) {
        int i = store_field_index(o, kv[0]);
        if (i < 0) { printf("# no field %s\n", kv[0]); continue; }
        if (!kv[1]) continue;
        if (o->fields[i].type == FT_REAL) v[i] = (store_value){ SV_REAL, NULL, atof(kv[1]), 0 };
        else if (o->fields[i].type == FT_INT) v[i] = (store_value){ SV_INT, NULL, 0, atoll(kv[1]) };
        else v[i] = (store_value){ SV_TEXT, kv[1], 0, 0 };
    }
    prm_error err;
    int w;
    if (store_upsert(s, o, v, &w, &err) < 0) printf("# upsert %s: %s\n", object, err.msg);
}

#endif
