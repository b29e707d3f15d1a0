"""The leak check: spans of a draft that match a restricted-term fingerprint of a live notice.

Fingerprints are made per 1-3 word run of each restricted value (schemas/fingerprints.py),
so a draft is matched run by run too. What blocks is decided here, from the draft's own
words, because a fingerprint does not say which part of a value it came from:

- a single word blocks only when it is name-like in the draft: capitalised and not a common
  word of the draft's language (nor a word of the department's own public texts), or a
  mixed letters-and-digits token (a plate), or a long number (a phone);
- a phrase of 2-3 words blocks when one of its words is name-like or two of them are
  uncommon: "Main Street" and "red Tacoma" block, "the back gate" does not.

The vetter is told the span of their own text to remove and why in general terms: never
which notice, field or value matched (a guessing oracle would be worse than a hint).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from schemas.base import Language
from schemas.fingerprints import MAX_GRAM_WORDS, STOPWORDS, fingerprint, normalize
from services.rumor_control.guardrails.common_words import COMMON_WORDS

__all__ = ["LeakSpan", "find_leak_spans"]

_WORD = re.compile(r"[^\W_]+")
_ORDINAL = re.compile(r"\d+(?:st|nd|rd|th|º|ª|o|a|er|ro|do)", re.IGNORECASE)
_PHONE_DIGITS = 7


@dataclass(frozen=True)
class LeakSpan:
    """Characters [start, end) of a section's text that must go."""

    start: int
    end: int


@dataclass(frozen=True)
class _Word:
    norm: str
    text: str
    start: int
    end: int


def _words(text: str) -> list[_Word]:
    words: list[_Word] = []
    for match in _WORD.finditer(text):
        # One written token may fold to several words (a ligature); they share its span.
        words.extend(
            _Word(norm, match.group(0), match.start(), match.end())
            for norm in normalize(match.group(0)).split()
        )
    return words


def _common(word: _Word, language: Language, public: Collection[str]) -> bool:
    return word.norm in COMMON_WORDS[language] or word.norm in STOPWORDS or word.norm in public


def _name_like(word: _Word, language: Language, public: Collection[str]) -> bool:
    text = word.text
    has_digit = any(ch.isdigit() for ch in text)
    if has_digit:
        if text.isdigit():
            return len(text) >= _PHONE_DIGITS
        return _ORDINAL.fullmatch(text) is None  # "19th" is a date or a street, "7XYZ" a plate
    return text[:1].isupper() and not _common(word, language, public)


def _blocks(run: list[_Word], language: Language, public: Collection[str]) -> bool:
    if any(_name_like(word, language, public) for word in run):
        return True
    digits = "".join(word.norm for word in run)
    if digits.isdigit() and len(digits) >= _PHONE_DIGITS:
        return True  # a phone number written in groups: "415-555-0199"
    uncommon = [w for w in run if not w.norm.isdigit() and not _common(w, language, public)]
    return len(run) > 1 and len(uncommon) >= 2


def find_leak_spans(
    key: bytes,
    text: str,
    fingerprints: Collection[str],
    *,
    language: Language,
    public_words: Collection[str] = frozenset(),
) -> list[LeakSpan]:
    """The merged spans of `text` to remove, in order; empty when nothing blocks."""
    if not fingerprints:
        return []
    wanted = set(fingerprints)
    words = _words(text)
    spans: list[LeakSpan] = []
    for start in range(len(words)):
        for size in range(1, MAX_GRAM_WORDS + 1):
            run = words[start : start + size]
            if len(run) < size:
                break
            norms = [w.norm for w in run]
            grams = {" ".join(norms), "".join(norms)}
            if any(fingerprint(key, gram) in wanted for gram in grams) and _blocks(
                run, language, public_words
            ):
                spans.append(LeakSpan(run[0].start, run[-1].end))
    return _merged(spans)


def _merged(spans: Iterable[LeakSpan]) -> list[LeakSpan]:
    merged: list[LeakSpan] = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if merged and span.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = LeakSpan(last.start, max(last.end, span.end))
        else:
            merged.append(span)
    return merged
