"""NER heads that are peers of span-first on the same encoder, data, metrics and training loop.

Every head model has ``encoder`` (the only part saved as the backbone), ``forward(input_ids,
attention_mask, text_mask, gold=None)`` returning an output with ``.loss`` when gold is given,
``decode(...) -> DecodedBatch``, ``heads()``, and for windowed prediction ``longest_span`` (None:
unbounded) and ``merge_policy`` (IoU threshold, nesting). :func:`spanfirst.ner.task.build_ner_model`
picks one by ``model.head``.
"""
