"""Sentence views of long train texts: short examples that carry their review's label.

In the built-in corpus positive book reviews are long and short texts about books are almost all negative
(bench/RESULTS.md), so a model learns "short + book → negative" and calls "宝宝很喜欢这本书" negative. Adding,
for each train text of two or more sentences, `per_text` of its sentences (seeded) as extra train rows with
the text's label puts short positive sentences in front of the model. Val and test are never touched.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator

# After NFKC (preprocess) full-width ！？； are ASCII; 。 and … stay as they are.
_SENTENCE_END = re.compile(r"(?<=[。!?;！？；…\n])")
MIN_CHARS = 4  # shorter pieces ("好!", "呵呵。") say little about the review's label


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) >= MIN_CHARS]


def iter_sentence_views(texts: Iterable[str], labels: Iterable[int], per_text: int,
                        seed: int) -> Iterator[tuple[str, int]]:
    """Up to `per_text` sentences of each multi-sentence text, with its label, one at a time (texts may be a
    stream); nothing when per_text is 0."""
    rng = random.Random(seed)
    for text, label in zip(texts, labels, strict=True):
        parts = sentences(text)
        if per_text <= 0 or len(parts) < 2:
            continue
        for part in rng.sample(parts, min(per_text, len(parts))):
            yield part, int(label)

