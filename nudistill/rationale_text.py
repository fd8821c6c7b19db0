"""Truth rationales: varied, truthful sentences naming what is visible in a simulated event.

The teacher is fine-tuned on these. Every phrase that names a concept is one that
:func:`nudistill.concepts.concepts_in_text` maps back to that concept, and a test checks the round trip.
"""

from __future__ import annotations

import numpy as np

_PHRASES: dict[str, tuple[str, ...]] = {
    "muon_track": (
        "a long straight minimum-ionising track leaves the vertex in both views, consistent with a muon",
        "a long muon track exits the frame with little scattering",
        "one long, thin, straight track reads as a muon",
    ),
    "em_shower": (
        "an electromagnetic shower starts right at the vertex and branches downstream",
        "a branching electron shower grows from the vertex with no gap",
        "the vertex opens into a wide electromagnetic cascade",
    ),
    "displaced_shower": (
        "a photon shower starts a few centimetres from the vertex, a conversion gap typical of a pi0",
        "displaced photon showers separated from the vertex by a gap suggest pi0 decay",
        "a displaced shower with a visible conversion gap points to a photon",
    ),
    "proton_stub": (
        "short heavily ionising stubs with a Bragg peak look like protons",
        "a short dense stub at the vertex is a proton",
        "bright short tracks ending in a Bragg peak are protons",
    ),
    "pion_track": (
        "a medium-length kinked track looks like a charged pion",
        "a track with a kink part-way along suggests a pion",
        "a medium track that scatters sharply is a pion candidate",
    ),
}
_NC_LEAD = (
    "No lepton candidate is visible: hadronic activity only.",
    "There is no lepton leaving the vertex; the event shows only hadronic activity.",
    "Only hadronic activity is present, with no lepton.",
)


def describe(label: str, concepts: list[str], rng: np.random.Generator) -> str:
    """One or two sentences naming each visible concept, in a random but seed-determined wording."""
    parts = [_PHRASES[c][rng.integers(len(_PHRASES[c]))] for c in concepts if c in _PHRASES]
    lead = _NC_LEAD[rng.integers(len(_NC_LEAD))] + " " if label == "nc" else ""
    if not parts:
        return (lead or "Faint activity only. ").strip()
    first, rest = parts[0], parts[1:]
    text = first[0].upper() + first[1:]
    if rest:
        text += "; " + "; ".join(rest)
    return lead + text + "."
