/*
 * proxy/dpp_native.h: the C API between dpp's two native modules (issue 13, "one native core").
 *
 * proxy._native (proxy/_native.c) owns the rules: a JsonPlan is a route's compiled record path
 * over raw JSON bytes (parse, block conditions, rules, serialize: the reference path's bytes,
 * or a hand-back). proxy._dataplane (proxy/_dataplane.c) owns the Kafka loop and calls the
 * rewriter through this table, exported by proxy._native as the capsule DPP_API_CAPSULE
 * (PyCapsule_Import). Both are built by `pip install` from this one header; DPP_API_ABI guards a
 * stale build (the importer checks api->abi and refuses another value).
 *
 * Threading: every function is called with the GIL held (a JsonPlan holds Python objects and
 * may call a transform's Python closure never: what it cannot do natively is a hand-back).
 * Buffers: dpp_buf memory is malloc/realloc/free (not PyMem), so the data plane may free it
 * from librdkafka's delivery-report path.
 */
#ifndef DPP_NATIVE_H
#define DPP_NATIVE_H

#include <Python.h>
#include <stddef.h>
#include <stdint.h>

#define DPP_API_ABI 1
#define DPP_API_CAPSULE "proxy._native._C_API"

/* outcomes of rewrite() */
#define DPP_SINK      0   /* out holds the protected value (what the reference path produces) */
#define DPP_HANDBACK  1   /* not done natively: the caller hands the record to Python unchanged */
#define DPP_BLOCK     2   /* a block condition held: *block is its index (route order) */
#define DPP_ERROR   (-1)  /* out of memory / internal error: a Python exception is set */

typedef struct {
    unsigned char *data;  /* malloc'd; NULL until first use */
    size_t len, cap;
} dpp_buf;

typedef struct {
    int abi;  /* DPP_API_ABI */
    /* 1 when obj is a proxy._native.JsonPlan, else 0 */
    int (*is_plan)(PyObject *obj);
    /* number of rule counters (the route's rules: len(route.rules)) and block conditions */
    Py_ssize_t (*n_rules)(PyObject *plan);
    Py_ssize_t (*n_blocks)(PyObject *plan);
    /* Rewrite one record value (in[0..len), never NULL here: tombstones are the caller's) under
     * plan. out->len is reset to 0 and the result appended (grown with realloc).
     *   DPP_SINK:     out = protected value; matches[r] (n_rules entries, all written) = the
     *                 values rule r transformed in this record (0: unmatched), as
     *                 RouteStats.transforms / .unmatched count them
     *   DPP_BLOCK:    *block = the block condition's index; matches untouched
     *   DPP_HANDBACK: nothing counted; the record goes to the Python batch path as it is
     *                 (also every record of a wiped plan: the route a reload replaced)
     *   DPP_ERROR:    a Python exception is set */
    int (*rewrite)(PyObject *plan, const unsigned char *in, size_t len, dpp_buf *out,
                   int32_t *matches, int *block);
} dpp_api;

/* growth helper shared by both modules: room for `more` bytes at out->data + out->len;
 * 0 on allocation failure */
static inline int
dpp_buf_reserve(dpp_buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more)
        cap *= 2;
    unsigned char *p = realloc(b->data, cap);
    if (p == NULL)
        return 0;
    b->data = p;
    b->cap = cap;
    return 1;
}

#endif
