"""Reading model files from disk with limits: size, a regular file, a bundle's artifact beside it."""

from __future__ import annotations

from pathlib import Path, PurePath

from coinfleet.errors import ModelLoadError
from coinfleet.models.formats import SUFFIXES

#: suffixes of pickled models (joblib writes pickles too); loaded only when trusted
PICKLE_SUFFIXES: tuple[str, ...] = (".pkl", ".pickle", ".joblib", ".sav")
#: what a pickle of protocol 2 or later starts with
_PICKLE_MAGIC = b"\x80"
#: a model file no larger than this many MB unless told otherwise
DEFAULT_MAX_MB = 512


def read_limited(
    path: Path, max_bytes: int = DEFAULT_MAX_MB * 2**20, *, hint: str = "COINFLEET_MODEL_MAX_MB raises it"
) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; ModelLoadError otherwise (never reads more).
    `hint` says what to do about a file over the limit."""
    if not path.is_file():
        raise ModelLoadError(f"{path} is not a regular file (a device, folder or missing file is refused)")
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    if len(data) > max_bytes:
        raise ModelLoadError(f"{path} is larger than the limit of {max_bytes / 2**20:g} MB ({hint})")
    return data


def artifact_beside(meta_path: Path, name: str) -> Path:
    """The artifact a bundle names: a plain file name in the bundle's own folder, and nowhere else."""
    plain = PurePath(name)
    if not name or plain.name != name or name in (".", "..") or "\\" in name:
        raise ModelLoadError(
            f"bundle {meta_path} names artifact {name!r}; it must be a file name beside the bundle "
            "(give another location explicitly with --artifact)"
        )
    candidate = meta_path.parent / name
    if candidate.resolve().parent != meta_path.resolve().parent:
        raise ModelLoadError(f"artifact {name!r} of bundle {meta_path} links outside the bundle's folder")
    return candidate


def detect_file_format(filename: str, data: bytes) -> str:
    """A model file's format: a pickle by its first byte or suffix, the others by suffix."""
    suffix = PurePath(filename).suffix.lower()
    if data[:1] == _PICKLE_MAGIC or suffix in PICKLE_SUFFIXES:
        return "pickle"
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    known = ", ".join([*SUFFIXES, *PICKLE_SUFFIXES])
    raise ModelLoadError(f"cannot tell the format of {filename!r}; give --format or use a suffix: {known}")
