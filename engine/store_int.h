/* store_int.h - what the store_*.c files share: the handle's layout and
 * a few helpers. Not a contract: only store*.c and outbox/settings code in
 * store_*.c include it, and they are the only includers of <sqlite3.h>. */
#ifndef PRM_STORE_INT_H
#define PRM_STORE_INT_H

#include <sqlite3.h>

#include "store.h"

struct upsert_state;                     /* store_upsert.c */
struct scorebuf;                         /* store_runs.c */

struct store {
    sqlite3 *db;
    char *path;
    int readonly;
    struct upsert_state *up;
    sqlite3_stmt *ob_last, *ob_sup, *ob_ins, *ob_live;   /* store_outbox.c, prepared once */
    int64_t *ob_pend;                          /* store_outbox.c: deals with a pending row */
    size_t ob_npend, ob_cap;                   /*   of another run than ob_run, for ob_target; */
    int ob_known, ob_sent;                     /*   ob_sent: any row of ob_target delivered */
    int64_t ob_run;
    char ob_target[64];
    sqlite3_stmt *score_ins;                   /* store_runs.c, prepared once: a full batch */
    struct scorebuf *sb;                       /* store_runs.c: score rows not yet written */
};

struct store_stmt {
    sqlite3_stmt *st;
    store *s;
};

int store_db_error(store *s, prm_error *err, const char *what);
int store_bind_value(sqlite3_stmt *st, int idx, const store_value *v);
void store_upsert_free(struct upsert_state *u);
int store_bulk_missing(store *s);
void store_history_drop(store *s);
/* store_runs.c: the waiting score rows dropped (rollback) or freed (close). */
void store_scores_drop(store *s);
void store_scores_free(store *s);
/* store_outbox.c: the queue's per-run set of pending deals is stale. */
void store_outbox_forget(store *s);
/* The engine clock as ISO text (timeutil.h clock_now). */
void store_now_iso(char out[21]);
/* A persistent prepared statement cached in *st (prepared on first use). */
int store_prep(store *s, sqlite3_stmt **st, const char *sql, prm_error *err);

static inline store_value sv_text(const char *s)
{
    store_value v = { s ? SV_TEXT : SV_NULL, s, 0, 0 };
    return v;
}
static inline store_value sv_int(int64_t i)
{
    store_value v = { SV_INT, NULL, 0, i };
    return v;
}
static inline store_value sv_real(double r)
{
    store_value v = { SV_REAL, NULL, r, 0 };
    return v;
}

#endif
