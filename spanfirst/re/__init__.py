"""Relation extraction: KLUE-RE readers, entity markers, pooling heads, metrics, ensembles."""
