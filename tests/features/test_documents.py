"""Tests of features.documents: ICAO 9303 check digits and the adjacent-transposition test, scalar and vectorised."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.documents import (
    check_digit,
    check_digit_valid,
    has_valid_check_digit,
    is_checkable,
    likely_transposition_typo,
    transposition_typo,
    with_check_digit,
)

ICAO_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ<"


@pytest.mark.parametrize(
    ("body", "digit"),
    [
        ("L898902C3", "6"),  # ICAO 9303 part 4 specimen passport number
        ("740812", "2"),  # its date of birth
        ("120415", "9"),  # its date of expiry
        ("D23145890", "7"),  # ICAO 9303 part 5 TD1 specimen document number
        ("AB2134<<<", "5"),  # fillers count as zero
        ("000000000", "0"),
    ],
)
def test_check_digit_matches_icao_specimens(body: str, digit: str) -> None:
    assert check_digit(body) == digit
    assert has_valid_check_digit(body + digit)
    assert with_check_digit(body) == body + digit


def test_check_digit_normalises_case_and_spaces_and_rejects_other_characters() -> None:
    assert check_digit("l898902c3") == "6"
    assert has_valid_check_digit(" L898 902C36 ")
    with pytest.raises(ValueError, match="outside"):
        check_digit("L89-8902")


@pytest.mark.parametrize("number", [None, "", "7", "L898-902C36", "Ω898902C36", 12345])
def test_uncheckable_numbers_are_not_valid_and_not_typos(number) -> None:
    assert not is_checkable(number)
    assert not has_valid_check_digit(number)
    assert not likely_transposition_typo(number)


def test_wrong_check_digit_is_invalid() -> None:
    assert not has_valid_check_digit("L898902C35")
    assert is_checkable("L898902C3X") and not has_valid_check_digit("L898902C3X")
    valid = with_check_digit("L898902C")  # body ends in a letter
    swapped = valid[:-2] + valid[-1] + valid[-2]  # check digit swapped with that letter
    assert not has_valid_check_digit(swapped) and likely_transposition_typo(swapped)


def test_adjacent_transpositions_are_recognised() -> None:
    valid = "L898902C36"
    assert not likely_transposition_typo(valid)  # a valid number is not a typo
    assert likely_transposition_typo("L898902C63")  # the check digit swapped with its neighbour
    assert likely_transposition_typo("L898920C36")  # two body digits swapped
    assert likely_transposition_typo("8L98902C36")


def test_a_wrong_digit_that_no_swap_repairs_is_not_a_typo() -> None:
    body = "123456789"
    right = int(check_digit(body))
    verdicts = {d: likely_transposition_typo(body + str(d)) for d in range(10) if d != right}
    assert not all(verdicts.values()), "some wrong digits must be unrepairable by one swap"
    assert any(verdicts.values())


def test_vectorised_versions_handle_nulls_and_mixed_lengths() -> None:
    numbers = pd.Series(
        ["L898902C36", "L898902C63", "D231458907", None, "a", "12", "L898902C35"], dtype="str"
    )
    valid = check_digit_valid(numbers)
    typo = transposition_typo(numbers)
    assert valid.dtype == "boolean" and typo.dtype == "boolean"
    assert valid.tolist()[:3] == [True, False, True]
    assert typo.tolist()[:3] == [False, True, False]
    assert valid.isna().tolist() == [False, False, False, True, True, False, False]
    assert valid.iloc[5] == has_valid_check_digit("12")
    assert typo.iloc[6] == likely_transposition_typo("L898902C35")
    assert list(valid.index) == list(numbers.index)


def test_vectorised_versions_keep_the_index_and_accept_lists() -> None:
    numbers = pd.Series(["L898902C36", None], index=[10, 20], dtype="str")
    assert list(check_digit_valid(numbers).index) == [10, 20]
    assert transposition_typo(["L898902C63"]).tolist() == [True]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=ICAO_CHARS, min_size=2, max_size=12), min_size=1, max_size=20))
def test_vectorised_equals_scalar(numbers: list[str]) -> None:
    series = pd.Series(numbers, dtype="str")
    assert check_digit_valid(series).fillna(False).tolist() == [has_valid_check_digit(n) for n in numbers]
    assert transposition_typo(series).fillna(False).tolist() == [
        likely_transposition_typo(n) for n in numbers
    ]


def test_every_detected_transposition_of_a_valid_number_is_flagged() -> None:
    rng = np.random.default_rng(0)
    letters = np.array(list(ICAO_CHARS[:-1]))
    flagged = detected = 0
    for _ in range(300):
        number = with_check_digit("".join(rng.choice(letters, 9)))
        k = int(rng.integers(0, len(number) - 1))
        if number[k] == number[k + 1]:
            continue
        swapped = number[:k] + number[k + 1] + number[k] + number[k + 2 :]
        if has_valid_check_digit(swapped):
            continue  # 7-3-1 misses swaps of characters whose values differ by a multiple of 5
        detected += 1
        flagged += likely_transposition_typo(swapped)
    assert detected > 200 and flagged == detected


def test_vectorised_is_cheap() -> None:
    rng = np.random.default_rng(1)
    bodies = rng.integers(10**8, 10**9, 200_000).astype(str)
    numbers = pd.Series(np.char.add(bodies, "0"), dtype="str")
    started = time.perf_counter()
    transposition_typo(numbers)
    assert time.perf_counter() - started < 5.0  # about 0.2 s here for 200,000 rows; headroom for CI
