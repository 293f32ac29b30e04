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
 *   CALL    (and every value the above do not handle: other types, non-ASCII text, other
 *           modes) the transform's own Python closure, which raises the rule's RecordError.
 *
 * Semantics are those of CompiledRoute._key_step (a missing key or null on the way = the rule
 * did not match: miss(i, record) is called; a non-object on the way = shape_error(i) raises).
 * tests/unit/test_fastpath.py checks this module against the Python transforms and the
 * reference record path on generated values, records and policies.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED  /* SHA256_Init/Update/Final: midstates are plain structs */
#include <Python.h>
#include <openssl/crypto.h>
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

enum { OP_CALL = 0, OP_MASK = 1, OP_PSEUDO = 2, OP_REDACT = 3 };
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

/* proxy.transforms.pseudonymize on an ASCII str (normalize none/string/email, base32/hex) */
static PyObject *
pseudonym_ascii(Rule *r, PyObject *s)
{
    const char *src = (const char *)PyUnicode_1BYTE_DATA(s);
    Py_ssize_t lo = 0, hi = PyUnicode_GET_LENGTH(s);
    unsigned char dig[SHA256_DIGEST_LENGTH];
    if (r->normalize == NORM_EMAIL) {  /* str.strip().lower() on ASCII text */
        while (lo < hi && Py_UNICODE_ISSPACE((Py_UCS1)src[lo]))
            lo++;
        while (hi > lo && Py_UNICODE_ISSPACE((Py_UCS1)src[hi - 1]))
            hi--;
        unsigned char stackmsg[256];
        unsigned char *m = (hi - lo) <= 256 ? stackmsg : PyMem_Malloc(hi - lo);
        if (m == NULL)
            return PyErr_NoMemory();
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
    /* the digest as text, cut to the rule's length (0: all of it): at most 64 characters */
    char enc[2 * SHA256_DIGEST_LENGTH];
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
    PyObject *tail = PyUnicode_FromStringAndSize(enc, n);
    if (tail == NULL)
        return NULL;
    if (PyUnicode_GET_LENGTH(r->prefix) == 0)
        return tail;
    PyObject *out = PyUnicode_Concat(r->prefix, tail);
    Py_DECREF(tail);
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
        if (PyUnicode_CheckExact(v) && PyUnicode_IS_ASCII(v) && r->normalize >= 0 && r->encoding >= 0)
            return pseudonym_ascii(r, v);
        break;
    case OP_REDACT:
        Py_INCREF(r->value);
        return r->value;
    }
    return PyObject_CallOneArg(r->fallback, v);
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

static void
Plan_dealloc(Plan *self)
{
    for (Py_ssize_t k = 0; k < self->n; k++) {
        Rule *r = &self->rules[k];
        Py_XDECREF(r->index);
        Py_XDECREF(r->parents);
        Py_XDECREF(r->last);
        Py_XDECREF(r->fallback);
        if (r->mac != NULL) {
            OPENSSL_cleanse(r->mac, sizeof(Hmac));
            PyMem_Free(r->mac);
        }
        Py_XDECREF(r->prefix);
        Py_XDECREF(r->value);
    }
    PyMem_Free(self->rules);
    Py_XDECREF(self->shape_error);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Plan(rules, shape_error): rules is a list of tuples
 *   (op, index, parents, last, fallback, *params)
 *   MASK:   params = (keep_first, keep_last, mask_char, mask_separators)
 *   PSEUDO: params = (key, message prefix, prefix, normalize, encoding, length)
 *           normalize/encoding -1: the fallback closure for every value
 *   REDACT: params = (value,)
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
        PyObject *item = PyList_GET_ITEM(rules, k), *params = NULL;
        Rule *r = &self->rules[k];
        if (!PyTuple_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "a rule must be a tuple");
            goto fail;
        }
        if (!PyArg_ParseTuple(item, "iO!O!UO|O:rule", &r->op, &PyLong_Type, &r->index, &PyTuple_Type,
                              &r->parents, &r->last, &r->fallback, &params))
            goto fail;
        self->n = k + 1;  /* from here on, dealloc releases this rule's references */
        Py_INCREF(r->index);
        Py_INCREF(r->parents);
        Py_INCREF(r->last);
        Py_INCREF(r->fallback);
        for (Py_ssize_t d = 0; d < PyTuple_GET_SIZE(r->parents); d++) {
            if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(r->parents, d))) {
                PyErr_SetString(PyExc_TypeError, "parents must be str");
                goto fail;
            }
        }
        if (r->op != OP_CALL && (params == NULL || !PyTuple_Check(params))) {
            PyErr_SetString(PyExc_TypeError, "rule parameters must be a tuple");
            goto fail;
        }
        if (r->op == OP_MASK) {
            PyObject *ch;
            if (!PyArg_ParseTuple(params, "nnUp:mask", &r->first, &r->keep_last, &ch, &r->all_chars))
                goto fail;
            if (PyUnicode_GET_LENGTH(ch) != 1) {
                PyErr_SetString(PyExc_ValueError, "mask_char must be one character");
                goto fail;
            }
            r->mask_char = PyUnicode_READ_CHAR(ch, 0);
        }
        else if (r->op == OP_PSEUDO) {
            Py_buffer key, pre;
            PyObject *prefix;
            if (!PyArg_ParseTuple(params, "y*y*Uiin:pseudonymize", &key, &pre, &prefix, &r->normalize,
                                  &r->encoding, &r->length))
                goto fail;
            r->mac = PyMem_Malloc(sizeof(Hmac));
            if (r->mac == NULL) {
                PyBuffer_Release(&key);
                PyBuffer_Release(&pre);
                PyErr_NoMemory();
                goto fail;
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
                goto fail;
            Py_INCREF(value);
            r->value = value;
        }
        else if (r->op != OP_CALL) {
            PyErr_SetString(PyExc_ValueError, "unknown op");
            goto fail;
        }
    }
    self->n = n;
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

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

static PyMethodDef methods[] = {
    {"set_separators", native_set_separators, METH_O,
     "set_separators(bitmap): the characters mask leaves in place (proxy.transforms.mask.separator_bitmap())"},
    {"hmac_sha256", native_hmac, METH_VARARGS,
     "hmac_sha256(key, message) -> 32-byte HMAC-SHA256 (RFC 2104), the pseudonym path's construction"},
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
    if (PyType_Ready(&PlanType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL)
        return NULL;
    /* bumped with every change of the Plan tuples or semantics; proxy/policy/fastpath.py checks it */
    if (PyModule_AddIntConstant(m, "ABI", 4) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&PlanType);
    if (PyModule_AddObject(m, "Plan", (PyObject *)&PlanType) < 0) {
        Py_DECREF(&PlanType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
