/*
 * proxy._native: the rules of a route on object-key paths, run over a parsed record in C.
 *
 * Optional accelerator of proxy/policy/fastpath.py (built by `pip install`; without a C compiler
 * the pure-Python batch path runs instead, with the same results). A Plan is a list of rules
 * that follow each other in a route; calling it on a record (a dict from orjson.loads) walks
 * each rule's path, and rewrites the value in place:
 *
 *   MASK    str values: every character but a separator masked, as proxy/transforms/mask.py
 *           does (the separator set comes from Python: set_separators(bitmap))
 *   PSEUDO  ASCII str values with normalize none/string/email and encoding base32/hex:
 *           canonical form, HMAC-SHA256 (RFC 2104 over OpenSSL's SHA-256, precomputed inner and
 *           outer states), RFC 4648 base32 or hex
 *   REDACT  any value: the rule's constant
 *   FF1     ASCII str values over an ASCII alphabet: the characters in the alphabet encrypted
 *           together with FF1 (NIST SP 800-38G Rev.1, AES-ECB over OpenSSL EVP for the PRF), the
 *           others kept in place, as proxy/transforms/fpe.py does; a value with a variant of an
 *           alphabet character or outside the FF1 domain goes to the closure (which raises)
 *   TOKEN   str values: prefix + base32(version || AES-SIV(value)) (RFC 5297: S2V with AES-CMAC,
 *           AES-CTR), the key derived in C with HKDF-SHA256 (RFC 5869), as
 *           proxy/transforms/tokenize.py does
 *   CALL    (and every value the above do not handle: other types, non-ASCII text, other
 *           modes) the transform's own Python closure, which raises the rule's RecordError.
 *
 * Semantics are those of CompiledRoute._key_step (a missing key or null on the way = the rule
 * did not match: miss(i, record) is called; a non-object on the way = shape_error(i) raises).
 * tests/unit/test_fastpath.py checks this module against the Python transforms and the
 * reference record path on generated values, records and policies.
 *
 * JsonPlan (issue 13) runs a whole route over the raw JSON bytes of a value instead, with no
 * Python object per record: parse, block conditions, MASK / PSEUDO / REDACT / DROP / FF1 / TOKEN, and the
 * serialized output in one pass (orjson's exact bytes), or a hand-back to the batch path; the
 * capsule proxy._native._C_API exports it to proxy._dataplane (dpp_native.h). Its section says
 * what it hands back; proxy/policy/jsonplan.py builds it, tests/unit/test_jsonplan.py checks it.
 *
 * Sections: HMAC-SHA256; AES-ECB; FF1; AES-SIV; Plan (rules over dicts: the transforms on
 * PyUnicode, rule tuples shared with JsonPlan: rule_init / rule_wipe / rule_clear); JsonPlan
 * (parser, writer, rules, the C API); module functions (mask, hmac_sha256, aes_siv,
 * big_int_literal, over_limits) and ABI (bumped with fastpath.NATIVE_ABI).
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED  /* SHA256_Init/Update/Final: midstates are plain structs */
#include <Python.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

/* HMAC-SHA256 (RFC 2104, FIPS 198-1) with OpenSSL's SHA-256: the inner state after
 * (K0 ^ ipad) || message prefix and the outer state after (K0 ^ opad) are computed once per
 * rule; a value then costs two SHA-256 finalizations, with no allocation. */
typedef struct {
    SHA256_CTX inner, outer;
} Hmac;

static void
hmac_init(Hmac *h, const unsigned char *key, size_t klen, const unsigned char *pre, size_t plen)
{
    unsigned char k0[SHA256_CBLOCK], pad[SHA256_CBLOCK];
    memset(k0, 0, sizeof(k0));
    if (klen > SHA256_CBLOCK)
        SHA256(key, klen, k0);
    else
        memcpy(k0, key, klen);
    for (int i = 0; i < SHA256_CBLOCK; i++)
        pad[i] = k0[i] ^ 0x36;
    SHA256_Init(&h->inner);
    SHA256_Update(&h->inner, pad, sizeof(pad));
    SHA256_Update(&h->inner, pre, plen);
    for (int i = 0; i < SHA256_CBLOCK; i++)
        pad[i] = k0[i] ^ 0x5c;
    SHA256_Init(&h->outer);
    SHA256_Update(&h->outer, pad, sizeof(pad));
    OPENSSL_cleanse(k0, sizeof(k0));
    OPENSSL_cleanse(pad, sizeof(pad));
}

static void
hmac_value(const Hmac *h, const unsigned char *msg, size_t len, unsigned char out[SHA256_DIGEST_LENGTH])
{
    SHA256_CTX c = h->inner;
    unsigned char inner[SHA256_DIGEST_LENGTH];
    SHA256_Update(&c, msg, len);
    SHA256_Final(inner, &c);
    c = h->outer;
    SHA256_Update(&c, inner, sizeof(inner));
    SHA256_Final(out, &c);
    OPENSSL_cleanse(&c, sizeof(c));
}

/* AES-ECB over OpenSSL EVP: one context per key, built at plan creation (the key schedule lives
 * in OpenSSL's memory only; EVP_CIPHER_CTX_free cleanses it). Whole blocks, no padding. */
static EVP_CIPHER_CTX *
aes_ecb_new(const unsigned char *key, Py_ssize_t klen)
{
    const EVP_CIPHER *c = klen == 16 ? EVP_aes_128_ecb() : klen == 24 ? EVP_aes_192_ecb()
                        : klen == 32 ? EVP_aes_256_ecb() : NULL;
    if (c == NULL) {
        PyErr_SetString(PyExc_ValueError, "AES keys are 16, 24 or 32 bytes");
        return NULL;
    }
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || EVP_EncryptInit_ex(ctx, c, NULL, key, NULL) != 1 || EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL AES setup failed");
        return NULL;
    }
    return ctx;
}

/* out = AES_K(in) block by block, len a multiple of 16; 0 (and a RuntimeError) on failure */
static int
aes_ecb(EVP_CIPHER_CTX *ctx, const unsigned char *in, unsigned char *out, Py_ssize_t len)
{
    int n = 0;
    if (len > INT_MAX || EVP_EncryptUpdate(ctx, out, &n, in, (int)len) != 1 || n != (int)len) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL AES failed");
        return 0;
    }
    return 1;
}

/* ---- FF1 (NIST SP 800-38G Rev.1, section 5.1, Algorithm 7) --------------------------------
 * The numeral halves A (u numerals) and B (v numerals) are integers below radix**v <= 2**96
 * (the length limit of proxy/crypto/ff1.py, max_length: 2 * floor(log_radix(2**96))), so they and
 * y = NUM(S) (d <= 16 bytes) are unsigned 128-bit integers. As in ff1.py, the CBC-MAC of
 * P || Q is chained once per length n over P and the blocks of Q that hold only tweak and
 * padding (x[n] below); Q's last block is then x[n] ^ ([i] || [NUM(B)]^b) at its end, so each
 * round costs one AES block. */
typedef unsigned __int128 u128;
#define FF1_KEEP 255   /* digit[]: an ASCII character outside the alphabet, kept in place */
#define FF1_OTHER 254  /* digit[]: a variant of an alphabet character (fpe.is_variant): the closure */

typedef struct Ff1 {
    EVP_CIPHER_CTX *ecb;
    int radix, minlen, maxlen;
    unsigned char digit[128];  /* ASCII code -> numeral, FF1_KEEP or FF1_OTHER */
    char sym[128];             /* numeral -> ASCII character */
    u128 pow[97];              /* radix**k for k <= maxlen - maxlen / 2 */
    unsigned char (*x)[16];    /* x[n - minlen]: CBC-MAC state before Q's last block ^ its constant bytes */
} Ff1;

static int
ff1_b(const Ff1 *f, int v)  /* step 3: bytes holding radix**v - 1 */
{
    u128 m = f->pow[v] - 1;
    int bits = 0;
    while (m) {
        bits++;
        m >>= 1;
    }
    return (bits + 7) / 8;
}

static void
ff1_free(Ff1 *f)
{
    if (f == NULL)
        return;
    EVP_CIPHER_CTX_free(f->ecb);
    if (f->x != NULL) {
        OPENSSL_cleanse(f->x, (size_t)(f->maxlen - f->minlen + 1) * 16);
        PyMem_Free(f->x);
    }
    OPENSSL_cleanse(f, sizeof(*f));
    PyMem_Free(f);
}

/* key, tweak, digit table (128 bytes), alphabet (ASCII, in numeral order), minlen, maxlen */
static Ff1 *
ff1_new(const Py_buffer *key, const Py_buffer *tweak, const Py_buffer *table, PyObject *alphabet, int minlen, int maxlen)
{
    Py_ssize_t radix = PyUnicode_GET_LENGTH(alphabet);
    if (!PyUnicode_IS_ASCII(alphabet) || radix < 2 || table->len != 128 || minlen < 1 || maxlen < minlen
        || maxlen - maxlen / 2 > 96 || tweak->len > 0xffffffffL) {
        PyErr_SetString(PyExc_ValueError, "ff1: an ASCII alphabet, a 128-byte table and lengths within 2**96");
        return NULL;
    }
    Ff1 *f = PyMem_Malloc(sizeof(Ff1));
    if (f == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memset(f, 0, sizeof(*f));
    f->radix = (int)radix;
    f->minlen = minlen;
    f->maxlen = maxlen;
    memcpy(f->digit, table->buf, 128);
    memcpy(f->sym, PyUnicode_1BYTE_DATA(alphabet), (size_t)radix);
    f->pow[0] = 1;
    for (int k = 1; k <= maxlen - maxlen / 2; k++) {
        f->pow[k] = f->pow[k - 1] * (u128)radix;
        if (f->pow[k] > ((u128)1 << 96)) {
            PyErr_SetString(PyExc_ValueError, "ff1: maxlen beyond radix**v <= 2**96");
            goto fail;
        }
    }
    f->ecb = aes_ecb_new(key->buf, key->len);
    if (f->ecb == NULL)
        goto fail;
    f->x = PyMem_Malloc((size_t)(maxlen - minlen + 1) * 16);
    Py_ssize_t t = tweak->len;
    unsigned char *q = PyMem_Malloc((size_t)t + 16);
    if (f->x == NULL || q == NULL) {
        PyMem_Free(q);
        PyErr_NoMemory();
        goto fail;
    }
    for (int n = minlen; n <= maxlen; n++) {
        int u = n / 2, v = n - u, b = ff1_b(f, v);
        /* step 5: P = [1]^1 [2]^1 [1]^1 [radix]^3 [10]^1 [u mod 256]^1 [n]^4 [t]^4 */
        unsigned char p[16] = {1, 2, 1, (unsigned char)(radix >> 16), (unsigned char)(radix >> 8), (unsigned char)radix,
                               10, (unsigned char)(u % 256), (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                               (unsigned char)(n >> 8), (unsigned char)n, (unsigned char)(t >> 24),
                               (unsigned char)(t >> 16), (unsigned char)(t >> 8), (unsigned char)t};
        unsigned char *state = f->x[n - minlen];
        if (!aes_ecb(f->ecb, p, state, 16))
            goto fail_q;
        /* step 6.i: Q = T || [0]^((-t-b-1) mod 16) || [i]^1 || [NUM(B)]^b; its last block holds
         * the last 15 - b bytes of T || padding, then [i] and NUM(B) */
        Py_ssize_t pad = ((-t - b - 1) % 16 + 16) % 16, len = t + pad, full = len / 16;
        memcpy(q, tweak->buf, (size_t)t);
        memset(q + t, 0, (size_t)pad);
        for (Py_ssize_t j = 0; j < full; j++) {
            for (int k = 0; k < 16; k++)
                state[k] ^= q[16 * j + k];
            if (!aes_ecb(f->ecb, state, state, 16))
                goto fail_q;
        }
        for (Py_ssize_t k = 0; k < len - 16 * full; k++)  /* 15 - b bytes */
            state[k] ^= q[16 * full + k];
    }
    OPENSSL_cleanse(q, (size_t)t + 16);
    PyMem_Free(q);
    return f;
fail_q:
    PyMem_Free(q);
fail:
    ff1_free(f);
    return NULL;
}

/* steps 6.i-6.iv for one round: y = NUM(first d bytes of PRF(P || Q)); 0 and an error set on failure */
static int
ff1_y(const Ff1 *f, const unsigned char *x, int i, int b, int d, u128 num, u128 *y)
{
    unsigned char blk[16], r[16];
    memcpy(blk, x, 16);
    blk[15 - b] ^= (unsigned char)i;
    for (int k = 0; k < b; k++)
        blk[15 - k] ^= (unsigned char)(num >> (8 * k));
    if (!aes_ecb(f->ecb, blk, r, 16))
        return 0;
    u128 acc = 0;
    for (int k = 0; k < d; k++)
        acc = (acc << 8) | r[k];
    *y = acc;
    OPENSSL_cleanse(r, sizeof(r));
    return 1;
}

/* FF1.Encrypt of the numerals num[0..n) in place (minlen <= n <= maxlen); 0 on failure */
static int
ff1_encrypt(const Ff1 *f, unsigned char *num, int n)
{
    int u = n / 2, v = n - u, b = ff1_b(f, v), d = 4 * ((b + 3) / 4) + 4;
    const unsigned char *x = f->x[n - f->minlen];
    u128 mu = f->pow[u], mv = f->pow[v], a = 0, c = 0, y;
    for (int k = 0; k < u; k++)            /* step 2: A = X[1..u], B = X[u+1..n] */
        a = a * (u128)f->radix + num[k];
    for (int k = u; k < n; k++)
        c = c * (u128)f->radix + num[k];
    for (int i = 0; i < 10; i += 2) {     /* step 6, rounds paired: A mod radix**u, then B mod radix**v */
        if (!ff1_y(f, x, i, b, d, c, &y))
            return 0;
        a = (a + y % mu) % mu;
        if (!ff1_y(f, x, i + 1, b, d, a, &y))
            return 0;
        c = (c + y % mv) % mv;
    }
    for (int k = u - 1; k >= 0; k--, a /= (u128)f->radix)  /* step 7: STR_u(A) || STR_v(B) */
        num[k] = (unsigned char)(a % (u128)f->radix);
    for (int k = n - 1; k >= u; k--, c /= (u128)f->radix)
        num[k] = (unsigned char)(c % (u128)f->radix);
    return 1;
}

/* ---- AES-SIV (RFC 5297) --------------------------------------------------------------------
 * S2V over AES-CMAC (RFC 4493) with K1 (the key's first half), AES-CTR with K2 (second half),
 * one associated-data string (the rule's binding): D after it, and dbl(D), are computed once per
 * rule, so a value costs the CMAC of its blocks and the CTR keystream (one ECB call). */
typedef struct Siv {
    EVP_CIPHER_CTX *mac, *ctr;
    unsigned char sub1[16], sub2[16];  /* CMAC subkeys (RFC 4493, 2.3) */
    unsigned char d[16], dd[16];       /* S2V: D after the associated data, and dbl(D) */
    unsigned char version;
    PyObject *prefix;                  /* ASCII str */
} Siv;

static void
dbl(unsigned char s[16])  /* multiplication by x in GF(2^128) (RFC 5297, 2.3) */
{
    int carry = s[0] >> 7;
    for (int k = 0; k < 15; k++)
        s[k] = (unsigned char)((s[k] << 1) | (s[k + 1] >> 7));
    s[15] = (unsigned char)((s[15] << 1) ^ (carry ? 0x87 : 0));
}

/* AES-CMAC (RFC 4493) of m[0..len); 0 on failure */
static int
cmac(const Siv *s, const unsigned char *m, Py_ssize_t len, unsigned char out[16])
{
    unsigned char x[16] = {0}, last[16];
    Py_ssize_t nb = len ? (len + 15) / 16 : 1, rem = len - 16 * (nb - 1);
    for (Py_ssize_t j = 0; j < nb - 1; j++) {
        for (int k = 0; k < 16; k++)
            x[k] ^= m[16 * j + k];
        if (!aes_ecb(s->mac, x, x, 16))
            return 0;
    }
    memset(last, 0, 16);
    memcpy(last, m + 16 * (nb - 1), (size_t)rem);
    if (rem == 16) {
        for (int k = 0; k < 16; k++)
            last[k] ^= s->sub1[k];
    }
    else {
        last[rem] = 0x80;
        for (int k = 0; k < 16; k++)
            last[k] ^= s->sub2[k];
    }
    for (int k = 0; k < 16; k++)
        x[k] ^= last[k];
    int ok = aes_ecb(s->mac, x, out, 16);
    OPENSSL_cleanse(last, sizeof(last));
    return ok;
}

static void
siv_free(Siv *s)
{
    if (s == NULL)
        return;
    EVP_CIPHER_CTX_free(s->mac);
    EVP_CIPHER_CTX_free(s->ctr);
    Py_XDECREF(s->prefix);
    OPENSSL_cleanse(s, sizeof(*s));
    PyMem_Free(s);
}

/* HKDF-SHA256 (RFC 5869), no salt (HashLen zero bytes), 64 bytes of output */
static void
hkdf64(const unsigned char *ikm, size_t len, const unsigned char *info, size_t ilen, unsigned char okm[64])
{
    Hmac h;
    unsigned char prk[SHA256_DIGEST_LENGTH], msg[SHA256_DIGEST_LENGTH + 256 + 1];
    hmac_init(&h, (const unsigned char *)"", 0, (const unsigned char *)"", 0);  /* zero salt = empty key */
    hmac_value(&h, ikm, len, prk);
    hmac_init(&h, prk, sizeof(prk), (const unsigned char *)"", 0);
    memcpy(msg, info, ilen);                                   /* T(1) = HMAC(PRK, info || 0x01) */
    msg[ilen] = 1;
    hmac_value(&h, msg, ilen + 1, okm);
    memcpy(msg, okm, SHA256_DIGEST_LENGTH);                    /* T(2) = HMAC(PRK, T(1) || info || 0x02) */
    memcpy(msg + SHA256_DIGEST_LENGTH, info, ilen);
    msg[SHA256_DIGEST_LENGTH + ilen] = 2;
    hmac_value(&h, msg, SHA256_DIGEST_LENGTH + ilen + 1, okm + SHA256_DIGEST_LENGTH);
    OPENSSL_cleanse(&h, sizeof(h));
    OPENSSL_cleanse(prk, sizeof(prk));
    OPENSSL_cleanse(msg, sizeof(msg));
}

#define SIV_INFO "dpp-token-aes-siv-v1"

/* key: the policy key (derive: HKDF-SHA256 to 64 bytes, info SIV_INFO, as tokenize.py) or the
 * AES-SIV key itself (32, 48 or 64 bytes: AES-128/192/256); ad: the associated data */
static Siv *
siv_new(const Py_buffer *key, int derive, const Py_buffer *ad, PyObject *prefix, int version)
{
    unsigned char k[64], zero[16] = {0};
    Py_ssize_t klen = 64;
    if (!PyUnicode_IS_ASCII(prefix) || version < 0 || version > 255 || (!derive && key->len != 32 && key->len != 48 && key->len != 64)) {
        PyErr_SetString(PyExc_ValueError, "token: an ASCII prefix, a version byte, a 32/48/64-byte AES-SIV key");
        return NULL;
    }
    if (derive)
        hkdf64(key->buf, (size_t)key->len, (const unsigned char *)SIV_INFO, sizeof(SIV_INFO) - 1, k);
    else {
        klen = key->len;
        memcpy(k, key->buf, (size_t)klen);
    }
    Siv *s = PyMem_Malloc(sizeof(Siv));
    if (s == NULL) {
        OPENSSL_cleanse(k, sizeof(k));
        PyErr_NoMemory();
        return NULL;
    }
    memset(s, 0, sizeof(*s));
    s->mac = aes_ecb_new(k, klen / 2);
    s->ctr = s->mac == NULL ? NULL : aes_ecb_new(k + klen / 2, klen / 2);
    OPENSSL_cleanse(k, sizeof(k));
    if (s->ctr == NULL)
        goto fail;
    if (!aes_ecb(s->mac, zero, s->sub1, 16))  /* L = AES(K1, 0); K1' = dbl(L), K2' = dbl(K1') */
        goto fail;
    dbl(s->sub1);
    memcpy(s->sub2, s->sub1, 16);
    dbl(s->sub2);
    unsigned char m[16];
    if (!cmac(s, zero, 16, s->d) || !cmac(s, ad->buf, ad->len, m))  /* D = CMAC(<zero>); D = dbl(D) ^ CMAC(AD) */
        goto fail;
    dbl(s->d);
    for (int j = 0; j < 16; j++)
        s->d[j] ^= m[j];
    memcpy(s->dd, s->d, 16);
    dbl(s->dd);
    s->version = (unsigned char)version;
    Py_INCREF(prefix);
    s->prefix = prefix;
    return s;
fail:
    siv_free(s);
    return NULL;
}

/* out = V || C of AES-SIV(p[0..len)); out has 16 + len bytes; 0 on failure */
static int
siv_encrypt(const Siv *s, const unsigned char *p, Py_ssize_t len, unsigned char *out, unsigned char *work)
{
    /* work: 2 * 16 * ceil(len / 16) bytes (at least 32) */
    unsigned char *v = out, *c = out + 16;
    Py_ssize_t nb = (len + 15) / 16;
    if (len >= 16) {                       /* T = Sn xorend D */
        memcpy(work, p, (size_t)len);
        for (int k = 0; k < 16; k++)
            work[len - 16 + k] ^= s->d[k];
        if (!cmac(s, work, len, v))
            return 0;
    }
    else {                                 /* T = dbl(D) xor pad(Sn) */
        unsigned char t[16] = {0};
        memcpy(t, p, (size_t)len);
        t[len] = 0x80;
        for (int k = 0; k < 16; k++)
            t[k] ^= s->dd[k];
        if (!cmac(s, t, 16, v))
            return 0;
    }
    if (len == 0)
        return 1;
    unsigned char q[16];                   /* Q = V & 1^64 || 0 1^31 || 0 1^31 */
    memcpy(q, v, 16);
    q[8] &= 0x7f;
    q[12] &= 0x7f;
    unsigned char *ctr = work, *ks = work + 16 * nb;
    for (Py_ssize_t j = 0; j < nb; j++) {  /* counters Q, Q + 1, ... (mod 2**128) */
        memcpy(ctr + 16 * j, q, 16);
        for (int k = 15; k >= 0 && ++q[k] == 0; k--)
            ;
    }
    if (!aes_ecb(s->ctr, ctr, ks, 16 * nb))
        return 0;
    for (Py_ssize_t j = 0; j < len; j++)
        c[j] = p[j] ^ ks[j];
    return 1;
}

enum { OP_CALL = 0, OP_MASK = 1, OP_PSEUDO = 2, OP_REDACT = 3, OP_FF1 = 4, OP_TOKEN = 5, OP_DROP = 6 /* JsonPlan */ };
enum { NORM_NONE = 0, NORM_STRING = 1, NORM_EMAIL = 2 };
enum { ENC_BASE32 = 0, ENC_HEX = 1 };

typedef struct {
    int op;
    PyObject *index;      /* int: rule index, passed to miss() and shape_error() */
    PyObject *parents;    /* tuple of str */
    PyObject *last;       /* str */
    PyObject *fallback;   /* callable(value) -> value */
    /* MASK */
    Py_ssize_t first, keep_last;
    int all_chars;
    Py_UCS4 mask_char;
    /* PSEUDO */
    Hmac *mac;            /* keyed with the rule's key, message prefix absorbed */
    PyObject *prefix;     /* str */
    int normalize, encoding;  /* -1: not handled here (fallback) */
    Py_ssize_t length;    /* 0: whole digest */
    /* REDACT */
    PyObject *value;
    /* FF1, TOKEN: keyed at plan creation, wiped on dealloc or Plan.wipe() */
    struct Ff1 *ff1;
    struct Siv *siv;
} Rule;

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;
    Rule *rules;
    PyObject *shape_error;
} Plan;

static const char B32[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char HEX[] = "0123456789abcdef";

/* bit c set: code point c is a separator (mask.SEPARATOR_CATEGORIES), from set_separators() */
static PyObject *separators_obj = NULL;
static const unsigned char *separators = NULL;
#define SEP_BITMAP_SIZE (0x110000 / 8)

static inline int
is_sep(Py_UCS4 c)
{
    return c < 0x110000 && ((separators[c >> 3] >> (c & 7)) & 1);
}

static void
kept(Py_ssize_t first, Py_ssize_t last, Py_ssize_t n, Py_ssize_t *f, Py_ssize_t *l)
{
    if (first + last < n) {
        *f = first;
        *l = last;
        return;
    }
    Py_ssize_t budget = n / 2;
    *f = first < budget ? first : budget;
    Py_ssize_t rest = budget - *f;
    *l = last < rest ? last : rest;
}

/* proxy.transforms.mask.masker on a str */
static PyObject *
mask_str(Rule *r, PyObject *s)
{
    if (separators == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "proxy._native.set_separators() was not called");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (n == 0) {
        Py_INCREF(s);
        return s;
    }
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    Py_ssize_t n_al = 0, i;
    for (i = 0; i < n; i++) {
        if (!is_sep(PyUnicode_READ(kind, data, i)))
            n_al++;
    }
    int whole = r->all_chars || (n > 0 && n_al == n);
    Py_ssize_t count = whole ? n : n_al, f, l;
    kept(r->first, r->keep_last, count, &f, &l);
    Py_ssize_t hi = count - l, idx = 0;
    Py_UCS4 ch = r->mask_char;
    if (PyUnicode_IS_ASCII(s) && ch < 128) {
        PyObject *out = PyUnicode_New(n, 127);
        if (out == NULL)
            return NULL;
        Py_UCS1 *dst = PyUnicode_1BYTE_DATA(out);
        const Py_UCS1 *src = PyUnicode_1BYTE_DATA(s);
        for (i = 0; i < n; i++) {
            Py_UCS1 c = src[i];
            if (whole || !is_sep(c)) {
                if (idx >= f && idx < hi)
                    c = (Py_UCS1)ch;
                idx++;
            }
            dst[i] = c;
        }
        return out;
    }
    /* the same loop for any text: into a UCS-4 buffer, which PyUnicode_FromKindAndData turns into
     * the string's canonical (narrowest) kind; the ASCII case above writes its result directly */
    Py_UCS4 stack[256] = {0};
    Py_UCS4 *buf = n <= 256 ? stack : PyMem_New(Py_UCS4, n);
    if (buf == NULL)
        return PyErr_NoMemory();
    for (i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (whole || !is_sep(c)) {
            if (idx >= f && idx < hi)
                c = ch;
            idx++;
        }
        buf[i] = c;
    }
    PyObject *out = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf, n);  /* canonical kind */
    if (buf != stack)
        PyMem_Free(buf);
    return out;
}

/* proxy.transforms.pseudonymize on ASCII text src[0..hi) (normalize none/string/email,
 * base32/hex), without the prefix: the digest as text, cut to the rule's length, into enc (at most
 * 64 characters); returns its length, or -1 on allocation failure (MemoryError set) */
static Py_ssize_t
pseudonym_text(const Rule *r, const char *src, Py_ssize_t hi, char enc[2 * SHA256_DIGEST_LENGTH])
{
    Py_ssize_t lo = 0;
    unsigned char dig[SHA256_DIGEST_LENGTH];
    if (r->normalize == NORM_EMAIL) {  /* str.strip().lower() on ASCII text */
        while (lo < hi && Py_UNICODE_ISSPACE((Py_UCS1)src[lo]))
            lo++;
        while (hi > lo && Py_UNICODE_ISSPACE((Py_UCS1)src[hi - 1]))
            hi--;
        unsigned char stackmsg[256];
        unsigned char *m = (hi - lo) <= 256 ? stackmsg : PyMem_Malloc(hi - lo);
        if (m == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = lo; i < hi; i++) {
            char c = src[i];
            m[i - lo] = (unsigned char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        }
        hmac_value(r->mac, m, (size_t)(hi - lo), dig);
        if (m != stackmsg)
            PyMem_Free(m);
    }
    else {
        hmac_value(r->mac, (const unsigned char *)src, (size_t)hi, dig);
    }
    Py_ssize_t size = SHA256_DIGEST_LENGTH, i;
    Py_ssize_t total = r->encoding == ENC_BASE32 ? (size * 8 + 4) / 5 : size * 2;
    Py_ssize_t n = (r->length <= 0 || r->length > total) ? total : r->length;
    if (r->encoding == ENC_BASE32) {
        for (i = 0; i < n; i++) {  /* 5 bits at bit offset 5i, zero-padded past the end */
            Py_ssize_t bit = i * 5, byte = bit / 8;
            unsigned v = (unsigned)dig[byte] << 8;
            if (byte + 1 < size)
                v |= dig[byte + 1];
            enc[i] = B32[(v >> (11 - bit % 8)) & 31];
        }
    }
    else {
        for (i = 0; i < n; i++)
            enc[i] = HEX[(i & 1) ? (dig[i / 2] & 15) : (dig[i / 2] >> 4)];
    }
    return n;
}

/* proxy.transforms.pseudonymize on an ASCII str */
static PyObject *
pseudonym_ascii(Rule *r, PyObject *s)
{
    char enc[2 * SHA256_DIGEST_LENGTH];
    Py_ssize_t n = pseudonym_text(r, (const char *)PyUnicode_1BYTE_DATA(s), PyUnicode_GET_LENGTH(s), enc);
    if (n < 0)
        return NULL;
    PyObject *tail = PyUnicode_FromStringAndSize(enc, n);
    if (tail == NULL)
        return NULL;
    if (PyUnicode_GET_LENGTH(r->prefix) == 0)
        return tail;
    PyObject *out = PyUnicode_Concat(r->prefix, tail);
    Py_DECREF(tail);
    return out;
}

/* proxy.transforms.fpe (FF1) on ASCII text src[0..len) into dst[0..len): 0 done, 1 when the
 * closure must do it (a variant of an alphabet character, a length outside the FF1 domain),
 * -1 on error (an exception set) */
static int
ff1_text(const Ff1 *f, const unsigned char *src, Py_ssize_t len, unsigned char *dst)
{
    unsigned char stack[256], *num = len <= 256 ? stack : PyMem_Malloc((size_t)len);
    int rc = -1;
    if (num == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int n = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char dg = f->digit[src[i]];
        if (dg == FF1_OTHER || (dg != FF1_KEEP && n >= f->maxlen)) {
            rc = 1;  /* fails closed in the closure (variant characters, domain too large) */
            goto done;
        }
        if (dg != FF1_KEEP)
            num[n++] = dg;
    }
    if (n < f->minlen) {
        rc = 1;      /* domain too small: the closure raises */
        goto done;
    }
    if (!ff1_encrypt(f, num, n))
        goto done;
    for (Py_ssize_t i = 0, k = 0; i < len; i++)  /* fpe.join: numerals back at their positions */
        dst[i] = f->digit[src[i]] == FF1_KEEP ? src[i] : (unsigned char)f->sym[num[k++]];
    rc = 0;
done:
    OPENSSL_cleanse(num, (size_t)(len <= 256 ? 256 : len));
    if (num != stack)
        PyMem_Free(num);
    return rc;
}

/* ff1_text on an ASCII str: Py_None when the closure must do it, NULL on error */
static PyObject *
ff1_ascii(const Ff1 *f, PyObject *s)
{
    Py_ssize_t len = PyUnicode_GET_LENGTH(s);
    PyObject *out = PyUnicode_New(len, 127);
    if (out == NULL)
        return NULL;
    int rc = ff1_text(f, PyUnicode_1BYTE_DATA(s), len, PyUnicode_1BYTE_DATA(out));
    if (rc == 0)
        return out;
    Py_DECREF(out);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* proxy.transforms.tokenize on the UTF-8 text p[0..len), without the prefix: lower-case
 * unpadded base32 of version || V || C into dst (token_len(len) bytes); 0, or -1 (exception set) */
static Py_ssize_t
token_len(Py_ssize_t len)
{
    return ((17 + len) * 8 + 4) / 5;
}

static int
token_text(const Siv *s, const unsigned char *p, Py_ssize_t len, unsigned char *dst)
{
    Py_ssize_t nb = (len + 15) / 16, raw_len = 17 + len, wlen = 32 * (nb ? nb : 1);
    Py_ssize_t need = raw_len + wlen;
    unsigned char stack[1024], *buf = need <= (Py_ssize_t)sizeof(stack) ? stack : PyMem_Malloc((size_t)need);
    int rc = -1;
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    buf[0] = s->version;
    if (siv_encrypt(s, p, len, buf + 1, buf + raw_len)) {
        unsigned acc = 0;
        int bits = 0;
        for (Py_ssize_t i = 0; i < raw_len; i++) {  /* RFC 4648 base32, 5 bits at a time */
            acc = (acc << 8) | buf[i];
            bits += 8;
            while (bits >= 5) {
                bits -= 5;
                *dst++ = (unsigned char)B32[(acc >> bits) & 31];
            }
        }
        if (bits > 0)
            *dst++ = (unsigned char)B32[(acc << (5 - bits)) & 31];
        rc = 0;
    }
    OPENSSL_cleanse(buf, (size_t)need);
    if (buf != stack)
        PyMem_Free(buf);
    return rc;
}

/* proxy.transforms.tokenize on a str: prefix + token_text */
static PyObject *
token_str(const Siv *s, PyObject *text)
{
    PyObject *encoded = NULL, *out = NULL;
    const unsigned char *p;
    Py_ssize_t len;
    if (PyUnicode_IS_ASCII(text)) {
        p = PyUnicode_1BYTE_DATA(text);
        len = PyUnicode_GET_LENGTH(text);
    }
    else {  /* text.encode("utf-8", "surrogatepass") */
        encoded = PyUnicode_AsEncodedString(text, "utf-8", "surrogatepass");
        if (encoded == NULL)
            return NULL;
        p = (const unsigned char *)PyBytes_AS_STRING(encoded);
        len = PyBytes_GET_SIZE(encoded);
    }
    Py_ssize_t plen = PyUnicode_GET_LENGTH(s->prefix);
    out = PyUnicode_New(plen + token_len(len), 127);
    if (out != NULL) {
        Py_UCS1 *dst = PyUnicode_1BYTE_DATA(out);
        memcpy(dst, PyUnicode_1BYTE_DATA(s->prefix), (size_t)plen);
        if (token_text(s, p, len, dst + plen) < 0)
            Py_CLEAR(out);
    }
    Py_XDECREF(encoded);
    return out;
}

static PyObject *
apply_rule(Rule *r, PyObject *v)
{
    switch (r->op) {
    case OP_MASK:
        if (PyUnicode_CheckExact(v))
            return mask_str(r, v);
        break;
    case OP_PSEUDO:
        if (r->mac == NULL)
            goto wiped;
        if (PyUnicode_CheckExact(v) && PyUnicode_IS_ASCII(v) && r->normalize >= 0 && r->encoding >= 0)
            return pseudonym_ascii(r, v);
        break;
    case OP_REDACT:
        Py_INCREF(r->value);
        return r->value;
    case OP_FF1:
        if (r->ff1 == NULL)
            goto wiped;
        if (PyUnicode_CheckExact(v) && PyUnicode_IS_ASCII(v)) {
            PyObject *out = ff1_ascii(r->ff1, v);
            if (out != Py_None)
                return out;
            Py_DECREF(out);
        }
        break;
    case OP_TOKEN:
        if (r->siv == NULL)
            goto wiped;
        if (PyUnicode_CheckExact(v))
            return token_str(r->siv, v);
        break;
    }
    return PyObject_CallOneArg(r->fallback, v);
wiped:
    PyErr_SetString(PyExc_RuntimeError, "proxy._native.Plan: called after wipe()");
    return NULL;
}

static PyObject *
Plan_call(Plan *self, PyObject *args, PyObject *kwargs)
{
    PyObject *rec, *miss;
    if (!PyArg_ParseTuple(args, "O!O:Plan", &PyDict_Type, &rec, &miss))
        return NULL;
    for (Py_ssize_t k = 0; k < self->n; k++) {
        Rule *r = &self->rules[k];
        PyObject *node = rec, *t;
        Py_ssize_t np = PyTuple_GET_SIZE(r->parents);
        int found = 1;
        for (Py_ssize_t d = 0; d < np; d++) {
            PyObject *c = PyDict_GetItemWithError(node, PyTuple_GET_ITEM(r->parents, d));
            if (c == NULL && PyErr_Occurred())
                return NULL;
            if (c == NULL || c == Py_None) {
                found = 0;
                break;
            }
            if (!PyDict_CheckExact(c)) {
                t = PyObject_CallOneArg(self->shape_error, r->index);  /* raises */
                Py_XDECREF(t);
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_RuntimeError, "shape_error did not raise");
                return NULL;
            }
            node = c;
        }
        PyObject *v = NULL;
        if (found) {
            v = PyDict_GetItemWithError(node, r->last);
            if (v == NULL && PyErr_Occurred())
                return NULL;
        }
        if (v == NULL) {
            t = PyObject_CallFunctionObjArgs(miss, r->index, rec, NULL);
            if (t == NULL)
                return NULL;
            Py_DECREF(t);
            continue;
        }
        Py_INCREF(v);
        Py_INCREF(node);
        PyObject *nv = apply_rule(r, v);
        Py_DECREF(v);
        if (nv == NULL) {
            Py_DECREF(node);
            return NULL;
        }
        int rc = PyDict_SetItem(node, r->last, nv);
        Py_DECREF(nv);
        Py_DECREF(node);
        if (rc < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* the key schedules and key-derived state of one rule, cleansed and freed */
static void
rule_wipe(Rule *r)
{
    if (r->mac != NULL) {
        OPENSSL_cleanse(r->mac, sizeof(Hmac));
        PyMem_Free(r->mac);
        r->mac = NULL;
    }
    ff1_free(r->ff1);
    r->ff1 = NULL;
    siv_free(r->siv);
    r->siv = NULL;
}

/* rule_wipe, then the rule's references released */
static void
rule_clear(Rule *r)
{
    rule_wipe(r);
    Py_XDECREF(r->index);
    Py_XDECREF(r->parents);
    Py_XDECREF(r->last);
    Py_XDECREF(r->fallback);
    Py_XDECREF(r->prefix);
    Py_XDECREF(r->value);
}

static void
plan_wipe(Plan *self)
{
    for (Py_ssize_t k = 0; k < self->n; k++)
        rule_wipe(&self->rules[k]);
}

static PyObject *
Plan_wipe(Plan *self, PyObject *unused)
{
    plan_wipe(self);
    Py_RETURN_NONE;
}

static void
Plan_dealloc(Plan *self)
{
    for (Py_ssize_t k = 0; k < self->n; k++)
        rule_clear(&self->rules[k]);
    PyMem_Free(self->rules);
    Py_XDECREF(self->shape_error);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* One rule tuple (see Plan_new) into *r (zeroed by the caller). *held is set once r holds
 * references (the owner's dealloc then releases them, also after a failure); 0 or -1 (an
 * exception set). allow_drop: OP_DROP is accepted (JsonPlan only). */
static int
rule_init(Rule *r, PyObject *item, int allow_drop, int *held)
{
    PyObject *params = NULL;
    if (!PyTuple_Check(item)) {
        PyErr_SetString(PyExc_TypeError, "a rule must be a tuple");
        return -1;
    }
    if (!PyArg_ParseTuple(item, "iO!O!UO|O:rule", &r->op, &PyLong_Type, &r->index, &PyTuple_Type,
                          &r->parents, &r->last, &r->fallback, &params)) {
        memset(r, 0, sizeof(Rule));
        return -1;
    }
    *held = 1;  /* from here on, the owner's dealloc releases this rule's references */
    Py_INCREF(r->index);
    Py_INCREF(r->parents);
    Py_INCREF(r->last);
    Py_INCREF(r->fallback);
    for (Py_ssize_t d = 0; d < PyTuple_GET_SIZE(r->parents); d++) {
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(r->parents, d))) {
            PyErr_SetString(PyExc_TypeError, "parents must be str");
            return -1;
        }
    }
    if (r->op != OP_CALL && (params == NULL || !PyTuple_Check(params))) {
        PyErr_SetString(PyExc_TypeError, "rule parameters must be a tuple");
        return -1;
    }
    if (r->op == OP_MASK) {
        PyObject *ch;
        if (!PyArg_ParseTuple(params, "nnUp:mask", &r->first, &r->keep_last, &ch, &r->all_chars))
            return -1;
        if (PyUnicode_GET_LENGTH(ch) != 1) {
            PyErr_SetString(PyExc_ValueError, "mask_char must be one character");
            return -1;
        }
        r->mask_char = PyUnicode_READ_CHAR(ch, 0);
    }
    else if (r->op == OP_PSEUDO) {
        Py_buffer key, pre;
        PyObject *prefix;
        if (!PyArg_ParseTuple(params, "y*y*Uiin:pseudonymize", &key, &pre, &prefix, &r->normalize,
                              &r->encoding, &r->length))
            return -1;
        r->mac = PyMem_Malloc(sizeof(Hmac));
        if (r->mac == NULL) {
            PyBuffer_Release(&key);
            PyBuffer_Release(&pre);
            PyErr_NoMemory();
            return -1;
        }
        hmac_init(r->mac, key.buf, (size_t)key.len, pre.buf, (size_t)pre.len);
        PyBuffer_Release(&key);
        PyBuffer_Release(&pre);
        Py_INCREF(prefix);
        r->prefix = prefix;
    }
    else if (r->op == OP_REDACT) {
        PyObject *value;
        if (!PyArg_ParseTuple(params, "O:redact", &value))
            return -1;
        Py_INCREF(value);
        r->value = value;
    }
    else if (r->op == OP_FF1) {
        Py_buffer key, tweak, table;
        PyObject *alphabet;
        int minlen, maxlen;
        if (!PyArg_ParseTuple(params, "y*y*y*Uii:ff1", &key, &tweak, &table, &alphabet, &minlen, &maxlen))
            return -1;
        r->ff1 = ff1_new(&key, &tweak, &table, alphabet, minlen, maxlen);
        PyBuffer_Release(&key);
        PyBuffer_Release(&tweak);
        PyBuffer_Release(&table);
        if (r->ff1 == NULL)
            return -1;
    }
    else if (r->op == OP_TOKEN) {
        Py_buffer key, ad;
        PyObject *prefix;
        int version, derive;
        if (!PyArg_ParseTuple(params, "y*py*Ui:token", &key, &derive, &ad, &prefix, &version))
            return -1;
        r->siv = siv_new(&key, derive, &ad, prefix, version);
        PyBuffer_Release(&key);
        PyBuffer_Release(&ad);
        if (r->siv == NULL)
            return -1;
    }
    else if (r->op == OP_DROP && allow_drop) {
        ;
    }
    else if (r->op != OP_CALL) {
        PyErr_SetString(PyExc_ValueError, "unknown op");
        return -1;
    }
    return 0;
}

/* Plan(rules, shape_error): rules is a list of tuples
 *   (op, index, parents, last, fallback, *params)
 *   MASK:   params = (keep_first, keep_last, mask_char, mask_separators)
 *   PSEUDO: params = (key, message prefix, prefix, normalize, encoding, length)
 *           normalize/encoding -1: the fallback closure for every value
 *   REDACT: params = (value,)
 *   FF1:    params = (AES key, tweak, digit table, alphabet, minlen, maxlen): the table maps each
 *           ASCII code to its numeral, FF1_KEEP (kept in place) or FF1_OTHER (the closure)
 *   TOKEN:  params = (key, derive, associated data, prefix, version): derive true: key is the
 *           policy key (HKDF-SHA256 in C); false: the AES-SIV key itself
 *   CALL:   params = ()
 */
static PyObject *
Plan_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *rules, *shape_error;
    if (!PyArg_ParseTuple(args, "O!O:Plan", &PyList_Type, &rules, &shape_error))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(rules);
    Plan *self = (Plan *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->rules = PyMem_New(Rule, n > 0 ? n : 1);
    if (self->rules == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    memset(self->rules, 0, sizeof(Rule) * (n > 0 ? n : 1));
    Py_INCREF(shape_error);
    self->shape_error = shape_error;
    for (Py_ssize_t k = 0; k < n; k++) {
        int held = 0;
        int rc = rule_init(&self->rules[k], PyList_GET_ITEM(rules, k), 0, &held);
        if (held)
            self->n = k + 1;
        if (rc < 0)
            goto fail;
    }
    self->n = n;
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static PyMethodDef Plan_methods[] = {
    {"wipe", (PyCFunction)Plan_wipe, METH_NOARGS,
     "wipe(): cleanse and free the rules' key schedules now (a replaced policy); the plan then raises"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "proxy._native.Plan",
    .tp_doc = PyDoc_STR("Plan(rules, shape_error): consecutive object-key-path rules of a route, "
                        "called as plan(record, miss) (see proxy/policy/fastpath.py)."),
    .tp_basicsize = sizeof(Plan),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Plan_new,
    .tp_dealloc = (destructor)Plan_dealloc,
    .tp_call = (ternaryfunc)Plan_call,
    .tp_methods = Plan_methods,
};

static PyObject *
native_mask(PyObject *mod, PyObject *args)
{
    Rule r;
    PyObject *s, *ch;
    memset(&r, 0, sizeof(r));
    if (!PyArg_ParseTuple(args, "UnnUp:mask", &s, &r.first, &r.keep_last, &ch, &r.all_chars))
        return NULL;
    if (PyUnicode_GET_LENGTH(ch) != 1) {
        PyErr_SetString(PyExc_ValueError, "mask_char must be one character");
        return NULL;
    }
    r.mask_char = PyUnicode_READ_CHAR(ch, 0);
    return mask_str(&r, s);
}

static PyObject *
native_hmac(PyObject *mod, PyObject *args)
{
    Py_buffer key, msg;
    Hmac h;
    unsigned char out[SHA256_DIGEST_LENGTH];
    if (!PyArg_ParseTuple(args, "y*y*:hmac_sha256", &key, &msg))
        return NULL;
    hmac_init(&h, key.buf, (size_t)key.len, (const unsigned char *)"", 0);
    hmac_value(&h, msg.buf, (size_t)msg.len, out);
    OPENSSL_cleanse(&h, sizeof(h));
    PyBuffer_Release(&key);
    PyBuffer_Release(&msg);
    return PyBytes_FromStringAndSize((const char *)out, sizeof(out));
}

static PyObject *
native_aes_siv(PyObject *mod, PyObject *args)
{
    Py_buffer key, ad, msg;
    PyObject *out = NULL, *empty = PyUnicode_FromString("");
    if (empty == NULL || !PyArg_ParseTuple(args, "y*y*y*:aes_siv", &key, &ad, &msg)) {
        Py_XDECREF(empty);
        return NULL;
    }
    Siv *s = siv_new(&key, 0, &ad, empty, 0);
    Py_ssize_t nb = (msg.len + 15) / 16;
    unsigned char *work = s == NULL ? NULL : PyMem_Malloc((size_t)(32 * (nb ? nb : 1)));
    out = work == NULL ? NULL : PyBytes_FromStringAndSize(NULL, 16 + msg.len);
    if (out != NULL && !siv_encrypt(s, msg.buf, msg.len, (unsigned char *)PyBytes_AS_STRING(out), work))
        Py_CLEAR(out);
    if (s != NULL && work == NULL)
        PyErr_NoMemory();
    PyMem_Free(work);
    siv_free(s);
    Py_DECREF(empty);
    PyBuffer_Release(&key);
    PyBuffer_Release(&ad);
    PyBuffer_Release(&msg);
    return out;
}

static PyObject *
native_set_separators(PyObject *mod, PyObject *arg)
{
    if (!PyBytes_CheckExact(arg) || PyBytes_GET_SIZE(arg) != SEP_BITMAP_SIZE) {
        PyErr_SetString(PyExc_ValueError, "set_separators takes a bytes bitmap of 0x110000 bits");
        return NULL;
    }
    Py_INCREF(arg);
    Py_XSETREF(separators_obj, arg);
    separators = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_RETURN_NONE;
}

/* big_int_literal(data: bytes-like or str) -> bool: whether the JSON text may hold an integer literal
 * beyond 64 bits, i.e. a run of >= 19 ASCII digits right after '[', ':' or ',' (JSON whitespace
 * and a '-' sign allowed in between) or at the start of the text. A cheap screen, O(len), no
 * allocation (it looks at every 19th byte outside digit runs); proxy/formats/json.py has the same test as a regular expression (its fallback) and
 * re-parses only the records it flags. Strings holding such a pattern are flagged too (harmless:
 * the exact parse gives the same tree for them). */
static PyObject *
native_big_int_literal(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    PyObject *encoded = NULL;  /* str: its UTF-8 (lone surrogates as surrogatepass bytes) */
    if (PyUnicode_Check(arg)) {
        encoded = PyUnicode_AsEncodedString(arg, "utf-8", "surrogatepass");
        if (encoded == NULL)
            return NULL;
        arg = encoded;
    }
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        Py_XDECREF(encoded);
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)view.buf;
    Py_ssize_t n = view.len, i = 18;
    int found = 0;
#define DIGIT(c) ((c) >= '0' && (c) <= '9')
    /* a run of 19 digits covers one of the positions 18, 37, 56...: look there only, then widen
     * the run to its ends and check what precedes it */
    while (i < n && !found) {
        if (!DIGIT(p[i])) {
            i += 19;
            continue;
        }
        Py_ssize_t s = i, e = i;
        while (s > 0 && DIGIT(p[s - 1]))
            s--;
        while (e < n && DIGIT(p[e]))
            e++;
        if (e - s >= 19) {
            Py_ssize_t b = s;
            if (b > 0 && p[b - 1] == '-')
                b--;
            while (b > 0 && (p[b - 1] == ' ' || p[b - 1] == '\t' || p[b - 1] == '\r' || p[b - 1] == '\n'))
                b--;
            found = b == 0 || p[b - 1] == '[' || p[b - 1] == ':' || p[b - 1] == ',';
        }
        i = e + 19;
    }
#undef DIGIT
    PyBuffer_Release(&view);
    Py_XDECREF(encoded);
    return PyBool_FromLong(found);
}

/* over_limits(values: list, max_bytes: int, max_depth: int) -> list[int]: the indexes of the
 * values (bytes; None is skipped) longer than max_bytes, or whose JSON text nests '{' / '[' deeper
 * than max_depth outside strings (a top-level object is depth 1). One pass per value: strings are
 * skipped with memchr to the next quote (a quote after an odd run of backslashes is escaped). For
 * valid JSON the depth is the parsed tree's; for any text it is at least that, so the flagged
 * values are a superset of those the reference path (CompiledRoute.process) holds over a limit:
 * the batch path hands exactly these to it (proxy/policy/compiler.py, protect_batch). */
static int
json_deeper(const unsigned char *p, Py_ssize_t n, long limit)
{
    long depth = 0, opening = 0;
    const unsigned char *end = p + n;
    /* fewer opening brackets than the limit cannot nest deeper: count them first, 8 bytes at a
     * time ('{' = 0x7B and '[' = 0x5B differ in bit 0x20 only: OR it in, XOR with 0x7B, count
     * the zero bytes exactly with the carry-free test of Hacker's Delight, 6-1) */
    Py_ssize_t i = 0;
    const uint64_t lo7 = 0x7F7F7F7F7F7F7F7FULL, bit5 = 0x2020202020202020ULL, brace = 0x7B7B7B7B7B7B7B7BULL;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        uint64_t y = (w | bit5) ^ brace;
        uint64_t t = ~(((y & lo7) + lo7) | y | lo7);
        opening += __builtin_popcountll(t);
    }
    for (; i < n; i++)
        opening += (p[i] | 0x20) == '{';
    if (opening <= limit)
        return 0;
    while (p < end) {
        unsigned char c = *p++;
        if (c == '"') {
            for (;;) {
                const unsigned char *q = memchr(p, '"', (size_t)(end - p));
                if (q == NULL)
                    return 0;  /* unterminated string: invalid JSON, the parser says so */
                const unsigned char *b = q;
                while (b > p && b[-1] == '\\')
                    b--;
                p = q + 1;
                if (((q - b) & 1) == 0)
                    break;
            }
        } else if (c == '{' || c == '[') {
            if (++depth > limit)
                return 1;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return 0;
}

static PyObject *
native_over_limits(PyObject *self, PyObject *args)
{
    PyObject *values;
    Py_ssize_t max_bytes;
    long max_depth;
    if (!PyArg_ParseTuple(args, "O!nl:over_limits", &PyList_Type, &values, &max_bytes, &max_depth))
        return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(values);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (v == Py_None)
            continue;
        if (!PyBytes_Check(v)) {
            Py_DECREF(out);
            PyErr_SetString(PyExc_TypeError, "over_limits takes a list of bytes or None");
            return NULL;
        }
        Py_ssize_t n = PyBytes_GET_SIZE(v);
        if (n > max_bytes || json_deeper((const unsigned char *)PyBytes_AS_STRING(v), n, max_depth)) {
            PyObject *ix = PyLong_FromSsize_t(i);
            if (ix == NULL || PyList_Append(out, ix) < 0) {
                Py_XDECREF(ix);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(ix);
        }
    }
    return out;
}

/* ---- JsonPlan: a route's rules over raw JSON bytes (issue 13; the C API of dpp_native.h) -----
 * One pass over the value: a recursive-descent parser that validates the JSON text and writes
 * the output as it goes, so that a record that reaches the sink costs no Python object. The output
 * is exactly orjson.dumps() of what the reference path (CompiledRoute.process) makes of the
 * record: compact (whitespace between tokens dropped), members in their order, a dropped member
 * left out, a transformed string written with orjson's escaping (\" \\ \b \t \n \f \r, \u00xx in
 * lower-case hex for the other control characters, everything else as raw UTF-8). A token is
 * copied verbatim only in orjson's canonical form; anything else is a hand-back (DPP_HANDBACK:
 * the caller gives the record to Python, which dead-letters it or does it the slow way):
 *   - invalid JSON, trailing bytes, a top-level non-object, nesting deeper than max_depth, a
 *     value longer than max_bytes, an object with two members of one key, more than
 *     JP_MAX_MEMBERS members in one object;
 *   - strings: raw control bytes, invalid UTF-8 (overlongs, surrogates, > U+10FFFF), an escape
 *     orjson would not write (\/, \u of a character that is not a control character, \u000a...);
 *   - numbers: an exponent, an integer of more than 18 digits or "-0", a fraction that is not
 *     Python's repr of its double (orjson writes those digits in plain notation; repr's plain
 *     range 1e-4 <= |x| < 1e16 is inside orjson's);
 *   - rules, unless a block condition holds (then the record is blocked, as the reference path
 *     decides blocks first): a string transform on a value not a string (null passes for
 *     the string transforms, as their closures return None), pseudonymize or FF1 on non-ASCII text,
 *     FF1 on a value its closure refuses (a variant of an alphabet character, outside the domain), a
 *     non-object on a rule's parent path (the reference path's unexpected-shape dead letter);
 *     a rule that missed while the record has a top-level key spelled as its dotted path (the
 *     route's warning);
 *   - block conditions: a float at the condition's path (int/float equality is numeric).
 * Paths are a trie of object keys (node 0 the record) built by proxy/policy/jsonplan.py, keys in
 * their orjson-escaped form: with canonical tokens only, raw byte equality is key equality. The
 * builder builds no plan for a route with anything else (module doc there), and none where
 * rule paths overlap (one value, one rule: no composition here). */
#include "dpp_native.h"
#include <time.h>

#define JP_MAX_MEMBERS 4096
#define JH DPP_HANDBACK

typedef struct {
    Py_ssize_t nchild;
    const unsigned char **ckey;   /* child keys (escaped form, no quotes), into the spec's bytes */
    Py_ssize_t *cklen;
    Py_ssize_t *cnode;
    Py_ssize_t rule;              /* index into JsonPlan.rules, -1: none ends here */
    int strict;                   /* a rule's path goes through: a non-object here is a hand-back */
    Py_ssize_t nwant;             /* block conditions ending here: (block, wanted token) pairs */
    Py_ssize_t *wblock;
    const unsigned char **want;   /* orjson.dumps(wanted value) */
    Py_ssize_t *wlen;
} JNode;

typedef struct {
    PyObject_HEAD
    Py_ssize_t nrules, nblocks, nnodes, nr, ndotted;
    Rule *rules;                  /* the plan's rules (alternation paths: one rule per path) */
    JNode *nodes;
    Py_ssize_t *dotted_rule;      /* rule counter index of each dotted literal */
    const unsigned char **dotted; /* top-level keys that mean "the route's dotted-key warning" */
    Py_ssize_t *dotted_len;
    Py_ssize_t max_depth, max_bytes;
    double budget;                /* limits.time_budget_ms in seconds */
    double bounds[32];            /* latency bucket upper bounds (seconds) */
    Py_ssize_t nbounds;
    PyObject *keep;               /* (nodes, dotted) of the spec: own the bytes the nodes point into */
    PyObject *block_out;          /* tuple: the Outcome of each block condition */
    PyObject *dl_time;            /* the time-budget dead-letter Outcome */
    int wiped;
    dpp_buf buf, scratch;
    int32_t *counts;              /* matches of the record being rewritten (nrules entries) */
} JsonPlan;

typedef struct {
    const unsigned char *p, *end;
    JsonPlan *jp;
    dpp_buf *out, *tmp;
    int32_t *matches;
    unsigned char *hits, *dotted_seen;
    Py_ssize_t depth;
    int defer;  /* a rule cannot be done here: a hand-back, unless a block condition holds */
} JCtx;

static inline int
put(dpp_buf *b, const void *s, size_t n)
{
    if (!dpp_buf_reserve(b, n))
        return 0;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 1;
}

static inline void
jws(JCtx *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
        c->p++;
}

static inline int
lhex(unsigned char x)  /* orjson's hex digits are lower case */
{
    return x >= '0' && x <= '9' ? x - '0' : x >= 'a' && x <= 'f' ? x - 'a' + 10 : -1;
}

/* c->p at '"': validate a string token (canonical escapes, UTF-8); c->p after its closing quote */
static int
jstring(JCtx *c)
{
    const unsigned char *p = c->p + 1, *e = c->end;
    while (p < e) {
        unsigned char ch = *p;
        if (ch == '"') {
            c->p = p + 1;
            return 0;
        }
        if (ch < 0x80) {
            if (ch < 0x20)
                return JH;
            if (ch == '\\') {
                if (p + 1 >= e)
                    return JH;
                unsigned char x = p[1];
                if (x == '"' || x == '\\' || x == 'n' || x == 'r' || x == 't' || x == 'b' || x == 'f') {
                    p += 2;
                    continue;
                }
                if (x == 'u' && e - p >= 6 && p[2] == '0' && p[3] == '0' && (p[4] == '0' || p[4] == '1')
                    && lhex(p[5]) >= 0) {
                    int v = (p[4] - '0') * 16 + lhex(p[5]);
                    if (v == 8 || v == 9 || v == 10 || v == 12 || v == 13)
                        return JH;  /* orjson writes \b \t \n \f \r */
                    p += 6;
                    continue;
                }
                return JH;
            }
            p++;
            continue;
        }
        int n;
        unsigned char lo = 0x80, hi = 0xBF;
        if (ch < 0xC2)
            return JH;  /* continuation byte, or an overlong 2-byte lead */
        else if (ch < 0xE0)
            n = 1;
        else if (ch < 0xF0) {
            n = 2;
            if (ch == 0xE0)
                lo = 0xA0;  /* overlong */
            else if (ch == 0xED)
                hi = 0x9F;  /* surrogates */
        }
        else if (ch < 0xF5) {
            n = 3;
            if (ch == 0xF0)
                lo = 0x90;  /* overlong */
            else if (ch == 0xF4)
                hi = 0x8F;  /* > U+10FFFF */
        }
        else
            return JH;
        if (e - p <= n || p[1] < lo || p[1] > hi)
            return JH;
        for (int k = 2; k <= n; k++)
            if ((p[k] & 0xC0) != 0x80)
                return JH;
        p += n + 1;
    }
    return JH;
}

/* the text of a validated string token s[0..n) (inside the quotes), unescaped, into c->tmp */
static int
junescape(JCtx *c, const unsigned char *s, Py_ssize_t n)
{
    dpp_buf *t = c->tmp;
    t->len = 0;
    if (!dpp_buf_reserve(t, (size_t)n + 1))
        return -1;
    unsigned char *d = t->data;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char ch = s[i];
        if (ch != '\\') {
            *d++ = ch;
            continue;
        }
        unsigned char x = s[++i];
        switch (x) {
        case 'n': *d++ = '\n'; break;
        case 'r': *d++ = '\r'; break;
        case 't': *d++ = '\t'; break;
        case 'b': *d++ = '\b'; break;
        case 'f': *d++ = '\f'; break;
        case 'u': *d++ = (unsigned char)((s[i + 3] - '0') * 16 + lhex(s[i + 4])); i += 4; break;
        default: *d++ = x;  /* " \ */
        }
    }
    t->len = (size_t)(d - t->data);
    return 0;
}

/* s[0..n) (UTF-8 text) as a JSON string token with orjson's escaping */
static int
put_escaped(dpp_buf *b, const unsigned char *s, size_t n)
{
    static const char *shortesc[32] = {
        [8] = "\\b", [9] = "\\t", [10] = "\\n", [12] = "\\f", [13] = "\\r"};
    if (!dpp_buf_reserve(b, n * 6 + 2))
        return 0;
    unsigned char *d = b->data + b->len;
    *d++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = s[i];
        if (ch == '"' || ch == '\\') {
            *d++ = '\\';
            *d++ = ch;
        }
        else if (ch < 0x20) {
            if (shortesc[ch]) {
                *d++ = '\\';
                *d++ = (unsigned char)shortesc[ch][1];
            }
            else {
                memcpy(d, "\\u00", 4);
                d[4] = (unsigned char)HEX[ch >> 4];
                d[5] = (unsigned char)HEX[ch & 15];
                d += 6;
            }
        }
        else
            *d++ = ch;
    }
    *d++ = '"';
    b->len = (size_t)(d - b->data);
    return 1;
}

/* c->p at a number: validate; 0 when canonical (as orjson writes it), JH otherwise */
static int
jnumber(JCtx *c)
{
    const unsigned char *s = c->p, *p = s, *e = c->end;
    if (p < e && *p == '-')
        p++;
    if (p >= e || *p < '0' || *p > '9')
        return JH;
    const unsigned char *d0 = p;
    if (*p == '0')
        p++;
    else
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    Py_ssize_t nint = p - d0;
    int frac = 0;
    if (p < e && *p == '.') {
        frac = 1;
        p++;
        const unsigned char *f0 = p;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
        if (p == f0)
            return JH;
    }
    if (p < e && (*p == 'e' || *p == 'E'))
        return JH;
    if (p < e && *p >= '0' && *p <= '9')
        return JH;  /* a leading zero: invalid */
    c->p = p;
    if (!frac)
        return (nint > 18 || (s[0] == '-' && s[1] == '0')) ? JH : 0;
    char tok[48];
    if (p - s >= (Py_ssize_t)sizeof(tok))
        return JH;
    memcpy(tok, s, (size_t)(p - s));
    tok[p - s] = 0;
    double v = PyOS_string_to_double(tok, NULL, NULL);
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return JH;
    }
    char *r = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);  /* repr() */
    if (r == NULL) {
        PyErr_Clear();
        return JH;
    }
    int same = strcmp(r, tok) == 0;
    PyMem_Free(r);
    return same ? 0 : JH;
}

static int jvalue(JCtx *c, Py_ssize_t node, int write);

/* the block conditions ending at node n, on the input token tok[0..len) (a scalar) */
static int
jblocks(JCtx *c, const JNode *n, const unsigned char *tok, Py_ssize_t len)
{
    if (tok[0] == '-' || (tok[0] >= '0' && tok[0] <= '9'))
        for (Py_ssize_t i = 0; i < len; i++)
            if (tok[i] == '.')
                return JH;  /* a float: compared numerically by the reference path */
    for (Py_ssize_t w = 0; w < n->nwant; w++)
        if (n->wlen[w] == len && memcmp(n->want[w], tok, (size_t)len) == 0)
            c->hits[n->wblock[w]] = 1;
    return 0;
}

static inline int
put_key(JCtx *c, int *count, const unsigned char *k, Py_ssize_t klen)
{
    if (!dpp_buf_reserve(c->out, (size_t)klen + 2))
        return 0;
    if ((*count)++)
        c->out->data[c->out->len++] = ',';
    memcpy(c->out->data + c->out->len, k, (size_t)klen);  /* with its quotes */
    c->out->len += (size_t)klen;
    c->out->data[c->out->len++] = ':';
    return 1;
}

/* a string transform of rule r on the text in c->tmp, written as a string token */
static int
jtransform(JCtx *c, Rule *r)
{
    const unsigned char *s = c->tmp->data;
    size_t n = c->tmp->len;
    if (r->op == OP_FF1 || r->op == OP_TOKEN) {
        if (r->op == OP_FF1 ? r->ff1 == NULL : r->siv == NULL)
            return -2;
        Py_ssize_t plen = r->op == OP_TOKEN ? PyUnicode_GET_LENGTH(r->siv->prefix) : 0;
        Py_ssize_t len = r->op == OP_FF1 ? (Py_ssize_t)n : plen + token_len((Py_ssize_t)n);
        unsigned char stack[512], *d = len <= (Py_ssize_t)sizeof(stack) ? stack : PyMem_Malloc((size_t)len);
        int rc = 0;
        if (d == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        if (r->op == OP_FF1) {
            for (size_t i = 0; i < n && rc == 0; i++)
                if (s[i] >= 0x80)
                    rc = JH;  /* non-ASCII text: the closure's */
            if (rc == 0 && (rc = ff1_text(r->ff1, s, len, d)) == 1)
                rc = JH;
        }
        else {
            memcpy(d, PyUnicode_1BYTE_DATA(r->siv->prefix), (size_t)plen);
            rc = token_text(r->siv, s, (Py_ssize_t)n, d + plen);
        }
        if (rc == 0 && !put_escaped(c->out, d, (size_t)len)) {
            PyErr_NoMemory();
            rc = -1;
        }
        OPENSSL_cleanse(d, (size_t)len);
        if (d != stack)
            PyMem_Free(d);
        return rc;
    }
    if (r->op == OP_PSEUDO) {
        if (r->mac == NULL)
            return -2;
        for (size_t i = 0; i < n; i++)
            if (s[i] >= 0x80)
                return JH;
        char enc[2 * SHA256_DIGEST_LENGTH];
        Py_ssize_t len, plen, k = pseudonym_text(r, (const char *)s, (Py_ssize_t)n, enc);
        const char *pre = PyUnicode_AsUTF8AndSize(r->prefix, &plen);
        if (k < 0 || pre == NULL)
            return -1;
        len = plen + k;
        unsigned char stack[320];
        if (len > (Py_ssize_t)sizeof(stack))
            return JH;
        memcpy(stack, pre, (size_t)plen);
        memcpy(stack + plen, enc, (size_t)k);
        return put_escaped(c->out, stack, (size_t)len) ? 0 : -1;
    }
    /* OP_MASK: mask_str's loop over the code points */
    if (separators == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "proxy._native.set_separators() was not called");
        return -1;
    }
    Py_UCS4 stack[256], *cp = n <= 256 ? stack : PyMem_New(Py_UCS4, n);
    if (cp == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t m = 0, n_al = 0, i;
    for (size_t j = 0; j < n;) {  /* valid UTF-8 (jstring) */
        unsigned char b = s[j];
        Py_UCS4 u;
        if (b < 0x80) {
            u = b;
            j += 1;
        }
        else if (b < 0xE0) {
            u = ((Py_UCS4)(b & 0x1F) << 6) | (s[j + 1] & 0x3F);
            j += 2;
        }
        else if (b < 0xF0) {
            u = ((Py_UCS4)(b & 0x0F) << 12) | ((Py_UCS4)(s[j + 1] & 0x3F) << 6) | (s[j + 2] & 0x3F);
            j += 3;
        }
        else {
            u = ((Py_UCS4)(b & 0x07) << 18) | ((Py_UCS4)(s[j + 1] & 0x3F) << 12)
                | ((Py_UCS4)(s[j + 2] & 0x3F) << 6) | (s[j + 3] & 0x3F);
            j += 4;
        }
        cp[m++] = u;
        if (!is_sep(u))
            n_al++;
    }
    int whole = r->all_chars || (m > 0 && n_al == m);
    Py_ssize_t count = whole ? m : n_al, f, l;
    kept(r->first, r->keep_last, count, &f, &l);
    Py_ssize_t hi = count - l, idx = 0;
    /* the masked text, UTF-8, into c->tmp (its input is in cp now) */
    dpp_buf *t = c->tmp;
    t->len = 0;
    int ok = dpp_buf_reserve(t, (size_t)m * 4 + 1);
    for (i = 0; ok && i < m; i++) {
        Py_UCS4 u = cp[i];
        if (whole || !is_sep(u)) {
            if (idx >= f && idx < hi)
                u = r->mask_char;
            idx++;
        }
        unsigned char *d = t->data + t->len;
        if (u < 0x80)
            *d++ = (unsigned char)u;
        else if (u < 0x800) {
            *d++ = (unsigned char)(0xC0 | (u >> 6));
            *d++ = (unsigned char)(0x80 | (u & 0x3F));
        }
        else if (u < 0x10000) {
            *d++ = (unsigned char)(0xE0 | (u >> 12));
            *d++ = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
            *d++ = (unsigned char)(0x80 | (u & 0x3F));
        }
        else {
            *d++ = (unsigned char)(0xF0 | (u >> 18));
            *d++ = (unsigned char)(0x80 | ((u >> 12) & 0x3F));
            *d++ = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
            *d++ = (unsigned char)(0x80 | (u & 0x3F));
        }
        t->len = (size_t)(d - t->data);
    }
    if (cp != stack)
        PyMem_Free(cp);
    if (!ok || (r->mask_char >= 0xD800 && r->mask_char < 0xE000)) {
        if (ok)
            return JH;  /* a surrogate mask character: not UTF-8 */
        PyErr_NoMemory();
        return -1;
    }
    return put_escaped(c->out, t->data, t->len) ? 0 : -1;
}

/* one member of an object whose key leads to trie node `node` (c->p at its value) */
static int
jmember(JCtx *c, Py_ssize_t node, const unsigned char *key, Py_ssize_t klen, int *count)
{
    JNode *n = &c->jp->nodes[node];
    const unsigned char *v = c->p;
    int rc;
    if (n->rule < 0) {  /* a block condition's value, or a step on a rule's or condition's path */
        unsigned char t = *v;
        if (t != '{' && t != 'n' && n->strict)
            c->defer = 1;  /* unexpected-shape dead letter (arrays, scalars on a rule's path) */
        if (!put_key(c, count, key, klen))
            return -1;
        if ((rc = jvalue(c, t == '{' ? node : -1, 1)) != 0)
            return rc;
        if (n->nwant && t != '{' && t != '[')
            return jblocks(c, n, v, c->p - v);
        return 0;
    }
    Rule *r = &c->jp->rules[n->rule];
    c->matches[PyLong_AsSsize_t(r->index)] += 1;
    if (*v == '"' && r->op != OP_DROP && r->op != OP_REDACT) {
        if ((rc = jstring(c)) != 0)
            return rc;
        if (n->nwant && (rc = jblocks(c, n, v, c->p - v)) != 0)
            return rc;
        if (junescape(c, v + 1, c->p - v - 2) < 0 || !put_key(c, count, key, klen))
            return -1;
        rc = jtransform(c, r);
        if (rc == -2) {
            PyErr_SetString(PyExc_RuntimeError, "proxy._native.JsonPlan: called after wipe()");
            return -1;
        }
        if (rc == JH) {
            c->defer = 1;
            rc = 0;
        }
        return rc;
    }
    if (r->op == OP_DROP || r->op == OP_REDACT || *v == 'n') {  /* a string transform: null stays null */
        if ((rc = jvalue(c, -1, 0)) != 0)
            return rc;
        if (n->nwant && *v != '{' && *v != '[' && (rc = jblocks(c, n, v, c->p - v)) != 0)
            return rc;
        if (r->op == OP_DROP)
            return 0;
        if (!put_key(c, count, key, klen))
            return -1;
        if (r->op == OP_REDACT)
            return put(c->out, PyBytes_AS_STRING(r->value), (size_t)PyBytes_GET_SIZE(r->value)) ? 0 : -1;
        return put(c->out, "null", 4) ? 0 : -1;
    }
    c->defer = 1;  /* another type for a string transform: its closure's (JSON text, or a dead letter) */
    if ((rc = jvalue(c, -1, 0)) != 0)
        return rc;
    return n->nwant && *v != '{' && *v != '[' ? jblocks(c, n, v, c->p - v) : 0;
}

#define JCLOSED 3  /* jnext: the container ended */

/* after a member or element: 0 at a ',' (skipped), JCLOSED at `close` (skipped), JH otherwise */
static inline int
jnext(JCtx *c, unsigned char close)
{
    jws(c);
    if (c->p < c->end && (*c->p == ',' || *c->p == close))
        return *c->p++ == ',' ? 0 : JCLOSED;
    return JH;
}

static int
jobject(JCtx *c, Py_ssize_t node, int write)
{
    if (++c->depth > c->jp->max_depth)
        return JH;
    c->p++;
    if (write && !put(c->out, "{", 1))
        return -1;
    const unsigned char *stack_k[32];
    Py_ssize_t stack_l[32], cap = 32, nk = 0;
    const unsigned char **ks = stack_k;
    Py_ssize_t *kl = stack_l;
    int count = 0, rc = 0;
    JNode *nd = node >= 0 ? &c->jp->nodes[node] : NULL;
    jws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        goto done;
    }
    for (;;) {
        jws(c);
        if (c->p >= c->end || *c->p != '"') {
            rc = JH;
            goto done;
        }
        const unsigned char *k = c->p;
        if ((rc = jstring(c)) != 0)
            goto done;
        Py_ssize_t klen = c->p - k;  /* with the quotes */
        for (Py_ssize_t i = 0; i < nk; i++)
            if (kl[i] == klen && memcmp(ks[i], k, (size_t)klen) == 0) {
                rc = JH;  /* a duplicate key: orjson keeps the first position, the last value */
                goto done;
            }
        if (nk == cap) {
            if (cap >= JP_MAX_MEMBERS) {
                rc = JH;
                goto done;
            }
            const unsigned char **nks = PyMem_Malloc(sizeof(*ks) * (size_t)cap * 2);
            Py_ssize_t *nkl = PyMem_Malloc(sizeof(*kl) * (size_t)cap * 2);
            if (nks == NULL || nkl == NULL) {
                PyMem_Free(nks);
                PyMem_Free(nkl);
                PyErr_NoMemory();
                rc = -1;
                goto done;
            }
            memcpy(nks, ks, sizeof(*ks) * (size_t)nk);
            memcpy(nkl, kl, sizeof(*kl) * (size_t)nk);
            if (ks != stack_k) {
                PyMem_Free(ks);
                PyMem_Free(kl);
            }
            ks = nks;
            kl = nkl;
            cap *= 2;
        }
        ks[nk] = k;
        kl[nk++] = klen;
        jws(c);
        if (c->p >= c->end || *c->p != ':') {
            rc = JH;
            goto done;
        }
        c->p++;
        jws(c);
        if (c->p >= c->end) {
            rc = JH;
            goto done;
        }
        Py_ssize_t child = -1;
        if (nd != NULL) {
            for (Py_ssize_t i = 0; i < nd->nchild; i++)
                if (nd->cklen[i] == klen - 2 && memcmp(nd->ckey[i], k + 1, (size_t)klen - 2) == 0) {
                    child = nd->cnode[i];
                    break;
                }
            if (node == 0)
                for (Py_ssize_t i = 0; i < c->jp->ndotted; i++)
                    if (c->jp->dotted_len[i] == klen - 2 && memcmp(c->jp->dotted[i], k + 1, (size_t)klen - 2) == 0)
                        c->dotted_seen[i] = 1;
        }
        if (child >= 0)
            rc = jmember(c, child, k, klen, &count);
        else if (write && !put_key(c, &count, k, klen))
            rc = -1;
        else
            rc = jvalue(c, -1, write);
        if (rc != 0 || (rc = jnext(c, '}')) != 0) {
            if (rc == JCLOSED)
                rc = 0;
            goto done;
        }
    }
done:
    if (ks != stack_k) {
        PyMem_Free(ks);
        PyMem_Free(kl);
    }
    c->depth--;
    if (rc == 0 && write && !put(c->out, "}", 1))
        rc = -1;
    return rc;
}

static int
jarray(JCtx *c, int write)
{
    if (++c->depth > c->jp->max_depth)
        return JH;
    c->p++;
    if (write && !put(c->out, "[", 1))
        return -1;
    jws(c);
    int rc;
    if (c->p < c->end && *c->p == ']') {
        c->p++;
    }
    else {
        for (int first = 1;; first = 0) {
            if (!first && write && !put(c->out, ",", 1))
                return -1;
            if ((rc = jvalue(c, -1, write)) != 0 || (rc = jnext(c, ']')) != 0) {
                if (rc != JCLOSED)
                    return rc;
                break;
            }
        }
    }
    c->depth--;
    return write && !put(c->out, "]", 1) ? -1 : 0;
}

/* one value at c->p (after whitespace); node: its trie node when it is an object, else -1;
 * write: copy it to the output */
static int
jvalue(JCtx *c, Py_ssize_t node, int write)
{
    jws(c);
    if (c->p >= c->end)
        return JH;
    const unsigned char *s = c->p;
    int rc;
    switch (*s) {
    case '{':
        return jobject(c, node, write);
    case '[':
        return jarray(c, write);
    case '"':
        rc = jstring(c);
        break;
    case 't':
    case 'f':
    case 'n': {
        const char *lit = *s == 't' ? "true" : *s == 'f' ? "false" : "null";
        size_t n = strlen(lit);
        if ((size_t)(c->end - s) < n || memcmp(s, lit, n) != 0)
            return JH;
        c->p += n;
        rc = 0;
        break;
    }
    default:
        rc = jnumber(c);
    }
    if (rc == 0 && write && !put(c->out, s, (size_t)(c->p - s)))
        return -1;
    return rc;
}

/* dpp_api.rewrite (dpp_native.h) */
static int
jp_rewrite(PyObject *obj, const unsigned char *in, size_t len, dpp_buf *out, int32_t *matches, int *block)
{
    JsonPlan *jp = (JsonPlan *)obj;
    out->len = 0;
    if (jp->wiped)  /* a replaced policy's plan: every record to Python (whose wiped Plans fail closed) */
        return DPP_HANDBACK;
    if (len > (size_t)jp->max_bytes)
        return DPP_HANDBACK;
    unsigned char flags[256], *hits = flags, *seen;
    Py_ssize_t nflags = jp->nblocks + jp->ndotted;
    if (nflags > (Py_ssize_t)sizeof(flags) && (hits = PyMem_Malloc((size_t)nflags)) == NULL) {
        PyErr_NoMemory();
        return DPP_ERROR;
    }
    memset(hits, 0, (size_t)nflags);
    seen = hits + jp->nblocks;
    memset(jp->counts, 0, sizeof(int32_t) * (size_t)jp->nrules);  /* matches[]: written on DPP_SINK only */
    JCtx c = {in, in + len, jp, out, &jp->scratch, jp->counts, hits, seen, 0, 0};
    int rc;
    jws(&c);
    if (c.p >= c.end || *c.p != '{')
        rc = JH;
    else if ((rc = jobject(&c, 0, 1)) == 0) {
        jws(&c);
        if (c.p != c.end)
            rc = JH;
    }
    if (rc == 0) {
        for (Py_ssize_t b = 0; b < jp->nblocks; b++)
            if (hits[b]) {
                *block = (int)b;
                rc = DPP_BLOCK;
                break;
            }
    }
    if (rc == 0 && c.defer)
        rc = JH;
    if (rc == 0)
        for (Py_ssize_t d = 0; d < jp->ndotted; d++)
            if (seen[d] && jp->counts[jp->dotted_rule[d]] == 0)
                rc = JH;  /* the route's unquoted-dotted-key warning: Python's */
    if (hits != flags)
        PyMem_Free(hits);
    if (rc < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "proxy._native.JsonPlan: internal error");
        return DPP_ERROR;
    }
    if (rc != 0)
        out->len = 0;
    else
        memcpy(matches, jp->counts, sizeof(int32_t) * (size_t)jp->nrules);
    return rc == 0 ? DPP_SINK : rc;
}

static PyTypeObject JsonPlanType;

static int
jp_is_plan(PyObject *obj)
{
    return obj != NULL && Py_IS_TYPE(obj, &JsonPlanType);
}

static Py_ssize_t
jp_n_rules(PyObject *obj)
{
    return ((JsonPlan *)obj)->nrules;
}

static Py_ssize_t
jp_n_blocks(PyObject *obj)
{
    return ((JsonPlan *)obj)->nblocks;
}

static dpp_api the_api = {DPP_API_ABI, jp_is_plan, jp_n_rules, jp_n_blocks, jp_rewrite};

static void
jp_free_nodes(JsonPlan *jp)
{
    for (Py_ssize_t i = 0; i < jp->nnodes; i++) {
        JNode *n = &jp->nodes[i];
        PyMem_Free(n->ckey);
        PyMem_Free(n->cklen);
        PyMem_Free(n->cnode);
        PyMem_Free(n->wblock);
        PyMem_Free(n->want);
        PyMem_Free(n->wlen);
    }
    PyMem_Free(jp->nodes);
    jp->nodes = NULL;
}

static void
JsonPlan_dealloc(JsonPlan *jp)
{
    for (Py_ssize_t k = 0; k < jp->nr; k++)
        rule_clear(&jp->rules[k]);
    PyMem_Free(jp->rules);
    PyMem_Free(jp->counts);
    jp_free_nodes(jp);
    PyMem_Free(jp->dotted_rule);
    PyMem_Free(jp->dotted);
    PyMem_Free(jp->dotted_len);
    free(jp->buf.data);
    if (jp->scratch.data != NULL)
        OPENSSL_cleanse(jp->scratch.data, jp->scratch.cap);  /* held clear text */
    free(jp->scratch.data);
    Py_XDECREF(jp->keep);
    Py_XDECREF(jp->block_out);
    Py_XDECREF(jp->dl_time);
    Py_TYPE(jp)->tp_free((PyObject *)jp);
}

/* a spec pair (index, bytes): lo <= index < hi, at least minlen bytes (pointing into the spec) */
static int
index_bytes(PyObject *pair, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t minlen, Py_ssize_t *ix,
            const unsigned char **p, Py_ssize_t *n)
{
    PyObject *b;
    if (!PyTuple_Check(pair) || !PyArg_ParseTuple(pair, "nO!:pair", ix, &PyBytes_Type, &b))
        return -1;
    *p = (const unsigned char *)PyBytes_AS_STRING(b);
    *n = PyBytes_GET_SIZE(b);
    if (*ix < lo || *ix >= hi || *n < minlen) {
        PyErr_SetString(PyExc_ValueError, "JsonPlan: a node, block or rule index out of range");
        return -1;
    }
    return 0;
}

/* JsonPlan(spec), spec = (n_rules, rules, nodes, dotted, max_depth, max_bytes, budget_s, bounds,
 * block_outcomes, dl_time) built by proxy/policy/jsonplan.py:
 *   rules  list of Plan rule tuples (op, counter index, (), "", None, params); REDACT's params
 *          (orjson.dumps(value),); DROP (op 6) params ()
 *   nodes  list of (children: tuple of (node, key bytes), rule (index into rules or -1),
 *          strict (bool), wanted: tuple of (block index, orjson.dumps(wanted) bytes)); node 0 is
 *          the record
 *   dotted tuple of (counter index, key bytes): top-level keys spelled as a rule's dotted path */
static PyObject *
JsonPlan_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *spec, *rules, *nodes, *dotted, *bounds, *block_out, *dl_time;
    Py_ssize_t nrules, max_depth, max_bytes;
    double budget;
    if (!PyArg_ParseTuple(args, "O!:JsonPlan", &PyTuple_Type, &spec))
        return NULL;
    if (!PyArg_ParseTuple(spec, "nO!O!O!nndO!O!O:spec", &nrules, &PyList_Type, &rules, &PyList_Type, &nodes,
                          &PyTuple_Type, &dotted, &max_depth, &max_bytes, &budget, &PyTuple_Type, &bounds,
                          &PyTuple_Type, &block_out, &dl_time))
        return NULL;
    JsonPlan *jp = (JsonPlan *)type->tp_alloc(type, 0);
    if (jp == NULL)
        return NULL;
    /* the nodes and dotted keys own the bytes the plan points into; the rules' parameters (key
     * material) are not kept: C keyed its own state from them */
    jp->keep = PyTuple_Pack(2, nodes, dotted);
    if (jp->keep == NULL)
        goto fail;
    Py_INCREF(block_out);
    jp->block_out = block_out;
    Py_INCREF(dl_time);
    jp->dl_time = dl_time;
    jp->nrules = nrules;
    jp->nblocks = PyTuple_GET_SIZE(block_out);
    jp->max_depth = max_depth;
    jp->max_bytes = max_bytes;
    jp->budget = budget;
    jp->nbounds = PyTuple_GET_SIZE(bounds);
    if (jp->nbounds > 32) {
        PyErr_SetString(PyExc_ValueError, "JsonPlan: at most 32 latency buckets");
        goto fail;
    }
    for (Py_ssize_t i = 0; i < jp->nbounds; i++)
        if ((jp->bounds[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(bounds, i))) == -1.0 && PyErr_Occurred())
            goto fail;
    Py_ssize_t nr = PyList_GET_SIZE(rules);
    jp->rules = PyMem_Calloc((size_t)(nr ? nr : 1), sizeof(Rule));
    jp->counts = PyMem_Calloc((size_t)nrules + 1, sizeof(int32_t));
    if (jp->rules == NULL || jp->counts == NULL || nrules < 0) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t k = 0; k < nr; k++) {
        int held = 0;
        Rule *r = &jp->rules[k];
        int rc = rule_init(r, PyList_GET_ITEM(rules, k), 1, &held);
        if (held)
            jp->nr = k + 1;
        if (rc < 0)
            goto fail;
        Py_ssize_t ix = PyLong_AsSsize_t(r->index);
        if (ix < 0 || ix >= nrules || r->op == OP_CALL
            || (r->op == OP_REDACT && !PyBytes_Check(r->value))
            || (r->op == OP_PSEUDO && (r->normalize < 0 || r->encoding < 0))) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "JsonPlan: a rule it does not run");
            goto fail;
        }
    }
    Py_ssize_t nn = PyList_GET_SIZE(nodes);
    jp->nodes = PyMem_Calloc((size_t)(nn ? nn : 1), sizeof(JNode));
    if (jp->nodes == NULL || nn < 1) {
        PyErr_SetString(PyExc_ValueError, "JsonPlan: no root node");
        goto fail;
    }
    jp->nnodes = nn;
    for (Py_ssize_t i = 0; i < nn; i++) {
        JNode *n = &jp->nodes[i];
        PyObject *children, *wanted;
        int strict;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(nodes, i), "O!npO!:node", &PyTuple_Type, &children, &n->rule,
                              &strict, &PyTuple_Type, &wanted))
            goto fail;
        n->strict = strict;
        if (n->rule < -1 || n->rule >= nr) {
            PyErr_SetString(PyExc_ValueError, "JsonPlan: bad rule slot");
            goto fail;
        }
        n->nchild = PyTuple_GET_SIZE(children);
        n->nwant = PyTuple_GET_SIZE(wanted);
        n->ckey = PyMem_Calloc((size_t)n->nchild + 1, sizeof(*n->ckey));
        n->cklen = PyMem_Calloc((size_t)n->nchild + 1, sizeof(*n->cklen));
        n->cnode = PyMem_Calloc((size_t)n->nchild + 1, sizeof(*n->cnode));
        n->want = PyMem_Calloc((size_t)n->nwant + 1, sizeof(*n->want));
        n->wlen = PyMem_Calloc((size_t)n->nwant + 1, sizeof(*n->wlen));
        n->wblock = PyMem_Calloc((size_t)n->nwant + 1, sizeof(*n->wblock));
        if (!n->ckey || !n->cklen || !n->cnode || !n->want || !n->wlen || !n->wblock) {
            PyErr_NoMemory();
            goto fail;
        }
        for (Py_ssize_t j = 0; j < n->nchild; j++)
            if (index_bytes(PyTuple_GET_ITEM(children, j), 1, nn, 0, &n->cnode[j], &n->ckey[j], &n->cklen[j]) < 0)
                goto fail;
        for (Py_ssize_t j = 0; j < n->nwant; j++)
            if (index_bytes(PyTuple_GET_ITEM(wanted, j), 0, jp->nblocks, 1, &n->wblock[j], &n->want[j], &n->wlen[j]) < 0)
                goto fail;
    }
    jp->ndotted = PyTuple_GET_SIZE(dotted);
    jp->dotted_rule = PyMem_Calloc((size_t)jp->ndotted + 1, sizeof(Py_ssize_t));
    jp->dotted = PyMem_Calloc((size_t)jp->ndotted + 1, sizeof(*jp->dotted));
    jp->dotted_len = PyMem_Calloc((size_t)jp->ndotted + 1, sizeof(Py_ssize_t));
    if (!jp->dotted_rule || !jp->dotted || !jp->dotted_len) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t j = 0; j < jp->ndotted; j++)
        if (index_bytes(PyTuple_GET_ITEM(dotted, j), 0, nrules, 0, &jp->dotted_rule[j], &jp->dotted[j],
                        &jp->dotted_len[j]) < 0)
            goto fail;
    return (PyObject *)jp;
fail:
    Py_DECREF(jp);
    return NULL;
}

static double
mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* rewrite_batch(values) -> (out, counts): out[j] the protected bytes, the block Outcome, the
 * time-budget dead-letter Outcome, or None (handed back: tombstones, anything not done here);
 * counts = (produced, blocked per block, transforms per rule, unmatched per rule, latency sum,
 * latency buckets, over budget) of the records not handed back, as the batch path counts them */
static PyObject *
JsonPlan_rewrite_batch(JsonPlan *jp, PyObject *values)
{
    if (!PyList_Check(values)) {
        PyErr_SetString(PyExc_TypeError, "rewrite_batch takes a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(values), nb = jp->nblocks, nr = jp->nrules;
    PyObject *out = PyList_New(n), *res = NULL;
    long long *acc = PyMem_Calloc((size_t)(nb + 2 * nr + jp->nbounds + 1) + 1, sizeof(long long));
    int32_t *m = PyMem_Calloc((size_t)nr + 1, sizeof(int32_t));
    long long produced = 0, over = 0, *blocked = acc, *tr = acc + nb, *un = tr + nr, *bk = un + nr;
    double lat = 0.0;
    if (out == NULL || acc == NULL || m == NULL) {
        if (out != NULL)
            PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *v = PyList_GET_ITEM(values, j), *item = Py_None;
        if (PyBytes_Check(v)) {
            double t0 = mono();
            int b = 0, rc = jp_rewrite((PyObject *)jp, (const unsigned char *)PyBytes_AS_STRING(v),
                                       (size_t)PyBytes_GET_SIZE(v), &jp->buf, m, &b);
            if (rc == DPP_ERROR)
                goto done;
            if (rc == DPP_SINK) {
                item = PyBytes_FromStringAndSize((const char *)jp->buf.data, (Py_ssize_t)jp->buf.len);
                if (item == NULL)
                    goto done;
                for (Py_ssize_t i = 0; i < nr; i++) {
                    if (m[i])
                        tr[i] += m[i];
                    else
                        un[i]++;
                }
            }
            else if (rc == DPP_BLOCK) {
                item = PyTuple_GET_ITEM(jp->block_out, b);
                Py_INCREF(item);
                blocked[b]++;
            }
            if (rc != DPP_HANDBACK) {
                double dt = mono() - t0;
                Py_ssize_t k = 0;
                while (k < jp->nbounds && jp->bounds[k] < dt)  /* bisect_left */
                    k++;
                bk[k]++;
                lat += dt;
                if (rc == DPP_SINK && dt > jp->budget) {
                    Py_DECREF(item);
                    item = jp->dl_time;
                    Py_INCREF(item);
                    over++;
                }
                else if (rc == DPP_SINK)
                    produced++;
            }
        }
        if (item == Py_None)
            Py_INCREF(item);
        PyList_SET_ITEM(out, j, item);
    }
    PyObject *lists[4] = {PyList_New(nb), PyList_New(nr), PyList_New(nr), PyList_New(jp->nbounds + 1)};
    long long *src[4] = {blocked, tr, un, bk};
    Py_ssize_t len[4] = {nb, nr, nr, jp->nbounds + 1};
    int ok = 1;
    for (int q = 0; q < 4; q++) {
        if (lists[q] == NULL) {
            ok = 0;
            continue;
        }
        for (Py_ssize_t i = 0; i < len[q]; i++) {
            PyObject *x = PyLong_FromLongLong(src[q][i]);
            if (x == NULL)
                ok = 0;
            else
                PyList_SET_ITEM(lists[q], i, x);
        }
    }
    if (ok)
        res = Py_BuildValue("(O(LOOOdOL))", out, produced, lists[0], lists[1], lists[2], lat, lists[3], over);
    for (int q = 0; q < 4; q++)
        Py_XDECREF(lists[q]);
done:
    Py_XDECREF(out);
    PyMem_Free(acc);
    PyMem_Free(m);
    return res;
}

/* rewrite(value) -> (outcome, out bytes or None, matches list, block): the C API's rewrite, for
 * the tests (outcome: DPP_SINK, DPP_HANDBACK, DPP_BLOCK) */
static PyObject *
JsonPlan_rewrite(JsonPlan *jp, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int32_t *m = PyMem_Calloc((size_t)jp->nrules + 1, sizeof(int32_t));
    dpp_buf out = {NULL, 0, 0};
    int b = -1, rc = m == NULL ? DPP_ERROR : jp_rewrite((PyObject *)jp, view.buf, (size_t)view.len, &out, m, &b);
    PyBuffer_Release(&view);
    PyObject *res = NULL;
    if (m == NULL)
        PyErr_NoMemory();
    else if (rc != DPP_ERROR) {
        PyObject *ms = PyList_New(jp->nrules);
        for (Py_ssize_t i = 0; ms != NULL && i < jp->nrules; i++)
            PyList_SET_ITEM(ms, i, PyLong_FromLong(m[i]));
        if (ms != NULL) {
            if (rc == DPP_SINK)
                res = Py_BuildValue("(iy#Ni)", rc, (const char *)(out.data ? out.data : (unsigned char *)""),
                                    (Py_ssize_t)out.len, ms, b);
            else
                res = Py_BuildValue("(iONi)", rc, Py_None, ms, b);
        }
    }
    free(out.data);
    PyMem_Free(m);
    return res;
}

static PyObject *
JsonPlan_wipe(JsonPlan *jp, PyObject *unused)
{
    for (Py_ssize_t k = 0; k < jp->nr; k++)
        rule_wipe(&jp->rules[k]);
    jp->wiped = 1;
    Py_RETURN_NONE;
}

static PyMethodDef JsonPlan_methods[] = {
    {"rewrite_batch", (PyCFunction)JsonPlan_rewrite_batch, METH_O,
     "rewrite_batch(values) -> (out, counts): the batch path's results where done here, None where handed back"},
    {"rewrite", (PyCFunction)JsonPlan_rewrite, METH_O,
     "rewrite(value) -> (outcome, bytes | None, matches, block): dpp_api.rewrite on one value"},
    {"wipe", (PyCFunction)JsonPlan_wipe, METH_NOARGS,
     "wipe(): cleanse and free the rules' key state now (a replaced policy); every record is then handed back"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject JsonPlanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "proxy._native.JsonPlan",
    .tp_doc = PyDoc_STR("JsonPlan(spec): a route's rules over raw JSON bytes (proxy/policy/jsonplan.py)."),
    .tp_basicsize = sizeof(JsonPlan),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = JsonPlan_new,
    .tp_dealloc = (destructor)JsonPlan_dealloc,
    .tp_methods = JsonPlan_methods,
};

static PyMethodDef methods[] = {
    {"set_separators", native_set_separators, METH_O,
     "set_separators(bitmap): the characters mask leaves in place (proxy.transforms.mask.separator_bitmap())"},
    {"hmac_sha256", native_hmac, METH_VARARGS,
     "hmac_sha256(key, message) -> 32-byte HMAC-SHA256 (RFC 2104), the pseudonym path's construction"},
    {"aes_siv", native_aes_siv, METH_VARARGS,
     "aes_siv(key, ad, plaintext) -> V || C: AES-SIV (RFC 5297) with one associated-data string, the token path's construction"},
    {"mask", native_mask, METH_VARARGS,
     "mask(text, keep_first, keep_last, mask_char, mask_separators) -> str (the mask action on text)"},
    {"big_int_literal", native_big_int_literal, METH_O,
     "big_int_literal(data) -> bool: a run of >= 19 digits where a JSON number may start (proxy.formats.json)"},
    {"over_limits", native_over_limits, METH_VARARGS,
     "over_limits(values, max_bytes, max_depth) -> list[int]: values over a size or JSON nesting limit"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "proxy._native",
    "C accelerator of the route batch path (proxy.policy.fastpath); optional.", -1, methods,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    if (PyType_Ready(&PlanType) < 0 || PyType_Ready(&JsonPlanType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL)
        return NULL;
    /* bumped with every change of the Plan tuples or semantics; proxy/policy/fastpath.py checks it */
    if (PyModule_AddIntConstant(m, "ABI", 6) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddType(m, &PlanType) < 0 || PyModule_AddType(m, &JsonPlanType) < 0
        || PyModule_AddIntConstant(m, "DPP_API_ABI", DPP_API_ABI) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    PyObject *cap = PyCapsule_New(&the_api, DPP_API_CAPSULE, NULL);
    if (cap == NULL || PyModule_AddObject(m, "_C_API", cap) < 0) {
        Py_XDECREF(cap);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
