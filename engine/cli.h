/* cli.h - what every `prmcast <command>` shares: the global options, exit
 * codes, usage and failure reporting (one line of text, or a JSON object
 * with --json), opening the store, and printing text from export data
 * safely. One cmd_<name>.c per command renders its results; main.c only
 * dispatches.
 *
 *   int cmd_status(int argc, char **argv, const cli *c);
 *   ...
 *   return cli_usage(c, "train", "unknown option '%s'", argv[i]);   // exit 2
 *   return cli_fail(c, "score", "%s", err.msg);                      // exit 1
 */
#ifndef PRM_CLI_H
#define PRM_CLI_H

#include <stdio.h>

#include "error.h"

struct store;

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

typedef struct cli {
    const char *db_path;       /* --db, else $PRMCAST_DB, else prmcast.db */
    int json;                  /* --json: stdout holds one JSON document */
    int progress;              /* stderr is a terminal: long steps report progress */
} cli;

typedef int (*cli_fn)(int argc, char **argv, const cli *c);

/* Print "prmcast CMD: message" (or {"ok":false,"error":...} on stdout with
 * --json) and return EXIT_USAGE / EXIT_FAIL. */
int cli_usage(const cli *c, const char *cmd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int cli_fail(const cli *c, const char *cmd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Opens the store. create = 0 (read-only commands: status, explain, audit,
 * rules test) refuses a path where no store exists instead of creating an
 * empty one. NULL with err on failure. */
struct store *cli_store(const cli *c, int create, prm_error *err);

/* Writes s to f with control characters (ANSI escapes, CR, NUL...) shown
 * as \xHH, so export data cannot rewrite the terminal. width > 0 pads or
 * cuts to that many bytes. */
void cli_text(FILE *f, const char *s, int width);
/* Multi-line text from a job (ingest, train, score reports) the same way,
 * keeping its newlines and tabs. */
void cli_lines(FILE *f, const char *text);
/* The one rule for what cli_text escapes (also prm.safe in Lua). */
static inline int cli_text_unsafe(unsigned char ch) { return ch < 0x20 || ch == 0x7f; }

/* Option parsing helpers: an integer in [lo, hi]; -1 with a usage message
 * naming the option otherwise. */
int cli_int(const cli *c, const char *cmd, const char *opt, const char *text, long lo, long hi,
            long *out);

/* Progress on stderr when attached to a terminal (c->progress). */
void cli_progress(const cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
