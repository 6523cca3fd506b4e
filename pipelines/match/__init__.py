"""Identifier kinds, keyed digests, fingerprint sets, the scanner (placeholder).

Contract: ``Matcher.load(key_path, fingerprints_path, config)`` and
``matcher.scan(parts: Iterable[TextPart]) -> ScanResult``.
"""
