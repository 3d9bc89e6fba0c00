"""Angular locality-sensitive hashing, paper §2 and Figure 1 (Andoni et al. 2015).

To get ``n_buckets`` buckets, fix a random matrix R of shape ``[d, n_buckets // 2]`` and hash a vector
x to h(x) = argmax([xR; −xR]). Nearby directions tend to share a bucket; the length of x does not
matter. Several hash rounds use independent matrices, one per round (paper eq. 6).

Randomness: every draw takes a ``torch.Generator``. Where none is given, torch's global generator is
used, so ``reformer_lab.seed_everything`` still makes the draw repeatable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from reformer_lab.validation import ArgumentTypeError, as_bool, as_int, positive_int

__all__ = ["check_n_buckets", "hash_vectors", "random_rotations", "rotations_for"]


def check_n_buckets(n_buckets: int) -> int:
    """Return ``n_buckets`` as an int, or raise a ValueError: it must be an even int >= 2.

    Checked like every integer argument (:func:`reformer_lab.validation.as_int`): NumPy integers are
    accepted, ``bool`` and ``float`` refused (an :class:`~reformer_lab.validation.ArgumentTypeError`).
    """
    n = as_int("n_buckets", n_buckets, minimum=2)
    if n % 2:
        raise ValueError(
            f"n_buckets must be even, got {n}: h(x) = argmax([xR; -xR]) gives two buckets per column "
            f"of R; use {n - 1} or {n + 1}"
        )
    return n


def random_rotations(
    d: int,
    n_buckets: int,
    n_hashes: int = 1,
    *,
    generator: torch.Generator | None = None,
    orthogonal: bool = False,
    batch_shape: Sequence[int] = (),
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw the hash matrices R, one per round: shape ``[*batch_shape, n_hashes, d, n_buckets // 2]``.

    Entries are i.i.d. standard Gaussians, as in the authors' code (paper §2 calls R "random";
    trax never orthogonalises it). ``orthogonal=True`` instead gives each round orthonormal columns
    (QR of a Gaussian, signs fixed so the draw is uniform), which needs ``n_buckets // 2 <= d``; the QR
    runs in at least float32 and the result comes back in ``dtype`` (float16 and bfloat16 included).
    ``batch_shape`` adds leading dimensions, e.g. ``(n_heads,)`` for a different R per head.
    Draws come from ``generator`` (on the generator's device), else from torch's global generator.
    """
    d = positive_int("d", d)
    half = check_n_buckets(n_buckets) // 2
    n_hashes = positive_int("n_hashes", n_hashes)
    batch_shape = tuple(positive_int("batch_shape entries", n) for n in batch_shape)
    orthogonal = as_bool("orthogonal", orthogonal)
    if orthogonal and half > d:
        raise ValueError(
            f"orthogonal rotations need n_buckets // 2 <= d, got n_buckets={n_buckets} and d={d}: "
            f"use at most {2 * d} buckets or orthogonal=False"
        )
    dtype = dtype or torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ArgumentTypeError(f"dtype must be a floating-point torch.dtype, got {dtype}")
    if device is None:
        device = generator.device if generator is not None else "cpu"
    shape = (*batch_shape, n_hashes, d, half)
    if not orthogonal:
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)
    # QR in at least float32 (there is no half-precision QR), then the result in the requested dtype.
    gaussian = torch.randn(shape, generator=generator, dtype=torch.promote_types(dtype, torch.float32), device=device)
    q, r = torch.linalg.qr(gaussian)
    signs = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    return (q * torch.where(signs == 0, 1, signs).unsqueeze(-2)).to(dtype)


def rotations_for(
    x: Tensor,
    n_buckets: int,
    n_hashes: int | None = None,
    *,
    rotations: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The hash matrices for hashing the rows of ``x``: ``rotations`` as given, else fresh Gaussian ones.

    Fresh ones come from :func:`random_rotations` (``n_hashes`` rounds, default 1, in ``x``'s dtype),
    drawn from ``generator`` on its device, else from torch's global generator, and moved to ``x``'s
    device. Passing both ``rotations`` and ``generator`` is a ``ValueError`` (the generator would be unused).
    """
    if rotations is not None:
        if generator is not None:
            raise ValueError("pass rotations or generator, not both (the generator would be unused)")
        return rotations
    device = generator.device if generator is not None else x.device
    return random_rotations(x.shape[-1], n_buckets, n_hashes or 1, generator=generator, dtype=x.dtype,
                            device=device).to(x.device)


def _check_rotations(rotations: Tensor, x: Tensor, n_buckets: int, n_hashes: int | None) -> None:
    d = x.shape[-1]
    rounds = n_hashes if n_hashes is not None else "n_hashes"
    want = f"[..., {rounds}, {d}, {n_buckets // 2}] ([..., n_hashes, d, n_buckets // 2])"
    if rotations.dim() < 3:
        raise ValueError(f"rotations must have shape {want}, got {tuple(rotations.shape)}")
    if not rotations.is_floating_point():
        raise ArgumentTypeError(f"rotations must be a floating-point tensor, got {rotations.dtype}")
    got_rounds, got_d, got_half = rotations.shape[-3:]
    if got_d != d or got_half != n_buckets // 2 or (n_hashes is not None and got_rounds != n_hashes):
        raise ValueError(f"rotations must have shape {want}, got {tuple(rotations.shape)}")
    lead = tuple(x.shape[:-2])
    try:
        ok = torch.broadcast_shapes(tuple(rotations.shape[:-3]), lead) == lead
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"the leading dimensions of rotations {tuple(rotations.shape[:-3])} must broadcast to the "
            f"leading dimensions of x {lead}"
        )


def hash_vectors(
    x: Tensor,
    n_buckets: int,
    n_hashes: int | None = None,
    *,
    rotations: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Angular LSH of the rows of ``x`` (shape ``[..., L, d]``): bucket ids ``[..., n_hashes, L]``.

    Round r gives h_r(x) = argmax([x R_r; −x R_r]) in ``[0, n_buckets)`` (paper §2). Ties go to the
    first index, as :func:`torch.argmax` does: the zero vector hashes to bucket 0 in every round, and a
    projection tied with a negated one (x·r_a = −x·r_b at the maximum) takes the x·r side, bucket a
    (a NaN counts as the largest value, also as in argmax). Pass either
    ``rotations`` (``[..., n_hashes, d, n_buckets // 2]``, leading dimensions broadcasting to those of
    ``x``) or a ``generator`` to draw fresh Gaussian ones with :func:`random_rotations`; with neither,
    torch's global generator draws them. ``n_hashes`` defaults to the rounds in ``rotations``, else 1.
    Hashing is not differentiable; the result carries no gradient.
    """
    if not isinstance(x, Tensor):
        raise ArgumentTypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"x must have shape [..., L, d] (at least 2 dims), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ArgumentTypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if x.shape[-1] == 0:
        raise ValueError(f"x must have a last dim d >= 1, got shape {tuple(x.shape)}")
    n_buckets = check_n_buckets(n_buckets)
    if n_hashes is not None:
        n_hashes = positive_int("n_hashes", n_hashes)
    rotations = rotations_for(x, n_buckets, n_hashes, rotations=rotations, generator=generator)
    _check_rotations(rotations, x, n_buckets, n_hashes)
    with torch.no_grad():
        rotations = rotations.to(x.device, x.dtype)
        projected = x.detach().unsqueeze(-3) @ rotations  # [..., n_hashes, L, n_buckets/2]
        # argmax([xR; -xR]) without building the concatenation: the larger of max(xR) and -min(xR). Ties
        # go to the first half (xR comes first), and max/min take the first tied index, as argmax does.
        # "not (top < -bottom)" rather than "top >= -bottom" so that a NaN row, too, picks its first NaN.
        top, top_index = projected.max(dim=-1)
        bottom, bottom_index = projected.min(dim=-1)
        return torch.where(top < -bottom, bottom_index + n_buckets // 2, top_index)
