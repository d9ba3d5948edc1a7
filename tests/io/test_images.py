import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.cli import UserError
from dlcv.io.images import load_rgb, minmax_to_uint8, save_png, to_uint8


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
