/* store_forecast.c - what the forecast reads from the store besides the
 * world: the end customer accounts the de-duplication matches on (the
 * world keeps only whether an account was given), and whether any deal is
 * known as of an instant (`score` and `forecast` say "no data" before
 * loading a world). */
#include <stdint.h>

#include "store.h"
#include "store_forecast.h"

int store_deal_accounts(store *s, store_account_fn fn, void *ud, prm_error *err)
{
    store_stmt *st;
    if (store_prepare(s, "SELECT id, account FROM deals WHERE account IS NOT NULL AND account <> ''"
                         " ORDER BY id", &st, err) < 0)
        return -1;
    int rc;
    while ((rc = store_step(st, err)) == 1) {
        store_value id = store_column(st, 0), a = store_column(st, 1);
        if (a.kind != SV_TEXT) continue;
        if (fn(ud, id.i, a.s) < 0) {
            rc = prm_error_set(err, "out of memory reading accounts");
            break;
        }
    }
    store_finalize(st);
    return rc < 0 ? -1 : 0;
}

int store_deals_known(store *s, const char *at, int *any, prm_error *err)
{
    *any = 0;
    store_stmt *st;
    if (store_prepare(s, "SELECT 1 FROM deal_history WHERE observed_at <= ?1 LIMIT 1", &st, err) < 0) return -1;
    store_value v = { SV_TEXT, at, 0, 0 };
    int rc = store_bind(st, 1, &v, err);
    if (rc == 0) rc = store_step(st, err);
    store_finalize(st);
    if (rc < 0) return -1;
    *any = rc == 1;
    return 0;
}
