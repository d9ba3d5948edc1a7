import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.cli import UserError
from dlcv.io.images import load_rgb, minmax_to_uint8, save_png, to_uint8
from tests.hostile import bomb_png


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "photo.jpg", exif=exif)
    assert load_rgb(tmp_path / "photo.jpg").shape == (3, 20, 10)


def test_png_round_trip_and_conversions(tmp_path):
    x = torch.linspace(-1, 1, 3 * 4 * 4).reshape(3, 4, 4)
    u8 = to_uint8(x)
    assert u8.dtype == torch.uint8 and u8.min() == 0 and u8.max() == 255
    assert torch.equal(load_rgb(save_png(u8, tmp_path / "a.png")), u8)
    m = minmax_to_uint8(torch.stack([x * 0.1 + 3, x]))
    assert m[0].min() == 0 and m[0].max() == 255  # each image normalised on its own


def test_unreadable_image_names_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(UserError, match="bad.png"):
        load_rgb(tmp_path / "bad.png")


@pytest.mark.parametrize("side", [10_000, 100_000])  # Pillow warns from 89M pixels, refuses from twice that
def test_decompression_bombs_are_refused_before_decoding(tmp_path, side):
    import warnings

    path = bomb_png(tmp_path / "bomb.png", side, side)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no DecompressionBombWarning on the way
        with pytest.raises(UserError, match=r"bomb\.png: it is too large .*decompression bomb"):
            load_rgb(path)


def test_a_full_disk_leaves_no_partial_png_and_names_the_file(tmp_path, monkeypatch):
    from tests.disk import FullFile

    real_save = Image.Image.save
    monkeypatch.setattr(
        Image.Image,
        "save",
        lambda im, fp, format=None, **kw: real_save(im, FullFile(fp, room=40), format=format, **kw),
    )  # 40 bytes fit, then the disk is full
    image = to_uint8(torch.rand(3, 64, 64) * 2 - 1)
    with pytest.raises(UserError, match=r"cannot write .*out\.png: no space left on the device"):
        save_png(image, tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []  # neither the PNG nor its temporary


def test_a_png_on_a_really_full_file_system(tmp_path):
    from tests.disk import tiny_filesystem

    with tiny_filesystem(tmp_path / "small", "64k") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (not root)")
        save_png(torch.zeros(3, 8, 8, dtype=torch.uint8), tmp_path / "small" / "fits.png")
        noise = torch.randint(0, 256, (3, 512, 512), dtype=torch.uint8)  # 768 kB, incompressible
        with pytest.raises(UserError, match=r"big\.png: no space left"):
            save_png(noise, tmp_path / "small" / "big.png")
        assert sorted(p.name for p in (tmp_path / "small").iterdir()) == ["fits.png"]


def test_a_link_in_place_of_an_image_is_replaced_not_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("mine")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "00.png").symlink_to(outside)
    save_png(torch.zeros(3, 4, 4, dtype=torch.uint8), tmp_path / "out" / "00.png")
    assert outside.read_text() == "mine"
    image = tmp_path / "out" / "00.png"
    assert not image.is_symlink() and load_rgb(image).shape == (3, 4, 4)
