"""Consent of data subjects, per purpose (PIPL Art. 13-15, GDPR Art. 6(1)(a) and 7(3)).

**Consent topic format** (documented in docs/operating.md, written by ``dpp consent``): a compacted
topic; record key = the subject id (UTF-8, at most :data:`MAX_SUBJECT_CHARS` characters), value =
one JSON object with the subject's whole consent state::

    {"subject": "C000123", "purposes": {"analytics": "granted", "marketing": "withdrawn"},
     "updated_at": "2026-12-07T10:00:00.000+00:00"}

The last record of a key is the subject's state (compaction keeps it): a purpose it does not name has
no decision; a tombstone (null value) removes the subject (no decision for any purpose). A record
whose value is not such a document (bad JSON, ``subject`` other than the key, a state other than
``granted``/``withdrawn``) makes the subject *unreadable*: every purpose counts as not granted until a
valid record follows (fail closed: a corrupt withdrawal must not leave an earlier grant standing).

:class:`ConsentTable` holds the states in memory up to ``memory_subjects`` subjects; further
subjects go to an on-disk store (RocksDB through ``rocksdict``; keys are BLAKE2b-128 digests of the
subject ids, so the disk holds no id in clear), which bounds memory (measured:
``loadtests/bench_consent_memory.py``). This module never imports Kafka: the reader that fills the
table from the topic is :mod:`proxy.stream.consent`.
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
from typing import Any

import orjson

GRANTED, WITHDRAWN, NO_DECISION, UNREADABLE = 1, 2, 0, 3
"""Answers of :meth:`ConsentTable.state` (``NO_DECISION``: unknown subject, or no decision recorded
for the purpose)."""
STATES = {"granted": GRANTED, "withdrawn": WITHDRAWN}
MAX_SUBJECT_CHARS = 256
MAX_PURPOSES = 64
"""Distinct purpose names a table tracks (the routes' purposes are registered first); a purpose seen
beyond that is ignored (no decision for it: blocked by routes with ``unknown: block``)."""


class ConsentFormatError(ValueError):
    """A consent record that is not a consent document (the message holds no part of it)."""


def parse_consent(key: bytes | None, value: bytes | None) -> tuple[str, dict[str, int] | None]:
    """``(subject, {purpose: GRANTED | WITHDRAWN})`` of one consent record; ``(subject, None)`` for a
    tombstone. Raises :class:`ConsentFormatError` when the key is missing or too long (the record
    cannot be attributed: the caller ignores it), or the value is not a consent document (the
    caller marks the subject unreadable)."""
    if key is None:
        raise ConsentFormatError("a consent record without a key")
    try:
        subject = key.decode("utf-8")
    except UnicodeDecodeError:
        raise ConsentFormatError("a consent record key that is not UTF-8") from None
    if not subject or len(subject) > MAX_SUBJECT_CHARS:
        raise ConsentFormatError(f"a consent record key of 1 to {MAX_SUBJECT_CHARS} characters")
    if value is None:
        return subject, None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise ConsentFormatError("a consent value that is not JSON") from None
    purposes = doc.get("purposes") if type(doc) is dict else None
    if type(doc) is not dict or doc.get("subject") != subject or type(purposes) is not dict:
        raise ConsentFormatError("a consent value without the key's subject and a purposes object")
    out = {}
    for name, state in purposes.items():
        if state not in STATES:
            raise ConsentFormatError("a purpose state other than granted or withdrawn")
        out[name] = STATES[state]
    return subject, out


def consent_document(subject: str, purposes: dict[str, str], updated_at: str) -> bytes:
    """The JSON value of a consent record (see the module doc)."""
    if any(s not in STATES for s in purposes.values()):
        raise ValueError("a purpose state is granted or withdrawn")
    return orjson.dumps({"subject": subject, "purposes": purposes, "updated_at": updated_at})


def _digest(subject: str) -> bytes:
    return hashlib.blake2b(subject.encode("utf-8"), digest_size=16, person=b"dpp-consent").digest()


class ConsentTable:
    """Subject → consent state per purpose. Thread-safe for one writer (the reader thread) and
    any number of readers (route workers).

    A state is an ``int``: bit 0 = unreadable; for the purpose of index ``i`` (:meth:`purpose_index`)
    bit ``1 + 2i`` = granted, bit ``2 + 2i`` = withdrawn. Subjects beyond ``memory_subjects`` live in
    a RocksDB store under ``spill_dir`` (a temporary directory by default, removed by :meth:`close`)."""

    def __init__(self, memory_subjects: int = 1_000_000, spill_dir: str | None = None):
        if memory_subjects < 0:
            raise ValueError("memory_subjects must be >= 0")
        self.memory_subjects = memory_subjects
        self._mem: dict[str, int] = {}
        self._disk: Any = None
        self._disk_count = 0
        self._spill_dir, self._own_dir = spill_dir, False
        self._purposes: dict[str, int] = {}
        self._lock = threading.Lock()
        self.ignored_purposes = 0
        """Purpose states ignored because :data:`MAX_PURPOSES` names were tracked already."""

    def __repr__(self) -> str:  # never the subjects
        return f"ConsentTable(subjects={len(self)}, memory={len(self._mem)}, purposes={len(self._purposes)})"

    def __len__(self) -> int:
        return len(self._mem) + self._disk_count

    @property
    def on_disk(self) -> int:
        """Subjects held in the on-disk store."""
        return self._disk_count

    def purpose_index(self, name: str) -> int | None:
        """The bit index of purpose ``name``, registering it while fewer than :data:`MAX_PURPOSES`
        are tracked; ``None`` beyond."""
        i = self._purposes.get(name)
        if i is None:
            with self._lock:
                i = self._purposes.get(name)
                if i is None and len(self._purposes) < MAX_PURPOSES:
                    i = self._purposes[name] = len(self._purposes)
        return i

    def _encode(self, purposes: dict[str, int]) -> int:
        v = 0
        for name, state in purposes.items():
            i = self.purpose_index(name)
            if i is None:
                self.ignored_purposes += 1
                continue
            v |= 1 << (2 * i + state)  # GRANTED = 1, WITHDRAWN = 2
        return v

    # writing (the reader thread) ---------------------------------------------------------------
    def apply(self, subject: str, purposes: dict[str, int] | None) -> None:
        """Set a subject's whole state (``None``: remove the subject)."""
        self._set(subject, None if purposes is None else self._encode(purposes))

    def mark_unreadable(self, subject: str) -> None:
        """The subject's last record is not a consent document: nothing granted until a valid one."""
        self._set(subject, 1)

    def _set(self, subject: str, v: int | None) -> None:
        mem = self._mem
        if subject in mem or (v is not None and len(mem) < self.memory_subjects and self._disk_count == 0):
            if v is None:
                del mem[subject]
            else:
                mem[subject] = v
            return
        if v is None and self._disk is None:
            return
        disk, k = self._open_disk(), _digest(subject)
        had = disk.key_may_exist(k) and disk.get(k) is not None  # the bloom filter answers most "no" at once
        if v is None:
            if had:
                del disk[k]
                self._disk_count -= 1
        else:
            if not had and len(mem) < self.memory_subjects:
                mem[subject] = v  # room again (tombstones freed memory): keep it there
                return
            disk[k] = v.to_bytes(17, "little")
            self._disk_count += not had

    def _open_disk(self):
        if self._disk is None:
            from rocksdict import BlockBasedOptions, Cache, Options, Rdict
            if self._spill_dir is None:
                self._spill_dir, self._own_dir = tempfile.mkdtemp(prefix="dpp-consent-"), True
            opts = Options()
            opts.create_if_missing(True)
            opts.set_write_buffer_size(16 << 20)  # memory: 2 write buffers of 16 MiB and a 32 MiB block cache
            opts.set_max_write_buffer_number(2)
            table = BlockBasedOptions()
            table.set_bloom_filter(10, False)     # ~1 % false positives: a lookup of an absent subject reads no block
            table.set_block_cache(Cache(32 << 20))
            opts.set_block_based_table_factory(table)
            self._disk = Rdict(self._spill_dir, opts)
        return self._disk

    # reading (route workers) -------------------------------------------------------------------
    def state(self, subject: str, purpose: int | None) -> int:
        """``GRANTED``, ``WITHDRAWN``, ``NO_DECISION`` or ``UNREADABLE`` for ``subject`` and the
        purpose of index ``purpose`` (``None``: an untracked purpose, never granted)."""
        v = self._mem.get(subject)
        if v is None and self._disk_count:
            raw = self._disk.get(_digest(subject))
            v = None if raw is None else int.from_bytes(raw, "little")
        if v is None:
            return NO_DECISION
        if v & 1:
            return UNREADABLE
        if purpose is None:
            return NO_DECISION
        bits = (v >> (2 * purpose + 1)) & 3
        return GRANTED if bits & 1 else WITHDRAWN if bits else NO_DECISION

    def close(self) -> None:
        """Close the on-disk store and remove its directory when the table created it."""
        if self._disk is not None:
            self._disk.close()
            self._disk = None
            if self._own_dir and self._spill_dir:
                from rocksdict import Rdict
                try:
                    Rdict.destroy(self._spill_dir)
                except Exception:  # noqa: BLE001 - best effort, then remove the directory
                    pass
                shutil.rmtree(self._spill_dir, ignore_errors=True)
