"""A dataset the way users have one: photos of many sizes, grey and colour, JPEG, RGBA and 16-bit PNG,
one class smaller than IPC — condensed end to end: select → compensate → distil → evaluate."""

import fiftyone as fo
import numpy as np
import pytest
from PIL import Image
from skimage import data

import fiftyone_condense as fc
from fiftyone_condense.core.lifecycle import Reading
from fiftyone_condense.loader import cached_bytes

TRAIN = {"cat": 8, "camera": 8, "coffee": 3}  # coffee: fewer than IPC 4
TEST = 4


def crops(photo: np.ndarray, count: int, rng: np.random.Generator):
    """Random windows 40–120 px a side, none square."""
    for _ in range(count):
        height, width = rng.integers(40, 121, size=2)
        width = width + 1 if width == height else width
        top, left = rng.integers(0, photo.shape[0] - height), rng.integers(0, photo.shape[1] - width)
        yield photo[top:top + height, left:left + width]


def save(pixels: np.ndarray, label: str, index: int, folder) -> str:
    """Each class in the formats users mix: cats as JPEG and RGBA PNG, the camera as 8- and 16-bit grey PNG."""
    stem = folder / f"{label}_{index}"
    if label == "cat" and index % 2:
        alpha = np.full(pixels.shape[:2], 255, np.uint8)
        alpha[: pixels.shape[0] // 3] = 0  # a transparent band
        path, image = f"{stem}.png", Image.fromarray(np.dstack([pixels, alpha]), mode="RGBA")
    elif label == "cat":
        path, image = f"{stem}.jpg", Image.fromarray(pixels)
    elif label == "camera" and index % 2:
        path, image = f"{stem}.png", Image.fromarray(pixels.astype(np.uint16) * 257)  # 16-bit
    else:
        path, image = f"{stem}.png", Image.fromarray(pixels)
    image.save(path)
    return path


@pytest.fixture
def photos(tmp_path) -> fo.Dataset:
    rng = np.random.default_rng(0)
    sources = {"cat": data.chelsea(), "camera": data.camera(), "coffee": data.coffee()}
    samples = []
    for label, photo in sources.items():
        for index, pixels in enumerate(crops(photo, TRAIN[label] + TEST, rng)):
            samples.append(fo.Sample(filepath=save(pixels, label, index, tmp_path), tags=["train" if index < TRAIN[label] else "test"],
                                     ground_truth=fo.Classification(label=label)))
    dataset = fo.Dataset()
    dataset.add_samples(samples)
    return dataset


def shapes(record) -> set:
    return {(Image.open(path).mode, Image.open(path).size) for path in record.view.values("filepath")}


def test_mixed_photos_are_condensed_end_to_end_at_one_working_format(photos):
    train = photos.match_tags("train")
    with pytest.warns(UserWarning, match=r"sizes .* Pass image_size="):
        picked = fc.select(train, method="herding", ipc=4, run_key="herd", small_classes="keep_all", teacher_epochs=1)
    fmt = picked.config["image_format"]
    assert fmt["channels"] == 3 and max(fmt["size"]) <= 128 and "grey and colour" in fmt["reason"]
    assert picked.results["small_classes"] == {"policy": "keep_all", "kept_all": {"coffee": 3}}
    assert len(picked.view) == 4 + 4 + 3
    assert metadata_untouched(photos)

    compensated = fc.compensate(photos.load_saved_view("condense-herd"), backend="classical", run_key="warm")
    height, width = fmt["size"]
    assert compensated.config["image_format"]["size"] == fmt["size"] and shapes(compensated) == {("RGB", (width, height))}

    distilled = fc.distill(train, method="dm", ipc=4, iterations=2, image_size=(24, 32), small_classes="drop",
                           run_key="dm", cache_bytes=30_000)
    assert cached_bytes() <= 30_000  # the decoded-image cache stayed within its bound
    assert distilled.results["small_classes"] == {"policy": "drop", "dropped": {"coffee": 3}}
    assert sorted(distilled.view.distinct("ground_truth.label")) == ["camera", "cat"]
    assert shapes(distilled) == {("RGB", (32, 24))} and set(distilled.view.values("metadata.height")) == {24}

    evaluation = fc.evaluate(run_key="dm", dataset=photos, epochs=1, num_models=1, references=False, cache_bytes=0)
    assert evaluation["image_format"]["size"] == [24, 32] and evaluation["channels"] == 3  # the run's own format
    assert cached_bytes() == 0 and len(evaluation["per_class"]) == 3


def test_a_grey_working_format_and_letterboxing_can_be_asked_for(photos):
    train = photos.match_tags("train")
    record = fc.select(train, method="random", ipc=2, channels=1, image_size=(20, 30), resize="letterbox",
                       background=(0, 0, 0))
    assert record.config["image_format"] == {"size": [20, 30], "channels": 1, "resize": "letterbox",
                                             "background": [0, 0, 0]}
    images = Reading(image_size=(20, 30), channels=1, resize="letterbox", background=(0, 0, 0)).load(
        record.view, "ground_truth", None)
    assert images.shape == (1, 20, 30) and images.tensor().shape[0] == 6

    sixteen_bit = photos.match(fo.ViewField("filepath").ends_with("camera_1.png"))
    pixels = Reading(channels=1).load(sixteen_bit, "ground_truth", None).tensor()
    assert 0.05 < float(pixels.mean()) < 0.95  # scaled from 16 bits, not clipped to white


def metadata_untouched(dataset: fo.Dataset) -> bool:
    """Shapes were read from the file headers without writing metadata to the user's samples."""
    return set(dataset.match_tags("train").exists("condense_run", False).values("metadata")) == {None}
