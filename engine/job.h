/* job.h - runs a Lua job script with the full API and records it.
 *
 * A job gets a SANDBOX_JOB state bound to the store, `arg` set as the lua
 * interpreter sets it (arg[0] the script, arg[1..n] the arguments), and a
 * row in the jobs table plus audit entries at start and end. A script that
 * returns a table has it stored as the job's counts (JSON).
 */
#ifndef PRM_JOB_H
#define PRM_JOB_H

#include <stdint.h>

#include "error.h"

struct store;

/* The directory holding connectors/, rules/ and scripts/: $PRMCAST_HOME,
 * else the directory of the prmcast executable. */
const char *job_root(void);

/* Runs `script` (a file path), or when `chunk` is given, that Lua source
 * under the name `script`. Returns 0, or -1 with err holding the script's
 * error (file:line: message). When counts is not NULL it receives the
 * script's result table as JSON (malloc'd; NULL if none). */
int job_run(struct store *db, const char *script, const char *chunk, int argc,
            char **argv, char **counts, prm_error *err);

/* Runs a driver of the embedded library as a recorded job: calls
 * require(module)[fn]({argv...}), which returns true, result[, text] or
 * false, message. *counts gets the result as JSON and *text the text the
 * driver rendered (both malloc'd; NULL when absent). The engine prints;
 * the driver does not. */
int job_call(struct store *db, const char *name, const char *module, const char *fn, int argc,
             char **argv, char **counts, char **text, prm_error *err);

/* A command run in C recorded as a job like the Lua ones: job_open at the
 * start (row in jobs, audit entry), job_close with the outcome. */
int job_open(struct store *db, const char *name, int argc, char **argv, int64_t *id, prm_error *err);
int job_close(struct store *db, const char *name, int64_t id, int ok, const char *counts_json,
              const char *error);

/* Jobs left 'running' by a process that no longer exists (a kill -9) are
 * marked 'killed' with a note; returns how many. */
int job_reap(struct store *db, prm_error *err);

#endif
