"""The tokenizer shared by training and serving: one token per CJK character, and per word (word-level) or
per WordPiece subword (subword) elsewhere."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from serving.contract import PAD, PAD_ID, SEP, SEP_ID, UNK, UNK_ID


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int, max_len: int,
                    kind: str = "word", lowercase: bool = True) -> Tokenizer:
    """Train on the given texts only (train split and unlabelled corpora), so val/test words stay unseen.

    kind "word": one token per word, unknown words → [UNK]; "subword": WordPiece, so an unseen word is spelled
    from known pieces. Either way a CJK character is one token (BertPreTokenizer splits them apart)."""
    special = [PAD, UNK, SEP]
    if kind == "subword":
        tokenizer = Tokenizer(models.WordPiece(unk_token=UNK, max_input_chars_per_word=100))
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=special)
    elif kind == "word":
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
        trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=special)
    else:
        raise ValueError(f"tokenizer kind must be 'word' or 'subword', got {kind!r}")
    # NFKC inside the tokenizer, so serving folds full-width forms exactly as preprocess did.
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.NFKC(),
        normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                   lowercase=lowercase),
    ])
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.enable_truncation(max_length=max_len)
    if [tokenizer.token_to_id(t) for t in (PAD, UNK, SEP)] != [PAD_ID, UNK_ID, SEP_ID]:
        raise RuntimeError("tokenizer must map [PAD], [UNK], [SEP] to 0, 1, 2")
    return tokenizer


def file_sha256(path: str | Path) -> str:
    """The tokenizer's identity: classifier, language model and ONNX bundle must agree on it."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
