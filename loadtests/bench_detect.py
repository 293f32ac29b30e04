#!/usr/bin/env python
"""Benchmark (not a test): dpp's detectors vs Presidio's analyzer, MB/s of text, side by side.

Run from the repository root (needs ``pip install presidio-analyzer spacy``; no spaCy model)::

    python loadtests/bench_detect.py [--samples 5000] [--seed 7] [--repeat 5] [--with-phone]
                                     [--presidio both|noop|spacy-blank] [--clock cpu|wall]

Both sides scan the same labeled corpus (``loadtests/detect_corpus.py``: zh_CN/en_US text with
hard negatives) for the same kinds, one text at a time, in one process. Two comparisons: (1) the
kinds Presidio has pattern recognizers for (card, e-mail, IP, IBAN), each side with its own
recognizers; (2) every pattern kind, where Presidio gets custom recognizers for the kinds it
lacks. Each comparison times dpp and Presidio on both NLP engines (below) in the same run.

* **dpp**: :func:`proxy.detectors.find_all` with the kinds compared (``phone`` apart);
* **Presidio**: ``AnalyzerEngine`` restricted to pattern recognizers, with no NLP model, on two
  NLP engines: ``NoOpNlpEngine`` (Presidio's engine for recognizers that need no NLP artifacts:
  the fastest Presidio can be) and a ``SpacyNlpEngine`` on ``spacy.blank("en")`` (a tokenizer but
  no trained model: the least a default setup runs). Built-in recognizers for the
  kinds it has: ``CreditCardRecognizer``, ``EmailRecognizer``, ``IpRecognizer``,
  ``IbanRecognizer``; for the PRC / Hong Kong / Macao kinds it has none, so it gets
  ``PatternRecognizer`` subclasses with dpp's own regular expressions and check functions in
  ``validate_result`` (what a Presidio user would write), so both sides do the same validation.
  ``EmailRecognizer`` calls ``tldextract``, which would fetch the public-suffix list from the
  internet: it is pointed at the list bundled with tldextract (no network).

``--with-phone`` adds a third comparison for telephone numbers: dpp's ``phone`` detector vs
Presidio's ``PhoneRecognizer`` (both on libphonenumber, regions US and GB).

Throughput is UTF-8 megabytes of corpus text per second, best of ``--repeat`` passes over the
corpus; the engines take turns pass by pass (dpp, Presidio NoOp, Presidio spaCy, dpp, …), so a
change in machine load hits them alike. ``--clock cpu`` (default) times the process's CPU time
(``time.process_time``: both engines are single-threaded), which other jobs on a shared machine
disturb far less than wall time (``--clock wall``). Timed is each engine's own call on one text,
``find_all(text, detectors)`` and ``AnalyzerEngine.analyze(text, language="en")``; turning the
results into ``(start, end, kind)`` for scoring is not timed. Quality is
measured with overlap matching (a label counts as found when a detection of the same kind
overlaps it), because Presidio's spans may include neighbouring characters; dpp's exact-span
figures are in ``detect_corpus.py``.
"""
from __future__ import annotations

import argparse
import platform
import re
import sys
import time
from functools import partial
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# Run as a script, this folder would come first on sys.path, and loadtests/profile.py would then
# shadow the standard library's profile module (which spaCy imports through cProfile).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))  # run from a checkout

from loadtests.detect_corpus import REGIONS, Counts, evaluate, generate_corpus  # noqa: E402

from proxy.detectors import build_detectors, find_all  # noqa: E402
from proxy.detectors.checksums import cn_resident_id_legacy_valid, cn_resident_id_valid  # noqa: E402
from proxy.detectors.registry import DETECTOR_CLASSES  # noqa: E402

PATTERN_KINDS = [k for k in DETECTOR_CLASSES if k != "phone"]
BUILTIN_KINDS = ["bank_card", "email", "ipv4", "ipv6", "iban"]
"""The kinds Presidio ships pattern recognizers for (CREDIT_CARD, EMAIL_ADDRESS, IP_ADDRESS, IBAN_CODE)."""

_PRESIDIO_BUILTIN = {"CREDIT_CARD": "bank_card", "EMAIL_ADDRESS": "email", "IBAN_CODE": "iban"}


def _presidio_custom_recognizers():
    """PatternRecognizers for the kinds Presidio has no recognizer for: dpp's regex + checks."""
    from presidio_analyzer import Pattern, PatternRecognizer

    recognizers = []
    for kind in ("cn_resident_id", "cn_mobile", "cn_uscc", "cn_passport", "hk_id", "macau_id", "hk_macau_permit",
                 "cn_licence_plate"):
        det = DETECTOR_CLASSES[kind]()
        rx = det.pattern
        entity = det.placeholder

        if kind == "cn_resident_id":
            def check(s, _rx=rx):
                return cn_resident_id_valid(s) if len(s) == 18 else cn_resident_id_legacy_valid(s)
        else:
            def check(s, _rx=rx, _det=det):
                m = _rx.fullmatch(s)
                return m is not None and _det.validate(m)

        class _Rec(PatternRecognizer):
            def validate_result(self, pattern_text: str, _check=check) -> bool:  # noqa: D102
                return bool(_check(pattern_text))

        recognizers.append(_Rec(supported_entity=entity, name=f"{entity}_recognizer",
                                patterns=[Pattern(kind, rx.pattern, 0.6)], global_regex_flags=re.DOTALL | re.MULTILINE))
    return recognizers


def make_presidio(spacy_blank: bool, phone_only: bool = False, builtin_only: bool = False):
    """An ``AnalyzerEngine`` with pattern recognizers only: Presidio's four for card, e-mail, IP
    and IBAN, plus (unless ``builtin_only``) the PRC/HK/Macao ones; or only ``PhoneRecognizer``."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer, EmailRecognizer, IbanRecognizer, IpRecognizer, PhoneRecognizer,
    )

    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())  # bundled snapshot, no network
    if phone_only:
        recognizers = [PhoneRecognizer(supported_regions=list(REGIONS))]
    else:
        recognizers = [CreditCardRecognizer(), EmailRecognizer(), IpRecognizer(), IbanRecognizer()]
        if not builtin_only:
            recognizers += _presidio_custom_recognizers()
    if spacy_blank:
        import spacy
        from presidio_analyzer.nlp_engine import SpacyNlpEngine

        class BlankSpacy(SpacyNlpEngine):
            """spaCy tokenizer only: nothing to download."""

            def load(self) -> None:
                self.nlp = {"en": spacy.blank("en")}

        engine = BlankSpacy(models=[{"lang_code": "en", "model_name": "blank"}])
    else:
        from presidio_analyzer.nlp_engine import NoOpNlpEngine
        engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    engine.load()
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])


def presidio_finder(analyzer):
    """``find(text) -> [(start, end, kind)]`` over Presidio results, entity types mapped to dpp kinds."""
    custom = {DETECTOR_CLASSES[k].placeholder: k for k in DETECTOR_CLASSES}

    def find(text: str):
        out = []
        for r in analyzer.analyze(text=text, language="en"):
            et = r.entity_type
            if et == "IP_ADDRESS":
                kind = "ipv6" if ":" in text[r.start:r.end] else "ipv4"
            elif et == "PHONE_NUMBER":
                kind = "phone"
            else:
                kind = _PRESIDIO_BUILTIN.get(et) or custom.get(et)
            if kind:
                out.append((r.start, r.end, kind))
        return out
    find.timed = partial(analyzer.analyze, language="en")
    return find


def dpp_find(names, regions=()):
    """``find(text) -> [(start, end, kind)]`` over :func:`find_all`; ``find.timed`` is the call
    the benchmark times (``find_all`` itself)."""
    dets = build_detectors(names, regions=regions)

    def find(text: str):
        return [(f.start, f.end, f.detector) for f in find_all(text, dets)]
    find.timed = partial(find_all, detectors=dets)
    return find


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def best_seconds(fns: dict, texts, repeat: int, clock=time.process_time) -> dict:
    """``{name: best seconds}`` for one pass of each ``fns[name].timed`` (the engine's own call) over
    ``texts``: ``repeat`` rounds, the engines taking turns within each round (interleaved, so load
    changes hit them alike)."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, find in fns.items():
            fn = find.timed
            t0 = clock()
            for t in texts:
                fn(t)
            best[name] = min(best[name], clock() - t0)
    return best


def _table(kinds, q: dict[str, dict[str, Counts]]) -> str:
    names = list(q)
    head = "| kind | labels | " + " | ".join(f"{n} precision | {n} recall" for n in names) + " |"
    lines = [head, "|---|---:|" + "---:|" * (2 * len(names))]
    first = q[names[0]]
    for k in kinds:
        cells = " | ".join(f"{q[n][k].precision:.4f} | {q[n][k].recall:.4f}" for n in names)
        lines.append(f"| {k} | {first[k].tp + first[k].fn} | {cells} |")

    def tot(d, f):
        return sum(getattr(d[k], f) for k in kinds)

    cells = []
    for n in names:
        d = q[n]
        cells.append(f"{tot(d, 'tp') / max(1, tot(d, 'tp') + tot(d, 'fp')):.4f} | "
                     f"{tot(d, 'tp') / max(1, tot(d, 'tp') + tot(d, 'fn')):.4f}")
    lines.append(f"| **all** | {tot(first, 'tp') + tot(first, 'fn')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _recall(c: dict[str, Counts], kinds) -> float:
    tp = sum(c[k].tp for k in kinds)
    return tp / max(1, tp + sum(c[k].fn for k in kinds))


def compare(title, texts, corpus, kinds, engines: dict, repeat, mb, clock) -> dict[str, float]:
    """Time and score ``engines`` (``{label: find}``, dpp first); returns ``{presidio label:
    speed-up of dpp}``."""
    for fn in engines.values():
        evaluate(corpus[:50], fn, relaxed=True, kinds=kinds)  # warm-up (lazy compiles, caches)
    secs = best_seconds(engines, texts, repeat, clock)
    quality = {name: evaluate(corpus, fn, relaxed=True, kinds=kinds) for name, fn in engines.items()}
    ours = next(iter(engines))
    print(f"\n## {title}\n")
    print("| engine | seconds | MB/s | µs/text | dpp speed-up |\n|---|---:|---:|---:|---:|")
    for name, t in secs.items():
        up = "" if name == ours else f"**{t / secs[ours]:.1f}x**"
        print(f"| {name} | {t:.3f} | {mb / t:.2f} | {t / len(texts) * 1e6:.1f} | {up} |")
    print()
    print(_table(kinds, quality))
    r_ours = _recall(quality[ours], kinds)
    for name in secs:
        if name != ours:
            r = _recall(quality[name], kinds)
            print(f"\nrecall dpp {r_ours:.4f} vs {name} {r:.4f}: {'equal or better' if r_ours >= r else 'LOWER'}", end="")
    print()
    return {name: secs[name] / secs[ours] for name in secs if name != ours}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--with-phone", action="store_true", help="also compare telephone numbers (libphonenumber)")
    ap.add_argument("--presidio", choices=["both", "noop", "spacy-blank"], default="both",
                    help="Presidio NLP engine(s): NoOpNlpEngine, spaCy blank('en'), or both (default)")
    ap.add_argument("--spacy-blank", action="store_true", help="same as --presidio spacy-blank")
    ap.add_argument("--clock", choices=list(CLOCKS), default="cpu", help="process CPU time (default) or wall time")
    args = ap.parse_args(argv)
    setups = {"both": ["noop", "spacy-blank"], "noop": ["noop"], "spacy-blank": ["spacy-blank"]}[
        "spacy-blank" if args.spacy_blank else args.presidio]
    label = {"noop": "Presidio (NoOp)", "spacy-blank": "Presidio (spaCy blank)"}
    clock = CLOCKS[args.clock]

    from importlib.metadata import version
    corpus = generate_corpus(args.samples, args.seed)
    texts = [s.text for s in corpus]
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    print(f"# detect benchmark: {len(texts)} texts, {mb:.3f} MB UTF-8, seed {args.seed}")
    print(f"python {platform.python_version()}, presidio-analyzer {version('presidio-analyzer')}, "
          f"{platform.machine()}, Presidio NLP engines: {', '.join(label[x] for x in setups)}; "
          f"clock: {args.clock} ({clock.__name__}), best of {args.repeat} interleaved passes")

    def engines(kinds, regions=(), **kw):
        out = {"dpp find_all": dpp_find(kinds, regions)}
        for x in setups:
            out[label[x]] = presidio_finder(make_presidio(x == "spacy-blank", **kw))
        return out

    up_builtin = compare("Presidio's own pattern recognizers and the same kinds in dpp (card, e-mail, IPv4/IPv6, IBAN)",
                         texts, corpus, BUILTIN_KINDS, engines(BUILTIN_KINDS, builtin_only=True), args.repeat, mb, clock)
    up_all = compare("all pattern kinds (every dpp detector but phone; Presidio gets PatternRecognizers "
                     "with dpp's regexes and checks for the PRC/HK/Macao kinds)", texts, corpus, PATTERN_KINDS,
                     engines(PATTERN_KINDS), args.repeat, mb, clock)
    if args.with_phone:
        compare(f"telephone numbers (libphonenumber both sides, regions {', '.join(REGIONS)})", texts, corpus,
                ["phone"], engines(["phone"], REGIONS, phone_only=True), args.repeat, mb, clock)
    print()
    for name in up_all:
        a, b = up_builtin[name], up_all[name]
        print(f"target >= 10x vs {name}: Presidio's own kinds {a:.1f}x ({'met' if a >= 10 else 'NOT met'}), "
              f"all pattern kinds {b:.1f}x ({'met' if b >= 10 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
