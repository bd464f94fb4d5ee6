"""The index: documents, their chunks, and the retrieval structures built over them, persisted safely."""
