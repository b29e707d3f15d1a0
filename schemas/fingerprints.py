"""Keyed fingerprints of restricted terms: leak detection without plaintext on any topic.

intake fingerprints every restricted term of a notice (names, addresses, plates) with
``fingerprint_term`` and puts only the fingerprints on ``notice.*`` events; rumor_control runs
``find_leaks`` over a bulletin draft with the same key and blocks approval when any gram matches.

Both sides must agree on three things, all fixed here: how text is normalised (accents, case and
punctuation never matter), which grams are taken (every run of 1 to 3 words, plus each run with
its spaces removed so "ABC 123" matches "abc123"), and the HMAC. A term's single words that are
too common to identify anything (stopwords, numbers, words under 3 characters) are not
fingerprinted, so "123 Main Street" blocks "Main Street" and "123 Main" but not every draft that
says "street" or quotes a year or a phone number; runs made only of stopwords and one- or
two-digit numbers ("de la", "12 de", "10 30") are skipped too, since dates and times read so.

Choose the terms with care on the producing side: a term is fingerprinted whole, so fingerprint
the local part of an e-mail address or a full phone number, not a domain every bulletin names.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Collection, Iterable, Sequence

__all__ = [
    "FINGERPRINT_HEX_CHARS",
    "MAX_GRAM_WORDS",
    "MIN_KEY_BYTES",
    "STOPWORDS",
    "find_leaks",
    "fingerprint",
    "fingerprint_key_id",
    "fingerprint_term",
    "fingerprint_terms",
    "fingerprint_words",
    "normalize",
    "term_grams",
    "tokens",
]

MAX_GRAM_WORDS = 3
"""Longest run of words fingerprinted; both producer and checker must use the same value.

`_identifying_grams` spells out runs of two and three words: change it with this."""

FINGERPRINT_HEX_CHARS = 32
"""Fingerprints are HMAC-SHA256 hex digests truncated to 128 bits."""

MIN_KEY_BYTES = 16
"""Shorter keys are refused: a guessable key would let anyone reverse a fingerprint."""

_MIN_WORD_CHARS = 3

# Words that appear in addresses and names but identify nothing on their own. Kept short on
# purpose: every word here is a word the leak check can no longer see alone, so no first names,
# surnames, months or weekdays, which double as names ("Domingo", "April").
STOPWORDS: frozenset[str] = frozenset(
    {
        # English function words
        "a", "an", "and", "at", "by", "for", "from", "in", "into", "near", "of", "off", "on",
        "or", "the", "to", "with",
        # English address words
        "apartment", "apt", "ave", "avenue", "blk", "block", "blvd", "boulevard", "corner",
        "court", "ct", "dr", "drive", "east", "floor", "hwy", "highway", "lane", "ln", "north",
        "number", "pl", "place", "rd", "road", "south", "st", "street", "ste", "suite", "unit",
        "way", "west",
        # Spanish function words
        "al", "con", "de", "del", "el", "en", "entre", "es", "esta", "este", "la", "las", "lo",
        "los", "o", "para", "por", "que", "se", "su", "sus", "un", "una", "y",
        # Spanish address words
        "apartamento", "av", "avda", "avenida", "barrio", "bloque", "calle", "callejon",
        "camino", "carretera", "colonia", "cuadra", "depto", "edificio", "esquina", "norte",
        "numero", "oeste", "piso", "san", "santa", "santo", "sur",
        # Agencies and web words that bulletins name freely
        "cbp", "com", "dhs", "ero", "gov", "hsi", "http", "https", "ice", "net", "org", "www",
    }
)  # fmt: skip

_NON_ALPHANUMERIC = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """Fold ``text`` to lowercase ASCII-like words separated by single spaces.

    NFKD, combining marks dropped, casefolded, every run of non-alphanumerics made one space:
    ``"  José-María  GARCÍA "`` -> ``"jose maria garcia"``.
    """
    if text.isascii():
        # The same result without the per-character work below (the common case, and hot:
        # every releasable field and restricted term of every notice): ASCII has nothing
        # to decompose and no combining marks, and its casefold is its lower case.
        return _NON_ALPHANUMERIC.sub(" ", text.lower()).strip()
    # Casefold can yield decomposable characters (e.g. U+0130), so decompose again after it.
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    without_marks = "".join(ch for ch in folded if not unicodedata.category(ch).startswith("M"))
    return _NON_ALPHANUMERIC.sub(" ", without_marks).strip()


def tokens(text: str) -> list[str]:
    """The normalised words of ``text``, in order."""
    return normalize(text).split()


def _runs(words: list[str], max_n: int) -> list[tuple[str, ...]]:
    """Every run of 1..max_n consecutive words, in order of first word then length."""
    return [
        tuple(words[start : start + size])
        for start in range(len(words))
        for size in range(1, max_n + 1)
        if start + size <= len(words)
    ]


def term_grams(text: str, max_n: int = MAX_GRAM_WORDS) -> set[str]:
    """All 1..max_n-word grams of ``text``, each run also with spaces removed, plus the whole.

    ``"ABC 123"`` -> ``{"abc", "123", "abc 123", "abc123"}``.
    """
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    words = tokens(text)
    grams: set[str] = set()
    for run in _runs(words, max_n):
        grams.add(" ".join(run))
        grams.add("".join(run))
    if words:
        grams.add("".join(words))
    return grams


def _is_weak_word(word: str) -> bool:
    """Too common to fingerprint alone: a stopword, a number, or under 3 characters."""
    return len(word) < _MIN_WORD_CHARS or word.isdigit() or word in STOPWORDS


# A number this long is a phone number or an id; its tail is what people write down.
_NUMBER_MIN_DIGITS = 7
_NUMBER_TAILS = (10, 7)


def _number_grams(words: Sequence[str]) -> set[str]:
    """An all-numeric term (a phone number): its digits whole and their last 10 and 7."""
    digits = "".join(words)
    if not words or not all(word.isdigit() for word in words) or len(digits) < _NUMBER_MIN_DIGITS:
        return set()
    return {digits} | {digits[-n:] for n in _NUMBER_TAILS if len(digits) > n}


@functools.lru_cache(maxsize=8)
def fingerprint_key_id(key: bytes) -> str:
    """The id events give the fingerprint key (``fingerprint_key_id``), derived from the key.

    Producer and consumer derive it from the key they hold, so they agree without another
    setting, and a consumer can tell that an event was fingerprinted with a key it lacks.
    Kept per key (a process holds one or two): every notice event names it.
    """
    return "fp-" + hashlib.sha256(b"aviso-fingerprint-key-id." + key).hexdigest()[:12]


# HMAC-SHA256 (RFC 2104) with the key's inner and outer pads hashed once per key: each
# gram copies the two hashlib states instead of going through `hmac.HMAC`'s Python
# wrapper (dozens of grams per notice: 0.6 us a gram instead of 1.0 with `HMAC.copy`, 1.4
# with `hmac.digest`). The values are `hmac.new(key, gram, sha256)`'s; a test compares
# them. A process holds one key or two (rotation); the bound only keeps a caller that
# cycles through keys (tests) from growing it without end.
_SHA256_BLOCK_BYTES = 64
_INNER_PAD = bytes(x ^ 0x36 for x in range(256))
_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))
_KEYED: dict[bytes, _KeyedHash] = {}
_KEYED_MAX = 8


class _KeyedHash:
    """HMAC-SHA256 under one key, its padded key already absorbed by both hashes."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK_BYTES:
            key = hashlib.sha256(key).digest()
        block = key.ljust(_SHA256_BLOCK_BYTES, b"\0")
        self._inner = hashlib.sha256(block.translate(_INNER_PAD))
        self._outer = hashlib.sha256(block.translate(_OUTER_PAD))

    def fingerprint(self, gram: str) -> str:
        inner = self._inner.copy()
        inner.update(gram.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()[:FINGERPRINT_HEX_CHARS]

    def fingerprints(self, grams: Iterable[str]) -> set[str]:
        """`fingerprint` of every gram, its steps in one loop (no method call a gram)."""
        inner_start, outer_start = self._inner, self._outer
        prints: set[str] = set()
        for gram in grams:
            inner = inner_start.copy()
            inner.update(gram.encode("utf-8"))
            outer = outer_start.copy()
            outer.update(inner.digest())
            prints.add(outer.hexdigest()[:FINGERPRINT_HEX_CHARS])
        return prints


def _keyed(key: bytes) -> _KeyedHash:
    keyed = _KEYED.get(key)
    if keyed is None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"fingerprint key must be at least {MIN_KEY_BYTES} bytes")
        if len(_KEYED) >= _KEYED_MAX:
            _KEYED.clear()
        keyed = _KEYED.setdefault(key, _KeyedHash(key))
    return keyed


def fingerprint(key: bytes, gram: str) -> str:
    """Keyed fingerprint of one normalised gram: HMAC-SHA256, hex, first 32 characters."""
    return _keyed(key).fingerprint(gram)


def _identifying_grams(words: Sequence[str]) -> set[str]:
    """The grams of one term's words that `fingerprint_term` fingerprints (see there)."""
    # A single word identifies something unless it is weak; a run of two or three words
    # unless every word is a stopword or a number: a phrase of numbers alone ("505 555",
    # "12 30") is not, since area codes, exchanges, dates and times are shared by the
    # department's own published numbers and every bulletin.
    # Written out for runs of two and three words (MAX_GRAM_WORDS), each word judged once:
    # a submission's hottest own code after the HMACs (profiled: a bench notice's terms
    # 21 -> 14 us). The tests compare it with the first, run-by-run implementation.
    digits = [word.isdigit() for word in words]
    plain = [digit or word in STOPWORDS for word, digit in zip(words, digits, strict=True)]
    count = len(words)
    grams = {
        word  # spaced and joined alike
        for word, is_plain in zip(words, plain, strict=True)
        if not is_plain and len(word) >= _MIN_WORD_CHARS
    }
    add = grams.add
    for start in range(count - 1):
        first, second = words[start], words[start + 1]
        both_plain = plain[start] and plain[start + 1]
        if not both_plain:
            add(first + " " + second)
            add(first + second)
        if start + 2 < count and not (both_plain and plain[start + 2]):
            third = words[start + 2]
            add(first + " " + second + " " + third)
            add(first + second + third)
    if grams:
        # Catches a term written without its spaces, however many words it has ("ab12cd34").
        add("".join(words))
    if count and all(digits):
        grams |= _number_grams(words)
    return grams


def fingerprint_term(key: bytes, term: str) -> set[str]:
    """Fingerprints of every identifying gram of one restricted term (a name, address, plate).

    Runs of words (and each run with its spaces removed) are kept unless they are a single weak
    word (stopword, number, under 3 characters) or made only of stopwords and numbers; an
    all-numeric term (a phone number) is kept as its digits, whole and their last 10 and 7;
    the whole term with its spaces removed is kept when the term has any identifying run. A term
    with no identifying gram (e.g. "12" or "de la") yields an empty set.
    """
    return fingerprint_terms(key, (term,))


def fingerprint_terms(key: bytes, terms: Iterable[str]) -> set[str]:
    """`fingerprint_term` of every term, united; a gram two terms share is hashed once."""
    return fingerprint_words(key, map(tokens, terms))


def fingerprint_words(key: bytes, terms_words: Iterable[Sequence[str]]) -> set[str]:
    """`fingerprint_terms` of terms already split into their `tokens`.

    For a caller that needs the terms' words for something else too (intake's check of its
    releasable fields): each term is normalised and split once, not once per use.
    """
    grams: set[str] = set()
    for words in terms_words:
        grams |= _identifying_grams(words)
    return _keyed(key).fingerprints(grams)


def find_leaks(key: bytes, text: str, fingerprints: Collection[str]) -> list[str]:
    """The grams of ``text`` whose fingerprint is in ``fingerprints``, in order of appearance.

    Checks every 1..3-word run of the text and each run with its spaces removed. The grams
    returned are the text's own words, which the caller already has; a restricted term itself is
    never revealed.
    """
    if not fingerprints:
        return []
    wanted = set(fingerprints)
    leaks: dict[str, None] = {}  # ordered set
    for run in _runs(tokens(text), MAX_GRAM_WORDS):
        for gram in (" ".join(run), "".join(run)):
            if gram not in leaks and fingerprint(key, gram) in wanted:
                leaks[gram] = None
    return list(leaks)
