"""The teacher's prompt: physics context, the two-view user turn, the forced answer prefix and label phrases.

Both views go in as two images, XZ then YZ, through the processor's chat template (Mllama takes
several images per turn; a side-by-side composite in one tile learned far worse here, issue 4).
Llama 3.2 Vision's own template refuses a system message next to images, so when a template raises
on the system turn the physics context leads the user turn instead (:func:`build_prompt`).
"""

from __future__ import annotations

from nudistill import CLASSES

PROMPT_VERSION = "lartpc-2view-v3"
"""Bump when any text below, or what the views look like on the way in, changes: it enters the teacher id.
v3: views pass an isolated-hit filter before pooling (nudistill.teacher.inputs.pool_views)."""

SYSTEM_PROMPT = (
    "You read neutrino events in a liquid argon time projection chamber (LArTPC). "
    "Each event has two views of one interaction, XZ and YZ, with z along the beam; pixels are charge in ADC. "
    "Electron neutrino charged current: an electromagnetic shower starts at the vertex. "
    "Muon neutrino charged current: a long straight minimum-ionising muon track. "
    "Neutral current: no lepton, hadronic activity only, such as proton stubs with a Bragg peak, "
    "kinked pion tracks, or displaced photon showers from a neutral pion."
)
"""Physics context: the detector, the two views, the three classes and what marks each (kept short:
every token of it runs through the decoder for every event)."""

USER_TEXT = "The first image is the XZ view, the second the YZ view. Classify the event and explain."

ANSWER_PREFIX = "I classify the pixel maps as"
"""Forced before every label phrase; the scored text is ``ANSWER_PREFIX + " " + phrase + "."``."""

DEFAULT_PHRASES: dict[str, str] = {
    "nue_cc": "electron neutrino charged current",
    "numu_cc": "muon neutrino charged current",
    "nc": "neutral current",
}
assert tuple(DEFAULT_PHRASES) == CLASSES


def messages(system_in_user: bool = False) -> list[dict]:
    """Chat messages for one event: (system,) user with two image slots, XZ then YZ."""
    user_text = f"{SYSTEM_PROMPT}\n{USER_TEXT}" if system_in_user else USER_TEXT
    user = {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": user_text}]}
    if system_in_user:
        return [user]
    return [{"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]}, user]


def build_prompt(processor) -> str:
    """The prompt text up to the assistant's first word, rendered by the processor's chat template."""
    if getattr(processor, "chat_template", None):
        try:
            return processor.apply_chat_template(messages(), add_generation_prompt=True, tokenize=False)
        except Exception:  # noqa: BLE001 - e.g. Llama 3.2 Vision: "images are incompatible with system messages"
            return processor.apply_chat_template(messages(True), add_generation_prompt=True, tokenize=False)
    # A base checkpoint without a chat template: the plain Mllama format.
    image = getattr(processor, "image_token", "<|image|>")
    bos = processor.tokenizer.bos_token or ""
    return f"{image}{image}{bos}{SYSTEM_PROMPT}\n{USER_TEXT}\n"


def answer_head(phrase: str) -> str:
    """The forced answer up to and including the label: ``"I classify the pixel maps as <phrase>."``."""
    return f"{ANSWER_PREFIX} {phrase}."


def answer_text(phrase: str, rationale: str | None) -> str:
    """The fine-tuning target after the prompt: label sentence, then the rationale when there is one."""
    head = answer_head(phrase)
    return f"{head} {rationale.strip()}" if rationale and rationale.strip() else head
