"""Solutions to lesson 07, "the duplication task" (paper §2.1, Table 2)."""

from __future__ import annotations

import torch
from torch import Tensor


def second_copy_mask(w_len: int) -> Tensor:
    """``[2·(w_len + 1)]`` bool: True at the positions whose *target* (the next token) is a symbol of the second w.

    The sequence is 0 w 0 w; the second w occupies positions w_len + 2 … 2·w_len + 1, so its symbols are the
    targets of positions w_len + 1 … 2·w_len.
    """
    mask = torch.zeros(2 * (w_len + 1), dtype=torch.bool)
    mask[w_len + 1 : 2 * w_len + 1] = True
    return mask


def needed_key(position: int, w_len: int) -> int:
    """The key a causal model must read to predict ``targets[position]``: the sequence repeats with period
    w_len + 1, and the target (token position + 1) sits w_len + 1 earlier at position − w_len."""
    return position - w_len


def masked_accuracy(logits: Tensor, targets: Tensor, mask: Tensor) -> float:
    """Next-token accuracy over the masked positions only, pooled over the whole batch."""
    mask = mask.bool()
    return float((logits.argmax(-1)[mask] == targets[mask]).float().mean())
