"""Data for the Reformer experiments: the duplication task (paper §2.1), an offline character corpus, enwik8.

Every task hands out batches as a :class:`Batch` of ``inputs``, next-token ``targets`` and a boolean
``mask`` of the positions that count for loss and accuracy, drawn from an explicit
``torch.Generator`` so a run is reproducible from its seed (and resumable from the generator's state).

* :class:`DuplicationTask`: sequences 0w0w with w a random string over {1, …, N}, the task of §2.1
  and Table 2. The paper uses N = 127 and |w| = 511 (length 1024); any smaller size works for
  lessons. Only the second copy of w can be predicted, so loss and accuracy are masked to it.
* :class:`RepeatedTextTask`: the duplication task on real text: a window w of a :class:`CharCorpus`
  split, written twice (w w). The first copy is ordinary text, where a model does about as well as an
  n-gram model; the second copy is predictable only by looking back half a sequence. Our task (not in
  the paper), for lesson 09's §5 comparisons at CPU scale.
* :class:`CharCorpus`: random windows of a character-level text. :func:`python_docs_text` is Python's
  own documentation topics, shipped with this package (``reformer_lab/corpora/``) so that every machine
  and Python version trains on the same 465,126 characters; :func:`load_enwik8`
  reads the enwik8 bytes from a file the user supplies (a byte-level corpus, 256 symbols, the
  dataset of §5).
"""

from __future__ import annotations

import gzip
import hashlib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from reformer_lab.validation import ArgumentTypeError, as_float, as_int, one_of, positive_int

__all__ = [
    "ENWIK8_SPLITS",
    "PYTHON_DOCS_PATH",
    "PYTHON_DOCS_SHA256",
    "Batch",
    "CharCorpus",
    "CharVocab",
    "DuplicationTask",
    "RepeatedTextTask",
    "enwik8_corpus",
    "load_enwik8",
    "python_docs_text",
]

#: The shipped character corpus and the SHA-256 of its uncompressed text (see ``reformer_lab/corpora/README.md``).
PYTHON_DOCS_PATH = Path(__file__).resolve().parent / "corpora" / "python_docs_topics.txt.gz"
PYTHON_DOCS_SHA256 = "71f2ff5d99bdc1f9c48c5c2353ad138201c5ca1c377e0226857ef8fa89b8bcee"

#: T2T's enwik8 split in bytes: train, validation, test (paper §5 / fastai reproduction notes).
ENWIK8_SPLITS = (89_621_832, 5_000_000, 5_000_000)


@dataclass
class Batch:
    """``inputs [B, L]`` token ids, ``targets [B, L]`` the next tokens, ``mask [B, L]`` positions that count."""

    inputs: Tensor
    targets: Tensor
    mask: Tensor

    def __post_init__(self) -> None:
        for name in ("inputs", "targets", "mask"):
            value = getattr(self, name)
            if not isinstance(value, Tensor):
                raise ArgumentTypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        for name in ("inputs", "targets"):
            value = getattr(self, name)
            if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
                raise ArgumentTypeError(f"{name} must be an integer tensor of token ids, got {value.dtype}")
        if self.mask.dtype != torch.bool:  # a float 0.5 would otherwise count as True
            raise ArgumentTypeError(f"mask must be a bool tensor (True where a position counts), got {self.mask.dtype}")
        if not self.inputs.shape == self.targets.shape == self.mask.shape or self.inputs.dim() != 2:
            raise ValueError(f"inputs, targets and mask must have one shape [batch, length], got "
                             f"{tuple(self.inputs.shape)}, {tuple(self.targets.shape)} and {tuple(self.mask.shape)}")

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.inputs.to(device), self.targets.to(device), self.mask.to(device))

    def split(self, rank: int, world_size: int) -> Batch:
        """This rank's contiguous share of the batch (for data-parallel training)."""
        world_size = positive_int("world_size", world_size)
        rank = as_int("rank", rank, minimum=0, maximum=world_size - 1)
        size = self.inputs.shape[0]
        if size % world_size:
            raise ValueError(f"batch size {size} must be divisible by the number of processes {world_size}")
        part = slice(rank * size // world_size, (rank + 1) * size // world_size)
        return Batch(self.inputs[part], self.targets[part], self.mask[part])


def _generator(seed: int | torch.Generator | None) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(0 if seed is None else as_int("generator", seed))


@dataclass(frozen=True)
class DuplicationTask:
    """The synthetic duplication task of paper §2.1: sequences ``0 w 0 w`` with w ∈ {1, …, n_symbols}^w_len.

    ``inputs`` is the sequence itself (length ``2·(w_len + 1)``), ``targets[i] = inputs[i + 1]`` (the
    last target is unused), and ``mask`` is True exactly where the target is a symbol of the second
    copy of w: the w_len positions that can be predicted by looking back, the paper's "second half"
    (its separator 0 is fixed, so it is not counted). Paper size: ``n_symbols=127, w_len=511``
    (vocabulary 128, length 1024).
    """

    w_len: int = 511
    n_symbols: int = 127

    def __post_init__(self) -> None:
        object.__setattr__(self, "w_len", positive_int("w_len", self.w_len))
        object.__setattr__(self, "n_symbols", positive_int("n_symbols", self.n_symbols))

    @property
    def vocab_size(self) -> int:
        """n_symbols + 1 (the separator 0)."""
        return self.n_symbols + 1

    @property
    def length(self) -> int:
        """Sequence length 2·(|w| + 1)."""
        return 2 * (self.w_len + 1)

    def sequences(self, batch_size: int, generator: int | torch.Generator | None = None) -> Tensor:
        """``[batch_size, length]`` sequences 0w0w."""
        batch_size = positive_int("batch_size", batch_size)
        w = torch.randint(1, self.n_symbols + 1, (batch_size, self.w_len), generator=_generator(generator))
        zero = torch.zeros(batch_size, 1, dtype=torch.long)
        return torch.cat([zero, w, zero, w], dim=1)

    def loss_mask(self) -> Tensor:
        """``[length]`` bool: True where the target is in the second copy of w."""
        mask = torch.zeros(self.length, dtype=torch.bool)
        mask[self.w_len + 1 : 2 * self.w_len + 1] = True
        return mask

    def batch(self, batch_size: int, generator: int | torch.Generator | None = None) -> Batch:
        """A :class:`Batch` of ``batch_size`` fresh sequences (deterministic given the generator or seed)."""
        seq = self.sequences(batch_size, generator)
        batch_size = seq.shape[0]
        targets = torch.cat([seq[:, 1:], torch.zeros(batch_size, 1, dtype=torch.long)], dim=1)
        return Batch(seq, targets, self.loss_mask().expand(batch_size, -1).clone())

    def train_batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        return self.batch(batch_size, generator)

    def eval_batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        return self.batch(batch_size, generator)


class CharVocab:
    """A character vocabulary: ``encode(str) → LongTensor``, ``decode(ids) → str`` (sorted characters)."""

    def __init__(self, chars: Sequence[str]) -> None:
        self.chars = sorted(set(chars))
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls(list(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> Tensor:
        unknown = set(text) - self.index.keys()
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {sorted(unknown)[:10]!r}")
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def decode(self, ids: Tensor | Sequence[int]) -> str:
        """The text of a 1-D sequence of ids, each an int in [0, len(vocab)) (no negative wrap-around)."""
        if isinstance(ids, Tensor):
            if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool or ids.dim() != 1:
                raise ArgumentTypeError(f"ids must be a 1-D integer tensor, got {ids.dtype} {tuple(ids.shape)}")
            ids = ids.tolist()
        size, chars = len(self.chars), []
        for i in ids:
            index = as_int("ids entries", i)
            if not 0 <= index < size:
                raise ValueError(f"token id {index} is not in the vocabulary: ids must lie in [0, vocab_size={size})")
            chars.append(self.chars[index])
        return "".join(chars)


def python_docs_text() -> str:
    """Python 3.11.7's documentation topics (``pydoc_data.topics`` joined in key order), read from the copy in
    ``reformer_lab/corpora/`` and checked against its SHA-256: the same text on every machine."""
    raw = gzip.decompress(PYTHON_DOCS_PATH.read_bytes())
    digest = hashlib.sha256(raw).hexdigest()
    if digest != PYTHON_DOCS_SHA256:
        raise ValueError(f"{PYTHON_DOCS_PATH} is damaged: its SHA-256 is {digest}, expected {PYTHON_DOCS_SHA256}; "
                         "restore it with `git checkout -- reformer_lab/corpora`")
    return raw.decode("utf-8")


class CharCorpus:
    """Random windows of a token stream, split into train and validation (the last ``valid_fraction``).

    ``data`` is a 1-D tensor of token ids; ``vocab`` a :class:`CharVocab` (None for byte corpora,
    vocabulary 256). ``seq_len`` is the model's input length; each example is ``seq_len + 1`` tokens
    (inputs and targets shifted by one), every position counts. A batch draws its window starts
    uniformly from all ``len − seq_len`` windows of the split, the last one included; a split needs
    at least ``seq_len + 1`` tokens. ``data`` and ``valid`` must be 1-D integer tensors of ids in
    [0, vocab_size) (float tensors are refused, not truncated).
    """

    def __init__(self, data: Tensor, seq_len: int, *, vocab: CharVocab | None = None, valid_fraction: float = 0.1,
                 valid: Tensor | None = None) -> None:
        seq_len = positive_int("seq_len", seq_len)
        self.vocab, self.seq_len = vocab, seq_len
        if valid is None:
            valid_fraction = as_float("valid_fraction", valid_fraction, minimum=0.0, exclusive_minimum=True,
                                      maximum=1.0)
            if valid_fraction == 1.0:
                raise ValueError("valid_fraction must be < 1, got 1.0: nothing would be left to train on")
            cut = int(len(data) * (1 - valid_fraction))
            data, valid = data[:cut], data[cut:]
        limit = 256 if vocab is None else len(vocab)
        for name, part in (("data", data), ("valid", valid)):
            if not isinstance(part, Tensor) or part.dim() != 1 or part.is_floating_point() or part.is_complex() \
                    or part.dtype == torch.bool:
                what = f"{part.dtype} {tuple(part.shape)}" if isinstance(part, Tensor) else type(part).__name__
                raise ArgumentTypeError(f"{name} must be a 1-D integer tensor of token ids, got {what}")
            if len(part) and (int(part.min()) < 0 or int(part.max()) >= limit):
                bad = int(part.min()) if int(part.min()) < 0 else int(part.max())
                raise ValueError(f"{name} must hold token ids in [0, vocab_size={limit}), got {bad}")
        self.train, self.valid = data.long(), valid.long()
        for name, part in (("training", self.train), ("validation", self.valid)):
            if len(part) < seq_len + 1:  # one example is seq_len + 1 tokens (inputs and the shifted targets)
                raise ValueError(f"the {name} text ({len(part)} tokens) is shorter than seq_len + 1 = {seq_len + 1}")

    @classmethod
    def python_docs(cls, seq_len: int = 256, valid_fraction: float = 0.1) -> CharCorpus:
        """The offline character corpus: Python's documentation text with its character vocabulary."""
        text = python_docs_text()
        vocab = CharVocab.from_text(text)
        return cls(vocab.encode(text), seq_len, vocab=vocab, valid_fraction=valid_fraction)

    @property
    def vocab_size(self) -> int:
        return 256 if self.vocab is None else len(self.vocab)

    def _windows(self, data: Tensor, batch_size: int, generator: torch.Generator) -> Batch:
        # A window is seq_len + 1 tokens, so its start runs over [0, len − seq_len − 1], the last included.
        batch_size = positive_int("batch_size", batch_size)
        starts = torch.randint(0, len(data) - self.seq_len, (batch_size,), generator=_generator(generator))
        rows = torch.stack([data[s : s + self.seq_len + 1] for s in starts.tolist()])
        return Batch(rows[:, :-1], rows[:, 1:], torch.ones(batch_size, self.seq_len, dtype=torch.bool))

    def train_batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        return self._windows(self.train, batch_size, generator)

    def eval_batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        return self._windows(self.valid, batch_size, generator)


class RepeatedTextTask:
    """Sequences ``w w``: a random window w of ``length // 2`` tokens of a :class:`CharCorpus` split, twice.

    ``targets[i] = inputs[i + 1]`` and every position but the last counts (``mask``). Positions
    ``< half − 1`` predict the first copy (plain text); from ``half − 1`` on they predict the second copy,
    which repeats what lies exactly ``half`` positions back (:meth:`copy_mask`). ``unrelated=True`` in
    :meth:`batch` replaces the first half by another window, so the second copy no longer repeats anything:
    the loss there is then what the model does without the far context. Training draws from the corpus's
    training split, evaluation from its validation split.
    """

    def __init__(self, corpus: CharCorpus, length: int) -> None:
        if not isinstance(corpus, CharCorpus):
            raise ArgumentTypeError(f"corpus must be a CharCorpus, got {type(corpus).__name__}")
        length = as_int("length", length, minimum=4)
        if length % 2:
            raise ValueError(f"length of a repeated-text sequence (w w) must be even, got {length}")
        for name, part in (("training", corpus.train), ("validation", corpus.valid)):
            if len(part) < length // 2:
                raise ValueError(f"the {name} text ({len(part)} tokens) is shorter than half a sequence "
                                 f"({length // 2})")
        self.corpus, self.length = corpus, length

    @property
    def half(self) -> int:
        return self.length // 2

    @property
    def vocab_size(self) -> int:
        return self.corpus.vocab_size

    def copy_mask(self) -> Tensor:
        """``[length]`` bool: True where the target is a token of the second copy (the last position: no target)."""
        mask = torch.zeros(self.length, dtype=torch.bool)
        mask[self.half - 1 : self.length - 1] = True
        return mask

    def _halves(self, data: Tensor, batch_size: int, generator: torch.Generator) -> Tensor:
        starts = torch.randint(0, len(data) - self.half + 1, (batch_size,), generator=generator)
        return torch.stack([data[s : s + self.half] for s in starts.tolist()])

    def batch(self, batch_size: int, generator: int | torch.Generator | None = None, *, split: str = "valid",
              unrelated: bool = False) -> Batch:
        """``batch_size`` sequences w w from ``split`` (``"train"`` or ``"valid"``); ``unrelated``: u w instead,
        with u another window."""
        batch_size, generator = positive_int("batch_size", batch_size), _generator(generator)
        data = {"train": self.corpus.train, "valid": self.corpus.valid}[one_of("split", split, ("train", "valid"))]
        second = self._halves(data, batch_size, generator)
        first = self._halves(data, batch_size, generator) if unrelated else second
        seq = torch.cat([first, second], dim=1)
        targets = torch.cat([seq[:, 1:], torch.zeros(batch_size, 1, dtype=torch.long)], dim=1)
        mask = torch.ones(batch_size, self.length, dtype=torch.bool)
        mask[:, -1] = False
        return Batch(seq, targets, mask)

    def train_batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        return self.batch(batch_size, generator, split="train")

    def eval_batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        return self.batch(batch_size, generator, split="valid")


def _read_bytes(path: str | Path) -> bytes:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"enwik8 file not found: {path} (download enwik8.zip from "
                                "http://mattmahoney.net/dc/enwik8.zip and pass its path)")
    if not path.is_file():
        raise ValueError(f"enwik8 path is not a file: {path}")
    try:
        if path.suffix == ".zip" or zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                return archive.read("enwik8" if "enwik8" in names else names[0])
        return path.read_bytes()
    except (OSError, zipfile.BadZipFile, IndexError) as error:
        raise ValueError(f"cannot read enwik8 from {path}: {error}") from error


def load_enwik8(path: str | Path) -> tuple[Tensor, Tensor, Tensor]:
    """The enwik8 bytes from ``path`` (the raw file or ``enwik8.zip``) as ``(train, valid, test)`` uint8 tensors.

    The full 10⁸-byte file is split as T2T did (90M/5M/5M minus the header, :data:`ENWIK8_SPLITS`);
    a smaller file (a sample) is split in the same proportions. Missing, unreadable or empty files
    raise at once with the path in the message.
    """
    raw = _read_bytes(path)
    if len(raw) < 3:
        raise ValueError(f"enwik8 file {path} is empty or too short ({len(raw)} bytes)")
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    total = sum(ENWIK8_SPLITS)
    if len(data) >= total:
        n_train, n_valid, _ = ENWIK8_SPLITS
    else:
        n_train = int(len(data) * ENWIK8_SPLITS[0] / total)
        n_valid = int(len(data) * ENWIK8_SPLITS[1] / total)
    return data[:n_train], data[n_train : n_train + n_valid], data[n_train + n_valid :]


def enwik8_corpus(path: str | Path, seq_len: int) -> CharCorpus:
    """A byte-level :class:`CharCorpus` (vocabulary 256) over enwik8's training and validation splits."""
    train, valid, _ = load_enwik8(path)
    return CharCorpus(train, seq_len, valid=valid)
