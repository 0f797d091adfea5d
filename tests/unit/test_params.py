"""Method parameters are data: one declaration checks the SDK's **params and builds the forms."""

import pytest

import fiftyone_condense as fc
from fiftyone_condense.algorithms.params import Param, resolve

LAMBDA = Param("lambda_", float, 1.0, "trade-off", min=0.0)
VARIANT = Param("optimizer", str, "NaiveGreedy", "greedy variant", choices=("NaiveGreedy", "LazyGreedy"))
WEIGHTS = Param("weights", str, None, "checkpoint", optional=True, when={"model": "resnet18"})


def test_defaults_fill_what_is_not_given_and_values_are_converted():
    assert resolve("m", (LAMBDA, VARIANT, WEIGHTS), {}) == {"lambda_": 1.0, "optimizer": "NaiveGreedy", "weights": None}
    assert resolve("m", (LAMBDA,), {"lambda_": "2"}) == {"lambda_": 2.0}  # a form's text becomes the declared type
    assert resolve("m", (Param("steps", int, 1, ""),), {"steps": 3.0}) == {"steps": 3}


@pytest.mark.parametrize("given,message", [
    ({"lamda": 2}, "m has no parameter 'lamda'; its parameters are: lambda_, optimizer"),
    ({"lambda_": -1}, "lambda_=-1 is out of range: it must be at least 0.0"),
    ({"optimizer": "Greedy"}, "optimizer must be one of"),
    ({"lambda_": "much"}, "lambda_ must be float"),
])
def test_an_unknown_or_out_of_range_value_names_what_is_valid(given, message):
    with pytest.raises(fc.CondensationError, match=message):
        resolve("m", (LAMBDA, VARIANT), given)


def test_integers_are_not_silently_truncated_and_objects_pass_where_declared():
    with pytest.raises(fc.CondensationError, match="must be int"):
        resolve("m", (Param("steps", int, 1, ""),), {"steps": 2.5})
    model = object()
    assert resolve("m", (Param("model", str, "convnet3", "", choices=("convnet3",), objects=True),),
                   {"model": model}) == {"model": model}


def test_a_parameter_applies_only_when_its_condition_holds():
    assert WEIGHTS.applies({"model": "resnet18"}) and not WEIGHTS.applies({"model": "convnet3"})
    assert LAMBDA.applies({})


def test_every_method_declares_valid_defaults_once():
    for kind, methods in (("selection", fc.SELECTION_METHODS), ("distillation", ("dm", "ddm", "autopalette"))):
        for method in methods:
            declared = fc.method_parameters(kind, method)
            names = [p.name for p in declared]
            assert len(names) == len(set(names)), (method, names)
            defaults = {p.name: p.default for p in declared}
            assert resolve(method, declared, {k: v for k, v in defaults.items() if v is not None}) == defaults
