"""One module per capability: each moves data between FiftyOne and the algorithms for one job.

:mod:`.lifecycle` is the run life-cycle they share (validate, write all-or-nothing, record);
:mod:`.embeddings`, :mod:`.selection`, :mod:`.evaluation`, :mod:`.compensation` and
:mod:`.distillation` hold the work behind the public functions of :mod:`fiftyone_condense.api`.
"""
