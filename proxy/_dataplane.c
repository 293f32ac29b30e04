/*
 * proxy._dataplane: the consume -> produce loop of a route in C, on librdkafka's batch API,
 * with no Python object per record (issue 13, item 1; prototype (C) of docs/performance.md,
 * "Native data plane: C or Rust"). Today it is the pass-through of benchmark row (a'): no rules.
 *
 *   run(bootstrap, source, sink, group, batch_size=1000, timeout_s=0.5, linger_s=0.005,
 *       max_records=0) -> int (records passed through)
 *
 * Same client settings and guarantees as loadtests/passthrough.py (row (a)) and dpp run:
 *   consumer  group `group`, cooperative-sticky, manual commits, fetch.wait.max.ms=100;
 *             a batch is what is already fetched (up to batch_size), or, when nothing is, the
 *             first record within timeout_s and then more within linger_s
 *             (rd_kafka_consume_batch_queue, as confluent-kafka's Consumer.consume);
 *   producer  idempotent, acks=all, linger.ms=5, batch.num.messages=10000; key, value and
 *             headers go to `sink` unchanged (the value and headers without a copy: the consumed
 *             messages live until their delivery reports), partitioned by librdkafka's default
 *             partitioner on the key, as row (a);
 *   after each batch: flush (every delivery report), any failed delivery is an error (nothing
 *             is committed), then a synchronous commit of the batch's next offsets; a commit
 *             refused by a rebalance is not an error (the records are redelivered: at-least-once).
 * On assignment it prints {"msg": "partitions assigned", "partitions": [...]} (the harness's
 * readiness marker). Between batches it runs Python's signal handlers: one that raises ends the
 * loop (the consumer closes, the exception propagates). It returns after max_records records
 * (0: run until a signal handler raises). Errors: RuntimeError("kafka: <librdkafka error name>
 * ..."), never record content. Optional: built by `pip install` where librdkafka's headers are
 * (Debian: librdkafka-dev); proxy/dataplane.py says whether it is there.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    long long failed;          /* delivery reports with an error, since the last batch */
} Deliveries;

typedef struct {
    char msg[256];             /* first error: a librdkafka error name and where it happened */
} Err;

static void
err_set(Err *e, const char *where, rd_kafka_resp_err_t code)
{
    if (e->msg[0] == '\0')
        snprintf(e->msg, sizeof(e->msg), "kafka: %s: %s", where, rd_kafka_err2name(code));
}

static int
cmp_int32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void
print_assigned(const rd_kafka_topic_partition_list_t *parts)
{
    int32_t *ps = malloc(sizeof(int32_t) * (parts->cnt > 0 ? parts->cnt : 1));
    if (ps == NULL)
        return;
    for (int i = 0; i < parts->cnt; i++)
        ps[i] = parts->elems[i].partition;
    qsort(ps, parts->cnt, sizeof(int32_t), cmp_int32);
    fputs("{\"msg\": \"partitions assigned\", \"partitions\": [", stdout);
    for (int i = 0; i < parts->cnt; i++)
        printf(i ? ", %d" : "%d", (int)ps[i]);
    fputs("]}\n", stdout);
    fflush(stdout);
    free(ps);
}

static void
on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t code, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    (void)opaque;
    int coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *e = NULL;
    if (code == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (coop)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        print_assigned(parts);
    } else if (coop) {
        e = rd_kafka_incremental_unassign(rk, parts);
    } else {
        rd_kafka_assign(rk, NULL);
    }
    if (e != NULL)
        rd_kafka_error_destroy(e);
}

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    if (m->err)
        ((Deliveries *)opaque)->failed++;
}

static int
conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr, size_t n)
{
    return rd_kafka_conf_set(conf, name, value, errstr, n) == RD_KAFKA_CONF_OK ? 0 : -1;
}

typedef struct {
    rd_kafka_t *consumer, *producer;
    rd_kafka_queue_t *queue;
    rd_kafka_topic_t *sink;
    const char *source;
    rd_kafka_message_t **msgs;
    int batch_size, timeout_ms, linger_ms;
    int64_t *next;             /* next offset per partition of this batch, -1: none */
    int32_t nparts;
    Deliveries dr;
} Loop;

static int
is_rebalance_commit_error(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS || e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
           e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID || e == RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST ||
           e == RD_KAFKA_RESP_ERR__NO_OFFSET;
}

static int
note_offset(Loop *lp, int32_t partition, int64_t offset)
{
    if (partition >= lp->nparts) {
        int32_t n = partition + 1;
        int64_t *next = realloc(lp->next, sizeof(int64_t) * n);
        if (next == NULL)
            return -1;
        for (int32_t i = lp->nparts; i < n; i++)
            next[i] = -1;
        lp->next = next;
        lp->nparts = n;
    }
    lp->next[partition] = offset + 1;
    return 0;
}

static int
produce(Loop *lp, rd_kafka_message_t *m, Err *err)
{
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_message_detach_headers(m, &hdrs);  /* ours until the producer takes them */
    for (;;) {
        rd_kafka_resp_err_t e;
        if (hdrs != NULL)
            e = rd_kafka_producev(lp->producer, RD_KAFKA_V_RKT(lp->sink), RD_KAFKA_V_VALUE(m->payload, m->len),
                                  RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_HEADERS(hdrs),
                                  RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_END);
        else
            e = rd_kafka_producev(lp->producer, RD_KAFKA_V_RKT(lp->sink), RD_KAFKA_V_VALUE(m->payload, m->len),
                                  RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (hdrs != NULL)
                rd_kafka_headers_destroy(hdrs);
            err_set(err, "produce", e);
            return -1;
        }
        rd_kafka_poll(lp->producer, 50);
    }
}

/* One batch: consume, produce, flush, commit. Returns the records passed through, -1 on error. */
static long long
one_batch(Loop *lp, Err *err)
{
    ssize_t n = rd_kafka_consume_batch_queue(lp->queue, 0, lp->msgs, lp->batch_size);
    if (n == 0) {
        n = rd_kafka_consume_batch_queue(lp->queue, lp->timeout_ms, lp->msgs, 1);
        if (n == 1 && lp->batch_size > 1) {
            ssize_t more = rd_kafka_consume_batch_queue(lp->queue, lp->linger_ms, lp->msgs + 1, lp->batch_size - 1);
            n = more < 0 ? more : n + more;
        }
    }
    if (n < 0) {
        err_set(err, "consume", rd_kafka_last_error());
        return -1;
    }
    if (n == 0)
        return 0;
    long long good = 0;
    int failed = 0;
    for (int32_t i = 0; i < lp->nparts; i++)
        lp->next[i] = -1;
    for (ssize_t i = 0; i < n && !failed; i++) {
        rd_kafka_message_t *m = lp->msgs[i];
        if (m->err) {
            char fatal[64];
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF &&
                rd_kafka_fatal_error(lp->consumer, fatal, sizeof(fatal)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                err_set(err, "consume", m->err);
                failed = 1;
            }
            continue;
        }
        if (produce(lp, m, err) < 0) {
            failed = 1;
            continue;
        }
        if (note_offset(lp, m->partition, m->offset) < 0) {
            err_set(err, "offsets (out of memory)", RD_KAFKA_RESP_ERR__FAIL);
            failed = 1;
            continue;
        }
        good++;
    }
    /* every message produced without a copy must outlive its delivery report: flush first */
    rd_kafka_resp_err_t fe = rd_kafka_flush(lp->producer, 300000);
    for (ssize_t i = 0; i < n; i++)
        rd_kafka_message_destroy(lp->msgs[i]);
    if (failed)
        return -1;
    if (fe != RD_KAFKA_RESP_ERR_NO_ERROR) {
        err_set(err, "flush", fe);
        return -1;
    }
    if (lp->dr.failed > 0) {
        lp->dr.failed = 0;
        err_set(err, "delivery (records not acknowledged)", RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
        return -1;
    }
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(lp->nparts > 0 ? lp->nparts : 1);
    for (int32_t p = 0; p < lp->nparts; p++)
        if (lp->next[p] >= 0)
            rd_kafka_topic_partition_list_add(tpl, lp->source, p)->offset = lp->next[p];
    rd_kafka_resp_err_t ce = tpl->cnt > 0 ? rd_kafka_commit(lp->consumer, tpl, 0) : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(tpl);
    if (ce != RD_KAFKA_RESP_ERR_NO_ERROR && !is_rebalance_commit_error(ce)) {
        err_set(err, "commit", ce);
        return -1;
    }
    return good;
}

static PyObject *
dataplane_run(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"bootstrap", "source", "sink", "group", "batch_size", "timeout_s", "linger_s",
                             "max_records", NULL};
    const char *bootstrap, *source, *sink, *group;
    int batch_size = 1000;
    double timeout_s = 0.5, linger_s = 0.005;
    long long max_records = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ssss|iddL", kwlist, &bootstrap, &source, &sink, &group,
                                     &batch_size, &timeout_s, &linger_s, &max_records))
        return NULL;
    if (batch_size < 1 || batch_size > 1000000 || !(timeout_s >= 0 && timeout_s <= 3600) ||
        !(linger_s >= 0 && linger_s <= 3600)) {
        PyErr_SetString(PyExc_ValueError, "1 <= batch_size <= 1000000, 0 <= timeout_s, linger_s <= 3600");
        return NULL;
    }
    char errstr[512], qmax[32];
    snprintf(qmax, sizeof(qmax), "%d", batch_size * 4 > 100000 ? batch_size * 4 : 100000);
    Loop lp;
    memset(&lp, 0, sizeof(lp));
    lp.source = source;
    lp.batch_size = batch_size;
    lp.timeout_ms = (int)(timeout_s * 1000);
    lp.linger_ms = (int)(linger_s * 1000);
    rd_kafka_conf_t *cc = rd_kafka_conf_new(), *pc = rd_kafka_conf_new();
    const char *cset[][2] = {{"bootstrap.servers", bootstrap}, {"group.id", group}, {"enable.auto.commit", "false"},
                             {"enable.auto.offset.store", "false"}, {"auto.offset.reset", "earliest"},
                             {"partition.assignment.strategy", "cooperative-sticky"},
                             {"session.timeout.ms", "10000"}, {"heartbeat.interval.ms", "1000"},
                             {"fetch.wait.max.ms", "100"}};
    const char *pset[][2] = {{"bootstrap.servers", bootstrap}, {"enable.idempotence", "true"}, {"acks", "all"},
                             {"linger.ms", "5"}, {"batch.num.messages", "10000"},
                             {"queue.buffering.max.messages", qmax}, {"queue.buffering.max.kbytes", "1048576"}};
    int bad = 0;
    for (size_t i = 0; i < sizeof(cset) / sizeof(cset[0]) && !bad; i++)
        bad = conf_set(cc, cset[i][0], cset[i][1], errstr, sizeof(errstr));
    for (size_t i = 0; i < sizeof(pset) / sizeof(pset[0]) && !bad; i++)
        bad = conf_set(pc, pset[i][0], pset[i][1], errstr, sizeof(errstr));
    if (bad) {
        rd_kafka_conf_destroy(cc);
        rd_kafka_conf_destroy(pc);
        PyErr_Format(PyExc_ValueError, "librdkafka configuration: %s", errstr);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(cc, on_rebalance);
    rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
    rd_kafka_conf_set_opaque(pc, &lp.dr);
    lp.consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, errstr, sizeof(errstr));
    if (lp.consumer == NULL) {
        rd_kafka_conf_destroy(cc);
        rd_kafka_conf_destroy(pc);
        PyErr_Format(PyExc_RuntimeError, "kafka: consumer: %s", errstr);
        return NULL;
    }
    lp.producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof(errstr));
    if (lp.producer == NULL) {
        rd_kafka_conf_destroy(pc);
        rd_kafka_destroy(lp.consumer);
        PyErr_Format(PyExc_RuntimeError, "kafka: producer: %s", errstr);
        return NULL;
    }
    rd_kafka_resp_err_t qe = rd_kafka_poll_set_consumer(lp.consumer);
    lp.queue = rd_kafka_queue_get_consumer(lp.consumer);
    if (qe != RD_KAFKA_RESP_ERR_NO_ERROR || lp.queue == NULL) {  /* e.g. an empty group.id: no group */
        if (lp.queue != NULL)
            rd_kafka_queue_destroy(lp.queue);
        rd_kafka_destroy(lp.consumer);
        rd_kafka_destroy(lp.producer);
        PyErr_Format(PyExc_ValueError, "kafka: no consumer group queue (%s): group must be a non-empty group id",
                     rd_kafka_err2name(qe != RD_KAFKA_RESP_ERR_NO_ERROR ? qe : RD_KAFKA_RESP_ERR__INVALID_ARG));
        return NULL;
    }
    lp.sink = rd_kafka_topic_new(lp.producer, sink, NULL);
    lp.msgs = malloc(sizeof(rd_kafka_message_t *) * batch_size);
    Err err;
    err.msg[0] = '\0';
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, source, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(lp.consumer, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (lp.msgs == NULL)
        err_set(&err, "setup (out of memory)", RD_KAFKA_RESP_ERR__FAIL);
    else if (se != RD_KAFKA_RESP_ERR_NO_ERROR)
        err_set(&err, "subscribe", se);
    long long total = 0;
    int interrupted = 0;
    while (err.msg[0] == '\0' && (max_records <= 0 || total < max_records)) {
        if (PyErr_CheckSignals() < 0) {
            interrupted = 1;
            break;
        }
        long long got;
        Py_BEGIN_ALLOW_THREADS
        got = one_batch(&lp, &err);
        Py_END_ALLOW_THREADS
        if (got > 0)
            total += got;
    }
    Py_BEGIN_ALLOW_THREADS
    rd_kafka_consumer_close(lp.consumer);
    rd_kafka_queue_destroy(lp.queue);
    rd_kafka_destroy(lp.consumer);
    rd_kafka_flush(lp.producer, 30000);
    rd_kafka_topic_destroy(lp.sink);
    rd_kafka_destroy(lp.producer);
    Py_END_ALLOW_THREADS
    free(lp.msgs);
    free(lp.next);
    if (interrupted)
        return NULL;  /* the signal handler's exception */
    if (err.msg[0] != '\0') {
        PyErr_SetString(PyExc_RuntimeError, err.msg);
        return NULL;
    }
    return PyLong_FromLongLong(total);
}


/* ===========================================================================================
 * Plane: a route's data plane, driven by Python one batch at a time (see the module doc).
 * =========================================================================================== */
#include <time.h>
#include "dpp_native.h"

#define PLANE_NATIVE   0   /* native result: value in out[i] */
#define PLANE_BLOCKED  1   /* native block: nothing produced */
#define PLANE_HANDBACK 2   /* Python decides: results[i] */
#define PLANE_NBUCKETS 13  /* len(compiler.LATENCY_BUCKETS) + 1 */

static const double plane_buckets[PLANE_NBUCKETS - 1] = {2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4,
                                                         5e-4, 1e-3, 2.5e-3, 1e-2, 0.1};

typedef struct {
    long long failed;
    PyObject *refused;         /* NULL or dict topic -> largest size refused as too large (GIL: no,
                                  filled in C below and converted after flush) */
    char too_large_topic[256];
    long long too_large_size;
    int access_code;           /* first authorization error of a delivery (0: none) */
} PlaneDeliveries;

typedef struct {
    int code;
    char reason[200];
} ClientErr;

typedef struct {
    PyObject_HEAD
    rd_kafka_t *consumer, *producer;
    rd_kafka_queue_t *queue;
    rd_kafka_topic_t *sink;
    char *source, *sink_name;
    PyObject *plan;            /* a JsonPlan or NULL */
    const dpp_api *api;
    Py_ssize_t n_rules, n_blocks;
    double time_budget_s;
    rd_kafka_message_t **msgs;
    int cap, n;                /* batch capacity, records in the current batch */
    int delivered;             /* the current batch was produced and acknowledged (commit_batch) */
    unsigned char *kind;
    dpp_buf *out;              /* per index, reused between batches */
    PyObject **results;        /* per index: Python's list of messages (handed back) */
    int32_t *matches;
    /* counters since the last counters() */
    long long consumed, produced;
    long long *blocked, *transforms, *unmatched;
    long long buckets[PLANE_NBUCKETS];
    double latency_sum;
    /* offsets: the batch's next offset per partition (-1 none), pending ones refused by a rebalance */
    int64_t *next, *first, *pending;
    int32_t nparts;
    int32_t *assigned;         /* 1 when partition p is assigned */
    int32_t nassigned_cap;
    int paused;
    PlaneDeliveries dr;
    ClientErr cerr[8];
    int ncerr;
    volatile int down;         /* _ALL_BROKERS_DOWN reported and not cleared (read by /readyz's thread) */
} Plane;

static double
now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int
plane_grow_parts(Plane *pl, int32_t partition)
{
    if (partition < pl->nparts)
        return 0;
    int32_t n = partition + 1;
    int64_t *a = realloc(pl->next, sizeof(int64_t) * n), *b, *c;
    if (a == NULL)
        return -1;
    pl->next = a;
    if ((b = realloc(pl->first, sizeof(int64_t) * n)) == NULL)
        return -1;
    pl->first = b;
    if ((c = realloc(pl->pending, sizeof(int64_t) * n)) == NULL)
        return -1;
    pl->pending = c;
    int32_t *d = realloc(pl->assigned, sizeof(int32_t) * n);
    if (d == NULL)
        return -1;
    pl->assigned = d;
    for (int32_t i = pl->nparts; i < n; i++) {
        pl->next[i] = pl->first[i] = pl->pending[i] = -1;
        pl->assigned[i] = 0;
    }
    pl->nparts = n;
    return 0;
}

static void
plane_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t code, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    Plane *pl = (Plane *)opaque;
    int coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *e = NULL;
    int assign = code == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    if (assign)
        e = coop ? rd_kafka_incremental_assign(rk, parts) : (rd_kafka_assign(rk, parts), NULL);
    else
        e = coop ? rd_kafka_incremental_unassign(rk, parts) : (rd_kafka_assign(rk, NULL), NULL);
    if (e != NULL)
        rd_kafka_error_destroy(e);
    if (!assign && !coop)
        for (int32_t p = 0; p < pl->nparts; p++)
            pl->assigned[p] = 0, pl->pending[p] = -1;
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (plane_grow_parts(pl, p) < 0)
            continue;
        pl->assigned[p] = assign;
        if (!assign)
            pl->pending[p] = -1;  /* its next owner resumes from the committed offset */
    }
    if (assign && pl->paused)    /* halted: a partition assigned meanwhile stays paused too */
        rd_kafka_pause_partitions(rk, parts);
}

static void
plane_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    PlaneDeliveries *d = &((Plane *)opaque)->dr;
    if (!m->err)
        return;
    d->failed++;
    if (m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || m->err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE) {
        long long size = 97 + (long long)m->len + (long long)m->key_len;
        if (size > d->too_large_size) {
            d->too_large_size = size;
            snprintf(d->too_large_topic, sizeof(d->too_large_topic), "%s", rd_kafka_topic_name(m->rkt));
        }
    }
    if (d->access_code == 0 && (m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                                m->err == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED))
        d->access_code = m->err;
}

static void
plane_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    Plane *pl = (Plane *)opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        pl->down = 1;
    if (pl->ncerr >= (int)(sizeof(pl->cerr) / sizeof(pl->cerr[0])))
        return;
    pl->cerr[pl->ncerr].code = err;
    snprintf(pl->cerr[pl->ncerr].reason, sizeof(pl->cerr[0].reason), "%s", reason ? reason : "");
    pl->ncerr++;
}

static void
plane_on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk; (void)level; (void)fac; (void)buf;  /* client errors reach Python via errors() */
}

/* dict[str, str] -> conf; -1 with ValueError set naming the property (never its value) */
static int
plane_conf(rd_kafka_conf_t *conf, PyObject *d, const char *what)
{
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    char errstr[512];
    if (!PyDict_Check(d)) {
        PyErr_Format(PyExc_TypeError, "%s configuration must be a dict of str to str", what);
        return -1;
    }
    while (PyDict_Next(d, &pos, &k, &v)) {
        const char *ks = PyUnicode_Check(k) ? PyUnicode_AsUTF8(k) : NULL;
        const char *vs = PyUnicode_Check(v) ? PyUnicode_AsUTF8(v) : NULL;
        if (ks == NULL || vs == NULL) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s configuration must be a dict of str to str", what);
            return -1;
        }
        if (rd_kafka_conf_set(conf, ks, vs, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
            if (strstr(errstr, "No such configuration property") != NULL)
                PyErr_Format(PyExc_ValueError, "librdkafka %s does not know the %s property %s",
                             rd_kafka_version_str(), what, ks);
            else
                PyErr_Format(PyExc_ValueError, "librdkafka %s: invalid value for the %s property %s",
                             rd_kafka_version_str(), what, ks);
            return -1;
        }
    }
    return 0;
}

static void plane_free_batch(Plane *pl);

static int
plane_set_plan_obj(Plane *pl, PyObject *plan)
{
    if (plan == Py_None || plan == NULL) {
        Py_CLEAR(pl->plan);
        pl->n_rules = pl->n_blocks = 0;
        return 0;
    }
    if (pl->api == NULL) {
        const dpp_api *api = (const dpp_api *)PyCapsule_Import(DPP_API_CAPSULE, 0);
        if (api == NULL) {
            PyErr_Clear();
            PyErr_SetString(PyExc_RuntimeError, "proxy._native exports no JsonPlan C API (" DPP_API_CAPSULE
                            "): rebuild it, or pass plan=None");
            return -1;
        }
        if (api->abi != DPP_API_ABI) {
            PyErr_Format(PyExc_RuntimeError, "proxy._native has C API %d, proxy._dataplane needs %d: rebuild",
                         api->abi, DPP_API_ABI);
            return -1;
        }
        pl->api = api;
    }
    if (!pl->api->is_plan(plan)) {
        PyErr_SetString(PyExc_TypeError, "plan must be a proxy._native.JsonPlan or None");
        return -1;
    }
    Py_ssize_t nr = pl->api->n_rules(plan), nb = pl->api->n_blocks(plan);
    long long *t = calloc(nr + 1, sizeof(long long)), *u = calloc(nr + 1, sizeof(long long));
    long long *b = calloc(nb + 1, sizeof(long long));
    int32_t *mt = calloc((size_t)(nr + 1) * (pl->cap > 0 ? 1 : 1), sizeof(int32_t));
    if (t == NULL || u == NULL || b == NULL || mt == NULL) {
        free(t); free(u); free(b); free(mt);
        PyErr_NoMemory();
        return -1;
    }
    free(pl->transforms); free(pl->unmatched); free(pl->blocked); free(pl->matches);
    pl->transforms = t, pl->unmatched = u, pl->blocked = b, pl->matches = mt;
    pl->n_rules = nr, pl->n_blocks = nb;
    Py_INCREF(plan);
    Py_XSETREF(pl->plan, plan);
    return 0;
}

static int
plane_init(Plane *pl, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"consumer_conf", "producer_conf", "source", "sink", "plan", "time_budget_s", NULL};
    PyObject *cconf, *pconf, *plan = Py_None;
    const char *source, *sink;
    double budget = 1e9;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O!ss|Od", kwlist, &PyDict_Type, &cconf, &PyDict_Type, &pconf,
                                     &source, &sink, &plan, &budget))
        return -1;
    if (pl->consumer != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Plane already initialized");
        return -1;
    }
    pl->time_budget_s = budget;
    pl->source = strdup(source);
    pl->sink_name = strdup(sink);
    if (pl->source == NULL || pl->sink_name == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (plane_set_plan_obj(pl, plan) < 0)
        return -1;
    rd_kafka_conf_t *cc = rd_kafka_conf_new(), *pc = rd_kafka_conf_new();
    if (plane_conf(cc, cconf, "consumer") < 0 || plane_conf(pc, pconf, "producer") < 0) {
        rd_kafka_conf_destroy(cc);
        rd_kafka_conf_destroy(pc);
        return -1;
    }
    char errstr[512];
    rd_kafka_conf_set_opaque(cc, pl);
    rd_kafka_conf_set_rebalance_cb(cc, plane_on_rebalance);
    rd_kafka_conf_set_error_cb(cc, plane_on_error);
    rd_kafka_conf_set_log_cb(cc, plane_on_log);
    rd_kafka_conf_set_opaque(pc, pl);
    rd_kafka_conf_set_dr_msg_cb(pc, plane_on_delivery);
    rd_kafka_conf_set_error_cb(pc, plane_on_error);
    rd_kafka_conf_set_log_cb(pc, plane_on_log);
    pl->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, errstr, sizeof(errstr));
    if (pl->consumer == NULL) {
        rd_kafka_conf_destroy(cc);
        rd_kafka_conf_destroy(pc);
        PyErr_Format(PyExc_ValueError, "kafka: consumer: %s", errstr);
        return -1;
    }
    pl->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof(errstr));
    if (pl->producer == NULL) {
        rd_kafka_conf_destroy(pc);
        PyErr_Format(PyExc_ValueError, "kafka: producer: %s", errstr);
        return -1;
    }
    rd_kafka_resp_err_t qe = rd_kafka_poll_set_consumer(pl->consumer);
    pl->queue = rd_kafka_queue_get_consumer(pl->consumer);
    if (qe != RD_KAFKA_RESP_ERR_NO_ERROR || pl->queue == NULL) {
        PyErr_SetString(PyExc_ValueError, "kafka: no consumer group queue: group.id must be set");
        return -1;
    }
    /* the sink's topic handle is made at the first produce: a handle asks for the topic's metadata,
     * which makes a broker with auto-creation on create it (the worker first waits for it to exist) */
    return 0;
}

/* subscribe(): join the consumer group on the source topic (assignments arrive in step()) */
static PyObject *
plane_subscribe(Plane *pl, PyObject *unused)
{
    (void)unused;
    if (pl->consumer == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Plane is closed");
        return NULL;
    }
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, pl->source, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(pl->consumer, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (se != RD_KAFKA_RESP_ERR_NO_ERROR) {
        PyErr_Format(PyExc_RuntimeError, "kafka: subscribe: %s", rd_kafka_err2name(se));
        return NULL;
    }
    Py_RETURN_NONE;
}

static int
plane_reserve(Plane *pl, int n)
{
    if (n <= pl->cap)
        return 0;
    rd_kafka_message_t **m = realloc(pl->msgs, sizeof(*m) * n);
    if (m == NULL)
        return -1;
    pl->msgs = m;
    unsigned char *k = realloc(pl->kind, n);
    if (k == NULL)
        return -1;
    pl->kind = k;
    dpp_buf *o = realloc(pl->out, sizeof(dpp_buf) * n);
    if (o == NULL)
        return -1;
    pl->out = o;
    PyObject **r = realloc(pl->results, sizeof(PyObject *) * n);
    if (r == NULL)
        return -1;
    pl->results = r;
    for (int i = pl->cap; i < n; i++) {
        memset(&pl->out[i], 0, sizeof(dpp_buf));
        pl->results[i] = NULL;
    }
    pl->cap = n;
    return 0;
}

static void
plane_free_batch(Plane *pl)
{
    for (int i = 0; i < pl->n; i++) {
        rd_kafka_message_destroy(pl->msgs[i]);
        Py_CLEAR(pl->results[i]);
    }
    pl->n = 0;
    pl->delivered = 0;
}

static PyObject *
bytes_or_none(const void *p, size_t n)
{
    if (p == NULL)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)n);
}

static PyObject *
plane_headers(rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR || h == NULL)
        Py_RETURN_NONE;
    size_t cnt = rd_kafka_header_cnt(h);
    PyObject *list = PyList_New((Py_ssize_t)cnt);
    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < cnt; i++) {
        const char *name;
        const void *val;
        size_t len;
        rd_kafka_header_get_all(h, i, &name, &val, &len);
        PyObject *t = Py_BuildValue("(sN)", name, bytes_or_none(val, len));
        if (t == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    return list;
}

/* what a record's headers add to its size (as engine.record_size counts them) */
static long long
header_bytes(rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    long long n = 0;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR || h == NULL)
        return 0;
    for (size_t i = 0; i < rd_kafka_header_cnt(h); i++) {
        const char *name;
        const void *val;
        size_t len;
        rd_kafka_header_get_all(h, i, &name, &val, &len);
        n += 10 + (long long)strlen(name) + (long long)len;
    }
    return n;
}

/* step(batch_size, timeout_s, linger_s, safe_bytes) -> (records consumed, handbacks, errors) */
static PyObject *
plane_step(Plane *pl, PyObject *args)
{
    int batch_size;
    double timeout_s, linger_s;
    long long safe = -1;
    if (!PyArg_ParseTuple(args, "idd|L", &batch_size, &timeout_s, &linger_s, &safe))
        return NULL;
    if (pl->consumer == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Plane is closed");
        return NULL;
    }
    if (batch_size < 1 || batch_size > 1000000) {
        PyErr_SetString(PyExc_ValueError, "1 <= batch_size <= 1000000");
        return NULL;
    }
    plane_free_batch(pl);
    if (plane_reserve(pl, batch_size) < 0)
        return PyErr_NoMemory();
    ssize_t n;
    int tmo = (int)(timeout_s * 1000), lg = (int)(linger_s * 1000);
    Py_BEGIN_ALLOW_THREADS
    n = rd_kafka_consume_batch_queue(pl->queue, 0, pl->msgs, batch_size);
    if (n == 0) {
        n = rd_kafka_consume_batch_queue(pl->queue, tmo, pl->msgs, 1);
        if (n == 1 && batch_size > 1 && lg > 0) {
            ssize_t more = rd_kafka_consume_batch_queue(pl->queue, lg, pl->msgs + 1, batch_size - 1);
            n = more < 0 ? more : n + more;
        }
    }
    rd_kafka_poll(pl->producer, 0);  /* the producer's error callbacks */
    Py_END_ALLOW_THREADS
    if (n < 0) {
        PyErr_Format(PyExc_RuntimeError, "kafka: consume: %s", rd_kafka_err2name(rd_kafka_last_error()));
        return NULL;
    }
    pl->n = (int)n;
    PyObject *hand = PyList_New(0), *errs = PyList_New(0);
    if (hand == NULL || errs == NULL)
        goto fail;
    for (int32_t p = 0; p < pl->nparts; p++)
        pl->next[p] = pl->first[p] = -1;
    for (int i = 0; i < pl->n; i++) {
        rd_kafka_message_t *m = pl->msgs[i];
        pl->kind[i] = PLANE_BLOCKED;  /* an error message: nothing to produce */
        if (m->err) {
            char fatal[8];
            int is_fatal = m->err == RD_KAFKA_RESP_ERR__FATAL &&
                           rd_kafka_fatal_error(pl->consumer, fatal, sizeof(fatal)) != RD_KAFKA_RESP_ERR_NO_ERROR;
            const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
            PyObject *t = Py_BuildValue("(isiiO)", (int)m->err, topic, (int)m->partition, is_fatal,
                                        m->err == RD_KAFKA_RESP_ERR__FATAL ? Py_True : Py_False);
            if (t == NULL || PyList_Append(errs, t) < 0) {
                Py_XDECREF(t);
                goto fail;
            }
            Py_DECREF(t);
            continue;
        }
        if (plane_grow_parts(pl, m->partition) < 0) {
            PyErr_NoMemory();
            goto fail;
        }
        if (pl->first[m->partition] < 0)
            pl->first[m->partition] = m->offset;
        pl->next[m->partition] = m->offset + 1;
        const char *why = "plan";
        if (pl->plan != NULL && m->payload != NULL) {
            int block = -1;
            double t0 = now_s();
            int rc = pl->api->rewrite(pl->plan, (const unsigned char *)m->payload, m->len, &pl->out[i],
                                      pl->matches, &block);
            double dt = now_s() - t0;
            if (rc == DPP_ERROR)
                goto fail;
            if (rc != DPP_HANDBACK && dt > pl->time_budget_s) {
                why = "time";    /* Python's reference path applies the time budget */
            } else if (rc == DPP_SINK && safe >= 0 &&
                       (long long)(pl->out[i].len + m->key_len) + header_bytes(m) > safe) {
                why = "size";    /* Python applies the sink's limit (dead-letters it) */
            } else if (rc == DPP_SINK || rc == DPP_BLOCK) {
                int b = 0;
                while (b < PLANE_NBUCKETS - 1 && dt > plane_buckets[b])
                    b++;
                pl->buckets[b]++;
                pl->latency_sum += dt;
                pl->consumed++;
                if (rc == DPP_SINK) {
                    pl->kind[i] = PLANE_NATIVE;
                    pl->produced++;
                    for (Py_ssize_t r = 0; r < pl->n_rules; r++) {
                        if (pl->matches[r])
                            pl->transforms[r] += pl->matches[r];
                        else
                            pl->unmatched[r]++;
                    }
                } else if (block >= 0 && block < pl->n_blocks) {
                    pl->blocked[block]++;
                }
                continue;
            }
        }
        pl->kind[i] = PLANE_HANDBACK;
        rd_kafka_timestamp_type_t tst;
        int64_t ts = rd_kafka_message_timestamp(m, &tst);
        PyObject *stamp = tst == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? (Py_INCREF(Py_None), Py_None)
                                                                 : PyLong_FromLongLong(ts);
        PyObject *hdrs = plane_headers(m);
        PyObject *t = (stamp && hdrs) ? Py_BuildValue("(iiLNNONs)", i, (int)m->partition, (long long)m->offset,
                                                      bytes_or_none(m->key, m->key_len),
                                                      bytes_or_none(m->payload, m->len), hdrs, stamp, why)
                                      : NULL;
        Py_XDECREF(hdrs);
        if (t == NULL || PyList_Append(hand, t) < 0) {
            Py_XDECREF(t);
            goto fail;
        }
        Py_DECREF(t);
    }
    return Py_BuildValue("(iNN)", pl->n, hand, errs);
fail:
    Py_XDECREF(hand);
    Py_XDECREF(errs);
    return NULL;
}

static PyObject *
plane_set_result(Plane *pl, PyObject *args)
{
    int i;
    PyObject *msgs;
    if (!PyArg_ParseTuple(args, "iO!", &i, &PyList_Type, &msgs))
        return NULL;
    if (i < 0 || i >= pl->n || pl->kind[i] != PLANE_HANDBACK) {
        PyErr_SetString(PyExc_IndexError, "set_result: not a handed-back record of this batch");
        return NULL;
    }
    Py_INCREF(msgs);
    Py_XSETREF(pl->results[i], msgs);
    Py_RETURN_NONE;
}

/* headers from a list of (str, bytes|None); -1 with an exception set */
static int
add_py_headers(rd_kafka_headers_t *h, PyObject *list)
{
    if (list == Py_None)
        return 0;
    PyObject *seq = PySequence_Fast(list, "headers must be a list of (name, value)");
    if (seq == NULL)
        return -1;
    for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(seq); j++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, j);
        const char *name;
        Py_ssize_t nlen;
        const char *val = NULL;
        Py_ssize_t vlen = 0;
        PyObject *k, *v;
        if (!PyTuple_Check(it) || PyTuple_GET_SIZE(it) != 2) {
            PyErr_SetString(PyExc_TypeError, "a header must be a (name, value) tuple");
            Py_DECREF(seq);
            return -1;
        }
        k = PyTuple_GET_ITEM(it, 0), v = PyTuple_GET_ITEM(it, 1);
        if (PyUnicode_Check(k)) {
            name = PyUnicode_AsUTF8AndSize(k, &nlen);
        } else if (PyBytes_Check(k)) {
            name = PyBytes_AS_STRING(k), nlen = PyBytes_GET_SIZE(k);
        } else {
            name = NULL;
            PyErr_SetString(PyExc_TypeError, "a header name must be str or bytes");
        }
        if (name == NULL) {
            Py_DECREF(seq);
            return -1;
        }
        if (v != Py_None) {
            if (PyBytes_Check(v)) {
                val = PyBytes_AS_STRING(v), vlen = PyBytes_GET_SIZE(v);
            } else if (PyUnicode_Check(v)) {
                val = PyUnicode_AsUTF8AndSize(v, &vlen);
                if (val == NULL) {
                    Py_DECREF(seq);
                    return -1;
                }
            } else {
                PyErr_SetString(PyExc_TypeError, "a header value must be bytes, str or None");
                Py_DECREF(seq);
                return -1;
            }
        }
        rd_kafka_header_add(h, name, nlen, val, vlen);
    }
    Py_DECREF(seq);
    return 0;
}

static int
plane_producev(Plane *pl, const char *topic, const void *key, size_t klen, const void *val, size_t vlen,
               rd_kafka_headers_t *h, rd_kafka_resp_err_t *err)
{
    for (;;) {
        rd_kafka_resp_err_t e;
        if (topic == NULL)
            e = rd_kafka_producev(pl->producer, RD_KAFKA_V_RKT(pl->sink), RD_KAFKA_V_VALUE((void *)val, vlen),
                                  RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_HEADERS(h),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        else
            e = rd_kafka_producev(pl->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE((void *)val, vlen),
                                  RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_HEADERS(h),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_headers_destroy(h);
            *err = e;
            return -1;
        }
        rd_kafka_poll(pl->producer, 50);
    }
}

static PyObject *
plane_commit_offsets(Plane *pl)
{
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(pl->nparts > 0 ? pl->nparts : 1);
    for (int32_t p = 0; p < pl->nparts; p++) {
        int64_t o = pl->next[p] > pl->pending[p] ? pl->next[p] : pl->pending[p];
        if (o >= 0 && (pl->assigned[p] || pl->next[p] >= 0))
            rd_kafka_topic_partition_list_add(tpl, pl->source, p)->offset = o;
    }
    rd_kafka_resp_err_t ce = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (tpl->cnt > 0) {
        Py_BEGIN_ALLOW_THREADS
        ce = rd_kafka_commit(pl->consumer, tpl, 0);
        Py_END_ALLOW_THREADS
    }
    rd_kafka_topic_partition_list_destroy(tpl);
    if (ce == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int32_t p = 0; p < pl->nparts; p++)
            pl->pending[p] = -1;
    } else if (is_rebalance_commit_error(ce)) {
        for (int32_t p = 0; p < pl->nparts; p++) {  /* kept for the next batch (partitions still ours) */
            int64_t o = pl->next[p] > pl->pending[p] ? pl->next[p] : pl->pending[p];
            pl->pending[p] = pl->assigned[p] ? o : -1;
        }
    }
    return PyLong_FromLong((long)ce);
}

/* commit_batch(extra_headers) -> (failed deliveries, commit error code or None, refused) */
static PyObject *
plane_commit_batch(Plane *pl, PyObject *args)
{
    PyObject *extra;
    if (!PyArg_ParseTuple(args, "O", &extra))
        return NULL;
    if (pl->producer == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Plane is closed");
        return NULL;
    }
    if (pl->sink == NULL && (pl->sink = rd_kafka_topic_new(pl->producer, pl->sink_name, NULL)) == NULL) {
        PyErr_Format(PyExc_RuntimeError, "kafka: sink topic: %s", rd_kafka_err2name(rd_kafka_last_error()));
        return NULL;
    }
    rd_kafka_headers_t *ex = rd_kafka_headers_new(4);
    if (add_py_headers(ex, extra) < 0) {
        rd_kafka_headers_destroy(ex);
        return NULL;
    }
    for (int i = 0; i < pl->n; i++)
        if (pl->kind[i] == PLANE_HANDBACK && pl->results[i] == NULL) {
            rd_kafka_headers_destroy(ex);
            PyErr_Format(PyExc_RuntimeError, "commit_batch: record %d was handed back without set_result", i);
            return NULL;
        }
    pl->dr.failed = 0;
    pl->dr.too_large_size = 0;
    pl->dr.too_large_topic[0] = '\0';
    rd_kafka_resp_err_t perr = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; i < pl->n && perr == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
        rd_kafka_message_t *m = pl->msgs[i];
        if (pl->kind[i] == PLANE_NATIVE) {
            rd_kafka_headers_t *src = NULL, *h;
            if (rd_kafka_message_headers(m, &src) == RD_KAFKA_RESP_ERR_NO_ERROR && src != NULL) {
                h = rd_kafka_headers_copy(src);
                for (size_t j = 0; j < rd_kafka_header_cnt(ex); j++) {
                    const char *name;
                    const void *val;
                    size_t len;
                    rd_kafka_header_get_all(ex, j, &name, &val, &len);
                    rd_kafka_header_add(h, name, -1, val, len);
                }
            } else {
                h = rd_kafka_headers_copy(ex);
            }
            plane_producev(pl, NULL, m->key, m->key_len, pl->out[i].data, pl->out[i].len, h, &perr);
        } else if (pl->kind[i] == PLANE_HANDBACK) {
            PyObject *list = pl->results[i];
            for (Py_ssize_t j = 0; j < PyList_GET_SIZE(list) && perr == RD_KAFKA_RESP_ERR_NO_ERROR; j++) {
                PyObject *t = PyList_GET_ITEM(list, j);
                const char *topic;
                PyObject *key, *val, *hl;
                if (!PyArg_ParseTuple(t, "sOOO", &topic, &key, &val, &hl)) {
                    rd_kafka_headers_destroy(ex);
                    return NULL;
                }
                if ((key != Py_None && !PyBytes_Check(key)) || (val != Py_None && !PyBytes_Check(val))) {
                    rd_kafka_headers_destroy(ex);
                    PyErr_SetString(PyExc_TypeError, "a message's key and value must be bytes or None");
                    return NULL;
                }
                rd_kafka_headers_t *h = rd_kafka_headers_new(4);
                if (add_py_headers(h, hl) < 0) {
                    rd_kafka_headers_destroy(h);
                    rd_kafka_headers_destroy(ex);
                    return NULL;
                }
                int to_sink = strcmp(topic, pl->sink_name) == 0;
                plane_producev(pl, to_sink ? NULL : topic, key == Py_None ? NULL : PyBytes_AS_STRING(key),
                               key == Py_None ? 0 : (size_t)PyBytes_GET_SIZE(key),
                               val == Py_None ? NULL : PyBytes_AS_STRING(val),
                               val == Py_None ? 0 : (size_t)PyBytes_GET_SIZE(val), h, &perr);
            }
        }
    }
    rd_kafka_headers_destroy(ex);
    rd_kafka_resp_err_t fe;
    Py_BEGIN_ALLOW_THREADS
    fe = rd_kafka_flush(pl->producer, 300000);
    Py_END_ALLOW_THREADS
    if (perr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        PyErr_Format(PyExc_RuntimeError, "kafka: produce: %s", rd_kafka_err2name(perr));
        return NULL;
    }
    long long failed = pl->dr.failed + (fe != RD_KAFKA_RESP_ERR_NO_ERROR ? 1 : 0);
    PyObject *refused = pl->dr.too_large_size > 0 ? Py_BuildValue("(sL)", pl->dr.too_large_topic,
                                                                  pl->dr.too_large_size)
                                                  : (Py_INCREF(Py_None), Py_None);
    if (refused == NULL)
        return NULL;
    if (failed > 0)
        return Py_BuildValue("(LON)", failed, Py_None, refused);
    pl->delivered = 1;  /* every record acknowledged: a new plan may come before the next step */
    return Py_BuildValue("(LNN)", 0LL, plane_commit_offsets(pl), refused);
}

/* commit() -> error code: the last batch's offsets (and pending ones) again */
static PyObject *
plane_commit(Plane *pl, PyObject *unused)
{
    (void)unused;
    return plane_commit_offsets(pl);
}

static rd_kafka_topic_partition_list_t *
plane_assigned_list(Plane *pl)
{
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(pl->nparts > 0 ? pl->nparts : 1);
    for (int32_t p = 0; p < pl->nparts; p++)
        if (pl->assigned[p])
            rd_kafka_topic_partition_list_add(tpl, pl->source, p);
    return tpl;
}

/* rewind(): seek each partition of the batch back to its first record; the batch is dropped and
 * the native counters since the last counters() are discarded (the records are counted again) */
static PyObject *
plane_rewind(Plane *pl, PyObject *unused)
{
    (void)unused;
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(pl->nparts > 0 ? pl->nparts : 1);
    for (int32_t p = 0; p < pl->nparts; p++)
        if (pl->first[p] >= 0 && pl->assigned[p])
            rd_kafka_topic_partition_list_add(tpl, pl->source, p)->offset = pl->first[p];
    if (tpl->cnt > 0) {
        rd_kafka_error_t *e;
        Py_BEGIN_ALLOW_THREADS
        e = rd_kafka_seek_partitions(pl->consumer, tpl, 5000);
        Py_END_ALLOW_THREADS
        if (e != NULL)
            rd_kafka_error_destroy(e);  /* revoked meanwhile: its new owner resumes from the commit */
    }
    rd_kafka_topic_partition_list_destroy(tpl);
    plane_free_batch(pl);
    for (int32_t p = 0; p < pl->nparts; p++)
        pl->next[p] = pl->first[p] = -1;
    pl->consumed = pl->produced = 0;
    pl->latency_sum = 0;
    memset(pl->buckets, 0, sizeof(pl->buckets));
    for (Py_ssize_t r = 0; r < pl->n_rules; r++)
        pl->transforms[r] = pl->unmatched[r] = 0;
    for (Py_ssize_t b = 0; b < pl->n_blocks; b++)
        pl->blocked[b] = 0;
    Py_RETURN_NONE;
}

static PyObject *
ll_list(const long long *a, Py_ssize_t n)
{
    PyObject *l = PyList_New(n);
    if (l == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        PyList_SET_ITEM(l, i, PyLong_FromLongLong(a[i]));
    return l;
}

/* counters() -> (consumed, produced, blocked[], transforms[], unmatched[], buckets[], latency_sum); drained */
static PyObject *
plane_counters(Plane *pl, PyObject *unused)
{
    (void)unused;
    PyObject *r = Py_BuildValue("(LLNNNNd)", pl->consumed, pl->produced, ll_list(pl->blocked, pl->n_blocks),
                                ll_list(pl->transforms, pl->n_rules), ll_list(pl->unmatched, pl->n_rules),
                                ll_list(pl->buckets, PLANE_NBUCKETS), pl->latency_sum);
    pl->consumed = pl->produced = 0;
    pl->latency_sum = 0;
    memset(pl->buckets, 0, sizeof(pl->buckets));
    for (Py_ssize_t i = 0; i < pl->n_rules; i++)
        pl->transforms[i] = pl->unmatched[i] = 0;
    for (Py_ssize_t b = 0; b < pl->n_blocks; b++)
        pl->blocked[b] = 0;
    return r;
}

static PyObject *
plane_pause_resume(Plane *pl, int pause)
{
    rd_kafka_topic_partition_list_t *tpl = plane_assigned_list(pl);
    pl->paused = pause;
    if (tpl->cnt > 0) {
        if (pause)
            rd_kafka_pause_partitions(pl->consumer, tpl);
        else
            rd_kafka_resume_partitions(pl->consumer, tpl);
    }
    rd_kafka_topic_partition_list_destroy(tpl);
    Py_RETURN_NONE;
}

static PyObject *plane_pause(Plane *pl, PyObject *u) { (void)u; return plane_pause_resume(pl, 1); }
static PyObject *plane_resume(Plane *pl, PyObject *u) { (void)u; return plane_pause_resume(pl, 0); }

/* hold(timeout_s): while halted: serve the group protocol; records fetched anyway are sought
 * back (nothing produced or committed) and their partitions paused */
static PyObject *
plane_hold(Plane *pl, PyObject *args)
{
    double timeout_s;
    if (!PyArg_ParseTuple(args, "d", &timeout_s))
        return NULL;
    PyObject *r = PyObject_CallMethod((PyObject *)pl, "step", "idd", pl->cap > 0 ? pl->cap : 1000, timeout_s, 0.0);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    PyObject *x = plane_rewind(pl, NULL);
    if (x == NULL)
        return NULL;
    Py_DECREF(x);
    return plane_pause_resume(pl, 1);
}

static PyObject *
plane_assignment(Plane *pl, PyObject *unused)
{
    (void)unused;
    PyObject *l = PyList_New(0);
    if (l == NULL)
        return NULL;
    for (int32_t p = 0; p < pl->nparts; p++)
        if (pl->assigned[p]) {
            PyObject *v = PyLong_FromLong(p);
            if (v == NULL || PyList_Append(l, v) < 0) {
                Py_XDECREF(v);
                Py_DECREF(l);
                return NULL;
            }
            Py_DECREF(v);
        }
    return l;
}

/* lag(cached=True) -> [(partition, position, high watermark)] of the assigned partitions (-1: unknown) */
static PyObject *
plane_lag(Plane *pl, PyObject *args)
{
    int cached = 1;
    if (!PyArg_ParseTuple(args, "|p", &cached))
        return NULL;
    rd_kafka_topic_partition_list_t *tpl = plane_assigned_list(pl);
    rd_kafka_position(pl->consumer, tpl);
    PyObject *l = PyList_New(0);
    for (int i = 0; l != NULL && i < tpl->cnt; i++) {
        int64_t lo = -1, hi = -1;
        rd_kafka_resp_err_t e;
        if (cached) {
            e = rd_kafka_get_watermark_offsets(pl->consumer, pl->source, tpl->elems[i].partition, &lo, &hi);
        } else {
            Py_BEGIN_ALLOW_THREADS
            e = rd_kafka_query_watermark_offsets(pl->consumer, pl->source, tpl->elems[i].partition, &lo, &hi, 1000);
            Py_END_ALLOW_THREADS
        }
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            hi = -1;
        PyObject *t = Py_BuildValue("(iLL)", (int)tpl->elems[i].partition, (long long)tpl->elems[i].offset,
                                    (long long)hi);
        if (t == NULL || PyList_Append(l, t) < 0)
            Py_CLEAR(l);
        Py_XDECREF(t);
    }
    rd_kafka_topic_partition_list_destroy(tpl);
    return l;
}

/* errors() -> [(code, reason)]: client-level errors (error callback) since the last call */
static PyObject *
plane_errors(Plane *pl, PyObject *unused)
{
    (void)unused;
    PyObject *l = PyList_New(pl->ncerr);
    if (l == NULL)
        return NULL;
    for (int i = 0; i < pl->ncerr; i++)
        PyList_SET_ITEM(l, i, Py_BuildValue("(is)", pl->cerr[i].code, pl->cerr[i].reason));
    pl->ncerr = 0;
    if (pl->dr.access_code) {
        PyObject *t = Py_BuildValue("(is)", pl->dr.access_code, "delivery refused");
        pl->dr.access_code = 0;
        if (t == NULL || PyList_Append(l, t) < 0) {
            Py_XDECREF(t);
            Py_DECREF(l);
            return NULL;
        }
        Py_DECREF(t);
    }
    return l;
}

/* brokers_down(clear=False) -> whether librdkafka reported every broker down since the last clear */
static PyObject *
plane_brokers_down(Plane *pl, PyObject *args)
{
    int clear = 0;
    if (!PyArg_ParseTuple(args, "|p", &clear))
        return NULL;
    int down = pl->down;
    if (clear)
        pl->down = 0;
    return PyBool_FromLong(down);
}

static PyObject *
plane_set_plan(Plane *pl, PyObject *plan)
{
    if (pl->n > 0 && !pl->delivered) {  /* a batch still to be produced would mix two policies */
        PyErr_SetString(PyExc_RuntimeError, "set_plan between batches only (after commit_batch or rewind)");
        return NULL;
    }
    if (plane_set_plan_obj(pl, plan) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* set_producer(producer_conf): replace the producer (between batches: flushed first), e.g. with a
 * batch.size below a topic limit that was lowered */
static PyObject *
plane_set_producer(Plane *pl, PyObject *conf)
{
    char errstr[512];
    if (pl->producer == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Plane is closed");
        return NULL;
    }
    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    if (plane_conf(pc, conf, "producer") < 0) {
        rd_kafka_conf_destroy(pc);
        return NULL;
    }
    rd_kafka_conf_set_opaque(pc, pl);
    rd_kafka_conf_set_dr_msg_cb(pc, plane_on_delivery);
    rd_kafka_conf_set_error_cb(pc, plane_on_error);
    rd_kafka_conf_set_log_cb(pc, plane_on_log);
    rd_kafka_t *np = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof(errstr));
    if (np == NULL) {
        rd_kafka_conf_destroy(pc);
        PyErr_Format(PyExc_ValueError, "kafka: producer: %s", errstr);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rd_kafka_flush(pl->producer, 30000);
    if (pl->sink != NULL)
        rd_kafka_topic_destroy(pl->sink);
    rd_kafka_destroy(pl->producer);
    Py_END_ALLOW_THREADS
    pl->producer = np;
    pl->sink = NULL;
    Py_RETURN_NONE;
}

static void
plane_close_clients(Plane *pl)
{
    plane_free_batch(pl);
    Py_BEGIN_ALLOW_THREADS
    if (pl->consumer != NULL) {
        rd_kafka_consumer_close(pl->consumer);
        if (pl->queue != NULL)
            rd_kafka_queue_destroy(pl->queue);
        rd_kafka_destroy(pl->consumer);
    }
    if (pl->producer != NULL) {
        rd_kafka_flush(pl->producer, 30000);
        if (pl->sink != NULL)
            rd_kafka_topic_destroy(pl->sink);
        rd_kafka_destroy(pl->producer);
    }
    Py_END_ALLOW_THREADS
    pl->consumer = pl->producer = NULL;
    pl->queue = NULL;
    pl->sink = NULL;
}

static PyObject *
plane_close(Plane *pl, PyObject *unused)
{
    (void)unused;
    plane_close_clients(pl);
    Py_RETURN_NONE;
}

static void
plane_dealloc(Plane *pl)
{
    plane_close_clients(pl);
    for (int i = 0; i < pl->cap; i++)
        free(pl->out[i].data);
    free(pl->msgs); free(pl->kind); free(pl->out); free(pl->results); free(pl->matches);
    free(pl->blocked); free(pl->transforms); free(pl->unmatched);
    free(pl->next); free(pl->first); free(pl->pending); free(pl->assigned);
    free(pl->source); free(pl->sink_name);
    Py_CLEAR(pl->plan);
    Py_TYPE(pl)->tp_free((PyObject *)pl);
}

static PyMethodDef plane_methods[] = {
    {"step", (PyCFunction)plane_step, METH_VARARGS,
     "step(batch_size, timeout_s, linger_s, safe_bytes=-1) -> (n, handbacks, errors)"},
    {"subscribe", (PyCFunction)plane_subscribe, METH_NOARGS, "subscribe(): join the group on the source"},
    {"set_result", (PyCFunction)plane_set_result, METH_VARARGS, "set_result(index, [(topic, key, value, headers)])"},
    {"commit_batch", (PyCFunction)plane_commit_batch, METH_VARARGS,
     "commit_batch(extra_headers) -> (failed, commit_error_code|None, (topic, size)|None)"},
    {"commit", (PyCFunction)plane_commit, METH_NOARGS, "commit() -> error code: the last batch's offsets again"},
    {"rewind", (PyCFunction)plane_rewind, METH_NOARGS, "rewind(): seek back to the batch's first offsets"},
    {"counters", (PyCFunction)plane_counters, METH_NOARGS, "counters() -> native counters, drained"},
    {"pause", (PyCFunction)plane_pause, METH_NOARGS, "pause the assigned partitions"},
    {"resume", (PyCFunction)plane_resume, METH_NOARGS, "resume the assigned partitions"},
    {"hold", (PyCFunction)plane_hold, METH_VARARGS, "hold(timeout_s): serve the group while halted"},
    {"assignment", (PyCFunction)plane_assignment, METH_NOARGS, "assignment() -> [partition]"},
    {"lag", (PyCFunction)plane_lag, METH_VARARGS, "lag(cached=True) -> [(partition, position, high)]"},
    {"errors", (PyCFunction)plane_errors, METH_NOARGS, "errors() -> [(code, reason)] since the last call"},
    {"brokers_down", (PyCFunction)plane_brokers_down, METH_VARARGS,
     "brokers_down(clear=False) -> bool: every broker reported down (safe from another thread)"},
    {"set_plan", (PyCFunction)plane_set_plan, METH_O, "set_plan(plan): a JsonPlan or None (between batches)"},
    {"set_producer", (PyCFunction)plane_set_producer, METH_O, "set_producer(producer_conf): a new producer"},
    {"close", (PyCFunction)plane_close, METH_NOARGS, "close the consumer (leaves the group) and the producer"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PlaneType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "proxy._dataplane.Plane",
    .tp_basicsize = sizeof(Plane),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Plane(consumer_conf, producer_conf, source, sink, plan=None, time_budget_s=1e9): a route's "
              "native data plane, one batch per step()",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)plane_init,
    .tp_dealloc = (destructor)plane_dealloc,
    .tp_methods = plane_methods,
};

static PyObject *
dataplane_version(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyUnicode_FromString(rd_kafka_version_str());
}

static PyMethodDef methods[] = {
    {"run", (PyCFunction)(void (*)(void))dataplane_run, METH_VARARGS | METH_KEYWORDS,
     "run(bootstrap, source, sink, group, batch_size=1000, timeout_s=0.5, linger_s=0.005, max_records=0) -> int: "
     "the native consume -> produce -> flush -> commit loop (no rules yet)"},
    {"librdkafka_version", dataplane_version, METH_NOARGS, "librdkafka_version() -> str: the librdkafka linked in"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "proxy._dataplane",
    "Native data plane: the consume -> produce loop on librdkafka, no Python object per record; optional.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__dataplane(void)
{
    if (PyType_Ready(&PlaneType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL)
        return NULL;
    Py_INCREF(&PlaneType);
    if (PyModule_AddObject(m, "Plane", (PyObject *)&PlaneType) < 0) {
        Py_DECREF(&PlaneType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
