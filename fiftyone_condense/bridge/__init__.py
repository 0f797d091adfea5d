"""The one place that moves data between FiftyOne and tensors and writes results back."""
