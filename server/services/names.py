"""The rules that turn a client's file name into a safe name inside /mnt/data."""

from __future__ import annotations

import unicodedata

from server.errors import InvalidRequest

MAX_NAME_BYTES = 255
DEFAULT_NAME = "upload"


def safe_name(raw: str | None, param: str = "file") -> str:
    """A single path component for a file the client names; refuse what cannot be made safe.

    - no name at all becomes "upload";
    - a NUL byte is refused;
    - the name is NFC-normalised, backslashes count as slashes and only the last path
      component is kept, so "../../etc/passwd" and "/abs/x.csv" become "passwd" and "x.csv";
    - control characters are dropped and surrounding white space trimmed;
    - what is left must be non-empty, not only dots, and at most 255 bytes in UTF-8.
    """
    if raw is None:
        return DEFAULT_NAME
    if "\0" in raw:
        raise InvalidRequest("The file name contains a NUL byte.", param)
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if not name:
        raise InvalidRequest(
            f"The file name {raw!r} is empty once its folders are removed; send a plain name.",
            param,
        )
    if set(name) == {"."}:
        raise InvalidRequest(f"The file name {raw!r} cannot be only dots.", param)
    if len(name.encode()) > MAX_NAME_BYTES:
        raise InvalidRequest(f"The file name is longer than {MAX_NAME_BYTES} bytes.", param)
    return name
