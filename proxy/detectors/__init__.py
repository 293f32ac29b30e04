"""Personal data in free text: validating detectors (checksums, dates, number ranges), an
overlap resolver and :func:`find_all`.

Policy engine layer: never imports Kafka (import-linter contract in ``pyproject.toml``).
"""
from __future__ import annotations

from .base import Detector, Finding
from .engine import Scanner, find_all
from .registry import DETECTOR_CLASSES, build_detector, build_detectors, detector_names

__all__ = ["Detector", "Finding", "Scanner", "find_all", "DETECTOR_CLASSES", "build_detector", "build_detectors",
           "detector_names"]
