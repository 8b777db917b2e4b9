"""Checking a zip file's stored CRCs (torch checkpoints are zip files; torch.load does not check them)."""

import zipfile
from pathlib import Path


def check_zip_crcs(path, what: str = "file") -> None:
    """Raise ValueError naming ``path`` and the member when a stored CRC does not match its data.
    A file that is not a zip archive (an old-format torch file) is left to its reader."""
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ValueError(f"{what} {path} is a damaged zip archive: {err}") from None
    if bad is not None:
        raise ValueError(f"{what} {path} is damaged: member {bad!r} does not match its stored CRC "
                         "(a flipped byte or a bad copy); restore the file")
