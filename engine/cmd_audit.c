/* cmd_audit.c - `prmcast audit verify [--expect HASH]`: recompute the audit
 * log's chain (keyed with $PRMCAST_AUDIT_KEY when set), and check that a
 * head recorded outside the store is still in it; `prmcast audit head`:
 * print the head to record. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "json.h"
#include "store.h"

int cmd_audit(int argc, char **argv, const cli *c);

static int audit_head(const cli *c, store *s)
{
    prm_error err;
    char head[65];
    int64_t rows;
    int rc = store_audit_head(s, head, &rows, &err);
    store_close(s);
    if (rc < 0) return cli_fail(c, "audit", "%s", err.msg);
    if (c->json) {
        json j;
        json_init(&j);
        json_obj(&j);
        json_key(&j, "head");
        json_str(&j, head);
        json_key(&j, "rows");
        json_int(&j, rows);
        json_end(&j);
        printf("%s\n", json_cstr(&j));
        json_free(&j);
    } else {
        printf("%s\n", head);
    }
    return EXIT_OK;
}

int cmd_audit(int argc, char **argv, const cli *c)
{
    int head_cmd = argc >= 2 && strcmp(argv[1], "head") == 0;
    if (argc < 2 || (!head_cmd && strcmp(argv[1], "verify") != 0))
        return cli_usage(c, "audit", "expected 'audit verify [--expect HASH]' or 'audit head'");
    const char *expect = NULL;
    for (int i = 2; i < argc; i++) {
        if (!head_cmd && strcmp(argv[i], "--expect") == 0) {
            if (i + 1 >= argc || !*argv[i + 1]) return cli_usage(c, "audit", "--expect needs a HASH");
            expect = argv[++i];
            size_t n = strlen(expect);
            if (n != 64 || strspn(expect, "0123456789abcdef") != n)
                return cli_usage(c, "audit", "--expect needs a 64-digit lowercase hex hash, not '%s'", expect);
        } else {
            return cli_usage(c, "audit", "unexpected argument '%s'", argv[i]);
        }
    }
    prm_error err;
    store *s = cli_store(c, 0, &err);
    if (!s) return cli_fail(c, "audit", "%s", err.msg);
    if (head_cmd) return audit_head(c, s);
    int64_t rows, after = 0;
    char head[65] = "";
    int rc = store_audit_verify_expect(s, expect, &rows, &after, head, &err);
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
        if (expect) {
            json_key(&j, "expect");
            json_str(&j, expect);
            if (rc == 0) {
                json_key(&j, "rows_after_expected");
                json_int(&j, after);
            }
        }
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
        printf("audit chain intact: %lld row(s), head %s", (long long)rows, head);
        if (expect) printf("; the expected head is in it (%lld row(s) after it)", (long long)after);
        putchar('\n');
    }
    return rc ? EXIT_FAIL : EXIT_OK;
}
