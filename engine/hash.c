/* hash.c - see hash.h. */
#include "hash.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <string.h>

struct hash_sha256 {
    EVP_MD_CTX *md;            /* plain SHA-256 */
    EVP_MAC_CTX *mac;          /* or HMAC-SHA-256 */
};

hash_sha256 *hash_sha256_new(void)
{
    hash_sha256 *h = OPENSSL_zalloc(sizeof *h);
    if (!h) return NULL;
    if (!(h->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h->md);
        OPENSSL_free(h);
        return NULL;
    }
    return h;
}

hash_sha256 *hash_hmac_new(const void *key, size_t keylen)
{
    hash_sha256 *h = OPENSSL_zalloc(sizeof *h);
    if (!h) return NULL;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac) h->mac = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);
    char digest[] = "SHA256";
    OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                            OSSL_PARAM_construct_end() };
    if (!h->mac || EVP_MAC_init(h->mac, key, keylen, params) != 1) {
        EVP_MAC_CTX_free(h->mac);
        OPENSSL_free(h);
        return NULL;
    }
    return h;
}

void hash_sha256_update(hash_sha256 *h, const void *data, size_t len)
{
    if (!h) return;
    if (h->md) EVP_DigestUpdate(h->md, data, len);
    else EVP_MAC_update(h->mac, data, len);
}

int hash_sha256_hex(hash_sha256 *h, char out[65])
{
    static const char hx[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    size_t n = 0;
    int ok = 0;
    out[0] = 0;
    if (!h) return -1;
    if (h->md) {
        unsigned k = 0;
        ok = EVP_DigestFinal_ex(h->md, md, &k) == 1;
        n = k;
        EVP_MD_CTX_free(h->md);
    } else {
        ok = EVP_MAC_final(h->mac, md, &n, sizeof md) == 1;
        EVP_MAC_CTX_free(h->mac);
    }
    OPENSSL_free(h);
    if (!ok || n < 32) return -1;
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hx[md[i] >> 4];
        out[2 * i + 1] = hx[md[i] & 15];
    }
    out[64] = 0;
    return 0;
}
