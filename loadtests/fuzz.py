"""Coverage-guided fuzzing (atheris) of the record path and the policy loader, and the oracle both
the fuzzers and the hypothesis tests (``tests/property/test_hostile_records.py``) check.

    python -m loadtests.fuzz --cases 1000000 [--target record|policy|both] [--policy FILE]

* ``record``: the bytes are a record value for ``policies/examples/customer-pii.yaml`` (test keys),
  run through the reference path (:meth:`CompiledRoute.process`), the generated batch path in
  pure Python (``DPP_NATIVE=0``) and the batch path with the C accelerator; :class:`RecordOracle`
  says what is wrong, if anything (an exception escaped, an outcome that is none of sink / dead
  letter / counted block, the paths disagree in bytes, outcomes or counters, an original value of
  a ruled field in the output).
* ``policy``: the bytes are policy YAML; :func:`check_policy_text` — loading either succeeds or
  raises :class:`~proxy.errors.PolicyError` whose every line is ``FILE:LINE: PATH: message``.

Prints the cases run, crashes and leaks per target; exit status 1 when anything was found. Each
finding is written once (by kind) to ``--out`` (default ``.cache/fuzz``) as the input bytes, so it
can be replayed (``--replay FILE``). Long runs are not part of CI; ``tests/unit/test_fuzz_targets.py``
runs a few thousand cases of each target.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any, Callable

import contextlib


def _instrumented():
    """Run as ``python -m loadtests.fuzz`` with atheris: the ``proxy`` modules imported below are
    instrumented for coverage (atheris.instrument_imports), else a no-op."""
    if __name__ != "__main__" or "--no-atheris" in sys.argv or "--replay" in sys.argv:
        return contextlib.nullcontext()
    try:
        import atheris
    except ImportError:
        return contextlib.nullcontext()
    return atheris.instrument_imports(include=["proxy"])


with _instrumented():
    import orjson

    import proxy.crypto.ff1, proxy.detectors.registry, proxy.transforms.detect  # noqa: E401,F401 - instrumented
    from proxy.errors import PolicyError, Reason
    from proxy.formats.json import dumps_record, loads_record
    from proxy.policy.compiler import BLOCK, DEAD_LETTER, SINK, CompiledRoute, Outcome, compile_policy
    from proxy.policy.loader import load_policy_text
    from proxy.policy.paths import KeyChoice, compile_visit, parse_path
    from proxy.transforms.mask import SEPARATOR_CATEGORIES

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "policies" / "examples" / "customer-pii.yaml"

PROTECTING = frozenset({"mask", "fpe", "pseudonymize", "tokenize", "drop", "redact"})
"""Actions after which no original string of the field may appear in the output."""
MIN_SECRET = 4
"""Shortest original value (characters) the leak check looks for."""
REASONS = frozenset(r.value for r in Reason)
PROBLEM_LINE = re.compile(r"^.+:(\d+|\?): \S.*: .+$", re.S)
"""A ``FILE:LINE: PATH: message`` line of :class:`PolicyError` (``?`` for an unknown line)."""


def test_environ(policy_text: str, fill: str = "5a") -> dict[str, str]:
    """An environment with a 32-byte hex key (``fill`` repeated) under every ``name:`` the policy's
    ``source: env`` keys use (the example policies and the generated ones)."""
    names = set(re.findall(r"name:\s*([A-Za-z_][A-Za-z0-9_]*)", policy_text))
    return {n: fill * 32 for n in names}


ORACLE_NOW = 1_000_000.0
"""The clock (epoch seconds) of the oracle's routes: ``retention`` must give one outcome on every
path, so "now" is fixed (``tests/hostilekit.py`` draws event times around it)."""


class RecordOracle:
    """One policy compiled four ways: the reference route, the batch path without and with the C
    accelerator (same keys), and a reference route with other keys (for the leak check).

    :meth:`check` ``(value: bytes | None) -> list[str]`` returns the problems of one record (empty:
    fine); each problem is a short kind (``crash``, ``outcome``, ``disagree``, ``counters``, ``leak``)
    then ``:`` and a description holding rule labels, never record text.
    """

    def __init__(self, policy_text: str, file: str = "<fuzz>", route: str | None = None):
        self.text = policy_text
        loaded = load_policy_text(policy_text, file)
        env_a, env_b = test_environ(policy_text, "5a"), test_environ(policy_text, "a5")
        self.ref = compile_policy(loaded, environ=env_a).route(route)
        self.other = compile_policy(loaded, environ=env_b).route(route)
        self.batches: list[tuple[str, CompiledRoute]] = []
        saved = os.environ.get("DPP_NATIVE")
        try:
            for native in ("0", "1"):
                os.environ["DPP_NATIVE"] = native
                r = compile_policy(loaded, environ=env_a).route(route)
                if native == "0" or r.record_path.startswith("native"):  # native or native-json
                    self.batches.append((r.record_path, r))
        finally:
            if saved is None:
                os.environ.pop("DPP_NATIVE", None)
            else:
                os.environ["DPP_NATIVE"] = saved
        for r in [self.ref, self.other] + [b for _, b in self.batches]:
            r.clock = lambda: ORACLE_NOW  # retention: every path judges event times at one "now"
        model = loaded.policy.routes[[r.name for r in loaded.policy.routes].index(self.ref.name)]
        self.block_reasons = {b.reason for b in model.block} | (
            {Reason.RETENTION_EXPIRED.value} if model.retention is not None else set())
        self._ruled = []   # (visit, rule) for protecting rules on field paths
        self._masking = []  # visits of rules whose output keeps part of the input (mask, detect)
        for rule in self.ref.rules:
            if rule.action in PROTECTING:
                self._ruled.append((compile_visit(parse_path(rule.field)), rule))
            if rule.action in ("mask", "detect"):
                self._masking.append(compile_visit(parse_path(rule.field)))

    # -- the leak check -------------------------------------------------------------------------
    def originals(self, value: bytes) -> list[str]:
        """Strings (>= :data:`MIN_SECRET` characters) under a protecting rule in the parsed record
        that may not appear in the output: not in the policy text, not anywhere in the record
        outside the ruled nodes (member names, other fields), not a mask result by coincidence."""
        try:
            tree = loads_record(value)
        except (orjson.JSONDecodeError, TypeError):
            return []
        if type(tree) is not dict:
            return []
        found: list[tuple[str, Any]] = []
        hits: list = []

        def collect(node, rule, depth=0):
            if type(node) is str:
                if len(node) >= MIN_SECRET:
                    found.append((node, rule))
            elif depth < 64 and rule.action in ("drop", "redact"):
                if type(node) is dict:
                    for v in node.values():
                        collect(v, rule, depth + 1)
                elif type(node) is list:
                    for v in node:
                        collect(v, rule, depth + 1)

        for visit, rule in self._ruled:
            visit(tree, lambda c, k, rule=rule: (collect(c[k], rule), hits.append((c, k))))
        if not found:
            return []
        for c, k in hits:  # the residue: the record with every ruled node blanked
            c[k] = None
        try:
            residue = dumps_record(tree).decode("utf-8", "replace")
        except (TypeError, orjson.JSONEncodeError):
            return []
        # a string a mask rule may give back unchanged ("****") may appear in the output through
        # that rule, whatever another rule did to the same string elsewhere in the record
        kept = {s for s, rule in found if rule.action == "mask" and _mask_may_keep(s, rule)}
        out = []
        for s, rule in found:
            if s in self.text or s in residue or orjson.dumps(s)[1:-1].decode() in residue or s in kept:
                continue
            out.append(s)
        return out

    def check(self, value: bytes | None) -> list[str]:
        problems: list[str] = []
        try:
            want = self.ref.process(value)
        except Exception as e:  # noqa: BLE001 - a finding, reported by class only
            return [f"crash: reference path raised {type(e).__name__}"]
        problems += self._outcome_problems(want, value)
        want_counts = _counters(self.ref)
        for name, r in self.batches:
            try:
                got = r.process_batch([value])
            except Exception as e:  # noqa: BLE001
                problems.append(f"crash: {name} batch path raised {type(e).__name__}")
                _counters(r)
                continue
            if got != [want]:
                problems.append(f"disagree: {name} batch path {_brief(got[0] if got else None)} "
                                f"!= reference {_brief(want)}")
            counts = _counters(r)
            if counts != want_counts:
                problems.append(f"counters: {name} batch path {counts} != reference {want_counts}")
        if want.kind == SINK and want.value is not None and value is not None:
            secrets = self.originals(value)
            if secrets:
                try:
                    other = self.other.process(value)
                except Exception as e:  # noqa: BLE001
                    return problems + [f"crash: reference path (other keys) raised {type(e).__name__}"]
                _counters(self.other)
                both = [self._without_mask_products(want.value, value),
                        self._without_mask_products(other.value or b"", value)]
                for s in secrets:
                    forms = (s.encode("utf-8", "surrogatepass"), orjson.dumps(s)[1:-1])
                    if all(any(f in b for f in forms) for b in both):  # under both keys: in clear
                        problems.append("leak: an original value of a ruled field is in the sink output")
                        break
        return problems

    def _without_mask_products(self, out: bytes, value: bytes) -> bytes:
        """``out`` with the values that mask/detect rules changed blanked: a mask result
        (``1******``, ``****``) may equal another field's original by coincidence. A value a mask
        rule left unchanged stays (it is that rule's own leak, if any)."""
        if not self._masking:
            return out
        try:
            got, sent = loads_record(out), loads_record(value)
        except orjson.JSONDecodeError:
            return out
        for visit in self._masking:
            a: list = []
            b: list = []
            visit(got, lambda c, k: a.append((c, k)))
            visit(sent, lambda c, k: b.append(c[k]))
            for (c, k), before in zip(a, b):
                if c[k] != before:
                    c[k] = None
        try:
            return dumps_record(got)
        except (TypeError, orjson.JSONEncodeError):
            return out

    def _outcome_problems(self, out: Outcome, value: bytes | None) -> list[str]:
        if type(out) is not Outcome:
            return [f"outcome: {type(out).__name__} instead of an Outcome"]
        if out.kind == SINK:
            if value is None:
                return [] if out.value is None else ["outcome: a tombstone became a value"]
            return [] if type(out.value) is bytes else ["outcome: a sink outcome without bytes"]
        if out.kind == DEAD_LETTER:
            bad = []
            if out.value is not None:
                bad.append("outcome: a dead-letter outcome carries a value")
            if out.reason not in REASONS:
                bad.append(f"outcome: unknown dead-letter reason {out.reason[:40]!r}")
            return bad
        if out.kind == BLOCK:
            return [] if out.reason in self.block_reasons else ["outcome: a block with a reason not in the policy"]
        return [f"outcome: unknown kind {out.kind[:20]!r}"]


def _mask_may_keep(s: str, rule) -> bool:
    """Whether ``mask`` could give ``s`` back unchanged: every character it may change is already
    the mask character, a separator (kept unless ``mask_separators``), or within the kept ends."""
    changing = [c for c in s if c != rule.mask_char
                and (rule.mask_separators or unicodedata.category(c) not in SEPARATOR_CATEGORIES)]
    return len(changing) <= rule.keep_first + rule.keep_last


def _counters(route: CompiledRoute) -> tuple:
    s = route.stats.drain()
    return s.consumed, s.produced, s.blocked, s.dead_lettered, s.transforms, s.unmatched


def _brief(out: Any) -> str:
    """An outcome described without its value bytes."""
    if type(out) is not Outcome:
        return type(out).__name__
    return f"{out.kind}/{out.reason}/{out.rule}" + (f"/{len(out.value)}B" if type(out.value) is bytes else "")


def check_policy_text(data: bytes, file: str = "fuzz.yaml") -> list[str]:
    """Problems of loading ``data`` as policy YAML (empty: it loaded, or failed with a proper
    :class:`PolicyError`). Undecodable bytes are decoded with replacement characters first (the
    CLI reads files as UTF-8 text)."""
    text = data.decode("utf-8", "replace")
    try:
        load_policy_text(text, file)
    except PolicyError as e:
        lines = str(e).splitlines()
        if not lines:
            return ["policy-error: an empty PolicyError message"]
        for p in e.problems:
            if p[0] != file or not (p[1] is None or (type(p[1]) is int and p[1] >= 1)):
                return [f"policy-error: a problem without FILE:LINE ({p[1]!r})"]
        rendered = str(e)
        if not rendered.startswith(file + ":"):
            return ["policy-error: the message does not start with FILE:LINE"]
        return []
    except RecursionError:
        return ["crash: policy loader raised RecursionError"]
    except Exception as e:  # noqa: BLE001
        return [f"crash: policy loader raised {type(e).__name__}"]
    return []


# ----------------------------------------------------------------------------------- the runner
@dataclasses.dataclass
class Tally:
    """Counts of one target's run."""

    target: str
    cases: int = 0
    crashes: int = 0
    leaks: int = 0
    other: int = 0
    kinds: dict = dataclasses.field(default_factory=dict)

    def add(self, problems: list[str], data: bytes, out: Path | None) -> None:
        self.cases += 1
        for p in problems:
            kind = p.split(":", 1)[0]
            if kind == "crash":
                self.crashes += 1
            elif kind == "leak":
                self.leaks += 1
            else:
                self.other += 1
            if p not in self.kinds:
                self.kinds[p] = 0
                if out is not None:
                    out.mkdir(parents=True, exist_ok=True)
                    (out / f"{self.target}-{len(self.kinds):03d}.bin").write_bytes(data)
                print(f"[{self.target}] new finding after {self.cases} cases: {p}", file=sys.stderr, flush=True)
            self.kinds[p] += 1

    def line(self) -> str:
        return (f"{self.target}: cases={self.cases} crashes={self.crashes} leaks={self.leaks} "
                f"other={self.other} distinct={len(self.kinds)}")


class _Reader:
    """Bytes consumed as small choices (0 once exhausted)."""

    def __init__(self, data: bytes):
        self.data, self.i = data, 0

    def byte(self) -> int:
        if self.i >= len(self.data):
            return 0
        self.i += 1
        return self.data[self.i - 1]

    def pick(self, seq):
        return seq[self.byte() % len(seq)]


TEXTS = ["13900001111", "4111111111111111", "6222021234567890123", "bob@example.com", "11010119900307777X",
         "Wang Xiaoming", "1990-03-07", "100020", "2001:db8::1", "192.168.1.1", "王小明", "１３９００００１１１１",
         "e\u0301", "\ud800", "\udc00x", "\ud83d\ude00", "\u0000", "****", "a@b.c", "    ", "1-1-1-1-1"]
NUMBERS = ["0", "-0", "1", "-1", "1.5", "1e308", "5e-324", "1e400", "NaN", "-Infinity", "9223372036854775808",
           "18446744073709551616", "-9223372036854775809", "123456789012345678901234567890", "1" * 19, "01", "1."]


def structured_record(data: bytes, names: list[str]) -> bytes:
    """A JSON-ish object decoded from ``data``: member names from ``names`` (the policy's path
    segments) or the bytes, values from :data:`TEXTS`/:data:`NUMBERS`, text from the bytes (any
    code point), nested objects and arrays, duplicate names; ``\\u`` escapes are kept as written,
    so lone surrogates and broken escapes occur. The structure-aware half of the record target."""
    rd = _Reader(data)

    def text() -> str:
        n = rd.byte() % 12
        chars = []
        for _ in range(n):
            cp = (rd.byte() << 8 | rd.byte()) if rd.byte() & 1 else rd.byte()
            if rd.byte() & 3 == 0:
                cp = 0x10000 + (cp << 4 | rd.byte() & 15) % 0x100000
            c = chr(cp)
            chars.append(orjson.dumps(c)[1:-1].decode() if 0xD800 > cp or cp > 0xDFFF else f"\\u{cp:04x}")
        return "".join(chars)

    def value(depth: int) -> str:
        k = rd.byte() % 9
        if k == 0:
            return '"' + rd.pick(TEXTS) + '"'
        if k == 1:
            return '"' + text() + '"'
        if k == 2:
            return rd.pick(NUMBERS)
        if k == 3:
            return rd.pick(["true", "false", "null"])
        if k in (4, 5) and depth < 4:
            return obj(depth + 1)
        if k == 6 and depth < 4:
            return "[" + ",".join(value(depth + 1) for _ in range(rd.byte() % 4)) + "]"
        if k == 7:
            return '"' + rd.pick(TEXTS) + text() + '"'
        return str((rd.byte() << 8 | rd.byte()) - 30000)

    def obj(depth: int) -> str:
        members = []
        for _ in range(rd.byte() % 6 + (depth == 0) * 3):
            name = rd.pick(names) if rd.byte() % 4 else text()
            members.append(orjson.dumps(name).decode() + ":" + value(depth))
        return "{" + ",".join(members) + "}"

    return obj(0).encode("utf-8", "surrogatepass")


def record_checker(policy: Path = EXAMPLE) -> Callable[[bytes], list[str]]:
    """``check(bytes) -> problems`` of the record target for ``policy``: an input whose first byte
    is odd is decoded by :func:`structured_record`, else the bytes are the record value."""
    oracle = RecordOracle(policy.read_text(), str(policy))
    fields = [r.field for r in oracle.ref.rules] + [b[0].field for b in oracle.ref._blocks]
    names = sorted({k for f in fields for s in parse_path(f)  # the keys of {a,b} alternations too
                    for k in (s if type(s) is KeyChoice else (s,)) if type(k) is str})

    def check(data: bytes) -> list[str]:
        if data and data[0] & 1:
            return oracle.check(structured_record(data[1:], names))
        return oracle.check(data)
    return check


SEEDS_RECORD = [
    b'{"customer_id": "C0012345", "name": "Wang Xiaoming", "id_number": "11010119900307777X", '
    b'"mobile": "13900001111", "email": "bob@example.com", "address": {"street": "1 Main St", '
    b'"postcode": "100020"}, "birth_date": "1990-03-07", "bank_card": "6222021234567890123", '
    b'"orders": [{"card_number": "4111111111111111", "n": 12345678901234567890123}], '
    b'"consent": {"analytics": true}, "note": "call 13900001111"}',
    b'{"consent": {"analytics": false}, "email": "a@b.cn"}',
    b'{"name": "\\ud83d\\ude00\\u738b", "orders": [], "address": null}',
]


def run(target: str, cases: int, seconds: float | None = None, out: Path | None = None,
        policy: Path = EXAMPLE, use_atheris: bool = True) -> Tally:
    """Fuzz one target for ``cases`` inputs (or ``seconds``, whichever ends first). With atheris
    (coverage-guided, libFuzzer) when installed and ``use_atheris``; else random mutations of the
    seeds (:func:`_mutate`). Returns the :class:`Tally`."""
    check = record_checker(policy) if target == "record" else check_policy_text
    tally = Tally(target)
    deadline = time.monotonic() + seconds if seconds else None
    try:
        import atheris  # noqa: F401
    except ImportError:
        use_atheris = False
    if use_atheris:
        return _run_atheris(target, check, tally, cases, deadline, out)
    import random
    rnd = random.Random(12345)
    seeds = SEEDS_RECORD if target == "record" else [EXAMPLE.read_bytes()]
    while tally.cases < cases and (deadline is None or time.monotonic() < deadline):
        data = _mutate(rnd, rnd.choice(seeds))
        tally.add(check(data), data, out)
    return tally


def _mutate(rnd, data: bytes) -> bytes:
    """``data`` with 1-8 random edits (deletions, bytes, hostile snippets, truncation, copies)."""
    b = bytearray(data)
    for _ in range(rnd.randint(1, 8)):
        op = rnd.randrange(5)
        i = rnd.randrange(len(b) + 1)
        if op == 0 and b:
            del b[i % len(b)]
        elif op == 1:
            b[i:i] = bytes([rnd.randrange(256)])
        elif op == 2:
            b[i:i] = rnd.choice([b"\\ud800", b"NaN", b"1e400", b"99999999999999999999", b"[", b"{", b'"', b"\xff",
                                 b"\xf0\x9f\x98\x80", b"-", b"\n  - ", b": ", b"*a", b"&a "])
        elif op == 3:
            del b[i:]
        else:
            j = rnd.randrange(len(b) + 1)
            b[i:i] = b[min(i, j):max(i, j)][:64]
    return bytes(b)


def _run_atheris(target, check, tally: Tally, cases: int, deadline, out) -> Tally:
    """libFuzzer never returns: the report is printed, and the process ends, from the callback
    once ``cases`` inputs ran or the deadline passed (status 1 when anything was found)."""
    import atheris

    t0 = time.monotonic()

    def finish() -> None:
        report(tally, time.monotonic() - t0)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1 if tally.kinds else 0)

    budget = deadline - time.monotonic() if deadline is not None else None
    end = [None]

    def one(data: bytes) -> None:
        if end[0] is None and budget is not None:  # the budget starts with the first input
            end[0] = time.monotonic() + budget
        tally.add(check(data), data, out)
        if tally.cases >= cases or (end[0] is not None and time.monotonic() >= end[0]):
            finish()

    corpus = (out or ROOT / ".cache" / "fuzz") / f"corpus-{target}"
    corpus.mkdir(parents=True, exist_ok=True)
    seeds = SEEDS_RECORD if target == "record" else [EXAMPLE.read_bytes()]
    for i, s in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(s)
    # keep going after findings (the oracle reports, never raises); bounded input size
    atheris.Setup([sys.argv[0], str(corpus), f"-max_len={1 << 14}", "-rss_limit_mb=3072",
                   "-print_final_stats=0", "-print_pcs=0", "-reload=0"], one)
    atheris.Fuzz()
    finish()
    return tally  # not reached


def report(tally: Tally, seconds: float) -> None:
    """Print the tally line and each distinct finding with its count."""
    print(f"{tally.line()} seconds={seconds:.0f}", flush=True)
    for p, n in sorted(tally.kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {n:8d}  {p}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=100_000, help="inputs per target")
    ap.add_argument("--seconds", type=float, default=None, help="stop each target after this long")
    ap.add_argument("--target", choices=["record", "policy", "both"], default="both")
    ap.add_argument("--policy", type=Path, default=EXAMPLE, help="policy of the record target")
    ap.add_argument("--out", type=Path, default=ROOT / ".cache" / "fuzz", help="findings and corpora")
    ap.add_argument("--no-atheris", action="store_true", help="random mutations instead of atheris")
    ap.add_argument("--replay", type=Path, nargs="*", help="check these input files and print the problems")
    a = ap.parse_args(argv)
    targets = ["record", "policy"] if a.target == "both" else [a.target]
    if a.replay:
        check = record_checker(a.policy) if targets[0] == "record" else check_policy_text
        for f in a.replay:
            print(f, check(f.read_bytes()))
        return 0
    found = 0
    for t in targets:
        t0 = time.monotonic()
        if len(targets) > 1 and not a.no_atheris:
            # libFuzzer runs once per process: the second target in a child process
            import subprocess
            cmd = [sys.executable, "-m", "loadtests.fuzz", "--cases", str(a.cases), "--target", t,
                   "--policy", str(a.policy), "--out", str(a.out)] + (["--seconds", str(a.seconds)] if a.seconds else [])
            found |= subprocess.run(cmd, cwd=ROOT).returncode
            continue
        tally = run(t, a.cases, a.seconds, a.out, a.policy, use_atheris=not a.no_atheris)
        report(tally, time.monotonic() - t0)
        found |= bool(tally.kinds)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
