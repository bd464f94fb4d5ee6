"""Built-in query operators that are not retrievers: routers, judges, query rewriting, generation."""
