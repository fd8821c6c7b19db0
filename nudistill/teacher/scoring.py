"""Constrained scoring: summed log-probs of each full label phrase after the forced answer prefix.

For B events and K classes the expensive parts run once per event, not once per candidate:
the vision tower (its ``cross_attention_states`` are reused) and the prompt (its KV cache, repeated K
times for the K short continuations). Only the phrase tokens run K times.
"""

from __future__ import annotations

import torch

from nudistill.teacher.inputs import PhraseTable


def base_model(model):
    """The MllamaForConditionalGeneration under a peft wrapper (LoRA layers live inside it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@torch.no_grad()
def vision_states(model, batch: dict) -> torch.Tensor:
    """Projected vision tokens per event: (B, n_images * tiles * patches, D_text)."""
    mllama = base_model(model).model
    out = mllama.vision_model(pixel_values=batch["pixel_values"], aspect_ratio_ids=batch["aspect_ratio_ids"],
                              aspect_ratio_mask=batch["aspect_ratio_mask"])
    states = mllama.multi_modal_projector(out.last_hidden_state)  # (B, n_img, tiles, P, D)
    return states.reshape(batch["pixel_values"].shape[0], -1, states.shape[-1])


@torch.no_grad()
def prefix_pass(model, batch: dict, states: torch.Tensor, cache: bool = True):
    """Run prompt + answer prefix; return (log-probs of the next token (B, V) float32, KV cache)."""
    out = base_model(model)(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            cross_attention_mask=batch["cross_attention_mask"], cross_attention_states=states,
                            use_cache=cache, logits_to_keep=1)
    return torch.log_softmax(out.logits[:, -1].float(), dim=-1), out.past_key_values


@torch.no_grad()
def phrase_logprobs(model, batch: dict, states: torch.Tensor, table: PhraseTable) -> torch.Tensor:
    """Summed log-probs of each label phrase (and its period): (B, K) float32."""
    b, lp = batch["input_ids"].shape
    k, lc = table.ids.shape
    device = batch["input_ids"].device
    first, cache = prefix_pass(model, batch, states)
    cand, cmask = table.ids.to(device), table.mask.to(device)  # (K, Lc)
    total = first[:, cand[:, 0]]  # (B, K): log p(first phrase token | prefix)
    if lc > 1:
        cache.batch_repeat_interleave(k)  # rows become event-major: b*K + k
        ids = cand.repeat(b, 1)  # (B*K, Lc)
        attn = torch.cat([batch["attention_mask"].repeat_interleave(k, 0), cmask.repeat(b, 1)], dim=1)
        pos = (lp + torch.arange(lc, device=device)).expand(b * k, lc)
        xmask = batch["cross_attention_mask"][:, -1:].repeat_interleave(k, 0).expand(-1, lc, -1, -1)
        out = base_model(model)(input_ids=ids, attention_mask=attn, position_ids=pos, cross_attention_mask=xmask,
                                past_key_values=cache, use_cache=True)
        logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)  # (B*K, Lc-1, V)
        nxt = ids[:, 1:]
        tok = logp.gather(-1, nxt.unsqueeze(-1)).squeeze(-1) * cmask.repeat(b, 1)[:, 1:]
        total = total + tok.sum(-1).view(b, k)
    return total


def temperature_softmax(logprobs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Class probabilities from summed phrase log-probs: softmax(logprobs / T) over the K classes."""
    return torch.softmax(logprobs.double() / temperature, dim=-1).float()


@torch.no_grad()
def unshared_phrase_logprobs(model, enc: dict, tokens: list[list[int]]) -> list[float]:
    """The naive reference for one event (``enc`` from encode_prompt, B=1): a full forward per phrase,
    the image re-encoded each time, no cache. The study's one-at-a-time method; tests compare to it."""
    lp = enc["input_ids"].shape[1]
    out = []
    for ids in tokens:
        x = torch.cat([enc["input_ids"], torch.tensor([ids])], 1)
        xmask = enc["cross_attention_mask"]
        xmask = torch.cat([xmask, xmask[:, -1:].expand(-1, len(ids), -1, -1)], 1)
        logits = model(input_ids=x, attention_mask=torch.ones_like(x), cross_attention_mask=xmask,
                       pixel_values=enc["pixel_values"], aspect_ratio_ids=enc["aspect_ratio_ids"],
                       aspect_ratio_mask=enc["aspect_ratio_mask"]).logits[0]
        logp = torch.log_softmax(logits[lp - 1: -1].double(), -1)  # (len(ids), V)
        out.append(float(logp[torch.arange(len(ids)), torch.tensor(ids)].sum()))
    return out
