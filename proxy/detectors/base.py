"""The shapes every detector shares: :class:`Finding` and the :class:`Detector` base classes.

A detector finds one kind of personal data in a string and **validates** every candidate
(check characters, calendar dates, number ranges) before it reports it. Findings are spans
(``start``/``end`` are ``str`` indexes, end exclusive) and carry the detector's name and priority,
never the matched text, so a finding can be logged or counted without leaking a value.

Boundaries: detectors never use ``\\b`` (in Python it treats CJK characters as word characters,
so ``手机13900001111`` would hide the number); they use explicit ASCII look-arounds such as
``(?<![0-9])`` instead, so digits next to CJK text, emoji or punctuation are still found.

Speed: the :class:`~.engine.Scanner` does not run every detector's regex over every text. A
:class:`RegexDetector` that declares :attr:`~RegexDetector.starts` (the shapes of the ASCII
letter/digit run its matches begin with) is only tried, with ``pattern.match``, where the
engine's single pre-scan (:data:`TOKEN`) found such a run; the others declare a cheap
:meth:`~Detector.prefilter`. Neither may change a result: the findings are those of
:meth:`Detector.find` on the whole text (``tests/unit/test_detectors_prescan.py``).

No Kafka and no third-party imports here (import-linter contract of the policy engine).
"""
from __future__ import annotations

import re
import unicodedata
from functools import partial
from typing import Callable, ClassVar, Iterable, Iterator, NamedTuple

DIGITS = "0123456789"

TOKEN = re.compile(r"[0-9A-Z](?<![0-9A-Za-z][0-9A-Z])(?:(?<=[0-9])|[A-Z]?[0-9])[0-9A-Za-z]*")
"""The engine's pre-scan: every maximal run of ASCII letters and digits that starts with a digit
or a capital letter and holds a digit among its first three characters (``11010519491231002X``,
``GB82``, ``EM0155441``, ``139``; not ``Hello`` nor ``v8``). Every match of a detector with
:attr:`RegexDetector.starts` begins at such a run (or at a declared offset before it)."""


_RUNS = re.compile(r"[0-9]+")
_UPPER = re.compile(r"[A-Z]")


def _nd_zeros(lo: int, hi: int) -> list[int]:
    """Code points in ``[lo, hi)`` of the Unicode decimal digits (category Nd) of value 0."""
    block = "".join(map(chr, range(lo, hi)))
    return [lo + m.start() for m in re.finditer(r"\d", block) if unicodedata.decimal(m.group()) == 0]


def _variant_tables() -> tuple[re.Pattern, dict[int, str]]:
    bmp, smp = _nd_zeros(0x80, 0x10000), _nd_zeros(0x10000, 0x20000)  # no digits above plane 1
    fold = {z + i: str(i) for z in bmp + smp for i in range(10)}
    fold.update({c: chr(c - 0xFEE0) for c in [*range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B)]})
    # plane-1 digit blocks as a few coarse ranges (a cheap test; the table decides): the emoji
    # blocks (U+1F000-1FAFF) stay outside, so emoji text does not take the folding path
    coarse: list[list[int]] = []
    for z in smp:
        if coarse and z - coarse[-1][1] <= 0x1000:
            coarse[-1][1] = z + 9
        else:
            coarse.append([z, z + 9])
    cls = "".join(f"{chr(z)}-{chr(z + 9)}" for z in bmp) + "\uff21-\uff3a\uff41-\uff5a"
    cls += "".join(f"{chr(a)}-{chr(b)}" for a, b in coarse)
    return re.compile(f"[{cls}]"), fold


VARIANTS, _FOLD = _variant_tables()
"""``VARIANTS``: a character that may be a non-ASCII decimal digit (full-width ``１``, Arabic-Indic
``١``, Devanagari ``१``, mathematical ``𝟏`` …, every Unicode ``Nd`` digit) or a full-width Latin
letter (``Ｘ``)."""


def fold_variants(text: str) -> str:
    """``text`` with every non-ASCII decimal digit replaced by its ASCII digit and every
    full-width Latin letter by its ASCII letter (what NFKC does to them), one character for one,
    so indexes into the result are indexes into ``text``. Other characters (full-width
    punctuation such as ``，`` and ``（``, CJK, emoji) are kept. Returns ``text`` itself when
    there is nothing to fold."""
    if text.isascii() or VARIANTS.search(text) is None:
        return text
    return text.translate(_FOLD)


class TextInfo:
    """Facts about a text that :meth:`Detector.possible` judges from (a necessary condition per
    kind, for callers that run detectors one by one; the engine uses :data:`TOKEN` and
    :meth:`Detector.prefilter` instead).

    ``runs``: every maximal run of ASCII digits (``str``); ``lens``: the set of their lengths;
    ``fours``: how many runs have exactly 4 digits; ``short``: how many have 1-3 digits;
    ``ascii``: the text is pure ASCII; ``upper``: it holds an ASCII capital letter.
    """

    __slots__ = ("text", "runs", "lens", "fours", "short", "ascii", "upper")

    def __init__(self, text: str):
        self.text = text
        self.runs = runs = _RUNS.findall(text)
        lengths = list(map(len, runs))
        self.lens = set(lengths)
        self.fours = lengths.count(4)
        self.short = lengths.count(1) + lengths.count(2) + lengths.count(3)
        self.ascii = text.isascii()
        self.upper = _UPPER.search(text) is not None if runs else False


class Finding(NamedTuple):
    """One validated occurrence: ``text[start:end]`` is personal data of kind ``detector``.

    ``priority`` breaks ties between overlapping findings of equal length (higher wins).
    The matched value is deliberately not stored: slice the text you searched.
    """

    start: int
    end: int
    detector: str
    priority: int


new_finding: Callable[[tuple[int, int, str, int]], Finding] = partial(tuple.__new__, Finding)
"""``new_finding((start, end, detector, priority))``: a :class:`Finding` built without the
Python-level ``NamedTuple.__new__`` (the record path creates one per finding)."""


class Start(NamedTuple):
    """Where a detector's match can begin, for the engine's pre-scan (:data:`TOKEN`).

    Together a detector's starts must cover every match of its ``pattern`` that ``finditer``
    finds, with one exception: a match that is exactly one pre-scan run and can never yield a
    finding may be left out (it overlaps no other run, so leaving it out moves no later match),
    which lets ``bank_card`` skip plain digit runs of lengths its issuer rules refuse.

    * ``first``: the possible first characters of the pre-scan run (digits / capital letters);
    * ``lengths``: the possible lengths of that whole run (``LONG`` stands for "this long or
      longer", e.g. ``range(4, LONG + 1)``);
    * ``follow``: if set, the character right after the run must be one of these (e.g. ``" .-"``
      for the first group of a grouped card number); ``None``: anything, or the end of the text;
    * ``offsets``: where the match begins relative to the run's start (``(-1, -2)`` for a
      ``+86``/``(+86)`` country code written before the run ``86…``);
    * ``second``: if set, the run's second character must be one of these (lengths from 2).
    """

    first: str
    lengths: Iterable[int]
    follow: str | None = None
    offsets: tuple[int, ...] = (0,)
    second: str | None = None


LONG = 40
"""Run lengths from ``LONG`` up are one class in :attr:`Start.lengths`."""


Encrypt = Callable[[str, str], str]
"""``encrypt(alphabet, numerals) -> numerals``: the FPE cipher a transform hands to
:meth:`Detector.format_preserving` (same alphabet and length out as in)."""


class Detector:
    """Base class: one kind of personal data.

    Class attributes:

    * ``name``: registry name used in policies and metric labels (``cn_resident_id``);
    * ``placeholder``: the typed placeholder's label (``CN_RESIDENT_ID`` → ``<CN_RESIDENT_ID>``);
    * ``priority``: tie-break between overlapping findings of equal length (higher wins);
    * ``checksum``: True when candidates are validated by a check character/digit;
    * ``fpe_alphabet``: characters FPE encrypts (others stay in place);
    * ``normalize``: canonical form for pseudonyms (``string``, ``phone`` or ``email``; the same
      modes as the ``pseudonymize`` action, so a shared ``domain`` links both);
    * ``report_in_url_path``: False when a finding lying inside a URL's scheme, host or path is
      a resource identifier rather than personal data and is dropped (see :mod:`.urls`).

    Subclasses implement :meth:`find`. Instances are immutable after construction and safe to
    share between threads.
    """

    name: ClassVar[str]
    placeholder: ClassVar[str]
    priority: ClassVar[int] = 50
    checksum: ClassVar[bool] = False
    fpe_alphabet: ClassVar[str] = DIGITS
    normalize: ClassVar[str] = "string"
    description: ClassVar[str] = ""
    report_in_url_path: ClassVar[bool] = False

    def find(self, text: str) -> list[Finding]:
        """Every validated finding in ``text`` (any order, may overlap other detectors' findings)."""
        raise NotImplementedError

    def possible(self, info: TextInfo) -> bool:
        """Cheap necessary condition: False only when :meth:`find` cannot return anything for
        ``info.text`` (e.g. no digit run of a length the kind needs). Default: True."""
        return True

    def prefilter(self, text: str) -> bool:
        """Cheaper necessary condition on the raw text, used by the engine for detectors that
        the pre-scan does not dispatch: False only when :meth:`find` cannot return anything.
        Default: True."""
        return True

    def canonical(self, value: str) -> str:
        """Canonical form of a matched value for pseudonyms: NFC, separators (space, ``-``,
        ``.``) removed, upper-cased. Phone and e-mail detectors override (E.164, lower case)."""
        v = unicodedata.normalize("NFC", value)
        return v.replace(" ", "").replace("-", "").replace(".", "").upper()

    def fpe_keep(self, value: str) -> int:
        """How many leading characters of a matched value FPE leaves as they are (default 0)."""
        return 0

    def format_preserving(self, value: str, encrypt: Encrypt) -> str:
        """Encrypt a matched value keeping its format: the characters of :attr:`fpe_alphabet`
        after the first :meth:`fpe_keep` characters are encrypted together, the rest stays.

        ``encrypt`` may raise (e.g. a domain too small for FF1); the caller turns that into a
        fail-closed record error.
        """
        keep = self.fpe_keep(value)
        alphabet = self.fpe_alphabet
        head, tail = value[:keep], value[keep:]
        pos = [i for i, c in enumerate(tail) if c in alphabet]
        if len(pos) == len(tail):
            return head + encrypt(alphabet, tail)
        enc = encrypt(alphabet, "".join(tail[i] for i in pos))
        chars = list(tail)
        for i, c in zip(pos, enc):
            chars[i] = c
        return head + "".join(chars)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RegexDetector(Detector):
    """A detector made of one candidate regular expression and a :meth:`finding` step
    (by default :meth:`validate`, then the span of ``group``).

    ``pattern`` is compiled once per class. ``group`` selects the span reported (0 = whole
    match). ``trigger`` is an optional substring: when it does not occur in the text, the regex
    is not run at all. ``starts``: the :class:`Start` shapes the matches of ``pattern`` begin
    with; when set, the engine tries ``pattern.match`` only at those places (see :class:`Start`
    for what they must cover: a match anywhere else would be missed). Empty: the engine runs
    :meth:`find` on texts that contain ``trigger`` and pass :meth:`prefilter`.
    """

    pattern: ClassVar[re.Pattern]
    group: ClassVar[int | str] = 0
    trigger: ClassVar[str | None] = None
    starts: ClassVar[tuple[Start, ...]] = ()

    def validate(self, m: re.Match) -> bool:
        """True when the candidate match is a real value of this kind (default: always)."""
        return True

    def finding(self, m: re.Match) -> Finding | None:
        """The validated finding for one candidate match of ``pattern``, or None. Default: the
        span of ``group`` with :attr:`priority` when :meth:`validate` holds. Subclasses that
        shorten the span or vary the priority override this (never :meth:`find`), so the
        engine's pre-scan path and :meth:`find` agree."""
        if self.validate(m):
            g = self.group
            return new_finding((m.start(g), m.end(g), self.name, self.priority))
        return None

    def prefilter(self, text: str) -> bool:
        trig = self.trigger
        return trig is None or trig in text

    def find(self, text: str) -> list[Finding]:
        trig = self.trigger
        if trig is not None and trig not in text:
            return []
        out = []
        finding = self.finding
        for m in self.pattern.finditer(text):
            f = finding(m)
            if f is not None:
                out.append(f)
        return out

    def iter_candidates(self, text: str) -> Iterator[re.Match]:
        """Every regex candidate, validated or not (for diagnostics and tests)."""
        return self.pattern.finditer(text)
