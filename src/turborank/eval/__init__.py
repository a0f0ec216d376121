"""Evaluation harness: BEIR-format data, a BM25 first stage, rerankers (local or HTTP) and trec_eval measures.

Needs the ``eval`` extra (``pip install 'turborank[eval]'``): bm25s, PyStemmer, pytrec-eval-terrier, httpx.
"""
