"""Map free-text rationales to the concept vocabulary (docs/contracts.md).

The simulator's truth rationales and the teacher's generated ones are read by the same rules, so a
concept found in a teacher rationale means what the simulator meant by it.
"""

from __future__ import annotations

import re

from nudistill import CONCEPTS

# Each concept is named by any of these phrases (lower case, word-bounded). Order matters only for
# readability: a rationale may name several concepts.
CONCEPT_PHRASES: dict[str, tuple[str, ...]] = {
    "muon_track": ("muon", "minimum-ionising track", "minimum ionising track"),
    "em_shower": ("electromagnetic shower", "electron shower", "em shower", "electromagnetic cascade"),
    "displaced_shower": ("displaced shower", "displaced photon", "conversion gap", "photon shower", "photon showers"),
    "proton_stub": ("proton", "protons", "bragg peak"),
    "pion_track": ("pion", "pions", "kinked track"),
    "hadronic_activity_only": ("no lepton", "hadronic activity only", "only hadronic activity"),
}
assert tuple(CONCEPT_PHRASES) == CONCEPTS

_PATTERNS = {c: re.compile(r"\b(" + "|".join(re.escape(p) for p in ps) + r")\b") for c, ps in CONCEPT_PHRASES.items()}
# Negations such as "no muon" or "without a muon" must not count as naming the muon.
_NEGATED = re.compile(r"\b(no|without|nor|not)\s+(an?\s+|any\s+)?(visible\s+|clear\s+)?$")


def concepts_in_text(text: str | None) -> list[str]:
    """Concepts named (and not negated) in ``text``, in CONCEPTS order; [] for None."""
    if not text:
        return []
    lower = text.lower()
    found = []
    for concept, pattern in _PATTERNS.items():
        for m in pattern.finditer(lower):
            if concept == "hadronic_activity_only" or not _NEGATED.search(lower[: m.start()]):
                found.append(concept)
                break
    return found
