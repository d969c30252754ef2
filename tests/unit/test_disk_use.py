"""The photos take little more than their own size on disk: DVC's cache and the split share their bytes."""

from __future__ import annotations

import os

from catsdogs.core.io import link_or_copy


def test_link_or_copy_links_and_falls_back_to_a_copy(tmp_path, monkeypatch):
    source = tmp_path / "a.jpg"
    source.write_bytes(b"photo bytes")
    link_or_copy(source, tmp_path / "linked.jpg")
    assert (tmp_path / "linked.jpg").stat().st_ino == source.stat().st_ino

    def no_links(*args, **kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    link_or_copy(source, tmp_path / "copied.jpg")
    assert (tmp_path / "copied.jpg").read_bytes() == b"photo bytes"
    assert (tmp_path / "copied.jpg").stat().st_ino != source.stat().st_ino


