"""Small, picklable units of work for measurements that run in a fresh process: full attention's L×L step
(paper eq. 1), whose memory is the first of the §1 problems.

:func:`reformer_lab.measure.memory.peak_rss_bytes` runs its callable in a new interpreter, so the callable must
live at module level. Each function here builds its own inputs from a seed, so nothing large is sent
between processes and the parent's memory does not count.
"""

from __future__ import annotations

import torch

from reformer_lab.validation import positive_int


def full_attention_step(length: int, d_head: int = 64, n_heads: int = 1, batch: int = 1, seed: int = 0) -> float:
    """One forward and backward pass of plain softmax(QKᵀ/√d)V (paper eq. 1) that materialises L×L.

    Returns the loss so the work cannot be optimised away.
    """
    length, d_head = positive_int("length", length), positive_int("d_head", d_head)
    n_heads, batch = positive_int("n_heads", n_heads), positive_int("batch", batch)
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, n_heads, length, d_head)
    q, k, v = (torch.randn(shape, generator=generator, requires_grad=True) for _ in range(3))
    weights = torch.softmax(q @ k.transpose(-1, -2) / d_head**0.5, dim=-1)
    loss = (weights @ v).square().mean()
    loss.backward()
    return loss.item()
