"""train-any: the built-in any-painting network (MicroAST) trained or fine-tuned with the depth loss."""
