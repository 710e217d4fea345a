"""A reloaded export computes what the in-memory serving module computes, signature by signature."""

import io
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image


def two_frame_gif() -> bytes:
    """A GIF of two differently coloured frames (served as its first frame)."""
    frames = [Image.new("RGB", (24, 16), colour) for colour in ((200, 30, 30), (30, 30, 200))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def request(signature, image_bytes: list[bytes], texts: list[bytes]) -> dict[str, tf.Tensor]:
    """Every input of `signature`: the images under image_bytes, the texts under the other key."""
    keys = signature.structured_input_signature[1]
    return {
        key: tf.constant(image_bytes if key == "image_bytes" else texts, tf.string) for key in keys
    }


def test_reloaded_exports_equal_the_in_memory_modules(exports, loaded):
    gray = tf.io.encode_png(np.arange(256, dtype=np.uint8).reshape(16, 16, 1)).numpy()
    for export in exports.values():
        reloaded = loaded(export.name)
        image_bytes = [Path(export.image_path).read_bytes(), two_frame_gif(), gray]
        texts = [export.text.encode(), b"a blue circle", "caf\xe9 ".encode("latin-1") * 200]
        in_memory = export.module.signatures()
        assert set(reloaded.signatures) == set(in_memory), export.name
        for name, signature in reloaded.signatures.items():
            inputs = request(signature, image_bytes, texts)
            served = signature(**inputs)
            function = in_memory[name]  # positional: its argument names need not be the keys
            expected = function(*[inputs[spec.name] for spec in function.input_signature])
            assert set(served) == set(expected), (export.name, name)
            for key, value in expected.items():
                where = f"{export.name} {name} {key}"
                assert served[key].dtype == value.dtype and served[key].shape == value.shape, where
                assert value.shape[0] == 3, where
                if value.dtype == tf.string:
                    assert served[key].numpy().tolist() == value.numpy().tolist(), where
                else:
                    np.testing.assert_allclose(
                        served[key].numpy(), value.numpy(), rtol=0, atol=1e-5, err_msg=where
                    )
