"""Region uploads (core.region.uploads): a short safe name whatever the upload's, a refused file not
kept, and the retention rule (age, then the folder's size cap; never an upload a running job reads)."""

from __future__ import annotations

import os
import time

import pytest
from region_images import mosaic, write_png, write_zero_strip_tiff

from core.constants import PCAM_MPP
from core.errors import ImageTooLargeError
from core.region.reader import open_region_image
from core.region.uploads import MAX_NAME_BYTES, prune_uploads, save_upload, uploads_dir

DAY = 86_400


@pytest.fixture(scope="module")
def png_bytes(tmp_path_factory) -> bytes:
    return write_png(tmp_path_factory.mktemp("uploads") / "m.png", mosaic().pixels, mpp=PCAM_MPP).read_bytes()


def age(folder, days: float) -> None:
    then = time.time() - days * DAY
    for path in [*folder.iterdir(), folder]:
        os.utime(path, (then, then))


def test_a_200_character_unicode_name_is_saved_under_a_short_name(workspace, png_bytes):
    name = "lymph-node-région-" + "é" * 182 + ".png"  # 200 characters, 383 bytes of UTF-8
    path = save_upload(name, png_bytes)
    assert path.suffix == ".png" and len(path.name.encode()) <= MAX_NAME_BYTES
    assert path.name.startswith("lymph-node-région-éé") and path.read_bytes() == png_bytes
    with open_region_image(path) as image:
        assert image.mpp == pytest.approx(PCAM_MPP, rel=1e-3)
    assert save_upload("../../etc/x\x00.png", png_bytes).parent == path.parent  # no folders, no NUL


def test_a_refused_upload_is_not_kept(workspace, tmp_path):
    data = write_zero_strip_tiff(tmp_path / "strip.tif", 12_000, 12_000).read_bytes()
    with pytest.raises(ImageTooLargeError):
        save_upload("strip.tif", data)
    assert not any(uploads_dir().iterdir())


def test_old_uploads_go_then_the_oldest_past_the_size_cap_but_never_one_in_use(
    workspace, png_bytes, monkeypatch
):
    old = save_upload("old.png", png_bytes).parent
    age(old, 8)  # past the 7-day default
    in_use = save_upload("running.png", png_bytes + b"1").parent  # trailing bytes: another hash
    age(in_use, 30)
    running = {str(in_use / "running.png")}  # what the page passes: the images of running jobs
    new = save_upload("new.png", png_bytes + b"2", in_use=running).parent
    assert not old.exists() and in_use.exists() and new.exists()

    older = [save_upload(f"{n}.png", png_bytes + bytes([n]), in_use=running).parent for n in range(3)]
    for days, folder in zip((3, 2, 1), older, strict=True):
        age(folder, days)
    monkeypatch.setenv("PATCHLENS_REGION_UPLOADS_MB", str(2.5 * len(png_bytes) / 2**20))  # room for two
    assert set(prune_uploads(keep={str(in_use)})) == set(older)  # the oldest first, until two are left
    assert in_use.exists() and new.exists()
