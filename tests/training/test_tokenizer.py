from tokenizers import Tokenizer

from serving.contract import PAD_ID, UNK_ID, encode
from training.tokenizer import train_tokenizer

TEXTS = ["这本书很好看", "质量太差了", "The book is GOOD", "物流很快 good value", "很好 很好"]


def test_chinese_one_token_per_character_english_per_word():
    tok = train_tokenizer(TEXTS, vocab_size=100, min_frequency=1, max_len=16)
    assert tok.encode("这本书很好看").tokens == ["这", "本", "书", "很", "好", "看"]
    assert tok.encode("The book is GOOD").tokens == ["the", "book", "is", "good"]
    assert tok.encode("很好 good!").tokens == ["很", "好", "good", "[UNK]"]
    assert tok.token_to_id("[PAD]") == PAD_ID and tok.token_to_id("[UNK]") == UNK_ID


def test_truncation_empty_text_and_round_trip(tmp_path):
    tok = train_tokenizer(TEXTS, vocab_size=100, min_frequency=1, max_len=4)
    ids = encode(tok, ["这本书很好看", "", "🙂"])
    assert [len(x) for x in ids] == [4, 1, 1] and ids[1] == [UNK_ID]
    tok.save(str(tmp_path / "tokenizer.json"))
    again = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert encode(again, ["这本书很好看"]) == ids[:1]


def test_min_frequency_and_vocab_size_apply():
    tok = train_tokenizer(TEXTS, vocab_size=100, min_frequency=2, max_len=8)
    assert "很" in tok.get_vocab() and "质" not in tok.get_vocab()
    assert train_tokenizer(TEXTS, vocab_size=6, min_frequency=1, max_len=8).get_vocab_size() == 6


def test_subword_spells_unseen_words_from_pieces_and_keeps_special_ids():
    texts = ["booking books bookshop", "shopping shops", "这本书很好看"] * 3
    tok = train_tokenizer(texts, vocab_size=60, min_frequency=1, max_len=16, kind="subword")
    assert [tok.token_to_id(t) for t in ("[PAD]", "[UNK]", "[SEP]")] == [0, 1, 2]
    pieces = tok.encode("bookshops").tokens
    assert "[UNK]" not in pieces and len(pieces) > 1  # a word never seen whole is still spelled
    assert tok.encode("这本书").tokens == ["这", "本", "书"]  # CJK stays one token per character
    word = train_tokenizer(texts, vocab_size=60, min_frequency=1, max_len=16, kind="word")
    assert word.encode("bookshops").tokens == ["[UNK]"]


def test_lowercase_switch():
    cased = train_tokenizer(TEXTS, vocab_size=100, min_frequency=1, max_len=16, lowercase=False)
    assert cased.encode("The book is GOOD").tokens == ["The", "book", "is", "GOOD"]
    assert cased.encode("good").tokens == ["good"] and cased.encode("Good").tokens == ["[UNK]"]


def test_unknown_tokenizer_kind_is_refused():
    import pytest

    with pytest.raises(ValueError, match="'word' or 'subword'"):
        train_tokenizer(TEXTS, vocab_size=100, min_frequency=1, max_len=16, kind="bpe")
