"""Train, evaluate and export one model of the zoo by name.

python train.py --list-models
python train.py --model show_and_tell            # built-in shapes data, then export
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# TensorFlow first, after the log level is set, without its unused optional imports.
from training.lean_import import import_tensorflow  # noqa: E402

import_tensorflow()
from datasets.augment import AUGMENT_CHOICES  # noqa: E402
from datasets.cache_policy import CACHE_CHOICES  # noqa: E402
from datasets.tokenizers import TOKENIZERS  # noqa: E402
from models.hub_encoders import INPUT_RANGES, hub_handle  # noqa: E402
from training.loop import WorkerFailedError  # noqa: E402
from training.strategy import STRATEGIES  # noqa: E402

FLAG_DEFAULTS = {"epochs": 10, "batch_size": 64, "learning_rate": 1e-3}
DEFAULT_IMAGE_SIZE = 64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list-models", action="store_true", help="print the models and exit")
    parser.add_argument("--model", help="registered model name (see --list-models)")
    parser.add_argument(
        "--dataset",
        default="shapes",
        help="shapes | shapes:TRAIN,VAL,TEST | a COCO captions .json | a .csv/.jsonl | an image "
        "folder | a Flickr token file[:SPLIT_LIST] | a VQA v2 questions .json | "
        "'shards/train-*.tfrecord' | tfds:NAME[/CONFIG][:SPLIT]",
    )
    parser.add_argument("--val-dataset", help="validation data (default: 10%% held out of train)")
    parser.add_argument("--test-dataset", help="evaluation data (default: the validation data)")
    parser.add_argument("--image-dir", help="folder the dataset's image names are relative to")
    parser.add_argument(
        "--tfds-data-dir", help="where tfds: datasets are prepared (default: $TFDS_DATA_DIR)"
    )
    parser.add_argument("--epochs", type=int, help="default: the model's own")
    parser.add_argument("--batch-size", type=int, help="global batch size; default: the model's")
    parser.add_argument("--learning-rate", type=float, help="default: the model's own")
    parser.add_argument(
        "--image-size",
        type=int,
        help="default 64; a hub: image module's own size when its signature fixes one",
    )
    parser.add_argument("--sequence-length", type=int, default=32, help="tokens per text")
    parser.add_argument(
        "--tokenizer",
        default="word",
        choices=TOKENIZERS,
        help="word (default; exports need core TensorFlow only) or wordpiece (subwords learned "
        "from the training split with tensorflow-text; exports need its tokenizer op)",
    )
    parser.add_argument(
        "--vocab-size",
        "--max-vocabulary-size",
        dest="vocab_size",
        type=int,
        default=10000,
        help="text vocabulary size, reserved tokens included: a cap for word, the learner's "
        "target for wordpiece",
    )
    parser.add_argument("--beam-size", type=int, default=3, help="caption beams (1 = greedy)")
    parser.add_argument(
        "--image-encoder",
        help="small_cnn (default) | resnet50 | vgg16 | mobilenet_v3_small | efficientnet_b0 | "
        "hub:HANDLE (a TF Hub / Kaggle URL, a SavedModel folder or a .tar.gz; fine-tuned "
        "unless --freeze-image-encoder)",
    )
    parser.add_argument(
        "--image-weights", help="the image backbone's weights: imagenet or a local weights file"
    )
    parser.add_argument(
        "--freeze-image-encoder",
        action="store_const",
        const=True,
        help="keep the image backbone's weights fixed",
    )
    parser.add_argument(
        "--text-encoder",
        help="lstm (default) | bilstm | gru | transformer | hub:HANDLE (reads raw strings, "
        "fine-tuned unless --freeze-text-encoder)",
    )
    parser.add_argument(
        "--freeze-text-encoder",
        action="store_const",
        const=True,
        help="keep a hub: text encoder's weights fixed (it runs in inference mode)",
    )
    parser.add_argument(
        "--text-preprocessor",
        help="hub:HANDLE of the preprocessing module a hub: text encoder takes (BERT style)",
    )
    parser.add_argument(
        "--hub-output-key",
        help="the output to use of a hub: module that returns a dict (text: the pooled one; "
        "default pooled_output, then default)",
    )
    parser.add_argument(
        "--hub-input-range",
        choices=sorted(INPUT_RANGES),
        help="pixel range a hub: image module expects: 0to1 (default, TF Hub's convention), "
        "minus1to1 or 0to255",
    )
    parser.add_argument(
        "--word-vectors", help="GloVe/word2vec text file to initialise the token embeddings"
    )
    parser.add_argument(
        "--fusion",
        help="concat | sum | average | weighted | multiply_sum | gated | attention | "
        "cross_attention (models that fuse)",
    )
    parser.add_argument(
        "--class-weight", choices=("balanced",), help="weight classes by inverse frequency"
    )
    parser.add_argument(
        "--loss", choices=("infonce", "vsepp"), help="retrieval loss (default infonce)"
    )
    parser.add_argument(
        "--on-bad-example",
        default="skip",
        choices=("skip", "error"),
        help="a missing, unreadable, truncated or oversized image, an empty text or a row "
        "missing a field (found before training), or an image that fails to decode in "
        "training: skip it (every one is reported) or stop at the first",
    )
    parser.add_argument(
        "--augment",
        default="off",
        choices=AUGMENT_CHOICES,
        help="training-only augmentation: random resized crop, colour jitter and a flip; "
        "on = the task's flip (caption-aware: left/right swapped in the text; none for vqa), "
        "no_flip = crop and colour only",
    )
    parser.add_argument(
        "--cache",
        default="auto",
        choices=CACHE_CHOICES,
        help="keep decoded images in memory after the first epoch: auto (when they take at "
        "most a quarter of the available memory), memory (always) or off",
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="the same --seed gives the same data order and the same training run "
        "(slower input pipeline)",
    )
    parser.add_argument(
        "--strategy",
        default="auto",
        choices=STRATEGIES,
        help="auto: tpu when a TPU is found, multi_worker when TF_CONFIG names several "
        "workers, mirrored with 2+ GPUs, else default",
    )
    parser.add_argument(
        "--mixed-precision",
        action="store_true",
        help="mixed_float16 on GPU, mixed_bfloat16 on TPU and CPU (losses, softmax and "
        "outputs stay float32)",
    )
    parser.add_argument(
        "--scale-learning-rate",
        action="store_true",
        help="multiply the learning rate by the number of replicas (linear scaling)",
    )
    parser.add_argument(
        "--checkpoint-dir",
        help="checkpoint here (model, optimizer, epoch, step, data position) and resume "
        "from the last checkpoint when the same command runs again",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        help="also checkpoint every N steps (default: at each epoch end only)",
    )
    parser.add_argument("--export-dir", help="default: saved_models/<model>")
    parser.add_argument("--no-export", action="store_true", help="train and evaluate only")
    parser.add_argument("--logdir", help="write TensorBoard logs here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.list_models and not args.model:
        parser.error("--model is required (or --list-models)")
    for flag in (
        "epochs",
        "batch_size",
        "image_size",
        "sequence_length",
        "beam_size",
        "checkpoint_every",
    ):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1, got {value}")
    if args.checkpoint_every and not args.checkpoint_dir:
        parser.error("--checkpoint-every needs --checkpoint-dir")
    if args.vocab_size < 5:
        parser.error(f"--vocab-size must be >= 5 (4 reserved tokens), got {args.vocab_size}")
    if args.sequence_length < 3:
        parser.error(f"--sequence-length must be >= 3, got {args.sequence_length}")
    return args


def list_models() -> str:
    from models import get_model_spec, model_names

    specs = [get_model_spec(name) for name in model_names()]
    width = max(len(spec.name) for spec in specs)
    return "\n".join(f"{spec.name:<{width}}  {spec.task:<14}  {spec.description}" for spec in specs)


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def word_vector_options(path: str, vocabulary, seed: int) -> dict:
    """Loads word vectors for the vocabulary and reports how many words they cover."""
    from datasets.word_vectors import load_word_vectors

    vectors = load_word_vectors(path, vocabulary.tokens, seed=seed)
    print(vectors.coverage_report())
    return {"word_vectors": vectors.matrix, "embedding_dim": vectors.dimension}


def builder_options(args: argparse.Namespace) -> dict:
    """The flags passed to the model's builder (None: the builder's default)."""
    return {
        "image_encoder": args.image_encoder,
        "image_weights": args.image_weights,
        "freeze_image_encoder": args.freeze_image_encoder,
        "freeze_text_encoder": args.freeze_text_encoder,
        "text_encoder": args.text_encoder,
        "text_preprocessor": args.text_preprocessor,
        "hub_output_key": args.hub_output_key,
        "hub_input_range": args.hub_input_range,
        "fusion": args.fusion,
        "loss": args.loss,
    }


def check_hub_flags(args: argparse.Namespace) -> None:
    """The hub-only flags need a hub: encoder to apply to."""
    hub_image = hub_handle(args.image_encoder) is not None
    hub_text = hub_handle(args.text_encoder) is not None
    if args.text_preprocessor and not hub_text:
        raise ValueError("--text-preprocessor needs a hub: text encoder (--text-encoder hub:...).")
    if args.freeze_text_encoder and not hub_text:
        raise ValueError(
            "--freeze-text-encoder needs a hub: text encoder (--text-encoder hub:...); the "
            "named ones have no pretrained weights to keep (--word-vectors only starts their "
            "embeddings)."
        )
    if args.hub_output_key and not (hub_image or hub_text):
        raise ValueError("--hub-output-key needs a hub: image or text encoder.")
    if args.tokenizer != "word" and hub_text:
        raise ValueError(
            f"--tokenizer {args.tokenizer}: a hub: text encoder reads raw strings and "
            "tokenizes them itself (see --text-preprocessor)."
        )
    if args.hub_input_range and not hub_image:
        raise ValueError("--hub-input-range needs a hub: image encoder (--image-encoder hub:...).")


def training_settings(args: argparse.Namespace, spec, options: dict) -> dict:
    """epochs, batch_size and learning_rate: a flag given wins, then the defaults of
    the model and of the options it is built with (a fusion's), then FLAG_DEFAULTS."""
    settings = {**FLAG_DEFAULTS, **spec.training_settings(options)}
    for flag in FLAG_DEFAULTS:
        if getattr(args, flag) is not None:
            settings[flag] = getattr(args, flag)
    return settings


def run(args: argparse.Namespace) -> dict:
    """Trains, evaluates and exports; returns the evaluation summary."""
    import keras
    import tensorflow as tf

    from datasets.augment import from_flag
    from datasets.checked_splits import checked_split
    from datasets.decodable_split import decodable_split
    from datasets.decode_errors import DecodeErrorLog, ReportDecodeErrors
    from datasets.sources import load_splits
    from evaluation.report import format_metrics_table, write_metrics_json
    from models import build_model, get_model_spec
    from models.hub_encoders import resolve_image_size
    from serving.export import export_saved_model
    from tasks import get_task
    from tasks.options import TaskOptions
    from training.data_sharding import shard_policy_for, with_shard_policy
    from training.loop import Trainer
    from training.mixed_precision import enable_mixed_precision
    from training.strategy import (
        describe,
        make_strategy,
        scaled_learning_rate,
        tf_config,
        worker_count,
    )
    from training.timing import TrainingTimer

    # First: MultiWorkerMirroredStrategy must exist before any TensorFlow op runs.
    strategy = make_strategy(args.strategy)
    if isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy):
        raise ValueError(
            "--strategy parameter_server: Keras 3 models cannot train under "
            "ParameterServerStrategy (keras-team/keras#18624); use multi_worker instead."
        )
    spec = get_model_spec(args.model)
    task = get_task(spec.task)
    model_options = builder_options(args)
    settings = training_settings(args, spec, model_options)
    keras.utils.set_random_seed(args.seed)
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()
    check_hub_flags(args)
    options = TaskOptions(
        image_size=resolve_image_size(args.image_encoder, args.image_size, DEFAULT_IMAGE_SIZE),
        batch_size=int(settings["batch_size"]),
        sequence_length=args.sequence_length,
        max_vocabulary_size=args.vocab_size,
        tokenizer=args.tokenizer,
        beam_size=args.beam_size,
        seed=args.seed,
        class_weight=args.class_weight,
        loss=args.loss or "infonce",
        augmentation=from_flag(args.augment, spec.task),
        cache=args.cache,
        deterministic=args.deterministic,
        raw_text=hub_handle(args.text_encoder) is not None,
    )

    splits = load_splits(
        spec.task,
        args.dataset,
        args.val_dataset,
        args.test_dataset,
        seed=args.seed,
        image_dir=args.image_dir,
        tfds_data_dir=args.tfds_data_dir,
    )
    checked = {}  # test is often the val split itself: check it once
    for split, examples in splits.items():
        if id(examples) not in checked:
            checked[id(examples)] = checked_split(examples, args.on_bad_example)
        splits[split] = checked[id(examples)]
        print(f"{split}: {splits[split].summary()}")
    # Evaluation matches predictions to examples by position, so it cannot drop an image
    # that fails to decode on the fly: every test image is decoded once now, before training.
    splits["test"] = decodable_split(splits["test"], options.image_size, args.on_bad_example)
    vocabulary = task.build_vocabulary(splits["train"], options)
    print(f"vocabulary: {vocabulary.size} {args.tokenizer} tokens (from the training split only)")
    if args.word_vectors:
        model_options.update(word_vector_options(args.word_vectors, vocabulary, args.seed))

    print(describe(strategy, options.batch_size))
    if args.mixed_precision:
        print(f"mixed precision: {enable_mixed_precision(strategy)}")
    replicas = strategy.num_replicas_in_sync
    learning_rate = scaled_learning_rate(
        settings["learning_rate"], replicas, args.scale_learning_rate
    )
    if learning_rate != settings["learning_rate"]:
        print(f"learning rate: {learning_rate:g} ({settings['learning_rate']:g} x {replicas})")
    with strategy.scope():
        arguments = task.model_arguments(vocabulary, options, splits["train"])
        model = build_model(spec, arguments, model_options)
        task.compile_model(model, learning_rate, options)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    workers = worker_count(tf_config()) if multi_worker else 1
    # An image that passed the header checks but fails to decode is dropped alone,
    # counted and named at the end of each epoch (or stops the run under "error").
    decode_reports = []
    input_data = {}
    for split, training in (("train", True), ("val", False)):
        log = DecodeErrorLog(index_key="row")
        dataset = task.make_dataset(
            splits[split], vocabulary, options, training=training, decode_errors=log
        )
        if workers > 1:  # each worker reads whole TFRecord shards (FILE) or every Nth row
            policy = shard_policy_for(splits[split], num_workers=workers)
            dataset = with_shard_policy(dataset, policy)
        input_data[split] = dataset
        label = "training" if training else "validation"
        decode_reports.append(ReportDecodeErrors(log, label, on_bad_example=args.on_bad_example))

    timer = TrainingTimer()
    callbacks = [timer, *decode_reports, keras.callbacks.ProgbarLogger()]
    if args.logdir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=args.logdir))
    # Our loop, not fit(): it runs under every strategy (fit fails under multi_worker),
    # resumes exactly from --checkpoint-dir, and stops on a non-finite loss naming the
    # step before any checkpoint or export holds such weights (shared/UPSTREAM.md).
    trainer = Trainer(
        model,
        strategy,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_every=args.checkpoint_every,
        callbacks=callbacks,
    )
    history = trainer.fit(
        input_data["train"], int(settings["epochs"]), validation_data=input_data["val"]
    )
    print(f"training took {timer.seconds:.1f} s ({timer.steps} steps)")

    started = time.perf_counter()
    result = task.evaluate(model, splits["test"], vocabulary, splits["train"], options)
    evaluation_seconds = time.perf_counter() - started
    print()
    print(
        format_metrics_table(
            result.metrics,
            result.baseline,
            title=f"{spec.name} on {splits['test'].source} (baseline: {result.baseline_name})",
        )
    )
    for sample in result.samples:
        print("  " + json.dumps(sample))

    summary = {
        "model": spec.name,
        "task": spec.task,
        "dataset": args.dataset,
        "test_split": splits["test"].source,
        "metrics": result.metrics,
        "baseline": result.baseline,
        "baseline_name": result.baseline_name,
        "training_seconds": round(timer.seconds, 1),
        "training_loss": [round(loss, 5) for loss in history.get("loss", [])],
        "evaluation_seconds": round(evaluation_seconds, 1),
        "settings": {**vars(args), **settings, "image_size": options.image_size},
        "vocabulary_size": vocabulary.size,
        "tokenizer": args.tokenizer,
        "git_commit": git_commit(),
    }
    # Under multi_worker every worker trains and evaluates; only the chief exports.
    if not args.no_export and trainer.is_chief:
        from serving.model_card import build_model_card
        from serving.warmup import first_example_inputs

        export_dir = Path(args.export_dir or Path("saved_models") / spec.name)
        module = task.serving_module(model, vocabulary, options)
        version_dir = export_saved_model(
            module,
            export_dir,
            extra_files={
                "vocabulary.txt": vocabulary.to_text(),
                "model_card.json": build_model_card(summary, module),
            },
            # The test split passed decodable_split at this image size, so its first
            # image cannot fail the warmup (TF Serving refuses a version whose warmup fails).
            warmup_inputs=first_example_inputs(splits["test"]),
            keras_model=model,
        )
        metrics_path = write_metrics_json(
            version_dir / "assets.extra" / "metrics.json",
            model=spec.name,
            task=spec.task,
            split=splits["test"].source,
            metrics=result.metrics,
            baseline=result.baseline,
            extra={
                key: value for key, value in summary.items() if key not in ("metrics", "baseline")
            },
        )
        summary["export"] = str(version_dir)
        print(f"\nexported {spec.name} to {version_dir} (metrics: {metrics_path})")
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_models:
        print(list_models())
        return 0
    try:
        run(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except WorkerFailedError as error:  # multi_worker: a peer died; restart every worker
        print(f"error: {error}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
