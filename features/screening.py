"""Sanctions and PEP screening: fuzzy matching of customer names (any script) against the watchlist.

``WatchlistScreener`` (scikit-learn conventions) learns a name index from the ``watchlist`` table
and screens a table of names (``screen``) or one name (``screen_one``, for serving), returning
for each name the best entry with its score and the evidence behind it.

How a name is compared (``parse_name``, ``phonetic_key``, ``skeleton_key``; the same for list
names, aliases and customer names):

1. **Transliteration.** Every word goes through ``anyascii`` (Cyrillic, Greek, Arabic, Hebrew,
   CJK; accents and other diacritics go too). Three fix-ups come first: a Chinese or Korean name
   written without spaces becomes ``surname given-name`` (``毛泽东`` -> ``mao zedong``), the
   Arabic article glued to a word is split off (``الأسد`` -> ``al 'sd``), and Greek ``ου`` is
   written ``ou`` (anyascii writes ``oy``).
2. **Cleaning.** Lower case; apostrophes and dots are deleted (``O'Brien`` -> ``obrien``,
   ``L.L.C.`` -> ``llc``); other punctuation separates tokens (``al-Assad`` -> ``al assad``).
   Leading honorifics (Mr, Dr, Sheikh, Gen, ...), trailing generational suffixes (Jr, III, PhD)
   and legal forms at either end (LLC, Ltd, GmbH, OOO, Sp. z o.o., ...) are removed, only from
   words written in Latin script (the Arabic name عمر, Omar, transliterates to "mr"). Legal forms
   lead in Russian (``OOO Romashka``) and trail elsewhere; removing them only at the ends keeps a
   name token such as "Sa" or "Ao" inside a name.
3. **Phonetic-ish key** for alphabetic scripts, per token: digraphs to one letter (shch/sch->sh,
   tsch/tch->ch, dzh/dj/zh->j, ph->f, kh->h, gh->g, th->t, dh->d, ck/q/c->k with ch kept, x->ks),
   w->v, y->i, then three vowel classes (ou/oo/o/u->u, ee/ie/ei/i->i, e/a->a), doubled letters to
   one and a final ``h`` after a vowel dropped. So Mohammed / Muhammad / Mohamed ->
   ``muhamad``, Sergei / Sergey -> ``sargi``, Zaitsev / Zaytsev, Omar / Umar and Abdullah /
   Abdulla coincide, and Aleksandr / Alexander end one letter apart. The vowels are merged into
   classes rather than dropped so that short different names stay apart. The Arabic particles
   al/el/ul/bin/ibn/bint are left out of the keys while another token remains.
4. **Consonant skeleton** for abjad scripts (Arabic, Persian, Urdu, Hebrew), which do not write
   short vowels: ``محمد حسن`` transliterates to ``mhmd hsn``. A name written in such a script is
   compared on skeletons only (the consonant rules, then vowels and the long-vowel letters w and
   y removed, so Mohammed Hassan -> ``mhmd hsn`` too). Skeletons collide more (Hassan and Hussein
   are both ``hsn``), hence ``abjad_penalty``.

Name score (0-100). rapidfuzz's normalised Indel similarity ``fuzz.ratio``, best of three:

- the token-sorted spellings, i.e. ``fuzz.token_sort_ratio`` ("Petrov Vladimir");
- the spellings in written order (a typo in a first letter can reorder sorted tokens: "Jhoes"
  sorts before "John", "Jones" after it);
- the token-sorted phonetic keys, counting their distance from 100 twice and less
  ``phonetic_penalty``: keys merge letters, so different names come closer on keys than on
  spellings (a phonetic identity scores 97, a one-letter key difference about 85).

Why Indel on whole, token-sorted names: word order does not matter, the ratio is symmetric and
length-normalised, and one or two typos in a 15-letter name cost 7-13 points.
``token_set_ratio``, ``partial_ratio`` and ``WRatio`` score a subset or substring as 100 ("Ali"
vs "Ali Hassan"), far too generous on a sanctions list; Jaro-Winkler is order-sensitive and
over-rewards a shared prefix of short names. Omitted middle names and patronymics are handled
explicitly instead: a name with three or more tokens (particles aside) is also indexed and
queried with one middle token left out and, from four tokens, as first + last name. Such a
partial form matches only a complete name on the other side (never two different middle names
left out on both) and costs ``missing_token_penalty``. The sorted strings are built once at
``fit``, so that ``process.cdist`` scores a name against a whole candidate block in C; the
sorted spelling is compared (in Python) only for pairs already near the threshold.

Combined score (0-100). The name score plus points for the birth date (exact, same year only,
conflicting, unknown) and the country (the entry's country equals the customer's nationality or
residence, differs, or either is unknown), clipped to 0-100 (``DEFAULT_DOB_POINTS``,
``DEFAULT_COUNTRY_POINTS``). The best match of a name maximises it. Status: ``hit`` from
``hit_threshold`` (95: a near-exact name corroborated by the birth date), ``review`` from
``review_threshold`` (82: possible match for an analyst), else ``clear``; a name score below
``min_name_score`` (80) is no match at all.

Blocking. A name is scored only against index rows that share a blocked key with it: a token's
phonetic key, or a key within one edit of it (a deletion-neighbourhood index over the key
vocabulary, for keys of ``typo_min_len`` = 4+ letters, as in SymSpell). Blocking is per token, so
one intact token suffices, word order does not matter, transliteration variants share the key,
and a typo in a single-token name still lands in the block. In ``screen`` the blocks of common
tokens (Mohammed, Ivan, Wang) are scored once for all the names reaching them, which is what
makes batches fast. Known limits: a single-token name with two typos, a typo in a token of 2-3
letters when no other token is intact, Korean names (anyascii's Revised Romanisation "Gim
Jeongeun" against the lists' "Kim Jong Un") and Japanese kanji (read as Chinese) are not
reliably found; joined and split names ("Abdulrahman" / "Abdul Rahman") score lower.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from anyascii import anyascii
from rapidfuzz import fuzz, process
from sklearn.base import BaseEstimator

__all__ = [
    "DOB_EXACT",
    "DOB_MISMATCH",
    "DOB_UNKNOWN",
    "DOB_YEAR",
    "COUNTRY_MATCH",
    "COUNTRY_MISMATCH",
    "COUNTRY_UNKNOWN",
    "OUTPUT_COLUMNS",
    "WATCHLIST_REQUIRED_COLUMNS",
    "WatchlistScreener",
    "parse_name",
    "phonetic_key",
    "skeleton_key",
]

# --- Evidence categories and output ------------------------------------------------------------

DOB_EXACT, DOB_YEAR, DOB_MISMATCH, DOB_UNKNOWN = "exact", "year", "mismatch", "unknown"
COUNTRY_MATCH, COUNTRY_MISMATCH, COUNTRY_UNKNOWN = "match", "mismatch", "unknown"
_DOB_CATEGORIES = (DOB_EXACT, DOB_YEAR, DOB_MISMATCH, DOB_UNKNOWN)
_COUNTRY_CATEGORIES = (COUNTRY_MATCH, COUNTRY_MISMATCH, COUNTRY_UNKNOWN)

STATUS_HIT, STATUS_REVIEW, STATUS_CLEAR = "hit", "review", "clear"

# Points added to the name score. A name without a birth date to corroborate it loses 8 points,
# so that an exact name alone is a possible match (92, review) and becomes a hit with the birth
# date (100); the same year only (94, or 96 with the country) is weak corroboration, as common
# names are listed many times. A conflicting birth date costs far more than an agreeing one
# earns: an exact common name with another birth date (80, clear) ends clearly below a true hit
# with a typo and the right birth date (90-93 + 5). Country evidence is weak on purpose: listed
# people live and hold nationalities elsewhere.
DEFAULT_DOB_POINTS: Mapping[str, float] = {
    DOB_EXACT: 5.0,
    DOB_YEAR: -6.0,
    DOB_MISMATCH: -20.0,
    DOB_UNKNOWN: -8.0,
}
DEFAULT_COUNTRY_POINTS: Mapping[str, float] = {
    COUNTRY_MATCH: 2.0,
    COUNTRY_MISMATCH: -2.0,
    COUNTRY_UNKNOWN: 0.0,
}

WATCHLIST_REQUIRED_COLUMNS = ("entry_id", "list_type", "full_name", "aliases", "birth_date", "country")
_LIST_TYPES = ("sanction", "pep")

OUTPUT_COLUMNS = (
    "screen_score",
    "screen_name_score",
    "screen_status",
    "screen_list_type",
    "screen_entry_id",
    "screen_entry_name",
    "screen_matched_name",
    "screen_dob_match",
    "screen_country_match",
)

# --- Name normalisation ------------------------------------------------------------------------

# Titles that are also common names are left out: "He" (His Excellency) is a frequent Chinese
# surname, and Don, Major, Judge or Lord are given names or surnames too.
_HONORIFICS = frozenset(
    """mr mrs ms miss mx mister madam madame mme mlle dr doctor prof professor sir dame
    sheikh shaikh sheik shaykh haji hajji hadji alhaji imam mullah ayatollah gen general col colonel
    maj capt captain lt lieutenant sgt adm admiral cmdr commander brig rev reverend
    honorable honourable excellency herr frau senor senora sra srta""".split()
)
_GENERATIONAL = frozenset("jr junior sr senior ii iii iv phd md esq".split())
_LEGAL_FORMS = frozenset(
    """llc ltd limited inc incorporated corp corporation co company plc gmbh ag kg ohg ug mbh sa sas
    sarl srl spa bv nv oy oyj ab asa aps pte pty pvt llp lp ooo oao zao pao ao tov pat fze fzco fzc
    fzllc jsc ojsc cjsc pjsc kft sro doo dd ad kk bhd sdn tbk the""".split()
)
# Legal forms written as several tokens once dots are gone ("Sp. z o.o." -> "sp z oo").
_LEGAL_PHRASES = (("sp", "z", "oo"), ("s", "de", "rl"), ("sa", "de", "cv"), ("s", "a"), ("co", "ltd"))
_AFFIX_WORDS = _HONORIFICS | _GENERATIONAL | _LEGAL_FORMS | {w for phrase in _LEGAL_PHRASES for w in phrase}
_PARTICLES = frozenset("al el ul bin ibn bint binti".split())

_ABJAD = re.compile(r"[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")
_CJK_WORD = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]{2,}$")
_ARABIC_ARTICLE = "\u0627\u0644"  # "ال"
_DELETED = re.compile(r"[.'`\u2018\u2019\u02bb\u02bc\u02bf\u02be]")
_SEPARATORS = re.compile(r"[^a-z0-9]+")

# Ordered: longer digraphs first; "ch" is protected from the c->k rule by a placeholder.
_CONSONANT_RULES = (
    ("shch", "sh"),
    ("tsch", "0"),
    ("sch", "sh"),
    ("tch", "0"),
    ("ch", "0"),
    ("dzh", "j"),
    ("dj", "j"),
    ("zh", "j"),
    ("ph", "f"),
    ("kh", "h"),
    ("gh", "g"),
    ("th", "t"),
    ("dh", "d"),
    ("ck", "k"),
    ("q", "k"),
    ("c", "k"),
    ("0", "ch"),
    ("x", "ks"),
)
# Vowels fall into three classes (a/e, i/y, o/u) after the common digraphs are merged: the
# romanisations of one name differ mostly inside a class (Mohammed / Muhammad, Sergei / Sergey,
# Omar / Umar), while keeping the classes apart keeps short different names apart.
_VOWEL_RULES = (
    ("w", "v"),
    ("y", "i"),
    ("ou", "u"),
    ("oo", "u"),
    ("o", "u"),
    ("ee", "i"),
    ("ie", "i"),
    ("ei", "i"),
    ("e", "a"),
)
_DOUBLE = re.compile(r"(.)\1+")
_SKELETON_DROP = re.compile(r"[aeiouwy]")
# Greek upsilon after omicron is the vowel "ou"; anyascii writes "oy" (Papadopoylos).
_GREEK_OU = re.compile("[οό][υύ]|Ο[ΥΎ]|Ο[υύ]")


@dataclass(frozen=True)
class ParsedName:
    """A name after transliteration and cleaning.

    Attributes:
        tokens: cleaned ASCII tokens in written order (empty when nothing is left).
        abjad: whether the name was written in an abjad script (Arabic, Hebrew, ...), so that it
            can only be compared on consonant skeletons.
    """

    tokens: tuple[str, ...]
    abjad: bool


def _transliterate_word(word: str) -> str:
    if _CJK_WORD.match(word):
        # Chinese and Korean names are written surname first without spaces; the lists write
        # "Mao Zedong", anyascii alone would give "MaoZeDong".
        syllables = [anyascii(ch) for ch in word]
        return f"{syllables[0]} {''.join(syllables[1:])}"
    if word.startswith(_ARABIC_ARTICLE) and len(word) > 3:
        return "al " + anyascii(word[2:])
    return anyascii(_GREEK_OU.sub("ou", word))


def _strip_affixes(tokens: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Remove honorifics, generational suffixes and legal forms written in Latin script.

    Only Latin-script words are candidates: the Arabic name Omar (عمر) transliterates to "mr".
    """

    def words(part: list[tuple[str, bool]]) -> tuple[str, ...]:
        return tuple(t if latin else "" for t, latin in part)

    if not tokens or (tokens[0][0] not in _AFFIX_WORDS and tokens[-1][0] not in _AFFIX_WORDS):
        return tokens  # the common case, checked cheaply
    changed = True
    while tokens and changed:
        changed = False
        for phrase in _LEGAL_PHRASES:
            n = len(phrase)
            if len(tokens) > n and words(tokens[-n:]) == phrase:
                tokens, changed = tokens[:-n], True
            if len(tokens) > n and words(tokens[:n]) == phrase:
                tokens, changed = tokens[n:], True
        first, last = words(tokens[:1]), words(tokens[-1:])
        if first and (first[0] in _HONORIFICS or first[0] in _LEGAL_FORMS):
            tokens, changed = tokens[1:], True
        elif last and (last[0] in _GENERATIONAL or last[0] in _LEGAL_FORMS):
            tokens, changed = tokens[:-1], True
    return tokens


@functools.lru_cache(maxsize=200_000)
def parse_name(name: str | None) -> ParsedName:
    """Transliterate and clean a name into comparable tokens.

    Args:
        name: a person's or business's name in any script; ``None``, NaN or blank give no tokens.

    Returns:
        The cleaned tokens (written order) and whether the name was in an abjad script.
    """
    if not isinstance(name, str) or not name.strip():
        return ParsedName((), False)
    text = unicodedata.normalize("NFKC", name)
    tokens: list[tuple[str, bool]] = []
    for word in text.split():
        latin = all(ord(ch) < 0x250 or not ch.isalpha() for ch in word)
        ascii_word = _DELETED.sub("", _transliterate_word(word).lower())
        tokens += [(t, latin) for t in _SEPARATORS.split(ascii_word) if t]
    return ParsedName(tuple(t for t, _ in _strip_affixes(tokens)), bool(_ABJAD.search(text)))


@functools.lru_cache(maxsize=200_000)
def phonetic_key(token: str) -> str:
    """Return the phonetic-ish key of one cleaned token (see the module docstring, step 3)."""
    key = token
    for old, new in _CONSONANT_RULES + _VOWEL_RULES:
        key = key.replace(old, new)
    key = _DOUBLE.sub(r"\1", key)
    if len(key) > 2 and key[-1] == "h" and key[-2] in "aiu":
        key = key[:-1]  # Abdullah / Abdulla, Sarah / Sara
    return key


@functools.lru_cache(maxsize=200_000)
def skeleton_key(token: str) -> str:
    """Return the consonant skeleton of one cleaned token (see the module docstring, step 4)."""
    key = token
    for old, new in _CONSONANT_RULES:
        key = key.replace(old, new)
    key = _DOUBLE.sub(r"\1", _SKELETON_DROP.sub("", key))
    if len(key) > 2 and key.endswith("h"):
        key = key[:-1]  # ta marbuta and the final h of Abdullah / Fatimah, written or not
    return key


@functools.lru_cache(maxsize=400_000)
def _forms(tokens: tuple[str, ...]) -> tuple[str, str, str, str]:
    """Return the raw (sorted and as written), phonetic (sorted) and skeleton (sorted) strings."""
    kept = [t for t in tokens if t not in _PARTICLES] or list(tokens)
    phon = sorted(phonetic_key(t) for t in kept)
    skel = sorted(k for k in (skeleton_key(t) for t in kept) if k)
    return " ".join(sorted(tokens)), " ".join(tokens), " ".join(phon), " ".join(skel)


@functools.lru_cache(maxsize=400_000)
def _variants(tokens: tuple[str, ...]) -> tuple[tuple[tuple[str, ...], bool], ...]:
    """Return the name and its partial forms, each flagged ``True`` when partial.

    Partial forms leave out one middle token (a patronymic, a second given name) or, from four
    tokens, keep the first and last only. Particles (al, bin, ...) are not counted as tokens:
    "Ali al-Khatib" has no middle name to leave out.
    """
    out: list[tuple[tuple[str, ...], bool]] = [(tokens, False)]
    core = tuple(t for t in tokens if t not in _PARTICLES)
    n = len(core)
    if n >= 3:
        seen = {tokens}
        partial = [core[:i] + core[i + 1 :] for i in range(1, n - 1)] if n <= 6 else []
        if n >= 4:
            partial.append((core[0], core[-1]))
        for p in partial:
            if p not in seen:
                seen.add(p)
                out.append((p, True))
    return tuple(out)


def _deletion_keys(key: str, min_len: int) -> set[str]:
    if len(key) < min_len:
        return {key}
    return {key} | {key[:i] + key[i + 1 :] for i in range(len(key))}


# --- Dates, countries, times -------------------------------------------------------------------

_NAT = np.iinfo(np.int64).min
_NS_PER_DAY = 86_400 * 10**9
# Blocks with at least this many rows, reached by at least that many names of a batch, are
# scored for all those names at once; and the most cells (name forms x rows) scored in one
# call, to bound memory.
_LARGE_BLOCK = 256
_MIN_SHARED = 4
_CELLS = 2_000_000


def _utc_stamps(values: Any) -> pd.Series:
    """Timestamps as a tz-aware UTC Series; naive ones are taken as UTC, unparseable ones as NaT."""
    if isinstance(values, pd.Series) and pd.api.types.is_datetime64_any_dtype(values):
        stamps = values  # already typed (the contracts' columns): no per-element parsing
        return stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    return pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce", format="mixed")


def _to_days(values: Any) -> np.ndarray:
    """Dates (any of str, datetime, Timestamp, tz-aware or not) to int64 days; NaT -> ``_NAT``."""
    return _utc_stamps(values).dt.tz_localize(None).to_numpy(dtype="datetime64[D]").astype(np.int64)


def _to_ns(values: Any) -> np.ndarray:
    """Timestamps to int64 UTC nanoseconds; naive ones are taken as UTC; NaT -> ``_NAT``."""
    return _utc_stamps(values).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").astype(np.int64)


def _scalar_ns(value: Any) -> int:
    """One timestamp to int64 UTC nanoseconds (naive taken as UTC); null or unparseable -> ``_NAT``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return _NAT
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        return _NAT
    if stamp is pd.NaT:
        return _NAT
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.as_unit("ns").value)


def _years(days: np.ndarray) -> np.ndarray:
    years = days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64)
    return np.where(days == _NAT, _NAT, years)


def _country(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip().upper()
    return None


# --- The screener ------------------------------------------------------------------------------


class WatchlistScreener(BaseEstimator):
    """Screen names against a sanctions / PEP watchlist (scikit-learn conventions).

    ``fit`` learns the watchlist's normalised name index and blocking index; ``screen`` scores a
    table of names, ``screen_one`` a single name (serving). The fitted screener is picklable and
    carries everything it needs (no file is read after ``fit``).

    Args:
        min_name_score: name scores below this are not reported as a match at all (0-100).
        review_threshold: combined score from which a match needs a human review.
        hit_threshold: combined score from which a match is treated as a (likely) true hit.
        phonetic_penalty: points off a name score obtained on phonetic keys rather than on
            the spelling.
        missing_token_penalty: points off when a name matched only with one token left out.
        abjad_penalty: points off a match made on consonant skeletons (abjad-script names).
        dob_points: points per birth-date category (``exact``, ``year``, ``mismatch``,
            ``unknown``); ``None`` for ``DEFAULT_DOB_POINTS``.
        country_points: points per country category (``match``, ``mismatch``, ``unknown``);
            ``None`` for ``DEFAULT_COUNTRY_POINTS``.
        blocking: score each name only against rows sharing a blocked token key (fast); ``False``
            scores against every list name (brute force, for checks and benchmarks).
        typo_min_len: phonetic keys at least this long are also blocked on their one-edit
            neighbourhood.
        workers: threads for rapidfuzz's ``cdist`` (1 is best for one name at a time).
        name_column: the column of names in ``screen``'s input.
        birth_date_column: the column of birth dates in ``screen``'s input (optional there).
        country_columns: columns of the customer's countries (any of them may agree with the
            entry's country; absent columns count as unknown).
    """

    def __init__(
        self,
        min_name_score: float = 80.0,
        review_threshold: float = 82.0,
        hit_threshold: float = 95.0,
        phonetic_penalty: float = 3.0,
        missing_token_penalty: float = 5.0,
        abjad_penalty: float = 8.0,
        dob_points: Mapping[str, float] | None = None,
        country_points: Mapping[str, float] | None = None,
        blocking: bool = True,
        typo_min_len: int = 4,
        workers: int = 1,
        name_column: str = "full_name",
        birth_date_column: str = "birth_date",
        country_columns: tuple[str, ...] = ("nationality", "residence_country"),
    ) -> None:
        self.min_name_score = min_name_score
        self.review_threshold = review_threshold
        self.hit_threshold = hit_threshold
        self.phonetic_penalty = phonetic_penalty
        self.missing_token_penalty = missing_token_penalty
        self.abjad_penalty = abjad_penalty
        self.dob_points = dob_points
        self.country_points = country_points
        self.blocking = blocking
        self.typo_min_len = typo_min_len
        self.workers = workers
        self.name_column = name_column
        self.birth_date_column = birth_date_column
        self.country_columns = country_columns

    # --- fit -----------------------------------------------------------------------------------

    def fit(self, watchlist: pd.DataFrame, y: Any = None) -> WatchlistScreener:
        """Validate the watchlist and build the name and blocking indexes.

        Args:
            watchlist: a table meeting the ``watchlist`` contract (entry_id, list_type, full_name,
                aliases, birth_date, country, optional listed_at).
            y: ignored.

        Returns:
            self, with the fitted attributes ``entry_*_`` (one element per entry), ``row_*_`` (one per
            indexed name form), ``blocks_`` and the resolved ``dob_points_`` / ``country_points_``.

        Raises:
            ValueError: a required column is missing (naming it), a parameter is out of range, or
                a value is invalid (naming the column and the rows).
        """
        self._validate_params()
        missing = [c for c in WATCHLIST_REQUIRED_COLUMNS if c not in watchlist.columns]
        if missing:
            raise ValueError(f"watchlist is missing required column(s): {', '.join(missing)}")
        wl = watchlist.reset_index(drop=True)
        _check(wl["entry_id"].isna(), "entry_id", "is null")
        _check(wl["entry_id"].astype(str).duplicated(), "entry_id", "is duplicated")
        _check(~wl["list_type"].isin(_LIST_TYPES), "list_type", f"is not one of {_LIST_TYPES}")
        names = wl["full_name"]
        _check(names.isna() | (names.astype(str).str.strip() == ""), "full_name", "is empty")
        birth = wl["birth_date"]
        birth_days = _to_days(birth)
        _check(birth.notna() & (birth_days == _NAT), "birth_date", "is not a date")
        listed_ns = _to_ns(wl["listed_at"]) if "listed_at" in wl.columns else np.full(len(wl), _NAT)
        if "listed_at" in wl.columns:
            _check(wl["listed_at"].notna() & (listed_ns == _NAT), "listed_at", "is not a timestamp")

        self.dob_points_ = {**DEFAULT_DOB_POINTS, **(self.dob_points or {})}
        self.country_points_ = {**DEFAULT_COUNTRY_POINTS, **(self.country_points or {})}
        # Plain object arrays, not DataFrame columns: serving reads a few elements per request.
        self.entry_id_ = wl["entry_id"].astype(str).to_numpy(dtype=object)
        self.entry_list_type_ = wl["list_type"].astype(str).to_numpy(dtype=object)
        self.entry_is_pep_ = self.entry_list_type_ == "pep"
        self.entry_name_ = names.astype(str).to_numpy(dtype=object)
        self.entry_dob_ = birth_days
        self.entry_year_ = _years(birth_days)
        # Entries never listed (null listed_at) are always visible: the smallest time.
        self.entry_listed_ns_ = listed_ns
        countries = [_country(c) for c in wl["country"]]
        self.country_codes_ = {c: i for i, c in enumerate(sorted({c for c in countries if c}))}
        self.entry_country_ = np.array([self.country_codes_.get(c, -1) for c in countries], dtype=np.int32)
        self._build_rows(wl)
        self.blocks_ = (
            {"phon": self._build_block(self.row_phon_), "skel": self._build_block(self.row_skel_)}
            if self.blocking
            else None
        )
        self.n_entries_ = len(wl)
        return self

    def _validate_params(self) -> None:
        for name in ("min_name_score", "review_threshold", "hit_threshold"):
            value = getattr(self, name)
            if not 0 <= value <= 100:
                raise ValueError(f"{name} must be within 0-100, got {value!r}")
        for name, allowed in (("dob_points", _DOB_CATEGORIES), ("country_points", _COUNTRY_CATEGORIES)):
            unknown = set(getattr(self, name) or {}) - set(allowed)
            if unknown:
                raise ValueError(f"{name} has unknown categories {sorted(unknown)}; allowed: {allowed}")

    def _build_rows(self, wl: pd.DataFrame) -> None:
        row_entry, row_name, row_partial, forms_per_row = [], [], [], []
        matched_names: list[str] = []
        full_names = wl["full_name"].to_numpy(dtype=object)
        aliases = wl["aliases"].to_numpy(dtype=object)
        for entry, (full_name, alias_text) in enumerate(zip(full_names, aliases, strict=True)):
            seen: set[str] = set()
            names = [str(full_name)]
            if isinstance(alias_text, str):
                names += [a.strip() for a in alias_text.split("|") if a.strip()]
            for name in names:
                parsed = parse_name(name)
                if not parsed.tokens:
                    continue
                name_pos = len(matched_names)
                matched_names.append(name)
                for tokens, partial in _variants(parsed.tokens):
                    forms = _forms(tokens)
                    if forms[1] in seen:  # same tokens in the same order as another name form
                        continue
                    seen.add(forms[1])
                    row_entry.append(entry)
                    row_name.append(name_pos)
                    row_partial.append(partial)
                    forms_per_row.append(forms)
        self.matched_names_ = np.array(matched_names, dtype=object)
        self.row_entry_ = np.array(row_entry, dtype=np.int32)
        self.row_name_ = np.array(row_name, dtype=np.int32)
        self.row_partial_ = np.array(row_partial, dtype=bool)
        columns = list(zip(*forms_per_row, strict=True)) if forms_per_row else [(), (), (), ()]
        self.row_raw_, self.row_written_, self.row_phon_, self.row_skel_ = (
            np.array(c, dtype=object) for c in columns
        )

    def _build_block(self, keys_per_row: np.ndarray) -> dict[str, Any]:
        """Inverted index token key -> rows (CSR), plus one-edit deletion keys -> vocabulary ids."""
        split = [set(text.split()) for text in keys_per_row]
        counts = np.fromiter((len(keys) for keys in split), dtype=np.int64, count=len(split))
        key_of = [key for keys in split for key in keys]
        row_of = np.repeat(np.arange(len(split), dtype=np.int32), counts)
        codes, uniques = pd.factorize(pd.Series(key_of, dtype=object))
        order = np.argsort(codes, kind="stable")
        vocab = list(uniques)
        lengths = np.bincount(codes, minlength=len(vocab)).astype(np.int64)
        ptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(lengths, out=ptr[1:])
        rows = row_of[order]
        neighbours: dict[str, list[int]] = {}
        for vid, key in enumerate(vocab):
            for d in _deletion_keys(key, self.typo_min_len):
                neighbours.setdefault(d, []).append(vid)
        return {
            "ptr": ptr,
            "sizes": lengths,
            "rows": rows,
            "neighbours": {d: tuple(v) for d, v in neighbours.items()},
        }

    # --- matching ------------------------------------------------------------------------------

    def _vocab_ids(self, keys: Iterable[str], namespace: str) -> set[int]:
        """Vocabulary ids of the keys, and of the keys one edit away from one of them."""
        neighbours = self.blocks_[namespace]["neighbours"]
        return {
            v for key in keys for d in _deletion_keys(key, self.typo_min_len) for v in neighbours.get(d, ())
        }

    def _jobs(
        self, queries: list[int], keys: list[list[str]], namespace: str
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        """Yield (queries, rows) to score: every query against every row sharing a blocked key.

        A large block (a common token such as Mohammed or Ivan) that many queries reach is
        scored once for all of them, so that its rows are converted once per batch rather than
        once per name; the other blocks of a query are merged and scored for that query alone.
        """
        if self.blocks_ is None:
            rows = np.arange(self.row_entry_.size)
            step = max(1, _CELLS // max(rows.size, 1))
            for start in range(0, len(queries), step):
                yield queries[start : start + step], rows
            return
        block = self.blocks_[namespace]
        ptr, sizes, block_rows = block["ptr"], block["sizes"], block["rows"]
        vids = [self._vocab_ids(keys[q], namespace) for q in queries]
        reach: dict[int, int] = {}
        for found in vids:
            for v in found:
                if sizes[v] >= _LARGE_BLOCK:
                    reach[v] = reach.get(v, 0) + 1
        shared: dict[int, list[int]] = {}
        for q, found in zip(queries, vids, strict=True):
            own = []
            for v in found:
                if reach.get(v, 0) >= _MIN_SHARED:
                    shared.setdefault(v, []).append(q)
                else:
                    own.append(block_rows[ptr[v] : ptr[v + 1]])
            if own:
                yield [q], np.unique(np.concatenate(own))
        for v, qs in shared.items():
            rows = block_rows[ptr[v] : ptr[v + 1]]
            step = max(1, _CELLS // rows.size)
            for start in range(0, len(qs), step):
                yield qs[start : start + step], rows

    def _match_many(self, parsed: list[ParsedName]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Match distinct parsed names against the index.

        Returns:
            Three aligned arrays: position in ``parsed``, index row, name score; one element per
            (name, row) whose name score reaches ``min_name_score`` (a pair may repeat when the
            row shares several blocked keys with the name; the scores are then equal).
        """
        forms = [[_forms(tokens) for tokens, _ in _variants(p.tokens)] for p in parsed]
        partial = [np.array([flag for _, flag in _variants(p.tokens)]) for p in parsed]
        out_q, out_row, out_score = [], [], []
        for abjad, key_column, namespace in ((False, 2, "phon"), (True, 3, "skel")):
            keys = [f[0][key_column].split() if f else [] for f in forms]
            queries = [i for i, p in enumerate(parsed) if p.tokens and p.abjad == abjad and keys[i]]
            for qs, rows in self._jobs(queries, keys, namespace):
                q, row, score = self._score(qs, rows, abjad, forms, partial)
                out_q.append(q)
                out_row.append(row)
                out_score.append(score)
        if not out_q:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        return np.concatenate(out_q), np.concatenate(out_row), np.concatenate(out_score)

    def _score(
        self,
        qs: list[int],
        rows: np.ndarray,
        abjad: bool,
        query_forms: list[list[tuple[str, str, str, str]]],
        query_partial: list[np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Name scores of the forms of queries ``qs`` against index ``rows`` (see module doc)."""
        owner = np.repeat(np.array(qs), [len(query_forms[q]) for q in qs])
        forms = [f for q in qs for f in query_forms[q]]
        q_partial = np.concatenate([query_partial[q] for q in qs])[:, None]
        r_partial = self.row_partial_[rows][None, :]

        def similarity(column: int, table: np.ndarray) -> np.ndarray:
            return process.cdist(
                [f[column] for f in forms],
                table[rows],
                scorer=fuzz.ratio,
                dtype=np.float32,
                workers=self.workers,
            )

        penalty = np.float32(self.missing_token_penalty) * (q_partial | r_partial)
        # A partial form may only match a complete name: two different middle names left out
        # on both sides ("Ivan Petrovich Sidorov" / "Ivan Nikolaevich Sidorov") are no match.
        excluded = q_partial & r_partial
        if abjad:
            score = similarity(3, self.row_skel_) - np.float32(self.abjad_penalty) - penalty
            score[excluded] = 0
            i, j = np.nonzero(score >= self.min_name_score)
            found = score[i, j].astype(np.float64)
        else:
            written = similarity(1, self.row_written_)
            phonetic = similarity(2, self.row_phon_)
            near = (np.maximum(written, phonetic) - penalty >= self.min_name_score) & ~excluded
            i, j = np.nonzero(near)
            # Only near pairs get the token-sorted spelling compared (swapped order) and the
            # final score. A phonetic similarity counts its distance from 100 twice: phonetic
            # keys merge letters, so different names come closer on them than when spelled.
            raw = np.fromiter(
                (fuzz.ratio(forms[a][0], b) for a, b in zip(i, self.row_raw_[rows[j]], strict=True)),
                dtype=np.float64,
                count=i.size,
            )
            phonetic_score = 2.0 * phonetic[i, j] - 100.0 - self.phonetic_penalty
            found = np.maximum(np.maximum(raw, written[i, j]), phonetic_score) - (
                self.missing_token_penalty * (q_partial[i, 0] | r_partial[0, j])
            )
        ok = found >= self.min_name_score
        return owner[i[ok]], rows[j[ok]], found[ok]

    def _screen_arrays(
        self,
        names: list[Any],
        birth_days: np.ndarray,
        countries: np.ndarray,
        as_of_ns: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Screen prepared arrays; returns one array per output column (row order kept).

        ``countries`` is an int32 matrix (rows x country columns) of codes, -1 for unknown;
        ``as_of_ns`` holds int64 UTC nanoseconds with ``_NAT`` meaning "no time limit".
        """
        n = len(names)
        # Names repeat (families, common names, re-screening): match each distinct name once.
        codes: dict[ParsedName, int] = {}
        name_code = np.full(n, -1, dtype=np.int64)
        for i, name in enumerate(names):
            parsed = parse_name(name) if isinstance(name, str) else parse_name(None)
            if parsed.tokens:
                name_code[i] = codes.setdefault(parsed, len(codes))
        out = _empty_output(n)
        p_code, p_row, p_score = self._match_many(list(codes))
        if not p_code.size:
            return out
        p_entry = self.row_entry_[p_row].astype(np.int64)
        p_name_pos = self.row_name_[p_row]
        # Best name form per (distinct name, entry): evidence is per entry. Ties go to the first
        # index row, so that batch and single screening name the same alias.
        order = np.lexsort((p_row, -p_score, p_entry, p_code))
        p_code, p_entry, p_name_pos, p_score = (
            p_code[order],
            p_entry[order],
            p_name_pos[order],
            p_score[order],
        )
        first = np.ones(p_code.size, dtype=bool)
        first[1:] = (p_code[1:] != p_code[:-1]) | (p_entry[1:] != p_entry[:-1])
        p_code, p_entry, p_name_pos, p_score = (
            p_code[first],
            p_entry[first],
            p_name_pos[first],
            p_score[first],
        )

        # Expand the pairs of each distinct name to the input rows carrying it.
        starts = np.searchsorted(p_code, np.arange(len(codes)), side="left")
        counts = np.searchsorted(p_code, np.arange(len(codes)), side="right") - starts
        rows_in = np.flatnonzero(name_code >= 0)
        per_row = counts[name_code[rows_in]]
        row_of = np.repeat(rows_in, per_row)
        offsets = np.arange(row_of.size) - np.repeat(np.cumsum(per_row) - per_row, per_row)
        pair = np.repeat(starts[name_code[rows_in]], per_row) + offsets
        entry = p_entry[pair]
        name_score = p_score[pair]

        limit = as_of_ns[row_of]
        visible = (limit == _NAT) | (self.entry_listed_ns_[entry] <= limit)
        row_of, pair, entry, name_score = row_of[visible], pair[visible], entry[visible], name_score[visible]

        dob_cat = _dob_category(birth_days[row_of], self.entry_dob_[entry], self.entry_year_[entry])
        country_cat = _country_category(countries[row_of], self.entry_country_[entry])
        dob_pts = np.array([self.dob_points_[c] for c in _DOB_CATEGORIES])
        country_pts = np.array([self.country_points_[c] for c in _COUNTRY_CATEGORIES])
        score = np.clip(name_score + dob_pts[dob_cat] + country_pts[country_cat], 0.0, 100.0)

        # Best per input row: combined score, then name score, sanctions before PEP, list order.
        is_pep = self.entry_is_pep_[entry]
        order = np.lexsort((entry, is_pep, -name_score, -score, row_of))
        best = order[np.unique(row_of[order], return_index=True)[1]]
        i = row_of[best]
        e = entry[best]
        out["screen_score"][i] = np.round(score[best], 2)
        out["screen_name_score"][i] = np.round(name_score[best], 2)
        out["screen_list_type"][i] = self.entry_list_type_[e]
        out["screen_entry_id"][i] = self.entry_id_[e]
        out["screen_entry_name"][i] = self.entry_name_[e]
        out["screen_matched_name"][i] = self.matched_names_[p_name_pos[pair[best]]]
        out["screen_dob_match"][i] = np.array(_DOB_CATEGORIES, dtype=object)[dob_cat[best]]
        out["screen_country_match"][i] = np.array(_COUNTRY_CATEGORIES, dtype=object)[country_cat[best]]
        final = out["screen_score"]
        out["screen_status"] = np.where(
            final >= self.hit_threshold,
            STATUS_HIT,
            np.where(final >= self.review_threshold, STATUS_REVIEW, STATUS_CLEAR),
        ).astype(object)
        out["screen_status"][final <= 0] = STATUS_CLEAR
        return out

    # --- public screening ----------------------------------------------------------------------

    def screen(self, names: pd.DataFrame, as_of: Any = None) -> pd.DataFrame:
        """Screen every row of ``names`` against the fitted watchlist.

        Args:
            names: a table with the name column (``name_column``, default ``full_name``) and
                optionally the birth-date and country columns (e.g. the ``customers`` table). It
                is not modified.
            as_of: point in time. A scalar timestamp applies to every row; the name of a column
                of ``names`` (e.g. ``"onboarded_at"``) gives one time per row; ``None`` uses the
                ``as_of`` column when there is one, else no time limit. A row sees only entries
                listed at or before its time (entries with a null ``listed_at`` always); a null
                time in a row means no limit. Naive times are taken as UTC.

        Returns:
            A DataFrame with the index of ``names`` and the columns below. The best match is
            reported whenever its name score reaches ``min_name_score``, also when its combined
            score leaves it ``clear`` (e.g. a namesake with another birth date), so that a
            reviewer sees what was set aside and why.

            - ``screen_score`` (float 0-100): combined score of the best match; 0 when none;
            - ``screen_name_score`` (float 0-100): its name similarity alone; 0 when none;
            - ``screen_status``: ``hit`` (score >= ``hit_threshold``), ``review``
              (>= ``review_threshold``) or ``clear``;
            - ``screen_list_type``: ``sanction`` / ``pep``, null when no match;
            - ``screen_entry_id``, ``screen_entry_name``: the matched entry and its primary name;
            - ``screen_matched_name``: the list name or alias that matched, as the list writes it;
            - ``screen_dob_match``: ``exact``, ``year`` (same year, other day), ``mismatch`` or
              ``unknown`` (either birth date missing); null when no match;
            - ``screen_country_match``: ``match``, ``mismatch`` or ``unknown``; null when no match.

        Raises:
            ValueError: the name column is missing, or ``as_of`` names no column and is no time.
        """
        self._check_fitted()
        if self.name_column not in names.columns:
            raise ValueError(f"names table is missing the name column {self.name_column!r}")
        n = len(names)
        if self.birth_date_column in names.columns:
            birth_days = _to_days(names[self.birth_date_column])
        else:
            birth_days = np.full(n, _NAT, dtype=np.int64)
        present = [c for c in self.country_columns if c in names.columns]
        countries = np.full((n, max(len(present), 1)), -1, dtype=np.int32)
        for j, column in enumerate(present):
            countries[:, j] = [self._country_code(c) for c in names[column]]
        as_of_ns = self._as_of(names, as_of)
        arrays = self._screen_arrays(list(names[self.name_column]), birth_days, countries, as_of_ns)
        return _output_frame(arrays, names.index)

    def screen_one(
        self,
        name: str | None,
        birth_date: Any = None,
        country: str | Iterable[str | None] | None = None,
        as_of: Any = None,
    ) -> dict[str, Any]:
        """Screen a single name (serving path; same results as ``screen`` on a one-row table).

        Args:
            name: the name in any script.
            birth_date: the birth date (date, Timestamp or ISO string), or ``None``.
            country: one country code, or a list / tuple of them (nationality, residence), or
                ``None``.
            as_of: point in time (see ``screen``); ``None`` for no limit.

        Returns:
            A dict with the keys of ``OUTPUT_COLUMNS``; missing values are ``None``.
        """
        self._check_fitted()
        birth_ns = _scalar_ns(birth_date)
        birth_days = np.array([_NAT if birth_ns == _NAT else birth_ns // _NS_PER_DAY], dtype=np.int64)
        given = list(country) if isinstance(country, list | tuple | set) else [country]
        codes = [self._country_code(c) for c in given] or [-1]
        as_of_ns = np.array([_scalar_ns(as_of)], dtype=np.int64)
        if as_of is not None and as_of_ns[0] == _NAT and not pd.isna(as_of):
            raise ValueError(f"as_of {as_of!r} is not a timestamp")
        arrays = self._screen_arrays([name], birth_days, np.array([codes], dtype=np.int32), as_of_ns)
        result = {}
        for column in OUTPUT_COLUMNS:
            value = arrays[column][0]
            if (
                isinstance(value, float)
                and np.isnan(value)
                and column not in ("screen_score", "screen_name_score")
            ):
                value = None
            result[column] = value.item() if isinstance(value, np.generic) else value
        return result

    def _as_of(self, names: pd.DataFrame, as_of: Any) -> np.ndarray:
        n = len(names)
        if as_of is None:
            if "as_of" not in names.columns:
                return np.full(n, _NAT, dtype=np.int64)
            as_of = "as_of"
        if isinstance(as_of, str) and as_of in names.columns:
            return _to_ns(names[as_of])
        value = _to_ns([as_of])[0]
        if value == _NAT:
            raise ValueError(f"as_of {as_of!r} is neither a column of the names table nor a timestamp")
        return np.full(n, value, dtype=np.int64)

    def _country_code(self, value: Any) -> int:
        # -1: unknown; -2: a country that no entry has (known, so it can only disagree).
        country = _country(value)
        return -1 if country is None else self.country_codes_.get(country, -2)

    def _check_fitted(self) -> None:
        if not hasattr(self, "row_entry_"):
            raise RuntimeError("WatchlistScreener is not fitted: call fit(watchlist) first")


# --- helpers -----------------------------------------------------------------------------------


def _check(bad: pd.Series, column: str, reason: str) -> None:
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        shown = ", ".join(str(r) for r in rows[:10]) + (" ..." if rows.size > 10 else "")
        raise ValueError(f"watchlist column {column!r} {reason} in {rows.size} row(s): {shown}")


def _dob_category(customer_days: np.ndarray, entry_days: np.ndarray, entry_years: np.ndarray) -> np.ndarray:
    unknown = (customer_days == _NAT) | (entry_days == _NAT)
    exact = ~unknown & (customer_days == entry_days)
    year = ~unknown & ~exact & (_years(customer_days) == entry_years)
    cat = np.full(customer_days.shape, 2, dtype=np.int64)  # mismatch
    cat[year] = 1
    cat[exact] = 0
    cat[unknown] = 3
    return cat


def _country_category(customer_codes: np.ndarray, entry_codes: np.ndarray) -> np.ndarray:
    known = (customer_codes != -1).any(axis=1) & (entry_codes >= 0)
    match = (customer_codes == entry_codes[:, None]).any(axis=1) & (entry_codes >= 0)
    cat = np.full(entry_codes.shape, 2, dtype=np.int64)  # unknown
    cat[known] = 1
    cat[match] = 0
    return cat


def _empty_output(n: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {
        "screen_score": np.zeros(n, dtype=np.float64),
        "screen_name_score": np.zeros(n, dtype=np.float64),
        "screen_status": np.full(n, STATUS_CLEAR, dtype=object),
    }
    for column in OUTPUT_COLUMNS[3:]:
        out[column] = np.full(n, None, dtype=object)
    return out


def _output_frame(arrays: dict[str, np.ndarray], index: pd.Index) -> pd.DataFrame:
    data = {}
    for column in OUTPUT_COLUMNS:
        values = arrays[column]
        data[column] = pd.Series(values, index=index, dtype=values.dtype if values.dtype != object else "str")
    return pd.DataFrame(data, index=index)
