/* hash.h - SHA-256 (OpenSSL's libcrypto) for the audit chain and the
 * model registry's training-data hashes. */
#ifndef PRM_HASH_H
#define PRM_HASH_H

#include <stddef.h>

typedef struct hash_sha256 hash_sha256;

hash_sha256 *hash_sha256_new(void);
void hash_sha256_update(hash_sha256 *h, const void *data, size_t len);
/* Writes the lowercase hex digest and frees h. */
void hash_sha256_hex(hash_sha256 *h, char out[65]);

#endif
