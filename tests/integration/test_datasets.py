"""Fashion-MNIST from the Debian package becomes a FiftyOne dataset of PNGs."""

import os

import numpy as np
from PIL import Image

import fiftyone_condense as fc
from fiftyone_condense.bridge.datasets import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, read_idx


def test_idx_files_hold_the_full_dataset():
    assert read_idx(FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").shape == (10000, 28, 28)
    labels = read_idx(FASHION_MNIST_DIR / "train-labels-idx1-ubyte.gz")
    assert labels.shape == (60000,) and np.bincount(labels).tolist() == [6000] * 10


def test_loader_writes_pngs_with_tags_and_labels(fashion_mnist):
    assert fashion_mnist.count_sample_tags() == {"train": 200, "test": 100}
    assert fashion_mnist.default_classes == FASHION_MNIST_CLASSES
    assert set(fashion_mnist.distinct("ground_truth.label")) == set(FASHION_MNIST_CLASSES)
    sample = fashion_mnist.first()
    assert os.path.isfile(sample.filepath)
    with Image.open(sample.filepath) as image:
        assert image.size == (28, 28) and image.mode == "L"
    first = read_idx(FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz")[0]
    np.testing.assert_array_equal(np.asarray(Image.open(sample.filepath)), first)


def test_loading_again_reuses_the_dataset(fashion_mnist):
    again = fc.datasets.load_fashion_mnist(name="fmnist-small", train_per_class=20, test_per_class=10)
    assert again._doc.id == fashion_mnist._doc.id
