import os
import struct
import zlib

import pytest

from atvg_tf.errors import InputError
from atvg_tf.frontend.image import ImageError, load_image


def _png_header(path, width, height):
    """A PNG whose header claims width x height (its pixel data is a stub: nothing may decode it)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return str(path)


def test_photos_above_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch, shared_data, capsys):
    """A 20000 x 20000 photo cost 3-6 GB of RAM and ended in `Invalid argument returned 22` (issue 11 item 8)."""
    from atvg_tf.cli import main

    with pytest.raises(ImageError, match=r"is over \d+ MP, above the limit of 50 MP; scale it down, or raise ATVG_MAX_IMAGE_PIXELS"):
        load_image(_png_header(tmp_path / "huge.png", 20000, 20000))
    large = _png_header(tmp_path / "large.png", 10000, 6000)
    with pytest.raises(ImageError, match=r"is 10000 x 6000 pixels \(60 MP\), above the limit of 50 MP"):
        load_image(large)
    monkeypatch.setenv("ATVG_MAX_IMAGE_PIXELS", "100000000")
    with pytest.raises(ImageError, match="cannot decode"):  # allowed now: the stub reaches the decoder
        load_image(large)
    monkeypatch.setenv("ATVG_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(InputError, match="ATVG_MAX_IMAGE_PIXELS must be a whole number"):
        load_image(large)
    monkeypatch.delenv("ATVG_MAX_IMAGE_PIXELS")
    assert load_image(os.path.join(shared_data, "atvgnet", "image", "image_sample.jpg")).shape == (994, 1737, 3)
    code = main(["generate", "--image", str(tmp_path / "huge.png"), "--audio",
                 os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav"), "-o", str(tmp_path / "out.mp4")])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error and "above the limit of 50 MP" in error
    assert not (tmp_path / "out.mp4").exists()


def test_a_truncated_jpeg_is_refused(shared_data, tmp_path):
    """It was used silently, grey below the cut, with libjpeg noise on stderr (issue 11 item 16)."""
    whole = open(os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg"), "rb").read()
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ImageError, match=r"cut.jpg is truncated \(the JPEG data stops before its end marker\); copy or download it again"):
        load_image(str(tmp_path / "cut.jpg"))
    (tmp_path / "padded.jpg").write_bytes(whole + b"\x00" * 100)  # trailing padding after the end marker is fine
    assert load_image(str(tmp_path / "padded.jpg")).shape[2] == 3
