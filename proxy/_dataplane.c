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
    return PyModule_Create(&moduledef);
}
