"""Attention schemes beside LSH attention: local attention and one from after the paper (lesson 10, paper §4).

Both run on the inputs of :func:`reformer_lab.attention.lsh_attention` (shared-QK ``qk, v`` of shape
``[..., L, d]``, unit keys k̂ = q/‖q‖, logits q·k̂, the self penalty of eq. 16, causal masks on original
positions), and both *are* LSH attention's kernel with other buckets, so they share its memory and its
backward pass:

* :func:`local_attention`: chunks of ``chunk_size`` consecutive positions, each attending to itself and the
  previous chunk: local attention (a limited span, paper §2.1, which sets LSH attention against "sparse
  attention with a limited span"; §4 does not name local attention). It is LSH attention with every
  position in bucket 0 and one round: sorting by (bucket, position) then keeps the original order.
* :func:`routing_attention`: content-based sparse attention by k-means routing, **later work, not in the
  Reformer paper**: Roy, Saffar, Vaswani, Grangier, "Efficient Content-Based Sparse Attention with Routing
  Transformers", TACL 2021 (arXiv 2003.05997). Each unit query goes to its nearest of ``n_clusters``
  centroids; positions are sorted by (cluster, position) and attend within their cluster inside sorted
  chunks, where LSH would use random rotations. The Routing Transformer itself keeps centroids per layer and
  head, updated by an exponential moving average in training, and gives each centroid its top-k nearest
  queries (balanced clusters); here centroids are given, or fitted on the input by a few deterministic
  k-means steps (:func:`fit_centroids`), and the sorted chunks do the balancing, as in LSH attention.
* :class:`LocalSelfAttention`: the multi-head module, with the parameters of the shared-QK full and LSH
  modules, so a model trained with one attention is evaluated with another
  (``ReformerLM.with_attention("local")``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reformer_lab.attention import LSHInfo, check_module_input, lsh_attention
from reformer_lab.validation import as_bool, as_int, positive_int

__all__ = [
    "DEFAULT_KMEANS_STEPS",
    "LocalSelfAttention",
    "fit_centroids",
    "local_attention",
    "nearest_centroid",
    "routing_attention",
]

DEFAULT_KMEANS_STEPS = 3  # k-means steps when routing_attention fits its own centroids


def local_attention(
    qk: Tensor, v: Tensor, *, chunk_size: int, causal: bool = False, return_info: bool = False
) -> Tensor | tuple[Tensor, LSHInfo]:
    """Local attention (a limited span, paper §2.1): each chunk of ``chunk_size`` consecutive positions attends
    to itself and the previous chunk, in the original order, with no hashing.

    ``qk, v``: ``[..., L, d]``, ``chunk_size`` dividing L; conventions as :func:`~reformer_lab.attention.lsh_attention`
    (unit keys, logits q·k̂, self penalty, ``causal`` masks later positions). The first chunk looks back at
    nothing. It is ``lsh_attention`` with every position in bucket 0 and one round, since sorting by
    (bucket, position) then keeps the original order; ``return_info`` returns that call's
    :class:`~reformer_lab.attention.LSHInfo` (its ``weights`` are the ``[..., L, L]`` band).
    """
    chunk_size = positive_int("chunk_size", chunk_size)
    if not isinstance(qk, Tensor) or qk.dim() < 2:
        raise ValueError(f"qk must be a tensor of shape [..., L, d], got {getattr(qk, 'shape', type(qk).__name__)}")
    buckets = torch.zeros(*qk.shape[:-2], 1, qk.shape[-2], dtype=torch.long, device=qk.device)
    return lsh_attention(qk, v, n_buckets=2, n_hashes=1, chunk_size=chunk_size, causal=causal, buckets=buckets,
                         return_info=return_info)


def nearest_centroid(qk: Tensor, centroids: Tensor) -> Tensor:
    """Cluster of each position: the centroid nearest to its unit vector q/‖q‖ (largest cosine), ``[..., L]``.

    ``centroids``: ``[n_clusters, d]`` (shared) or ``[..., n_clusters, d]`` broadcastable to ``qk``'s leading
    dims (e.g. ``[n_heads, n_clusters, d]`` for ``qk`` ``[B, n_heads, L, d]``). On the unit sphere the
    nearest centroid in Euclidean distance is the one with the largest cosine (as in the Routing Transformer).
    """
    if centroids.dim() < 2 or centroids.shape[-1] != qk.shape[-1]:
        raise ValueError(f"centroids must be [..., n_clusters, d={qk.shape[-1]}], got {tuple(centroids.shape)}")
    work = torch.promote_types(qk.dtype, torch.float32)
    points = F.normalize(qk.detach().to(work), dim=-1)
    return (points @ F.normalize(centroids.detach().to(work), dim=-1).transpose(-1, -2)).argmax(-1)


def fit_centroids(
    x: Tensor, n_clusters: int, *, steps: int = DEFAULT_KMEANS_STEPS, generator: torch.Generator | None = None
) -> Tensor:
    """Spherical k-means on the unit vectors of ``x`` ``[..., N, d]``: centroids ``[..., n_clusters, d]``.

    Each sequence (leading index) is fitted on its own. The start is ``n_clusters`` distinct positions drawn
    with ``generator`` (one draw for all sequences; torch's global generator when None); each of ``steps``
    steps assigns every point to its nearest centroid (:func:`nearest_centroid`) and moves each centroid to
    the normalised mean of its points (an empty cluster keeps its centroid). No gradient flows through the
    fit (Routing Transformer: centroids are not trained by backpropagation).
    """
    n_clusters, steps = positive_int("n_clusters", n_clusters), as_int("steps", steps, minimum=0)
    length = x.shape[-2]
    if n_clusters > length:
        raise ValueError(f"n_clusters={n_clusters} must be at most the number of points {length}")
    points = F.normalize(x.detach().to(torch.promote_types(x.dtype, torch.float32)), dim=-1)
    device = generator.device if generator is not None else torch.device("cpu")
    start = torch.randperm(length, generator=generator, device=device)[:n_clusters].to(x.device)
    centroids = points[..., start, :]
    for _ in range(steps):
        assign = nearest_centroid(points, centroids)[..., None].expand_as(points)
        sums = torch.zeros_like(centroids).scatter_add_(-2, assign, points)
        ones = torch.ones_like(points[..., :1])
        counts = torch.zeros_like(centroids[..., :1]).scatter_add_(-2, assign[..., :1], ones)
        centroids = torch.where(counts > 0, F.normalize(sums, dim=-1), centroids)
    return centroids.to(x.dtype)


def routing_attention(
    qk: Tensor,
    v: Tensor,
    *,
    chunk_size: int,
    n_clusters: int | None = None,
    centroids: Tensor | None = None,
    kmeans_steps: int = DEFAULT_KMEANS_STEPS,
    generator: torch.Generator | None = None,
    causal: bool = False,
    return_info: bool = False,
) -> Tensor | tuple[Tensor, LSHInfo]:
    """Routing attention: content-based sparse attention by k-means centroids (**later work**: Roy et al.,
    "Efficient Content-Based Sparse Attention with Routing Transformers", TACL 2021: sparsity learned from
    the data, where the Reformer hashes at random).

    ``qk, v``: ``[..., L, d]``. Each position joins the cluster of its nearest centroid
    (:func:`nearest_centroid`): ``centroids`` as given (``[..., n_clusters, d]``, see there), or, when None,
    ``n_clusters`` centroids fitted on each sequence's own vectors by ``kmeans_steps`` steps of
    :func:`fit_centroids` started from positions drawn with ``generator``. Then, as in LSH attention with the
    clusters for buckets: sort by (cluster, position), cut into chunks of ``chunk_size`` (dividing L), each
    chunk attends to itself and the previous chunk, keys of other clusters masked, one round. Conventions
    (unit keys, self penalty, ``causal``) and ``return_info`` as :func:`~reformer_lab.attention.lsh_attention`.
    """
    chunk_size = positive_int("chunk_size", chunk_size)
    if centroids is None:
        if n_clusters is None:
            raise ValueError("give centroids, or n_clusters to fit them")
        centroids = fit_centroids(qk, n_clusters, steps=kmeans_steps, generator=generator)
    elif n_clusters is not None and centroids.shape[-2] != n_clusters:
        raise ValueError(f"centroids hold {centroids.shape[-2]} clusters but n_clusters={n_clusters}")
    clusters = nearest_centroid(qk, centroids)
    clusters = clusters.expand(qk.shape[:-1]).unsqueeze(-2)  # [..., 1, L]: one round
    n_buckets = centroids.shape[-2] + centroids.shape[-2] % 2  # lsh_attention takes an even bucket count
    return lsh_attention(qk, v, n_buckets=n_buckets, n_hashes=1, chunk_size=chunk_size, causal=causal,
                         buckets=clusters, return_info=return_info)


class LocalSelfAttention(nn.Module):
    """Multi-head shared-QK local self-attention (a limited span, paper §2.1): projections,
    :func:`local_attention`, output.

    Its parameters (``to_qk``, ``to_v``, ``to_out``) are named and shaped like those of
    :class:`~reformer_lab.attention.LSHSelfAttention` and shared-QK
    :class:`~reformer_lab.attention.FullSelfAttention`, so each loads the others' ``state_dict``: a model
    trained with full or LSH attention can be evaluated with local attention and the other way round.
    Sequence lengths must be multiples of ``chunk_size``.
    """

    def __init__(self, d_model: int, n_heads: int, *, chunk_size: int = 64, causal: bool = False,
                 bias: bool = False) -> None:
        super().__init__()
        self.d_model, self.n_heads = positive_int("d_model", d_model), positive_int("n_heads", n_heads)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        self.chunk_size, self.causal = positive_int("chunk_size", chunk_size), as_bool("causal", causal)
        bias = as_bool("bias", bias)
        self.to_qk = nn.Linear(self.d_model, self.d_model, bias=bias)
        self.to_v = nn.Linear(self.d_model, self.d_model, bias=bias)
        self.to_out = nn.Linear(self.d_model, self.d_model)

    def _heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.n_heads, -1)).transpose(-2, -3)  # [..., L, d_model] → [..., H, L, d_head]

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``[..., L, d_model]`` → ``[..., L, d_model]``."""
        check_module_input(x, self.d_model, self.to_v.weight)
        if x.shape[-2] % self.chunk_size:
            raise ValueError(f"sequence length {x.shape[-2]} must be a multiple of chunk_size={self.chunk_size}: "
                             "pad the input")
        out = local_attention(self._heads(self.to_qk(x)), self._heads(self.to_v(x)), chunk_size=self.chunk_size,
                              causal=self.causal)
        return self.to_out(out.transpose(-2, -3).flatten(-2))
