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

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Collection

__all__ = [
    "FINGERPRINT_HEX_CHARS",
    "MAX_GRAM_WORDS",
    "MIN_KEY_BYTES",
    "STOPWORDS",
    "find_leaks",
    "fingerprint",
    "fingerprint_key_id",
    "fingerprint_term",
    "normalize",
    "term_grams",
    "tokens",
]

MAX_GRAM_WORDS = 3
"""Longest run of words fingerprinted; both producer and checker must use the same value."""

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


def _is_filler_word(word: str) -> bool:
    """Too common to make a phrase identifying: a stopword or a day, hour or minute number."""
    return word in STOPWORDS or (word.isdigit() and len(word) <= 2)


def _is_identifying(run: tuple[str, ...]) -> bool:
    """Whether a run of words can identify anything: a strong single word or a real phrase.

    A phrase of numbers alone ("505 555", "12 30") is not: area codes, exchanges, dates and
    times are shared by the department's own published numbers and every bulletin.
    """
    if len(run) == 1:
        return not _is_weak_word(run[0])
    return not all(_is_filler_word(word) or word.isdigit() for word in run)


# A number this long is a phone number or an id; its tail is what people write down.
_NUMBER_MIN_DIGITS = 7
_NUMBER_TAILS = (10, 7)


def _number_grams(words: list[str]) -> set[str]:
    """An all-numeric term (a phone number): its digits whole and their last 10 and 7."""
    digits = "".join(words)
    if not words or not all(word.isdigit() for word in words) or len(digits) < _NUMBER_MIN_DIGITS:
        return set()
    return {digits} | {digits[-n:] for n in _NUMBER_TAILS if len(digits) > n}


def fingerprint_key_id(key: bytes) -> str:
    """The id events give the fingerprint key (``fingerprint_key_id``), derived from the key.

    Producer and consumer derive it from the key they hold, so they agree without another
    setting, and a consumer can tell that an event was fingerprinted with a key it lacks.
    """
    return "fp-" + hashlib.sha256(b"aviso-fingerprint-key-id." + key).hexdigest()[:12]


# Per key, the HMAC with the key already absorbed (its inner and outer pads hashed): each
# gram copies it instead of hashing the pads again (dozens of grams per notice; 1.2 us a
# gram instead of 1.7 for `hmac.digest`). A process holds one key or two (rotation); the
# bound only keeps a caller that cycles through keys (tests) from growing it without end.
_KEYED: dict[bytes, hmac.HMAC] = {}
_KEYED_MAX = 8


def fingerprint(key: bytes, gram: str) -> str:
    """Keyed fingerprint of one normalised gram: HMAC-SHA256, hex, first 32 characters."""
    keyed = _KEYED.get(key)
    if keyed is None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"fingerprint key must be at least {MIN_KEY_BYTES} bytes")
        if len(_KEYED) >= _KEYED_MAX:
            _KEYED.clear()
        keyed = _KEYED.setdefault(key, hmac.new(key, digestmod=hashlib.sha256))
    one = keyed.copy()
    one.update(gram.encode("utf-8"))
    return one.hexdigest()[:FINGERPRINT_HEX_CHARS]


def fingerprint_term(key: bytes, term: str) -> set[str]:
    """Fingerprints of every identifying gram of one restricted term (a name, address, plate).

    Runs of words (and each run with its spaces removed) are kept unless they are a single weak
    word (stopword, number, under 3 characters) or made only of stopwords and numbers; an
    all-numeric term (a phone number) is kept as its digits, whole and their last 10 and 7;
    the whole term with its spaces removed is kept when the term has any identifying run. A term
    with no identifying gram (e.g. "12" or "de la") yields an empty set.
    """
    words = tokens(term)
    grams: set[str] = set()
    for run in _runs(words, MAX_GRAM_WORDS):
        if _is_identifying(run):
            grams.add(" ".join(run))
            grams.add("".join(run))
    if grams:
        # Catches a term written without its spaces, however many words it has ("ab12cd34").
        grams.add("".join(words))
    grams |= _number_grams(words)
    return {fingerprint(key, gram) for gram in grams}


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
