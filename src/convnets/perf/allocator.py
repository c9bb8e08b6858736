"""The malloc settings of :mod:`convnets.allocator`, under their former name. They live
below the engine, which applies them in ``fit``; the benchmark and the command line
import them from either place."""
from ..allocator import keep_freed_memory

__all__ = ["keep_freed_memory"]
