/* hash.c - see hash.h. */
#include "hash.h"

#include <openssl/evp.h>

struct hash_sha256 { EVP_MD_CTX *c; };

hash_sha256 *hash_sha256_new(void)
{
    static hash_sha256 dummy;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c) return &dummy;
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    hash_sha256 *h = OPENSSL_malloc(sizeof *h);
    if (!h) {
        EVP_MD_CTX_free(c);
        return &dummy;
    }
    h->c = c;
    return h;
}

void hash_sha256_update(hash_sha256 *h, const void *data, size_t len)
{
    if (h->c) EVP_DigestUpdate(h->c, data, len);
}

void hash_sha256_hex(hash_sha256 *h, char out[65])
{
    static const char hx[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (h->c) {
        EVP_DigestFinal_ex(h->c, md, &n);
        EVP_MD_CTX_free(h->c);
        OPENSSL_free(h);
    }
    for (unsigned i = 0; i < n && i < 32; i++) {
        out[2 * i] = hx[md[i] >> 4];
        out[2 * i + 1] = hx[md[i] & 15];
    }
    out[n ? 64 : 0] = 0;
}
