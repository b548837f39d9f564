"""First-stage retrieval: BM25 (bm25s, pyserini), dense (sentence-transformers + FAISS), fusion."""
