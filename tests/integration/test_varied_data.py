"""Real, varied data end to end (issue 11, item 5): small datasets built the way users have them.

Windows of 40–120 px (never square) cropped at random from scikit-image's bundled photos, one class
per photo, saved as users mix them — 8-bit RGB PNG, JPEG, grey PNG, RGBA PNG with a real (partly
transparent) alpha channel and 16-bit grey PNG — with one class smaller than the IPC asked for, then
select → compensate (classical) → distil (DM, a few iterations) → evaluate (a few epochs). Checked:
what the runs record (working format and why, what happened to the small class), the size and mode of
every image written, the warnings, the overrides (size, grey, letterbox, background), and that the
process-wide decoded-image cache never holds more than the ``cache_bytes`` a call passes (the
deterministic form of "memory stays bounded"; ``benchmarks/memory.py`` measures RSS).
"""

import warnings
from collections import Counter

import fiftyone as fo
import numpy as np
import pytest
from PIL import Image
from skimage import data

import fiftyone_condense as fc
from fiftyone_condense.algorithms import loader
from fiftyone_condense.bridge.views import Reading

F = fo.ViewField
FORMATS = ("png_rgb", "jpeg", "grey_png", "rgba_png", "png16")
# One class per photo; "rocket" holds fewer train images than IPC (the unbalanced class).
SOURCES = {"astronaut": data.astronaut, "coins": data.coins, "rocket": data.rocket}
TRAIN = {"astronaut": 26, "coins": 26, "rocket": 4}
TEST = 10
IPC = 6
CACHE_BYTES = 200_000


def windows(photo: np.ndarray, count: int, rng: np.random.Generator):
    """``count`` random crops of ``photo``, each side 40–120 px, never square."""
    for _ in range(count):
        height, width = (int(v) for v in rng.integers(40, 121, size=2))
        if height == width:
            width += 1
        top = int(rng.integers(0, photo.shape[0] - height + 1))
        left = int(rng.integers(0, photo.shape[1] - width + 1))
        yield photo[top:top + height, left:left + width]


def alpha_mask(height: int, width: int) -> np.ndarray:
    """A real alpha channel: a left-to-right ramp, with the top-left quarter fully transparent."""
    alpha = np.tile(np.linspace(64, 255, width).round().astype(np.uint8), (height, 1))
    alpha[: height // 4, : width // 4] = 0
    return alpha


def sixteen_bit(grey: np.ndarray) -> np.ndarray:
    """8-bit grey stretched over the whole 16-bit range, every value above 255: 256 (darkest) … 65281 (brightest)."""
    low, high = int(grey.min()), int(grey.max())
    stretched = np.rint((grey.astype(np.float64) - low) * 255 / max(1, high - low))
    return (256 + stretched * 255).astype(np.uint16)


def save(pixels: np.ndarray, kind: str, stem) -> str:
    """``pixels`` (grey or RGB uint8) written as ``kind``; returns the path."""
    image = Image.fromarray(pixels)
    rgb, grey = image.convert("RGB"), image.convert("L")
    if kind == "png_rgb":
        path, out = f"{stem}.png", rgb
    elif kind == "jpeg":
        path, out = f"{stem}.jpg", image  # a grey photo stays a grey JPEG
    elif kind == "grey_png":
        path, out = f"{stem}.png", grey
    elif kind == "rgba_png":
        path, out = f"{stem}.png", Image.fromarray(np.dstack([np.asarray(rgb), alpha_mask(*pixels.shape[:2])]), "RGBA")
    else:
        path, out = f"{stem}.png", Image.fromarray(sixteen_bit(np.asarray(grey)))
    out.save(path, **({"quality": 90} if kind == "jpeg" else {}))
    return path


@pytest.fixture(scope="module")
def varied(database, tmp_path_factory) -> fo.Dataset:
    """~56 train and 30 test images: three photos as classes, five file formats cycled within every class."""
    folder = tmp_path_factory.mktemp("varied")
    rng = np.random.default_rng(11)
    samples = []
    for label, photo in SOURCES.items():
        for index, pixels in enumerate(windows(photo(), TRAIN[label] + TEST, rng)):
            kind = FORMATS[index % len(FORMATS)]
            samples.append(fo.Sample(
                filepath=save(pixels, kind, folder / f"{label}_{index:02d}_{kind}"),
                tags=["train" if index < TRAIN[label] else "test"],
                ground_truth=fo.Classification(label=label), kind=kind))
    dataset = fo.Dataset("varied-photos")
    dataset.add_samples(samples)
    yield dataset
    for run_key in fc.list_runs(dataset):
        fc.delete_run(dataset, run_key)
    dataset.delete()


@pytest.fixture
def cache_high_water(monkeypatch):
    """The most bytes the process-wide cache held after any insertion (and how many insertions were
    offered) while a test runs; the cache is emptied first so earlier tests do not count."""
    cache = loader._SHARED_CACHE
    cache.clear()
    seen = {"max": 0, "puts": 0}
    put = cache.put

    def watched(key, stamp, pixels):
        put(key, stamp, pixels)
        seen["puts"] += 1
        seen["max"] = max(seen["max"], cache.nbytes)

    monkeypatch.setattr(cache, "put", watched)
    yield seen
    cache.resize(loader.default_cache_bytes())


def written(record) -> Counter:
    """(mode, (width, height)) of every image file a run wrote, as PIL opens them."""
    shapes = Counter()
    for path in record.view.values("filepath"):
        with Image.open(path) as image:
            shapes[(image.mode, image.size)] += 1
    return shapes


# --------------------------------------------------------------------------- the files are what users have


def test_the_files_are_varied_as_users_have_them(varied):
    train = varied.match_tags("train")
    assert len(train) == sum(TRAIN.values()) and len(varied.match_tags("test")) == 3 * TEST
    modes, sizes = Counter(), set()
    for path in varied.values("filepath"):
        with Image.open(path) as image:
            modes[(image.format, image.mode)] += 1
            sizes.add(image.size)
    assert {("PNG", "RGB"), ("JPEG", "RGB"), ("JPEG", "L"), ("PNG", "L"), ("PNG", "RGBA"), ("PNG", "I;16")} <= set(modes)
    assert len(sizes) > 40 and all(w != h and 40 <= min(w, h) and max(w, h) <= 121 for w, h in sizes)
    for path in varied.match(F("kind") == "png16").values("filepath"):
        pixels = np.asarray(Image.open(path))
        assert pixels.dtype == np.uint16 and pixels.min() == 256 and pixels.max() == 65281
    for path in varied.match(F("kind") == "rgba_png").values("filepath"):
        alpha = np.asarray(Image.open(path))[..., 3]
        assert alpha.min() == 0 and alpha.max() == 255 and 0 < (alpha == 0).mean() < 0.2
    assert Counter(train.values("ground_truth.label"))["rocket"] < IPC


def test_sixteen_bit_files_are_read_scaled_not_clipped(varied):
    """Every value of these files is above 255: clipped they would be all white; scaled they are the photo."""
    for sample in varied.match(F("kind") == "png16").limit(4):
        view = varied.select(sample.id)
        raw = np.asarray(Image.open(sample.filepath))
        reading = Reading(image_size=raw.shape, channels=1)  # the file's own size: no resampling
        pixels = reading.load(view, "ground_truth", None).tensor()[0, 0]
        expected = np.rint(raw / 257.0)
        assert np.array_equal(np.rint(pixels.numpy() * 255), expected)
        assert float(pixels.min()) < 0.5 and float(pixels.std()) > 0.05


def test_transparent_pixels_come_out_in_the_background_colour_asked_for(varied):
    sample = varied.match(F("kind") == "rgba_png").first()
    rgba = np.asarray(Image.open(sample.filepath))
    view = varied.select(sample.id)
    for background in [(255, 0, 0), (0, 0, 255)]:
        reading = Reading(image_size=rgba.shape[:2], channels=3, background=background)
        pixels = np.rint(reading.load(view, "ground_truth", None).tensor()[0].numpy() * 255).astype(int)
        assert pixels[:, 0, 0].tolist() == list(background)  # fully transparent: the background
        opaque = np.argwhere(rgba[..., 3] == 255)[0]
        assert pixels[:, opaque[0], opaque[1]].tolist() == rgba[opaque[0], opaque[1], :3].tolist()
    default = Reading(image_size=rgba.shape[:2], channels=3).load(view, "ground_truth", None).tensor()[0]
    assert (default[:, 0, 0] == 1.0).all()  # white unless asked


def test_letterboxing_pads_with_the_background(varied):
    sizes = {s.id: Image.open(s.filepath).size for s in varied.match(F("kind") == "png_rgb")}
    wide = max(sizes, key=lambda i: sizes[i][0] / sizes[i][1])  # the widest window
    width, height = sizes[wide]
    reading = Reading(image_size=(48, 48), channels=3, resize="letterbox", background=(0, 255, 0))
    pixels = np.rint(reading.load(varied.select(wide), "ground_truth", None).tensor()[0].numpy() * 255)
    inner = round(height * 48 / width)
    pad = (48 - inner) // 2
    assert pad >= 2
    border = np.concatenate([pixels[:, :pad].reshape(3, -1), pixels[:, pad + inner:].reshape(3, -1)], axis=1)
    assert (border.T == (0, 255, 0)).all()
    assert not (pixels[:, pad:pad + inner].reshape(3, -1).T == (0, 255, 0)).all(axis=1).all()


# --------------------------------------------------------------------------- end to end


def test_select_compensate_distil_evaluate_on_the_mixed_photos(varied, cache_high_water):
    train = varied.match_tags("train")

    with pytest.warns(UserWarning, match=r"sizes.*Pass image_size=") as caught:
        picked = fc.select(train, method="herding", ipc=IPC, run_key="herd", small_classes="keep_all",
                           teacher_epochs=1, cache_bytes=CACHE_BYTES)
    assert any("grey and colour images are mixed" in str(w.message) for w in caught)
    fmt = picked.config["image_format"]
    height, width = fmt["size"]
    assert fmt["channels"] == 3 and fmt["resize"] == "crop" and fmt["background"] == [255, 255, 255]
    assert max(height, width) <= 128 and f"{len(train)} sizes" in fmt["reason"] and "grey and colour" in fmt["reason"]
    assert picked.results["small_classes"] == {"policy": "keep_all", "kept_all": {"rocket": TRAIN["rocket"]}}
    assert Counter(picked.view.values("ground_truth.label")) == {"astronaut": IPC, "coins": IPC,
                                                                 "rocket": TRAIN["rocket"]}
    assert 0 < cache_high_water["max"] <= CACHE_BYTES  # the cache was used, and stayed within its bound ...
    assert len(train) * 3 * height * width > CACHE_BYTES  # ... which the decoded train split alone would exceed

    compensated = fc.compensate(varied.load_saved_view("condense-herd"), backend="classical", run_key="warm",
                                cache_bytes=CACHE_BYTES)
    assert compensated.config["parent"] == "herd" and compensated.config["backend"] == "classical"
    assert compensated.config["image_format"]["size"] == [height, width]  # the parent selection's format
    assert written(compensated) == {("RGB", (width, height)): len(picked.view)}
    assert cache_high_water["max"] <= CACHE_BYTES

    distilled = fc.distill(train, method="dm", ipc=IPC, init="herd", iterations=2, run_key="dm",
                           small_classes="keep_all", cache_bytes=CACHE_BYTES)
    assert distilled.config["init"] == "herd" and distilled.config["image_format"] == fmt
    assert distilled.results["small_classes"] == {"policy": "keep_all", "kept_all": {"rocket": TRAIN["rocket"]}}
    assert Counter(distilled.view.values("ground_truth.label")) == {"astronaut": IPC, "coins": IPC,
                                                                    "rocket": TRAIN["rocket"]}
    assert written(distilled) == {("RGB", (width, height)): 2 * IPC + TRAIN["rocket"]}
    assert set(distilled.view.values("metadata.height")) == {height} and set(distilled.view.values("metadata.width")) == {width}
    assert cache_high_water["max"] <= CACHE_BYTES

    result = fc.evaluate(run_key="dm", dataset=varied, epochs=2, num_models=1, references=True,
                         cache_bytes=CACHE_BYTES)
    assert {k: result["image_format"][k] for k in ("size", "channels", "resize")} == \
        {"size": [height, width], "channels": 3, "resize": "crop"}  # the run's recorded format
    assert result["channels"] == 3 and result["classes"] == sorted(SOURCES) and len(result["per_class"]) == 3
    assert 0 <= result["mean"] <= 100 and len(result["accuracies"]) == 1 and "gain_over_random" in result
    assert result["random"]["num_train"] == result["num_train"] == 2 * IPC + TRAIN["rocket"]
    assert fc.load_run(varied, "dm").results["evaluation"]["hard"]["mean"] == result["mean"]
    assert cache_high_water["max"] <= CACHE_BYTES


def test_a_grey_letterboxed_distillation_is_written_and_evaluated_at_its_own_format(varied, cache_high_water):
    train = varied.match_tags("train")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        distilled = fc.distill(train, method="dm", ipc=3, iterations=2, run_key="dm_grey", init="random",
                               image_size=(32, 24), channels=1, resize="letterbox", background=(0, 0, 255),
                               small_classes="drop", cache_bytes=0)
    assert not [w for w in caught if "image_size" in str(w.message) or "mixed" in str(w.message)]  # nothing inferred
    assert distilled.config["image_format"] == {"size": [32, 24], "channels": 1, "resize": "letterbox",
                                                "background": [0, 0, 255]}  # and so no reason recorded
    assert distilled.results["small_classes"] == {"policy": "drop"}  # every class holds 3
    assert written(distilled) == {("L", (24, 32)): 3 * 3}
    assert set(distilled.view.values("metadata.num_channels")) == {1}
    assert cache_high_water["puts"] > 0 and cache_high_water["max"] == 0  # cache_bytes=0: nothing kept
    assert loader.cached_bytes() == 0

    result = fc.evaluate(run_key="dm_grey", dataset=varied, epochs=2, num_models=1, references=False, cache_bytes=0)
    # the run's own format, whole: colour test images are read grey, letterboxed on the run's background
    assert result["image_format"] == {"size": [32, 24], "channels": 1, "resize": "letterbox",
                                      "background": [0, 0, 255]}
    assert result["channels"] == 1 and result["num_train"] == 9
    colour = fc.evaluate(run_key="dm_grey", dataset=varied, epochs=2, num_models=1, references=False, channels=3,
                         cache_bytes=0)
    assert colour["channels"] == 3 and colour["image_format"]["size"] == [32, 24]
    assert cache_high_water["max"] == 0


def test_a_class_smaller_than_ipc_is_dropped_by_name(varied, cache_high_water):
    train = varied.match_tags("train")
    distilled = fc.distill(train, method="dm", ipc=IPC, iterations=2, run_key="dm_drop", init="random",
                           image_size=40, small_classes="drop", cache_bytes=CACHE_BYTES)
    assert distilled.results["small_classes"] == {"policy": "drop", "dropped": {"rocket": TRAIN["rocket"]}}
    assert Counter(distilled.view.values("ground_truth.label")) == {"astronaut": IPC, "coins": IPC}
    assert written(distilled) == {("RGB", (40, 40)): 2 * IPC}
    assert distilled.config["image_format"]["size"] == [40, 40]
    assert distilled.config["image_format"]["reason"] == "grey and colour images are mixed; grey ones are converted to RGB"
    assert 0 < cache_high_water["max"] <= CACHE_BYTES

    with pytest.raises(fc.CondensationError, match="'rocket' has 4"):
        fc.distill(train, method="dm", ipc=IPC, iterations=2, run_key="dm_strict", image_size=40)  # the default: error
    assert "dm_strict" not in fc.list_runs(varied)


# --------------------------------------------------------------------------- small classes and per-class names


def test_dropping_a_small_class_also_drops_it_when_initialised_from_a_selection_that_kept_it(varied):
    train = varied.match_tags("train")
    fc.select(train, method="random", ipc=IPC, run_key="rnd_keep", small_classes="keep_all", image_size=16)
    distilled = fc.distill(train, method="dm", ipc=IPC, init="rnd_keep", iterations=2, run_key="dm_drop_from_run",
                           small_classes="drop", image_size=16)
    assert distilled.results["small_classes"] == {"policy": "drop", "dropped": {"rocket": TRAIN["rocket"]}}
    assert "rocket" not in distilled.view.distinct("ground_truth.label")


def test_a_class_dropped_from_a_noise_initialised_distillation_is_named(varied):
    train = varied.match_tags("train")
    distilled = fc.distill(train, method="dm", ipc=IPC, init="noise", iterations=2, run_key="dm_noise_drop",
                           small_classes="drop", image_size=16)
    assert "rocket" not in distilled.view.distinct("ground_truth.label")  # dropped, as asked ...
    assert distilled.results["small_classes"] == {"policy": "drop", "dropped": {"rocket": TRAIN["rocket"]}}  # ... and said


def test_evaluate_names_the_classes_of_its_per_class_accuracies(varied):
    view = varied.match_tags("train").match(F("kind") == "png_rgb")
    result = fc.evaluate(view, epochs=1, num_models=1, references=False, image_size=16)
    assert result["classes"] == sorted(SOURCES) and len(result["per_class"]) == len(SOURCES)
