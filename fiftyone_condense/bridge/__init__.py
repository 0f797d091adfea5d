"""The FiftyOne side: reads views into tensors and writes results back.

:mod:`.views` (views ↔ images), :mod:`.records` (run configs, results, saved views, deletion), the
crash safety read top to bottom — :mod:`.journal`, :mod:`.transaction`, :mod:`.recovery` — and
:mod:`.lifecycle`, which claims keys (recovering the dataset first) and which every capability
module (:mod:`.embed`, :mod:`.select`, :mod:`.distill`, :mod:`.evaluate`, :mod:`.compensate`) runs
its one typed request through.
"""
