"""ICAO 9303 check digits of identity-document numbers, and the test for a likely transposition typo.

ICAO Doc 9303 (Machine Readable Travel Documents), part 3 §4.9: each character has a value
(digits 0-9, letters A-Z = 10-35, the filler ``<`` = 0), values are multiplied by the repeating
weights 7, 3, 1, and the check digit is the sum modulo 10. Passports and national identity cards
print it after the document number in the machine-readable zone; the data contracts store it as
the last character of ``document_number`` (driving licences and business registrations carry no
ICAO check digit and must not be checked).

The scalar functions suit single requests (serving); ``check_digit_valid`` and
``transposition_typo`` compute the same answers for a whole column at once (batch features).

A caution for feature use: the 7-3-1 scheme detects most adjacent transpositions (not swaps of
characters whose values differ by a multiple of 5), but the reverse question is weak. About 40%
of random wrong check digits on 10-digit numbers can be "repaired" by some adjacent swap (there
are up to ``len - 1`` swaps, each changing the checksum by a different amount), so
``likely_transposition_typo`` is necessary for an honest typo, not proof of one; combine it with
the rest of the profile.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

WEIGHTS = (7, 3, 1)

# Value of every byte: -1 means "not allowed in an ICAO machine-readable field".
_VALUES = np.full(256, -1, dtype=np.int16)
_VALUES[ord("0") : ord("9") + 1] = np.arange(10)
_VALUES[ord("A") : ord("Z") + 1] = np.arange(10, 36)
_VALUES[ord("<")] = 0


def _normalise(number: str) -> str:
    # MRZ fields are upper case; people and OCR add spaces and lower case around them.
    return number.strip().upper().replace(" ", "")


def _values(text: str) -> list[int] | None:
    values = []
    for char in text:
        code = ord(char)
        value = int(_VALUES[code]) if code < 256 else -1
        if value < 0:
            return None
        values.append(value)
    return values


def _weighted_sum(values: Iterable[int]) -> int:
    return sum(v * WEIGHTS[i % 3] for i, v in enumerate(values))


def check_digit(body: str) -> str:
    """Return the ICAO 9303 check digit of ``body``.

    Args:
        body: the characters the digit protects (digits, letters, ``<``), e.g. ``"L898902C3"``.

    Returns:
        One character ``"0"``-``"9"``.

    Raises:
        ValueError: when ``body`` holds a character outside ``0-9``, ``A-Z`` and ``<``.
    """
    values = _values(_normalise(body))
    if values is None:
        raise ValueError(f"{body!r} holds characters outside 0-9, A-Z and '<'")
    return str(_weighted_sum(values) % 10)


def with_check_digit(body: str) -> str:
    """Return ``body`` followed by its ICAO 9303 check digit (how the generator writes numbers)."""
    return _normalise(body) + check_digit(body)


def is_checkable(number: str | None) -> bool:
    """Whether ``number`` can be checked: a string of at least two characters from ``0-9``, ``A-Z``, ``<``.

    A checkable number whose last character is not a digit has a wrong check digit (the check
    digit itself may have been swapped with a letter).
    """
    if not isinstance(number, str):
        return False
    text = _normalise(number)
    return len(text) >= 2 and _values(text) is not None


def has_valid_check_digit(number: str | None) -> bool:
    """Whether the last character of ``number`` is the ICAO 9303 check digit of the others.

    Args:
        number: a document number whose last character is its check digit, e.g. ``"L898902C36"``.

    Returns:
        ``True`` when the digit matches; ``False`` when it does not (a letter where the digit
        belongs included) or when the number cannot be checked (null, shorter than two
        characters, characters outside ``0-9``, ``A-Z``, ``<``).
    """
    if not is_checkable(number):
        return False
    text = _normalise(number)
    return text[-1] in "0123456789" and check_digit(text[:-1]) == text[-1]


def likely_transposition_typo(number: str | None) -> bool:
    """Whether swapping two adjacent characters of ``number`` would make its check digit valid.

    The check digit itself counts as a character (a typist can swap it with its neighbour). Only
    swaps of two different characters count. A number whose check digit is already valid is
    not a typo (returns ``False``), nor is one that cannot be checked.

    Args:
        number: a document number whose last character is its check digit.

    Returns:
        ``True`` when the check digit is invalid and some adjacent swap repairs it.
    """
    if not is_checkable(number) or has_valid_check_digit(number):
        return False
    text = _normalise(number)
    for i in range(len(text) - 1):
        if text[i] == text[i + 1]:
            continue
        swapped = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        if swapped[-1] in "0123456789" and check_digit(swapped[:-1]) == swapped[-1]:
            return True
    return False


# --- vectorised -------------------------------------------------------------------------------


def _as_series(numbers: Iterable[str | None] | pd.Series) -> pd.Series:
    if isinstance(numbers, pd.Series):
        return numbers
    return pd.Series(list(numbers), dtype="str")


def _blocks(numbers: pd.Series):
    """Yield (positions, raw byte matrix, value matrix) for each length of normalised number.

    Grouping by length turns a ragged column into a few dense matrices, so that every check is
    a handful of numpy operations whatever the row count.
    """
    text = numbers.astype("str").str.strip().str.upper().str.replace(" ", "", regex=False)
    present = text.notna().to_numpy()
    lengths = text.str.len().to_numpy(dtype="float64", na_value=np.nan)
    for length in np.unique(lengths[present]):
        length = int(length)
        if length < 2:
            continue
        positions = np.flatnonzero(present & (lengths == length))
        # Non-ASCII characters become "?" (one byte each, value -1), so rows stay aligned.
        joined = "".join(text.iloc[positions].tolist()).encode("ascii", errors="replace")
        raw = np.frombuffer(joined, dtype=np.uint8).reshape(len(positions), length)
        yield positions, raw, _VALUES[raw]


def _valid_rows(raw: np.ndarray, values: np.ndarray) -> np.ndarray:
    length = raw.shape[1]
    weights = np.resize(np.array(WEIGHTS, dtype=np.int64), length - 1)
    last = raw[:, -1]
    is_digit = (last >= ord("0")) & (last <= ord("9"))
    return is_digit & ((values[:, :-1] @ weights) % 10 == values[:, -1])


def check_digit_valid(numbers: Iterable[str | None] | pd.Series) -> pd.Series:
    """Vectorised ``has_valid_check_digit`` for a column of document numbers.

    Args:
        numbers: document numbers (any iterable or a Series; nulls allowed).

    Returns:
        A nullable ``boolean`` Series aligned with ``numbers``: ``True``/``False`` for checkable
        numbers, ``<NA>`` for nulls and numbers that cannot be checked (see ``is_checkable``).
    """
    numbers = _as_series(numbers)
    out = np.zeros(len(numbers), dtype=bool)
    known = np.zeros(len(numbers), dtype=bool)
    for positions, raw, values in _blocks(numbers):
        checkable = (values >= 0).all(axis=1)
        out[positions] = _valid_rows(raw, values) & checkable
        known[positions] = checkable
    return pd.Series(pd.arrays.BooleanArray(out, ~known), index=numbers.index, name="check_digit_valid")


def transposition_typo(numbers: Iterable[str | None] | pd.Series) -> pd.Series:
    """Vectorised ``likely_transposition_typo`` for a column of document numbers.

    Args:
        numbers: document numbers (any iterable or a Series; nulls allowed).

    Returns:
        A nullable ``boolean`` Series aligned with ``numbers``: ``True`` when the check digit is
        invalid and one adjacent swap of two different characters repairs it, ``<NA>`` for nulls
        and numbers that cannot be checked (see ``is_checkable``).
    """
    numbers = _as_series(numbers)
    out = np.zeros(len(numbers), dtype=bool)
    known = np.zeros(len(numbers), dtype=bool)
    for positions, raw, values in _blocks(numbers):
        checkable = (values >= 0).all(axis=1)
        repaired = np.zeros(len(positions), dtype=bool)
        for i in range(raw.shape[1] - 1):
            order = np.arange(raw.shape[1])
            order[[i, i + 1]] = order[[i + 1, i]]
            differs = raw[:, i] != raw[:, i + 1]
            repaired |= differs & _valid_rows(raw[:, order], values[:, order])
        out[positions] = checkable & ~_valid_rows(raw, values) & repaired
        known[positions] = checkable
    return pd.Series(pd.arrays.BooleanArray(out, ~known), index=numbers.index, name="transposition_typo")
