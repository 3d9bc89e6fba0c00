"""Data: the duplication task (paper §2.1), the offline character corpus, the enwik8 loader."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from reformer_lab.data import (
    CharCorpus,
    CharVocab,
    DuplicationTask,
    RepeatedTextTask,
    enwik8_corpus,
    load_enwik8,
    python_docs_text,
)


def test_duplication_format_is_0w0w() -> None:
    task = DuplicationTask(w_len=7, n_symbols=5)
    b = task.batch(16, generator=0)
    assert b.inputs.shape == b.targets.shape == b.mask.shape == (16, 16)
    seq = b.inputs
    assert (seq[:, 0] == 0).all() and (seq[:, 8] == 0).all()
    assert torch.equal(seq[:, 1:8], seq[:, 9:])
    assert seq[:, 1:8].min() >= 1 and seq[:, 1:8].max() <= 5
    assert torch.equal(b.targets[:, :-1], seq[:, 1:])  # next-token targets


def test_mask_covers_exactly_the_second_copy_of_w() -> None:
    task = DuplicationTask(w_len=7, n_symbols=5)
    b = task.batch(4, generator=1)
    assert b.mask.sum(1).tolist() == [7] * 4
    assert b.mask[:, 8:15].all() and not b.mask[:, :8].any() and not b.mask[:, 15].any()
    assert torch.equal(b.targets[b.mask].view(4, 7), b.inputs[:, 1:8])  # the targets are the first copy


def test_duplication_is_deterministic_from_its_seed() -> None:
    task = DuplicationTask(w_len=31, n_symbols=127)
    assert torch.equal(task.batch(4, 0).inputs, task.batch(4, 0).inputs)
    assert not torch.equal(task.batch(4, 0).inputs, task.batch(4, 1).inputs)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(task.train_batch(2, g1).inputs, task.train_batch(2, g2).inputs)


def test_paper_size_and_vocab() -> None:
    task = DuplicationTask()
    assert (task.w_len, task.n_symbols, task.length, task.vocab_size) == (511, 127, 1024, 128)
    with pytest.raises(ValueError, match="w_len"):
        DuplicationTask(w_len=0)


def test_batch_split_for_data_parallel() -> None:
    b = DuplicationTask(w_len=3, n_symbols=9).batch(4, 0)
    parts = [b.split(r, 2) for r in range(2)]
    assert torch.equal(torch.cat([p.inputs for p in parts]), b.inputs)
    with pytest.raises(ValueError, match="divisible"):
        b.split(0, 3)


def test_char_vocab() -> None:
    vocab = CharVocab.from_text("hello world")
    assert len(vocab) == 8 and vocab.decode(vocab.encode("low")) == "low"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        vocab.encode("xyz")


def test_python_docs_corpus_loads_offline() -> None:
    assert len(python_docs_text()) > 100_000
    corpus = CharCorpus.python_docs(seq_len=64)
    assert 50 < corpus.vocab_size < 200
    b = corpus.train_batch(3, torch.Generator().manual_seed(0))
    assert b.inputs.shape == (3, 64) and b.mask.all()
    assert torch.equal(b.inputs[:, 1:], b.targets[:, :-1])
    assert corpus.eval_batch(2, torch.Generator().manual_seed(0)).inputs.max() < corpus.vocab_size


def _sample(tmp_path: Path) -> bytes:
    data = bytes(range(256)) * 40  # 10,240 bytes standing in for enwik8
    (tmp_path / "enwik8").write_bytes(data)
    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w") as archive:
        archive.writestr("enwik8", data)
    return data


@pytest.mark.parametrize("name", ["enwik8", "enwik8.zip"])
def test_enwik8_loader_on_a_small_sample(tmp_path: Path, name: str) -> None:
    data = _sample(tmp_path)
    train, valid, test = load_enwik8(tmp_path / name)
    assert len(train) + len(valid) + len(test) == len(data)
    assert abs(len(train) / len(data) - 89_621_832 / 99_621_832) < 1e-3  # T2T's proportions
    assert bytes(train[:256].tolist()) == data[:256]
    corpus = enwik8_corpus(tmp_path / name, seq_len=32)
    assert corpus.vocab_size == 256
    assert corpus.train_batch(2, torch.Generator().manual_seed(0)).inputs.shape == (2, 32)


def test_missing_or_unreadable_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="enwik8 file not found"):
        load_enwik8(tmp_path / "nope")
    with pytest.raises(ValueError, match="not a file"):
        load_enwik8(tmp_path)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_enwik8(tmp_path / "empty")
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ValueError, match="cannot read"):
        load_enwik8(tmp_path / "bad.zip")


def test_arguments_go_through_the_shared_checks() -> None:
    import numpy as np

    from reformer_lab.validation import ArgumentTypeError

    task = DuplicationTask(w_len=np.int64(3), n_symbols=np.int64(9))
    assert task == DuplicationTask(3, 9) and type(task.w_len) is int and task.length == 8
    assert torch.equal(task.batch(np.int64(2), np.int64(5)).inputs, task.batch(2, 5).inputs)
    for bad, message in [(True, "the bool True"), (3.0, r"3\.0 \(float\)")]:
        with pytest.raises(ArgumentTypeError, match=rf"^w_len must be an int >= 1, got {message}$"):
            DuplicationTask(w_len=bad)
    with pytest.raises(ArgumentTypeError, match=r"^generator must be an int, got 1\.7 \(float\)$"):
        task.batch(2, 1.7)  # was silently int(1.7) = 1
    with pytest.raises(ValueError, match=r"^batch_size must be an int >= 1, got 0$"):
        task.batch(0, 1)


def test_batch_split_refuses_a_rank_outside_the_world() -> None:
    b = DuplicationTask(w_len=3, n_symbols=9).batch(4, 0)
    with pytest.raises(ValueError, match=r"^rank must be an int in \[0, 1\], got 2$"):
        b.split(2, 2)  # was an empty batch
    with pytest.raises(ValueError, match=r"^world_size must be an int >= 1, got 0$"):
        b.split(0, 0)


def test_char_corpus_checks_its_sizes() -> None:
    from reformer_lab.validation import ArgumentTypeError

    data = torch.arange(100) % 7
    with pytest.raises(ArgumentTypeError, match=r"^seq_len must be an int >= 1, got 2\.5 \(float\)$"):
        CharCorpus(data, 2.5)
    with pytest.raises(ValueError, match=r"^valid_fraction must be < 1"):
        CharCorpus(data, 4, valid_fraction=1.0)
    with pytest.raises(ValueError, match=r"^valid_fraction must be a finite number > 0\.0 and <= 1\.0, got 0$"):
        CharCorpus(data, 4, valid_fraction=0)


def test_python_docs_text_is_the_shipped_fixed_corpus(tmp_path, monkeypatch) -> None:
    import gzip
    import hashlib

    from reformer_lab import data

    text = python_docs_text()
    assert len(text) == 465_126 and hashlib.sha256(text.encode()).hexdigest() == data.PYTHON_DOCS_SHA256
    damaged = tmp_path / "topics.txt.gz"
    damaged.write_bytes(gzip.compress(text.encode()[:-1]))
    monkeypatch.setattr(data, "PYTHON_DOCS_PATH", damaged)
    with pytest.raises(ValueError, match="is damaged: its SHA-256 is"):
        python_docs_text()


# Off-by-one, silent coercion: the last window, decode's range, integer data and bool masks


def test_char_corpus_draws_every_window_the_last_one_included() -> None:
    # 10 training tokens 0..9 and seq_len 4: windows of 5 tokens start at 0..5. The start range stopped at 4.
    corpus = CharCorpus(torch.arange(10), 4, valid=torch.arange(5))
    starts = corpus.train_batch(600, torch.Generator().manual_seed(0)).inputs[:, 0]
    assert set(starts.tolist()) == {0, 1, 2, 3, 4, 5}
    last = corpus.train_batch(600, torch.Generator().manual_seed(1))
    at_end = last.inputs[:, 0] == 5
    assert at_end.any() and torch.equal(last.targets[at_end][0], torch.tensor([6, 7, 8, 9]))
    # a split of exactly seq_len + 1 tokens holds one window (it was refused); one token fewer holds none
    assert torch.equal(corpus.eval_batch(3, torch.Generator().manual_seed(0)).inputs, torch.arange(4).expand(3, 4))
    with pytest.raises(ValueError, match=r"^the validation text \(4 tokens\) is shorter than seq_len \+ 1 = 5$"):
        CharCorpus(torch.arange(10), 4, valid=torch.arange(4))


def test_char_corpus_refuses_float_data_and_ids_outside_the_vocabulary() -> None:
    from reformer_lab.validation import ArgumentTypeError

    with pytest.raises(ArgumentTypeError, match=r"^data must be a 1-D integer tensor of token ids, got torch\.float32"):
        CharCorpus(torch.rand(100) * 50, 4)  # was truncated by .long()
    with pytest.raises(ArgumentTypeError,
                       match=r"^valid must be a 1-D integer tensor of token ids, got torch\.int64 \(2, 5\)"):
        CharCorpus(torch.arange(20), 4, valid=torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^data must hold token ids in \[0, vocab_size=256\), got 300$"):
        CharCorpus(torch.arange(100) + 201, 4, valid=torch.arange(10))
    vocab = CharVocab("abc")
    with pytest.raises(ValueError, match=r"^valid must hold token ids in \[0, vocab_size=3\), got -1$"):
        CharCorpus(torch.zeros(20, dtype=torch.long), 4, vocab=vocab, valid=torch.tensor([0, 1, 2, 1, 0, -1]))


def test_char_vocab_decode_refuses_ids_outside_the_vocabulary() -> None:
    from reformer_lab.validation import ArgumentTypeError

    vocab = CharVocab("abc")
    assert vocab.decode(torch.tensor([2, 0, 1])) == vocab.decode([2, 0, 1]) == "cab"
    for bad in (-1, 3):  # -1 wrapped around to "c"
        with pytest.raises(ValueError, match=rf"^token id {bad} is not in the vocabulary: ids must lie in "
                                             rf"\[0, vocab_size=3\)$"):
            vocab.decode([0, bad])
        with pytest.raises(ValueError, match=rf"^token id {bad} "):
            vocab.decode(torch.tensor([0, bad]))
    with pytest.raises(ArgumentTypeError, match=r"^ids must be a 1-D integer tensor, got torch\.float32"):
        vocab.decode(torch.tensor([0.0, 1.7]))  # was int(1.7) = 1
    with pytest.raises(ArgumentTypeError, match=r"^ids entries must be an int, got 1\.7 \(float\)$"):
        vocab.decode([0, 1.7])


def test_batch_masks_must_be_bool_and_ids_integer() -> None:
    from reformer_lab.data import Batch
    from reformer_lab.validation import ArgumentTypeError

    ids = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ArgumentTypeError, match=r"^mask must be a bool tensor .*got torch\.float32$"):
        Batch(ids, ids, torch.full((2, 4), 0.5))  # 0.5 was taken as True
    with pytest.raises(ArgumentTypeError, match=r"^targets must be an integer tensor of token ids, got torch\.float32"):
        Batch(ids, ids.float(), ids > 0)
    with pytest.raises(ValueError, match=r"^inputs, targets and mask must have one shape"):
        Batch(ids, ids[:, :3], ids > 0)


# The repeated-text task (w w on real text): lesson 09's ablations


def _split_corpus() -> CharCorpus:
    """Training text 0 … 59, validation text 100 … 139: a window's values say which split it came from."""
    return CharCorpus(torch.arange(60), 8, valid=torch.arange(100, 140))


def _is_window_of(row: torch.Tensor, text: torch.Tensor) -> bool:
    """Does ``row`` occur as a contiguous run of ``text`` (ids < 256)?"""
    return bytes(row.tolist()) in bytes(text.tolist())


def test_repeated_text_is_w_w_with_next_token_targets() -> None:
    task = RepeatedTextTask(_split_corpus(), 16)
    assert (task.length, task.half, task.vocab_size) == (16, 8, 256)
    b = task.batch(6, generator=0)
    assert b.inputs.shape == b.targets.shape == b.mask.shape == (6, 16)
    assert torch.equal(b.inputs[:, 8:], b.inputs[:, :8])  # the second half repeats the first
    assert torch.equal(b.targets[:, :-1], b.inputs[:, 1:])  # next-token targets
    assert not b.mask[:, -1].any() and b.mask[:, :-1].all()  # only the last position has no target
    # each half is a contiguous window of the validation text (the default split): consecutive ids >= 100
    assert torch.equal(b.inputs[:, :8] - b.inputs[:, :1], torch.arange(8).expand(6, 8))
    assert b.inputs.min() >= 100 and b.inputs.max() < 140


def test_repeated_text_copy_mask_marks_the_targets_of_the_second_copy() -> None:
    task = RepeatedTextTask(_split_corpus(), 16)
    copy = task.copy_mask()
    assert copy.dtype == torch.bool and copy.shape == (16,)
    assert copy.nonzero().flatten().tolist() == list(range(7, 15))  # half − 1 … length − 2
    # there, and only there, the target is the token exactly half a sequence back from it
    b = task.batch(4, generator=1)
    back = torch.cat([torch.full((4, 7), -1), b.inputs[:, :8], torch.full((4, 1), -1)], dim=1)
    assert torch.equal(b.targets == back, copy.expand(4, 16))  # the ids are all distinct within a row


def test_repeated_text_draws_train_and_eval_batches_from_their_splits() -> None:
    task = RepeatedTextTask(_split_corpus(), 16)
    train = task.train_batch(50, torch.Generator().manual_seed(0)).inputs
    valid = task.eval_batch(50, torch.Generator().manual_seed(0)).inputs
    assert train.max() < 60 and valid.min() >= 100  # training text 0 … 59, validation text 100 … 139
    assert torch.equal(valid, task.batch(50, torch.Generator().manual_seed(0)).inputs)  # "valid" is the default
    assert torch.equal(train, task.batch(50, torch.Generator().manual_seed(0), split="train").inputs)
    # every window start, the last one included: training windows of 8 start at 0 … 52
    starts = task.train_batch(2000, torch.Generator().manual_seed(1)).inputs[:, 0]
    assert set(starts.tolist()) == set(range(53))
    with pytest.raises(ValueError, match=r"^split must be one of 'train', 'valid'; got 'test'$"):
        task.batch(2, 0, split="test")


def test_repeated_text_on_real_text_windows_lie_in_the_right_split() -> None:
    corpus = CharCorpus.python_docs(seq_len=64)
    task = RepeatedTextTask(corpus, 64)
    assert task.vocab_size == corpus.vocab_size < 256
    for batch, text in ((task.train_batch(8, torch.Generator().manual_seed(0)), corpus.train),
                        (task.eval_batch(8, torch.Generator().manual_seed(0)), corpus.valid)):
        assert torch.equal(batch.inputs[:, 32:], batch.inputs[:, :32])
        assert all(_is_window_of(row, text) for row in batch.inputs[:, :32])


def test_repeated_text_unrelated_replaces_the_first_copy() -> None:
    corpus = CharCorpus.python_docs(seq_len=64)
    task = RepeatedTextTask(corpus, 64)
    b = task.batch(16, torch.Generator().manual_seed(3), unrelated=True)
    assert b.inputs.shape == (16, 64) and torch.equal(b.targets[:, :-1], b.inputs[:, 1:])
    assert not b.mask[:, -1].any() and b.mask[:, :-1].all()
    assert all(not torch.equal(row[:32], row[32:]) for row in b.inputs)  # 32 characters of another window
    for row in b.inputs:  # both halves are still windows of the validation text
        assert _is_window_of(row[32:], corpus.valid) and _is_window_of(row[:32], corpus.valid)
    # the second halves are those of the w w batch with the same seed: the copy with and without its source
    same = task.batch(16, torch.Generator().manual_seed(3))
    assert torch.equal(b.inputs[:, 32:], same.inputs[:, 32:])


def test_repeated_text_is_deterministic_from_its_seed() -> None:
    task = RepeatedTextTask(CharCorpus.python_docs(seq_len=64), 64)
    assert torch.equal(task.batch(4, 7).inputs, task.batch(4, torch.Generator().manual_seed(7)).inputs)
    assert not torch.equal(task.batch(4, 7).inputs, task.batch(4, 8).inputs)
    for unrelated in (False, True):
        assert torch.equal(task.batch(4, 7, unrelated=unrelated).inputs, task.batch(4, 7, unrelated=unrelated).inputs)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    first = [task.train_batch(2, g1).inputs for _ in range(2)]
    assert all(torch.equal(a, task.train_batch(2, g2).inputs) for a in first)
    assert not torch.equal(first[0], first[1])  # the generator moves on


def test_repeated_text_checks_its_arguments() -> None:
    from reformer_lab.validation import ArgumentTypeError

    corpus = _split_corpus()
    with pytest.raises(ValueError, match=r"^length of a repeated-text sequence \(w w\) must be even, got 15$"):
        RepeatedTextTask(corpus, 15)
    for short in (2, 3):
        with pytest.raises(ValueError, match=rf"^length must be an int >= 4, got {short}$"):
            RepeatedTextTask(corpus, short)
    assert RepeatedTextTask(corpus, 4).half == 2  # the shortest
    with pytest.raises(ArgumentTypeError, match=r"^corpus must be a CharCorpus, got DuplicationTask$"):
        RepeatedTextTask(DuplicationTask(w_len=7, n_symbols=5), 16)
    with pytest.raises(ArgumentTypeError, match=r"^length must be an int >= 4, got 16\.0 \(float\)$"):
        RepeatedTextTask(corpus, 16.0)
    # each split needs half a sequence: 40 validation tokens hold a window of 40, not of 41
    assert torch.equal(RepeatedTextTask(corpus, 80).batch(3, 0).inputs[:, :40], torch.arange(100, 140).expand(3, 40))
    with pytest.raises(ValueError, match=r"^the validation text \(40 tokens\) is shorter than half a sequence \(41\)$"):
        RepeatedTextTask(corpus, 82)
    with pytest.raises(ValueError, match=r"^the training text \(60 tokens\) is shorter than half a sequence \(61\)$"):
        RepeatedTextTask(CharCorpus(torch.arange(60), 8, valid=torch.arange(100, 200)), 122)
    with pytest.raises(ValueError, match=r"^batch_size must be an int >= 1, got 0$"):
        RepeatedTextTask(corpus, 16).batch(0, 1)
