"""spanfirst: span-first NER and relation extraction on Ray Train, Ray Tune and MLflow.

Importing the package defines things and does nothing else (no environment changes, no I/O).
"""

__version__ = "0.1.0"
