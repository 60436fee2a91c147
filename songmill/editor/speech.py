"""Spoken edit commands, recognised offline by PocketSphinx under a grammar made for the song.

    operations = spoken_command(audio, rate_hz, song)     # or NoCommandHeard

The recogniser does not transcribe free speech: it chooses among the sentences of a JSGF
grammar (`command_grammar`) built from the spoken forms of the command rules and the song's own
names (its sections as people say them, its parts, the registry's voices), so a word that is no
part of any command cannot come out. Every sentence the grammar allows reads as operations by
`commands.parse_command` (tested by sampling it), so what was heard goes through the same rules
as what was typed.

Before decoding, a speech check: at least `MIN_SPEECH_S` of 20 ms frames `SPEECH_OVER_FLOOR_DB`
above the recording's own noise floor. Silence, or noise alone, is "no command heard" — never a
guess from the grammar. PocketSphinx and its US English acoustic model and dictionary come with
the `pocketsphinx` package (BSD); words the dictionary lacks (a voice called "cleo") are given
pronunciations from songmill.core.phonetics (CMU dictionary, else espeak-ng).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

from songmill.core.audio import channel_mean
from songmill.core.errors import SongmillError
from songmill.core.sections import section_labels
from songmill.core.vocab import GENRES, MOODS, VOICE_STYLES, folded
from songmill.editor.commands import parse_command
from songmill.editor.operations import SongFacts

RATE_HZ = 16000  # the acoustic model's rate
MIN_SPEECH_S = 0.25
SPEECH_OVER_FLOOR_DB = 15.0
PAD_S = 0.4  # silence around the recording: the decoder wants to hear where speech starts and ends
BPMS = tuple(range(60, 181, 2))  # the tempos a spoken command may name

ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
ORDINAL_WORDS = ("first", "second", "third", "fourth", "fifth")


class NoCommandHeard(SongmillError):
    """The recording holds no speech (silence, or noise alone), or nothing the grammar allows."""


def number_words(n: int) -> str:
    """0–199 in words, as people say tempos: 92 → "ninety two", 120 → "one hundred twenty"."""
    if n >= 100:
        rest = n - 100
        return "one hundred" + (f" {number_words(rest)}" if rest else "")
    if n >= 20:
        return TENS[n // 10] + (f" {ONES[n % 10]}" if n % 10 else "")
    return TEENS[n - 10] if n >= 10 else ONES[n]


def words_to_numbers(text: str) -> str:
    """The tempos in recognised words back to digits: "to ninety two" → "to 92"."""
    for bpm in sorted(BPMS, reverse=True):  # longest first: "one hundred twenty" before "one hundred"
        text = re.sub(rf"\b{number_words(bpm)}\b", str(bpm), text)
    return text


# ---------------------------------------------------------------- the grammar


def _spoken_sections(song: SongFacts) -> list[str]:
    """How people say the song's sections: "the bridge", "verse one", "the second verse", "the last chorus"."""
    names = [name for name, _ in song.sections]
    said = []
    for label in section_labels(names):
        name, _, number = label.partition(" ")
        spoken = name.replace("-", " ")
        if not number:
            said.append(f"the {spoken}")
            continue
        ordinal = int(number)
        said.append(f"{spoken} {ONES[ordinal] if ordinal < 10 else number}")
        if ordinal <= len(ORDINAL_WORDS):
            said.append(f"the {ORDINAL_WORDS[ordinal - 1]} {spoken}")
        if ordinal == names.count(name):
            said.append(f"the last {spoken}")
    return said


def _alternatives(items) -> str:
    return "(" + " | ".join(dict.fromkeys(items)) + ")"


def command_grammar(song: SongFacts) -> str:
    """The JSGF grammar of spoken commands for this song (one or two clauses)."""
    parts = [p for p in song.parts if not p.startswith("vocal-")]
    sections = _spoken_sections(song) or ["the song"]
    voices = [folded(i) for i in song.identities]  # "zoe" for zoë: the dictionary spells in English letters, and the reading folds names alike
    rules = {
        "amount": "(a bit | a little | slightly | a lot | much | way)",
        "bpm": _alternatives(number_words(b) for b in BPMS),
        "part": _alternatives(parts) if parts else "(drums)",
        "section": _alternatives(sections),
        "identity": _alternatives(voices) if voices else "(ava)",
        "tempo": "(slow it down [<amount>] | speed it up [<amount>] | slow it down to <bpm> | speed it up to <bpm> | set the tempo to <bpm>"
        " | [<amount>] (faster | slower))",
        "key": "(transpose (up | down) [(one | two | three) semitones] | add a key change into the last chorus | remove the key change)",
        "level": "(make the <part> [<amount>] (louder | quieter) | turn (up | down) the <part> | (more | less) <part>"
        " | [<amount>] (louder | quieter) vocals | turn the vocals (up | down) | (louder | quieter) backing vocals)",
        "mute": "((mute | unmute) the <part> | (mute | unmute) the backing vocals)",
        "pan": "pan the <part> [hard] (left | right)",
        "send": "[<amount>] (more | less) (reverb | delay | echo) [on the (voice | vocals)]",
        "sections": "((drop | repeat) <section> | make <section> (longer | shorter | louder | quieter) | <section> should hit harder)",
        "melody": "(another | a new) melody for <section>",
        "chords": "(new | different) chords for <section>",
        "rhythm": "(a new | a different) (beat | groove | rhythm) for <section>",
        "tone": "[make it] [<amount>] (brighter | warmer)",
        "voice": "sing it with <identity>",
        "style": "sing it " + _alternatives(VOICE_STYLES),
        "mood": "make it " + _alternatives(MOODS),
        "preset": "make it " + _alternatives(g.replace("-", " ").replace("synthpop", "synth pop") for g in GENRES),
        "expression": "((more | less) vibrato | [<amount>] breathier)",
    }
    clause = " | ".join(f"<{name}>" for name in list(rules)[5:])
    lines = ["#JSGF V1.0;", "grammar songmill;", "public <command> = <clause> [and <clause>];", f"<clause> = {clause};"]
    lines += [f"<{name}> = {body};" for name, body in rules.items()]
    return "\n".join(lines) + "\n"


def grammar_words(grammar: str) -> set[str]:
    body = re.sub(r"<[^>]+>|#JSGF V1\.0;|grammar songmill;|public", " ", grammar)
    return {w for w in re.findall(r"[a-z']+", body)}


# ---------------------------------------------------------------- recognition


def has_speech(samples: np.ndarray, rate_hz: int) -> bool:
    """At least MIN_SPEECH_S of 20 ms frames SPEECH_OVER_FLOOR_DB above the recording's own floor."""
    frame = max(int(0.02 * rate_hz), 1)
    count = len(samples) // frame
    if count < 3:
        return False
    power = np.mean(np.square(samples[: count * frame].reshape(count, frame), dtype=np.float64), axis=1)
    level_db = 10 * np.log10(power + 1e-12)
    if level_db.max() < -60.0:  # digital silence or near it
        return False
    floor_db = np.percentile(level_db, 10)
    return bool(np.count_nonzero(level_db > floor_db + SPEECH_OVER_FLOOR_DB) * 0.02 >= MIN_SPEECH_S)


def _to_model_rate(samples: np.ndarray, rate_hz: int) -> np.ndarray:
    from scipy.signal import resample_poly

    mono = channel_mean(samples)
    mono = resample_poly(mono.astype(np.float64), RATE_HZ, rate_hz) if rate_hz != RATE_HZ else mono.astype(np.float64)
    peak = float(np.max(np.abs(mono))) or 1.0
    pad = np.zeros(int(PAD_S * RATE_HZ))
    signal = np.concatenate([pad, 0.5 * mono / peak, pad])
    # a little dither: the decoder's features take the log of each frame's energy, and digital
    # silence (a synthesiser's gaps, the padding) sends them to minus infinity
    return signal + np.random.default_rng(0).normal(0.0, 3e-3, signal.size)


class Recogniser:
    """PocketSphinx with this song's grammar (build once per song: about 0.2 s)."""

    def __init__(self, song: SongFacts):
        from pocketsphinx import Decoder, get_model_path

        from songmill.core.phonetics import pronounce

        self.grammar = command_grammar(song)
        with tempfile.TemporaryDirectory(prefix="songmill-speech-") as folder:
            path = Path(folder) / "commands.gram"
            path.write_text(self.grammar, encoding="utf-8")
            dictionary = Path(get_model_path("en-us/cmudict-en-us.dict"))
            known = _dictionary_words(dictionary)
            extra = Path(folder) / "extra.dict"
            missing = sorted(grammar_words(self.grammar) - known)
            extra.write_text("".join(f"{w} {' '.join(re.sub(r'[0-9]', '', p) for p in pronounce(w))}\n" for w in missing), encoding="utf-8")
            combined = Path(folder) / "words.dict"
            combined.write_text(dictionary.read_text(encoding="utf-8") + extra.read_text(encoding="utf-8"), encoding="utf-8")
            self.decoder = Decoder(hmm=get_model_path("en-us/en-us"), dict=str(combined), jsgf=str(path), samprate=RATE_HZ, loglevel="FATAL")

    def words(self, samples: np.ndarray, rate_hz: int) -> str | None:
        """The grammar sentence heard, or None (no speech, or none of the grammar's sentences)."""
        if samples.size == 0 or not has_speech(channel_mean(samples), rate_hz):
            return None
        pcm = (np.clip(_to_model_rate(samples, rate_hz), -1, 1) * 32767).astype(np.int16).tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr.strip() if hypothesis is not None and hypothesis.hypstr.strip() else None


_DICTIONARY: set[str] | None = None


def _dictionary_words(path: Path) -> set[str]:
    global _DICTIONARY
    if _DICTIONARY is None:
        _DICTIONARY = {line.split(" ", 1)[0] for line in path.read_text(encoding="utf-8").splitlines() if line}
    return _DICTIONARY


def spoken_command(samples: np.ndarray, rate_hz: int, song: SongFacts, recogniser: Recogniser | None = None) -> tuple[str, list]:
    """(the words heard, their operations); NoCommandHeard for silence, noise or nothing the grammar allows."""
    words = (recogniser or Recogniser(song)).words(samples, rate_hz)
    if words is None:
        raise NoCommandHeard("no command heard in the recording (silence or noise only); speak a command such as 'slow it down a bit'")
    try:
        return words, parse_command(words_to_numbers(words), song)
    except SongmillError:  # the decoder stopped part-way through a sentence ("sing it bright and"): not a guess
        raise NoCommandHeard(f"heard only '{words}', not a whole command; say it again, closer to the microphone") from None


# ---------------------------------------------------------------- sentences of the grammar


def sample_sentences(grammar: str, count: int, rng: np.random.Generator, *, rule: str = "command") -> list[str]:
    """`count` random sentences the grammar allows (to test that each one parses, and to make
    spoken test commands)."""
    rules = dict(re.findall(r"^(?:public )?<([a-z_]+)> = (.*);$", grammar, flags=re.MULTILINE))
    return [" ".join(_expand(_tokens(rules[rule]), rules, rng)) for _ in range(count)]


def _tokens(body: str) -> list[str]:
    return re.findall(r"<[a-z_]+>|[()\[\]|]|[a-z']+", body)


def _expand(tokens: list[str], rules: dict[str, str], rng: np.random.Generator) -> list[str]:
    """One random path through a sequence of JSGF tokens."""
    alternatives: list[list[str]] = []
    depth, start = 0, 0
    # split the top level on "|"
    for i, token in enumerate(tokens):
        if token in "([":
            depth += 1
        elif token in ")]":
            depth -= 1
        elif token == "|" and depth == 0:
            alternatives.append(tokens[start:i])
            start = i + 1
    alternatives.append(tokens[start:])
    chosen = alternatives[int(rng.integers(len(alternatives)))]
    words, i = [], 0
    while i < len(chosen):
        token = chosen[i]
        if token in "([":
            depth, j = 1, i + 1
            while depth:  # to the bracket that closes this one
                depth += 1 if chosen[j] in "([" else -1 if chosen[j] in ")]" else 0
                j += 1
            inner = chosen[i + 1 : j - 1]
            if token == "(" or rng.random() < 0.5:
                words += _expand(inner, rules, rng)
            i = j
        elif token.startswith("<"):
            words += _expand(_tokens(rules[token[1:-1]]), rules, rng)
            i += 1
        else:
            words.append(token)
            i += 1
    return words
