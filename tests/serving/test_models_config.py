"""models.config: one TF Serving entry per exported model, parsed back as TF Serving would."""

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.models_config import exported_versions, write_models_config

ROOT = Path(__file__).resolve().parents[2]


def fake_export_root(root: Path) -> Path:
    """Two models with several versions, beside what must be left out."""
    for model, version in [("vqa", "1"), ("vqa", "2"), ("vqa", "10"), ("dual_encoder", "3")]:
        (root / model / version).mkdir(parents=True)
        (root / model / version / "saved_model.pb").write_bytes(b"")
    (root / "vqa" / ".staging-11-123").mkdir()  # an export being written
    (root / "vqa" / "4").mkdir()  # a version folder without a SavedModel
    (root / "no_versions" / "latest").mkdir(parents=True)
    (root / "models.config").write_text("")
    return root


def parsed(path: Path) -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())


def test_the_command_writes_a_model_config_list_tf_serving_parses(tmp_path):
    root = fake_export_root(tmp_path / "saved_models")
    output = root / "models.config"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving.models_config",
            "--export-root",
            str(root),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "vqa: versions 1, 2, 10" in completed.stdout
    entries = parsed(output).model_config_list.config
    assert [entry.name for entry in entries] == ["dual_encoder", "vqa"]
    for entry in entries:
        assert entry.base_path == str((root / entry.name).resolve())
        assert Path(entry.base_path).is_absolute()
        assert entry.model_platform == "tensorflow"
        assert entry.model_version_policy.WhichOneof("policy_choice") == "latest"
        assert entry.model_version_policy.latest.num_versions == 1


def test_all_versions_policy_and_the_versions_found(tmp_path):
    root = fake_export_root(tmp_path)
    assert exported_versions(root) == {"dual_encoder": [3], "vqa": [1, 2, 10]}
    output = tmp_path / "configs" / "all.config"
    write_models_config(root, output, versions="all")
    entries = parsed(output).model_config_list.config
    assert {entry.model_version_policy.WhichOneof("policy_choice") for entry in entries} == {"all"}
    assert list(output.parent.iterdir()) == [output]


def test_an_export_root_without_versions_is_refused(tmp_path):
    (tmp_path / "vqa" / "draft").mkdir(parents=True)
    with pytest.raises(ValueError, match="nothing to serve"):
        write_models_config(tmp_path, tmp_path / "models.config")
    with pytest.raises(ValueError, match="Unknown version policy 'newest'"):
        write_models_config(fake_export_root(tmp_path / "ok"), tmp_path / "m.config", "newest")
