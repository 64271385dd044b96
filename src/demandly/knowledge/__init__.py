"""Knowledge bases: sources, extraction, chunking, full-text and dense indexes, search."""
