"""The incident switch's control records (proxy.stream.control), without a broker: the document a
halt or resume writes, and which records the workers' reader accepts (anything else is ignored, so
a route's earlier state stands). The switch on the real broker: tests/integration/test_incident_switch.py."""
from __future__ import annotations

import orjson
import pytest

from proxy.stream.control import control_doc, parse_control


@pytest.mark.parametrize("state", ["halted", "running"])
def test_a_written_document_reads_back(state):
    doc = control_doc("crm-to-analytics", state, "INC-1", "oncall")
    assert set(doc) == {"route", "state", "reason", "actor", "at"} and doc["at"].endswith("+00:00")
    assert parse_control(b"crm-to-analytics", orjson.dumps(doc)) == doc


@pytest.mark.parametrize("state, route", [("paused", "r"), ("", "r"), ("halted", "")])
def test_only_known_states_are_written(state, route):
    with pytest.raises(ValueError):
        control_doc(route, state, "x", "y")


@pytest.mark.parametrize("key, value", [
    (None, b'{"route":"r","state":"halted"}'),          # no key
    (b"r", None),                                       # a tombstone (compaction): no state
    (b"r", b"{"),
    (b"r", b"[]"),
    (b"r", b'{"route":"r","state":"HALTED"}'),
    (b"r", b'{"route":"r"}'),
    (b"r", b'{"route":"other","state":"halted"}'),     # the key must be the route
    (b"r", b'{"route":1,"state":"halted"}'),
])
def test_other_records_are_not_control_documents(key, value):
    assert parse_control(key, value) is None
