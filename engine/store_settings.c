/* store_settings.c - the settings table with typed readers. */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_setting(store *s, const char *key, char *out, size_t cap, prm_error *err)
{
    sqlite3_stmt *st;
    out[0] = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM settings WHERE key = ?1", -1, &st, NULL) != SQLITE_OK)
        return store_db_error(s, err, "reading settings");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), found = 0;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
        found = 1;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_db_error(s, err, "reading settings");
    return found;
}

int store_setting_set(store *s, const char *key, const char *value, prm_error *err)
{
    store_value v[] = { sv_text(key), sv_text(value) };
    return store_run(s, "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key)"
                        " DO UPDATE SET value = excluded.value", 2, v, NULL, err);
}

int store_fiscal_start(store *s, int *month, prm_error *err)
{
    char buf[32];
    *month = 1;
    int rc = store_setting(s, "fiscal_start_month", buf, sizeof buf, err);
    if (rc <= 0) return rc;
    char *end;
    long m = strtol(buf, &end, 10);
    if (*end || m < 1 || m > 12)
        return prm_error_set(err, "settings.fiscal_start_month is \"%s\": expected a month 1..12", buf);
    *month = (int)m;
    return 0;
}

int store_base_currency(store *s, char out[4], prm_error *err)
{
    char buf[32];
    snprintf(out, 4, "USD");
    int rc = store_setting(s, "base_currency", buf, sizeof buf, err);
    if (rc <= 0) return rc;
    if (strlen(buf) != 3 || buf[0] < 'A' || buf[0] > 'Z' || buf[1] < 'A' || buf[1] > 'Z' ||
        buf[2] < 'A' || buf[2] > 'Z')
        return prm_error_set(err, "settings.base_currency is \"%s\": expected an ISO 4217 code", buf);
    memcpy(out, buf, 4);
    return 0;
}

const char *const store_field_types[] = { "category", "number", "yesno", "date", NULL };

int store_field_type_index(const char *type)
{
    for (int i = 0; type && store_field_types[i]; i++)
        if (strcmp(type, store_field_types[i]) == 0) return i;
    return -1;
}

int store_field_types_each(store *s, store_field_type_fn fn, void *ud, prm_error *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT substr(key, 12), value FROM settings"
                           " WHERE key LIKE 'field_type.x.%' ORDER BY key", -1, &st, NULL) != SQLITE_OK)
        return store_db_error(s, err, "reading tenant field types");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        int k = store_field_type_index((const char *)sqlite3_column_text(st, 1));
        if (!name || k < 0) continue;
        if (fn(ud, name, k) < 0) {
            sqlite3_finalize(st);
            return prm_error_set(err, "out of memory reading tenant field types");
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return store_db_error(s, err, "reading tenant field types");
    return 0;
}
