"""Corpus registry and the downloader.

Every file is looked up, in order, in the local cache (``S2S_CACHE``, default
``~/.cache/s2s``), in each mirror of ``S2S_MIRROR`` (directories or URL
prefixes separated by spaces or commas; a file lives at
``<mirror>/<corpus>/<file>``), then at its canonical URL; a source that
fails is logged as a warning and the next one tried. The sha256 is checked
whatever the source, for every file that has one (all registered corpora;
custom files when their params give it). Downloads go to a ``.part`` file
that is renamed only once complete and verified; the raw text lands in
``data/raw/<corpus>/<split>.<lang>``, decompressed (gzip, xz or bzip2, told by
the first bytes); a custom TSV file (``source<TAB>target`` lines) is split,
as it streams, into both languages' files. A download from one source gets
``S2S_DOWNLOAD_DEADLINE`` seconds (default 1800), all its retries together; a
slower one is abandoned like any other failed source.
"""

from __future__ import annotations

import bz2
import contextlib
import dataclasses
import gzip
import hashlib
import http.client
import logging
import lzma
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Optional

from tqdm import tqdm

from s2s.atomic import atomic_path
from s2s.config import DataConfig
from s2s.errors import S2SError

log = logging.getLogger(__name__)


class DownloadError(S2SError):
    """Every source of a file failed, or a corpus/language/split does not exist."""


class _DeadlinePassed(Exception):
    """A download ran past ``Sources.deadline_s``; its message is the reason reported."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a corpus: its name in the cache/mirrors, canonical URL and checksum."""

    name: str
    url: str
    sha256: Optional[str]


@dataclass(frozen=True)
class Corpus:
    """A registered parallel corpus: languages, and split name -> file stem."""

    name: str
    base_url: str
    languages: tuple[str, ...]
    splits: dict[str, str]
    sha256: dict[str, str]

    def file(self, split: str, lang: str) -> RemoteFile:
        """The gz file holding ``split`` in language ``lang``."""
        name = f"{self.splits[split]}.{lang}.gz"
        return RemoteFile(name=name, url=f"{self.base_url}/{name}", sha256=self.sha256[name])


MULTI30K = Corpus(
    name="multi30k",
    base_url="https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw",
    languages=("en", "de", "fr", "cs"),
    splits={"train": "train", "valid": "val", "test_2016_flickr": "test_2016_flickr"},
    sha256={
        "test_2016_flickr.cs.gz": "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1",
        "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
        "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
        "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
        "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
        "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
        "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
        "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
        "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
        "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
        "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
        "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    },
)

REGISTRY: dict[str, Corpus] = {MULTI30K.name: MULTI30K}
CUSTOM = "custom"
DEADLINE_VAR = "S2S_DOWNLOAD_DEADLINE"
DEFAULT_DEADLINE_S = 1800.0
READ_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Sources:
    """Where files are looked for before their own URL: the cache, then the mirrors."""

    cache_dir: Path
    mirrors: tuple[str, ...] = ()
    retries: int = 3
    backoff_s: float = 1.0
    deadline_s: float = DEFAULT_DEADLINE_S  # per file and source, all retries together

    @classmethod
    def from_env(cls, env: Optional[dict] = None) -> "Sources":
        env = os.environ if env is None else env
        cache = Path(env.get("S2S_CACHE") or Path.home() / ".cache" / "s2s")
        mirrors = tuple((env.get("S2S_MIRROR") or "").replace(",", " ").split())
        return cls(cache_dir=cache, mirrors=mirrors, deadline_s=_deadline_from(env))


def _deadline_from(env) -> float:
    """``S2S_DOWNLOAD_DEADLINE`` in seconds (unset or empty: the default; ``inf``: no limit)."""
    text = env.get(DEADLINE_VAR) or ""
    if not text.strip():
        return DEFAULT_DEADLINE_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:  # also rejects nan
        raise DownloadError(
            f"{DEADLINE_VAR}={text!r} is not a positive number of seconds; set it to the time "
            f"limit per downloaded file (e.g. {DEADLINE_VAR}={DEFAULT_DEADLINE_S:g}) or unset it "
            f"for the default of {DEFAULT_DEADLINE_S:g} s")
    return value


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_url(location: str) -> bool:
    return location.split("://", 1)[0] in ("http", "https", "file") and "://" in location


def fetch(remote: RemoteFile, corpus: str, sources: Sources) -> Path:
    """Return a verified local copy of ``remote``, fetching it into the cache if needed.

    Raises :class:`DownloadError` listing every source tried and why it failed.
    """
    cached = sources.cache_dir / corpus / remote.name
    failures: list[str] = []

    def failed(reason: str) -> None:
        failures.append(reason)
        log.warning("fetching %s/%s: %s", corpus, remote.name, reason)

    if cached.exists():
        if remote.sha256 is None or sha256_of(cached) == remote.sha256:
            return cached
        failed(f"cache {cached}: sha256 mismatch, discarded")
        cached.unlink()
    candidates = [f"{m.rstrip('/')}/{corpus}/{remote.name}" for m in sources.mirrors] + [remote.url]
    for location in candidates:
        try:
            _copy_to(location, cached, sources)
        except (OSError, urllib.error.URLError, http.client.HTTPException, _DeadlinePassed) as err:
            failed(f"{location}: {_reason(err)}")
            continue
        actual = sha256_of(cached)
        if remote.sha256 is not None and actual != remote.sha256:
            cached.unlink()
            failed(f"{location}: sha256 mismatch (expected {remote.sha256}, got {actual})")
            continue
        return cached
    tried = "\n  ".join(failures)
    raise DownloadError(
        f"could not fetch {corpus}/{remote.name}; sources tried:\n  {tried}\n"
        f"Without internet, point S2S_MIRROR at a directory holding {corpus}/{remote.name} "
        f"(e.g. S2S_MIRROR=../shared/corpora) or put the file in {sources.cache_dir / corpus}/.")


def _reason(err: BaseException) -> str:
    if isinstance(err, _DeadlinePassed):
        return str(err)
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return f"unreachable ({err.reason})"
    return f"{type(err).__name__}: {err}"


def _copy_to(location: str, target: Path, sources: Sources) -> None:
    """Copy a local path or URL to ``target`` through ``target.part`` (renamed when complete)."""
    if not _is_url(location) and not Path(location).is_file():  # before the .part: not target's error
        raise FileNotFoundError(f"no such file {location}")
    with atomic_path(target) as part:
        if _is_url(location):
            _download(location, part, sources)
        else:
            shutil.copyfile(location, part)


@dataclass
class _Progress:
    """Bytes received by the latest attempt of a download, and the size announced."""

    got: int = 0
    total: Optional[int] = None


def _download(url: str, part: Path, sources: Sources) -> None:
    """Download ``url`` into ``part``; retry transient failures with exponential backoff.

    All attempts together get ``sources.deadline_s``: each read waits at most
    min(30 s, time left), the clock is checked after every block, and a retry
    whose backoff would outlast the limit is not made. Passing the limit
    raises :class:`_DeadlinePassed`.
    """
    deadline = time.monotonic() + sources.deadline_s
    progress = _Progress()
    for attempt in range(sources.retries):
        try:
            _download_once(url, part, deadline, progress)
            return
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:  # TimeoutError too
            if not _transient(err):
                raise
            if time.monotonic() >= deadline:
                raise _DeadlinePassed(_too_slow(sources.deadline_s, progress)) from err
            delay = sources.backoff_s * 2 ** attempt
            if attempt == sources.retries - 1 or time.monotonic() + delay >= deadline:
                raise
        time.sleep(delay)


def _transient(err: BaseException) -> bool:
    """Whether ``err`` is worth another try: anything but an HTTP error below 500."""
    return not isinstance(err, urllib.error.HTTPError) or err.code >= 500


def _download_once(url: str, part: Path, deadline: float, progress: _Progress) -> None:
    """One attempt of :func:`_download`; a ``TimeoutError`` once ``deadline`` (monotonic) passes."""
    with urllib.request.urlopen(url, timeout=_read_timeout(deadline)) as response, open(part, "wb") as out:
        progress.got, progress.total = 0, int(response.headers.get("Content-Length") or 0) or None
        read = getattr(response, "read1", response.read)  # read1: what has arrived, not a full block
        with tqdm(total=progress.total, unit="B", unit_scale=True, desc=Path(url).name,
                  disable=None, file=sys.stderr, leave=False) as bar:
            while True:
                _set_read_timeout(response, _read_timeout(deadline))
                block = read(1 << 16)
                if not block:
                    break
                out.write(block)
                bar.update(len(block))
                progress.got += len(block)
                if time.monotonic() >= deadline:
                    raise TimeoutError("download deadline passed")
    if progress.total is not None and progress.got != progress.total:
        raise OSError(f"truncated download ({progress.got} of {progress.total} bytes)")


def _read_timeout(deadline: float) -> float:
    """How long one read may wait: 30 s, or less when the deadline is nearer (never 0: non-blocking)."""
    return max(min(READ_TIMEOUT_S, deadline - time.monotonic()), 0.01)


def _set_read_timeout(response, seconds: float) -> None:
    """Set the socket timeout of an HTTP ``response`` (a no-op for file:// responses).

    http.client has no public way to change it after ``urlopen``; the socket is
    reached through the buffered reader it reads from.
    """
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def _too_slow(deadline_s: float, progress: _Progress) -> str:
    """The reason reported for a source abandoned at the deadline."""
    of = f" of {_size(progress.total)}" if progress.total else ""
    return (f"no complete file within the {deadline_s:g} s limit per file ({DEADLINE_VAR}); "
            f"got {_size(progress.got)}{of}: a slow or stalled server — raise the limit or "
            "use a mirror (S2S_MIRROR)")


def _size(n: int) -> str:
    """``n`` bytes for people: 950 B, 1.2 MB, 40 MB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} B"


def _custom_remote(location: str, sha256: Optional[str]) -> RemoteFile:
    key = hashlib.sha256(location.encode()).hexdigest()[:16]
    return RemoteFile(name=f"{key}-{Path(location).name}", url=location, sha256=sha256)


def _resolve_custom(location: str, sha256: Optional[str], sources: Sources, what: str) -> Path:
    if not _is_url(location):
        path = Path(location)
        if not path.is_file():
            raise DownloadError(f"data.files.{what}: no such file {location}; fix the path in params.yaml")
        if sha256 is not None and sha256_of(path) != sha256:
            raise DownloadError(f"data.files.{what}: {location} does not match its sha256; "
                                "fix the file or the checksum in params.yaml")
        return path
    remote = _custom_remote(location, sha256)
    if sha256 is None:  # nothing to verify a cached copy against: always fetch anew
        (sources.cache_dir / CUSTOM / remote.name).unlink(missing_ok=True)
    return fetch(remote, CUSTOM, dataclasses.replace(sources, mirrors=()))


def splits_of(data: DataConfig) -> list[str]:
    """The splits the pipeline uses: train, valid, then each test set."""
    return ["train", "valid", *data.test_sets]


@dataclass(frozen=True)
class _Job:
    """One file to fetch, and the raw file ``<split>.<lang>`` of each language it holds.

    One language for a file per side; both, source first, for a TSV file.
    """

    split: str
    langs: tuple[str, ...]
    fetch: Callable[[], Path]
    tsv_name: str = ""  # a TSV file's name in its errors: its param and location

    def write(self, source: Path, out_dir: Path) -> list[Path]:
        """Write the fetched ``source`` decompressed (and split, for a TSV file) into ``out_dir``."""
        targets = [out_dir / f"{self.split}.{lang}" for lang in self.langs]
        if self.tsv_name:
            _split_tsv_to(source, targets[0], targets[1], self.tsv_name)
        else:
            _decompress_to(source, targets[0])
        return targets


def _custom_jobs(data: DataConfig, sources: Sources) -> Iterable[_Job]:
    """The jobs of a custom corpus: per split, one TSV file or a file per side."""
    for split in splits_of(data):
        if split not in data.files:
            raise DownloadError(f"data.files: no files for split '{split}'; add data.files.{split}.src "
                                "and .tgt (or .tsv) to params.yaml")
        files = data.files[split]
        if files.tsv:
            yield _Job(split, (data.src, data.tgt), lambda f=files, s=split: _resolve_custom(
                f.tsv, f.tsv_sha256, sources, f"{s}.tsv"), tsv_name=f"data.files.{split}.tsv: {files.tsv}")
            continue
        yield _Job(split, (data.src,), lambda f=files, s=split: _resolve_custom(
            f.src, f.src_sha256, sources, f"{s}.src"))
        yield _Job(split, (data.tgt,), lambda f=files, s=split: _resolve_custom(
            f.tgt, f.tgt_sha256, sources, f"{s}.tgt"))


def _plan(data: DataConfig, sources: Sources) -> Iterable[_Job]:
    """Yield a job for every file the params ask for."""
    if data.corpus == CUSTOM:
        yield from _custom_jobs(data, sources)
        return
    if data.corpus not in REGISTRY:
        raise DownloadError(f"data.corpus: unknown corpus '{data.corpus}'; known: "
                            f"{', '.join([*REGISTRY, CUSTOM])}")
    corpus = REGISTRY[data.corpus]
    for lang, key in ((data.src, "src"), (data.tgt, "tgt")):
        if lang not in corpus.languages:
            raise DownloadError(f"data.{key}: {corpus.name} has no language '{lang}'; "
                                f"choose one of {', '.join(corpus.languages)}")
    for split in splits_of(data):
        if split not in corpus.splits:
            raise DownloadError(f"data.test_sets: {corpus.name} has no split '{split}'; "
                                f"known: {', '.join(s for s in corpus.splits if s != 'train')}")
        for lang in (data.src, data.tgt):
            yield _Job(split, (lang,), lambda s=split, la=lang: fetch(corpus.file(s, la), corpus.name, sources))


def download(data: DataConfig, out_dir: Path, sources: Sources) -> list[Path]:
    """Fetch every split of ``data`` and write it decompressed to ``out_dir/<split>.<lang>``."""
    plan = list(_plan(data, sources))  # every params error before the first download
    written = []
    for job in plan:
        written += job.write(job.fetch(), out_dir)
    return written


# The first bytes of each compressed format; bzip2's header is text ("BZh9"), so its first block's magic too.
_MAGIC: tuple[tuple[re.Pattern[bytes], Callable[..., BinaryIO]], ...] = (
    (re.compile(rb"\x1f\x8b"), gzip.open),
    (re.compile(rb"\xfd7zXZ\x00"), lzma.open),
    (re.compile(rb"BZh[1-9](1AY&SY|\x17rE8P\x90)"), bz2.open),  # a block, or the end of an empty stream
)


def _open_decompressed(source: Path) -> BinaryIO:
    """``source`` opened for reading bytes, decompressed when its first bytes say gzip, xz or bzip2."""
    with open(source, "rb") as probe:
        head = probe.read(10)
    opener = next((opener for magic, opener in _MAGIC if magic.match(head)), open)
    return opener(source, "rb")


@contextlib.contextmanager
def _reading(source: Path) -> Iterator[None]:
    """Turn an unreadable ``source`` (truncated, corrupt) into a :class:`DownloadError` naming it.

    An ``OSError`` that names a file (writing a target: disk full, ...) is not the source's and passes.
    """
    try:
        yield
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as err:
        if isinstance(err, OSError) and err.filename is not None:
            raise
        raise DownloadError(f"{source}: cannot read ({err or type(err).__name__}); "
                            "delete it and download again") from None


def _decompress_to(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` (through a .part file), decompressing it if it is compressed."""
    target.parent.mkdir(parents=True, exist_ok=True)  # outside _reading: its errors are not the source's
    with _reading(source), atomic_path(target) as part, _open_decompressed(source) as src, \
            open(part, "wb") as out:
        shutil.copyfileobj(src, out)


def _split_tsv_to(source: Path, src_target: Path, tgt_target: Path, name: str) -> None:
    """Write the columns of TSV file ``source`` (decompressed) to ``src_target`` and ``tgt_target``.

    Line by line, each through a .part file: a malformed row (``name`` in its
    error) leaves neither. The bytes are copied as they are, the row's line
    ending after each side.
    """
    with _reading(source), _open_decompressed(source) as rows, _output(src_target) as src_out, \
            _output(tgt_target) as tgt_out:
        for number, row in enumerate(rows, start=1):
            src_side, tgt_side = _columns(row, name, number)
            src_out.write(src_side)
            tgt_out.write(tgt_side)


class _NamedWriter:
    """An open binary file whose write errors (disk full, ...) name ``path``, the file it becomes."""

    def __init__(self, handle: BinaryIO, path: Path):
        self._handle, self._path = handle, path

    def write(self, data: bytes) -> None:
        try:
            self._handle.write(data)
        except OSError as err:
            if err.filename is not None:
                raise
            raise OSError(err.errno, err.strerror, str(self._path)) from err


@contextlib.contextmanager
def _output(path: Path) -> Iterator[_NamedWriter]:
    """A writer to ``path`` through ``path.part``, renamed when the block succeeds (see ``atomic_path``)."""
    with atomic_path(path) as part, open(part, "wb") as handle:
        yield _NamedWriter(handle, path)


def _columns(row: bytes, name: str, number: int) -> tuple[bytes, bytes]:
    """The source and target side of TSV line ``number``, each followed by the line's ending."""
    text = row.rstrip(b"\r\n")
    ending = row[len(text):]
    columns = text.split(b"\t")
    if len(columns) != 2:
        count = f"{len(columns)} tab-separated column{'s' if len(columns) > 1 else ''}"
        raise DownloadError(f"{name}:{number}: {count}, expected 2 (source<TAB>target); "
                            "fix or remove the line")
    return columns[0] + ending, columns[1] + ending
