"""The data manifest (rlinterp.pipeline.manifest): hashing, registration, verification and atomic writes.

Every test works in a temporary ``data/`` folder; the shipped data is checked in test_pipeline.py.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import stat
from pathlib import Path

import pytest

from rlinterp.pipeline import manifest as mf
from rlinterp.pipeline.manifest import DataError

MiB = 1 << 20


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


def write(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


# ---------------------------------------------------------------------------------------------------- hashing
@pytest.mark.parametrize("size", [0, 1, MiB - 1, MiB, MiB + 1, 3 * MiB + 17])
def test_sha256_file_hashes_the_whole_file(tmp_path, size):
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = write(tmp_path / "f.bin", payload)
    assert mf.sha256_file(path) == hashlib.sha256(payload).hexdigest()


def test_files_differing_only_after_the_first_mib_have_different_hashes(tmp_path):
    """A corrupt tail (a truncated download, a flipped last byte) must be noticed, not only the first chunk."""
    head = os.urandom(MiB) * 2
    a = write(tmp_path / "a.bin", head + b"\x00")
    b = write(tmp_path / "b.bin", head + b"\x01")
    c = write(tmp_path / "c.bin", head)  # truncated by one byte
    assert len({mf.sha256_file(a), mf.sha256_file(b), mf.sha256_file(c)}) == 3


# ---------------------------------------------------------------------------------------------------- reading
def test_read_manifest_missing_and_invalid(data):
    assert mf.read_manifest(data) == {}
    (data / "MANIFEST.json").write_text('{"a.bin": {"sha256": ')
    with pytest.raises(DataError, match=r"MANIFEST.json is not valid JSON.*git checkout -- MANIFEST.json"):
        mf.read_manifest(data)


def test_invalid_manifest_is_a_data_error_everywhere(data):
    """Every entry point reports a broken manifest as the pipeline's DataError (which `rli` turns into a message)."""
    write(data / "a.bin", b"abc")
    (data / "MANIFEST.json").write_text("not json\n")
    for call in [lambda: mf.data_path("a.bin", data_dir=data), lambda: mf.register("a.bin", "make a", data_dir=data),
                 lambda: mf.verify_all(data), lambda: mf.unknown_files(data)]:
        with pytest.raises(DataError, match="not valid JSON"):
            call()
    assert (data / "MANIFEST.json").read_text() == "not json\n"  # left as it was


# ---------------------------------------------------------------------------------------------------- register
def test_register_records_hash_size_command_metrics_and_date(data):
    payload = b"x" * 1000
    write(data / "sub/a.bin", payload)
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    entry = mf.register("sub/a.bin", "rli data rebuild a --save", {"score": 0.5, "n": 3}, data_dir=data)
    after = dt.datetime.now(dt.timezone.utc)
    assert mf.read_manifest(data) == {"sub/a.bin": entry}
    assert entry["sha256"] == hashlib.sha256(payload).hexdigest() and entry["size"] == 1000
    assert entry["command"] == "rli data rebuild a --save" and entry["metrics"] == {"score": 0.5, "n": 3}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["created"])
    created = dt.datetime.strptime(entry["created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    assert before <= created <= after
    assert mf.register("sub/a.bin", "make a", data_dir=data)["metrics"] == {}  # no metrics: an empty dict


def test_register_keeps_every_other_entry(data):
    for name in ["a.bin", "b/c.bin", "z.bin"]:
        write(data / name, name.encode())
        mf.register(name, f"make {name}", {"v": name}, data_dir=data)
    old = mf.read_manifest(data)
    assert set(old) == {"a.bin", "b/c.bin", "z.bin"}
    write(data / "b/c.bin", b"new content")
    new_entry = mf.register("b/c.bin", "make c again", data_dir=data)
    now = mf.read_manifest(data)
    assert now == {**old, "b/c.bin": new_entry}  # the others untouched, byte for byte
    assert new_entry["sha256"] == hashlib.sha256(b"new content").hexdigest() and new_entry["size"] == 11


def test_manifest_file_is_stable_for_git(data):
    """Sorted keys, two-space indent and a final newline: re-registering gives a small, reviewable diff."""
    for name in ["z.bin", "a.bin"]:
        write(data / name, b"1")
        mf.register(name, "make", data_dir=data)
    text = (data / "MANIFEST.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert text.index('"a.bin"') < text.index('"z.bin"')


def test_register_refuses_a_missing_file(data):
    with pytest.raises(DataError, match=r"cannot register .*nope.bin: the file does not exist"):
        mf.register("nope.bin", "make", data_dir=data)
    assert not (data / "MANIFEST.json").exists()


# ---------------------------------------------------------------------------------------------------- atomicity
def test_atomic_write_creates_folders_and_replaces(tmp_path):
    target = tmp_path / "a/b/c.bin"
    mf.atomic_write_bytes(target, b"one")
    assert target.read_bytes() == b"one"
    mf.atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two" and sorted(p.name for p in target.parent.iterdir()) == ["c.bin"]


@pytest.mark.parametrize("umask, mode", [(0o027, 0o640), (0o002, 0o664), (0o022, 0o644)])
def test_atomic_write_gives_the_permissions_open_would(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        mf.atomic_write_bytes(tmp_path / "f.bin", b"x")
        assert os.umask(umask) == umask  # the process umask is left as it was
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == mode


def test_atomic_write_renames_within_the_target_folder(tmp_path, monkeypatch):
    """The temp file lives next to the target (a rename across file systems would not be atomic)."""
    seen = []
    real = os.replace
    monkeypatch.setattr(mf.os, "replace", lambda src, dst: (seen.append((Path(src), Path(dst))), real(src, dst)))
    mf.atomic_write_bytes(tmp_path / "d/f.bin", b"x")
    [(src, dst)] = seen
    assert src.parent == dst.parent == tmp_path / "d" and src != dst
    assert re.fullmatch(r"\.f\.bin\..+\.tmp", src.name)  # a hidden .tmp file, which unknown_files() reports


@pytest.mark.parametrize("fail_at", ["write", "replace"])
def test_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch, fail_at):
    target = write(tmp_path / "d/f.bin", b"old content")

    class Boom(RuntimeError):
        pass

    def boom(*args, **kwargs):
        raise Boom("disk full")

    if fail_at == "replace":
        monkeypatch.setattr(mf.os, "replace", boom)
        payload = b"new content"
    else:
        payload = memoryview(b"")  # writing it works; make the write itself fail instead
        real_fdopen = os.fdopen

        def fdopen(fd, mode):
            f = real_fdopen(fd, mode)
            f.write = boom
            return f

        monkeypatch.setattr(mf.os, "fdopen", fdopen)
    with pytest.raises(Boom):
        mf.atomic_write_bytes(target, payload)
    assert target.read_bytes() == b"old content"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin"]


def test_failed_manifest_write_keeps_the_old_manifest(data, monkeypatch):
    write(data / "a.bin", b"a")
    mf.register("a.bin", "make a", data_dir=data)
    before = (data / "MANIFEST.json").read_bytes()
    write(data / "b.bin", b"b")
    monkeypatch.setattr(mf.os, "replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # even an interrupt (BaseException) cleans up
        mf.register("b.bin", "make b", data_dir=data)
    assert (data / "MANIFEST.json").read_bytes() == before
    assert mf.unknown_files(data) == ["b.bin"]  # no stray temp file


# ---------------------------------------------------------------------------------------------------- verification
def test_data_path_verifies_and_names_the_rebuild_command(data):
    write(data / "m.pt", b"weights")
    mf.register("m.pt", "rli data rebuild m --save", data_dir=data)
    assert mf.data_path("m.pt", data_dir=data) == data / "m.pt"
    write(data / "m.pt", b"weightz")
    with pytest.raises(DataError) as err:
        mf.data_path("m.pt", data_dir=data)
    msg = str(err.value)
    good, bad = hashlib.sha256(b"weights").hexdigest(), hashlib.sha256(b"weightz").hexdigest()
    assert f"sha256 {bad[:12]}… does not match the manifest's {good[:12]}…" in msg
    assert "rebuild it with `rli data rebuild m --save`" in msg and "git checkout -- data/m.pt" in msg
    with pytest.raises(DataError, match="rebuild it with `other cmd`"):  # the caller's command wins
        mf.data_path("m.pt", data_dir=data, command="other cmd")
    (data / "m.pt").unlink()
    with pytest.raises(DataError, match=r"data/m.pt is missing; rebuild it with `rli data rebuild m --save`"):
        mf.data_path("m.pt", data_dir=data)


def test_unregistered_file_error_names_the_command(data):
    write(data / "x.bin", b"x")
    with pytest.raises(DataError, match=r"data/x.bin is not in data/MANIFEST.json; build and register it with `mk x`"):
        mf.data_path("x.bin", data_dir=data, command="mk x")
    with pytest.raises(DataError, match=r"register it with the command of the artifact that owns it"):
        mf.data_path("x.bin", data_dir=data)


def test_verify_all_lists_each_problem(data):
    for name in ["a.bin", "b.bin", "c.bin"]:
        write(data / name, name.encode())
        mf.register(name, f"make {name}", data_dir=data)
    assert mf.verify_all(data) == []
    write(data / "a.bin", b"changed")
    (data / "c.bin").unlink()
    problems = mf.verify_all(data)
    assert len(problems) == 2
    assert "data/a.bin is corrupt" in problems[0] and "data/c.bin is missing" in problems[1]


def test_unknown_files(data):
    write(data / "a.bin", b"a")
    mf.register("a.bin", "make a", data_dir=data)
    assert mf.unknown_files(data) == []
    write(data / "sub/new.pt", b"n")
    write(data / ".a.bin.123.tmp", b"t")
    assert mf.unknown_files(data) == [".a.bin.123.tmp", "sub/new.pt"]


def test_set_command_changes_only_the_command(data):
    write(data / "a.bin", b"a")
    entry = mf.register("a.bin", "old", {"m": 1}, data_dir=data)
    write(data / "b.bin", b"b")
    other = mf.register("b.bin", "make b", data_dir=data)
    assert mf.set_command("a.bin", "new", data_dir=data) == dict(entry, command="new")
    assert mf.read_manifest(data) == {"a.bin": dict(entry, command="new"), "b.bin": other}
    write(data / "a.bin", b"changed")
    with pytest.raises(DataError, match="corrupt"):  # a changed file needs register (which rehashes)
        mf.set_command("a.bin", "newer", data_dir=data)
    assert mf.read_manifest(data)["a.bin"]["command"] == "new"


# ---------------------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_and_refusals(data):
    torch = pytest.importorskip("torch")
    np = pytest.importorskip("numpy")
    path = mf.save_checkpoint({"w": torch.ones(3), "n": 2}, "c/m.pt", "make m", {"acc": 0.9}, data_dir=data)
    assert path == data / "c/m.pt"
    entry = mf.read_manifest(data)["c/m.pt"]
    assert entry["metrics"] == {"acc": 0.9} and entry["command"] == "make m"
    assert entry["sha256"] == mf.sha256_file(path) and entry["size"] == path.stat().st_size
    loaded = mf.load_checkpoint("c/m.pt", data_dir=data)
    assert loaded["n"] == 2 and torch.equal(loaded["w"], torch.ones(3))
    with pytest.raises(DataError) as err:
        mf.save_checkpoint({"x": np.float64(1.0)}, "c/bad.pt", "make bad", data_dir=data)
    msg = str(err.value)  # names the file and the offending global (torch's line), not torch's whole essay
    assert msg.startswith("refusing to save data/c/bad.pt: it would not load with torch.load(weights_only=True) "
                          "(WeightsUnpickler error: Unsupported global: GLOBAL numpy")
    assert "Weights only load failed" not in msg and msg.endswith("(e.g. float(x) for numpy scalars)")
    assert not (data / "c/bad.pt").exists() and "c/bad.pt" not in mf.read_manifest(data)
    # a file whose hash matches but which torch cannot read is still a clear error with the rebuild command
    write(data / "c/junk.pt", b"not a checkpoint")
    mf.register("c/junk.pt", "make junk", data_dir=data)
    with pytest.raises(DataError, match=r"(?s)data/c/junk.pt could not be loaded .*rebuild it with `make junk`"):
        mf.load_checkpoint("c/junk.pt", data_dir=data)
