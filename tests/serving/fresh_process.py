"""Loading exports in a new process that imports only TensorFlow, as TF Serving loads them."""

import json
import subprocess
import sys
import textwrap

RELOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf

    def reload(export, image_path, text):
        loaded = tf.saved_model.load(export)
        image = tf.io.read_file(image_path)
        images = tf.stack([image, image])
        texts = tf.constant([text, "a blue circle"])
        results = {}
        for name, signature in loaded.signatures.items():
            inputs = signature.structured_input_signature[1]
            feed = {key: images if key == "image_bytes" else texts for key in inputs}
            outputs = signature(**feed)
            results[name] = {key: value.numpy().tolist() if value.dtype != tf.string
                             else [s.decode() for s in value.numpy()]
                             for key, value in outputs.items()}
        refused = {}
        for name, signature in loaded.signatures.items():
            inputs = list(signature.structured_input_signature[1])
            scalar = {key: image if key == "image_bytes" else texts[0] for key in inputs}
            checks = [scalar]
            if len(inputs) == 2:  # one image with two texts must not be broadcast
                other = next(key for key in inputs if key != "image_bytes")
                checks.append({"image_bytes": images[:1], other: texts})
            refused[name] = []
            for feed in checks:
                try:
                    signature(**feed)
                    refused[name].append(False)
                except tf.errors.InvalidArgumentError:
                    refused[name].append(True)
            empty = signature(**{key: tf.constant([], tf.string) for key in inputs})
            assert all(value.shape[0] == 0 for value in empty.values())
            signature(**{key: images if key == "image_bytes" else texts for key in inputs})
        results["refused"] = refused
        results["inputs"] = {name: sorted(signature.structured_input_signature[1])
                             for name, signature in loaded.signatures.items()}
        return results

    every = [reload(*job) for job in json.loads(sys.argv[1])]
    project = [m for m in ("models", "layers", "datasets", "tasks", "serving") if m in sys.modules]
    print(json.dumps({"every": every, "project_modules": project}))
    """
)


def reload_all_in_fresh_process(jobs, cwd) -> list[dict]:
    """Loads each (export_dir, image_path, text) of `jobs` in one new process that imports
    only TensorFlow and calls every signature; per job {"results", "project_modules"}."""
    jobs = [[str(export), str(image), text] for export, image, text in jobs]
    completed = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, json.dumps(jobs)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    printed = json.loads(completed.stdout.strip().splitlines()[-1])
    project = printed["project_modules"]
    return [{"results": results, "project_modules": project} for results in printed["every"]]


def reload_in_fresh_process(export_dir, image_path, text, cwd) -> dict:
    (reloaded,) = reload_all_in_fresh_process([(export_dir, image_path, text)], cwd)
    return reloaded
