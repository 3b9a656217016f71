"""The word-level tokenizer shared by training and serving (one token per CJK character, one per word)."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

PAD, UNK = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int, max_len: int) -> Tokenizer:
    """Train on the given texts only (the train split), so val/test words stay unseen."""
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[PAD, UNK]
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.enable_truncation(max_length=max_len)
    if tokenizer.token_to_id(PAD) != PAD_ID or tokenizer.token_to_id(UNK) != UNK_ID:
        raise RuntimeError("tokenizer must map [PAD] to 0 and [UNK] to 1")
    return tokenizer


def encode(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids per text; a text with no known token becomes [UNK] so no row is empty."""
    return [enc.ids or [UNK_ID] for enc in tokenizer.encode_batch(texts, add_special_tokens=False)]
