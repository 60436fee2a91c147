"""Release: encode (the per-track `export` stage), tag, artwork, identifiers, DDEX, deliver.

encode.py    master → WAV/FLAC/MP3/M4A/Opus per profile, preview clips, lossy peak check
tags.py      ID3v2.4, Vorbis comments, MP4 atoms; synced lyrics (SYLT, .lrc)
artwork.py   a generated 3000×3000 cover, or a provided one validated and converted
ddex.py      the ERN 4.3.2 NewReleaseMessage, validated against the schema
deliver.py   a verified folder with a checksum manifest, swapped in atomically (or to S3)
package.py   the release-level steps: identifiers, tags, art, DDEX, delivery, catalogue
"""
