#!/usr/bin/env python
"""Benchmark (not a test): dpp's detectors vs Presidio's analyzer, MB/s of text, side by side.

Run from the repository root (needs ``pip install presidio-analyzer``; no spaCy model)::

    python loadtests/bench_detect.py [--samples 5000] [--seed 7] [--repeat 3] [--with-phone] [--spacy-blank]

Both sides scan the same labeled corpus (``loadtests/detect_corpus.py``: zh_CN/en_US text with
hard negatives) for the same kinds, one text at a time, in one process, one after the other.
Two comparisons: (1) the kinds Presidio has pattern recognizers for (card, e-mail, IP, IBAN),
each side with its own recognizers; (2) every pattern kind, where Presidio gets custom
recognizers for the kinds it lacks.

* **dpp**: :func:`proxy.detectors.find_all` with the kinds compared (``phone`` apart);
* **Presidio**: ``AnalyzerEngine`` restricted to pattern recognizers, with no NLP model:
  ``NoOpNlpEngine`` (Presidio's engine for recognizers that need no NLP artifacts; with
  ``--spacy-blank`` a ``SpacyNlpEngine`` on ``spacy.blank("en")`` instead, i.e. a tokenizer but no
  trained model, which is what a default install would download). Built-in recognizers for the
  kinds it has: ``CreditCardRecognizer``, ``EmailRecognizer``, ``IpRecognizer``,
  ``IbanRecognizer``; for the PRC / Hong Kong / Macao kinds it has none, so it gets
  ``PatternRecognizer`` subclasses with dpp's own regular expressions and check functions in
  ``validate_result`` (what a Presidio user would write), so both sides do the same validation.
  ``EmailRecognizer`` calls ``tldextract``, which would fetch the public-suffix list from the
  internet: it is pointed at the list bundled with tldextract (no network).

``--with-phone`` adds a second comparison for telephone numbers: dpp's ``phone`` detector vs
Presidio's ``PhoneRecognizer`` (both on libphonenumber, regions US and GB).

Throughput is UTF-8 megabytes of corpus text per second, best of ``--repeat`` runs. Quality is
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
    return find


def dpp_find(names, regions=()):
    dets = build_detectors(names, regions=regions)

    def find(text: str):
        return [(f.start, f.end, f.detector) for f in find_all(text, dets)]
    return find


def best_seconds(fn, texts, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for t in texts:
            fn(t)
        best = min(best, time.perf_counter() - t0)
    return best


def _table(kinds, a: dict[str, Counts], b: dict[str, Counts]) -> str:
    lines = ["| kind | labels | dpp precision | dpp recall | Presidio precision | Presidio recall |",
             "|---|---:|---:|---:|---:|---:|"]
    for k in kinds:
        x, y = a[k], b[k]
        lines.append(f"| {k} | {x.tp + x.fn} | {x.precision:.4f} | {x.recall:.4f} | {y.precision:.4f} | {y.recall:.4f} |")
    tot = lambda d, f: sum(getattr(d[k], f) for k in kinds)  # noqa: E731
    ra = tot(a, "tp") / max(1, tot(a, "tp") + tot(a, "fn"))
    rb = tot(b, "tp") / max(1, tot(b, "tp") + tot(b, "fn"))
    pa = tot(a, "tp") / max(1, tot(a, "tp") + tot(a, "fp"))
    pb = tot(b, "tp") / max(1, tot(b, "tp") + tot(b, "fp"))
    lines.append(f"| **all** | {tot(a, 'tp') + tot(a, 'fn')} | {pa:.4f} | {ra:.4f} | {pb:.4f} | {rb:.4f} |")
    return "\n".join(lines)


def compare(title, texts, corpus, kinds, ours, theirs, repeat, mb):
    evaluate(corpus[:50], ours, relaxed=True, kinds=kinds)  # warm-up (lazy compiles, caches)
    evaluate(corpus[:50], theirs, relaxed=True, kinds=kinds)
    t_ours = best_seconds(ours, texts, repeat)
    t_theirs = best_seconds(theirs, texts, max(1, repeat))
    qa = evaluate(corpus, ours, relaxed=True, kinds=kinds)
    qb = evaluate(corpus, theirs, relaxed=True, kinds=kinds)
    print(f"\n## {title}\n")
    print("| engine | seconds | MB/s | µs/text |\n|---|---:|---:|---:|")
    print(f"| dpp find_all | {t_ours:.3f} | {mb / t_ours:.2f} | {t_ours / len(texts) * 1e6:.1f} |")
    print(f"| Presidio AnalyzerEngine | {t_theirs:.3f} | {mb / t_theirs:.2f} | {t_theirs / len(texts) * 1e6:.1f} |")
    print(f"\nspeed-up: **{t_theirs / t_ours:.1f}x**\n")
    print(_table(kinds, qa, qb))
    return t_theirs / t_ours, qa, qb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--with-phone", action="store_true", help="also compare telephone numbers (libphonenumber)")
    ap.add_argument("--spacy-blank", action="store_true", help="Presidio on a blank spaCy pipeline instead of NoOp")
    args = ap.parse_args(argv)

    from importlib.metadata import version
    corpus = generate_corpus(args.samples, args.seed)
    texts = [s.text for s in corpus]
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    print(f"# detect benchmark: {len(texts)} texts, {mb:.3f} MB UTF-8, seed {args.seed}")
    print(f"python {platform.python_version()}, presidio-analyzer {version('presidio-analyzer')}, "
          f"{platform.machine()}, Presidio NLP engine: {'spaCy blank(en)' if args.spacy_blank else 'NoOpNlpEngine'}")
    speedup_builtin, _, _ = compare(
        "Presidio's own pattern recognizers and the same kinds in dpp (card, e-mail, IPv4/IPv6, IBAN)",
        texts, corpus, BUILTIN_KINDS, dpp_find(BUILTIN_KINDS),
        presidio_finder(make_presidio(args.spacy_blank, builtin_only=True)), args.repeat, mb)
    speedup, _, _ = compare("all pattern kinds (every dpp detector but phone; Presidio gets PatternRecognizers "
                            "with dpp's regexes and checks for the PRC/HK/Macao kinds)", texts, corpus, PATTERN_KINDS,
                            dpp_find(PATTERN_KINDS), presidio_finder(make_presidio(args.spacy_blank)),
                            args.repeat, mb)
    if args.with_phone:
        compare(f"telephone numbers (libphonenumber both sides, regions {', '.join(REGIONS)})", texts, corpus,
                ["phone"], dpp_find(["phone"], REGIONS),
                presidio_finder(make_presidio(args.spacy_blank, phone_only=True)), args.repeat, mb)
    print(f"\ntarget >= 10x: Presidio's own kinds {speedup_builtin:.1f}x ({'met' if speedup_builtin >= 10 else 'NOT met'}), "
          f"all pattern kinds {speedup:.1f}x ({'met' if speedup >= 10 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
