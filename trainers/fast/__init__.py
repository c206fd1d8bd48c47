"""The paper's feed-forward style trainer: one TransformerNet per style, with the depth loss."""
