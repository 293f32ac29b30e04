"""Load tests and benchmarks of dpp against a real Kafka broker (see ``loadtests/README.md``).

Entry points (run from the repository root):

* ``python -m loadtests.bench``      -- the side-by-side benchmark (raw librdkafka limit, dpp policies, faust);
* ``python -m loadtests.harness``    -- one end-to-end measurement of ``dpp run`` (throughput and latency);
* ``python -m loadtests.generator``  -- the load generator (fixed rate or as fast as possible);
* ``python -m loadtests.fuzz``       -- coverage-guided fuzzing of the record path and the policy loader (atheris);
* ``python -m loadtests.soak``       -- fixed-rate soak: RSS trend and consumer lag over time;
* ``python -m loadtests.scaleout``   -- one worker vs two workers in one consumer group;
* ``python -m loadtests.killrun``    -- three workers in one group, one SIGKILLed at random every 10 s: nothing lost;
* ``python -m loadtests.profile_run``    -- ``dpp run`` under load, profiled with py-spy.

Nothing here is imported by the ``proxy`` package, and none of it is a test: speed targets live in
these benchmarks, never in timed unit tests.
"""
