import pandas as pd

from training.augment import iter_sentence_views, sentences
from training.datamodule import TextDataModule
from training.token_store import build_store
from training.tokenizer import train_tokenizer


def test_sentences_split_on_chinese_and_ascii_ends_and_drop_tiny_pieces():
    assert sentences("我很喜欢这本书!内容很好。好!不过印刷一般;") == ["我很喜欢这本书!", "内容很好。", "不过印刷一般;"]
    assert sentences("没有句号的一段话") == ["没有句号的一段话"]


def sentence_views(texts, labels, per_text, seed):
    pairs = list(iter_sentence_views(texts, labels, per_text, seed))
    return [t for t, _ in pairs], [y for _, y in pairs]


def test_sentence_views_are_seeded_labelled_and_skip_single_sentences():
    texts = ["第一句很好。第二句也好!第三句一般。", "只有一句话而已", "前面不错。后面很差!"]
    one = sentence_views(texts, [1, 0, 0], per_text=1, seed=3)
    assert one == sentence_views(texts, [1, 0, 0], per_text=1, seed=3)
    assert len(one[0]) == 2 and one[1] == [1, 0]
    assert one[0][0] in sentences(texts[0]) and one[0][1] in sentences(texts[2])
    assert sentence_views(texts, [1, 0, 0], per_text=0, seed=3) == ([], [])
    assert len(sentence_views(texts, [1, 0, 0], per_text=5, seed=3)[0]) == 5  # every sentence, no repeats


def test_only_the_train_split_grows(tmp_path):
    frame = pd.DataFrame({"text": ["房间很好。非常满意!", "太差了。不会再买!", "一般般", "还可以。下次再来!"],
                          "label": ["pos", "neg", "neg", "pos"]})
    for split in ("train", "val", "test"):
        frame.to_parquet(tmp_path / f"{split}.parquet", index=False)
    train_tokenizer(frame["text"], 100, 1, 32).save(str(tmp_path / "tokenizer.json"))
    build_store(tmp_path, tmp_path / "tokenizer.json", ["neg", "pos"])
    plain = TextDataModule(tmp_path, tmp_path / "tokenizer.json")
    more = TextDataModule(tmp_path, tmp_path / "tokenizer.json", sentence_views=1)
    assert len(more.datasets["train"]) == len(plain.datasets["train"]) + 3  # one sentence of each two-sentence text
    assert more.datasets["train"].labels[4:].tolist() == [plain.labels.index(x) for x in ("pos", "neg", "pos")]
    for split in ("val", "test"):
        assert list(more.datasets[split].ids) == list(plain.datasets[split].ids)
