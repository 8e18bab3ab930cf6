"""The one atomic-write helper: all or nothing, no temporary file left behind."""

import pytest

from ssl_toolkit.atomic import atomic_write, atomic_write_text


def test_writes_through_the_callback_and_creates_parent_folders(tmp_path):
    path = tmp_path / "a" / "b" / "out.bin"
    assert atomic_write(path, lambda f: f.write(b"\x00\x01payload")) == path
    assert path.read_bytes() == b"\x00\x01payload"
    assert [p.name for p in path.parent.iterdir()] == ["out.bin"]


def test_a_failing_writer_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "out.json"
    atomic_write_text(path, '{"old": 1}')

    def disk_full(f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    def interrupted(f):  # not an Exception: cleaned up all the same
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, disk_full)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, interrupted)
    assert path.read_text() == '{"old": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_text_is_written_as_open_would(tmp_path):
    path = tmp_path / "new" / "report.md"
    text = "# résumé — ± →\nline 2\n"
    atomic_write_text(path, text, encoding="utf-8")
    assert path.read_bytes() == text.encode("utf-8")
    atomic_write_text(path, text)
    assert path.read_text() == text


def test_files_get_the_mode_open_would_give(tmp_path):
    """Not mkstemp's private 0600: results, manifests and shard indexes are read by other users too."""
    import os

    from ssl_toolkit.atomic import atomic_write_text

    old = os.umask(0o027)
    try:
        path = atomic_write_text(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o640


def test_signals_deferred_runs_the_handler_after_the_block():
    import os
    import signal

    from ssl_toolkit.atomic import signals_deferred

    seen = []
    old = signal.signal(signal.SIGUSR2, lambda s, f: seen.append(("handler", s)))
    try:
        with signals_deferred(signal.SIGUSR2):
            os.kill(os.getpid(), signal.SIGUSR2)
            os.kill(os.getpid(), signal.SIGUSR2)  # two arrivals: the handler runs once after
            for _ in range(1000):  # give Python a chance to run handlers inside the block
                seen.append("work") if not seen else None
            seen.append("end of block")
        assert seen[-2:] == ["end of block", ("handler", signal.SIGUSR2)] and seen.count(("handler", 12)) <= 1
        assert signal.getsignal(signal.SIGUSR2) is not None and callable(signal.getsignal(signal.SIGUSR2))
    finally:
        signal.signal(signal.SIGUSR2, old)
