"""``dpp``: the command line. Each sub-command has ``--help``.

Exit codes: 0 success; 1 invalid input (a bad policy, an unprotectable line in ``apply``, a route
that failed); 2 usage errors (click's).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

import click
import orjson

from .errors import DependencyUnavailable, PolicyError


_REGISTRY: dict = {"url": None, "config": {}}
"""``--schema-registry`` and ``--schema-registry-config`` of the ``dpp`` group."""


def _schema_source():
    """The schema registry client when ``--schema-registry`` (or ``DPP_SCHEMA_REGISTRY_URL``) is given."""
    if not _REGISTRY["url"]:
        return None
    from .schemaregistry import Registry, resolve_config
    try:
        return Registry(resolve_config(_REGISTRY["url"], _REGISTRY["config"]))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--schema-registry-config") from None


def _echo_problems(e: PolicyError) -> None:
    """The ``FILE:LINE: PATH: message`` lines of ``e``, on stderr."""
    for line in str(e).splitlines():
        click.echo(line, err=True)


def _exit_problems(e: PolicyError, code: int = 1) -> NoReturn:
    """:func:`_echo_problems`, then exit with ``code``."""
    _echo_problems(e)
    sys.exit(code)


def _load_compiled(policy_file: str, routes: list[str] | None = None, wait_for_kms=None):
    """Load and compile a policy; a bad policy prints its problems and exits 1. A KMS that cannot
    be reached exits 1 with one line, or, with ``wait_for_kms(error)`` (``dpp run``), waits: that
    callable is called once per failed attempt and decides how long to wait (it may exit)."""
    from .errors import KmsUnavailable
    from .policy.compiler import compile_policy
    from .policy.loader import load_policy
    while True:
        try:
            return compile_policy(load_policy(policy_file), routes=routes or None, schema_source=_schema_source())
        except PolicyError as e:
            _exit_problems(e)
        except KmsUnavailable as e:
            if wait_for_kms is None:
                click.echo(f"dpp: the KMS cannot be reached ({e}); no key was loaded", err=True)
                sys.exit(1)
            wait_for_kms(e)


class _KmsWait:
    """``dpp run`` while a KMS is unreachable at start-up: serve ``/readyz`` false (and
    ``/metrics``) on the metrics port, log one line, try again every ``interval_s``; no route starts,
    nothing is consumed. ``close()`` frees the port for the engine."""

    def __init__(self, metrics, port: int, interval_s: float = 2.0):
        self.metrics, self.port, self.interval_s = metrics, port, interval_s
        self.server, self.why = None, ""

    def __call__(self, error) -> None:
        import time
        if self.server is None:
            self.server = self.metrics.serve(self.port, ready=lambda: (False, self.why))
            self.port = self.server.server_port  # kept for the engine (a port 0 stays the same port)
            logging.getLogger("proxy.cli").error("not ready: the KMS cannot be reached; waiting for it before any "
                                                 "route starts", extra={"error": str(error), "metrics_port": self.port})
        self.why = f"waiting for the KMS: {error}"
        time.sleep(self.interval_s)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            logging.getLogger("proxy.cli").info("the KMS answered: keys loaded")


class _Dpp(click.Group):
    """The ``dpp`` group: a Kafka client error escaping a one-shot command (``scan``, ``reveal``,
    ``forget``, ``dead-letter``: a refused login or certificate, an unreachable broker, a denied
    ACL) becomes one line ``dpp CMD: Kafka ...`` and exit 1, not a traceback. The line names the
    librdkafka error, never a configuration value."""

    ONE_SHOT = frozenset({"scan", "coverage", "reveal", "forget", "dead-letter", "halt", "resume", "report", "subject"})

    def invoke(self, ctx):
        # the subcommand's name: Click 8.2+ keeps it in _protected_args (protected_args is deprecated),
        # Click 9 in args
        names = getattr(ctx, "_protected_args", None)
        names = (names if names is not None else ctx.protected_args) or ctx.args
        if names and names[0] in self.ONE_SHOT:
            from .stream.clientconfig import set_one_shot
            set_one_shot(True)
        try:
            return super().invoke(ctx)
        except Exception as e:  # noqa: BLE001 - only confluent_kafka's KafkaException is handled
            if type(e).__name__ != "KafkaException" or not type(e).__module__.startswith(("confluent_kafka", "cimpl")):
                raise
            err = e.args[0] if e.args else None
            cmd = ctx.invoked_subcommand or "dpp"
            if err is not None and hasattr(err, "code"):
                from .stream.clientconfig import access_error
                from .stream.engine import access_failure
                failure = access_failure(access_error() or err)
                text = str(failure) if failure else None
                text = text or (f"Kafka error {err.name()}: {err.str()} (check --bootstrap-servers and the "
                                "security properties of --kafka-config-file)")
            else:
                text = f"Kafka error ({type(e).__name__})"
            click.echo(f"dpp {cmd}: {text}", err=True)
            sys.exit(1)


@click.group(cls=_Dpp, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="data-protection-proxy", prog_name="dpp")
@click.option("--kafka-config", "kafka_config", multiple=True, metavar="KEY=VALUE",
              help="librdkafka property for every Kafka client (repeatable), e.g. security.protocol=SASL_SSL; "
                   "VALUE env:NAME reads the environment variable NAME")
@click.option("--kafka-config-file", type=click.Path(dir_okay=False), envvar="DPP_KAFKA_CONFIG_FILE",
              help="file of KEY=VALUE librdkafka properties (env: DPP_KAFKA_CONFIG_FILE)")
@click.option("--schema-registry", "schema_registry", envvar="DPP_SCHEMA_REGISTRY_URL", default=None, metavar="URL",
              help="Confluent-API schema registry for Avro/Protobuf/JSON Schema routes, e.g. "
                   "http://127.0.0.1:8081/apis/ccompat/v7 (env: DPP_SCHEMA_REGISTRY_URL)")
@click.option("--schema-registry-config", "schema_registry_config", multiple=True, metavar="KEY=VALUE",
              help="schema registry client option (repeatable): basic.auth.user.info=env:SR_AUTH, "
                   "ssl.ca.location=FILE, ssl.certificate.location, ssl.key.location, timeout (s)")
def main(kafka_config: tuple[str, ...], kafka_config_file: str | None, schema_registry: str | None,
         schema_registry_config: tuple[str, ...]) -> None:
    """dpp: streaming data-protection proxy for Apache Kafka.

    Routes Kafka topics through YAML policies that mask, format-preserving-encrypt (FF1),
    pseudonymize, redact or drop personal fields and block whole records.
    """
    _REGISTRY["url"] = schema_registry
    pairs = {}
    for item in schema_registry_config:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"expected KEY=VALUE, got {k or item!r}", param_hint="--schema-registry-config")
        pairs[k.strip()] = v.strip()
    _REGISTRY["config"] = pairs
    if kafka_config or kafka_config_file:
        from .stream.clientconfig import ClientConfigError, parse_items, read_file, set_extra
        try:
            cfg = read_file(kafka_config_file) if kafka_config_file else {}
            cfg.update(parse_items(kafka_config))
        except ClientConfigError as e:
            raise click.BadParameter(str(e), param_hint="--kafka-config/--kafka-config-file") from None
        set_extra(cfg)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def check(files: tuple[str, ...]) -> None:
    """Validate policy FILES. Exit 0 when all are valid; else exit 1 with one
    `FILE:LINE: PATH: message` line per problem (on stderr)."""
    from .errors import format_problem
    from .policy.loader import _render_loc, load_policy, policy_warnings
    bad = False
    for f in files:
        try:
            lp = load_policy(f)
        except PolicyError as e:
            bad = True
            _echo_problems(e)
            continue
        p = lp.policy
        for loc, msg in policy_warnings(p):
            click.echo(format_problem(f, lp.line_of(loc), _render_loc(loc), f"warning: {msg}"), err=True)
        click.echo(f"{f}: ok: policy {p.name}@{lp.revision}, {len(p.routes)} route(s), "
                   f"{sum(len(r.rules) + len(r.headers) + (len(r.key.rules) if r.key else 0) for r in p.routes)} rule(s)")
    sys.exit(1 if bad else 0)


@main.command("test")
@click.argument("policies", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--tests", "tests_file", default=None, type=click.Path(dir_okay=False),
              help="test file (default: FILE.tests.yaml beside each policy, when it exists); one policy only")
@click.option("--junit", "junit_file", default=None, type=click.Path(dir_okay=False), help="write JUnit XML here")
@click.option("--skip-untested", is_flag=True,
              help="a policy without any test case is skipped, not an error (hooks and CI passing every policy file)")
def test_cmd(policies: tuple[str, ...], tests_file: str | None, junit_file: str | None, skip_untested: bool) -> None:
    """Run the test cases of policy FILES with test keys (never the policy's own key sources).

    Cases come from the policy's tests: list and from FILE.tests.yaml (or --tests). A
    FILE.tests.yaml given among FILES runs its policy FILE.yaml. Prints `PASS name` /
    `FAIL name (FILE:LINE)` per case with the differences, then a summary line.
    Exit 0 when every case passes; 1 when one fails or a policy or test file is invalid."""
    from .policytest import format_result, junit_xml, load_suite, policy_of_test_file, run_suite, summary_line
    if tests_file and len(policies) != 1:
        raise click.UsageError("--tests goes with one policy file")
    bad = False
    everything, suites, errors = [], [], []
    for f in dict.fromkeys(str(policy_of_test_file(p)) for p in policies):
        try:
            suite = load_suite(f, tests_file, required=not skip_untested)
            if not suite.cases:
                click.echo(f"{f}: no test cases, skipped")
                continue
            results = run_suite(suite)
        except PolicyError as e:
            bad = True
            _echo_problems(e)
            click.echo(f"ERROR {f}: not run (policy or test file invalid, see the lines above on stderr)")
            errors.append((f, str(e)))
            continue
        click.echo(f"{f}: {len(results)} case(s)")
        for r in results:
            for line in format_result(r):
                click.echo(line)
        everything += results
        suites.append((f, results))
    click.echo(summary_line(everything) + (f", {len(errors)} file(s) not run" if errors else ""))
    if junit_file:
        Path(junit_file).write_text(junit_xml(suites, errors), encoding="utf-8")
    sys.exit(1 if bad or any(not r.passed for r in everything) else 0)


@main.command("coverage")
@click.option("--policy", "policy_file", required=True, type=click.Path(dir_okay=False), help="policy YAML file")
@click.option("--sample", "sample", default=None, type=click.Path(dir_okay=False, allow_dash=True),
              help="JSON-lines file of source record values (- = stdin)")
@click.option("--topic", default=None, help="instead of --sample: read the tail of this topic (with --bootstrap-servers)")
@click.option("--bootstrap-servers", default=None, help="Kafka bootstrap servers, for --topic")
@click.option("--timeout", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="--topic: seconds to wait for records")
@click.option("--route", "route_name", default=None, help="route to check (required if the policy has several)")
@click.option("--allow", "allow", multiple=True, metavar="PATH",
              help="field path whose findings are an accepted exception (repeatable), e.g. orders[*].note, *.note")
@click.option("--region", "regions", multiple=True, metavar="CC",
              help="phone detector: national numbering plan to read (repeatable), e.g. CN, US")
@click.option("--limit", type=click.IntRange(min=1), default=100000, show_default=True, help="records read at most")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def coverage_cmd(policy_file, sample, topic, bootstrap_servers, timeout, route_name, allow, regions, limit,
                 as_json) -> None:
    """Which field paths still let a validated personal value out in clear?

    Runs the route over the sample with test keys (never the policy's key sources), then every
    detector over the protected output. Prints each leaking path with its detector, the records
    holding it and their share of the records at the sink. Exit 1 when anything leaves in clear
    (paths given with --allow excepted) or the policy is invalid; 0 otherwise."""
    from .detectors.phone import check_regions
    from .policy.loader import load_policy
    from .policycoverage import PathSyntaxError, coverage, format_report, general_path
    from .policytest import compile_for_tests
    from .scan import read_jsonl
    if (sample is None) == (topic is None):
        raise click.UsageError("give one of --sample FILE or --topic T")
    if topic is not None and not bootstrap_servers:
        raise click.UsageError("--topic needs --bootstrap-servers")
    try:
        check_regions(regions)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--region") from None
    for a in allow:
        try:
            general_path(a)
        except PathSyntaxError as e:
            raise click.BadParameter(f"{a!r}: {e}", param_hint="--allow") from None
    try:
        loaded = load_policy(policy_file)
        cp = compile_for_tests(loaded, routes=[route_name] if route_name else None)
        route = cp.route(route_name)
    except PolicyError as e:
        _exit_problems(e)
    except KeyError as e:
        raise click.UsageError(str(e.args[0])) from None
    if topic is not None:
        from .stream.sample import TopicNotFound, sample_topic
        values = sample_topic(bootstrap_servers, topic, limit, timeout_s=timeout)
    else:
        values, TopicNotFound = read_jsonl(sample, limit), LookupError  # noqa: N806 - only topics raise it
    try:
        rep = coverage(route, values, regions=regions, allow=allow)
    except OSError as e:
        raise click.BadParameter(f"cannot read: {type(e).__name__}", param_hint="--sample") from None
    except TopicNotFound as e:
        raise click.UsageError(str(e)) from None
    click.echo(json.dumps(rep.to_dict(), ensure_ascii=False) if as_json else format_report(rep))
    sys.exit(1 if rep.leaking else 0)


@main.command("diff")
@click.argument("old_file", type=click.Path(dir_okay=False))
@click.argument("new_file", type=click.Path(dir_okay=False))
@click.option("--sample", "sample", default=None, type=click.Path(dir_okay=False, allow_dash=True),
              help="JSON-lines file of source record values (- = stdin), run through both policies")
@click.option("--route", "routes", multiple=True, metavar="NAME", help="compare only this route (repeatable)")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True,
              help="markdown: a pull-request comment; json: for tools")
@click.option("--fail-on", "fail_on", type=click.Choice(["warning", "clear", "never"]), default="warning",
              show_default=True, help="exit 1 on any WARNING, only when data leaves in clear, or never")
@click.option("--region", "regions", multiple=True, metavar="CC",
              help="phone detector: national numbering plan to read (repeatable), e.g. CN, US")
@click.option("--limit", type=click.IntRange(min=1), default=100000, show_default=True, help="sample records read at most")
def diff_cmd(old_file, new_file, sample, routes, fmt, fail_on, regions, limit) -> None:
    """What changing policy OLD_FILE into NEW_FILE does, per route.

    Fields that become clear, are protected differently, dropped or newly kept; block rules and
    settings changed; keys whose version changes; with --sample, records now blocked or
    dead-lettered and records whose output changes (counts), run with test keys (never the
    policies' key sources), and the detectors over both protected outputs. A WARNING line (in
    capitals) marks data leaving in clear that did not before, or a deterministic rule whose
    output changes (joins downstream break). Exit 0 when nothing dangerous changes, 1 on a
    warning (see --fail-on), 2 when a policy is invalid or the command is misused."""
    from .detectors.phone import check_regions
    from .policy.loader import load_policy
    from .policydiff import FORMATS, diff_policies
    from .scan import read_jsonl
    try:
        check_regions(regions)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--region") from None
    try:
        old, new = load_policy(old_file), load_policy(new_file)
        values = None
        if sample is not None:
            try:
                values = list(read_jsonl(sample, limit))
            except OSError as e:
                raise click.BadParameter(f"cannot read: {type(e).__name__}", param_hint="--sample") from None
        d = diff_policies(old, new, values, routes=routes, regions=regions)
    except PolicyError as e:
        _exit_problems(e, 2)
    except KeyError as e:
        raise click.UsageError(str(e.args[0])) from None
    click.echo(FORMATS[fmt](d))
    sys.exit(d.exit_code(fail_on))


@main.command()
def schema() -> None:
    """Print the JSON Schema of the policy format (policies/policy.schema.json)."""
    from .policy.models import policy_json_schema
    click.echo(json.dumps(policy_json_schema(), indent=2, ensure_ascii=False))


@main.command()
@click.option("--policy", "policy_file", required=True, type=click.Path(dir_okay=False), help="policy YAML file")
@click.option("--route", "route_name", default=None, help="route to apply (required if the policy has several)")
@click.option("--summary/--no-summary", default=False, help="print counts to stderr at the end")
def apply(policy_file: str, route_name: str | None, summary: bool) -> None:
    """Offline dry-run: JSON lines on stdin -> protected JSON lines on stdout.

    One output line per input line, in order. A line that is blocked or cannot be protected
    is reported on stderr as `line N: <outcome> <reason>` and never echoed. Exit 1 if any line
    could not be protected.
    """
    from . import logs
    from .policy.compiler import BLOCK, SINK
    logs.setup("WARNING")
    cp = _load_compiled(policy_file, [route_name] if route_name else None)
    try:
        route = cp.route(route_name)
    except KeyError as e:
        raise click.UsageError(str(e.args[0])) from None
    out = sys.stdout.buffer
    failed = blocked = ok = 0
    for n, raw in enumerate(sys.stdin.buffer, 1):
        line = raw.rstrip(b"\r\n")
        res = route.process(line)
        if res.kind == SINK:
            ok += 1
            out.write((res.value or b"null") + b"\n")
        elif res.kind == BLOCK:
            blocked += 1
            out.flush()  # keep stdout and stderr lines in input order when both go to one stream
            click.echo(f"line {n}: blocked {res.reason}", err=True)
        else:
            failed += 1
            out.flush()
            rule = f" rule={res.rule}" if res.rule else ""
            click.echo(f"line {n}: not protected: {res.reason} (stage={res.stage}{rule})", err=True)
    out.flush()
    if summary:
        st = route.stats
        click.echo(json.dumps({"protected": ok, "blocked": blocked, "unprotectable": failed,
                               "transforms": dict(zip(route.rule_labels, st.transforms)),
                               "unmatched": dict(zip(route.rule_labels, st.unmatched))}), err=True)
    sys.exit(1 if failed else 0)


@main.command()
@click.option("--count", "-n", type=click.IntRange(min=0), required=True, help="number of records")
@click.option("--seed", type=int, default=0, show_default=True, help="same seed, same records")
@click.option("--note-chars", type=click.IntRange(min=0), default=None, help="pad the free-text note to about N chars")
def generate(count: int, seed: int, note_chars: int | None) -> None:
    """Print COUNT realistic fake customer records (zh_CN and en_US) as JSON lines."""
    from .generator import generate_records
    out = sys.stdout.buffer
    for rec in generate_records(count, seed, note_chars=note_chars):
        out.write(orjson.dumps(rec) + b"\n")
    out.flush()


@main.command()
@click.option("--policy", "policy_file", required=True, type=click.Path(dir_okay=False), help="policy YAML file")
@click.option("--bootstrap-servers", required=True, help="Kafka bootstrap servers HOST:PORT[,HOST:PORT]")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=9464, show_default=True,
              help="HTTP port of /metrics (0: pick a free port)")
@click.option("--route", "routes", multiple=True, help="run only these routes (repeatable)")
@click.option("--batch-size", type=click.IntRange(1, 100000), default=1000, show_default=True,
              help="records per batch (offsets are committed per batch); 1000 keeps a batch in the CPU cache")
@click.option("--create-topics/--no-create-topics", default=False,
              help="create missing sink and dead-letter topics with the source's partition count")
@click.option("--reload-interval", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="seconds between checks of the policy file for hot reload (0: off)")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="the start-up line (\"dpp running\", with the metrics port) is always logged")
@click.option("--instance-id", envvar="DPP_INSTANCE_ID", default=None,
              help="exactly_once routes: this worker's stable name, unique among the live workers of a route "
                   "(transactional.id dpp.<group>.<instance>; a restart with the same name fences the old "
                   "incarnation). Default: the host name (env DPP_INSTANCE_ID)")
@click.option("--control-topic", envvar="DPP_CONTROL_TOPIC", default="dpp.control", show_default=True,
              help="compacted topic of the incident switch (dpp halt / dpp resume), read to its end before "
                   "any route starts, then every 0.5 s; '' turns the switch off (env DPP_CONTROL_TOPIC)")
@click.option("--consent-memory-subjects", type=click.IntRange(min=0), default=1_000_000, show_default=True,
              help="data subjects a consent table keeps in memory (about 100 bytes each); more go to an "
                   "on-disk store (RocksDB), so memory stays bounded")
@click.option("--consent-spill-dir", type=click.Path(file_okay=False), default=None,
              help="directory of the consent tables' on-disk stores (default: a temporary directory)")
@click.option("--audit-topic", envvar="DPP_AUDIT_TOPIC", default="dpp.audit", show_default=True,
              help="records of processing go here, per route and window (docs/operating.md); '' writes none "
                   "(env DPP_AUDIT_TOPIC)")
@click.option("--processing-record-interval", "record_interval", default="60s", show_default=True,
              metavar="DURATION", help="window of the records of processing: 60s, 1m, 500ms or seconds")
@click.option("--batch-linger", type=click.Choice(["adaptive", "fixed"]), default="adaptive", show_default=True,
              help="after the first record of a batch, wait for more: 'adaptive' waits only as long as the "
                   "measured arrival rate fills the batch (at most 5 ms; light load: no wait), 'fixed' always "
                   "up to 5 ms")
@click.option("--workers", type=int, default=1, show_default=True, envvar="DPP_WORKERS",
              help="worker processes in the routes' consumer groups (1-64), under a supervisor that serves "
                   "every worker's metrics on --metrics-port (worker i also on --metrics-port + 1 + i), "
                   "restarts a worker that dies, and stops them all on SIGTERM (env DPP_WORKERS)")
@click.option("--data-plane", "data_plane", type=click.Choice(["auto", "python", "native"]), default="python",
              show_default=True, envvar="DPP_DATA_PLANE",
              help="which data plane runs a route's records: native (C, librdkafka) where the route is eligible "
                   "(auto), always the Python worker (python), or native or fail at start (native); "
                   "docs/operating.md (env DPP_DATA_PLANE). The default stays python until a route stop seen "
                   "once on the native plane under load (RuntimeError) is explained")
@click.pass_context
def run(ctx: click.Context, policy_file: str, bootstrap_servers: str, metrics_port: int, routes: tuple[str, ...],
        batch_size: int, create_topics: bool, reload_interval: float, log_level: str, instance_id: str | None,
        control_topic: str, consent_memory_subjects: int, consent_spill_dir: str | None, audit_topic: str,
        record_interval: str, batch_linger: str, workers: int, data_plane: str) -> None:
    """Run the proxy: consume each route's source topic, protect, produce to its sink.

    The policy file is watched and hot-reloaded between batches; a bad edit keeps the running policy.

    SIGTERM or Ctrl-C finishes the in-flight batch, commits and exits 0 (with --workers N: in every
    worker; docs/operating.md "Scaling").
    """
    from .supervisor import check_workers
    problem = check_workers(workers, metrics_port)
    if problem:
        raise click.BadParameter(problem, param_hint="--workers")
    params = {k: v for k, v in ctx.params.items() if k != "workers"}
    if workers > 1:
        _supervise(workers, params)
    _run_engine(**params)


def _supervise(n: int, params: dict) -> NoReturn:
    """``dpp run --workers n``: the supervisor of :mod:`proxy.supervisor`; exits with its code."""
    import multiprocessing
    from . import logs
    from .httpserver import serve
    from .metrics import SupervisorMetrics
    from .policy.loader import load_policy
    from .stream.clientconfig import extra
    from .supervisor import Supervisor, WorkersCollector, worker_instance_id, worker_ports, workers_ready
    logs.setup(params["log_level"])
    try:  # a bad policy fails here, once, not in n workers
        loaded = load_policy(params["policy_file"])
    except PolicyError as e:
        _exit_problems(e)
    ports = worker_ports(params["metrics_port"], n)
    sm = SupervisorMetrics(n)
    sm.registry.register(WorkersCollector(ports))
    server = serve(sm.registry, lambda: workers_ready(ports), params["metrics_port"])
    startup = logging.getLogger("proxy.cli")
    startup.setLevel(logging.INFO)
    startup.info("dpp running", extra={"role": "supervisor", "workers": n, "metrics_port": server.server_port,
                                       "worker_metrics_ports": ports,
                                       "routes": [r.name for r in loaded.policy.routes]})
    spawn = multiprocessing.get_context("spawn")
    shared = {"registry": dict(_REGISTRY), "kafka": extra()}

    def make(i: int):
        spill = params["consent_spill_dir"]
        mine = {**params, "metrics_port": ports[i], "instance_id": worker_instance_id(params["instance_id"], i),
                "consent_spill_dir": spill and str(Path(spill) / f"worker-{i}")}
        return spawn.Process(target=_worker_main, args=(i, mine, shared), name=f"dpp-worker-{i}")

    sup = Supervisor(n, make, restarts=lambda i: sm.restarts.labels(str(i)).inc(), running=sm.running.set)
    signal.signal(signal.SIGTERM, sup.stop)
    signal.signal(signal.SIGINT, sup.stop)
    code = sup.run()
    server.shutdown()
    startup.info("dpp stopped", extra={"role": "supervisor", "exit_code": code})
    sys.exit(code)


def _worker_main(index: int, params: dict, shared: dict) -> None:
    """A worker process of ``dpp run --workers N`` (spawned): the ``dpp run`` body with the
    supervisor's global options, its own metrics port and instance id; every log line carries
    ``"worker": index``."""
    from .supervisor import die_with_parent
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which sends SIGTERM
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # until the engine runs: nothing consumed yet
    _REGISTRY.update(shared["registry"])
    if shared["kafka"]:
        from .stream.clientconfig import set_extra
        set_extra(shared["kafka"])
    _run_engine(**params, log_fields={"worker": index})


def _run_engine(policy_file: str, bootstrap_servers: str, metrics_port: int, routes: tuple[str, ...],
                batch_size: int, create_topics: bool, reload_interval: float, log_level: str,
                instance_id: str | None, control_topic: str, consent_memory_subjects: int,
                consent_spill_dir: str | None, audit_topic: str, record_interval: str, data_plane: str = "python",
                batch_linger: str = "adaptive", log_fields: dict | None = None) -> NoReturn:
    """The ``dpp run`` body in this process (one worker)."""
    from . import logs
    from .metrics import Metrics
    from .stream.engine import Engine, EngineConfig
    logs.setup(log_level, fields=log_fields)
    interval = _duration_s(record_interval, "--processing-record-interval")
    metrics = Metrics()
    metrics.watch_kms()
    waiting = _KmsWait(metrics, metrics_port)
    cp = _load_compiled(policy_file, list(routes) or None, wait_for_kms=waiting)
    waiting.close()
    metrics_port = waiting.port
    if create_topics:
        _create_route_topics(cp, bootstrap_servers)
    try:
        eng = Engine(cp, EngineConfig(bootstrap_servers=bootstrap_servers, batch_size=batch_size,
                                      instance_id=instance_id, control_topic=control_topic or None,
                                      consent_memory_subjects=consent_memory_subjects,
                                      consent_spill_dir=consent_spill_dir, audit_topic=audit_topic or None,
                                      processing_record_interval_s=interval, data_plane=data_plane,
                                      batch_linger_adaptive=batch_linger == "adaptive"), metrics)
    except ValueError as e:  # --data-plane native on a route that cannot run natively: the reason
        logging.getLogger("proxy.cli").error(str(e))
        sys.exit(2)
    server = eng.metrics.serve(metrics_port, ready=eng.ready)
    startup = logging.getLogger("proxy.cli")
    startup.setLevel(logging.INFO)  # the start-up line (metrics port) is logged whatever --log-level says
    startup.info("dpp running", extra={
        "policy": cp.provenance, "routes": [r.name for r in cp.routes], "metrics_port": server.server_port})
    signal.signal(signal.SIGTERM, eng.stop)
    signal.signal(signal.SIGINT, eng.stop)
    watcher = None
    if reload_interval > 0:
        from .stream.reload import PolicyWatcher
        watcher = PolicyWatcher(eng, policy_file, list(routes) or None, reload_interval).start()
    code = eng.run()
    if watcher:
        watcher.stop()
    sys.exit(code)


def _duration_s(text: str, hint: str) -> float:
    """Seconds of ``60s``, ``1m``, ``500ms``, ``1h`` or a plain number of seconds (> 0)."""
    t = text.strip().lower()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0), ("", 1.0)):
        if t.endswith(suffix):
            try:
                v = float(t[:len(t) - len(suffix)] if suffix else t) * scale
            except ValueError:
                continue
            if v > 0:
                return v
    raise click.BadParameter(f"expected a duration such as 60s, 1m or 500ms, got {text!r}", param_hint=hint)


def _create_route_topics(cp, bootstrap: str) -> None:
    from .stream.admin import ensure_topics, partition_count
    from .stream.subjects import TOPIC_CONFIG
    for r in cp.routes:
        n = partition_count(bootstrap, r.source) or 3
        ensure_topics(bootstrap, {r.source: n, r.sink: n, r.dead_letter: n})
        if r.subject_mode:
            ensure_topics(bootstrap, {r.subject_topic: 1}, configs={r.subject_topic: TOPIC_CONFIG})
        if r.consent is not None:
            from .stream.consent import CONSENT_CONFIG
            ensure_topics(bootstrap, {r.consent.topic: 1}, configs={r.consent.topic: CONSENT_CONFIG})


@main.command()
@click.option("--count", "-n", type=click.IntRange(min=1), default=10000, show_default=True)
@click.option("--bootstrap-servers", default=None, help="use this broker instead of starting the local one")
@click.option("--policy", "policy_file", default=None, type=click.Path(dir_okay=False),
              help="default: policies/examples/customer-pii.yaml (customer-pii-avro.yaml / "
                   "customer-pii-protobuf.yaml with --format avro / protobuf)")
@click.option("--format", "fmt", type=click.Choice(["json", "avro", "protobuf"]), default="json", show_default=True,
              help="avro, protobuf: the records in that format through a schema registry (--schema-registry, else "
                   "the local one of deploy/registry.sh), keyed by mobile number with an x-user-email header")
def demo(count: int, bootstrap_servers: str | None, policy_file: str | None, fmt: str) -> None:
    """End-to-end demo on a local broker: produce COUNT generated records, protect them, show the result.

    Starts the local Kafka (deploy/kafka.sh; port DPP_KAFKA_PORT, default 9092) unless
    --bootstrap-servers is given, runs the proxy with the example policy, and prints a source record
    beside its sink record and the metric totals read from /metrics."""
    from .demo import run_demo
    sys.exit(run_demo(count=count, bootstrap=bootstrap_servers, policy_file=policy_file, fmt=fmt,
                      registry_url=_REGISTRY["url"]))


@main.command()
@click.option("--policy", "policy_file", required=True, type=click.Path(dir_okay=False), help="policy YAML file")
@click.option("--route", "route_name", default=None, help="route whose rules protected the records")
@click.option("--reason", required=True, help="why re-identification is needed (goes into the audit record)")
@click.option("--actor", default=lambda: os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown",
              show_default="$USER", help="who asks (goes into the audit record)")
@click.option("--field", "fields", multiple=True,
              help="reveal only these rules: the rule's name, or its field path if it has no name (repeatable)")
@click.option("--audit-file", type=click.Path(dir_okay=False), default=None, help="append audit records (JSON lines)")
@click.option("--audit-topic", default=None, help="produce audit records to this topic (needs --bootstrap-servers)")
@click.option("--bootstrap-servers", default=None, help="read records from Kafka (with --topic) / audit topic")
@click.option("--topic", default=None, help="read protected records from this topic (default: the route's sink)")
@click.option("--partition", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--offset", "offsets", type=click.IntRange(min=0), nargs=2, default=None,
              help="FROM TO (inclusive) offsets to read; without --bootstrap-servers, JSON lines are read from stdin")
@click.option("--key-versions", default=None, help="for stdin input: key versions, e.g. fpe=1 (default: current)")
@click.option("--subject", "subject_id", default=None,
              help="for stdin input on crypto-shredding routes: the data subject's id")
def reveal(policy_file, route_name, reason, actor, fields, audit_file, audit_topic, bootstrap_servers, topic,
           partition, offsets, key_versions, subject_id) -> None:
    """Authorized re-identification of FPE and token fields, with an audit record per record.

    Reads protected records from a topic range (--bootstrap-servers, --offset FROM TO) or JSON lines on
    stdin; writes revealed JSON lines to stdout. HMAC pseudonyms, masks and redactions are one-way
    and cannot be revealed. Exit 1 if any record could not be revealed.
    """
    from .errors import RecordError
    from .reveal import Revealer, one_way_rules, parse_key_versions
    if not audit_file and not audit_topic:
        raise click.UsageError("re-identification must be audited: give --audit-file or --audit-topic")
    if audit_topic and not bootstrap_servers:
        raise click.UsageError("--audit-topic needs --bootstrap-servers")
    cp = _load_compiled(policy_file, [route_name] if route_name else None)
    try:
        route = cp.route(route_name)
    except KeyError as e:
        raise click.UsageError(str(e.args[0])) from None
    subject_ref = None
    if route.subject_mode:
        if not bootstrap_servers:
            raise click.UsageError(f"route {route.name} uses subject keys: --bootstrap-servers is needed to read them")
        from .crypto.subjects import subject_ref as _ref
        from .stream.subjects import KafkaSubjectKeys
        route.subject_store = KafkaSubjectKeys(bootstrap_servers, route.subject_topic, route.subject_kek, follow=False)
        subject_ref = _ref(route.subject_kek, subject_id) if subject_id else None
    audit = _audit_sink(audit_file, audit_topic, bootstrap_servers)
    try:
        rv = Revealer(route, cp.provenance, actor, reason, audit, list(fields) or None)
    except ValueError as e:
        click.echo(f"dpp reveal: {e}", err=True)
        sys.exit(1)
    skipped = one_way_rules(route)
    if skipped and not fields:
        click.echo(f"note: one-way rules cannot be revealed: {', '.join(skipped)}", err=True)
    out = sys.stdout.buffer
    failed = 0

    def one(value, where, kv, ref=None):
        nonlocal failed
        try:
            out.write(rv.reveal(value, where, kv, ref or subject_ref) + b"\n")
        except RecordError as e:
            failed += 1
            click.echo(f"{_where(where)}: cannot reveal: {e.reason.value}"
                       + (f" (rule {e.rule})" if e.rule else "") + _hint(e.reason.value), err=True)
        except ValueError:
            failed += 1
            click.echo(f"{_where(where)}: cannot reveal: not a JSON object", err=True)

    if bootstrap_servers and offsets:
        from .stream.read import read_range
        t = topic or route.sink
        for off, _key, value, headers in read_range(bootstrap_servers, t, partition, offsets[0], offsets[1]):
            if value is None:
                continue
            ref = headers.get("dpp-subject")
            one(value, {"topic": t, "partition": partition, "offset": off},
                parse_key_versions(headers.get("dpp-key-versions")), ref.decode("ascii", "replace") if ref else None)
    else:
        try:
            kv = parse_key_versions(key_versions, strict=True)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--key-versions") from None
        for n, raw in enumerate(sys.stdin.buffer, 1):
            one(raw.rstrip(b"\r\n"), {"line": n}, kv)
    out.flush()
    sys.exit(1 if failed else 0)


def _where(where: dict) -> str:
    return f"line {where['line']}" if "line" in where else f"{where['topic']}[{where['partition']}]@{where['offset']}"


def _hint(reason: str) -> str:
    return {"subject-forgotten": ": the data subject's key was erased (dpp forget); this data can never be revealed",
            "key-unavailable": ": the key version that protected it is not in the keyring"}.get(reason, "")


def _audit_sink(audit_file: str | None, audit_topic: str | None, bootstrap: str | None,
                then: str = "stopping before revealing"):
    """``audit(doc_bytes)``: append to a file (fsync'd) and/or produce to a topic (acknowledged;
    created with one partition when missing). An unacknowledged record exits: ``then`` says what."""
    producer = None
    if audit_topic:
        from confluent_kafka import Producer
        from .stream.admin import ensure_topics
        from .stream.clientconfig import client_config
        ensure_topics(bootstrap, {audit_topic: 1})
        producer = Producer({**client_config(bootstrap), "enable.idempotence": True})

    def audit(doc: bytes) -> None:
        if audit_file:
            with open(audit_file, "ab") as f:
                f.write(doc + b"\n")
                f.flush()
                os.fsync(f.fileno())
        if producer is not None:
            errs = []
            producer.produce(audit_topic, doc, on_delivery=lambda e, m: errs.append(e) if e else None)
            if producer.flush(30) or errs:
                raise click.ClickException(f"audit record not acknowledged; {then}")
    return audit


@main.command()
@click.argument("subject_id")
@click.option("--policy", "policy_file", required=True, type=click.Path(dir_okay=False), help="policy YAML file")
@click.option("--route", "route_name", default=None, help="crypto-shredding route (default: the only one)")
@click.option("--bootstrap-servers", required=True, help="Kafka bootstrap servers")
@click.option("--reason", required=True, help="e.g. the erasure request's reference (goes into the audit record)")
@click.option("--actor", default=lambda: os.environ.get("USER") or "unknown", show_default="$USER")
@click.option("--audit-file", type=click.Path(dir_okay=False), default=None, help="append the audit record here")
@click.option("--audit-topic", envvar="DPP_AUDIT_TOPIC", default="dpp.audit", show_default=True,
              help="produce the audit record to this topic too (dpp report lists the erasures); '' for none")
def forget(subject_id, policy_file, route_name, bootstrap_servers, reason, actor, audit_file, audit_topic) -> None:
    """Erase a data subject's key (crypto-shredding; PIPL Art. 47, GDPR Art. 17).

    Their FPE and token values can never be revealed again; running workers pick the event up
    within seconds and block (and count) later records of the subject.
    """
    import datetime as _dt

    from .crypto.subjects import subject_ref
    from .stream.subjects import KafkaSubjectKeys
    cp = _load_compiled(policy_file, [route_name] if route_name else None)
    routes = [r for r in cp.routes if r.subject_mode and (route_name is None or r.name == route_name)]
    if not routes:
        raise click.UsageError("no route of this policy uses subject_keys")
    audit = _audit_sink(audit_file, audit_topic or None, bootstrap_servers, "stopping")
    for r in routes:
        ref = subject_ref(r.subject_kek, subject_id)
        store = KafkaSubjectKeys(bootstrap_servers, r.subject_topic, r.subject_kek, follow=False)
        try:
            known = ref in store.keys
            store.forget(ref)
        finally:
            store.close()
        doc = {"ts": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"), "action": "forget",
               "actor": actor, "reason": reason, "policy": cp.provenance, "route": r.name, "subject_ref": ref,
               "had_key": known}
        audit(orjson.dumps(doc))
        click.echo(f"route {r.name}: subject {ref} forgotten" + ("" if known else " (no key was stored yet)"))


@main.command()
@click.argument("subject_id")
@click.option("--policy", "policy_file", required=True, type=click.Path(dir_okay=False), help="policy YAML file")
@click.option("--route", "routes", multiple=True, metavar="NAME", help="only this route (repeatable)")
@click.option("--field", "fields", multiple=True, metavar="F=VALUE",
              help="another identifier of the subject: field path (or rule name) = value (repeatable), "
                   "e.g. email=x@example.com")
@click.option("--subject-field", default=None, metavar="PATH",
              help="field holding SUBJECT_ID (default: the route's subject_keys.field or consent.subject_field)")
@click.option("--reason", required=True, help="the request's reference (goes into the audit record)")
@click.option("--actor", default=lambda: os.environ.get("USER") or "unknown", show_default="$USER")
@click.option("--audit-file", type=click.Path(dir_okay=False), default=None, help="append the audit record here")
@click.option("--audit-topic", default=None, help="produce the audit record to this topic (with --bootstrap-servers)")
@click.option("--bootstrap-servers", default=None, help="Kafka bootstrap servers, for --audit-topic")
@click.option("--json", "as_json", is_flag=True, help="print JSON: [{route, rule, field, action, input, value}]")
def subject(subject_id, policy_file, routes, fields, subject_field, reason, actor, audit_file, audit_topic,
            bootstrap_servers, as_json) -> None:
    """The pseudonyms and tokens a data subject's identifiers get, per route and rule.

    For an access or erasure request: look these values up in downstream stores and delete the
    rows (docs/operating.md, "Erasure requests"). Deterministic rules only (pseudonymize, fpe,
    tokenize, detect with replace pseudonymize/fpe), computed with the policy's keys, as `dpp
    run` loads them: an authorized operation, audited before anything is printed."""
    import datetime as _dt

    from .subjectlookup import format_text, lookup
    if not audit_file and not audit_topic:
        raise click.UsageError("a subject look-up must be audited: give --audit-file or --audit-topic")
    if audit_topic and not bootstrap_servers:
        raise click.UsageError("--audit-topic needs --bootstrap-servers")
    if not reason.strip():
        raise click.BadParameter("a reason is required", param_hint="--reason")
    values = {}
    for item in fields:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise click.BadParameter("expected FIELD=VALUE (a field path or rule name, '=', the value)", param_hint="--field")
        values[k.strip()] = v
    cp = _load_compiled(policy_file, list(routes) or None)
    rows = lookup(cp, subject_id, values, subject_field, list(routes) or None)
    if subject_field is None:
        from .subjectlookup import subject_field as field_of
        models = {m.name: m for m in cp.loaded.policy.routes}
        unnamed = [r.name for r in cp.routes if field_of(r, models.get(r.name)) is None]
        if unnamed:
            click.echo(f"note: SUBJECT_ID is not used on {', '.join(unnamed)}: no subject_keys or consent field; "
                       "name its field with --subject-field", err=True)
    audit = _audit_sink(audit_file, audit_topic, bootstrap_servers, "stopping before printing")
    audit(orjson.dumps({"ts": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
                        "action": "subject", "actor": actor, "reason": reason, "policy": cp.provenance,
                        "routes": sorted({r["route"] for r in rows}), "rules": [r["rule"] for r in rows],
                        "inputs": sorted({r["input"] for r in rows})}))
    click.echo(json.dumps(rows, ensure_ascii=False) if as_json else format_text(rows))


def _json_lines(files):
    """The JSON objects of JSON-lines ``files``, one at a time (other lines are skipped)."""
    for f in files:
        with open(f, "rb") as fh:
            for line in fh:
                try:
                    d = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if type(d) is dict:
                    yield d


@main.command()
@click.option("--bootstrap-servers", default=None, help="Kafka bootstrap servers (read --audit-topic)")
@click.option("--audit-topic", envvar="DPP_AUDIT_TOPIC", default="dpp.audit", show_default=True)
@click.option("--audit-file", "audit_files", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="instead of the topic: JSON-lines audit file (repeatable; offline use)")
@click.option("--from", "start", required=True, metavar="DATE", help="start, ISO 8601 (UTC unless an offset is given)")
@click.option("--to", "end", required=True, metavar="DATE", help="end (exclusive; a date alone: to the end of that day)")
@click.option("--out", "out", required=True, type=click.Path(), metavar="DIR|FILE",
              help="a directory (report.html, report.pdf in it) or FILE.html")
@click.option("--lang", type=click.Choice(["zh", "en", "both"]), default="both", show_default=True)
@click.option("--pdf/--no-pdf", default=True, show_default=True, help="also print the PDF (needs Chromium)")
@click.option("--json", "as_json", is_flag=True, help="print the totals per route as JSON on stdout")
def report(bootstrap_servers, audit_topic, audit_files, start, end, out, lang, pdf, as_json) -> None:
    """Processing-activity report (PIPL Art. 55-56) from the audit topic, as HTML and PDF.

    Records consumed, protected, blocked and dead-lettered over time, by route and purpose; the
    policy revisions in force; halts and resumes; re-identifications (dpp reveal); erasures
    (dpp forget); subject look-ups (dpp subject). Chinese and English labels (--lang). The PDF is
    printed by headless Chromium: without it the HTML is written and the command exits 1."""
    import subprocess

    from .report import PdfUnavailable, aggregate, parse_time, render_html, render_pdf
    try:
        t0, t1 = parse_time(start), parse_time(end, end=True)
    except ValueError:
        raise click.BadParameter("expected an ISO 8601 date or time, e.g. 2026-12-01", param_hint="--from/--to") from None
    if t1 <= t0:
        raise click.BadParameter("--to must be after --from", param_hint="--to")
    if audit_files:
        docs = _json_lines(audit_files)
    elif bootstrap_servers:
        from .stream.processingrecords import read_audit
        try:
            docs = read_audit(bootstrap_servers, audit_topic)
        except LookupError as e:
            raise click.ClickException(str(e)) from None
    else:
        raise click.UsageError("give --bootstrap-servers (the audit topic) or --audit-file")
    rep = aggregate(docs, t0, t1)
    target = Path(out)
    html_file = target if target.suffix.lower() in (".html", ".htm") else target / "report.html"
    html_file.parent.mkdir(parents=True, exist_ok=True)
    html_file.write_text(render_html(rep, lang), encoding="utf-8")
    click.echo(f"report written to {html_file}", err=True)
    if as_json:
        click.echo(json.dumps({name: {"purpose": rep.purpose_of.get(name, ""), "consumed": t.consumed,
                                      "produced": t.produced, "blocked": t.blocked, "dead_lettered": t.dead_lettered}
                               for name, t in sorted(rep.routes.items())}))
    if pdf:
        pdf_file = html_file.with_suffix(".pdf")
        try:
            render_pdf(html_file, pdf_file)
        except PdfUnavailable as e:
            click.echo(f"dpp report: {e}", err=True)
            sys.exit(1)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            click.echo(f"dpp report: the PDF failed ({type(e).__name__}: {e}); the HTML report was written", err=True)
            sys.exit(1)
        click.echo(f"report written to {pdf_file}", err=True)


def _switch(route_name: str, state: str, reason: str, policy_file: str, bootstrap_servers: str, actor: str,
            control_topic: str, audit_topic: str) -> None:
    """``dpp halt`` / ``dpp resume``: the route must be one of the policy's (no keys needed)."""
    from .policy.loader import load_policy
    from .stream.control import write_switch
    try:
        loaded = load_policy(policy_file)
    except PolicyError as e:
        _exit_problems(e)
    names = [r.name for r in loaded.policy.routes]
    if route_name not in names:
        raise click.UsageError(f"no route {route_name!r} in {policy_file}; routes: {names}")
    doc = write_switch(bootstrap_servers, route_name, state, reason, actor, policy=loaded.provenance,
                       control_topic=control_topic, audit_topic=audit_topic)
    click.echo(f"route {route_name}: {state} at {doc['at']} (control topic {control_topic}, audited in {audit_topic})")


def _switch_options(fn):
    for opt in reversed([
        click.argument("route_name", metavar="ROUTE"),
        click.option("--reason", required=True, help="why (an incident or complaint reference; goes into the audit topic)"),
        click.option("--policy", "policy_file", required=True, type=click.Path(dir_okay=False), help="policy YAML file"),
        click.option("--bootstrap-servers", required=True, help="Kafka bootstrap servers"),
        click.option("--actor", default=lambda: os.environ.get("USER") or "unknown", show_default="$USER"),
        click.option("--control-topic", envvar="DPP_CONTROL_TOPIC", default="dpp.control", show_default=True),
        click.option("--audit-topic", envvar="DPP_AUDIT_TOPIC", default="dpp.audit", show_default=True),
    ]):
        fn = opt(fn)
    return fn


@main.command()
@_switch_options
def halt(route_name, reason, policy_file, bootstrap_servers, actor, control_topic, audit_topic) -> None:
    """Incident switch: stop ROUTE on every worker within about a second (PIPL Art. 57).

    The workers finish the batch in flight, then produce and commit nothing: the records wait in
    the source topic and are processed on `dpp resume`, under the policy in force then. Written
    to the control topic (compacted, key = route) and audited (who, when, why)."""
    _switch(route_name, "halted", reason, policy_file, bootstrap_servers, actor, control_topic, audit_topic)


@main.command()
@_switch_options
def resume(route_name, reason, policy_file, bootstrap_servers, actor, control_topic, audit_topic) -> None:
    """Incident switch: let a halted ROUTE process again (audited like `dpp halt`)."""
    _switch(route_name, "running", reason, policy_file, bootstrap_servers, actor, control_topic, audit_topic)


@main.group()
def consent() -> None:
    """Consent of data subjects per purpose, in a compacted consent topic (route `consent:`).

    Each record holds a subject's whole state (key = subject id; value = {subject, purposes:
    {name: granted|withdrawn}, updated_at}); `grant` and `withdraw` read the subject's current
    state and write the new one. Running workers apply it before their next batch."""


def _consent_options(fn):
    for opt in reversed([
        click.argument("subject"),
        click.argument("purpose"),
        click.option("--bootstrap-servers", required=True, help="Kafka bootstrap servers"),
        click.option("--topic", required=True, help="the consent topic (a route's consent.topic)"),
        click.option("--partitions", type=click.IntRange(min=1), default=1, show_default=True,
                     help="partitions of the topic when it is created (compacted)"),
    ]):
        fn = opt(fn)
    return fn


def _write_consent(subject, purpose, state, bootstrap_servers, topic, partitions) -> None:
    from .stream.consent import write_consent
    import re
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,62}", purpose):
        raise click.BadParameter("a purpose is a lower-case slug: a-z 0-9 . _ -", param_hint="PURPOSE")
    try:
        doc = write_consent(bootstrap_servers, topic, subject, purpose, state, partitions=partitions)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="SUBJECT") from None
    except (RuntimeError, TimeoutError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(orjson.dumps(doc).decode())


@consent.command("grant")
@_consent_options
def consent_grant(subject, purpose, bootstrap_servers, topic, partitions) -> None:
    """SUBJECT grants PURPOSE."""
    _write_consent(subject, purpose, "granted", bootstrap_servers, topic, partitions)


@consent.command("withdraw")
@_consent_options
def consent_withdraw(subject, purpose, bootstrap_servers, topic, partitions) -> None:
    """SUBJECT withdraws PURPOSE (PIPL Art. 15, GDPR Art. 7(3)): its records stop reaching that purpose's sinks."""
    _write_consent(subject, purpose, "withdrawn", bootstrap_servers, topic, partitions)


@consent.command("show")
@click.argument("subject")
@click.option("--bootstrap-servers", required=True, help="Kafka bootstrap servers")
@click.option("--topic", required=True, help="the consent topic")
def consent_show(subject, bootstrap_servers, topic) -> None:
    """Print SUBJECT's current consent state (JSON)."""
    from .stream.consent import current_state
    click.echo(orjson.dumps({"subject": subject, "purposes": current_state(bootstrap_servers, topic, subject)}).decode())


@main.command("dead-letter")
@click.option("--policy", "policy_file", required=True, type=click.Path(dir_okay=False), help="policy YAML file")
@click.option("--route", "route_name", default=None, help="route whose dead-letter topic to read")
@click.option("--bootstrap-servers", required=True, help="Kafka bootstrap servers")
@click.option("--partition", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--offset", "offsets", type=click.IntRange(min=0), nargs=2, required=True, help="FROM TO (inclusive)")
@click.option("--reason", required=True, help="why the payloads are opened (goes into the audit record)")
@click.option("--actor", default=lambda: os.environ.get("USER") or "unknown", show_default="$USER")
@click.option("--audit-file", required=True, type=click.Path(dir_okay=False), help="append audit records here")
@click.option("--replay", is_flag=True, help="produce each original payload back to its source topic (same key)")
def dead_letter(policy_file, route_name, bootstrap_servers, partition, offsets, reason, actor, audit_file, replay) -> None:
    """Open sealed dead-letter records (authorized operators), e.g. to replay them after a fix.

    Prints one JSON line per record: where it came from, why it was dead-lettered, and the original
    record: ``key``, ``headers`` (``[{name, value}]`` in order) and ``payload`` (UTF-8 text, or
    ``key_base64``/``value_base64``/``payload_base64`` for other bytes; ``null`` for a null key,
    header value or tombstone). A record whose payload was too large for the dead-letter topic has
    ``payload: null`` and ``payload_dropped: {bytes, digest}`` (its source coordinates locate the
    original). Every record opened is audited first. With --replay the whole
    record (key, headers, value) is produced back to its source topic (after you fixed the
    producer or the policy), where the proxy processes it again.
    """
    import datetime as _dt

    from .crypto.aead import DecryptionError
    from .stream.deadletter import PayloadDropped, open_record
    from .stream.read import produce_one, read_range
    cp = _load_compiled(policy_file, [route_name] if route_name else None)
    try:
        route = cp.route(route_name)
    except KeyError as e:
        raise click.UsageError(str(e.args[0])) from None
    out, failed = sys.stdout.buffer, 0
    for off, key, value, headers in read_range(bootstrap_servers, route.dead_letter, partition, *offsets):
        h = {k: v.decode("utf-8", "replace") for k, v in headers.items() if v is not None}
        where = {"topic": route.dead_letter, "partition": partition, "offset": off}
        doc = {"ts": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"), "action": "dead-letter-open",
               "actor": actor, "reason": reason, "policy": cp.provenance, "route": route.name, "record": where,
               "replay": replay}
        try:
            rec_in = open_record(route.dead_letter_key, value or b"", h, dlq_key=key)
        except PayloadDropped as e:  # a stub: the original was too large even for the dead-letter topic
            _append(audit_file, {**doc, "result": "payload-dropped"})
            rec = {**where, "source": {"topic": h.get("dpp.source.topic"), "partition": h.get("dpp.source.partition"),
                                       "offset": h.get("dpp.source.offset")},
                   "stage": h.get("dpp.stage"), "reason": h.get("dpp.reason"), "rule": h.get("dpp.rule"),
                   "payload": None, "payload_dropped": {"bytes": e.size, "digest": e.digest}}
            out.write(orjson.dumps(rec) + b"\n")
            if replay:
                failed += 1
                click.echo(f"{route.dead_letter}[{partition}]@{off}: cannot replay: the payload was dropped "
                           f"({e.size} bytes, too large for the dead-letter topic); the source record is at "
                           f"{rec['source']['topic']}[{rec['source']['partition']}]@{rec['source']['offset']}", err=True)
            continue
        except (DecryptionError, KeyError, ValueError) as e:
            failed += 1
            _append(audit_file, {**doc, "result": "failed", "error": type(e).__name__})
            click.echo(f"{route.dead_letter}[{partition}]@{off}: cannot open ({type(e).__name__})", err=True)
            continue
        _append(audit_file, {**doc, "result": "opened"})
        rec = {**where, "source": {"topic": h.get("dpp.source.topic"), "partition": h.get("dpp.source.partition"),
                                   "offset": h.get("dpp.source.offset")},
               "stage": h.get("dpp.stage"), "reason": h.get("dpp.reason"), "rule": h.get("dpp.rule")}
        rec.update(_bytes_field("key", rec_in.key))
        rec["headers"] = [{"name": n, **_bytes_field("value", v)} for n, v in rec_in.headers]
        if rec_in.value is None:
            rec["payload"] = None
        else:
            rec.update(_bytes_field("payload", rec_in.value))
        out.write(orjson.dumps(rec) + b"\n")
        if replay:
            produce_one(bootstrap_servers, h["dpp.source.topic"], rec_in.value, rec_in.key, rec_in.headers)
    out.flush()
    sys.exit(1 if failed else 0)


def _bytes_field(name: str, b: bytes | None) -> dict:
    """``{name: text}`` for UTF-8 bytes, ``{name + "_base64": ...}`` otherwise, ``{name: None}`` for None."""
    import base64
    if b is None:
        return {name: None}
    try:
        return {name: b.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_base64": base64.b64encode(b).decode()}


def _append(path: str, doc: dict) -> None:
    with open(path, "ab") as f:
        f.write(orjson.dumps(doc) + b"\n")
        f.flush()
        os.fsync(f.fileno())


@main.group()
def keys() -> None:
    """Data keys of KMS-sourced policy keys (source vault or aws) in their key stores."""


def _keys_command(name: str, action, doc: str):
    @keys.command(name, help=doc)
    @click.option("--policy", "policy_file", required=True, type=click.Path(exists=True, dir_okay=False),
                  help="policy YAML file")
    @click.option("--key", "names", multiple=True, help="only this policy key (repeatable); default: every KMS key")
    def cmd(policy_file: str, names: tuple[str, ...]) -> None:
        from .errors import KeyLoadError, KmsUnavailable
        from .policy.loader import load_policy
        try:
            keys_ = load_policy(policy_file).policy.keys
            reports = action(keys_, os.environ, list(names) or None)
        except PolicyError as e:
            for line in str(e).splitlines():
                click.echo(line, err=True)
            sys.exit(1)
        except (KeyLoadError, KmsUnavailable) as e:
            raise click.ClickException(str(e)) from None
        for r in reports:  # key names, versions and store paths: never material
            click.echo(json.dumps(r, sort_keys=True))
        if not reports:
            click.echo(f"dpp keys {name}: nothing to do", err=True)
    return cmd


def _store_action(fn_name: str):
    def action(keys_, environ, names):
        from .crypto.kms import store
        return getattr(store, fn_name)(keys_, environ, names)
    return action


_keys_command("init", _store_action("init_keys"),
              "Create version 1 of each KMS key that its key store lacks: a data key generated by the KMS, "
              "stored wrapped (the store holds no key in clear). Existing keys are left alone.")
_keys_command("rotate", _store_action("rotate_keys"),
              "Add a new data-key version, wrapped by the KEK's newest version. Running workers reload the key "
              "store and protect new records with it; older versions stay for reveal and dead letters.")
_keys_command("rewrap", _store_action("rewrap_keys"),
              "Rewrap every stored data-key version under the KEK's newest version (after a KEK rotation in "
              "the KMS). The data keys, and so the outputs, do not change.")


@main.group()
def crypto() -> None:
    """Cryptographic primitives, for interoperability checks."""


@crypto.command("ff1")
@click.option("--key-hex", required=True, help="AES key, 32/48/64 hex digits")
@click.option("--tweak-hex", default="", help="tweak, hex (default: empty)")
@click.option("--alphabet", required=True, help="numeral alphabet in order, e.g. 0123456789")
@click.option("--decrypt", is_flag=True, help="decrypt instead of encrypt")
@click.argument("value")
def crypto_ff1(key_hex: str, tweak_hex: str, alphabet: str, decrypt: bool, value: str) -> None:
    """FF1 (NIST SP 800-38G Rev.1) of VALUE over ALPHABET; prints the result."""
    from .crypto.ff1 import FF1
    try:
        key, tweak = bytes.fromhex(key_hex), bytes.fromhex(tweak_hex)
    except ValueError:
        raise click.BadParameter("not hexadecimal", param_hint="--key-hex/--tweak-hex") from None
    try:
        f = FF1(key, alphabet)
        click.echo(f.decrypt(value, tweak) if decrypt else f.encrypt(value, tweak))
    except ValueError as e:
        raise click.ClickException(str(e)) from None


@main.command()
@click.option("--topic", default=None, help="Kafka topic to sample (with --bootstrap-servers)")
@click.option("--bootstrap-servers", default=None, help="Kafka bootstrap servers HOST:PORT[,HOST:PORT]")
@click.option("--file", "file_", default=None, type=click.Path(dir_okay=False, allow_dash=True),
              help="JSON-lines file to sample instead of a topic ('-' = stdin)")
@click.option("--sample", type=click.IntRange(min=1), default=1000, show_default=True,
              help="records to read (a topic's newest, a file's first)")
@click.option("--region", "regions", multiple=True,
              help="phone detector: also read national numbers of this region (ISO 3166-1, repeatable)")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON instead of a table")
@click.option("--all-fields", is_flag=True, help="table: list fields without personal data too")
@click.option("--suggest-policy", "suggest", default=None, type=click.Path(dir_okay=False),
              help="write a starter policy protecting every personal field to this YAML file")
@click.option("--timeout", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="topic: seconds to wait for records")
@click.option("--format", "fmt", type=click.Choice(["json", "avro"]), default="json", show_default=True,
              help="avro: Confluent-framed Avro values read through the schema registry (--schema-registry); "
                   "the report gives each field's confluent:tags")
def scan(topic, bootstrap_servers, file_, sample, regions, as_json, all_fields, suggest, timeout, fmt) -> None:
    """Find which fields of a topic or JSON-lines file hold personal data, and how often.

    Prints, per field path, every kind found (detector), in how many sampled records and whether
    it fills the whole value; no record value is ever printed. --suggest-policy writes a policy
    that `dpp check` accepts (minimum-necessary defaults; review it before use).
    """
    from tqdm import tqdm

    from .scan import parse_values, read_jsonl, scan_records, suggest_policy, format_table
    if (topic is None) == (file_ is None):
        raise click.UsageError("give exactly one of --topic or --file")
    if topic is not None and not bootstrap_servers:
        raise click.UsageError("--topic needs --bootstrap-servers")
    if topic is not None:
        from .stream.sample import TopicNotFound, sample_topic
        raw = sample_topic(bootstrap_servers, topic, sample, timeout_s=timeout)
        source = topic
    else:
        if file_ != "-" and not Path(file_).is_file():
            raise click.UsageError(f"no such file: {file_}")
        raw = read_jsonl(file_, sample)
        source = "records" if file_ == "-" else Path(file_).stem
        TopicNotFound = LookupError  # noqa: N806 - only topics raise it
    if fmt == "avro":
        from .formats.avro import AvroReader
        from .scan import parse_avro
        if topic is None:
            raise click.UsageError("--format avro reads a topic (--topic)")
        registry = _schema_source()
        if registry is None:
            raise click.UsageError("--format avro needs a schema registry (dpp --schema-registry URL scan ..., "
                                   "or DPP_SCHEMA_REGISTRY_URL)")
        parsed = parse_avro(raw, AvroReader(registry))
    else:
        parsed = parse_values(raw)
    bar = tqdm(parsed, total=sample, desc="sampling", unit="rec", file=sys.stderr,
               disable=None, leave=False)
    try:
        report = scan_records(bar, regions=regions)
    except TopicNotFound as e:
        raise click.ClickException(str(e)) from None
    except DependencyUnavailable as e:
        raise click.ClickException(f"the schema registry cannot be reached ({e.dependency})") from None
    except ValueError as e:  # unknown region: names the region code, never data
        raise click.BadParameter(str(e), param_hint="--region") from None
    finally:
        bar.close()
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(format_table(report, all_fields=all_fields))
    if suggest:
        Path(suggest).write_text(suggest_policy(report, source=source), encoding="utf-8")
        click.echo(f"suggested policy written to {suggest}; check it with: dpp check {suggest}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
