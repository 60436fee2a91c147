"""The one error type users see.

Every failure a user can cause or fix (a bad config, a missing file, a dead service) is a
`SongmillError` whose message is one sentence naming the file, field or service and what to
do. The CLI prints it without a traceback. Bugs stay ordinary exceptions.
"""


class SongmillError(Exception):
    """A problem the user can fix; `str(err)` is the sentence to show them."""


class ConfigError(SongmillError):
    """A release, profile or registry file is invalid.

    `problems` holds one line per problem, formatted `file:line: field.path: what is wrong`.
    """

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class InputError(SongmillError):
    """An argument a command was given that it cannot use (a track the release does not have, an
    output folder that is a file): exit 2, as for an invalid config, not 1 (a render that failed)."""


class ServiceError(SongmillError):
    """A service (database, object store) cannot be reached or refused the request."""


class AudioInputError(SongmillError):
    """An audio file cannot be read at all (missing, empty, not audio, truncated) — the caller's
    input is wrong, not a track that failed a check."""


def tracks_it_has(count: int) -> str:
    """How a message says which track numbers a release has: "it has one track", "it has tracks 1–3"."""
    return "it has one track" if count == 1 else f"it has tracks 1–{count}"
