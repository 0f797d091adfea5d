"""Thin FiftyOne operators: each parses its form and calls the fiftyone_condense SDK."""

from .compensate import CompensateColors
from .delete import DeleteCondensationRun
from .distill import DistillDataset
from .embeddings import ComputeEmbeddings
from .evaluate import EvaluateCondensed
from .select import SelectCoreset

OPERATORS = (ComputeEmbeddings, SelectCoreset, CompensateColors, DistillDataset, EvaluateCondensed, DeleteCondensationRun)
