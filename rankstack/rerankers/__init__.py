"""Rerankers: one interface, one module per paradigm, backends that run the models."""

from rankstack.rerankers.base import Fusion, GenerateRequest, LogprobRequest, PairRequest, Reranker
from rankstack.rerankers.registry import RERANKERS, load_reranker, register

__all__ = ["Reranker", "Fusion", "LogprobRequest", "GenerateRequest", "PairRequest", "load_reranker", "register",
           "RERANKERS"]
