"""Which language the train split is in, so Chinese-only resources join only Chinese corpora."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

CHINESE_SHARE = 0.5  # of letters: above this the split is Chinese
SAMPLE_TEXTS = 50_000  # the first train texts (a shuffled split) the language is detected on


@dataclass(frozen=True)
class Language:
    language: str  # "zh" or "other"
    cjk_share: float  # CJK ideographs among all letters
    reason: str


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff"


def detect_language(texts: Iterable[str]) -> Language:
    """Chinese when CJK ideographs are most of the letters (ASCII and other scripts count as letters too)."""
    cjk = letters = 0
    for text in texts:
        for ch in text:
            is_cjk = _is_cjk(ch)
            cjk += is_cjk
            letters += is_cjk or unicodedata.category(ch).startswith("L")
    if letters == 0:
        return Language("other", 0.0, "the train split has no letters: treated as not Chinese")
    share = cjk / letters
    language = "zh" if share > CHINESE_SHARE else "other"
    reason = f"{share:.0%} of the train split's letters are Chinese characters"
    if 0.2 < share < 0.8:
        reason += f" (mixed; above {CHINESE_SHARE:.0%} counts as Chinese)"
    return Language(language, round(share, 4), reason + f": {'Chinese' if language == 'zh' else 'not Chinese'}")


def resolve_corpora(setting: list[str] | str, language: Language, chinese_default: list[str]) -> list[str]:
    """`auto` → the Chinese corpora for a Chinese split and none otherwise; a list is taken as given."""
    if setting == "auto":
        return list(chinese_default) if language.language == "zh" else []
    return list(setting)
