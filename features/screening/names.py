"""Name normalisation for screening: transliteration, cleaning and the keys names are compared on.

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

The same functions prepare list names, aliases and customer names, so that both sides of a
comparison are written alike; ``features.screening.screener`` scores the prepared forms.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from anyascii import anyascii

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
def name_forms(tokens: tuple[str, ...]) -> tuple[str, str, str, str]:
    """Return the raw (sorted and as written), phonetic (sorted) and skeleton (sorted) strings."""
    kept = [t for t in tokens if t not in _PARTICLES] or list(tokens)
    phon = sorted(phonetic_key(t) for t in kept)
    skel = sorted(k for k in (skeleton_key(t) for t in kept) if k)
    return " ".join(sorted(tokens)), " ".join(tokens), " ".join(phon), " ".join(skel)


@functools.lru_cache(maxsize=400_000)
def name_variants(tokens: tuple[str, ...]) -> tuple[tuple[tuple[str, ...], bool], ...]:
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


def deletion_keys(key: str, min_len: int) -> set[str]:
    if len(key) < min_len:
        return {key}
    return {key} | {key[:i] + key[i + 1 :] for i in range(len(key))}
