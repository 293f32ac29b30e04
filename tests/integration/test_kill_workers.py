"""Workers killed at random on the real broker: the CI version of ``python -m loadtests.killrun``.

Three ``dpp run`` workers in one consumer group (6 partitions) on the example policy; 30,000 records
(one in 200 malformed) go into the source at 2,000 records/s while one worker, drawn at random
(seeded), is killed with SIGKILL every 5 s and restarted at once with its instance id (4 kills, then
the rest drains). Read back with kafka-python (``read_committed`` for exactly-once), shows:

* every source offset is accounted for: each consenting record in the sink, each malformed one in
  the dead-letter topic, each consent-withdrawn one in neither (a counted block), matched by record id;
* ``processing_guarantee: exactly_once``: a ``read_committed`` consumer of the sink and of the
  dead-letter topic sees no duplicate and none missing;
* ``at_least_once``: every duplicate (sink and dead-letter topic) is byte-identical to its first copy;
* no personal value of any source record is in clear in the sink; the last workers stop with exit 0.

The full run (200,000 records, a kill every 10 s until the end) is ``python -m loadtests.killrun``.
"""
from __future__ import annotations

import pytest

from loadtests.killrun import kill_run, report

from .helpers import KAFKA_PYTHON_WARNINGS

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

RECORDS = 30_000


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_workers_killed_at_random_lose_nothing(kafka_bootstrap, guarantee, demo_keys, tmp_path):
    run = kill_run(kafka_bootstrap, RECORDS, guarantee, 5.0, rate=2000, max_kills=4, seed=11, workdir=tmp_path,
                   timeout_s=150)
    f = run.figures
    print("\n" + report(run))
    assert f["kills"] >= 3, f"only {f['kills']} kills landed before the run ended"
    run.accounting.check(duplicates_allowed=guarantee == "at_least_once")
    assert f["in_sink"] + f["dead_lettered"] + f["blocked"] == RECORDS
    assert f["dead_lettered"] == RECORDS // 200
    assert f["in_clear"] == 0, f"{f['in_clear']} sink records hold a personal value in clear"
    assert f["final_exit_codes"] == [0, 0, 0]
