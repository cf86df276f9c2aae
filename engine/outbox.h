/* outbox.h - the durable write-back outbox: payloads for a PRM wait in the
 * store (writeback_outbox) until a sender delivers them.
 *
 *   queue   a score run adds one payload per deal, in the run's transaction;
 *           a newer payload for a deal supersedes its still-pending one, and
 *           one whose comparison hash equals the last DELIVERED payload's is
 *           not queued at all (nothing changed for the PRM). What other
 *           runs left (which deals have a pending row, whether anything was
 *           delivered) is read once per transaction and run; outbox_ack,
 *           outbox_fail, commit and rollback forget it.
 *   claim   a sender takes up to N due items (pending, or 'sending' items
 *           whose lease ran out: a crash between send and ack); each claim
 *           counts an attempt. Items keep their idempotency key
 *           ("<target>:<deal>:<run>"), sent as Idempotency-Key where the
 *           API accepts it, so a resend after a crash is not a second change.
 *   ack     delivered: status 'sent'.
 *   fail    not delivered: back to 'pending' with a retry time, or 'dead'
 *           (a permanent refusal such as a 400 naming a field, or after
 *           max_attempts) with the last error kept.
 *
 * Statuses: pending, sending, sent, superseded, dead. Times come from the
 * engine clock. The store's transaction is the caller's: queue inside the
 * score run's transaction; claim/ack/fail each commit on their own when
 * no transaction is open.
 */
#ifndef PRM_OUTBOX_H
#define PRM_OUTBOX_H

#include <stdint.h>

#include "error.h"

struct store;

enum { OUTBOX_LEASE_SECONDS = 300, OUTBOX_MAX_ATTEMPTS = 8 };

typedef struct outbox_item {
    int64_t id, run_id, deal_id;
    char target[64], deal[128], key[256];
    char *payload;             /* JSON text, malloc'd */
    int attempts;              /* including this claim */
} outbox_item;

typedef struct outbox_counts {
    long pending, sending, sent, superseded, dead;
} outbox_counts;

/* *queued = 1 when a row was added, 0 when it matched the last delivered
 * payload (same compare_hash) and was left out. compare_hash may be NULL
 * (then the payload text itself is compared). */
int outbox_queue(struct store *s, int64_t run_id, int64_t deal_id, const char *deal_ext,
                 const char *target, const char *payload, const char *compare_hash, int *queued,
                 prm_error *err);
/* *same = 1 when the deal's newest live payload for target (pending,
 * sending or sent) was queued by a score run whose score row of the deal
 * has exactly these values (probability, score, model, drivers and flags
 * JSON as stored in scores): the score run then neither builds nor queues
 * a payload, because nothing the connector maps has changed (the caller
 * also checks that the mapping itself is unchanged). */
int outbox_unchanged(struct store *s, const char *target, int64_t deal_id, double probability,
                     double score, int64_t model_id, const char *drivers, const char *flags, int *same,
                     prm_error *err);
/* Claims up to `limit` due items for target, oldest first; *items is
 * malloc'd (outbox_free). */
int outbox_claim(struct store *s, const char *target, int limit, outbox_item **items, int *n,
                 prm_error *err);
/* The due items as claim would take them, without claiming (--dry-run). */
int outbox_peek(struct store *s, const char *target, int limit, outbox_item **items, int *n,
                prm_error *err);
int outbox_ack(struct store *s, int64_t id, prm_error *err);
/* permanent: dead now. Otherwise pending again after retry_after seconds,
 * or dead when the item has had max_attempts (0: OUTBOX_MAX_ATTEMPTS). */
int outbox_fail(struct store *s, int64_t id, const char *error, int permanent, int retry_after,
                int max_attempts, prm_error *err);
int outbox_count(struct store *s, const char *target, outbox_counts *c, prm_error *err);
void outbox_free(outbox_item *items, int n);

#endif
