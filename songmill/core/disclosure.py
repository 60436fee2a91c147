"""The AI disclosure of one recording, said the same way everywhere it is said.

    statement = track_statement(contains_ai=True, generated=spec.release.ai_disclosure.generated,
                                has_vocals=True, lyrics_provided=False)
    statement.contains_ai         # "All" | "Partly" | "None"   (DDEX avs:ContainsAI)
    statement.parts               # {"lyrics": "ai", "composition": "ai", "vocals": "ai", …, }
    statement.tag_text()          # "contains_ai=All; lyrics=ai; composition=ai; …"  (file tags)

One statement per track feeds the DDEX message (ContainsAI and the GenerativeAI contributors),
the C2PA manifest (`org.songmill.ai_disclosure`), the `AI_DISCLOSURE` tag of every container and
`provenance.json`; `parse_tag` reads the tag back, so a test can hold them all against each other.

A part is "ai" when the release says AI made it; "human" when the release says a person did, or
the track's own words were given (user lyrics are never called generated); "none" when the
recording has no such part (an instrumental has no vocals).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from songmill.core.vocab import AI_CONTRIBUTIONS

PartOrigin = Literal["ai", "human", "none"]
ContainsAI = Literal["All", "Partly", "None"]


@dataclass(frozen=True)
class AIStatement:
    contains_ai: ContainsAI
    parts: dict[str, PartOrigin]  # every part of AI_CONTRIBUTIONS, in that order

    @property
    def generated(self) -> tuple[str, ...]:
        return tuple(part for part, origin in self.parts.items() if origin == "ai")

    def tag_text(self) -> str:
        return "; ".join([f"contains_ai={self.contains_ai}", *(f"{part}={origin}" for part, origin in self.parts.items())])

    def to_dict(self) -> dict:
        return {"contains_ai": self.contains_ai, "parts": dict(self.parts)}


def track_statement(*, contains_ai: bool, generated: list[str] | tuple[str, ...], has_vocals: bool, lyrics_provided: bool) -> AIStatement:
    """The disclosure of one recording from the release's `ai_disclosure` and what the track is."""
    parts: dict[str, PartOrigin] = {}
    for part in AI_CONTRIBUTIONS:
        if part in ("vocals", "lyrics") and not has_vocals:
            parts[part] = "none"
        elif not contains_ai or part not in generated or (part == "lyrics" and lyrics_provided):
            parts[part] = "human"
        else:
            parts[part] = "ai"
    present = [origin for origin in parts.values() if origin != "none"]
    ai = sum(origin == "ai" for origin in present)
    verdict: ContainsAI = "None" if ai == 0 else "All" if ai == len(present) else "Partly"
    return AIStatement(verdict, parts)


def parse_tag(text: str) -> AIStatement:
    """Read back `AIStatement.tag_text()`; ValueError naming what is wrong."""
    fields = dict(item.strip().partition("=")[::2] for item in text.split(";") if item.strip())
    contains_ai = fields.pop("contains_ai", None)
    if contains_ai not in ("All", "Partly", "None"):
        raise ValueError(f"AI disclosure tag {text!r} has no contains_ai=All|Partly|None")
    unknown = set(fields) - set(AI_CONTRIBUTIONS) or {o for o in fields.values() if o not in ("ai", "human", "none")}
    if unknown or set(fields) != set(AI_CONTRIBUTIONS):
        raise ValueError(f"AI disclosure tag {text!r} does not name each of {', '.join(AI_CONTRIBUTIONS)} once as ai, human or none")
    parts = cast(dict[str, PartOrigin], {part: fields[part] for part in AI_CONTRIBUTIONS})  # each checked above
    return AIStatement(cast(ContainsAI, contains_ai), parts)
