/* domain.c - see domain.h. */
#include "domain.h"

#include <string.h>

const char *const domain_stage_names[STAGE_COUNT + 1] = {
    "registered", "qualified", "solution", "proposal", "negotiation", "closed_won", "closed_lost", NULL,
};
const char *const domain_status_names[STATUS_COUNT + 1] = { "open", "won", "lost", NULL };
const char *const domain_partner_types[] = { "distributor", "reseller", "referral", "msp", NULL };
const char *const domain_commit_categories[] = { "commit", "best_case", "pipeline", NULL };
/* "other": a kind the PRM sends that this list does not know (its raw value
 * is kept in payouts.kind_raw). */
const char *const domain_payout_kinds[] = { "commission", "mdf", "rebate", "spiff", "other", NULL };

static int find(const char *const *list, const char *name)
{
    if (!name) return -1;
    /* The first byte first: the world looks up millions of names. */
    for (int i = 0; list[i]; i++)
        if (list[i][0] == name[0] && strcmp(list[i], name) == 0) return i;
    return -1;
}

int domain_stage(const char *name) { return find(domain_stage_names, name); }
int domain_status(const char *name) { return find(domain_status_names, name); }

int domain_stage_status(int stage)
{
    return stage == STAGE_CLOSED_WON ? STATUS_WON : stage == STAGE_CLOSED_LOST ? STATUS_LOST : STATUS_OPEN;
}
