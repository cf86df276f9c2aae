/* cmd_train.c - `prmcast train`. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "job.h"
#include "store.h"

int cmd_train(int argc, char **argv, const cli *c);

int cmd_train(int argc, char **argv, const cli *c)
{
    prm_error err;
    store *s = cli_store(c, 1, &err);
    if (!s) return cli_fail(c, "train", "%s", err.msg);
    char *counts = NULL, *text = NULL;
    int rc = job_call(s, "train", "prm.pipeline", "train_cli", argc - 1, argv + 1, &counts, &text, &err);
    store_close(s);
    if (rc == 0) {
        if (c->json) printf("%s\n", counts ? counts : "{}");
        else if (text) cli_lines(stdout, text);   /* may hold export data */
    }
    free(counts);
    free(text);
    if (rc < 0) return cli_fail(c, "train", "%s", err.msg);
    return EXIT_OK;
}
