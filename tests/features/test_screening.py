"""Tests of features.screening: minimum functionality, invariance, direction, persistence, blocking."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from features.bench import screening as bench_screening
from features.screening import OUTPUT_COLUMNS, WatchlistScreener, parse_name, phonetic_key


def _ts(text: str | None) -> pd.Timestamp | None:
    return pd.Timestamp(text, tz="UTC") if text else None


WATCHLIST = pd.DataFrame(
    [
        (
            "E1",
            "sanction",
            "Vladimir Petrov",
            "Wladimir Petrow|Владимир Петров",
            "1960-03-04",
            "RU",
            "2015-01-01",
        ),
        ("E2", "pep", "Mohammed Hassan", "Muhammad Hasan", "1975-06-01", "EG", None),
        ("E3", "sanction", "Romashka LLC", "OOO Romashka", None, "RU", "2016-05-01"),
        ("E4", "sanction", "Ivan Petrovich Sidorov", "", None, "RU", "2023-06-01"),
        ("E5", "pep", "Aleksandr Volkov", "Alexander Volkov", "1971-02-02", "BY", "2010-01-01"),
        ("E6", "sanction", "John Smith", None, "1970-01-01", "GB", "2012-01-01"),
        ("E7", "sanction", "Mao Zedong", None, "1893-12-26", "CN", None),
        ("E8", "pep", "Giorgos Papadopoulos", None, "1955-05-05", "GR", None),
    ],
    columns=["entry_id", "list_type", "full_name", "aliases", "birth_date", "country", "listed_at"],
)
WATCHLIST["birth_date"] = pd.to_datetime(WATCHLIST["birth_date"], utc=True)
WATCHLIST["listed_at"] = pd.to_datetime(WATCHLIST["listed_at"], utc=True)


@pytest.fixture(scope="module")
def screener() -> WatchlistScreener:
    return WatchlistScreener().fit(WATCHLIST)


def one(screener: WatchlistScreener, name, birth_date=None, country=None, as_of=None) -> dict:
    return screener.screen_one(name, birth_date, country, as_of)


# --- normalisation --------------------------------------------------------------------------------


def test_parse_name_transliterates_and_strips_affixes():
    assert parse_name("Mr. Vladimir PETROV Jr.").tokens == ("vladimir", "petrov")
    assert parse_name("Владимир Петров").tokens == ("vladimir", "petrov")
    assert parse_name("José Müller-Lüdenscheidt").tokens == ("jose", "muller", "ludenscheidt")
    assert parse_name("OOO Ромашка").tokens == parse_name("Romashka Ltd.").tokens == ("romashka",)
    assert parse_name("毛泽东").tokens == ("mao", "zedong")
    assert parse_name("محمد حسن").abjad
    # "Omar" in Arabic script transliterates to "mr": not an honorific.
    assert parse_name("عمر حسن").tokens == ("mr", "hsn")


def test_phonetic_key_merges_romanisation_variants():
    assert phonetic_key("mohammed") == phonetic_key("muhammad") == phonetic_key("mohamed")
    assert phonetic_key("sergei") == phonetic_key("sergey")
    assert phonetic_key("zaitsev") == phonetic_key("zaytsev")
    assert phonetic_key("petrov") != phonetic_key("putin")


# --- minimum functionality ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["Vladimir Petrov", "Владимир Петров", "Petrov Vladimir", "PETROV, Vladimir", "Dr. Vladimir Petrov"],
)
def test_exact_transliterated_and_swapped_names_match(screener, name):
    result = one(screener, name)
    assert result["screen_entry_id"] == "E1"
    assert result["screen_name_score"] == 100.0
    assert result["screen_list_type"] == "sanction"


def test_one_typo_matches_below_exact(screener):
    result = one(screener, "Vladimir Petorv")
    assert result["screen_entry_id"] == "E1"
    assert 85 <= result["screen_name_score"] < 100


def test_alias_match_names_the_alias(screener):
    result = one(screener, "Wladimir Petrow")
    assert result["screen_entry_id"] == "E1"
    assert result["screen_matched_name"] == "Wladimir Petrow"
    assert result["screen_entry_name"] == "Vladimir Petrov"


def test_romanisation_variant_matches(screener):
    assert one(screener, "Mohamed Hasan")["screen_entry_id"] == "E2"
    assert one(screener, "Alexandr Volkov")["screen_entry_id"] == "E5"


def test_arabic_script_name_matches_romanised_entry(screener):
    result = one(screener, "محمد حسن", country="EG")
    assert result["screen_entry_id"] == "E2"
    assert result["screen_list_type"] == "pep"
    assert result["screen_status"] in ("review", "hit")


def test_greek_and_chinese_scripts_match(screener):
    assert one(screener, "Γιώργος Παπαδόπουλος")["screen_entry_id"] == "E8"
    assert one(screener, "毛泽东")["screen_entry_id"] == "E7"


def test_business_legal_forms_are_ignored(screener):
    for name in ("Romashka Ltd", "ООО «Ромашка»", "ROMASHKA GmbH", "Romashla LLC"):
        assert one(screener, name)["screen_entry_id"] == "E3", name


def test_missing_middle_name_matches_with_a_small_penalty(screener):
    result = one(screener, "Ivan Sidorov")
    assert result["screen_entry_id"] == "E4"
    assert 90 <= result["screen_name_score"] < 100


def test_clear_non_match(screener):
    result = one(screener, "Emily Watson", "1990-01-01", "GB")
    assert result["screen_score"] == 0.0
    assert result["screen_list_type"] is None
    assert result["screen_status"] == "clear"


@pytest.mark.parametrize("name", [None, "", "   ", "Mr.", "LLC", float("nan")])
def test_empty_names_give_no_match(screener, name):
    result = one(screener, name)
    assert result["screen_score"] == 0.0 and result["screen_list_type"] is None


def test_screen_table_keeps_index_and_does_not_mutate_input(screener):
    names = pd.DataFrame(
        {
            "full_name": ["Владимир Петров", None, "Emily Watson", ""],
            "birth_date": pd.to_datetime(["1960-03-04", None, None, None], utc=True),
            "nationality": ["RU", None, "GB", None],
        },
        index=["a", "b", "c", "d"],
    )
    before = names.copy()
    result = screener.screen(names)
    pd.testing.assert_frame_equal(names, before)
    assert list(result.index) == ["a", "b", "c", "d"]
    assert list(result.columns) == list(OUTPUT_COLUMNS)
    assert result.loc["a", "screen_entry_id"] == "E1"
    assert result.loc["a", "screen_dob_match"] == "exact"
    assert result.loc["a", "screen_country_match"] == "match"
    assert result.loc["a", "screen_status"] == "hit"
    assert result.loc[["b", "c", "d"], "screen_score"].eq(0).all()
    assert result.loc[["b", "c", "d"], "screen_list_type"].isna().all()


def test_screen_one_equals_screen(screener):
    names = pd.DataFrame(
        {
            "full_name": ["Vladimir Petorv", "محمد حسن", "John Smith", "Ivan Sidorov"],
            "birth_date": pd.to_datetime(["1960-03-04", None, "1980-02-02", None], utc=True),
            "nationality": ["RU", "EG", "GB", None],
            "residence_country": [None, "AE", None, "RU"],
        }
    )
    table = screener.screen(names)
    for i, row in names.iterrows():
        single = screener.screen_one(
            row["full_name"], row["birth_date"], [row["nationality"], row["residence_country"]]
        )
        for column in OUTPUT_COLUMNS:
            expected = table.loc[i, column]
            assert single[column] == (None if pd.isna(expected) else expected), (i, column)


# --- direction: evidence ----------------------------------------------------------------------------


def test_dob_conflict_lowers_the_score(screener):
    agree = one(screener, "John Smith", "1970-01-01")
    unknown = one(screener, "John Smith")
    conflict = one(screener, "John Smith", "1988-07-14")
    assert agree["screen_dob_match"] == "exact" and conflict["screen_dob_match"] == "mismatch"
    assert agree["screen_score"] > unknown["screen_score"] > conflict["screen_score"]
    # An innocent namesake with another birth date ranks clearly below a true hit with a typo.
    typo_hit = one(screener, "Jhon Smith", "1970-01-01")
    assert typo_hit["screen_entry_id"] == "E6"
    assert typo_hit["screen_score"] >= conflict["screen_score"] + 10
    assert conflict["screen_status"] == "clear" and typo_hit["screen_status"] == "hit"


def test_birth_year_only_and_country_evidence(screener):
    year = one(screener, "John Smith", "1970-06-30")
    assert year["screen_dob_match"] == "year"
    assert one(screener, "John Smith", "1970-01-01", "GB")["screen_country_match"] == "match"
    assert one(screener, "John Smith", "1970-01-01", ["US", None])["screen_country_match"] == "mismatch"
    assert one(screener, "John Smith", "1970-01-01")["screen_country_match"] == "unknown"


# --- point in time ----------------------------------------------------------------------------------


def test_entries_listed_after_as_of_are_ignored(screener):
    assert one(screener, "Ivan Sidorov", as_of="2022-01-01")["screen_score"] == 0.0
    assert one(screener, "Ivan Sidorov", as_of="2024-01-01")["screen_entry_id"] == "E4"
    # Null listed_at: always visible.
    assert one(screener, "Mohammed Hassan", as_of="1990-01-01")["screen_entry_id"] == "E2"


def test_as_of_per_row_column(screener):
    names = pd.DataFrame(
        {
            "full_name": ["Ivan Sidorov", "Ivan Sidorov", "Ivan Sidorov"],
            "onboarded_at": pd.to_datetime(["2022-01-01", "2023-06-01", None], utc=True),
        }
    )
    by_column = screener.screen(names, as_of="onboarded_at")
    assert by_column["screen_entry_id"].isna().tolist() == [True, False, False]
    renamed = screener.screen(names.rename(columns={"onboarded_at": "as_of"}))
    pd.testing.assert_frame_equal(by_column, renamed)
    assert screener.screen(names, as_of=pd.Timestamp("2020-01-01"))["screen_entry_id"].isna().all()


# --- validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["entry_id", "list_type", "full_name", "aliases", "birth_date", "country"])
def test_missing_watchlist_column_is_named(column):
    with pytest.raises(ValueError, match=column):
        WatchlistScreener().fit(WATCHLIST.drop(columns=column))


def test_invalid_watchlist_values_are_named():
    bad = WATCHLIST.copy()
    bad.loc[2, "list_type"] = "blacklist"
    with pytest.raises(ValueError, match="list_type.*row"):
        WatchlistScreener().fit(bad)
    duplicated = pd.concat([WATCHLIST, WATCHLIST.head(1)], ignore_index=True)
    with pytest.raises(ValueError, match="entry_id.*duplicated"):
        WatchlistScreener().fit(duplicated)


def test_names_table_needs_the_name_column(screener):
    with pytest.raises(ValueError, match="full_name"):
        screener.screen(pd.DataFrame({"name": ["x"]}))


def test_listed_at_is_optional():
    screener = WatchlistScreener().fit(WATCHLIST.drop(columns="listed_at"))
    assert screener.screen_one("Ivan Sidorov", as_of="2000-01-01")["screen_entry_id"] == "E4"


def test_unfitted_and_parameters():
    with pytest.raises(RuntimeError, match="not fitted"):
        WatchlistScreener().screen_one("x")
    estimator = WatchlistScreener(review_threshold=70.0, blocking=False)
    assert clone(estimator).get_params()["review_threshold"] == 70.0
    with pytest.raises(ValueError, match="hit_threshold"):
        WatchlistScreener(hit_threshold=120).fit(WATCHLIST)


# --- persistence and blocking -------------------------------------------------------------------------


def test_pickle_round_trip_gives_identical_results(screener):
    names = pd.DataFrame(
        {"full_name": ["Petrov Vladimir", "محمد حسن", "Jhon Smith", None, "Alexander Wolkov"]}
    )
    restored = pickle.loads(pickle.dumps(screener))
    pd.testing.assert_frame_equal(restored.screen(names), screener.screen(names))


@pytest.fixture(scope="module")
def synthetic():
    watchlist, people = bench_screening.make_watchlist(1500, seed=7)
    names = bench_screening.make_names(watchlist, people, 200, seed=7, planted_share=0.6)
    return watchlist, names


def test_blocking_finds_the_same_best_match_as_brute_force(synthetic):
    watchlist, names = synthetic
    blocked = WatchlistScreener().fit(watchlist).screen(names)
    brute = WatchlistScreener(blocking=False).fit(watchlist).screen(names)
    flagged = brute["screen_score"] >= 82
    assert flagged.sum() > 80  # the check must cover many matches, not only clear names
    same_entry = blocked["screen_entry_id"].fillna("") == brute["screen_entry_id"].fillna("")
    same_score = np.isclose(blocked["screen_score"], brute["screen_score"])
    assert (same_entry & same_score).mean() >= 0.99
    # Blocking may only lose candidates, never invent them.
    assert (blocked["screen_score"] <= brute["screen_score"] + 1e-9).all()


def test_planted_variants_are_found(synthetic):
    watchlist, names = synthetic
    result = WatchlistScreener().fit(watchlist).screen(names)
    planted = names["planted_entry_id"].notna()
    flagged = result["screen_score"] >= 82
    assert (flagged & planted).sum() / planted.sum() >= 0.9


def test_benchmark_runs_small():
    report = bench_screening.run(n_names=150, n_entries=400, seed=1, n_bruteforce=20, n_single=20)
    for key in (
        "fit_s",
        "screen_s",
        "names_per_s",
        "single_p50_ms",
        "single_p99_ms",
        "recall_planted",
        "false_hit_rate",
    ):
        assert key in report
    assert report["names"] == 150 and report["entries"] == 400
    assert report["best_match_agreement"] >= 0.9
