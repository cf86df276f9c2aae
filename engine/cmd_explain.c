/* cmd_explain.c - `prmcast explain DEAL`. */
#include <stdio.h>

#include "cli.h"
#include "scoring.h"
#include "store.h"

int cmd_explain(int argc, char **argv, const cli *c);

int cmd_explain(int argc, char **argv, const cli *c)
{
    if (argc != 2) return cli_usage(c, "explain", "exactly one DEAL id is expected");
    prm_error err;
    store *s = cli_store(c, 0, &err);
    if (!s) return cli_fail(c, "explain", "%s", err.msg);
    int rc = scoring_explain(s, argv[1], c->json, stdout, &err);
    store_close(s);
    if (rc < 0) return cli_fail(c, "explain", "%s", err.msg);
    return EXIT_OK;
}
