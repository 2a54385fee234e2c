"""NER heads, peers on the same encoder, data, metrics and training loop: span-first (the design),
BIO, GlobalPointer, Efficient GlobalPointer, GLiNER. The protocol is in :mod:`.base`, the table of
names in :mod:`.registry`."""
