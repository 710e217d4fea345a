"""Hub handles: SavedModel folders, .tar.gz archives, URLs with and without a network."""

import hashlib
import io
import os
import shutil
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from layers import HubLayer
from layers.hub_handles import resolve_handle
from tests.layers.test_hub_layer import IMAGES

MISSING_URL = "https://tfhub.dev/mmzoo-tests/missing-module/1"


def test_folder_handle_resolves_to_itself(image_module):
    assert resolve_handle(image_module) == image_module


def _tar(folder, archive, prefix="."):
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=prefix)
    return str(archive)


@pytest.mark.parametrize("prefix", [".", "efficientnet"], ids=["flat", "wrapped_in_a_folder"])
def test_tar_gz_handle_is_extracted_once_into_the_cache(
    image_module, tmp_path, monkeypatch, prefix
):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
    archive = _tar(image_module, tmp_path / "image.tar.gz", prefix)
    folder = resolve_handle(archive)
    assert folder.startswith(str(tmp_path / "cache"))
    assert os.path.exists(os.path.join(folder, "saved_model.pb"))

    def no_second_extraction(*args, **kwargs):
        raise AssertionError("the archive was extracted again")

    monkeypatch.setattr(tarfile, "open", no_second_extraction)
    assert resolve_handle(archive) == folder
    np.testing.assert_allclose(
        HubLayer(archive)(IMAGES), tf.saved_model.load(image_module)(IMAGES), atol=1e-6
    )


def test_tar_member_escaping_the_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"owned"
        member = tarfile.TarInfo("../../escaped.txt")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    with pytest.raises(ValueError, match=r"evil\.tar\.gz.*escaped\.txt"):
        resolve_handle(str(archive))
    assert not list(tmp_path.rglob("escaped.txt"))


def test_missing_path_is_named(tmp_path):
    missing = str(tmp_path / "no_such_module")
    with pytest.raises(ValueError, match="no_such_module.*does not exist"):
        HubLayer(missing)
    with pytest.raises(ValueError, match=r"no_such\.tar\.gz.*does not exist"):
        resolve_handle(str(tmp_path / "no_such.tar.gz"))


def test_folder_without_saved_model_pb_is_named(tmp_path):
    (tmp_path / "variables").mkdir()
    with pytest.raises(ValueError, match=f"{tmp_path.name}.*saved_model.pb"):
        HubLayer(str(tmp_path))


def test_url_without_network_says_to_pass_a_local_path(tmp_path, monkeypatch):
    cache = tmp_path / "empty_cache"
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    with pytest.raises(ValueError) as error:
        HubLayer(MISSING_URL)
    message = str(error.value)
    assert MISSING_URL in message
    assert "local path" in message and ".tar.gz" in message
    assert f"TFHUB_CACHE_DIR is {cache}" in message
    assert not [p for p in cache.iterdir() if p.suffix == ".lock"]


def test_url_in_a_filled_cache_loads_without_network(image_module, tmp_path, monkeypatch):
    url = "https://www.kaggle.com/models/mmzoo/tiny-image/TensorFlow2/feature-vector/1"
    cache = tmp_path / "hub_cache"
    cached = cache / hashlib.sha1(url.encode("utf8")).hexdigest()  # tensorflow_hub's layout
    shutil.copytree(image_module, cached)
    (cache / f"{cached.name}.descriptor.txt").write_text(f"Module: {url}\n")
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    assert resolve_handle(url) == str(cached)
    layer = HubLayer(url)
    assert layer.get_config()["handle"] == url
    np.testing.assert_allclose(layer(IMAGES), tf.saved_model.load(image_module)(IMAGES), atol=1e-6)
