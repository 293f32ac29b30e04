"""``dpp run`` lifecycle on the real broker: SIGTERM mid-stream, restart, and start-up failures.

* SIGTERM finishes the in-flight batch, commits and exits 0: after it, everything in the sink is
  covered by the committed offsets and everything the committed offsets cover is in the sink (or
  blocked); a restart then completes the topic without a single duplicate.
* A broken policy: exit 1 and ``FILE:LINE`` of the problem on stderr.
* A missing key variable: exit 1 naming the variable, and no key material printed.
"""
from __future__ import annotations

import os
import re

import orjson
import pytest

from .helpers import (KAFKA_PYTHON_WARNINGS, DppProcess, committed_offsets, drain, generated_records,
                      group_sink_by_key, policy_copy, produce, read_topic, route_setup, run_dpp)  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

N_RECORDS = 20_000
BATCH = 500
STOP_AFTER = 2_000


def test_sigterm_commits_in_flight_batch_and_restart_has_no_duplicates(route_setup):
    rs = route_setup
    t = rs.topics
    records = generated_records(N_RECORDS)
    produce(rs.bootstrap, t.source, ((r["record_id"].encode(), orjson.dumps(r), None) for r in records))
    blocked = {r["record_id"].encode() for r in records if r["consent"]["analytics"] is False}
    extra = ["--batch-size", str(BATCH)]

    with DppProcess(rs.policy, rs.bootstrap, rs.workdir, extra=extra, name="dpp-1") as first:
        first.wait_ready()
        first.wait_metric("dpp_records_consumed_total", lambda v: v >= STOP_AFTER, 120,
                          f"at least {STOP_AFTER} records consumed")
        rc = first.stop(timeout_s=60)
        assert rc == 0, f"SIGTERM: exit code {rc}\n{first.stderr_tail()}"
        assert "Traceback" not in first.stderr(), first.stderr_tail()

    committed = committed_offsets(rs.bootstrap, t.group, t.source)
    source = read_topic(rs.bootstrap, t.source)
    sink_keys = {r.key for r in read_topic(rs.bootstrap, t.sink)}
    done = sum(committed.values())
    assert STOP_AFTER <= done < N_RECORDS, f"SIGTERM did not arrive mid-stream ({done} of {N_RECORDS} committed)"
    # Committed = processed: nothing produced beyond the committed offsets, nothing committed unproduced.
    beyond = [(r.partition, r.offset) for r in source if r.offset >= committed[r.partition] and r.key in sink_keys]
    lost = [(r.partition, r.offset) for r in source
            if r.offset < committed[r.partition] and r.key not in blocked and r.key not in sink_keys]
    assert not beyond, f"{len(beyond)} records in the sink past the committed offsets (first {beyond[:5]})"
    assert not lost, f"{len(lost)} committed records missing from the sink (first {lost[:5]})"

    with DppProcess(rs.policy, rs.bootstrap, rs.workdir, extra=extra, name="dpp-2") as second:
        second.wait_ready()
        drain(second, rs.bootstrap, t, N_RECORDS - done, timeout_s=240)
        assert second.stop() == 0, second.stderr_tail()

    sink = group_sink_by_key(read_topic(rs.bootstrap, t.sink))
    dups = {k: len(v) for k, v in sink.items() if len(v) > 1}
    assert not dups, f"{len(dups)} records reached the sink more than once after a clean restart"
    expected = {r["record_id"].encode() for r in records} - blocked
    assert set(sink) == expected, f"missing {len(expected - set(sink))}, unexpected {len(set(sink) - expected)}"
    print(f"\nlifecycle: SIGTERM after {done} of {N_RECORDS} committed; sink {len(sink)}, blocked {len(blocked)}")


def _line_of(path, needle: str) -> int:
    """1-based number of the only line of ``path`` containing ``needle``."""
    hits = [i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line]
    assert len(hits) == 1, f"{needle!r} occurs on {len(hits)} lines"
    return hits[0]


@pytest.mark.parametrize("breakage", ["unknown-action", "yaml-syntax", "unknown-key-reference"])
def test_broken_policy_exits_1_with_file_and_line(kafka_bootstrap, topic_prefix, demo_keys, tmp_path, breakage):
    policy, _ = policy_copy(tmp_path, topic_prefix)
    text = policy.read_text(encoding="utf-8")
    if breakage == "unknown-action":
        old = "{field: mobile, action: mask,"
        new = "{field: mobile, action: maskk,"
    elif breakage == "yaml-syntax":
        old = "{field: address.street, action: drop}"
        new = "{field: address.street, action: drop"
    else:
        old = "{field: bank_card, action: fpe, key: fpe,"
        new = "{field: bank_card, action: fpe, key: fpee,"
    assert text.count(old) == 1
    policy.write_text(text.replace(old, new), encoding="utf-8")
    line = _line_of(policy, new)

    res = run_dpp(["run", "--policy", str(policy), "--bootstrap-servers", kafka_bootstrap, "--metrics-port", "0"])
    assert res.returncode == 1, f"exit {res.returncode}\n{res.stderr[-2000:]}"
    locations = {(m.group(1), int(m.group(2))) for m in re.finditer(r"^(.+?):(\d+):", res.stderr, re.M)}
    if breakage == "yaml-syntax":
        # The parser notices an unclosed flow mapping at or after the line where it opens.
        assert any(f == str(policy) and n >= line for f, n in locations), res.stderr
    else:
        assert (str(policy), line) in locations, f"expected {policy}:{line} in:\n{res.stderr}"
    assert "Traceback" not in res.stderr


def test_missing_key_variable_exits_1_naming_it_without_printing_keys(kafka_bootstrap, topic_prefix, demo_keys,
                                                                      tmp_path):
    policy, _ = policy_copy(tmp_path, topic_prefix)
    env = dict(os.environ)
    del env["DPP_KEY_FPE"]
    res = run_dpp(["run", "--policy", str(policy), "--bootstrap-servers", kafka_bootstrap, "--metrics-port", "0"],
                  env=env)
    assert res.returncode == 1, f"exit {res.returncode}\n{res.stderr[-2000:]}"
    assert "DPP_KEY_FPE" in res.stderr
    out = res.stdout + res.stderr
    for name, value in demo_keys.items():
        for form in (value, value.upper(), value[:16], value[-16:]):
            assert form not in out, f"part of {name} printed"
    assert "Traceback" not in res.stderr
