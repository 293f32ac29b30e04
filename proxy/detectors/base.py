"""The shapes every detector shares: :class:`Finding` and the :class:`Detector` base classes.

A detector finds one kind of personal data in a string and **validates** every candidate
(check characters, calendar dates, number ranges) before it reports it. Findings are spans
(``start``/``end`` are ``str`` indexes, end exclusive) and carry the detector's name and priority,
never the matched text, so a finding can be logged or counted without leaking a value.

Boundaries: detectors never use ``\\b`` (in Python it treats CJK characters as word characters,
so ``手机13900001111`` would hide the number); they use explicit ASCII look-arounds such as
``(?<![0-9])`` instead, so digits next to CJK text, emoji or punctuation are still found.

No Kafka and no third-party imports here (import-linter contract of the policy engine).
"""
from __future__ import annotations

import re
import unicodedata
from typing import Callable, ClassVar, Iterator, NamedTuple

DIGITS = "0123456789"


_RUNS = re.compile(r"[0-9]+")
_UPPER = re.compile(r"[A-Z]")


class TextInfo:
    """Facts about a text computed once per :func:`~proxy.detectors.engine.find_all` call, so
    detectors can skip texts that cannot hold their kind without running their regex.

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
    """A detector made of one candidate regular expression and a :meth:`validate` step.

    ``pattern`` is compiled once per class. ``group`` selects the span reported (0 = whole
    match). ``trigger`` is an optional substring: when it does not occur in the text, the regex
    is not run at all.
    """

    pattern: ClassVar[re.Pattern]
    group: ClassVar[int | str] = 0
    trigger: ClassVar[str | None] = None

    def validate(self, m: re.Match) -> bool:
        """True when the candidate match is a real value of this kind (default: always)."""
        return True

    def find(self, text: str) -> list[Finding]:
        trig = self.trigger
        if trig is not None and trig not in text:
            return []
        out = []
        name, prio, grp, validate = self.name, self.priority, self.group, self.validate
        for m in self.pattern.finditer(text):
            if validate(m):
                out.append(Finding(m.start(grp), m.end(grp), name, prio))
        return out

    def iter_candidates(self, text: str) -> Iterator[re.Match]:
        """Every regex candidate, validated or not (for diagnostics and tests)."""
        return self.pattern.finditer(text)
