"""``fc.evaluate`` with any architecture: a torchvision classifier by name and a user's own network,
on a run of the small Fashion-MNIST set; the record stays JSON and names the network."""

import json

import torch.nn as nn

import fiftyone_condense as fc
from fiftyone_condense.bridge.evaluate import REFERENCES_KEY


def linear_probe(channels, num_classes, image_size):
    """A user's network, module level: its name identifies it, so its references are cached."""
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * image_size[0] * image_size[1], num_classes))


def test_a_torchvision_classifier_and_a_users_network_evaluate_a_run(dataset):
    fc.select(dataset.match_tags("train"), method="random", ipc=2, run_key="random2")
    common = dict(run_key="random2", dataset=dataset, epochs=1, num_models=1)

    torchvision = fc.evaluate(arch="torchvision:resnet18", references=False, **common)  # 1-channel first conv
    assert torchvision["protocol"]["arch"] == "torchvision:resnet18" and 0.0 <= torchvision["mean"] <= 1.0

    own = fc.evaluate(arch=linear_probe, **common)
    name = f"callable:{__name__}.linear_probe"
    assert own["protocol"]["arch"] == name and own["random"]["protocol"]["arch"] == name
    stored = fc.load_run(dataset, "random2").results["evaluation"]["hard"]
    assert stored["protocol"]["arch"] == name and json.loads(json.dumps(stored)) == stored
    dataset.reload()
    cached = dataset.info[REFERENCES_KEY]
    assert [value["protocol"]["arch"] for value in cached.values()] == [name]

    anonymous = fc.evaluate(fc.load_run(dataset, "random2").view, arch=lambda c, n, size: linear_probe(c, n, size),
                            epochs=1, num_models=1)
    assert anonymous["protocol"]["arch"].endswith("_evaluate_a_run.<locals>.<lambda>")
    dataset.reload()
    assert dataset.info[REFERENCES_KEY] == cached  # a lambda's name does not identify it: nothing cached
