"""The controlled vocabularies a release config may use (one place, so errors can list them)."""

GENRES = ("pop", "rock", "synthpop", "folk", "ballad", "hip-hop")

MOODS = (
    "tender", "bright", "melancholic", "powerful", "hopeful", "nostalgic",
    "energetic", "dreamy", "dark", "playful", "calm", "defiant",
)

VOICE_STYLES = ("tender", "bright", "melancholic", "powerful", "breathy")

SECTION_NAMES = (
    "intro", "verse", "pre-chorus", "chorus", "post-chorus", "bridge",
    "breakdown", "solo", "instrumental", "outro",
)

MODES = ("major", "minor", "dorian", "mixolydian", "lydian", "phrygian", "aeolian", "ionian")

RELEASE_TYPES = ("single", "ep", "album")

# What the AI disclosure may name as machine-made (mapped to DDEX roles by the release stage).
AI_CONTRIBUTIONS = ("lyrics", "composition", "arrangement", "vocals", "instruments", "mixing", "mastering")
