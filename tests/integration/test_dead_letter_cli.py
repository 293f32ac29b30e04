"""``dpp dead-letter`` on the real broker: an authorized operator opens sealed dead letters
(audited, no value in the audit trail) and replays them to the source after the producer is fixed;
the replayed records then go through the proxy again."""
from __future__ import annotations

import orjson
import pytest

from .helpers import (KAFKA_PYTHON_WARNINGS, DppProcess, drain, produce, read_topic, route_setup,  # noqa: F401
                      run_dpp)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

BAD = [b'{"name": "\xe5\xbc\xa0\xe4\xbc\x9f", "mobile": "13900001111", ', b'["13911112222"]']
GOOD = {"record_id": "ok-1", "customer_id": "C0000000001", "name": "Li Na", "consent": {"analytics": True}}


def test_dead_letters_open_audited_and_replay(route_setup, tmp_path):
    rs = route_setup
    t = rs.topics
    produce(rs.bootstrap, t.source, [(f"bad-{i}".encode(), v, None) for i, v in enumerate(BAD)]
            + [(b"ok-1", orjson.dumps(GOOD), None)])
    with DppProcess(rs.policy, rs.bootstrap, rs.workdir, name="dpp-dl") as dpp:
        dpp.wait_ready()
        drain(dpp, rs.bootstrap, t, 3, 60)
        dlq = read_topic(rs.bootstrap, t.dead_letter)
        assert sorted(r.key for r in dlq) == [b"bad-0", b"bad-1"]
        audit = tmp_path / "audit.jsonl"
        opened = {}
        for r in dlq:
            res = run_dpp(["dead-letter", "--policy", str(rs.policy), "--bootstrap-servers", rs.bootstrap,
                           "--partition", str(r.partition), "--offset", str(r.offset), str(r.offset),
                           "--reason", "ticket 42", "--audit-file", str(audit), "--replay"])
            assert res.returncode == 0, res.stderr
            doc = orjson.loads(res.stdout)
            opened[r.key] = doc
            assert doc["source"]["topic"] == t.source and doc["reason"] in ("invalid-json", "not-an-object")
        assert opened[b"bad-0"]["payload"].encode() == BAD[0]
        assert opened[b"bad-1"]["payload"].encode() == BAD[1]
        trail = [orjson.loads(line) for line in audit.read_text().splitlines()]
        assert [d["result"] for d in trail] == ["opened", "opened"]
        assert all(d["reason"] == "ticket 42" and d["replay"] is True for d in trail)
        text = audit.read_text()
        for secret in ("13900001111", "13911112222", "张伟"):
            assert secret not in text
        # replayed: consumed again by the running worker and dead-lettered again (still malformed)
        drain(dpp, rs.bootstrap, t, 5, 60)
        assert len(read_topic(rs.bootstrap, t.dead_letter)) == 4

    wrong = run_dpp(["dead-letter", "--policy", str(rs.policy), "--bootstrap-servers", rs.bootstrap,
                     "--partition", "0", "--offset", "0", "0", "--reason", "x"])
    assert wrong.returncode == 2 and "--audit-file" in wrong.stderr
