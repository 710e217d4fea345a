"""Tiny TF2 SavedModels shaped like TF Hub modules, written once per session."""

import pytest

from tests.layers import hub_test_modules as modules


@pytest.fixture(scope="session")
def image_module(tmp_path_factory):
    return modules.write_image_module(tmp_path_factory.mktemp("hub") / "image")


@pytest.fixture(scope="session")
def text_module(tmp_path_factory):
    return modules.write_text_module(tmp_path_factory.mktemp("hub") / "text")


@pytest.fixture(scope="session")
def encoder_module(tmp_path_factory):
    return modules.write_encoder_module(tmp_path_factory.mktemp("hub") / "encoder")
