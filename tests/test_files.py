"""A file the producer named is opened only when it is a regular file: a pipe, a device or a folder is refused at
once, in one line naming it, and nothing is left open."""

from __future__ import annotations

import errno
import os

import pytest

from bridge.files import NotRegularFile, open_regular


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_pipe_with_no_writer_and_a_device_are_refused_at_once_naming_the_path(tmp_path):
    pipe = tmp_path / "take.wav"
    os.mkfifo(pipe)  # no writer: opening it to read would wait for one, maybe for good
    before = _open_descriptors()
    for special in (pipe, "/dev/zero"):  # /dev/zero would be read for ever
        with pytest.raises(NotRegularFile) as caught:
            open_regular(special)
        assert str(caught.value) == f"{special}: is not a regular file (a pipe or a device)"
    with pytest.raises(IsADirectoryError):  # as open() says it
        open_regular(tmp_path)
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "gone.toml")
    assert _open_descriptors() == before


def test_a_regular_file_is_read_as_bytes_or_as_text_like_one_opened_by_name(tmp_path):
    path = tmp_path / "pads.toml"
    path.write_bytes(b"\xef\xbb\xbfport = 'nanoPAD'\n")  # Windows Notepad's UTF-8, with a BOM
    with open_regular(path) as raw:
        assert raw.read() == path.read_bytes() and raw.name == str(path)
        assert os.get_blocking(raw.fileno())  # read as a file open() opened, not a non-blocking one
    with open_regular(path, "utf-8-sig") as text:
        assert text.read() == "port = 'nanoPAD'\n" and text.name == str(path)


def test_a_link_is_followed_unless_refused(tmp_path):
    (tmp_path / "request.json").write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "request.json")
    with open_regular(tmp_path / "link.json") as followed:
        assert followed.read() == b"{}"
    with pytest.raises(OSError) as caught:
        open_regular(tmp_path / "link.json", follow_links=False)
    assert caught.value.errno == errno.ELOOP
