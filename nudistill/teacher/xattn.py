"""Mllama's gated cross-attention as Meta's reference computes it: a text row allowed to see no image
gets nothing from the images.

In Meta's Llama 3.2 Vision code (llama-models, ``CrossAttention.forward`` and
``CrossAttentionTransformerBlock``) ``full_text_row_masked_out_mask`` multiplies both the cross-attention
output and the MLP output, so a token before the first ``<|image|>`` passes a cross-attention layer
unchanged. transformers' ``MllamaCrossAttentionDecoderLayer`` (5.23, the pinned version) multiplies only
the MLP output; a row whose cross-attention mask is all zeros then attends, unmasked, to every image token,
and the text before the first image depends on the event (discussed upstream:
https://github.com/huggingface/transformers/issues/39379). With the physics context before the images
(:mod:`.inputs`), that text is most of the prompt, so the teacher runs its layers as the reference does;
that is also what lets :mod:`.prefix` compute the context once per teacher. Rows that see an image are
computed exactly as before.
"""

from __future__ import annotations

import functools


@functools.cache
def _layer_classes() -> tuple[type, type]:
    """(transformers' cross-attention decoder layer, the same layer with the reference row masking)."""
    from transformers.models.mllama.modeling_mllama import MllamaCrossAttentionDecoderLayer

    class ReferenceCrossAttentionLayer(MllamaCrossAttentionDecoderLayer):
        """``MllamaCrossAttentionDecoderLayer`` with the row mask on the attention output as well."""

        def forward(self, hidden_states, cross_attention_states, cross_attention_mask, attention_mask,
                    full_text_row_masked_out_mask, position_ids=None, past_key_values=None, use_cache=False,
                    position_embeddings=None, **kwargs):
            rows = None if full_text_row_masked_out_mask is None else full_text_row_masked_out_mask[:, 0]  # (B, S, 1)
            residual = hidden_states
            attn, _ = self.cross_attn(hidden_states=self.input_layernorm(hidden_states),
                                      attention_mask=cross_attention_mask, cross_attention_states=cross_attention_states,
                                      past_key_values=past_key_values, **kwargs)
            if rows is not None:
                attn = rows * attn
            hidden_states = residual + self.cross_attn_attn_gate.tanh() * attn
            mlp = self.mlp(self.post_attention_layernorm(hidden_states))
            if rows is not None:
                mlp = rows * mlp
            return hidden_states + self.cross_attn_mlp_gate.tanh() * mlp

    return MllamaCrossAttentionDecoderLayer, ReferenceCrossAttentionLayer


def use_reference_row_masking(model) -> int:
    """Give every Mllama cross-attention layer of ``model`` (peft-wrapped or not) the reference row masking,
    in place; return how many layers it changed. Weights, names and saved files stay as they are."""
    try:
        plain, reference = _layer_classes()
    except ImportError:  # a transformers without Mllama: nothing to change
        return 0
    changed = 0
    for module in model.modules():
        if type(module) is plain:
            module.__class__ = reference
            changed += 1
    return changed
