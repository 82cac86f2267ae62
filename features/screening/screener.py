"""The watchlist screener: a fitted name index, blocking, and the scores of names against it.

``WatchlistScreener`` (scikit-learn conventions) learns a name index from the ``watchlist`` table
and screens a table of names (``screen``) or one name (``screen_one``, for serving), returning
for each name the best entry with its score and the evidence behind it. Names are prepared by
``features.screening.names``; the evidence categories and output columns are declared in
``features.screening.evidence``.

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

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process
from sklearn.base import BaseEstimator

from features.screening.evidence import (
    COUNTRY_CATEGORIES,
    DEFAULT_COUNTRY_POINTS,
    DEFAULT_DOB_POINTS,
    DOB_CATEGORIES,
    NAT,
    OUTPUT_COLUMNS,
    STATUS_CLEAR,
    STATUS_HIT,
    STATUS_REVIEW,
    country_category,
    country_text,
    dob_category,
    empty_output,
    output_frame,
    scalar_ns,
    to_days,
    to_ns,
    years,
)
from features.screening.names import ParsedName, deletion_keys, name_forms, name_variants, parse_name
from features.units import NS_PER_DAY

WATCHLIST_REQUIRED_COLUMNS = ("entry_id", "list_type", "full_name", "aliases", "birth_date", "country")
_LIST_TYPES = ("sanction", "pep")

# Blocks with at least this many rows, reached by at least that many names of a batch, are
# scored for all those names at once; and the most cells (name forms x rows) scored in one
# call, to bound memory.
_LARGE_BLOCK = 256
_MIN_SHARED = 4
_CELLS = 2_000_000


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
        birth_days = to_days(birth)
        _check(birth.notna() & (birth_days == NAT), "birth_date", "is not a date")
        listed_ns = to_ns(wl["listed_at"]) if "listed_at" in wl.columns else np.full(len(wl), NAT)
        if "listed_at" in wl.columns:
            _check(wl["listed_at"].notna() & (listed_ns == NAT), "listed_at", "is not a timestamp")

        self.dob_points_ = {**DEFAULT_DOB_POINTS, **(self.dob_points or {})}
        self.country_points_ = {**DEFAULT_COUNTRY_POINTS, **(self.country_points or {})}
        # Plain object arrays, not DataFrame columns: serving reads a few elements per request.
        self.entry_id_ = wl["entry_id"].astype(str).to_numpy(dtype=object)
        self.entry_list_type_ = wl["list_type"].astype(str).to_numpy(dtype=object)
        self.entry_is_pep_ = self.entry_list_type_ == "pep"
        self.entry_name_ = names.astype(str).to_numpy(dtype=object)
        self.entry_dob_ = birth_days
        self.entry_year_ = years(birth_days)
        # Entries never listed (null listed_at) are always visible: the smallest time.
        self.entry_listed_ns_ = listed_ns
        countries = [country_text(c) for c in wl["country"]]
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
        for name, allowed in (("dob_points", DOB_CATEGORIES), ("country_points", COUNTRY_CATEGORIES)):
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
                for tokens, partial in name_variants(parsed.tokens):
                    forms = name_forms(tokens)
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
            for d in deletion_keys(key, self.typo_min_len):
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
            v for key in keys for d in deletion_keys(key, self.typo_min_len) for v in neighbours.get(d, ())
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
        forms = [[name_forms(tokens) for tokens, _ in name_variants(p.tokens)] for p in parsed]
        partial = [np.array([flag for _, flag in name_variants(p.tokens)]) for p in parsed]
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
        ``as_of_ns`` holds int64 UTC nanoseconds with ``NAT`` meaning "no time limit".
        """
        n = len(names)
        # Names repeat (families, common names, re-screening): match each distinct name once.
        codes: dict[ParsedName, int] = {}
        name_code = np.full(n, -1, dtype=np.int64)
        for i, name in enumerate(names):
            parsed = parse_name(name) if isinstance(name, str) else parse_name(None)
            if parsed.tokens:
                name_code[i] = codes.setdefault(parsed, len(codes))
        out = empty_output(n)
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
        visible = (limit == NAT) | (self.entry_listed_ns_[entry] <= limit)
        row_of, pair, entry, name_score = row_of[visible], pair[visible], entry[visible], name_score[visible]

        dob_cat = dob_category(birth_days[row_of], self.entry_dob_[entry], self.entry_year_[entry])
        country_cat = country_category(countries[row_of], self.entry_country_[entry])
        dob_pts = np.array([self.dob_points_[c] for c in DOB_CATEGORIES])
        country_pts = np.array([self.country_points_[c] for c in COUNTRY_CATEGORIES])
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
        out["screen_dob_match"][i] = np.array(DOB_CATEGORIES, dtype=object)[dob_cat[best]]
        out["screen_country_match"][i] = np.array(COUNTRY_CATEGORIES, dtype=object)[country_cat[best]]
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
            birth_days = to_days(names[self.birth_date_column])
        else:
            birth_days = np.full(n, NAT, dtype=np.int64)
        present = [c for c in self.country_columns if c in names.columns]
        countries = np.full((n, max(len(present), 1)), -1, dtype=np.int32)
        for j, column in enumerate(present):
            countries[:, j] = [self._country_code(c) for c in names[column]]
        as_of_ns = self._as_of(names, as_of)
        arrays = self._screen_arrays(list(names[self.name_column]), birth_days, countries, as_of_ns)
        return output_frame(arrays, names.index)

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
        birth_ns = scalar_ns(birth_date)
        birth_days = np.array([NAT if birth_ns == NAT else birth_ns // NS_PER_DAY], dtype=np.int64)
        given = list(country) if isinstance(country, list | tuple | set) else [country]
        codes = [self._country_code(c) for c in given] or [-1]
        as_of_ns = np.array([scalar_ns(as_of)], dtype=np.int64)
        if as_of is not None and as_of_ns[0] == NAT and not pd.isna(as_of):
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
                return np.full(n, NAT, dtype=np.int64)
            as_of = "as_of"
        if isinstance(as_of, str) and as_of in names.columns:
            return to_ns(names[as_of])
        value = to_ns([as_of])[0]
        if value == NAT:
            raise ValueError(f"as_of {as_of!r} is neither a column of the names table nor a timestamp")
        return np.full(n, value, dtype=np.int64)

    def _country_code(self, value: Any) -> int:
        # -1: unknown; -2: a country that no entry has (known, so it can only disagree).
        country = country_text(value)
        return -1 if country is None else self.country_codes_.get(country, -2)

    def _check_fitted(self) -> None:
        if not hasattr(self, "row_entry_"):
            raise RuntimeError("WatchlistScreener is not fitted: call fit(watchlist) first")


def _check(bad: pd.Series, column: str, reason: str) -> None:
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        shown = ", ".join(str(r) for r in rows[:10]) + (" ..." if rows.size > 10 else "")
        raise ValueError(f"watchlist column {column!r} {reason} in {rows.size} row(s): {shown}")
