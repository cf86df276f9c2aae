/* hash.h - SHA-256 and HMAC-SHA-256 (OpenSSL's libcrypto) for the audit
 * chain, the model registry's training-data hashes and the outbox's
 * payload comparison.
 *
 *   hash_sha256 *h = hash_sha256_new();          // NULL: out of memory
 *   if (!h) return prm_error_set(err, "...");
 *   hash_sha256_update(h, buf, len);
 *   hash_sha256_hex(h, out);                      // frees h
 *
 * hash_hmac_new(key, len) gives a keyed hash with the same update/hex. */
#ifndef PRM_HASH_H
#define PRM_HASH_H

#include <stddef.h>

typedef struct hash_sha256 hash_sha256;

hash_sha256 *hash_sha256_new(void);
hash_sha256 *hash_hmac_new(const void *key, size_t keylen);
void hash_sha256_update(hash_sha256 *h, const void *data, size_t len);
/* Writes the lowercase hex digest and frees h; returns 0, or -1 (and an
 * empty string) when h is NULL or the digest failed. */
int hash_sha256_hex(hash_sha256 *h, char out[65]);

#endif
