"""Training-only augmentation of one (image, text) example inside a tf.data map.

Three steps, each drawn from its own part of the example's seed: a random resized
crop, a horizontal flip that can rewrite "left" <-> "right" in the text, and colour
jitter. Evaluation and the exported signatures never call this module, so serving
sees exactly `datasets.images.preprocess_image`.

Randomness is stateless: every op is a `tf.random.stateless_*` (or
`tf.image.stateless_*`) op seeded by a per-example seed of shape [2]. The seeds come
from `example_seeds`, a `tf.data.Dataset.random(seed, rerandomize_each_iteration=True)`
stream zipped onto the examples before the map. That choice, rather than a seed made
from the row index or an element counter, gives:

* reproducibility: the same `--seed` gives the same seeds, epoch by epoch, and a
  result depends only on the example and its seed, never on which parallel map call
  ran it or on a `tf.random.Generator` shared between threads;
* fresh augmentation every epoch: a row index would crop an example identically in
  every epoch, and a counter from `enumerate` restarts with every epoch, whereas the
  random stream is redrawn for each new iterator (Keras makes one per epoch);
* independence from the order upstream (shuffled or not, files or records).
"""

from dataclasses import dataclass

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
FLIP_MODES = ("caption_aware", "always_safe", "off")
# The flip mode `from_flag(..., task)` picks for "on": captions and statements describe
# the image, so mirrored sides are swapped with it. A VQA answer ("top left") is a class
# id by the time the image is augmented, so it could not be swapped: no flip for vqa.
DEFAULT_FLIP = {
    "captioning": "caption_aware",
    "retrieval": "caption_aware",
    "classification": "caption_aware",
    "vqa": "off",
}
# Values of the `--augment` flag: "off", "on" (the task's default flip), "no_flip"
# (crop and colour only) or a flip mode by name.
AUGMENT_CHOICES = ("off", "on", "no_flip", "caption_aware", "always_safe")

_SUFFIXES = "most|wards|ward"
# (left, right, suffixes, placeholder) per spelling whose case is kept. The placeholders are
# private-use characters that stand for the swapped word while the other side is rewritten.
_SPELLINGS = (
    ("left", "right", _SUFFIXES, "\ue000"),
    ("Left", "Right", _SUFFIXES, "\ue001"),
    ("LEFT", "RIGHT", _SUFFIXES.upper(), "\ue002"),
)
_SIDE_WORD = rf"(?is).*\b(left|right)({_SUFFIXES})?\b.*"


def swap_sides(text: tf.Tensor) -> tf.Tensor:
    """Swaps the whole words left <-> right (and -most, -ward, -wards) in every string.

    "left", "Left" and "LEFT" keep their case; any other mix of cases becomes lower
    case. Parts of words are untouched ("leftover", "bright"). A string that already
    holds U+E000..U+E002 (private use) has those turned into "right".

    Args:
        text: a string tensor of any shape.

    Returns:
        A string tensor of the same shape.
    """
    text = tf.convert_to_tensor(text, tf.string)
    for left, _, suffixes, placeholder in _SPELLINGS:
        text = tf.strings.regex_replace(text, rf"\b{left}({suffixes})?\b", placeholder + r"\1")
    text = tf.strings.regex_replace(text, rf"(?i)\bleft({_SUFFIXES})?\b", "\ue000" + r"\1")
    for left, right, suffixes, _ in _SPELLINGS:
        text = tf.strings.regex_replace(text, rf"\b{right}({suffixes})?\b", left + r"\1")
    text = tf.strings.regex_replace(text, rf"(?i)\bright({_SUFFIXES})?\b", r"left\1")
    for _, right, _, placeholder in _SPELLINGS:
        text = tf.strings.regex_replace(text, placeholder, right)
    return text


def mentions_side(text: tf.Tensor) -> tf.Tensor:
    """True (a scalar bool) when any string holds left, right, leftmost, ... in any case."""
    matches = tf.strings.regex_full_match(tf.convert_to_tensor(text, tf.string), _SIDE_WORD)
    return tf.reduce_any(matches)


def random_resized_crop(
    image: tf.Tensor, seed: tf.Tensor, scale: tuple[float, float], ratio: tuple[float, float]
) -> tf.Tensor:
    """A crop of `scale` of the area and width/height in `ratio`, resized to the input size.

    Like torchvision's RandomResizedCrop: ten tries, then the whole image.
    """
    shape = tf.shape(image)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.zeros([1, 0, 4]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=ratio,
        area_range=scale,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.image.resize(tf.slice(image, begin, size), shape[:2])
    crop.set_shape(image.shape)
    return crop


@dataclass(frozen=True)
class Augmentation:
    """The settings of training augmentation; call it on one example inside a dataset map.

    Args:
        crop_scale: range of the crop's share of the image area; `(1.0, 1.0)` turns the
            crop off.
        crop_ratio: range of the crop's width / height.
        brightness: largest shift added to every pixel (0 turns it off).
        contrast: the contrast factor is drawn from [1 - contrast, 1 + contrast].
        saturation: the saturation factor is drawn from [1 - saturation, 1 + saturation].
        hue: largest hue rotation, as a fraction of the colour wheel. Small by default: the
            captions name colours.
        flip: "caption_aware" flips half of the examples and swaps left/right in their
            text; "always_safe" flips half of the examples whose text mentions no side
            and leaves every text as it is; "off" never flips (for texts where "left" is
            not a side, e.g. "the man left the room").

    Call arguments:
        image: float32 [H, W, 3] in [0, 1], as `datasets.images.preprocess_image` returns.
        text: a string tensor of any shape; every string of it is rewritten together,
            so a question and its answer can be stacked and flipped as one.
        seed: int32 or int64 [2], this example's seed (see `example_seeds`).

    Returns:
        (image, text): float32 [H, W, 3] in [0, 1], and the text with the input's shape.

    Example:
        >>> augmentation = Augmentation(flip=default_flip("captioning"))
        >>> pairs = tf.data.Dataset.from_tensor_slices((images, captions))
        >>> pairs = tf.data.Dataset.zip((pairs, example_seeds(seed=7)))
        >>> pairs = pairs.map(lambda pair, seed: augmentation(*pair, seed))
    """

    crop_scale: tuple[float, float] = (0.6, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02
    flip: str = "caption_aware"

    def __post_init__(self):
        low, high = self.crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(
                f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}."
            )
        low, high = self.crop_ratio
        if not 0.0 < low <= high:
            raise ValueError(f"crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}.")
        for name, limit in (("brightness", 1.0), ("contrast", 1.0), ("saturation", 1.0)):
            if not 0.0 <= getattr(self, name) < limit:
                raise ValueError(f"{name} must be in [0, {limit}), got {getattr(self, name)}.")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}.")
        if self.flip not in FLIP_MODES:
            raise ValueError(f"flip must be one of {FLIP_MODES}, got {self.flip!r}.")

    def __call__(
        self, image: tf.Tensor, text: tf.Tensor, seed: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        return augment_example(image, text, seed, self)

    def apply(self, dataset: tf.data.Dataset, seed: int | None) -> tf.data.Dataset:
        """Augments every element of a dataset of dicts holding "image" and "text".

        The other keys (labels, weights) pass through unchanged.

        Args:
            dataset: elements like the pipeline's decoded rows, before batching.
            seed: the run's seed (`--seed`); None draws different seeds every run.
        """

        def augment(element, example_seed):
            if not isinstance(element, dict) or not {"image", "text"} <= element.keys():
                raise ValueError(
                    f"Augmentation needs dicts with 'image' and 'text', got {element}."
                )
            image, text = self(element["image"], element["text"], example_seed)
            return {**element, "image": image, "text": text}

        seeded = tf.data.Dataset.zip((dataset, example_seeds(seed)))
        return seeded.map(augment, num_parallel_calls=AUTOTUNE)


def augment_example(
    image: tf.Tensor, text: tf.Tensor, seed: tf.Tensor, settings: Augmentation | None = None
) -> tuple[tf.Tensor, tf.Tensor]:
    """Crops, flips (text too, per `settings.flip`) and colour-jitters one example.

    Args, returns: as `Augmentation`'s call; `settings` defaults to `Augmentation()`.
    """
    settings = settings or Augmentation()
    image = tf.convert_to_tensor(image, tf.float32)
    text = tf.convert_to_tensor(text, tf.string)
    seed = tf.ensure_shape(tf.cast(seed, tf.int64), [2])
    crop_seed, flip_seed, *colour_seeds = tf.unstack(tf.random.split(seed, 6))

    if settings.crop_scale[0] < 1.0:
        image = random_resized_crop(image, crop_seed, settings.crop_scale, settings.crop_ratio)

    if settings.flip != "off":
        flip = tf.random.stateless_uniform([], flip_seed) < 0.5
        if settings.flip == "always_safe":
            flip = tf.logical_and(flip, tf.logical_not(mentions_side(text)))
        else:
            text = tf.cond(flip, lambda: swap_sides(text), lambda: text)
        image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)

    return colour_jitter(image, colour_seeds, settings), text


def colour_jitter(image: tf.Tensor, seeds: list, settings: Augmentation) -> tf.Tensor:
    """Brightness, contrast, saturation, then hue, in [0, 1] after each.

    Brightness and contrast can leave [0, 1] and are clipped; the saturation and hue
    ops work in HSV and keep their input's range.
    """
    brightness_seed, contrast_seed, saturation_seed, hue_seed = seeds
    if settings.brightness:
        image = tf.image.stateless_random_brightness(image, settings.brightness, brightness_seed)
        image = tf.clip_by_value(image, 0.0, 1.0)
    if settings.contrast:
        low, high = 1.0 - settings.contrast, 1.0 + settings.contrast
        image = tf.image.stateless_random_contrast(image, low, high, contrast_seed)
        image = tf.clip_by_value(image, 0.0, 1.0)
    if settings.saturation:
        low, high = 1.0 - settings.saturation, 1.0 + settings.saturation
        image = tf.image.stateless_random_saturation(image, low, high, saturation_seed)
    if settings.hue:
        image = tf.image.stateless_random_hue(image, settings.hue, hue_seed)
    return image


def example_seeds(seed: int | None) -> tf.data.Dataset:
    """An endless stream of int64 [2] per-example seeds, redrawn for every iteration.

    Zip it onto the examples before the augmenting map. The same `seed` gives the same
    stream in every run (epoch 1 equal to epoch 1, epoch 2 to epoch 2, and so on).
    """
    stream = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    run = tf.constant(0 if seed is None else seed, tf.int64)
    return stream.map(lambda value: tf.stack([run, value]))


def default_flip(task: str) -> str:
    """The flip mode for a task: "caption_aware" for all of ours.

    To turn the flip off, pass `--augment no_flip` (`from_flag`) or build
    `Augmentation(flip="off")`.
    """
    if task not in DEFAULT_FLIP:
        raise ValueError(f"No default flip for task {task!r}; known tasks: {sorted(DEFAULT_FLIP)}.")
    return DEFAULT_FLIP[task]


def from_flag(value: str, task: str) -> Augmentation | None:
    """The augmentation an `--augment` value asks for (see AUGMENT_CHOICES); None for "off"."""
    if value not in AUGMENT_CHOICES:
        raise ValueError(f"--augment must be one of {AUGMENT_CHOICES}, got {value!r}.")
    if value == "off":
        return None
    if value == "on":
        return Augmentation(flip=default_flip(task))
    return Augmentation(flip="off" if value == "no_flip" else value)
