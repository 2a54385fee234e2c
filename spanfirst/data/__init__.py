"""Data: canonical examples, readers for each on-disk format, tokenizer alignment."""
