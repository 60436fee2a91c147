"""The controlled vocabularies a release config may use (one place, so errors can list them),
and how a name is compared (`folded`)."""

import unicodedata

GENRES = ("pop", "rock", "synthpop", "folk", "ballad", "hip-hop")

MOODS = (
    "tender",
    "bright",
    "melancholic",
    "powerful",
    "hopeful",
    "nostalgic",
    "energetic",
    "dreamy",
    "dark",
    "playful",
    "calm",
    "defiant",
)

VOICE_STYLES = ("tender", "bright", "melancholic", "powerful", "breathy")

# The expression parameters a config may set under `voice.expression`: (low, high, unit).
# What each one does: models/voice/expression.py.
VOICE_EXPRESSION_LIMITS = {
    "vibrato_rate_hz": (3.0, 8.0, "Hz"),
    "vibrato_depth_cents": (0.0, 60.0, "cents"),
    "vibrato_delay_s": (0.0, 1.0, "s"),
    "vibrato_fade_s": (0.0, 1.0, "s"),
    "portamento_s": (0.01, 0.2, "s"),
    "overshoot_cents": (0.0, 50.0, "cents"),
    "dynamics_range_db": (0.0, 18.0, "dB"),
    "breathiness": (0.0, 1.0, "(0 to 1)"),
    "tension": (-1.0, 1.0, "(-1 to 1)"),
    "timing_feel_s": (-0.03, 0.03, "s"),
}

SECTION_NAMES = (
    "intro",
    "verse",
    "pre-chorus",
    "chorus",
    "post-chorus",
    "bridge",
    "breakdown",
    "solo",
    "instrumental",
    "outro",
)

MODES = ("major", "minor", "dorian", "mixolydian", "lydian", "phrygian", "aeolian", "ionian")

RELEASE_TYPES = ("single", "ep", "album")

# What the AI disclosure may name as machine-made (mapped to DDEX roles by the release stage).
AI_CONTRIBUTIONS = ("lyrics", "composition", "arrangement", "vocals", "instruments", "mixing", "mastering")


_LETTERS_APART = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l", "þ": "th", "ð": "d"})


def folded(name: str) -> str:
    """A name as commands read it: lower case, its accents dropped ("Zoë" → "zoe", "Renée" →
    "renee"), so that a voice called zoë answers to "zoë", "Zoë" and "zoe" alike. Two names that
    fold alike cannot both be told apart by a typed or spoken command (the registry refuses them)."""
    decomposed = unicodedata.normalize("NFKD", name.lower().translate(_LETTERS_APART))
    return "".join(c for c in decomposed if not unicodedata.combining(c))
