/* domain.h - the vocabulary of a partner program, defined once: deal
 * stages in pipeline order, statuses, partner types, commit categories,
 * payout kinds. The store's allowed values (store_upsert.c), the feature
 * vocabulary (feat.c), the rules' views and Lua (`prm.stages`) all read
 * these tables; nothing else spells a stage name.
 *
 *   int k = domain_stage("proposal");        // 3, or -1 when unknown
 *   if (domain_stage_open(k)) ...            // 0..4 are open stages
 *   domain_stage_names[k]                    // "proposal"
 */
#ifndef PRM_DOMAIN_H
#define PRM_DOMAIN_H

/* Stages in pipeline order: the open ones first, then the two outcomes. */
enum {
    STAGE_REGISTERED, STAGE_QUALIFIED, STAGE_SOLUTION, STAGE_PROPOSAL, STAGE_NEGOTIATION,
    STAGE_CLOSED_WON, STAGE_CLOSED_LOST, STAGE_COUNT
};
enum { STAGE_OPEN_COUNT = STAGE_CLOSED_WON };     /* 5 open stages */
enum { STATUS_OPEN, STATUS_WON, STATUS_LOST, STATUS_COUNT };

/* NULL-terminated lists (the store's allowed values use them as is). */
extern const char *const domain_stage_names[STAGE_COUNT + 1];
extern const char *const domain_status_names[STATUS_COUNT + 1];
extern const char *const domain_partner_types[];
extern const char *const domain_commit_categories[];
extern const char *const domain_payout_kinds[];

int domain_stage(const char *name);          /* index, -1 when unknown or NULL */
int domain_status(const char *name);
static inline int domain_stage_open(int k) { return k >= 0 && k < STAGE_OPEN_COUNT; }
/* The status a stage implies: won/lost for the outcomes, open otherwise. */
int domain_stage_status(int stage);

#endif
