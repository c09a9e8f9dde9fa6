"""The downloader against a local HTTP server on 127.0.0.1 and directory mirrors."""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import http.server
import logging
import lzma
import threading
import time
from pathlib import Path

import pytest

from s2s.config import params_from_dict
from s2s.corpora import MULTI30K, DownloadError, RemoteFile, Sources, download, fetch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"
PAYLOAD = gzip.compress("Ein Hund läuft.\nZwei Katzen.\n".encode(), mtime=0)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves ``files`` (path -> bytes); ``failures`` (path -> codes) are answered first.

    A path in ``trickle`` (path -> seconds) sends its body one byte per that many seconds.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.failures: dict[str, list[int]] = {}
        self.trickle: dict[str, float] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                server.requests.append(self.path)
                codes = server.failures.get(self.path)
                if codes:
                    self.send_error(codes.pop(0))
                elif self.path in server.files:
                    body = server.files[self.path]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.send_body(body, server.trickle.get(self.path))
                else:
                    self.send_error(404)

            def send_body(self, body, pause):
                if pause is None:
                    self.wfile.write(body)
                    return
                try:
                    for i in range(len(body)):
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(pause)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


def remote(server: Server) -> RemoteFile:
    return RemoteFile(name="train.de.gz", url=f"{server.url}/canonical/train.de.gz", sha256=SHA)


def leftovers(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.name.endswith(".part")]


def test_canonical_url_success_lands_in_cache(server, tmp_path):
    server.files["/canonical/train.de.gz"] = PAYLOAD
    sources = Sources(cache_dir=tmp_path / "cache", backoff_s=0)
    path = fetch(remote(server), "toy", sources)
    assert path == tmp_path / "cache" / "toy" / "train.de.gz"
    assert path.read_bytes() == PAYLOAD
    assert not leftovers(tmp_path)


def test_checksum_mismatch_is_rejected_and_next_source_tried(server, tmp_path, caplog):
    server.files["/bad/toy/train.de.gz"] = b"corrupted"
    server.files["/good/toy/train.de.gz"] = PAYLOAD
    sources = Sources(tmp_path / "cache", mirrors=(f"{server.url}/bad", f"{server.url}/good"), backoff_s=0)
    with caplog.at_level(logging.WARNING, logger="s2s.corpora"):
        path = fetch(remote(server), "toy", sources)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["/bad/toy/train.de.gz", "/good/toy/train.de.gz"]
    assert not leftovers(tmp_path)
    # the failed mirror is reported even though a later source succeeded
    assert [r.getMessage() for r in caplog.records] == [
        f"fetching toy/train.de.gz: {server.url}/bad/toy/train.de.gz: sha256 mismatch "
        f"(expected {SHA}, got {hashlib.sha256(b'corrupted').hexdigest()})"]


def test_404_then_directory_mirror(server, tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "train.de.gz").write_bytes(PAYLOAD)
    sources = Sources(tmp_path / "cache", mirrors=(f"{server.url}/missing", str(mirror)), backoff_s=0)
    assert fetch(remote(server), "toy", sources).read_bytes() == PAYLOAD
    assert server.requests == ["/missing/toy/train.de.gz"]  # never reached the canonical URL


def test_cache_is_used_the_second_time(server, tmp_path):
    server.files["/canonical/train.de.gz"] = PAYLOAD
    sources = Sources(cache_dir=tmp_path / "cache", backoff_s=0)
    fetch(remote(server), "toy", sources)
    fetch(remote(server), "toy", sources)
    assert server.requests == ["/canonical/train.de.gz"]


def test_corrupt_cache_entry_is_replaced(server, tmp_path):
    server.files["/canonical/train.de.gz"] = PAYLOAD
    cached = tmp_path / "cache" / "toy" / "train.de.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"stale")
    assert fetch(remote(server), "toy", Sources(tmp_path / "cache", backoff_s=0)).read_bytes() == PAYLOAD


def test_transient_server_errors_are_retried(server, tmp_path):
    server.files["/canonical/train.de.gz"] = PAYLOAD
    server.failures["/canonical/train.de.gz"] = [503, 502]
    sources = Sources(tmp_path / "cache", retries=3, backoff_s=0)
    assert fetch(remote(server), "toy", sources).read_bytes() == PAYLOAD
    assert len(server.requests) == 3


def test_every_source_failing_lists_them_and_leaves_nothing(server, tmp_path):
    server.files["/bad/toy/train.de.gz"] = b"corrupted"
    sources = Sources(tmp_path / "cache", mirrors=(f"{server.url}/bad", str(tmp_path / "nomirror")),
                      backoff_s=0)
    with pytest.raises(DownloadError) as info:
        fetch(remote(server), "toy", sources)
    message = str(info.value)
    assert "sha256 mismatch" in message and "no such file" in message and "HTTP 404" in message
    assert "S2S_MIRROR" in message
    assert not any((tmp_path / "cache").rglob("*.gz*"))


def test_sources_from_environment(tmp_path):
    env = {"S2S_CACHE": str(tmp_path), "S2S_MIRROR": "/a http://m/b"}
    assert Sources.from_env(env) == Sources(cache_dir=tmp_path, mirrors=("/a", "http://m/b"))
    assert Sources.from_env({}).cache_dir == Path.home() / ".cache" / "s2s"


def test_download_deadline_from_environment():
    assert Sources.from_env({}).deadline_s == 1800
    assert Sources.from_env({"S2S_DOWNLOAD_DEADLINE": ""}).deadline_s == 1800
    assert Sources.from_env({"S2S_DOWNLOAD_DEADLINE": "90"}).deadline_s == 90
    assert Sources.from_env({"S2S_DOWNLOAD_DEADLINE": " 2.5 "}).deadline_s == 2.5
    for bad in ("abc", "-1", "0", "nan"):
        with pytest.raises(DownloadError, match=rf"S2S_DOWNLOAD_DEADLINE='{bad}' is not a positive "
                                                r"number of seconds; set it to .* or unset it"):
            Sources.from_env({"S2S_DOWNLOAD_DEADLINE": bad})


def test_trickling_server_hits_the_deadline_and_leaves_nothing(server, tmp_path):
    server.files["/canonical/train.de.gz"] = bytes(1000)
    server.trickle["/canonical/train.de.gz"] = 0.2  # 200 s for the whole file
    sources = Sources(tmp_path / "cache", retries=3, backoff_s=0, deadline_s=1)
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        fetch(remote(server), "toy", sources)
    assert time.monotonic() - start < 4
    message = str(info.value)
    assert (f"{server.url}/canonical/train.de.gz: no complete file within the 1 s limit per file "
            "(S2S_DOWNLOAD_DEADLINE); got ") in message
    assert " of 1 kB: a slow or stalled server — raise the limit or use a mirror (S2S_MIRROR)" in message
    assert len(server.requests) == 1  # the retries did not restart the clock
    assert not leftovers(tmp_path) and not any((tmp_path / "cache").rglob("*.gz*"))


def test_source_past_the_deadline_is_skipped_for_the_next(server, tmp_path, caplog):
    server.files["/slow/toy/train.de.gz"] = PAYLOAD
    server.trickle["/slow/toy/train.de.gz"] = 0.2
    server.files["/canonical/train.de.gz"] = PAYLOAD
    sources = Sources(tmp_path / "cache", mirrors=(f"{server.url}/slow",), backoff_s=0, deadline_s=0.5)
    with caplog.at_level(logging.WARNING, logger="s2s.corpora"):
        assert fetch(remote(server), "toy", sources).read_bytes() == PAYLOAD
    assert server.requests == ["/slow/toy/train.de.gz", "/canonical/train.de.gz"]
    assert "within the 0.5 s limit per file" in caplog.records[0].getMessage()
    assert not leftovers(tmp_path)


def test_backoff_does_not_outlast_the_deadline(server, tmp_path):
    server.failures["/canonical/train.de.gz"] = [503] * 10
    sources = Sources(tmp_path / "cache", retries=10, backoff_s=0.4, deadline_s=1)
    start = time.monotonic()
    with pytest.raises(DownloadError, match="HTTP 503"):
        fetch(remote(server), "toy", sources)
    assert time.monotonic() - start < 1
    assert len(server.requests) == 2  # a third try would start after 0.4 + 0.8 s of backoff


def test_download_within_the_deadline_works(server, tmp_path):
    server.files["/canonical/train.de.gz"] = PAYLOAD
    sources = Sources(tmp_path / "cache", backoff_s=0, deadline_s=5)
    assert fetch(remote(server), "toy", sources).read_bytes() == PAYLOAD


def test_custom_corpus_from_url_and_plain_path(server, tmp_path):
    server.files["/mine/train.de.gz"] = PAYLOAD
    plain = tmp_path / "train.en"
    plain.write_text("A dog runs.\nTwo cats.\n", encoding="utf-8")
    files = {split: {"src": f"{server.url}/mine/train.de.gz", "src_sha256": SHA, "tgt": str(plain)}
             for split in ("train", "valid", "test")}
    params = params_from_dict({"data": {"corpus": "custom", "test_sets": ["test"], "files": files}})
    out = tmp_path / "raw"
    download(params.data, out, Sources(tmp_path / "cache", backoff_s=0))
    assert (out / "valid.de").read_text(encoding="utf-8") == "Ein Hund läuft.\nZwei Katzen.\n"
    assert (out / "test.en").read_text(encoding="utf-8") == "A dog runs.\nTwo cats.\n"
    assert not leftovers(tmp_path)


def test_custom_corpus_errors_name_the_param(tmp_path):
    missing = {"src": str(tmp_path / "missing.de"), "tgt": str(tmp_path / "missing.en")}
    params = params_from_dict({"data": {"corpus": "custom", "test_sets": [], "files": {
        "train": missing, "valid": missing}}})
    with pytest.raises(DownloadError, match=r"data\.files\.train\.src: no such file"):
        download(params.data, tmp_path / "raw", Sources(tmp_path / "cache"))
    (tmp_path / "x").write_text("x\n")
    wrong = {"src": str(tmp_path / "x"), "tgt": str(tmp_path / "x"), "tgt_sha256": "0" * 64}
    params = params_from_dict({"data": {"corpus": "custom", "test_sets": [], "files": {
        "train": wrong, "valid": wrong}}})
    with pytest.raises(DownloadError, match=r"data\.files\.train\.tgt: .* does not match its sha256"):
        download(params.data, tmp_path / "raw", Sources(tmp_path / "cache"))


def test_custom_corpus_needs_files_for_every_split(tmp_path):
    params = params_from_dict({"data": {"corpus": "custom", "test_sets": ["test"], "files": {}}})
    with pytest.raises(DownloadError, match=r"data\.files: no files for split 'train'"):
        download(params.data, tmp_path / "raw", Sources(tmp_path / "cache"))


def test_unknown_language_and_split_are_errors(tmp_path):
    with pytest.raises(DownloadError, match=r"data\.src: multi30k has no language 'xx'"):
        download(params_from_dict({"data": {"src": "xx"}}).data, tmp_path, Sources(tmp_path))
    with pytest.raises(DownloadError, match=r"data\.test_sets: multi30k has no split 'test_2099'"):
        download(params_from_dict({"data": {"test_sets": ["test_2099"]}}).data, tmp_path, Sources(tmp_path))


@pytest.mark.skipif(not SHARED.is_dir(), reason="the offline Multi30k mirror is not beside the checkout")
def test_registry_checksums_match_the_published_files():
    for name, digest in MULTI30K.sha256.items():
        assert hashlib.sha256((SHARED / "multi30k" / name).read_bytes()).hexdigest() == digest, name


def test_a_full_disk_while_decompressing_is_not_blamed_on_the_source(tmp_path, monkeypatch):
    import errno
    import gzip as gz

    from s2s import corpora
    source = tmp_path / "train.de.gz"
    source.write_bytes(gz.compress(b"ein hund\n"))

    def full_disk(src, out):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(corpora.shutil, "copyfileobj", full_disk)
    with pytest.raises(OSError) as failure:
        corpora._decompress_to(source, tmp_path / "raw" / "train.de")
    assert failure.value.errno == errno.ENOSPC and failure.value.filename == str(tmp_path / "raw" / "train.de")
    assert not (tmp_path / "raw" / "train.de").exists() and not list((tmp_path / "raw").glob("*.part"))


COMPRESS = {"plain": lambda data: data, "gz": lambda data: gzip.compress(data, mtime=0),
            "xz": lzma.compress, "bz2": bz2.compress}


def custom_params(files: dict):
    return params_from_dict({"data": {"corpus": "custom", "test_sets": ["test"], "files": files}}).data


def raw_files(files: dict, tmp_path: Path, name: str) -> dict[str, bytes]:
    """What the download writes for ``files``: raw file name -> content (no .part left over)."""
    out = tmp_path / name
    download(custom_params(files), out, Sources(tmp_path / "cache"))
    assert not leftovers(tmp_path)
    return {path.name: path.read_bytes() for path in sorted(out.iterdir())}


def write_tsv(path: Path, src: Path, tgt: Path, compress: str) -> str:
    """The lines of ``src`` and ``tgt`` joined by a tab into ``path``, compressed; its path."""
    rows = zip(src.read_bytes().splitlines(keepends=True), tgt.read_bytes().splitlines(keepends=True))
    path.write_bytes(COMPRESS[compress](b"".join(s.rstrip(b"\r\n") + b"\t" + t for s, t in rows)))
    return str(path)


@pytest.mark.parametrize("compress", list(COMPRESS))
def test_tsv_gives_the_raw_files_of_its_src_tgt_pair(tiny_corpus, tmp_path, compress):
    train = tiny_corpus["train"]  # odd lines the pair form keeps as they are: CRLF, invalid UTF-8, no last newline
    for side, odd in (("src", b"ein hund\r\n\xff\xfe\nzwei"), ("tgt", b"a dog\r\n\xc3(\ntwo")):
        Path(train[side]).write_bytes(Path(train[side]).read_bytes() + odd)
    tsv = {split: {"tsv": write_tsv(tmp_path / f"{split}.tsv.{compress}", Path(files["src"]), Path(files["tgt"]),
                                    compress)} for split, files in tiny_corpus.items()}
    by_pair = raw_files(tiny_corpus, tmp_path, "pair")
    assert sorted(by_pair) == ["test.de", "test.en", "train.de", "train.en", "valid.de", "valid.en"]
    assert by_pair["train.de"].endswith(b"ein hund\r\n\xff\xfe\nzwei")
    assert raw_files(tsv, tmp_path, "tsv") == by_pair


def test_tsv_from_a_url_and_its_sha256(server, tiny_corpus, tmp_path):
    files = {split: {"tsv": write_tsv(tmp_path / f"{split}.tsv", Path(f["src"]), Path(f["tgt"]), "xz")}
             for split, f in tiny_corpus.items()}
    served = Path(files["train"]["tsv"]).read_bytes()
    server.files["/mine/train.tsv.xz"] = served
    files["train"] = {"tsv": f"{server.url}/mine/train.tsv.xz", "tsv_sha256": hashlib.sha256(served).hexdigest()}
    assert raw_files(files, tmp_path, "raw") == raw_files(tiny_corpus, tmp_path, "pair")
    assert server.requests == ["/mine/train.tsv.xz"]  # one file for both sides
    files["valid"]["tsv_sha256"] = "0" * 64
    with pytest.raises(DownloadError, match=r"data\.files\.valid\.tsv: .*valid\.tsv does not match its sha256"):
        download(custom_params(files), tmp_path / "raw", Sources(tmp_path / "cache"))


def test_src_and_tgt_as_xz_and_bz2_are_decompressed(tiny_corpus, tmp_path):
    test_en = Path(tiny_corpus["test"]["tgt"])
    test_en.write_bytes(b"BZh9 is text, not bzip2\n" + test_en.read_bytes())
    packed = {}
    for (split, files), (src_kind, tgt_kind) in zip(tiny_corpus.items(), (("xz", "bz2"), ("bz2", "xz"), ("gz", "plain"))):
        packed[split] = {}
        for side, kind in (("src", src_kind), ("tgt", tgt_kind)):
            path = tmp_path / f"{split}.{side}.data"  # told by the first bytes, not the name
            path.write_bytes(COMPRESS[kind](Path(files[side]).read_bytes()))
            packed[split][side] = str(path)
    assert raw_files(packed, tmp_path, "packed") == raw_files(tiny_corpus, tmp_path, "plain")


@pytest.mark.parametrize("row, columns", [(b"ein\thund\tzwei\n", "3 tab-separated columns"),
                                          (b"ein hund\r\n", "1 tab-separated column"),
                                          (b"\n", "1 tab-separated column")])
def test_a_malformed_tsv_row_names_file_and_line_and_writes_nothing(tiny_corpus, tmp_path, row, columns):
    tsv = tmp_path / "train.tsv"
    tsv.write_bytes(b"ein\ta\n\xff\t\xfe\n" + row + b"zwei\ttwo\n")  # bad UTF-8 is clean's business, not this
    files = {**tiny_corpus, "train": {"tsv": str(tsv)}}
    out = tmp_path / "raw"
    with pytest.raises(DownloadError) as info:
        download(custom_params(files), out, Sources(tmp_path / "cache"))
    assert str(info.value) == (f"data.files.train.tsv: {tsv}:3: {columns}, expected 2 (source<TAB>target); "
                               "fix or remove the line")
    assert not out.exists() or not list(out.iterdir())


@pytest.mark.parametrize("compress", ["gz", "xz", "bz2"])
@pytest.mark.parametrize("damage", ["truncated", "garbled", "bad-trailer"])
@pytest.mark.parametrize("form", ["pair", "tsv"])
def test_a_damaged_compressed_file_is_named(tiny_corpus, tmp_path, compress, damage, form):
    train = tiny_corpus["train"]
    bad = tmp_path / f"train.{form}.{compress}"
    if form == "tsv":
        write_tsv(bad, Path(train["src"]), Path(train["tgt"]), compress)
        files = {**tiny_corpus, "train": {"tsv": str(bad)}}
    else:
        bad.write_bytes(COMPRESS[compress](Path(train["src"]).read_bytes()))
        files = {**tiny_corpus, "train": {**train, "src": str(bad)}}
    packed = bytearray(bad.read_bytes())
    if damage == "truncated":
        del packed[len(packed) // 2:]
    elif damage == "garbled":
        packed[len(packed) // 2:len(packed) // 2 + 8] = bytes(8)
    else:  # checksums and sizes, checked once the whole stream is read
        packed[-4:] = bytes(b ^ 0xFF for b in packed[-4:])
    bad.write_bytes(packed)
    unreadable = rf"{bad}: cannot read \(.+\); delete it and download again"
    if form == "tsv" and damage == "garbled":  # garbage may reach the splitter before the decoder notices
        unreadable += rf"|data\.files\.train\.tsv: {bad}:\d+: \d+ tab-separated columns?, expected 2 .*"
    with pytest.raises(DownloadError, match=rf"^({unreadable})$"):
        download(custom_params(files), tmp_path / "raw", Sources(tmp_path / "cache"))
    assert not leftovers(tmp_path) and not (tmp_path / "raw" / "train.de").exists()


def test_a_full_disk_while_splitting_a_tsv_names_the_side_written(tmp_path):
    from s2s import corpora

    class FullDisk:
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError) as failure:
        corpora._NamedWriter(FullDisk(), tmp_path / "train.de").write(b"ein hund\n")
    assert failure.value.errno == errno.ENOSPC and failure.value.filename == str(tmp_path / "train.de")
