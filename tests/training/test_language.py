from training.language import detect_language, resolve_corpora
from training.unlabelled import PEOPLES_DAILY, choose_corpora


def test_chinese_english_and_mixed_splits():
    zh = detect_language(["这本书很好看", "质量太差了 OK"])
    assert zh.language == "zh" and zh.cjk_share > 0.8
    en = detect_language(["We will make America great again.", "The economy is rigged."])
    assert en.language == "other" and en.cjk_share == 0.0
    mixed = detect_language(["这本书 good", "great book, 很好"])
    assert "mixed" in mixed.reason and mixed.language in {"zh", "other"}


def test_empty_split_says_what_it_chose():
    empty = detect_language(["", "123 !!"])
    assert empty.language == "other" and "no letters" in empty.reason


def test_auto_adds_peoples_daily_only_to_chinese():
    assert choose_corpora("auto", ["很好很好"])[0] == [PEOPLES_DAILY]
    assert choose_corpora("auto", ["very good"])[0] == []
    assert resolve_corpora(["a.txt"], detect_language(["很好"]), [PEOPLES_DAILY]) == ["a.txt"]
