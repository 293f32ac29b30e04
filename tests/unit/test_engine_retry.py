"""The engine's retry of coordinator errors (``Coordinator load in progress`` right after a broker
start, a coordinator that moved) and its record size bound; no broker needed (the broker cases
are in ``tests/integration/test_oversized_records.py``)."""
from __future__ import annotations

import threading

import pytest
from confluent_kafka import KafkaError, KafkaException

from proxy.stream.engine import _RECORD_OVERHEAD, record_size, retry_coordinator


def failing(codes: list[int], result: str = "done"):
    calls = []

    def fn():
        calls.append(1)
        if len(calls) <= len(codes):
            raise KafkaException(KafkaError(codes[len(calls) - 1]))
        return result
    return fn, calls


@pytest.mark.parametrize("code", [KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE,
                                  KafkaError.NOT_COORDINATOR, KafkaError._TRANSPORT, KafkaError._TIMED_OUT])
def test_coordinator_errors_are_retried_until_success(code):
    fn, calls = failing([code] * 3)
    states: list[bool] = []
    assert retry_coordinator("group coordinator", fn, threading.Event(), states.append,
                             first_delay_s=0.001, max_delay_s=0.002) == "done"
    assert len(calls) == 4 and states == [True, False]


@pytest.mark.parametrize("code", [KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.UNKNOWN_MEMBER_ID,
                                  KafkaError.INVALID_PRODUCER_EPOCH, KafkaError._FENCED])
def test_other_errors_propagate_at_once(code):
    fn, calls = failing([code])
    with pytest.raises(KafkaException):
        retry_coordinator("group coordinator", fn, threading.Event(), first_delay_s=0.001)
    assert len(calls) == 1


def test_a_stop_ends_the_retries_with_the_error():
    fn, calls = failing([KafkaError.COORDINATOR_LOAD_IN_PROGRESS] * 100)
    stop = threading.Event()
    stop.set()
    with pytest.raises(KafkaException):
        retry_coordinator("group coordinator", fn, stop, first_delay_s=0.001)
    assert len(calls) == 1


def test_success_without_retry_reports_no_wait():
    states: list[bool] = []
    assert retry_coordinator("x", lambda: 7, threading.Event(), states.append) == 7 and states == []


@pytest.mark.parametrize("key, value, headers, extra", [
    (None, None, None, 0),
    (b"k", b"v" * 100, None, 101),
    (b"", b"", [("a", b"bc")], 10 + 3),
    (b"key", None, [("dpp-policy", b"p@1"), ("n", None)], 3 + 10 + 10 + 3 + 10 + 1),
])
def test_record_size_bounds_the_v2_batch_of_one_record(key, value, headers, extra):
    assert record_size(key, value, headers) == _RECORD_OVERHEAD + extra
