"""``dpp coverage --topic``: the sample comes from the tail of a real topic; a phone planted in an
unlisted free-text field is found, a clean topic passes."""
from __future__ import annotations

import orjson
import pytest

from proxy.generator import generate_records

from .helpers import EXAMPLE_POLICY, create_topics, delete_topics, produce, run_dpp

pytestmark = pytest.mark.integration


def test_coverage_reads_a_topic(kafka_bootstrap, topic_prefix):
    clean, leaky = f"{topic_prefix}.clean", f"{topic_prefix}.leaky"
    create_topics(kafka_bootstrap, [clean, leaky])
    try:
        recs = list(generate_records(120, seed=11))
        produce(kafka_bootstrap, clean, [(None, orjson.dumps(r), None) for r in recs])
        planted = [dict(r, comment="please call +1 415-555-0134") if i % 3 == 0 else r for i, r in enumerate(recs)]
        produce(kafka_bootstrap, leaky, [(None, orjson.dumps(r), None) for r in planted])
        base = ["coverage", "--policy", str(EXAMPLE_POLICY), "--bootstrap-servers", kafka_bootstrap,
                "--timeout", "20", "--json", "--topic"]
        ok = run_dpp(base + [clean], timeout_s=120)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert orjson.loads(ok.stdout)["records"] == 120
        bad = run_dpp(base + [leaky], timeout_s=120)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        rep = orjson.loads(bad.stdout)
        assert {(lk["path"], lk["detector"]) for lk in rep["leaks"]} == {("comment", "phone")}
        assert "415-555" not in bad.stdout + bad.stderr
    finally:
        delete_topics(kafka_bootstrap, [clean, leaky])
