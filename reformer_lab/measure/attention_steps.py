"""One timed training step of an attention layer: what Figure 5 (right) and Table 1's time column measure.

A setting (:class:`AttentionSetting`) names a variant, a length and the batch that keeps the tokens per step
fixed, the paper's protocol for Figure 5 (right) (§5: 32K tokens per step, lengths 1024/32 … 32768/1). The
variants are shared-QK causal attention computed five ways (the paper's three, plus two exact ones from
after it and from §2):

* ``lsh-1`` … ``lsh-8``: :func:`~reformer_lab.attention.lsh_attention` with that many hash rounds,
  ``n_buckets = 2·L / chunk`` (paper §2: chunk m = 2l/n_buckets);
* ``full``: :func:`~reformer_lab.attention.full_attention`, which materialises the L×L weights (eq. 1);
* ``memory-efficient``: :func:`~reformer_lab.attention.memory_efficient_attention` (§2), exact and linear
  in memory;
* ``sdpa``: PyTorch's fused ``scaled_dot_product_attention`` over the same queries and unit keys, the
  exact attention that IO-aware kernels made fast after the paper. We call it with ``is_causal=True`` only,
  which keeps the fused kernel; passing eq. 16's −1e5 diagonal as an explicit mask would work but may drop
  PyTorch to a slower kernel. So it runs without the self mask: the same cost, a slightly different attention.

Two sparse schemes beside them (:data:`ALTERNATIVE_VARIANTS`, lesson 10, paper §4's topic), on the same chunks:

* ``local``: :func:`~reformer_lab.alternatives.local_attention` (a limited span, paper §2.1), each chunk attends to
  itself and the previous one;
* ``routing``: :func:`~reformer_lab.alternatives.routing_attention` (Routing Transformer, TACL 2021, after the
  paper) with as many clusters as LSH has buckets (2·L / chunk), its centroids fitted on each step's input by
  ``DEFAULT_KMEANS_STEPS`` k-means steps (the Routing Transformer updates them once per step instead).

With ``layer=True`` the step is the whole attention layer: a shared query/key and a value projection in,
the attention, an output projection out, as one Reformer layer's attention branch computes it. Without,
it is the attention function alone on given queries and values. ``ours-module``, ``reformer-pytorch`` and
``hf-transformers`` are whole LSH self-attention modules (projections included, 2 hash rounds), ours and
the peers', for side-by-side timing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reformer_lab.validation import as_bool, as_int, one_of, positive_int

ATTENTION_VARIANTS = ("lsh-1", "lsh-2", "lsh-4", "lsh-8", "full", "memory-efficient", "sdpa")
#: Not in the benchmark's default set: local attention (a limited span, paper §2.1) and a later content-based
#: scheme (lesson 10).
ALTERNATIVE_VARIANTS = ("local", "routing")
PEER_VARIANTS = ("ours-module", "reformer-pytorch", "hf-transformers")

Attend = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class AttentionSetting:
    """One benchmark point: a variant at one length, with the batch that keeps tokens per step fixed."""

    variant: str
    length: int
    batch: int
    d_model: int = 256
    n_heads: int = 4
    chunk_size: int = 64
    repeats: int = 3
    device: str = "cpu"
    seed: int = 0
    layer: bool = False

    def __post_init__(self) -> None:
        one_of("variant", self.variant, ATTENTION_VARIANTS + ALTERNATIVE_VARIANTS + PEER_VARIANTS)
        for name in ("length", "batch", "d_model", "n_heads", "chunk_size", "repeats"):
            object.__setattr__(self, name, positive_int(name, getattr(self, name)))
        object.__setattr__(self, "seed", as_int("seed", self.seed))
        object.__setattr__(self, "layer", as_bool("layer", self.layer))
        if self.d_model % self.n_heads:  # was measured at n_heads · (d_model // n_heads) and reported as d_model
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        chunked = self.variant.startswith("lsh-") or self.variant in ALTERNATIVE_VARIANTS + PEER_VARIANTS
        if chunked and self.length % self.chunk_size:
            raise ValueError(f"length {self.length} must be a multiple of the chunk size {self.chunk_size}")

    @property
    def tokens(self) -> int:
        return self.batch * self.length


def attention_function(s: AttentionSetting) -> Attend:
    """The attention of ``s.variant`` as a function of shared-QK queries and values ``[B, H, L, d_head]``."""
    from reformer_lab.attention import full_attention, lsh_attention, memory_efficient_attention, unit_keys

    one_of("variant", s.variant, ATTENTION_VARIANTS + ALTERNATIVE_VARIANTS)
    if s.variant in ALTERNATIVE_VARIANTS:
        return _alternative_function(s)
    if s.variant.startswith("lsh-"):
        n_hashes, n_buckets = int(s.variant.split("-")[1]), 2 * s.length // s.chunk_size
        generator = torch.Generator(device=s.device).manual_seed(s.seed)
        return lambda qk, v: lsh_attention(qk, v, n_buckets=n_buckets, n_hashes=n_hashes, chunk_size=s.chunk_size,
                                           causal=True, generator=generator)
    if s.variant == "full":
        return lambda qk, v: full_attention(qk, v, causal=True)
    if s.variant == "memory-efficient":
        return lambda qk, v: memory_efficient_attention(qk, v, causal=True, query_chunk_size=128)
    return lambda qk, v: F.scaled_dot_product_attention(qk, unit_keys(qk), v, is_causal=True, scale=1.0)


def _alternative_function(s: AttentionSetting) -> Attend:
    from reformer_lab.alternatives import local_attention, routing_attention

    if s.variant == "local":
        return lambda qk, v: local_attention(qk, v, chunk_size=s.chunk_size, causal=True)
    generator = torch.Generator(device=s.device).manual_seed(s.seed)
    n_clusters = 2 * s.length // s.chunk_size
    return lambda qk, v: routing_attention(qk, v, chunk_size=s.chunk_size, n_clusters=n_clusters, causal=True,
                                           generator=generator)


class AttentionLayer(nn.Module):
    """Shared-QK and value projections, an attention function over heads, and the output projection."""

    def __init__(self, d_model: int, n_heads: int, attend: Attend) -> None:
        super().__init__()
        self.n_heads, self.attend = n_heads, attend
        self.to_qk_v = nn.Linear(d_model, 2 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        batch, length, d_model = x.shape
        qk, v = self.to_qk_v(x).view(batch, length, 2, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        return self.out(self.attend(qk, v).transpose(1, 2).reshape(batch, length, d_model))


def _generator(s: AttentionSetting) -> torch.Generator:
    return torch.Generator().manual_seed(s.seed)


def _functional_step(s: AttentionSetting) -> Callable[[], Tensor]:
    attend, generator = attention_function(s), _generator(s)
    if s.layer:
        torch.manual_seed(s.seed)
        layer = AttentionLayer(s.d_model, s.n_heads, attend).to(s.device)
        x = torch.randn(s.batch, s.length, s.d_model, generator=generator).to(s.device).requires_grad_()
        return lambda: layer(x)
    shape = (s.batch, s.n_heads, s.length, s.d_model // s.n_heads)
    qk, v = (torch.randn(shape, generator=generator).to(s.device).requires_grad_() for _ in range(2))
    return lambda: attend(qk, v)


def _peer_step(s: AttentionSetting) -> Callable[[], Tensor]:
    """Whole multi-head LSH self-attention modules (projections included), ours and the peers'."""
    torch.manual_seed(s.seed)
    x = torch.randn(s.batch, s.length, s.d_model, generator=_generator(s)).to(s.device).requires_grad_()
    if s.variant == "ours-module":
        from reformer_lab.attention import LSHSelfAttention

        module = LSHSelfAttention(s.d_model, s.n_heads, chunk_size=s.chunk_size, n_hashes=2, causal=True, seed=s.seed)
        return lambda: module.to(s.device)(x)
    if s.variant == "reformer-pytorch":
        from reformer_pytorch import LSHSelfAttention as PeerLSH

        module = PeerLSH(dim=s.d_model, heads=s.n_heads, bucket_size=s.chunk_size, n_hashes=2, causal=True)
        return lambda: module.to(s.device)(x)
    from transformers import ReformerConfig
    from transformers.models.reformer.modeling_reformer import LSHSelfAttention as HFLSH

    config = ReformerConfig(
        hidden_size=s.d_model, num_attention_heads=s.n_heads, attention_head_size=s.d_model // s.n_heads,
        lsh_attn_chunk_length=s.chunk_size, num_hashes=2, num_buckets=2 * s.length // s.chunk_size,
        lsh_num_chunks_before=1, lsh_num_chunks_after=0, is_decoder=True, hash_seed=s.seed,
        lsh_attention_probs_dropout_prob=0.0,
    )
    module = HFLSH(config).to(s.device)
    return lambda: module(x)[0]


def forward_step(s: AttentionSetting) -> Callable[[], Tensor]:
    """A function that runs the forward pass of ``s`` on inputs made once (its output is what a step differentiates)."""
    one_of("variant", s.variant, ATTENTION_VARIANTS + ALTERNATIVE_VARIANTS + PEER_VARIANTS)
    return _peer_step(s) if s.variant in PEER_VARIANTS else _functional_step(s)


def time_step(s: AttentionSetting) -> float:
    """Fastest seconds of one forward+backward step of ``s`` over its repeats, after one warm-up step
    (allocator, thread pools, first-call dispatch); on a shared machine the fastest step is the least
    disturbed one."""
    step = forward_step(s)

    def once() -> float:
        start = time.perf_counter()
        step().float().square().mean().backward()
        if s.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    once()
    return min(once() for _ in range(s.repeats))
