"""The word-level tokenizer shared by training and serving (one token per CJK character, one per word)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

PAD, UNK, SEP = "[PAD]", "[UNK]", "[SEP]"
PAD_ID, UNK_ID, SEP_ID = 0, 1, 2  # [SEP] ends each text in the language model's token stream


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int, max_len: int) -> Tokenizer:
    """Train on the given texts only (train split and unlabelled corpora), so val/test words stay unseen."""
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    # NFKC inside the tokenizer, so serving folds full-width forms exactly as preprocess did.
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.NFKC(),
        normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True),
    ])
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[PAD, UNK, SEP]
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.enable_truncation(max_length=max_len)
    if [tokenizer.token_to_id(t) for t in (PAD, UNK, SEP)] != [PAD_ID, UNK_ID, SEP_ID]:
        raise RuntimeError("tokenizer must map [PAD], [UNK], [SEP] to 0, 1, 2")
    return tokenizer


def encode(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids per text; a text with no known token becomes [UNK] so no row is empty."""
    return [enc.ids or [UNK_ID] for enc in tokenizer.encode_batch(texts, add_special_tokens=False)]


def file_sha256(path: str | Path) -> str:
    """The tokenizer's identity: classifier, language model and ONNX bundle must agree on it."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
