"""faiss wrapper (the only place faiss is imported), kNN graphs, ASMK."""

from retrievalkit.search.exact import knn_graph, search_ip

__all__ = ["knn_graph", "search_ip"]
