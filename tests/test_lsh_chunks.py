"""The LSH kernel's pieces (reformer_lab.lsh_chunks) against plain loops: window codes, N_ij (Appendix A), windows."""

from __future__ import annotations

import pytest
import torch

from reformer_lab.attention import sort_by_bucket
from reformer_lab.lsh_chunks import _chunk_apply, _chunk_logits, _look_back, _window_codes, _window_hits


def _case(length: int, n_buckets: int, n_hashes: int, chunk: int, seed: int, ties: bool):
    """Buckets ``[2, n_hashes, length]`` (with ``ties``: few buckets, so buckets span several chunks) and the blocks."""
    gen = torch.Generator().manual_seed(seed)
    high = 2 if ties else n_buckets
    buckets = torch.randint(0, high, (2, n_hashes, length), generator=gen)
    sort_idx, undo_idx = sort_by_bucket(buckets)
    return buckets, sort_idx.view(2, n_hashes, length // chunk, chunk), undo_idx // chunk


def _loop_counts(buckets, q_pos, chunk_ids, across: bool):
    """For every blocked slot: (in its own round's window, number of rounds whose window holds the pair)."""
    k_pos = _look_back(q_pos)
    batch, n_hashes, n_chunks, chunk = q_pos.shape
    own = torch.zeros(q_pos.shape + k_pos.shape[-1:], dtype=torch.bool)
    count = torch.zeros(own.shape, dtype=torch.long)
    for b in range(batch):
        for r in range(n_hashes):
            for t in range(n_chunks):
                for a in range(chunk):
                    for s in range(k_pos.shape[-1]):
                        i, j = q_pos[b, r, t, a].item(), k_pos[b, r, t, s].item()
                        inside = [chunk_ids[b, x, i] - chunk_ids[b, x, j] in (0, 1)
                                  and (across or buckets[b, x, i] == buckets[b, x, j]) for x in range(n_hashes)]
                        own[b, r, t, a, s] = inside[r] and not (t == 0 and s < chunk and n_chunks > 1)
                        count[b, r, t, a, s] = sum(inside)
    return own, count


@pytest.mark.parametrize("n_hashes", range(1, 9))
@pytest.mark.parametrize("across", [False, True])
@pytest.mark.parametrize("ties", [False, True])
def test_window_hits_equal_the_loop_count(n_hashes, across, ties):
    # 3 chunks of 4 per round: the first chunk's look-back wraps to the round's last chunk (not a window).
    length, chunk = 12, 4
    buckets, q_pos, chunk_ids = _case(length, 6, n_hashes, chunk, seed=n_hashes, ties=ties)
    valid, counts = _window_hits(q_pos, _window_codes(q_pos, buckets, across), count=True)
    own, count = _loop_counts(buckets, q_pos, chunk_ids, across)
    assert torch.equal(valid, own)
    assert torch.equal(counts.long()[own], count[own])
    assert (count[own] >= 1).all() and (n_hashes == 1 or count.max() > 1 or not ties)
    valid_only, none = _window_hits(q_pos, _window_codes(q_pos, buckets, across), count=False)
    assert none is None and torch.equal(valid_only, own)


def test_window_codes_fit_int16_and_separate_buckets():
    buckets, q_pos, _ = _case(64, 8, 3, 8, seed=0, ties=False)
    codes = _window_codes(q_pos, buckets, False)
    assert codes.dtype == torch.int16
    i, j = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    for r in range(3):
        c, b = codes[0, r], buckets[0, r]
        differ = b[i] != b[j]
        assert ((c[i] - c[j])[differ].abs() >= 2).all()  # another bucket is never in the window


@pytest.mark.parametrize("n_chunks", [1, 2, 5])
def test_window_products_equal_concatenated_windows(n_chunks):
    # _chunk_logits and _chunk_apply read [chunk t−1; chunk t] as a strided view: equal to an explicit copy.
    gen = torch.Generator().manual_seed(n_chunks)
    a, b = (torch.randn(n_chunks, 4, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    window = b if n_chunks == 1 else torch.cat([b.roll(1, dims=0), b], dim=1)
    if n_chunks > 1:
        window[0, :4] = 0.0
    out = a.new_empty(n_chunks, 4, window.shape[1])
    _chunk_logits(a, b, out)
    want = a @ window.mT
    torch.testing.assert_close(out, want, atol=1e-12, rtol=0)
    torch.testing.assert_close(_chunk_apply(want, b), want @ window, atol=1e-12, rtol=0)
