"""Question detection, text normalisation, retrieval, ranking and the curated knowledge base."""
