"""Model files: the Hugging Face Hub (lookup, download, the cache), local model folders, safe names."""
