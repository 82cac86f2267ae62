"""Benchmark of ``features.screening``: speed, recall of planted variants and false hits on synthetic data.

``run`` builds a synthetic watchlist (people from several naming cultures, with aliases in other
spellings and original scripts, and businesses) and a table of customer names of which a share
are planted variants of list entries (original script, swapped order, typos, other
romanisations, honorifics and legal forms, a missing or extra middle name), all from one seed.
It times ``fit`` and ``screen``, single-name ``screen_one`` latencies, and compares the blocked
screener with brute force (blocking disabled) on a subset of the names, scaled up.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from anyascii import anyascii

from features.screening import WatchlistScreener, parse_name

# --- Name material: (original script, Latin) ---------------------------------------------------

_RU_FIRST = (
    ("Владимир", "Vladimir"),
    ("Сергей", "Sergei"),
    ("Дмитрий", "Dmitri"),
    ("Алексей", "Alexei"),
    ("Александр", "Alexander"),
    ("Николай", "Nikolai"),
    ("Михаил", "Mikhail"),
    ("Андрей", "Andrei"),
    ("Юрий", "Yuri"),
    ("Игорь", "Igor"),
    ("Ольга", "Olga"),
    ("Наталья", "Natalia"),
    ("Татьяна", "Tatiana"),
    ("Елена", "Elena"),
    ("Иван", "Ivan"),
    ("Виктор", "Viktor"),
    ("Евгений", "Evgeny"),
    ("Олег", "Oleg"),
    ("Анна", "Anna"),
    ("Ирина", "Irina"),
)
_RU_LAST = (
    ("Иванов", "Ivanov"),
    ("Смирнов", "Smirnov"),
    ("Кузнецов", "Kuznetsov"),
    ("Попов", "Popov"),
    ("Соколов", "Sokolov"),
    ("Лебедев", "Lebedev"),
    ("Козлов", "Kozlov"),
    ("Новиков", "Novikov"),
    ("Морозов", "Morozov"),
    ("Волков", "Volkov"),
    ("Соловьёв", "Solovyov"),
    ("Васильев", "Vasiliev"),
    ("Зайцев", "Zaitsev"),
    ("Павлов", "Pavlov"),
    ("Семёнов", "Semyonov"),
    ("Голубев", "Golubev"),
    ("Виноградов", "Vinogradov"),
    ("Богданов", "Bogdanov"),
    ("Фёдоров", "Fedorov"),
    ("Щербаков", "Shcherbakov"),
)
_AR_FIRST = (
    ("محمد", "Mohammed"),
    ("أحمد", "Ahmed"),
    ("علي", "Ali"),
    ("عمر", "Omar"),
    ("خالد", "Khalid"),
    ("يوسف", "Youssef"),
    ("حسن", "Hassan"),
    ("حسين", "Hussein"),
    ("إبراهيم", "Ibrahim"),
    ("عبدالله", "Abdullah"),
    ("مصطفى", "Mustafa"),
    ("محمود", "Mahmoud"),
    ("سعيد", "Saeed"),
    ("فاطمة", "Fatima"),
    ("مريم", "Mariam"),
    ("زينب", "Zainab"),
    ("طارق", "Tariq"),
    ("كريم", "Karim"),
    ("جمال", "Jamal"),
    ("نبيل", "Nabil"),
)
_AR_LAST = (
    ("الحسيني", "al-Husseini"),
    ("المصري", "al-Masri"),
    ("الخطيب", "al-Khatib"),
    ("حداد", "Haddad"),
    ("منصور", "Mansour"),
    ("سليمان", "Suleiman"),
    ("عباس", "Abbas"),
    ("نصر", "Nasr"),
    ("الشامي", "al-Shami"),
    ("العمري", "al-Omari"),
    ("قاسم", "Qasim"),
    ("بكر", "Bakr"),
    ("الزهراني", "al-Zahrani"),
    ("الدوسري", "al-Dosari"),
    ("يعقوب", "Yacoub"),
    ("خليل", "Khalil"),
    ("سالم", "Salem"),
    ("رشيد", "Rashid"),
    ("فرج", "Farag"),
    ("عثمان", "Othman"),
)
_ZH_LAST = tuple(
    zip(
        "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗",
        "Wang Li Zhang Liu Chen Yang Huang Zhao Wu Zhou Xu Sun Ma Zhu Hu Guo He Gao Lin Luo".split(),
        strict=True,
    )
)
_ZH_GIVEN = tuple(
    (ch, anyascii(ch).lower())
    for ch in dict.fromkeys(
        "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚华建国文红玉桂英志海波宇浩鹏飞斌辉晨凯亮峰琳雪梅兰婷慧颖俊博睿哲彬康瑞嘉欣怡佳璐阳"
    )
)
_GR_FIRST = (
    ("Γιώργος", "Giorgos"),
    ("Δημήτρης", "Dimitris"),
    ("Νίκος", "Nikos"),
    ("Κωνσταντίνος", "Konstantinos"),
    ("Ελένη", "Eleni"),
    ("Μαρία", "Maria"),
)
_GR_LAST = (
    ("Παπαδόπουλος", "Papadopoulos"),
    ("Παπανδρέου", "Papandreou"),
    ("Γεωργίου", "Georgiou"),
    ("Οικονόμου", "Oikonomou"),
    ("Καραμανλής", "Karamanlis"),
    ("Νικολάου", "Nikolaou"),
)
_GR_SYLLABLES = tuple(c + v for c in "κλμνπρστδγζθχφ" for v in ("α", "ε", "ι", "ο", "ου", "η"))
_GR_SUFFIXES = ("όπουλος", "ίδης", "άκης", "άτος", "ίου", "άς")
_WEST_FIRST = """John James Robert Michael William David Richard Joseph Thomas Charles Mary Patricia
Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Carlos Jose Juan Luis Miguel Maria Ana
Sofia Lucia Pedro Hans Klaus Stefan Jurgen Pierre Jean Michel Francois Marco Giovanni""".split()
_WEST_LAST = """Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore
Martin Jackson Thompson White Harris Clark Lewis Walker Garcia Rodriguez Martinez Hernandez Lopez
Gonzalez Perez Sanchez Ramirez Torres Muller Schmidt Schneider Fischer Weber Dubois Lefebvre
Moreau Rossi Russo Bianchi Ferrari Esposito""".split()
_BUSINESS_WORDS = """Global Trade Star Ocean Silver Golden Eagle Falcon Delta Nova Prime Atlas Orion
Pacific Northern Eastern United Alpha Sigma Vector Crown Royal Green Blue Red Phoenix Titan Apex
Summit Horizon Meridian Zenith""".split()
_BUSINESS_KINDS = (
    "Trading Logistics Shipping Holdings Industries Petroleum Metals Group Capital Chemicals".split()
)
_LEGAL_FORMS = ("LLC", "Ltd", "GmbH", "S.A.", "Inc.", "FZE", "JSC", "Limited")
_HONORIFICS = ("Mr", "Mr.", "Dr", "Dr.", "Mrs", "Gen.", "Sheikh", "Prof.")
# Syllables for synthetic surnames: onset + vowel + optional coda, about 700 of them, so that
# most surnames are rare (as on real lists) and innocent names are not all near-duplicates.
_SYLLABLES = tuple(
    onset + vowel + coda
    for onset in ("", "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh", "ch")
    for vowel in "aeiou"
    for coda in ("", "", "n", "r", "l", "s", "m", "k")
)

# Latin -> Cyrillic for synthetic Russian surnames (digraphs first).
_TO_CYRILLIC = (
    ("shch", "щ"),
    ("kh", "х"),
    ("zh", "ж"),
    ("ts", "ц"),
    ("ch", "ч"),
    ("sh", "ш"),
    ("yu", "ю"),
    ("ya", "я"),
)
_CYR = dict(zip("abvgdezijklmnoprstufhcy", "абвгдезийклмнопрстуфхцы", strict=True))
# Latin -> Arabic for synthetic Arabic surnames: short vowels are not written.
_TO_ARABIC = (("kh", "خ"), ("sh", "ش"), ("th", "ث"), ("dh", "ذ"), ("gh", "غ"))
_AR = dict(zip("btjhdrzsfqklmnwyg", "بتجحدرزسفقكلمنويغ", strict=True))
# Romanisation variants applied to one token (old, new).
_SPELLING_SWAPS = (
    ("ou", "u"),
    ("u", "ou"),
    ("y", "i"),
    ("i", "y"),
    ("x", "ks"),
    ("ks", "x"),
    ("kh", "h"),
    ("ph", "f"),
    ("ss", "s"),
    ("s", "ss"),
    ("v", "w"),
    ("ee", "i"),
    ("e", "a"),
    ("o", "u"),
    ("j", "dj"),
    ("q", "k"),
    ("sh", "sch"),
    ("ei", "ey"),
)
_KNOWN_VARIANTS = {
    "Mohammed": ("Muhammad", "Mohamed", "Mohammad", "Mohamad"),
    "Youssef": ("Yusuf", "Yousef", "Yousuf"),
    "Alexander": ("Aleksandr", "Aleksander", "Alexandr"),
    "Hussein": ("Husayn", "Hussain", "Husein"),
    "Abdullah": ("Abdulla", "Abdallah"),
    "Sergei": ("Sergey", "Serguei"),
    "Yuri": ("Yuriy", "Iouri", "Jurij"),
    "Dmitri": ("Dmitry", "Dmitriy"),
    "Alexei": ("Aleksey", "Alexey", "Aleksei"),
    "Omar": ("Umar",),
    "Ahmed": ("Ahmad",),
    "Mahmoud": ("Mahmud",),
    "Khalid": ("Khaled", "Halid"),
    "Mikhail": ("Michail", "Mihail"),
    "Shcherbakov": ("Scherbakov", "Shtcherbakov"),
    "Semyonov": ("Semenov",),
    "Solovyov": ("Solovyev", "Soloviev"),
    "Zaitsev": ("Zaytsev",),
    "Mustafa": ("Mostafa",),
    "Saeed": ("Said", "Sayed"),
}

_CULTURES = ("ru", "ar", "zh", "gr", "west")
_CULTURE_P = (0.28, 0.28, 0.14, 0.05, 0.25)
_COUNTRIES = {
    "ru": ("RU", "BY", "KZ"),
    "ar": ("SY", "IQ", "EG", "AE", "SA"),
    "zh": ("CN", "HK"),
    "gr": ("GR", "CY"),
    "west": ("US", "GB", "DE", "ES", "MX", "FR"),
}


def _to_cyrillic(latin: str) -> str:
    text = latin.lower()
    for old, new in _TO_CYRILLIC:
        text = text.replace(old, new)
    return "".join(_CYR.get(ch, ch) for ch in text).capitalize()


def _to_arabic(latin: str) -> str:
    text = latin.lower().replace("al-", "")
    for old, new in _TO_ARABIC:
        text = text.replace(old, new)
    body = "".join(_AR.get(ch, "") for ch in (text[0] if text[0] not in "aeiou" else "") + text[1:])
    body = body if text[0] not in "aeiou" else "ا" + body
    return ("ال" + body) if latin.lower().startswith("al-") else body


class _Person:
    """One synthetic identity: Latin tokens (first, middle?, last) and their original script."""

    def __init__(self, culture: str, latin: list[str], script: list[str] | None) -> None:
        self.culture, self.latin, self.script = culture, latin, script


def _synthetic_surname(rng: np.random.Generator) -> str:
    n = int(rng.choice([2, 3], p=[0.6, 0.4]))
    return "".join(rng.choice(_SYLLABLES, size=n)).capitalize()


def _person(rng: np.random.Generator, culture: str, synthetic_share: float) -> _Person:
    def pick(pool):
        return pool[int(rng.integers(len(pool)))]

    synthetic = rng.random() < synthetic_share
    if culture == "ru":
        first, last = pick(_RU_FIRST), pick(_RU_LAST)
        if synthetic:
            latin = _synthetic_surname(rng) + str(rng.choice(["ov", "in", "enko", "sky"]))
            last = (_to_cyrillic(latin), latin)
        tokens = [first, last]
        if rng.random() < 0.35:  # patronymic
            father = pick(_RU_FIRST)
            patronymic = father[0].rstrip("йаь") + "ович"
            tokens.insert(1, (patronymic, anyascii(patronymic)))
    elif culture == "ar":
        first, last = pick(_AR_FIRST), pick(_AR_LAST)
        if synthetic:
            latin = _synthetic_surname(rng)
            last = (_to_arabic(latin), latin)
        tokens = [first, last]
        if rng.random() < 0.3:
            tokens.insert(1, pick(_AR_FIRST))
    elif culture == "zh":
        last = pick(_ZH_LAST)
        given = [pick(_ZH_GIVEN) for _ in range(int(rng.choice([1, 2])))]
        first = ("".join(g[0] for g in given), "".join(g[1] for g in given).capitalize())
        return _Person(culture, [last[1], first[1]], [last[0] + first[0]])
    elif culture == "gr":
        last = pick(_GR_LAST)
        if synthetic:
            syllables = "".join(rng.choice(_GR_SYLLABLES, size=int(rng.choice([1, 2]))))
            greek = (syllables + str(rng.choice(_GR_SUFFIXES))).capitalize()
            last = (greek, anyascii(greek.replace("ου", "ou")))
        tokens = [pick(_GR_FIRST), last]
    else:
        first, last = pick(_WEST_FIRST), pick(_WEST_LAST)
        if synthetic:
            last = _synthetic_surname(rng) + str(rng.choice(["son", "er", "ez", "ini", "mann", "s"]))
        latin = [first, last]
        if rng.random() < 0.2:
            latin.insert(1, pick(_WEST_FIRST))
        return _Person(culture, latin, None)
    return _Person(culture, [t[1] for t in tokens], [t[0] for t in tokens])


def _business(rng: np.random.Generator) -> list[str]:
    words = list(rng.choice(_BUSINESS_WORDS, size=int(rng.choice([1, 2]))))
    words.append(_synthetic_surname(rng))
    rng.shuffle(words)
    return [*words, str(rng.choice(_BUSINESS_KINDS))]


def _respell(rng: np.random.Generator, tokens: list[str]) -> list[str] | None:
    """Another romanisation of one token (known variants first, else a spelling rule)."""
    order = rng.permutation(len(tokens))
    for i in order:
        if tokens[i] in _KNOWN_VARIANTS:
            out = list(tokens)
            out[i] = str(rng.choice(_KNOWN_VARIANTS[tokens[i]]))
            return out
    for i in order:
        word = tokens[i].lower()
        swaps = [s for s in _SPELLING_SWAPS if s[0] in word[1:]]
        if swaps:
            old, new = swaps[int(rng.integers(len(swaps)))]
            out = list(tokens)
            out[i] = (word[0] + word[1:].replace(old, new, 1)).capitalize()
            return out
    return None


def _typo(rng: np.random.Generator, tokens: list[str], edits: int) -> list[str]:
    out = list(tokens)
    letters = "abcdefghijklmnopqrstuvwxyz"
    for _ in range(edits):
        candidates = [i for i, t in enumerate(out) if len(t) >= 4]
        if not candidates:
            break
        i = candidates[int(rng.integers(len(candidates)))]
        word = out[i]
        pos = int(rng.integers(1, len(word)))
        kind = int(rng.integers(4))
        if kind == 0:
            word = word[:pos] + letters[int(rng.integers(26))] + word[pos + 1 :]
        elif kind == 1:
            word = word[:pos] + letters[int(rng.integers(26))] + word[pos:]
        elif kind == 2 and len(word) > 4:
            word = word[:pos] + word[pos + 1 :]
        elif pos < len(word) - 1:
            word = word[:pos] + word[pos + 1] + word[pos] + word[pos + 2 :]
        out[i] = word
    return out


# --- Data ---------------------------------------------------------------------------------------


def make_watchlist(n_entries: int, seed: int = 0) -> tuple[pd.DataFrame, list[_Person | None]]:
    """Build a synthetic watchlist and the identities behind its entries (``None`` for businesses).

    Args:
        n_entries: number of entries (about 3 names each with aliases).
        seed: random seed; the same seed gives the same list.

    Returns:
        The watchlist (contract columns, ``listed_at`` included) and one identity per entry.
    """
    rng = np.random.default_rng([seed, 1])
    rows, people = [], []
    years = rng.integers(1940, 2001, size=n_entries)
    for k in range(n_entries):
        if rng.random() < 0.15:
            words = _business(rng)
            form = str(rng.choice(_LEGAL_FORMS))
            name = " ".join(words) + " " + form
            aliases = [" ".join(words)] + ([" ".join(words[:-1])] if rng.random() < 0.5 else [])
            people.append(None)
            dob, country = None, str(rng.choice(["AE", "RU", "IR", "HK", "CY", "TR", "SY"]))
        else:
            culture = str(rng.choice(_CULTURES, p=_CULTURE_P))
            person = _person(rng, culture, synthetic_share=0.75)
            people.append(person)
            latin = person.latin
            name = " ".join(latin)
            aliases = []
            for _ in range(int(rng.choice([1, 2, 3, 4], p=[0.2, 0.3, 0.3, 0.2]))):
                kind = rng.random()
                if kind < 0.45:
                    alt = _respell(rng, latin)
                    if alt:
                        aliases.append(" ".join(alt))
                elif kind < 0.65:
                    aliases.append(f"{latin[-1].upper()}, {' '.join(latin[:-1])}")
                elif kind < 0.8 and len(latin) > 2:
                    aliases.append(f"{latin[0]} {latin[-1]}")
                elif person.script:
                    aliases.append(" ".join(person.script))
            if rng.random() < 0.8:
                dob = pd.Timestamp(
                    int(years[k]), int(rng.integers(1, 13)), int(rng.integers(1, 29)), tz="UTC"
                )
            else:
                dob = None
            country = str(rng.choice(_COUNTRIES[culture])) if rng.random() < 0.85 else None
        listed = (
            pd.Timestamp("2001-01-01", tz="UTC") + pd.Timedelta(days=int(rng.integers(0, 8500)))
            if rng.random() < 0.9
            else None
        )
        rows.append(
            {
                "entry_id": f"WL{k:06d}",
                "list_type": "sanction" if rng.random() < 0.4 else "pep",
                "full_name": name,
                "aliases": "|".join(dict.fromkeys(aliases)),
                "birth_date": dob,
                "country": country,
                "listed_at": listed,
            }
        )
    watchlist = pd.DataFrame(rows)
    watchlist["birth_date"] = pd.to_datetime(watchlist["birth_date"], utc=True)
    watchlist["listed_at"] = pd.to_datetime(watchlist["listed_at"], utc=True)
    return watchlist, people


PLANTED_KINDS = (
    "exact",
    "script",
    "swapped",
    "typo1",
    "typo2",
    "respelled",
    "affixes",
    "middle",
    "swapped_typo",
)
_PLANTED_P = (0.08, 0.18, 0.12, 0.16, 0.1, 0.14, 0.08, 0.08, 0.06)


def make_names(
    watchlist: pd.DataFrame,
    people: list[_Person | None],
    n_names: int,
    seed: int = 0,
    planted_share: float = 0.2,
) -> pd.DataFrame:
    """Build customer names: planted variants of list entries and innocent customers.

    Args:
        watchlist: from ``make_watchlist``.
        people: the identities returned with it.
        n_names: number of names.
        seed: random seed.
        planted_share: share of names derived from a list entry.

    Returns:
        A table with ``full_name``, ``birth_date``, ``nationality``, ``residence_country`` and the
        truth: ``planted_entry_id`` (null for innocents), ``planted_kind`` and ``namesake``
        (an innocent whose name equals a list name but whose birth date differs).
    """
    rng = np.random.default_rng([seed, 2])
    rows = []
    people_idx = [i for i, p in enumerate(people) if p is not None]
    business_idx = [i for i, p in enumerate(people) if p is None]
    for _ in range(n_names):
        row: dict[str, Any] = {"planted_entry_id": None, "planted_kind": None, "namesake": False}
        if rng.random() < planted_share:
            is_business = rng.random() < 0.1
            k = int(rng.choice(business_idx if is_business else people_idx))
            entry = watchlist.iloc[k]
            kind = str(rng.choice(PLANTED_KINDS, p=_PLANTED_P))
            person = people[k]
            tokens = str(entry["full_name"]).split() if person is None else list(person.latin)
            if kind == "script" and person is not None and person.script:
                name = " ".join(person.script)
            elif kind == "swapped" or (kind == "script" and (person is None or not person.script)):
                name = " ".join(tokens[-1:] + tokens[:-1])
            elif kind in ("typo1", "typo2"):
                name = " ".join(_typo(rng, tokens, 1 if kind == "typo1" else 2))
            elif kind == "respelled":
                name = " ".join(_respell(rng, tokens) or tokens)
            elif kind == "affixes":
                name = f"{rng.choice(_LEGAL_FORMS if person is None else _HONORIFICS)} {' '.join(tokens).upper()}"
            elif kind == "middle":
                if person is None:
                    name = " ".join(tokens[:1] + tokens[2:]) if len(tokens) > 3 else " ".join(tokens)
                elif len(tokens) > 2:
                    name = f"{tokens[0]} {tokens[-1]}"
                else:
                    name = f"{tokens[0]} {rng.choice(_WEST_FIRST)} {tokens[-1]}"
            elif kind == "swapped_typo":
                name = " ".join(_typo(rng, tokens[-1:] + tokens[:-1], 1))
            else:
                name = " ".join(tokens)
            row.update(planted_entry_id=entry["entry_id"], planted_kind=kind)
            dob = entry["birth_date"]
            draw = rng.random()
            if pd.isna(dob) or draw < 0.3:
                dob = None
            elif draw < 0.35:
                dob = dob.replace(day=1 if dob.day != 1 else 2)  # same year, other day
            country = entry["country"] if rng.random() < 0.6 else None
        elif rng.random() < 0.02:
            # A namesake: an innocent customer who shares a listed person's name.
            k = int(rng.choice(people_idx))
            entry = watchlist.iloc[k]
            name = entry["full_name"]
            dob = pd.Timestamp(
                int(rng.integers(1940, 2006)), int(rng.integers(1, 13)), int(rng.integers(1, 29)), tz="UTC"
            )
            if not pd.isna(entry["birth_date"]) and dob.year == entry["birth_date"].year:
                dob = dob.replace(year=dob.year + 1)
            row["namesake"] = True
            country = None
        else:
            culture = str(rng.choice(_CULTURES, p=_CULTURE_P))
            person = _person(rng, culture, synthetic_share=0.9)
            use_script = person.script is not None and rng.random() < 0.15
            name = " ".join(person.script if use_script else person.latin)
            dob = pd.Timestamp(
                int(rng.integers(1940, 2006)), int(rng.integers(1, 13)), int(rng.integers(1, 29)), tz="UTC"
            )
            dob = None if rng.random() < 0.2 else dob
            country = str(rng.choice(_COUNTRIES[culture]))
        row.update(full_name=name, birth_date=dob, nationality=country, residence_country=None)
        rows.append(row)
    names = pd.DataFrame(rows)
    names["birth_date"] = pd.to_datetime(names["birth_date"], utc=True)
    return names[
        [
            "full_name",
            "birth_date",
            "nationality",
            "residence_country",
            "planted_entry_id",
            "planted_kind",
            "namesake",
        ]
    ]


# --- Benchmark ----------------------------------------------------------------------------------


def _name_key(name: Any) -> str:
    return " ".join(sorted(parse_name(name if isinstance(name, str) else None).tokens))


def _truth(names: pd.DataFrame, watchlist: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Planted rows, the primary-name key of their entry, and innocent namesakes.

    An innocent customer is a namesake when the name, cleaned and token-sorted, equals a list
    name or alias: only the birth date can clear such a customer, so the false hits among them
    are reported apart from the others.
    """
    planted = names["planted_entry_id"].notna().to_numpy()
    primary = dict(zip(watchlist["entry_id"], watchlist["full_name"].map(_name_key), strict=True))
    planted_key = np.array([primary.get(e, "") for e in names["planted_entry_id"]], dtype=object)
    listed = set(watchlist["full_name"].map(_name_key))
    for aliases in watchlist["aliases"].dropna():
        listed.update(_name_key(a) for a in aliases.split("|") if a.strip())
    namesake = ~planted & (
        names["namesake"].to_numpy(dtype=bool) | names["full_name"].map(_name_key).isin(listed).to_numpy()
    )
    return planted, planted_key, namesake


def _quality(
    result: pd.DataFrame,
    truth: tuple[np.ndarray, np.ndarray, np.ndarray],
    primary: dict[str, str],
    threshold: float,
) -> tuple[dict[str, float], np.ndarray]:
    planted, planted_key, namesake = truth
    flagged = (result["screen_score"] >= threshold).to_numpy()
    # The right entry, or an entry with the same primary name (lists hold true duplicates, and
    # the synthetic one many: "Wang Wei" and "Nikos Nikolaou" are listed many times).
    matched_key = np.array([primary.get(e, None) for e in result["screen_entry_id"].fillna("")], dtype=object)
    found = flagged & planted & (matched_key == planted_key)
    other = ~planted & ~namesake
    return {
        "recall_planted": float(found[planted].mean()) if planted.any() else float("nan"),
        "false_hit_rate": float(flagged[~planted].mean()) if (~planted).any() else float("nan"),
        "false_hit_rate_namesakes": float(flagged[namesake].mean()) if namesake.any() else float("nan"),
        "false_hit_rate_other": float(flagged[other].mean()) if other.any() else float("nan"),
    }, found


def run(
    n_names: int = 10000, n_entries: int = 50000, seed: int = 0, n_bruteforce: int = 200, n_single: int = 1000
) -> dict[str, Any]:
    """Build synthetic data, fit and screen, and report speed and quality.

    Args:
        n_names: customer names to screen.
        n_entries: watchlist entries (about 2.8 names each with aliases).
        seed: random seed for the data.
        n_bruteforce: names screened both with and without blocking (timings scaled up).
        n_single: names timed one at a time with ``screen_one``.

    Returns:
        ``fit_s``, ``screen_s``, ``names``, ``entries``, ``indexed_names`` (names and aliases),
        ``index_rows`` (with partial forms), ``names_per_s``, ``single_p50_ms``,
        ``single_p99_ms``; at the decision ``threshold`` (the screener's review threshold):
        ``recall_planted`` (planted variants flagged with their entry, or an entry of the same
        name), ``false_hit_rate`` (other names flagged), split into ``false_hit_rate_namesakes``
        (the name equals a listed name; only a birth date can clear them) and
        ``false_hit_rate_other``; ``recall_by_kind``; the same recall and false-hit rates at the
        ``hit_threshold`` (``hit_*``); the share of planted and namesake rows in the names; and
        the brute-force comparison on the first ``n_bruteforce`` names: ``bruteforce_names``,
        ``blocked_subset_s``, ``bruteforce_subset_s``, ``bruteforce_screen_s_scaled`` (brute force
        time scaled to all names), ``blocking_speedup`` (that over ``screen_s``),
        ``blocking_speedup_same_subset`` (both on the subset alone, where a small batch shares
        fewer blocks), ``recall_planted_subset_blocked``,
        ``recall_planted_subset_bruteforce`` and ``best_match_agreement`` (same entry and score).
    """
    watchlist, people = make_watchlist(n_entries, seed)
    names = make_names(watchlist, people, n_names, seed)
    screener = WatchlistScreener()
    started = time.perf_counter()
    screener.fit(watchlist)
    fit_s = time.perf_counter() - started
    parse_name.cache_clear()  # time the name parsing too, not a warm cache
    started = time.perf_counter()
    result = screener.screen(names)
    screen_s = time.perf_counter() - started

    truth = _truth(names, watchlist)
    primary = dict(zip(watchlist["entry_id"], watchlist["full_name"].map(_name_key), strict=True))
    quality, found = _quality(result, truth, primary, screener.review_threshold)
    hit_quality, _ = _quality(result, truth, primary, screener.hit_threshold)
    planted = truth[0]
    by_kind = pd.Series(found[planted], index=names.loc[planted, "planted_kind"]).groupby(level=0).mean()

    rng = np.random.default_rng([seed, 3])
    single_idx = rng.choice(n_names, size=min(n_single, n_names), replace=False)
    parse_name.cache_clear()
    latencies = []
    for i in single_idx:
        row = names.iloc[int(i)]
        started = time.perf_counter()
        screener.screen_one(row["full_name"], row["birth_date"], row["nationality"])
        latencies.append((time.perf_counter() - started) * 1000)

    subset = names.iloc[: min(n_bruteforce, n_names)]
    subset_truth = tuple(t[: len(subset)] for t in truth)
    brute = WatchlistScreener(blocking=False).fit(watchlist)
    parse_name.cache_clear()
    started = time.perf_counter()
    blocked_sub = screener.screen(subset)
    blocked_sub_s = time.perf_counter() - started
    parse_name.cache_clear()
    started = time.perf_counter()
    brute_sub = brute.screen(subset)
    brute_sub_s = time.perf_counter() - started
    agree = (
        (blocked_sub["screen_entry_id"].fillna("") == brute_sub["screen_entry_id"].fillna(""))
        & np.isclose(blocked_sub["screen_score"], brute_sub["screen_score"])
    ).mean()

    return {
        "fit_s": round(fit_s, 3),
        "screen_s": round(screen_s, 3),
        "names": n_names,
        "entries": n_entries,
        "indexed_names": int(screener.matched_names_.size),
        "index_rows": int(screener.row_entry_.size),
        "names_per_s": round(n_names / screen_s, 1),
        "single_p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "single_p99_ms": round(float(np.percentile(latencies, 99)), 3),
        "threshold": screener.review_threshold,
        **{k: round(v, 4) for k, v in quality.items()},
        "recall_by_kind": {str(k): round(float(v), 4) for k, v in by_kind.items()},
        "hit_threshold": screener.hit_threshold,
        **{f"hit_{k}": round(v, 4) for k, v in hit_quality.items()},
        "planted_share": round(float(planted.mean()), 4),
        "namesake_share": round(float(truth[2].mean()), 4),
        "bruteforce_names": len(subset),
        "blocked_subset_s": round(blocked_sub_s, 3),
        "bruteforce_subset_s": round(brute_sub_s, 3),
        "bruteforce_screen_s_scaled": round(brute_sub_s * n_names / len(subset), 1),
        "blocking_speedup": round(brute_sub_s * n_names / len(subset) / screen_s, 1),
        "blocking_speedup_same_subset": round(brute_sub_s / blocked_sub_s, 1),
        "recall_planted_subset_blocked": round(
            _quality(blocked_sub, subset_truth, primary, screener.review_threshold)[0]["recall_planted"], 4
        ),
        "recall_planted_subset_bruteforce": round(
            _quality(brute_sub, subset_truth, primary, screener.review_threshold)[0]["recall_planted"], 4
        ),
        "best_match_agreement": round(float(agree), 4),
    }
