/* cmd_audit.c - `prmcast audit verify`: recompute the audit log's chain. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "json.h"
#include "store.h"

int cmd_audit(int argc, char **argv, const cli *c);

int cmd_audit(int argc, char **argv, const cli *c)
{
    if (argc < 2 || strcmp(argv[1], "verify") != 0) return cli_usage(c, "audit", "expected 'audit verify'");
    if (argc > 2) return cli_usage(c, "audit", "unexpected argument '%s'", argv[2]);
    prm_error err;
    store *s = cli_store(c, 0, &err);
    if (!s) return cli_fail(c, "audit", "%s", err.msg);
    int64_t rows;
    char head[65] = "";
    int rc = store_audit_verify(s, &rows, head, &err);
    store_close(s);
    if (rc < 0) return cli_fail(c, "audit", "%s", err.msg);
    if (c->json) {
        json j;
        json_init(&j);
        json_obj(&j);
        json_key(&j, "ok");
        json_bool(&j, rc == 0);
        json_key(&j, "rows");
        json_int(&j, rows);
        json_key(&j, "head");
        json_str(&j, head);
        if (rc > 0) {
            json_key(&j, "error");
            json_str(&j, err.msg);
        }
        json_end(&j);
        printf("%s\n", json_cstr(&j));
        json_free(&j);
    } else if (rc > 0) {
        printf("audit chain BROKEN after %lld row(s): %s\n", (long long)rows, err.msg);
    } else {
        printf("audit chain intact: %lld row(s), head %s\n", (long long)rows, head);
    }
    return rc ? EXIT_FAIL : EXIT_OK;
}
