/* store_forecast.c - what the forecast reads from the store besides the
 * world: the end customer accounts the de-duplication matches on (the
 * world keeps only whether an account was given). */
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
