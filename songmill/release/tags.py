"""Tags: the metadata a store reads from the file itself, written with mutagen.

    tag_file(Path("track.mp3"), tags)      # ID3v2.4 / Vorbis comments / MP4 atoms by extension
    Path("track.lrc").write_text(lrc_text(tags))

One `TrackTags` describes a track; `tag_file` writes it in the container's own vocabulary:
ID3v2.4 frames for MP3 and WAV (TIT2, TPE1, TALB, TRCK, TPOS, TDRC, TCON, TSRC, TBPM, TKEY, TCOP,
TPUB, USLT, SYLT, APIC), Vorbis comments with a picture block for FLAC and Opus (ISRC, LYRICS,
and R128_TRACK_GAIN for Opus), and iTunes atoms for M4A (the ISRC in the freeform
`----:com.apple.iTunes:ISRC` atom). Synced lyrics come from the score: every sung syllable's
onset (`SYLT`, milliseconds) and every lyric line's first onset (the `.lrc` file).

The recording's AI disclosure (`songmill.core.disclosure`, e.g. "contains_ai=All; lyrics=ai; …")
is written under one name per container, read back by `read_ai_disclosure`:

    MP3, WAV   ID3v2.4 TXXX frame, description AI_DISCLOSURE
    FLAC, Opus Vorbis comment AI_DISCLOSURE
    M4A        freeform atom ----:com.apple.iTunes:AI_DISCLOSURE
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, ID3, SYLT, TALB, TBPM, TCON, TCOP, TDRC, TIT2, TKEY, TPE1, TPE2, TPOS, TPUB, TRCK, TSRC, TXXX, USLT, Encoding, Frame
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4Cover, MP4FreeForm
from mutagen.oggopus import OggOpus
from mutagen.wave import WAVE

from songmill.core.music import parse_key
from songmill.core.score import Score

OPUS_REFERENCE_LUFS = -23.0  # R128_TRACK_GAIN is relative to EBU R128's reference (RFC 7845 §5.2.1)
MINOR_MODES = ("minor", "aeolian", "dorian", "phrygian")


@dataclass(frozen=True)
class SyncedLyrics:
    """When each lyric line and each sung syllable starts, in seconds from the track's start."""

    lines: list[tuple[float, str]] = field(default_factory=list)
    syllables: list[tuple[float, str]] = field(default_factory=list)  # text with a trailing space at word ends

    def to_dict(self) -> dict:
        return {"lines": [list(x) for x in self.lines], "syllables": [list(x) for x in self.syllables]}

    @classmethod
    def from_dict(cls, data: dict) -> "SyncedLyrics":
        return cls([tuple(x) for x in data["lines"]], [tuple(x) for x in data["syllables"]])

    def within(self, start_s: float, end_s: float) -> "SyncedLyrics":
        """The lines and syllables sung from `start_s` until `end_s`, in seconds from `start_s`:
        a preview clip's own timing (the whole song's would run ahead of the clip by its start)."""

        def cut(entries: list[tuple[float, str]]) -> list[tuple[float, str]]:
            return [(round(t - start_s, 3), text) for t, text in entries if start_s <= t < end_s]

        return SyncedLyrics(cut(self.lines), cut(self.syllables))


AI_DISCLOSURE_TAG = "AI_DISCLOSURE"


@dataclass(frozen=True)
class TrackTags:
    title: str
    artist: str
    album: str
    track_number: int
    track_total: int
    date: str  # YYYY-MM-DD
    genre: str
    isrc: str | None  # compact, 12 characters; None: the track has none (no registrant configured)
    bpm: int
    key: str  # e.g. "A minor"
    copyright: str  # the C-line, e.g. "2026 Songmill Records"
    publisher: str  # the label
    explicit: bool = False
    disc_number: int = 1
    disc_total: int = 1
    lyrics: str | None = None  # the whole text, a line per lyric line; None for an instrumental
    synced: SyncedLyrics = SyncedLyrics()
    cover_jpeg: bytes | None = None
    loudness_lufs: float | None = None  # the file's integrated loudness (Opus R128 gain)
    ai_disclosure: str | None = None  # AIStatement.tag_text() of the recording


def synced_lyrics(score: Score, line_syllables: list[tuple[str, list[str]]]) -> SyncedLyrics:
    """Line and syllable onsets from the melody's notes.

    `line_syllables` is every lyric line in singing order as (line text, its syllables' texts);
    the melody sings them in that order, one syllable per note (melisma notes carry none)."""
    melody = next((p for p in score.parts if p.role == "melody"), None)
    sung = [n for n in (melody.notes if melody else []) if n.syllable is not None and not n.melisma]
    sung.sort(key=lambda n: n.start_s)
    lines, syllables, position = [], [], 0
    for text, line in line_syllables:
        if position + len(line) > len(sung):
            break
        lines.append((round(sung[position].start_s, 3), text))
        for note in sung[position : position + len(line)]:
            assert note.syllable is not None  # sung notes are the ones with a syllable
            syllables.append((round(note.start_s, 3), note.syllable.text + (" " if note.syllable.word_end else "")))
        position += len(line)
    return SyncedLyrics(lines, syllables)


def initial_key(key: str) -> str:
    """The ID3 TKEY / INITIALKEY form: "A minor" → "Am", "Eb major" → "Eb"."""
    parsed = parse_key(key)
    return parsed.tonic + ("m" if parsed.mode in MINOR_MODES else "")


def lrc_text(tags: TrackTags, duration_s: float) -> str:
    """A `.lrc` synced-lyrics file: header tags, then `[mm:ss.xx]line` per lyric line."""
    minutes, seconds = divmod(duration_s, 60)
    head = [f"[ti:{tags.title}]", f"[ar:{tags.artist}]", f"[al:{tags.album}]", f"[length:{int(minutes):02d}:{int(seconds):02d}]"]
    body = [f"[{_lrc_time(start)}]{text}" for start, text in tags.synced.lines]
    return "\n".join(head + body) + "\n"


def _lrc_time(seconds: float) -> str:
    centis = int(round(seconds * 100))
    return f"{centis // 6000:02d}:{centis // 100 % 60:02d}.{centis % 100:02d}"


def tag_file(path: Path, tags: TrackTags) -> None:
    """Write `tags` into an audio file in place; the container is chosen by the file's extension."""
    writer = {".mp3": _tag_id3, ".wav": _tag_id3, ".flac": _tag_flac, ".opus": _tag_opus, ".m4a": _tag_m4a}.get(path.suffix)
    if writer is None:
        raise ValueError(f"no tag writer for {path.suffix} files")
    writer(path, tags)


def _id3_frames(tags: TrackTags) -> list[Frame]:
    utf8 = Encoding.UTF8
    frames: list[Frame] = [
        TIT2(encoding=utf8, text=tags.title),
        TPE1(encoding=utf8, text=tags.artist),
        TPE2(encoding=utf8, text=tags.artist),
        TALB(encoding=utf8, text=tags.album),
        TRCK(encoding=utf8, text=f"{tags.track_number}/{tags.track_total}"),
        TPOS(encoding=utf8, text=f"{tags.disc_number}/{tags.disc_total}"),
        TDRC(encoding=utf8, text=tags.date),
        TCON(encoding=utf8, text=tags.genre),
        TBPM(encoding=utf8, text=str(tags.bpm)),
        TKEY(encoding=utf8, text=initial_key(tags.key)),
        TCOP(encoding=utf8, text=tags.copyright),
        TPUB(encoding=utf8, text=tags.publisher),
    ]
    if tags.isrc:
        frames.append(TSRC(encoding=utf8, text=tags.isrc))
    if tags.lyrics:
        frames.append(USLT(encoding=utf8, lang="eng", desc="", text=tags.lyrics))
    if tags.synced.syllables:
        frames.append(
            SYLT(
                encoding=utf8,
                lang="eng",
                format=2,
                type=1,
                desc="",  # format 2: milliseconds; type 1: lyrics
                text=[(text, int(round(start * 1000))) for start, text in tags.synced.syllables],
            )
        )
    if tags.ai_disclosure:
        frames.append(TXXX(encoding=utf8, desc=AI_DISCLOSURE_TAG, text=tags.ai_disclosure))
    if tags.cover_jpeg:
        frames.append(APIC(encoding=utf8, mime="image/jpeg", type=3, desc="", data=tags.cover_jpeg))  # 3: front cover
    return frames


def _tag_id3(path: Path, tags: TrackTags) -> None:
    """MP3, and WAV (an `id3 ` chunk): the same ID3v2.4 frames."""
    audio = MP3(path) if path.suffix == ".mp3" else WAVE(path)
    if audio.tags is None:
        audio.add_tags()
    id3 = cast(ID3, audio.tags)  # mutagen declares FileType.tags = None; an MP3's or WAVE's tags are an ID3
    for frame in _id3_frames(tags):
        id3.add(frame)
    audio.save(v2_version=4)


def _vorbis_comments(tags: TrackTags) -> dict[str, str]:
    comments = {
        "TITLE": tags.title,
        "ARTIST": tags.artist,
        "ALBUMARTIST": tags.artist,
        "ALBUM": tags.album,
        "TRACKNUMBER": str(tags.track_number),
        "TRACKTOTAL": str(tags.track_total),
        "DISCNUMBER": str(tags.disc_number),
        "DISCTOTAL": str(tags.disc_total),
        "DATE": tags.date,
        "GENRE": tags.genre,
        "BPM": str(tags.bpm),
        "INITIALKEY": initial_key(tags.key),
        "COPYRIGHT": tags.copyright,
        "LABEL": tags.publisher,
        "ORGANIZATION": tags.publisher,
    }
    if tags.isrc:
        comments["ISRC"] = tags.isrc
    if tags.lyrics:
        comments["LYRICS"] = tags.lyrics
    if tags.explicit:
        comments["ITUNESADVISORY"] = "1"
    if tags.ai_disclosure:
        comments[AI_DISCLOSURE_TAG] = tags.ai_disclosure
    return comments


def _picture(cover_jpeg: bytes) -> Picture:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(cover_jpeg)) as image:
        width, height = image.size
    picture = Picture()
    picture.type, picture.mime, picture.desc = 3, "image/jpeg", ""
    picture.width, picture.height, picture.depth, picture.data = width, height, 24, cover_jpeg
    return picture


def _tag_flac(path: Path, tags: TrackTags) -> None:
    audio = FLAC(path)
    audio.clear()
    audio.update(_vorbis_comments(tags))
    audio.clear_pictures()
    if tags.cover_jpeg:
        audio.add_picture(_picture(tags.cover_jpeg))
    audio.save()


def _tag_opus(path: Path, tags: TrackTags) -> None:
    audio = OggOpus(path)
    audio.clear()
    comments = _vorbis_comments(tags)
    if tags.loudness_lufs is not None:  # Q7.8 fixed point dB to reach −23 LUFS (RFC 7845)
        comments["R128_TRACK_GAIN"] = str(int(round((OPUS_REFERENCE_LUFS - tags.loudness_lufs) * 256)))
    audio.update(comments)
    if tags.cover_jpeg:
        audio["METADATA_BLOCK_PICTURE"] = base64.b64encode(_picture(tags.cover_jpeg).write()).decode("ascii")
    audio.save()


def _tag_m4a(path: Path, tags: TrackTags) -> None:
    audio = MP4(path)
    audio.clear()
    audio.update(
        {
            "\xa9nam": [tags.title],
            "\xa9ART": [tags.artist],
            "aART": [tags.artist],
            "\xa9alb": [tags.album],
            "trkn": [(tags.track_number, tags.track_total)],
            "disk": [(tags.disc_number, tags.disc_total)],
            "\xa9day": [tags.date],
            "\xa9gen": [tags.genre],
            "tmpo": [tags.bpm],
            "cprt": [tags.copyright],
            "rtng": [1 if tags.explicit else 0],
            "----:com.apple.iTunes:LABEL": [MP4FreeForm(tags.publisher.encode())],
            "----:com.apple.iTunes:initialkey": [MP4FreeForm(initial_key(tags.key).encode())],
        }
    )
    if tags.isrc:
        audio["----:com.apple.iTunes:ISRC"] = [MP4FreeForm(tags.isrc.encode())]
    if tags.lyrics:
        audio["\xa9lyr"] = [tags.lyrics]
    if tags.ai_disclosure:
        audio[f"----:com.apple.iTunes:{AI_DISCLOSURE_TAG}"] = [MP4FreeForm(tags.ai_disclosure.encode())]
    if tags.cover_jpeg:
        audio["covr"] = [MP4Cover(tags.cover_jpeg, imageformat=MP4Cover.FORMAT_JPEG)]
    audio.save()


def read_ai_disclosure(path: Path) -> str | None:
    """The AI_DISCLOSURE tag of a delivered file, whatever its container; None when it has none."""
    if path.suffix in (".mp3", ".wav"):
        id3 = ID3(path) if path.suffix == ".mp3" else cast(ID3, WAVE(path).tags)
        frames = id3.getall(f"TXXX:{AI_DISCLOSURE_TAG}") if id3 is not None else []
        return str(frames[0].text[0]) if frames else None
    if path.suffix in (".flac", ".opus"):
        audio = FLAC(path) if path.suffix == ".flac" else OggOpus(path)
        comments = audio.tags
        values = comments.get(AI_DISCLOSURE_TAG) if comments is not None else None
        return str(values[0]) if values else None
    if path.suffix == ".m4a":
        atoms = MP4(path).tags
        freeform = atoms.get(f"----:com.apple.iTunes:{AI_DISCLOSURE_TAG}") if atoms is not None else None
        return bytes(freeform[0]).decode() if freeform else None
    raise ValueError(f"no tag reader for {path.suffix} files")


def read_sylt(path: Path) -> list[tuple[str, int]]:
    """The synced lyrics (text, milliseconds) of an MP3 or WAV file's SYLT frame (for checks)."""
    frames = ID3(path).getall("SYLT") if path.suffix == ".mp3" else cast(ID3, WAVE(path).tags).getall("SYLT")
    return list(frames[0].text) if frames else []
