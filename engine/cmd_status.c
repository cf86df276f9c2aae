/* cmd_status.c - `prmcast status`: what is in the store. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "json.h"
#include "store.h"

int cmd_status(int argc, char **argv, const cli *c);

/* One section: a query's rows as a table, or as a JSON array of objects. */
static int section(store *s, const cli *c, json *j, const char *title, const char *sql, prm_error *err)
{
    store_stmt *st;
    if (store_prepare(s, sql, &st, err) < 0) return -1;
    int n = store_ncols(st), rows = 0, rc;
    if (c->json) {
        json_key(j, title);
        json_arr(j);
    } else {
        printf("\n%s\n ", title);
        for (int i = 0; i < n; i++) printf(" %-26s", store_colname(st, i));
        printf("\n");
    }
    while ((rc = store_step(st, err)) == 1) {
        if (c->json) json_obj(j);
        else printf(" ");
        for (int i = 0; i < n; i++) {
            store_value v = store_column(st, i);
            if (c->json) {
                json_key(j, store_colname(st, i));
                if (v.kind == SV_NULL) json_null(j);
                else if (v.kind == SV_INT) json_int(j, v.i);
                else if (v.kind == SV_REAL) json_num(j, v.r);
                else json_str(j, v.s);
            } else {
                putchar(' ');
                if (v.kind == SV_NULL) printf("%-26s", "-");
                else if (v.kind == SV_INT) printf("%-26lld", (long long)v.i);
                else if (v.kind == SV_REAL) printf("%-26.4g", v.r);
                else cli_text(stdout, v.s, 26);
            }
        }
        if (c->json) json_end(j);
        else putchar('\n');
        rows++;
    }
    if (c->json) json_end(j);
    else if (!rows) printf("  (none)\n");
    store_finalize(st);
    return rc < 0 ? -1 : 0;
}

int cmd_status(int argc, char **argv, const cli *c)
{
    if (argc > 1) return cli_usage(c, "status", "unexpected argument '%s'", argv[1]);
    prm_error err;
    store *s = cli_store(c, 0, &err);
    if (!s) return cli_fail(c, "status", "%s", err.msg);
    json j;
    json_init(&j);
    if (c->json) {
        json_obj(&j);
        json_key(&j, "store");
        json_str(&j, store_path(s));
        json_key(&j, "schema_version");
        json_int(&j, store_version(s));
    } else {
        fputs("store ", stdout);
        cli_text(stdout, store_path(s), 0);
        printf(" (schema version %d)\n", store_version(s));
    }
    size_t nrep;
    const store_report *rep = store_status_reports(&nrep);
    int rc = 0;
    for (size_t i = 0; i < nrep && rc == 0; i++)
        rc = section(s, c, &j, rep[i].title, rep[i].sql, &err);
    store_close(s);
    if (rc < 0) {
        json_free(&j);
        return cli_fail(c, "status", "%s", err.msg);
    }
    if (c->json) {
        json_end(&j);
        printf("%s\n", json_cstr(&j));
    }
    json_free(&j);
    return EXIT_OK;
}
