"""Keyed fingerprints: normalisation, gram choice, and the leak check built on them."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from schemas import fingerprints
from schemas.fingerprints import (
    STOPWORDS,
    find_leaks,
    fingerprint,
    fingerprint_term,
    fingerprint_terms,
    normalize,
    term_grams,
    tokens,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32

ACCENTS = "\u0301\u0300\u0308\u0303\u0302"  # acute, grave, diaeresis, tilde, circumflex
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
# Words that cannot be weak: long enough, not numbers, and no stopword has a "q" with a "z".
strong_words = st.text(alphabet="bcdfghjkqxz", min_size=4, max_size=10).map(lambda w: "qz" + w)
# Words that can never spell a strong word, even run together ("q z bbbb" is "qzbbbb").
words_without_q = st.text(alphabet="abcdefghijklmnoprstuvwxyz0123456789", min_size=1, max_size=10)
separators = st.sampled_from([" ", "  ", "-", ", ", ".", "/", "\t", "_", " \u00a0"])


def accented(word: str, draw_marks: list[str], upper: list[bool]) -> str:
    """Decorate each letter of ``word`` with marks and case changes."""
    out = []
    for i, ch in enumerate(word):
        ch = ch.upper() if upper[i % len(upper)] else ch
        out.append(ch + draw_marks[i % len(draw_marks)] if ch.isalpha() else ch)
    return unicodedata.normalize("NFC", "".join(out))


def test_normalize_folds_accents_case_and_punctuation() -> None:
    assert normalize("  José-María  GARCÍA ") == "jose maria garcia"
    assert normalize("Ñandú_Peña, ABC·123") == "nandu pena abc 123"
    assert normalize("STRASSE Straße") == "strasse strasse"
    assert normalize("ﬁeld №5") == "field no5"
    assert normalize("İstanbul") == "istanbul"
    assert normalize("¿¡!?") == ""


def test_tokens_are_the_normalised_words() -> None:
    assert tokens("Calle de la Paz #1234") == ["calle", "de", "la", "paz", "1234"]


def test_term_grams_take_runs_of_up_to_three_words_and_their_joined_forms() -> None:
    assert term_grams("ABC 123") == {"abc", "123", "abc 123", "abc123"}
    grams = term_grams("w x y z")
    assert "w x y" in grams
    assert "x y z" in grams
    assert "w x y z" not in grams
    assert "wxyz" in grams  # the whole term, spaces removed
    assert term_grams("a b", max_n=1) == {"a", "b", "ab"}
    with pytest.raises(ValueError, match="max_n"):
        term_grams("a", max_n=0)


def test_fingerprint_is_truncated_hmac_sha256() -> None:
    expected = hmac.new(KEY, b"abc123", hashlib.sha256).hexdigest()[:32]
    assert fingerprint(KEY, "abc123") == expected
    assert re.fullmatch(r"[0-9a-f]{32}", expected)
    assert fingerprint(OTHER_KEY, "abc123") != expected


def test_a_keys_pads_are_hashed_once_not_per_gram(monkeypatch: pytest.MonkeyPatch) -> None:
    keyed: list[bytes] = []
    real = fingerprints._KeyedHash

    class Counting(real):  # type: ignore[misc,valid-type]
        def __init__(self, key: bytes) -> None:
            keyed.append(key)
            super().__init__(key)

    monkeypatch.setattr(fingerprints, "_KeyedHash", Counting)
    fresh = b"f" * 32  # a key no other test used: not yet absorbed
    prints = fingerprint_term(fresh, "Juan Carlos Perez Gonzalez")
    prints |= fingerprint_term(fresh, "742 Evergreen Terrace")
    assert len(prints) > 10
    assert keyed == [fresh]
    # Still the HMAC of each gram alone: nothing of one gram carries into the next.
    assert (
        fingerprint(fresh, "abc123") == hmac.new(fresh, b"abc123", hashlib.sha256).hexdigest()[:32]
    )


@given(key=st.binary(min_size=16, max_size=200), gram=st.text(max_size=60))
def test_fingerprint_is_hmac_sha256_of_the_gram_for_any_key(key: bytes, gram: str) -> None:
    # Keys longer than SHA-256's block are hashed first, as RFC 2104 (and `hmac`) do.
    expected = hmac.new(key, gram.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
    assert fingerprint(key, gram) == expected


def _reference_fingerprint_term(key: bytes, term: str) -> set[str]:
    """The gram choice as first written (run by run), with `hmac.new` per gram."""
    words = tokens(term)

    def weak(word: str) -> bool:
        return len(word) < 3 or word.isdigit() or word in STOPWORDS

    def identifying(run: tuple[str, ...]) -> bool:
        if len(run) == 1:
            return not weak(run[0])
        return not all(
            word in STOPWORDS or (word.isdigit() and len(word) <= 2) or word.isdigit()
            for word in run
        )

    grams: set[str] = set()
    for start in range(len(words)):
        for size in range(1, 4):
            run = tuple(words[start : start + size])
            if start + size <= len(words) and identifying(run):
                grams.add(" ".join(run))
                grams.add("".join(run))
    if grams:
        grams.add("".join(words))
    digits = "".join(words)
    if words and all(word.isdigit() for word in words) and len(digits) >= 7:
        grams |= {digits} | {digits[-n:] for n in (10, 7) if len(digits) > n}
    return {hmac.new(key, g.encode(), hashlib.sha256).hexdigest()[:32] for g in grams}


term_words = (
    words | st.sampled_from(sorted(STOPWORDS)) | st.from_regex(r"[0-9]{1,4}", fullmatch=True)
)


@given(terms=st.lists(st.lists(term_words, max_size=7).map(" ".join), max_size=5))
def test_fingerprints_of_terms_are_those_of_the_first_implementation(terms: list[str]) -> None:
    expected = [_reference_fingerprint_term(KEY, term) for term in terms]
    assert [fingerprint_term(KEY, term) for term in terms] == expected
    # All terms at once: the union, each shared gram hashed once.
    assert fingerprint_terms(KEY, terms) == set().union(*expected)


def test_fingerprints_of_a_bench_notice_are_those_of_the_first_implementation() -> None:
    terms = [
        "Esteban Quiroga",
        "2231 Alameda Ave Apt 4",
        "Silver Tacoma 7XYZ123",
        "Corner of 19th and Alameda",
        "Dana Whitlock",
        "+1 505 555 0199",
        "Jos\u00e9-Mar\u00eda GARC\u00cdA de la Cruz",
    ]
    expected = set().union(*(_reference_fingerprint_term(KEY, term) for term in terms))
    assert fingerprint_terms(KEY, terms) == expected
    assert len(expected) > 40


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        fingerprint(b"short", "abc")


def test_common_words_of_an_address_are_not_fingerprinted_alone() -> None:
    fps = fingerprint_term(KEY, "123 Main Street")

    assert find_leaks(KEY, "Avoid the street near the park.", fps) == []
    assert find_leaks(KEY, "Call 555-123-4567.", fps) == []
    assert find_leaks(KEY, "Operation near 123 Main.", fps) == ["123 main", "123main", "main"]
    assert "main street" in find_leaks(KEY, "Seen on MAIN STREET", fps)
    assert find_leaks(KEY, "at 123mainstreet", fps) == ["123mainstreet"]


def test_spanish_dates_and_filler_phrases_do_not_leak_a_street_name() -> None:
    fps = fingerprint_term(KEY, "Calle 12 de Octubre 45")

    assert find_leaks(KEY, "El 12 de marzo de 2025, a las 10:30.", fps) == []
    assert find_leaks(KEY, "calle 12 de octubre", fps)  # the street name itself does leak


def test_plates_match_with_or_without_spaces() -> None:
    fps = fingerprint_term(KEY, "ABC 1234")

    assert find_leaks(KEY, "a car with plate abc1234", fps) == ["abc1234"]
    assert find_leaks(KEY, "plate ABC-1234!", fps) == ["abc", "abc 1234", "abc1234"]
    assert fingerprint_term(KEY, "AB 12")  # short plate parts still form an identifying phrase


def test_terms_with_nothing_identifying_yield_no_fingerprints() -> None:
    assert fingerprint_term(KEY, "12") == set()
    assert fingerprint_term(KEY, "de la") == set()
    assert fingerprint_term(KEY, "Street") == set()
    assert fingerprint_term(KEY, "!!") == set()


def test_find_leaks_with_no_fingerprints_is_empty() -> None:
    assert find_leaks(KEY, "anything at all", set()) == []


def test_a_name_is_caught_in_spanish_text_with_different_accents_and_case() -> None:
    fps = fingerprint_term(KEY, "José María García")

    leaks = find_leaks(KEY, "Se dice que JOSE MARIA GARCIA fue detenido.", fps)

    assert "jose maria garcia" in leaks
    assert find_leaks(KEY, "Se dice que Maria fue vista.", fps) == ["maria"]
    assert find_leaks(OTHER_KEY, "JOSE MARIA GARCIA", fps) == []


@given(
    term=st.lists(words, min_size=1, max_size=5),
    marks=st.lists(st.sampled_from(["", *ACCENTS]), min_size=1, max_size=4),
    upper=st.lists(st.booleans(), min_size=1, max_size=4),
    separator=separators,
)
def test_accents_case_and_punctuation_never_change_a_fingerprint(
    term: list[str], marks: list[str], upper: list[bool], separator: str
) -> None:
    plain = " ".join(term)
    decorated = separator.join(accented(word, marks, upper) for word in term)

    assert normalize(decorated) == plain
    assert fingerprint_term(KEY, decorated) == fingerprint_term(KEY, plain)


@given(
    term=st.lists(words, min_size=1, max_size=6),
    before=st.lists(words, max_size=6),
    after=st.lists(words, max_size=6),
    separator=separators,
)
def test_a_term_is_always_found_in_a_text_that_contains_it(
    term: list[str], before: list[str], after: list[str], separator: str
) -> None:
    fps = fingerprint_term(KEY, " ".join(term))
    assume(fps)
    text = separator.join([*before, *term, *after])

    assert find_leaks(KEY, text, fps)


@given(
    term=st.lists(words, min_size=1, max_size=6),
    before=st.lists(words, max_size=4),
    after=st.lists(words, max_size=4),
)
def test_a_term_written_without_spaces_is_found(
    term: list[str], before: list[str], after: list[str]
) -> None:
    fps = fingerprint_term(KEY, " ".join(term))
    assume(fps)
    text = " ".join([*before, "".join(term), *after])

    assert "".join(term) in find_leaks(KEY, text, fps)


@given(word=strong_words, text=st.lists(words_without_q, max_size=10))
def test_a_strong_word_is_identifying_and_found_only_where_it_appears(
    word: str, text: list[str]
) -> None:
    fps = fingerprint_term(KEY, word)

    assert len(fps) == 1
    assert find_leaks(KEY, " ".join(text), fps) == []  # no "q": no strong word, however joined
    assert find_leaks(KEY, " ".join([*text, word.upper()]), fps) == [word]


@given(term=st.lists(words | st.sampled_from(sorted(STOPWORDS)), min_size=1, max_size=5))
def test_exactly_the_terms_with_an_identifying_word_are_fingerprinted(term: list[str]) -> None:
    def filler(word: str) -> bool:
        return word in STOPWORDS or (word.isdigit() and len(word) <= 2)

    def strong(word: str) -> bool:
        return len(word) >= 3 and not word.isdigit() and word not in STOPWORDS

    # A phrase of numbers alone ("0 000", "505 555") is not identifying; a long number is
    # (a phone number or an id: its digits and their tails).
    digits = "".join(term)
    identifying = (
        any(strong(w) for w in term)
        or (len(term) > 1 and not all(filler(w) or w.isdigit() for w in term))
        or (digits.isdigit() and len(digits) >= 7)
    )
    assert bool(fingerprint_term(KEY, " ".join(term))) == identifying


@given(text=st.text(max_size=200))
def test_leaks_are_grams_of_the_text_itself(text: str) -> None:
    fps = fingerprint_term(KEY, text)
    leaks = find_leaks(KEY, text, fps)

    assert set(leaks) <= term_grams(text)
    assert len(leaks) == len(set(leaks))
    assert bool(leaks) == bool(fps)


@given(text=st.text(max_size=100))
def test_normalising_twice_changes_nothing(text: str) -> None:
    once = normalize(text)

    assert normalize(once) == once
    assert fingerprint_term(KEY, once) == fingerprint_term(KEY, text)
    assert once == once.strip()
    assert "  " not in once


def test_shared_area_code_and_exchange_are_not_a_leak_but_the_number_is() -> None:
    key = b"k" * 32
    agent_phone = fingerprint_term(key, "+1 505 555 0199")
    # The department's own published line shares area code and exchange with the agent.
    assert find_leaks(key, "Call our line at (505) 555-0142.", agent_phone) == []
    assert find_leaks(key, "Call 505 555 0199 for details.", agent_phone)
    assert find_leaks(key, "Llame al 555-0199.", agent_phone)


def _normalize_slowly(text: str) -> str:
    """normalize() without its ASCII shortcut: the general path, every character examined."""
    import re
    import unicodedata

    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    kept = "".join(ch for ch in folded if not unicodedata.category(ch).startswith("M"))
    return re.sub(r"[\W_]+", " ", kept).strip()


def test_the_ascii_shortcut_of_normalize_gives_what_the_general_path_gives() -> None:
    from schemas.fingerprints import normalize

    samples = [
        "  Silver Tacoma 7XYZ123 ",
        "Corner of 19th and Alameda",
        "2231 Alameda Ave. Apt #4",
        "dana_whitlock@ice.dhs.gov",
        "+1 (505) 555-0199",
        "A\tB\nC\x00D\x7f",
        "__--__",
        "".join(chr(c) for c in range(128)),
    ]
    for text in samples:
        assert text.isascii()
        assert normalize(text) == _normalize_slowly(text), text
    # Beyond ASCII the general path still runs: accents and the dotted I fold away.
    assert normalize("  José-María  GARCÍA İ") == "jose maria garcia i"


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_normalize_of_any_ascii_text_matches_the_general_path(text: str) -> None:
    from schemas.fingerprints import normalize

    assert normalize(text) == _normalize_slowly(text)


@given(terms=st.lists(st.lists(term_words, max_size=7).map(" ".join), max_size=5))
def test_fingerprints_of_words_are_those_of_their_terms(terms: list[str]) -> None:
    # A caller that has split the terms (intake, for its releasable check) gets the same.
    assert fingerprints.fingerprint_words(KEY, [tokens(t) for t in terms]) == (
        fingerprint_terms(KEY, terms)
    )


@given(grams=st.lists(st.text(max_size=20), max_size=8))
def test_a_keys_fingerprints_of_many_grams_are_each_grams_fingerprint(grams: list[str]) -> None:
    keyed = fingerprints._keyed(KEY)
    assert keyed.fingerprints(grams) == {fingerprint(KEY, gram) for gram in grams}
